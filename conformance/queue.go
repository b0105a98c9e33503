package conformance

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/locker/driver"
)

// join starts waiter i on l, a Locker on client c: Lock(ctx, key,
// WaitForever, longLease), reported on out. It returns once the queue of
// key holds n waiters (see awaitWaiting).
func (e *env) join(c Client, l *locker.Locker[string], ctx context.Context, i, n int, key string, out chan<- arrival) {
	e.t.Helper()
	go func() {
		h, err := l.Lock(ctx, key, locker.WaitForever, longLease)
		out <- arrival{i, acq{lock: h, err: err, at: time.Now()}}
	}()
	e.awaitWaiting(c, e.name(l, key), n)
}

// orderAtHeadAndTail: waiters leave from the head, the middle and the tail
// of the queue; the others keep their order, and waiters that arrive
// after the departures, a departed one coming back among them, queue at
// the tail.
func orderAtHeadAndTail(e *env) {
	hc := e.client()
	e.needFair(hc)
	hl := e.locker(hc, locker.Options[string]{})
	const key, n = "head-and-tail", 5
	name := e.name(hl, key)
	h0 := e.tryLock(hl, key, longLease)
	got, left := make(chan arrival, 8), make(chan arrival, 3)
	cancels := make([]context.CancelFunc, n)
	lockers := make([]*locker.Locker[string], n)
	clients := make([]Client, n)
	for i := range n {
		ctx, cancel := context.WithCancel(e.ctx)
		defer cancel()
		cancels[i] = cancel
		out := got
		if i%2 == 0 {
			out = left // 0, 2 and 4: the head, the middle and the tail
		}
		clients[i] = e.client()
		lockers[i] = e.locker(clients[i], locker.Options[string]{})
		e.join(clients[i], lockers[i], ctx, i, i+1, key, out)
	}
	for k, i := range []int{0, 2, 4} {
		where := []string{"head", "middle", "tail"}[k]
		cancels[i]()
		r := await(e.t, patience, fmt.Sprintf("waiter %d (at the %s) to return after its ctx was cancelled", i, where), left)
		require.Equal(e.t, i, r.i, "waiter %d returned, but waiter %d was cancelled", r.i, i)
		requireCtxErr(e.t, r.err, context.Canceled)
		e.checkWaiters(hc, name, n-1-k)
	}
	// Arrivals after the departures: new waiters, and waiter 0 again.
	e.join(clients[4], lockers[4], e.ctx, 5, 3, key, got)
	c6 := e.client()
	e.join(c6, e.locker(c6, locker.Options[string]{}), e.ctx, 6, 4, key, got)
	e.join(clients[0], lockers[0], e.ctx, 7, 5, key, got)

	e.release(h0)
	for _, want := range []int{1, 3, 5, 6, 7} {
		r := await(e.t, patience, fmt.Sprintf("waiter %d to acquire", want), got)
		require.NoError(e.t, r.err, "waiter %d", r.i)
		require.Equal(e.t, want, r.i, "waiter %d acquired before waiter %d (queue after departures from the head, "+
			"the middle and the tail, then arrivals: 1, 3, 5, 6, 7)", r.i, want)
		e.release(r.lock)
	}
	e.checkWaiters(hc, name, 0)
}

// wokenAfterHeadLeft: when the head of the queue left, the release wakes
// the next waiter, well before it would re-check on its own.
func wokenAfterHeadLeft(e *env) {
	hc, ac, bc := e.client(), e.client(), e.client()
	e.needFair(hc)
	e.needNotifier(bc)
	o, quiet := e.quietOptions(locker.Options[string]{})
	hl, al, bl := e.locker(hc, o), e.locker(ac, o), e.locker(bc, o)
	const key = "head-left"
	name := e.name(hl, key)
	h := e.tryLock(hl, key, longLease)
	actx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	head := acquiring(func() (*locker.Lock[string], error) { return al.Lock(actx, key, locker.WaitForever, longLease) })
	e.awaitWaiting(hc, name, 1)
	next := acquiring(func() (*locker.Lock[string], error) { return bl.Lock(e.ctx, key, quiet+patience, longLease) })
	e.awaitWaiting(hc, name, 2)
	cancel()
	r := await(e.t, patience, "the head waiter to return after its ctx was cancelled", head)
	requireCtxErr(e.t, r.err, context.Canceled)
	e.checkWaiters(hc, name, 1)

	e.release(h)
	r = await(e.t, quiet/4, fmt.Sprintf("the waiter behind a head that left to be woken by the release "+
		"(it would re-check on its own only after %v)", quiet), next)
	require.NoError(e.t, r.err)
	require.Greater(e.t, r.lock.Fence(), h.Fence())
	e.release(r.lock)
	e.checkWaiters(hc, name, 0)
}

