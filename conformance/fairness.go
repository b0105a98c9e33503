package conformance

import (
	"context"
	"fmt"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/fairqueue"
	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/locker/driver"
)

// arrival is the outcome of the i-th waiter of a fairness test.
type arrival struct {
	i int
	acq
}

// queueUp starts waiter i on its own client: Lock(ctx, key, wait), reported
// on out. It returns once the waiter is registered (see awaitWaiting).
func (e *env) queueUp(ctx context.Context, i int, key string, wait time.Duration, o locker.Options[string], out chan<- arrival) Client {
	e.t.Helper()
	c := e.client()
	l := e.locker(c, o)
	go func() {
		h, err := l.Lock(ctx, key, wait, longLease)
		out <- arrival{i, acq{lock: h, err: err, at: time.Now()}}
	}()
	e.awaitWaiting(c, e.name(l, key), i+1)
	return c
}

// arrivalOrder: waiters registered one after another acquire in that order.
func arrivalOrder(e *env) {
	hc := e.client()
	e.needFair(hc)
	hl := e.locker(hc, locker.Options[string]{})
	const key, n = "fifo", 4
	name := e.name(hl, key)
	h0 := e.tryLock(hl, key, longLease)
	got := make(chan arrival, n)
	for i := range n {
		e.queueUp(e.ctx, i, key, locker.WaitForever, locker.Options[string]{}, got)
	}
	e.release(h0)
	for want := range n {
		r := await(e.t, patience, fmt.Sprintf("waiter %d of %d to acquire", want+1, n), got)
		require.NoError(e.t, r.err, "waiter %d", r.i)
		require.Equal(e.t, want, r.i, "waiter %d acquired while waiter %d, registered earlier, still waited", r.i, want)
		e.release(r.lock)
	}
	e.checkWaiters(hc, name, 0)
}

// departingWaiter: a waiter whose ctx is cancelled and one whose wait
// elapses leave the queue at once; the others keep their order.
func departingWaiter(e *env) {
	hc := e.client()
	e.needFair(hc)
	hl := e.locker(hc, locker.Options[string]{})
	const key = "departing"
	name := e.name(hl, key)
	h0 := e.tryLock(hl, key, longLease)

	cctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	const shortWait = 2 * time.Second
	stay := make(chan arrival, 2)
	cancelled, elapsed := make(chan arrival, 1), make(chan arrival, 1)
	e.queueUp(e.ctx, 0, key, locker.WaitForever, locker.Options[string]{}, stay)
	e.queueUp(cctx, 1, key, locker.WaitForever, locker.Options[string]{}, cancelled)
	e.queueUp(e.ctx, 2, key, locker.WaitForever, locker.Options[string]{}, stay)
	e.queueUp(e.ctx, 3, key, shortWait, locker.Options[string]{}, elapsed)

	cancel()
	r := await(e.t, patience, "the waiter whose ctx was cancelled to return", cancelled)
	requireCtxErr(e.t, r.err, context.Canceled)
	e.checkWaiters(hc, name, 3)
	r = await(e.t, shortWait+patience, "the waiter whose wait elapsed to return", elapsed)
	requireNotObtained(e.t, r.err)
	e.checkWaiters(hc, name, 2)

	e.release(h0)
	for _, want := range []int{0, 2} {
		r := await(e.t, patience, fmt.Sprintf("waiter %d to acquire", want), stay)
		require.NoError(e.t, r.err, "waiter %d", r.i)
		require.Equal(e.t, want, r.i, "waiter %d acquired before waiter %d, registered earlier", r.i, want)
		e.release(r.lock)
	}
	e.checkWaiters(hc, name, 0)
}

// deadHead is a lock held by a first client, with a waiter queued on a
// second client that was then killed, and a live waiter queued behind it;
// every Locker has a waiter TTL of a second, and a fallback interval long
// enough that only heartbeats and wake-ups make the live waiter re-check.
type deadHead struct {
	key       string
	name      string
	opts      locker.Options[string]
	holder    *locker.Lock[string]
	inspect   Client // a client of the store, for its Inspector
	deadOwner string
	dead      <-chan acq // the killed waiter's Lock call
	stopDead  context.CancelFunc
	live      <-chan acq // the live waiter's Lock call
}

