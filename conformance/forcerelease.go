package conformance

import (
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/locker/driver"
)

// needForceRelease skips the test unless c's backend has a force release.
func (e *env) needForceRelease(c Client) {
	e.t.Helper()
	if _, ok := c.Backend.(driver.ForceReleaser); !ok {
		e.t.Skipf("conformance: %T does not implement driver.ForceReleaser, so force release is untested", c.Backend)
	}
}

// forceRelease calls ForceRelease through l, bounded by patience.
func (e *env) forceRelease(l *locker.Locker[string], key string) error {
	e.t.Helper()
	return within(e.t, patience, "ForceRelease("+key+")", func() error { return l.ForceRelease(e.ctx, key) })
}

// forceReleaseRevokesTheHolder: an operator's force release frees a lock
// held and renewed by another process; the waiter gets it with a greater
// fence, and the former holder's next renewal reports the loss as revoked.
func forceReleaseRevokesTheHolder(e *env) {
	a, b, op := e.client(), e.client(), e.client()
	e.needForceRelease(op)
	la := e.locker(a, locker.Options[string]{RenewLease: renewLease})
	lb := e.locker(b, locker.Options[string]{})
	lop := e.locker(op, locker.Options[string]{})
	const key = "forced"
	h := e.renewed(la, key, 0)
	name := h.Name()
	w := acquiring(func() (*locker.Lock[string], error) { return lb.Lock(e.ctx, key, locker.WaitForever, longLease) })
	e.awaitWaiting(b, name, 1)

	require.NoError(e.t, e.forceRelease(lop, key), "ForceRelease of a held lock")
	r := await(e.t, patience, "the waiter to get the force-released lock", w)
	require.NoError(e.t, r.err)
	require.Greater(e.t, r.lock.Fence(), h.Fence(), "the next holder's fence")

	awaitClosed(e.t, renewLease+patience, "the former holder to learn of the force release at its next renewal", h.Done())
	require.ErrorIs(e.t, h.Err(), locker.ErrLost)
	require.ErrorIs(e.t, h.Err(), locker.ErrRevoked, "the loss names its cause")
	require.ErrorIs(e.t, e.releaseErr(h), locker.ErrNotHeld)
	e.release(r.lock)
}

// forceReleaseWholeHolding: a force release ends a re-entered holding
// whatever its count; on a free lock it fails with ErrNotHeld and changes
// nothing.
func forceReleaseWholeHolding(e *env) {
	a, b, op := e.client(), e.client(), e.client()
	e.needForceRelease(op)
	la, lb := e.locker(a, locker.Options[string]{}), e.locker(b, locker.Options[string]{})
	lop := e.locker(op, locker.Options[string]{})
	const key = "forced-count"
	require.ErrorIs(e.t, e.forceRelease(lop, key), locker.ErrNotHeld, "ForceRelease of a free lock")
	owner := locker.WithOwner("holder")
	h1 := e.tryLock(la, key, longLease, owner)
	h2 := e.tryLock(la, key, longLease, owner)
	require.NoError(e.t, e.forceRelease(lop, key), "ForceRelease of a lock held twice")
	h := e.tryLock(lb, key, longLease) // free at once, not after one more release
	require.Greater(e.t, h.Fence(), h1.Fence())
	require.ErrorIs(e.t, e.releaseErr(h2), locker.ErrNotHeld)
	require.ErrorIs(e.t, e.releaseErr(h1), locker.ErrNotHeld)
	e.checkState(b, h.Name(), h.Owner(), 1)
	e.release(h)
}

// forceReleaseThroughTheHoldingLocker: a force release through the Locker
// that holds the lock ends its handle at once.
func forceReleaseThroughTheHoldingLocker(e *env) {
	a := e.client()
	e.needForceRelease(a)
	la := e.locker(a, locker.Options[string]{})
	const key = "forced-here"
	h := e.renewed(la, key, 0)
	require.NoError(e.t, e.forceRelease(la, key))
	select {
	case <-h.Done():
	default:
		e.t.Fatal("the handle of the Locker that force-released its own lock is still live")
	}
	require.ErrorIs(e.t, h.Err(), locker.ErrRevoked)
	h2 := e.tryLock(la, key, longLease)
	e.release(h2)
}

// forceReleaseExtendSaysRevoked: the Extend of a fixed-lease holding that a
// force release ended fails with ErrNotHeld and ErrRevoked (the store's
// Extend, not only its batch, tells a revoked owner from one that never
// held), and ends the handle.
func forceReleaseExtendSaysRevoked(e *env) {
	a, op := e.client(), e.client()
	e.needForceRelease(op)
	la, lop := e.locker(a, locker.Options[string]{}), e.locker(op, locker.Options[string]{})
	const key = "forced-extend"
	h := e.tryLock(la, key, longLease)
	require.NoError(e.t, e.forceRelease(lop, key))
	err := within(e.t, patience, "Extend of a force-released holding", func() error { return h.Extend(e.ctx, longLease) })
	require.ErrorIs(e.t, err, locker.ErrNotHeld)
	require.ErrorIs(e.t, err, locker.ErrRevoked, "the Extend names the force release")
	require.NotErrorIs(e.t, err, locker.ErrBackend)
	awaitClosed(e.t, patience, "Done of the revoked handle", h.Done())
}
