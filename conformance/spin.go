package conformance

import (
	"context"
	"fmt"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/fairqueue"
	"github.com/disgolock/disgo/locker"
)

// quietOptions makes waiters re-check on their own only after a long
// while, so that a prompt acquisition proves the waiter was woken (by a
// release, or by the holder's remaining lease). It returns the options and
// the longest a waiter sleeps without a wake-up.
func (e *env) quietOptions(o locker.Options[string]) (locker.Options[string], time.Duration) {
	o.FallbackInterval = 8 * time.Second
	quiet := o.FallbackInterval
	if e.mode == locker.Fair {
		o.WaiterTTL = 3 * o.FallbackInterval
		quiet = min(quiet, fairqueue.Policy{WaiterTTL: o.WaiterTTL}.Heartbeat())
	}
	return o, quiet
}

// wokenByRelease: a release wakes the waiter well before its own re-check
// would have fired (no busy polling, no lost wake-up).
func wokenByRelease(e *env) {
	a, b := e.client(), e.client()
	e.needNotifier(b)
	o, quiet := e.quietOptions(locker.Options[string]{})
	la, lb := e.locker(a, o), e.locker(b, o)
	const key = "woken-by-release"
	name := e.name(la, key)
	h := e.tryLock(la, key, longLease)
	w := acquiring(func() (*locker.Lock[string], error) {
		return lb.Lock(e.ctx, key, quiet+patience, longLease)
	})
	e.awaitWaiting(b, name, 1)
	e.release(h)
	r := await(e.t, quiet/2,
		fmt.Sprintf("the waiter to be woken by the release (it would re-check on its own only after %v)", quiet), w)
	require.NoError(e.t, r.err)
	e.release(r.lock)
}

// wokenByExpiry: a holder that never releases loses the lock at its lease
// end, and a waiter gets it within the lease plus a margin, well before
// its own re-check interval.
func wokenByExpiry(e *env) {
	a, b := e.client(), e.client()
	o, quiet := e.quietOptions(locker.Options[string]{})
	la, lb := e.locker(a, o), e.locker(b, o)
	const key = "woken-by-expiry"
	name := e.name(la, key)
	// Long enough for the waiter to queue before it ends, however loaded
	// the machine: a waiter that came after the end would simply acquire.
	const lease = time.Second
	h := e.tryLock(la, key, lease)
	w := acquiring(func() (*locker.Lock[string], error) {
		return lb.Lock(e.ctx, key, quiet+patience, longLease)
	})
	e.awaitWaiting(b, name, 1)
	r := await(e.t, lease+quiet/3,
		fmt.Sprintf("the waiter to acquire once the holder's lease of %v ran out, without any release", lease), w)
	require.NoError(e.t, r.err)
	require.True(e.t, r.at.After(h.Deadline()),
		"the waiter acquired at %v, before the holder's lease deadline %v", r.at, h.Deadline())
	awaitClosed(e.t, patience, "Done of the expired fixed-lease holding to close", h.Done())
	require.ErrorIs(e.t, h.Err(), locker.ErrLost)
	e.release(r.lock)
}

// wokenByHolderDeath: when the holder's client dies, renewal stops and a
// waiter gets the lock within the renewal lease plus a margin.
func wokenByHolderDeath(e *env) {
	a, b := e.client(), e.client()
	e.needKill(a)
	o, quiet := e.quietOptions(locker.Options[string]{RenewLease: renewLease})
	la, lb := e.locker(a, o), e.locker(b, o)
	const key = "woken-by-holder-death"
	name := e.name(la, key)
	e.renewed(la, key, 0)
	w := acquiring(func() (*locker.Lock[string], error) {
		return lb.Lock(e.ctx, key, quiet+patience, longLease)
	})
	e.awaitWaiting(b, name, 1)
	a.Kill()
	r := await(e.t, renewLease+quiet/3,
		fmt.Sprintf("the waiter to acquire once the killed holder's lease of %v ran out", renewLease), w)
	require.NoError(e.t, r.err)
	e.release(r.lock)
}

// waitElapsed: waiting calls give up with ErrNotObtained (not a context
// error) once their wait elapsed, and leave no queue entry.
func waitElapsed(e *env) {
	a, b := e.client(), e.client()
	la, lb := e.locker(a, locker.Options[string]{}), e.locker(b, locker.Options[string]{})
	const key, wait = "wait-elapsed", 300 * time.Millisecond
	name := e.name(la, key)
	h := e.tryLock(la, key, longLease)
	for call, f := range map[string]func() (*locker.Lock[string], error){
		"Lock":            func() (*locker.Lock[string], error) { return lb.Lock(e.ctx, key, wait, longLease) },
		"LockWithRenewal": func() (*locker.Lock[string], error) { return lb.LockWithRenewal(e.ctx, key, wait) },
	} {
		began := time.Now()
		r := await(e.t, wait+patience, fmt.Sprintf("%s with a wait of %v to give up", call, wait), acquiring(f))
		requireNotObtained(e.t, r.err)
		require.GreaterOrEqual(e.t, r.at.Sub(began), wait, "%s gave up before its wait elapsed", call)
		e.checkWaiters(a, name, 0)
	}
	e.release(h)
}

// contextCancelled: waiting calls return the context's error, not
// ErrNotObtained, when their ctx is cancelled or its deadline passes, and
// leave no queue entry.
func contextCancelled(e *env) {
	a, b := e.client(), e.client()
	la, lb := e.locker(a, locker.Options[string]{}), e.locker(b, locker.Options[string]{})
	const key = "ctx-cancelled"
	name := e.name(la, key)
	h := e.tryLock(la, key, longLease)

	cctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	w := acquiring(func() (*locker.Lock[string], error) {
		return lb.Lock(cctx, key, locker.WaitForever, longLease)
	})
	e.awaitWaiting(b, name, 1)
	cancel()
	r := await(e.t, patience, "Lock to return after its ctx was cancelled", w)
	requireCtxErr(e.t, r.err, context.Canceled)
	e.checkWaiters(a, name, 0)

	dctx, cancelD := context.WithTimeout(e.ctx, 300*time.Millisecond)
	defer cancelD()
	r = await(e.t, patience, "LockWithRenewal to return after its ctx deadline", acquiring(func() (*locker.Lock[string], error) {
		return lb.LockWithRenewal(dctx, key, locker.WaitForever)
	}))
	requireCtxErr(e.t, r.err, context.DeadlineExceeded)
	e.checkWaiters(a, name, 0)
	e.release(h)
}