// queueBehindDead sets up a deadHead on key.
func (e *env) queueBehindDead(key string) *deadHead {
	e.t.Helper()
	hc, dc, wc := e.client(), e.client(), e.client()
	e.needFair(hc)
	e.needKill(dc)
	o := locker.Options[string]{WaiterTTL: time.Second, FallbackInterval: 8 * time.Second}
	d := &deadHead{key: key, opts: o, inspect: hc, deadOwner: locker.NewOwner()}
	hl, dl, wl := e.locker(hc, d.opts), e.locker(dc, d.opts), e.locker(wc, d.opts)
	d.name = e.name(hl, key)
	d.holder = e.tryLock(hl, key, longLease)

	dctx, stop := context.WithCancel(e.ctx)
	e.t.Cleanup(stop)
	d.stopDead = stop
	d.dead = acquiring(func() (*locker.Lock[string], error) {
		return dl.Lock(dctx, key, locker.WaitForever, longLease, locker.WithOwner(d.deadOwner))
	})
	e.awaitWaiting(dc, d.name, 1)
	d.live = acquiring(func() (*locker.Lock[string], error) { return wl.Lock(e.ctx, key, locker.WaitForever, longLease) })
	e.awaitWaiting(wc, d.name, 2)
	dc.Kill()
	return d
}

// awaitLive returns the live waiter's lock, which it must get within
// fairqueue.Policy.EvictionBound (plus a margin) of the holder's release.
func (d *deadHead) awaitLive(e *env) *locker.Lock[string] {
	e.t.Helper()
	bound := fairqueue.Policy{WaiterTTL: d.opts.WaiterTTL}.EvictionBound()
	r := await(e.t, bound+2*time.Second,
		fmt.Sprintf("the waiter queued behind a killed waiter to acquire (fairqueue.Policy.EvictionBound is %v)", bound), d.live)
	require.NoError(e.t, r.err)
	return r.lock
}

// awaitDead cancels the killed waiter's call and requires it to fail.
func (d *deadHead) awaitDead(e *env) {
	e.t.Helper()
	d.stopDead()
	r := await(e.t, patience, "the killed waiter's Lock call to return", d.dead)
	require.Error(e.t, r.err, "a waiter cut off from the store acquired the lock")
}

// deadWaiter: a waiter whose client dies at the head of the queue is
// evicted within fairqueue.Policy.EvictionBound, and the next gets the lock;
// meanwhile a newcomer does not barge past the live waiter.
func deadWaiter(e *env) {
	d := e.queueBehindDead("dead-waiter")
	nl := e.locker(e.client(), d.opts)
	e.release(d.holder)
	e.taken(nl, d.key, "a live waiter is queued ahead of the newcomer")
	h := d.awaitLive(e)
	d.awaitDead(e)
	e.release(h)
}

// grantToDeadWaiter: a store may hand the released lock to the head of the
// queue although its process died; then that holding runs out with the
// waiter's heartbeat, so the next waiter still gets the lock within
// fairqueue.Policy.EvictionBound, with a greater fencing token, and the
// dead waiter's owner never holds the lock again.
func grantToDeadWaiter(e *env) {
	d := e.queueBehindDead("grant-to-dead-waiter")
	e.release(d.holder)
	h := d.awaitLive(e)
	require.Greater(e.t, h.Fence(), d.holder.Fence(), "fencing token of the waiter that acquired after the released holding")
	e.checkState(d.inspect, d.name, h.Owner(), 1)
	d.awaitDead(e)
	e.checkState(d.inspect, d.name, h.Owner(), 1)
	e.release(h)
	e.checkState(d.inspect, d.name, "", 0)
	e.checkWaiters(d.inspect, d.name, 0)
}

// mutedNotifier hands out subscriptions that are never woken: every
// wake-up and every grant message addressed to its waiters is lost. It
// wraps the backend's Notifier, if any, so that the store subscription and
// its messages are real.
type mutedNotifier struct{ n driver.Notifier }

func (m mutedNotifier) Subscribe(ctx context.Context, name, ticket string) (driver.Subscription, error) {
	sub := mutedSubscription{never: make(chan struct{})}
	if m.n != nil {
		s, err := m.n.Subscribe(ctx, name, ticket)
		if err != nil {
			return nil, err
		}
		sub.sub = s
	}
	return sub, nil
}

// mutedSubscription is a subscription of a mutedNotifier.
type mutedSubscription struct {
	sub   driver.Subscription // nil without a backend Notifier
	never chan struct{}
}

// SubscribeActive subscribes nothing: a muted waiter subscribes the long way.
func (m mutedNotifier) SubscribeActive(string, string) (driver.Subscription, bool) { return nil, false }

func (m mutedSubscription) Wake() <-chan struct{} { return m.never }

// Granted reports no grant: the grant message is what is lost.
func (m mutedSubscription) Granted() (int64, bool) { return 0, false }

func (m mutedSubscription) Close() {
	if m.sub != nil {
		m.sub.Close()
	}
}