// deadHeadSkipped: a waiter whose process died and whose heartbeat lapsed
// while the lock was held is skipped by the release, not handed the lock
// nor woken alone: the live waiter behind it gets the lock at once, well
// before it would re-check on its own (a release that hands the lock to
// the dead head stalls the name for a grant lease and then until that
// re-check, as after an outage).
func deadHeadSkipped(e *env) {
	hc, dc, lc := e.client(), e.client(), e.client()
	e.needFair(hc)
	e.needKill(dc)
	const deadTTL = 300 * time.Millisecond
	o, quiet := e.quietOptions(locker.Options[string]{})
	hl, dl, ll := e.locker(hc, o), e.locker(dc, locker.Options[string]{WaiterTTL: deadTTL}), e.locker(lc, o)
	const key = "dead-head"
	name := e.name(hl, key)
	h := e.tryLock(hl, key, longLease)
	dctx, stop := context.WithCancel(e.ctx)
	defer stop()
	dead := acquiring(func() (*locker.Lock[string], error) { return dl.Lock(dctx, key, locker.WaitForever, longLease) })
	e.awaitWaiting(hc, name, 1)
	live := acquiring(func() (*locker.Lock[string], error) { return ll.Lock(e.ctx, key, quiet+patience, longLease) })
	e.awaitWaiting(hc, name, 2)
	dc.Kill()
	time.Sleep(deadTTL + 200*time.Millisecond) // the dead head's heartbeat deadline passes
	e.release(h)
	r := await(e.t, quiet/4, fmt.Sprintf("the live waiter queued behind a dead head whose heartbeat (WaiterTTL %v) had "+
		"lapsed to get the lock at the release (it would re-check on its own only after %v)", deadTTL, quiet), live)
	require.NoError(e.t, r.err)
	require.Greater(e.t, r.lock.Fence(), h.Fence())
	e.checkState(hc, name, r.lock.Owner(), 1)
	stop()
	d := await(e.t, patience, "the killed waiter's Lock call to return", dead)
	require.Error(e.t, d.err, "a waiter cut off from the store acquired the lock")
	e.release(r.lock)
	e.checkWaiters(hc, name, 0)
}

// killedWaiterKeys: the queue records of a waiter whose process died do
// not outlive the documented bound, even when nobody touches the name
// again: 2*(WaiterTTL+1s) after its last heartbeat (the Redis scripts; a
// store may be quicker). Only the holding's keys remain, and none once it
// is released.
func killedWaiterKeys(e *env) {
	e.needKeys()
	hc, dc := e.client(), e.client()
	e.needFair(hc)
	e.needKill(dc)
	const ttl = 300 * time.Millisecond
	o := locker.Options[string]{WaiterTTL: ttl}
	hl, dl := e.locker(hc, o), e.locker(dc, o)
	const key = "killed-waiter-keys"
	name := e.name(hl, key)
	h := e.tryLock(hl, key, longLease)
	held := e.keys()
	require.NotEmpty(e.t, held, "Harness.Keys lists no key for a held lock, so it cannot show leaks")
	dctx, stop := context.WithCancel(e.ctx)
	defer stop()
	dead := acquiring(func() (*locker.Lock[string], error) { return dl.Lock(dctx, key, locker.WaitForever, longLease) })
	e.awaitWaiting(hc, name, 1)
	dc.Kill()
	bound := 2 * (ttl + time.Second)
	eventually(e.t, bound+2*time.Second, fmt.Sprintf("the queue records of a killed waiter to vanish "+
		"(the documented bound is %v after its last heartbeat)", bound), func() (bool, error) {
		keys, err := e.h.Keys(e.ctx, e.ns)
		if err != nil {
			return false, err
		}
		slices.Sort(keys)
		if extra := slices.DeleteFunc(keys, func(k string) bool { return slices.Contains(held, k) }); len(extra) > 0 {
			return false, fmt.Errorf("keys beyond the holding's: %q", extra)
		}
		return true, nil
	})
	stop()
	d := await(e.t, patience, "the killed waiter's Lock call to return", dead)
	require.Error(e.t, d.err, "a waiter cut off from the store acquired the lock")
	e.release(h)
	eventually(e.t, patience, "the store to hold no key of the idle name", func() (bool, error) {
		if left := e.keys(); len(left) > 0 {
			return false, fmt.Errorf("keys left: %q", left)
		}
		return true, nil
	})
}

