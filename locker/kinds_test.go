package locker_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/backend/memory"
	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/locker/driver"
)

// newRW returns a read-write Locker on its own client of store.
func newRW(t *testing.T, store *memory.Store, opts locker.Options[string]) *locker.RWLocker[string] {
	t.Helper()
	rw, err := locker.NewRW(store.Client(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = rw.Close() })
	return rw
}

// newSem returns a semaphore Locker of limit on its own client of store.
func newSem(t *testing.T, store *memory.Store, limit int, opts locker.Options[string]) *locker.Locker[string] {
	t.Helper()
	s, err := locker.NewSemaphore(store.Client(), limit, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// lockAsync takes a lock in a goroutine and sends the result.
func lockAsync(ctx context.Context, l *locker.Locker[string], key string, opts ...locker.CallOption) <-chan result {
	ch := make(chan result, 1)
	go func() {
		h, err := l.Lock(ctx, key, locker.WaitForever, time.Minute, opts...)
		ch <- result{h, err}
	}()
	return ch
}

type result struct {
	h   *locker.Lock[string]
	err error
}

// pending reports whether ch has no result yet.
func pending(ch <-chan result) bool {
	select {
	case r := <-ch:
		if r.h != nil {
			_ = r.h.Release(context.Background())
		}
		return false
	default:
		return true
	}
}

func TestRWManyReadersWriterExcludes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := memory.New()
		a, b := newRW(t, store, locker.Options[string]{}), newRW(t, store, locker.Options[string]{})
		var readers []*locker.Lock[string]
		for _, rw := range []*locker.RWLocker[string]{a, b, a, b} {
			h, err := rw.Read().TryLock(ctx, "doc", time.Minute)
			require.NoError(t, err, "readers hold together")
			readers = append(readers, h)
		}
		_, err := b.Write().TryLock(ctx, "doc", time.Minute)
		require.ErrorIs(t, err, locker.ErrNotObtained, "a writer is excluded by readers")

		w := lockAsync(ctx, b.Write(), "doc")
		synctest.Wait()
		require.True(t, pending(w))
		for _, h := range readers[:3] {
			require.NoError(t, h.Release(ctx))
		}
		synctest.Wait()
		require.True(t, pending(w), "one reader is left")
		require.NoError(t, readers[3].Release(ctx))
		got := waitFor(t, w, "the writer")
		require.NoError(t, got.err)
		for _, h := range readers {
			assert.Greater(t, got.h.Fence(), h.Fence(), "a write lock's token is greater than every earlier one")
		}
		_, err = a.Read().TryLock(ctx, "doc", time.Minute)
		require.ErrorIs(t, err, locker.ErrNotObtained, "readers are excluded by a writer")
		m, err := locker.New(store.Client(), locker.Options[string]{})
		require.NoError(t, err)
		defer m.Close()
		mh, err := m.TryLock(ctx, "doc", time.Minute)
		require.NoError(t, err, "the key's mutex is another lock")
		require.NoError(t, mh.Release(ctx))
		require.NoError(t, got.h.Release(ctx))
	})
}

func TestRWUpgradeFailsAtOnceWriterReadsDowngrade(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := memory.New()
		rw := newRW(t, store, locker.Options[string]{})
		owner := locker.NewOwner()
		r, err := rw.Read().LockWithRenewal(ctx, "doc", 0, locker.WithOwner(owner))
		require.NoError(t, err)
		start := time.Now()
		_, err = rw.Write().Lock(ctx, "doc", locker.WaitForever, time.Minute, locker.WithOwner(owner))
		require.ErrorIs(t, err, locker.ErrUpgrade)
		assert.Zero(t, time.Since(start), "at once, without waiting (synctest time)")
		require.NoError(t, r.Release(ctx))

		w, err := rw.Write().LockWithRenewal(ctx, "doc", 0, locker.WithOwner(owner))
		require.NoError(t, err)
		other := lockAsync(ctx, rw.Read(), "doc")
		synctest.Wait()
		require.True(t, pending(other))
		r, err = rw.Read().TryLock(ctx, "doc", time.Minute, locker.WithOwner(owner))
		require.NoError(t, err, "a write holder takes the read lock at once, whatever waits")
		assert.Greater(t, r.Fence(), w.Fence())
		require.NoError(t, w.Release(ctx))
		synctest.Wait()
		got := waitFor(t, other, "a reader after the downgrade")
		require.NoError(t, got.err, "the former writer is a reader now: readers share")
		require.NoError(t, r.Err(), "the downgraded read lock is held")
		_, err = rw.Write().TryLock(ctx, "doc", time.Minute)
		require.ErrorIs(t, err, locker.ErrNotObtained)
		require.NoError(t, got.h.Release(ctx))
		require.NoError(t, r.Release(ctx))
	})
}

