package conformance

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/locker"
)

// hammer: several clients × goroutines × rounds contend for one name with
// every acquiring call; at most one is ever inside, and the fencing tokens
// of successive holdings strictly increase.
func hammer(e *env, mode locker.Mode) {
	e.mode, e.pinned = mode, true
	const clients, workers, rounds = 3, 3, 12
	const key = "hammer"
	var (
		inside atomic.Int32
		mu     sync.Mutex
		fences []int64
	)
	record := func(f int64) {
		mu.Lock()
		fences = append(fences, f)
		mu.Unlock()
	}
	done := make(chan error, clients*workers)
	for range clients {
		l := e.locker(e.client(), locker.Options[string]{RenewLease: 2 * time.Second})
		for w := range workers {
			go func() { done <- hammerWorker(e.ctx, l, key, w, rounds, &inside, record) }()
		}
	}
	for i := range clients * workers {
		err := await(e.t, time.Minute, fmt.Sprintf("hammer worker %d of %d to finish", i+1, clients*workers), done)
		require.NoError(e.t, err)
	}
	mu.Lock()
	defer mu.Unlock()
	require.Len(e.t, fences, clients*workers*rounds)
	for i := 1; i < len(fences); i++ {
		require.Greater(e.t, fences[i], fences[i-1], "fencing token of holding %d must exceed that of holding %d", i, i-1)
	}
}

// hammerWorker acquires key rounds times, rotating through the acquiring
// calls, and reports the first violation it sees.
func hammerWorker(ctx context.Context, l *locker.Locker[string], key string, kind, rounds int, inside *atomic.Int32, record func(int64)) error {
	for r := range rounds {
		var (
			h   *locker.Lock[string]
			err error
		)
		switch (kind + r) % 3 {
		case 0:
			h, err = l.Lock(ctx, key, locker.WaitForever, longLease)
		case 1:
			h, err = l.LockWithRenewal(ctx, key, locker.WaitForever)
		default:
			h, err = l.Lock(ctx, key, time.Minute, longLease)
		}
		if err != nil {
			return fmt.Errorf("round %d: acquire: %w", r, err)
		}
		if n := inside.Add(1); n != 1 {
			return fmt.Errorf("round %d: %d holders of %q at once", r, n, key)
		}
		record(h.Fence())
		time.Sleep(100 * time.Microsecond)
		inside.Add(-1)
		if err := h.Err(); err != nil {
			return fmt.Errorf("round %d: the held lock reports %w", r, err)
		}
		if err := h.Release(ctx); err != nil {
			return fmt.Errorf("round %d: release: %w", r, err)
		}
	}
	return nil
}

// tryLockTaken: single attempts on a held lock fail with ErrNotObtained and
// leave nothing queued.
func tryLockTaken(e *env) {
	a, b := e.client(), e.client()
	la, lb := e.locker(a, locker.Options[string]{}), e.locker(b, locker.Options[string]{})
	const key = "taken"
	name := e.name(la, key)
	h := e.tryLock(la, key, longLease)
	e.taken(lb, key, "another owner holds it")
	r := within(e.t, patience, "Lock with wait 0", func() acq {
		l, err := lb.Lock(e.ctx, key, 0, longLease)
		return acq{lock: l, err: err}
	})
	requireNotObtained(e.t, r.err)
	r = within(e.t, patience, "LockWithRenewal with wait 0", func() acq {
		l, err := lb.LockWithRenewal(e.ctx, key, 0)
		return acq{lock: l, err: err}
	})
	requireNotObtained(e.t, r.err)
	e.checkWaiters(a, name, 0)
	e.release(h)
	e.release(e.tryLock(lb, key, longLease))
}

