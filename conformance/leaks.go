package conformance

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/locker/driver"
)

// workout drives every kind of call on one name in each mode the backend
// supports, on two fresh clients, and returns with everything released: a
// re-entrant renewed holding, failed single attempts, a wait that elapses,
// a waiter that gives up and one that acquires.
func workout(e *env) {
	e.t.Helper()
	a, b := e.client(), e.client()
	modes := []locker.Mode{locker.Barging}
	if _, ok := a.Backend.(driver.Queue); ok {
		modes = append(modes, locker.Fair)
	}
	for _, m := range modes {
		e.mode = m
		o := locker.Options[string]{RenewLease: renewLease}
		la, lb := e.locker(a, o), e.locker(b, o)
		key := "workout-" + modeName(m)
		name := e.name(la, key)

		h := e.renewed(la, key, 0)
		h2 := e.tryLock(la, key, longLease, locker.WithOwner(h.Owner()))
		e.taken(lb, key, "it is held")
		r := within(e.t, patience, "Lock with a short wait to give up", func() acq {
			l, err := lb.Lock(e.ctx, key, 50*time.Millisecond, longLease)
			return acq{lock: l, err: err}
		})
		requireNotObtained(e.t, r.err)

		cctx, cancel := context.WithCancel(e.ctx)
		gone := acquiring(func() (*locker.Lock[string], error) { return lb.Lock(cctx, key, locker.WaitForever, longLease) })
		e.awaitWaiting(b, name, 1)
		next := acquiring(func() (*locker.Lock[string], error) { return lb.LockWithRenewal(e.ctx, key, locker.WaitForever) })
		e.awaitWaiting(b, name, 2)
		cancel()
		requireCtxErr(e.t, await(e.t, patience, "the cancelled waiter to return", gone).err, context.Canceled)
		e.release(h2)
		e.release(h)
		n := await(e.t, patience, "the remaining waiter to acquire", next)
		require.NoError(e.t, n.err)
		e.release(n.lock)
	}
}

// leakGoroutines: once every Locker and client of a workout is closed, no
// goroutine started during it remains.
func leakGoroutines(e *env) {
	before := goleak.IgnoreCurrent()
	e.t.Run("Workout", func(t *testing.T) { workout(newEnv(t, e.h, nil)) })
	goleak.VerifyNone(e.t, before)
}

// leakSubscriptions: waiters of one client share one store subscription
// per name, and none is left once nobody waits.
func leakSubscriptions(e *env) {
	a, b := e.client(), e.client()
	e.needNotifier(b)
	count := b.Subscriptions
	if count == nil {
		e.t.Skipf("conformance: Client.Subscriptions is not set, so subscription leaks are unchecked")
	}
	la, lb := e.locker(a, locker.Options[string]{}), e.locker(b, locker.Options[string]{})
	hx, hy := e.tryLock(la, "x", longLease), e.tryLock(la, "y", longLease)
	require.Zero(e.t, count(), "subscriptions of a client with no waiter")

	cctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	x1 := acquiring(func() (*locker.Lock[string], error) { return lb.Lock(cctx, "x", locker.WaitForever, longLease) })
	e.awaitWaiting(b, hx.Name(), 1)
	x2 := acquiring(func() (*locker.Lock[string], error) { return lb.Lock(e.ctx, "x", locker.WaitForever, longLease) })
	e.awaitWaiting(b, hx.Name(), 2)
	y1 := acquiring(func() (*locker.Lock[string], error) { return lb.Lock(e.ctx, "y", locker.WaitForever, longLease) })
	e.awaitWaiting(b, hy.Name(), 1)
	eventually(e.t, patience, "3 waiters on 2 names to hold 2 subscriptions", func() (bool, error) {
		return count() == 2, nil
	})
	cancel()
	requireCtxErr(e.t, await(e.t, patience, "the cancelled waiter to return", x1).err, context.Canceled)
	require.Equal(e.t, 2, count(), "subscriptions after one of two waiters of a name left")

	e.release(hx)
	e.release(hy)
	for what, ch := range map[string]<-chan acq{"the second waiter of x to acquire": x2, "the waiter of y to acquire": y1} {
		r := await(e.t, patience, what, ch)
		require.NoError(e.t, r.err, what)
		e.release(r.lock)
	}
	eventually(e.t, patience, "the client's subscriptions to drop to zero once nobody waits", func() (bool, error) {
		return count() == 0, nil
	})
}

// leakKeys: once a namespace is idle after a workout, the store holds no
// key of it (apart from fence records).
func leakKeys(e *env) {
	e.needKeys()
	l := e.locker(e.client(), locker.Options[string]{})
	require.Empty(e.t, e.keys(), "keys of a fresh namespace")
	h := e.tryLock(l, "probe", longLease)
	require.NotEmpty(e.t, e.keys(), "Harness.Keys lists no key for a held lock, so it cannot show leaks")
	e.release(h)
	workout(e)
	eventually(e.t, patience, "the store to hold no key of the idle namespace", func() (bool, error) {
		if left := e.keys(); len(left) > 0 {
			return false, fmt.Errorf("keys left: %q", left)
		}
		return true, nil
	})
}