// TestRWFairWriterBlocksLaterReaders: a waiting writer blocks the readers
// who come after it, and they go in together after it.
func TestRWFairWriterBlocksLaterReaders(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := memory.New()
		rw := newRW(t, store, locker.Options[string]{})
		r0, err := rw.Read().TryLock(ctx, "doc", time.Minute)
		require.NoError(t, err)
		w := lockAsync(ctx, rw.Write(), "doc")
		synctest.Wait()
		r1, r2 := lockAsync(ctx, rw.Read(), "doc"), lockAsync(ctx, rw.Read(), "doc")
		synctest.Wait()
		require.True(t, pending(r1), "a later reader waits behind the writer")
		require.True(t, pending(r2))
		read, _ := store.RWLocks()
		st, err := read.(driver.Inspector).Inspect(ctx, "doc")
		require.NoError(t, err)
		require.Equal(t, 3, st.Waiters)

		require.NoError(t, r0.Release(ctx))
		gw := waitFor(t, w, "the writer")
		require.NoError(t, gw.err)
		synctest.Wait()
		require.True(t, pending(r1), "the readers wait for the writer's release")
		require.NoError(t, gw.h.Release(ctx))
		g1, g2 := waitFor(t, r1, "reader 1"), waitFor(t, r2, "reader 2")
		require.NoError(t, g1.err)
		require.NoError(t, g2.err, "the run of readers goes in together")
		assert.Greater(t, g1.h.Fence(), gw.h.Fence())
		require.NoError(t, g1.h.Release(ctx))
		require.NoError(t, g2.h.Release(ctx))
	})
}

// TestRWForceReleaseThroughReadEndsWriteHolds: a force release through
// the read side frees the read-write lock entirely, and the write holds of
// the same RWLocker learn of it at once.
func TestRWForceReleaseThroughReadEndsWriteHolds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := memory.New()
		rw := newRW(t, store, locker.Options[string]{})
		w, err := rw.Write().LockWithRenewal(ctx, "doc", 0)
		require.NoError(t, err)
		require.NoError(t, rw.Read().ForceRelease(ctx, "doc"))
		select {
		case <-w.Done():
		default:
			t.Fatal("the write hold through the other side did not end locally")
		}
		require.ErrorIs(t, w.Err(), locker.ErrRevoked)
		r, err := rw.Read().TryLock(ctx, "doc", time.Minute)
		require.NoError(t, err, "the lock is free")
		require.NoError(t, r.Release(ctx))
		require.ErrorIs(t, rw.Write().ForceRelease(ctx, "doc"), locker.ErrNotHeld)
	})
}

func TestSemaphorePermits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := memory.New()
		s := newSem(t, store, 3, locker.Options[string]{})
		a, err := s.TryLock(ctx, "pool", time.Minute, locker.WithPermits(2))
		require.NoError(t, err)
		c, err := s.TryLock(ctx, "pool", time.Minute)
		require.NoError(t, err, "one permit by default")
		_, err = s.TryLock(ctx, "pool", time.Minute)
		require.ErrorIs(t, err, locker.ErrNotObtained, "all 3 permits are taken")

		big := lockAsync(ctx, s, "pool", locker.WithPermits(3))
		synctest.Wait()
		small := lockAsync(ctx, s, "pool")
		synctest.Wait()
		require.NoError(t, c.Release(ctx))
		synctest.Wait()
		require.True(t, pending(small), "fair: the small request waits behind the big one")
		require.NoError(t, a.Release(ctx))
		gb := waitFor(t, big, "the 3 permits")
		require.NoError(t, gb.err)
		require.NoError(t, gb.h.Release(ctx))
		gs := waitFor(t, small, "the 1 permit")
		require.NoError(t, gs.err)
		require.NoError(t, gs.h.Release(ctx))
	})
}