// grantMessageLost: when the message that hands the released lock to the
// head of the queue (or wakes it) is lost, the head still gets the lock by
// its fallback re-check, with a greater fencing token, before the waiter
// queued behind it, which gets the lock once the head released it.
func grantMessageLost(e *env) {
	hc, bc, cc := e.client(), e.client(), e.client()
	e.needFair(hc)
	n, _ := bc.Backend.(driver.Notifier)
	hl, cl := e.locker(hc, locker.Options[string]{}), e.locker(cc, locker.Options[string]{})
	bl := e.locker(bc, locker.Options[string]{Notifier: mutedNotifier{n}, FallbackInterval: 50 * time.Millisecond, WaiterTTL: time.Second})
	const key = "grant-message-lost"
	name := e.name(hl, key)
	h0 := e.tryLock(hl, key, longLease)
	first := acquiring(func() (*locker.Lock[string], error) { return bl.Lock(e.ctx, key, locker.WaitForever, longLease) })
	e.awaitWaiting(bc, name, 1)
	second := acquiring(func() (*locker.Lock[string], error) { return cl.Lock(e.ctx, key, locker.WaitForever, longLease) })
	e.awaitWaiting(cc, name, 2)

	e.release(h0)
	r := await(e.t, patience, "the head waiter, deaf to wake-ups, to acquire by its re-check", first)
	require.NoError(e.t, r.err)
	require.False(e.t, arrived(second), "the second waiter acquired while the head held the lock")
	require.Greater(e.t, r.lock.Fence(), h0.Fence(), "fencing token of the head waiter after the released holding")
	e.checkState(hc, name, r.lock.Owner(), 1)
	e.release(r.lock)

	r2 := await(e.t, patience, "the second waiter to acquire once the head released", second)
	require.NoError(e.t, r2.err)
	require.Greater(e.t, r2.lock.Fence(), r.lock.Fence(), "fencing token of the second waiter")
	e.release(r2.lock)
	e.checkWaiters(hc, name, 0)
}

// giveUpRacingRelease: a waiter whose ctx is cancelled at about the moment
// the holder releases (when a store may hand it the lock) either returns
// the lock and holds it, or returns the context's error and holds nothing;
// either way the waiter queued behind it gets the lock promptly. The
// waiter TTL is longer than the test waits, so that a holding the
// departing waiter left behind would show.
func giveUpRacingRelease(e *env) {
	hc, bc, cc := e.client(), e.client(), e.client()
	e.needFair(hc)
	o := locker.Options[string]{WaiterTTL: 3 * patience}
	hl, bl, cl := e.locker(hc, o), e.locker(bc, o), e.locker(cc, o)
	insp, inspectable := inspector(hc)
	rounds := 20
	if !inspectable {
		rounds = 4 // waiters are staggered, not observed
	}
	for round := range rounds {
		key := fmt.Sprintf("give-up-race-%d", round)
		name := e.name(hl, key)
		h0 := e.tryLock(hl, key, longLease)
		owner := locker.NewOwner()
		bctx, cancel := context.WithCancel(e.ctx)
		quitter := acquiring(func() (*locker.Lock[string], error) {
			if round%2 == 1 {
				return bl.LockWithRenewal(bctx, key, locker.WaitForever, locker.WithOwner(owner))
			}
			return bl.Lock(bctx, key, locker.WaitForever, longLease, locker.WithOwner(owner))
		})
		e.awaitWaiting(bc, name, 1)
		next := acquiring(func() (*locker.Lock[string], error) { return cl.Lock(e.ctx, key, locker.WaitForever, longLease) })
		e.awaitWaiting(cc, name, 2)

		// By turns, cancel a little before or a little after the release.
		lag := time.Duration(round/4) * 100 * time.Microsecond
		if round/2%2 == 0 {
			cancel()
			time.Sleep(lag)
			e.release(h0)
		} else {
			time.AfterFunc(lag, cancel)
			e.release(h0)
		}
		r := await(e.t, patience, fmt.Sprintf("round %d: the waiter cancelled as the lock was released to return", round), quitter)
		if r.err != nil {
			requireCtxErr(e.t, r.err, context.Canceled)
			if inspectable {
				require.NotEqual(e.t, owner, e.state(insp, name).Owner,
					"round %d: the cancelled waiter returned %v but its owner holds the lock", round, r.err)
			}
		} else {
			e.checkState(hc, name, owner, 1)
			e.release(r.lock)
		}
		n := await(e.t, patience, fmt.Sprintf("round %d: the waiter queued behind the cancelled one to acquire", round), next)
		require.NoError(e.t, n.err, "round %d", round)
		e.release(n.lock)
		e.checkWaiters(hc, name, 0)
		cancel()
	}
}