// wakeUpsToOwnProcess: in fair mode a release wakes the process of the
// waiter it is for, and only that one: with waiters on several clients
// and no re-check of their own for a long while, each release hands the
// lock to the next waiter promptly (it got its wake-up), and no waiter
// behind it is woken.
func wakeUpsToOwnProcess(e *env) {
	hc := e.client()
	e.needFair(hc)
	o, quiet := e.quietOptions(locker.Options[string]{})
	hl := e.locker(hc, o)
	const key, n = "own-process", 3
	name := e.name(hl, key)
	h := e.tryLock(hl, key, longLease)
	type waiter struct {
		wakes *countingNotifier
		res   <-chan acq
	}
	var ws []waiter
	for i := range n {
		c := e.client()
		cn := &countingNotifier{n: e.needNotifier(c)}
		wo := o
		wo.Notifier = cn
		l := e.locker(c, wo)
		res := acquiring(func() (*locker.Lock[string], error) { return l.Lock(e.ctx, key, quiet+patience, longLease) })
		e.awaitWaiting(hc, name, i+1)
		eventually(e.t, patience, fmt.Sprintf("waiter %d to subscribe", i), func() (bool, error) {
			return cn.subscribed.Load() > 0, nil
		})
		ws = append(ws, waiter{cn, res})
	}
	holder := h
	for i, w := range ws {
		before := make([]int64, n)
		for j := range ws {
			before[j] = ws[j].wakes.wakeups()
		}
		e.release(holder)
		r := await(e.t, quiet/4, fmt.Sprintf("waiter %d, on a client of its own, to be woken by the release "+
			"(it would re-check on its own only after %v)", i, quiet), w.res)
		require.NoError(e.t, r.err, "waiter %d", i)
		require.Greater(e.t, w.wakes.wakeups(), before[i], "waiter %d acquired without a wake-up", i)
		time.Sleep(100 * time.Millisecond) // room for stray wake-ups to show
		for j := i + 1; j < n; j++ {
			require.Equal(e.t, before[j], ws[j].wakes.wakeups(), "the release that handed the lock to waiter %d also "+
				"woke waiter %d, of another process, queued behind it: a wake-up must reach only its own process", i, j)
		}
		holder = r.lock
	}
	e.release(holder)
	e.checkWaiters(hc, name, 0)
}

// countingNotifier counts the wake-ups its subscriptions deliver.
type countingNotifier struct {
	n          driver.Notifier
	wakes      atomic.Int64
	subscribed atomic.Int64 // subscriptions made
}

func (c *countingNotifier) wakeups() int64 { return c.wakes.Load() }

func (c *countingNotifier) Subscribe(ctx context.Context, name, ticket string) (driver.Subscription, error) {
	sub, err := c.n.Subscribe(ctx, name, ticket)
	if err != nil {
		return nil, err
	}
	return c.count(sub), nil
}

func (c *countingNotifier) SubscribeActive(name, ticket string) (driver.Subscription, bool) {
	sub, ok := c.n.SubscribeActive(name, ticket)
	if !ok {
		return nil, false
	}
	return c.count(sub), true
}

func (c *countingNotifier) count(sub driver.Subscription) driver.Subscription {
	cs := &countingSubscription{sub: sub, n: c, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go cs.run()
	c.subscribed.Add(1)
	return cs
}

// countingSubscription forwards and counts the wake-ups of sub.
type countingSubscription struct {
	sub        driver.Subscription
	n          *countingNotifier
	wake       chan struct{}
	stop, done chan struct{}
	once       sync.Once
}

func (c *countingSubscription) run() {
	defer close(c.done)
	for {
		select {
		case <-c.sub.Wake():
			c.n.wakes.Add(1)
			select {
			case c.wake <- struct{}{}:
			default:
			}
		case <-c.stop:
			return
		}
	}
}

func (c *countingSubscription) Wake() <-chan struct{} { return c.wake }

func (c *countingSubscription) Granted() (int64, bool) { return c.sub.Granted() }

func (c *countingSubscription) Close() {
	c.once.Do(func() {
		close(c.stop)
		<-c.done
		c.sub.Close()
	})
}