func TestSemaphoreValidationAndMismatch(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	_, err := locker.NewSemaphore(store, 0, locker.Options[string]{})
	require.ErrorIs(t, err, locker.ErrInvalidArgument)
	_, err = locker.NewSemaphore(store, locker.MaxPermits+1, locker.Options[string]{})
	require.ErrorIs(t, err, locker.ErrInvalidArgument)
	_, err = locker.NewSemaphore(struct{ driver.Backend }{store}, 2, locker.Options[string]{})
	require.ErrorIs(t, err, locker.ErrUnsupported)
	_, err = locker.NewRW(struct{ driver.Backend }{store}, locker.Options[string]{})
	require.ErrorIs(t, err, locker.ErrUnsupported)

	two, five := newSem(t, store, 2, locker.Options[string]{}), newSem(t, store, 5, locker.Options[string]{})
	for _, n := range []int{0, -1, 3} {
		_, err = two.TryLock(ctx, "pool", time.Minute, locker.WithPermits(n))
		var ae *locker.ArgumentError
		require.ErrorAs(t, err, &ae, "permits %d", n)
		assert.Equal(t, "permits", ae.Arg)
	}
	m, err := locker.New(store, locker.Options[string]{})
	require.NoError(t, err)
	defer m.Close()
	_, err = m.TryLock(ctx, "pool", time.Minute, locker.WithPermits(1))
	require.ErrorIs(t, err, locker.ErrInvalidArgument, "WithPermits is for semaphores")

	owner := locker.NewOwner()
	h, err := two.TryLock(ctx, "pool", time.Minute, locker.WithOwner(owner))
	require.NoError(t, err)
	_, err = five.Lock(ctx, "pool", locker.WaitForever, time.Minute)
	require.ErrorIs(t, err, locker.ErrMismatch, "another limit fails at once")
	_, err = two.Lock(ctx, "pool", locker.WaitForever, time.Minute, locker.WithOwner(owner), locker.WithPermits(2))
	require.ErrorIs(t, err, locker.ErrMismatch, "a re-entry with other permits fails at once")
	again, err := two.TryLock(ctx, "pool", time.Minute, locker.WithOwner(owner))
	require.NoError(t, err, "a re-entry with the same permits")
	require.Equal(t, h.Fence(), again.Fence())
	require.NoError(t, again.Release(ctx))
	require.NoError(t, h.Release(ctx))
	h, err = five.TryLock(ctx, "pool", time.Minute, locker.WithPermits(5))
	require.NoError(t, err, "with nobody holding or waiting, another limit may be declared")
	require.NoError(t, h.Release(ctx))
}

// TestSemaphoreDeadHolderPermitsReturn: the permits of a holder that dies
// come back when its lease ends.
func TestSemaphoreDeadHolderPermitsReturn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := memory.New()
		dead := store.Client()
		ds, err := locker.NewSemaphore(dead, 2, locker.Options[string]{})
		require.NoError(t, err)
		_, err = ds.TryLock(ctx, "pool", 5*time.Second, locker.WithPermits(2))
		require.NoError(t, err)
		dead.Kill()
		_ = ds.Close()

		s := newSem(t, store, 2, locker.Options[string]{})
		start := time.Now()
		h, err := s.Lock(ctx, "pool", time.Minute, time.Minute)
		require.NoError(t, err)
		assert.GreaterOrEqual(t, time.Since(start), 5*time.Second, "the permits came back with the lease's end (synctest time)")
		require.NoError(t, h.Release(ctx))
	})
}

// TestKindsSentinels: the refusals are the driver's values, matched as
// such through the facade's errors.
func TestKindsSentinels(t *testing.T) {
	assert.True(t, errors.Is(locker.ErrUpgrade, driver.ErrUpgrade))
	assert.True(t, errors.Is(locker.ErrMismatch, driver.ErrMismatch))
}

// TestRWAndSemaphoreExclusionUnderLoad: many goroutines of several
// Lockers never break the rules: no reader while another owner writes, no
// two writers, and never more permits in use than the limit.
func TestRWAndSemaphoreExclusionUnderLoad(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := memory.New()
		rws := []*locker.RWLocker[string]{newRW(t, store, locker.Options[string]{}), newRW(t, store, locker.Options[string]{Mode: locker.Barging})}
		sems := []*locker.Locker[string]{newSem(t, store, 4, locker.Options[string]{}), newSem(t, store, 4, locker.Options[string]{})}
		var mu sync.Mutex
		readers, writers, used := 0, 0, 0
		check := func() {
			if writers > 1 || (writers == 1 && readers > 0) || used > 4 {
				t.Errorf("readers %d, writers %d, permits %d", readers, writers, used)
			}
		}
		var wg sync.WaitGroup
		for i := range 24 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range 5 {
					switch (i + j) % 3 {
					case 0, 1:
						write := (i+j)%3 == 0
						side := rws[i%2].Read()
						if write {
							side = rws[i%2].Write()
						}
						h, err := side.Lock(ctx, "doc", locker.WaitForever, time.Minute)
						if err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						if write {
							writers++
						} else {
							readers++
						}
						check()
						mu.Unlock()
						time.Sleep(time.Millisecond)
						mu.Lock()
						if write {
							writers--
						} else {
							readers--
						}
						mu.Unlock()
						if err := h.Release(ctx); err != nil {
							t.Error(err)
						}
					default:
						k := 1 + (i+j)%4
						h, err := sems[i%2].Lock(ctx, "pool", locker.WaitForever, time.Minute, locker.WithPermits(k))
						if err != nil {
							t.Error(err)
							return
						}
						mu.Lock()
						used += k
						check()
						mu.Unlock()
						time.Sleep(time.Millisecond)
						mu.Lock()
						used -= k
						mu.Unlock()
						if err := h.Release(ctx); err != nil {
							t.Error(err)
						}
					}
				}
			}()
		}
		wg.Wait()
		assert.Empty(t, store.Keys(""), "nothing is left in the store")
	})
}
