package conformance

import (
	"context"
	"fmt"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/fairqueue"
	"github.com/disgolock/disgo/locker"
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

// deadWaiter: a waiter whose client dies at the head of the queue is
// evicted within fairqueue.Policy.EvictionBound, and the next gets the lock;
// meanwhile a newcomer does not barge past the live waiter.
func deadWaiter(e *env) {
	hc, dc, wc, nc := e.client(), e.client(), e.client(), e.client()
	e.needFair(hc)
	e.needKill(dc)
	o := locker.Options[string]{WaiterTTL: time.Second}
	policy := fairqueue.Policy{WaiterTTL: o.WaiterTTL}
	hl, dl, wl, nl := e.locker(hc, o), e.locker(dc, o), e.locker(wc, o), e.locker(nc, o)
	const key = "dead-waiter"
	name := e.name(hl, key)
	h0 := e.tryLock(hl, key, longLease)

	dctx, cancelDead := context.WithCancel(e.ctx)
	defer cancelDead()
	dead := acquiring(func() (*locker.Lock[string], error) { return dl.Lock(dctx, key, locker.WaitForever, longLease) })
	e.awaitWaiting(dc, name, 1)
	live := acquiring(func() (*locker.Lock[string], error) { return wl.Lock(e.ctx, key, locker.WaitForever, longLease) })
	e.awaitWaiting(wc, name, 2)

	dc.Kill()
	e.release(h0)
	e.taken(nl, key, "a live waiter is queued ahead of the newcomer")
	bound := policy.EvictionBound()
	r := await(e.t, bound+2*time.Second,
		fmt.Sprintf("the waiter queued behind a killed waiter to acquire (fairqueue.Policy.EvictionBound is %v)", bound), live)
	require.NoError(e.t, r.err)

	cancelDead()
	d := await(e.t, patience, "the killed waiter's Lock call to return", dead)
	require.Error(e.t, d.err, "a waiter cut off from the store acquired the lock")
	e.release(r.lock)
}