// reentrancyCounts: one owner acquires three times; each release undoes
// one, and another client gets the lock only after the last.
func reentrancyCounts(e *env) {
	a, b := e.client(), e.client()
	la, lb := e.locker(a, locker.Options[string]{}), e.locker(b, locker.Options[string]{})
	const key = "reentrant"
	name := e.name(la, key)
	h1 := e.tryLock(la, key, longLease)
	own := locker.WithOwner(h1.Owner())
	h2 := e.lock(la, key, 0, longLease, own)
	h3 := e.lock(la, key, time.Second, longLease, own)
	for i, h := range []*locker.Lock[string]{h2, h3} {
		require.Equal(e.t, h1.Owner(), h.Owner(), "owner of re-entry %d", i+1)
		require.Equal(e.t, h1.Fence(), h.Fence(), "a re-entry keeps the fencing token")
	}
	e.checkState(a, name, h1.Owner(), 3)
	e.taken(lb, key, "its owner holds it three times")

	waiter := acquiring(func() (*locker.Lock[string], error) {
		return lb.Lock(e.ctx, key, locker.WaitForever, longLease)
	})
	e.awaitWaiting(b, name, 1)
	for i, h := range []*locker.Lock[string]{h2, h1} { // not in acquisition order, on purpose
		left := 2 - i
		e.release(h)
		e.checkState(a, name, h1.Owner(), left)
		e.taken(lb, key, fmt.Sprintf("its owner still holds it %d times", left))
		time.Sleep(50 * time.Millisecond) // room for a wrongly woken waiter to show
		require.False(e.t, arrived(waiter), "a waiter acquired while the owner still held the lock %d times", left)
	}
	e.release(h3)
	r := await(e.t, patience, "the waiter to acquire after the last of three releases", waiter)
	require.NoError(e.t, r.err)
	require.Greater(e.t, r.lock.Fence(), h1.Fence(), "a fresh acquisition gets a greater fencing token")
	for _, h := range []*locker.Lock[string]{h1, h2, h3} {
		awaitClosed(e.t, patience, "Done of a released handle to close", h.Done())
		require.ErrorIs(e.t, h.Err(), locker.ErrReleased)
	}
	e.release(r.lock)
}

// distinctOwners: without WithOwner, every acquiring call is a new owner,
// even on the same Locker.
func distinctOwners(e *env) {
	a := e.client()
	la := e.locker(a, locker.Options[string]{})
	h1 := e.tryLock(la, "k", longLease)
	require.NotEmpty(e.t, h1.Owner())
	e.taken(la, "k", "a second call on the same Locker is another owner")
	r := within(e.t, patience, "LockWithRenewal with wait 0", func() acq {
		l, err := la.LockWithRenewal(e.ctx, "k", 0)
		return acq{lock: l, err: err}
	})
	requireNotObtained(e.t, r.err)
	h2 := e.tryLock(la, "other", longLease)
	require.NotEqual(e.t, h1.Owner(), h2.Owner(), "two handles without WithOwner share an owner token")
	e.release(h1)
	e.release(h2)
}

// sharedOwner: an owner token shared deliberately across clients is one
// owner to the store.
func sharedOwner(e *env) {
	a, b := e.client(), e.client()
	la, lb, lc := e.locker(a, locker.Options[string]{}), e.locker(b, locker.Options[string]{}), e.locker(b, locker.Options[string]{})
	const key = "shared"
	name := e.name(la, key)
	owner := locker.NewOwner()
	h1 := e.tryLock(la, key, longLease, locker.WithOwner(owner))
	h2 := e.tryLock(lb, key, longLease, locker.WithOwner(owner))
	require.Equal(e.t, owner, h1.Owner())
	require.Equal(e.t, owner, h2.Owner())
	require.Equal(e.t, h1.Fence(), h2.Fence(), "a re-entry keeps the fencing token")
	e.checkState(a, name, owner, 2)
	e.taken(lc, key, "the shared owner holds it twice")
	e.release(h1)
	e.taken(lc, key, "the shared owner still holds it once")
	e.release(h2)
	e.release(e.tryLock(lc, key, longLease))
}
