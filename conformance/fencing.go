package conformance

import (
	"time"

	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/locker"
)

// checkFence compares the inspected fencing token of name with fence, when
// c can be inspected.
func (e *env) checkFence(c Client, name string, fence int64) {
	e.t.Helper()
	if i, ok := inspector(c); ok {
		require.Equal(e.t, fence, e.state(i, name).Fence, "inspected fencing token of %q", name)
	}
}

// fencingIncreasing: successive acquisitions by any call and client get
// strictly increasing fencing tokens.
func fencingIncreasing(e *env) {
	a, b := e.client(), e.client()
	ls := []*locker.Locker[string]{e.locker(a, locker.Options[string]{}), e.locker(b, locker.Options[string]{})}
	const key = "fence"
	name := e.name(ls[0], key)
	var last int64
	for i := range 8 {
		l := ls[i%2]
		var h *locker.Lock[string]
		switch i % 3 {
		case 0:
			h = e.tryLock(l, key, longLease)
		case 1:
			h = e.lock(l, key, time.Second, longLease)
		default:
			h = e.renewed(l, key, time.Second)
		}
		if i > 0 {
			require.Greater(e.t, h.Fence(), last, "fencing token of acquisition %d", i)
		}
		last = h.Fence()
		e.checkFence(a, name, last)
		e.release(h)
	}
}

// fencingAcrossExpiry: the acquisition after a lease ran out gets a greater token.
func fencingAcrossExpiry(e *env) {
	a, b := e.client(), e.client()
	la, lb := e.locker(a, locker.Options[string]{}), e.locker(b, locker.Options[string]{})
	const key = "fence-expiry"
	h1 := e.tryLock(la, key, shortLease)
	h2 := e.lock(lb, key, patience, longLease)
	require.Greater(e.t, h2.Fence(), h1.Fence(), "fencing token after the previous lease ran out")
	e.release(h2)
}

// fencingAcrossEviction: tokens keep increasing after every record of the
// name was deleted, whether the lock was held or idle.
func fencingAcrossEviction(e *env) {
	e.needWipe()
	a, b := e.client(), e.client()
	la, lb := e.locker(a, locker.Options[string]{}), e.locker(b, locker.Options[string]{})
	const key = "fence-eviction"
	h1 := e.tryLock(la, key, longLease)
	e.wipe(h1.Name())
	h2 := e.tryLock(lb, key, longLease)
	require.Greater(e.t, h2.Fence(), h1.Fence(), "fencing token after the records of a held lock were deleted")
	e.release(h2)
	e.wipe(h2.Name())
	h3 := e.tryLock(la, key, longLease)
	require.Greater(e.t, h3.Fence(), h2.Fence(), "fencing token after the records of an idle lock were deleted")
	e.release(h3)
}

// fencingKeptByReentry: every re-entry, from any client and call, keeps
// the token of the holding; the next fresh acquisition gets a greater one.
func fencingKeptByReentry(e *env) {
	a, b := e.client(), e.client()
	la, lb := e.locker(a, locker.Options[string]{}), e.locker(b, locker.Options[string]{})
	const key = "fence-reentry"
	h1 := e.renewed(la, key, 0)
	own := locker.WithOwner(h1.Owner())
	h2 := e.tryLock(la, key, longLease, own)
	h3 := e.lock(lb, key, 0, longLease, own)
	e.release(h2)
	h4 := e.renewed(lb, key, 0, own)
	for i, h := range []*locker.Lock[string]{h2, h3, h4} {
		require.Equal(e.t, h1.Fence(), h.Fence(), "fencing token of re-entry %d", i+1)
	}
	e.checkFence(a, h1.Name(), h1.Fence())
	for _, h := range []*locker.Lock[string]{h4, h1, h3} {
		e.release(h)
	}
	h5 := e.tryLock(lb, key, longLease)
	require.Greater(e.t, h5.Fence(), h1.Fence(), "fencing token of the next fresh acquisition")
	e.release(h5)
}
