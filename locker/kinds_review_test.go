package locker_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/backend/memory"
	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/locker/driver"
)

// These tests hold the read-write locks and semaphores to the promises of
// their godoc (locker/kinds.go, driver.RWLocker, driver.Semaphorer), edge
// cases first. They run in synctest bubbles: "at once" means without the
// fake clock moving.

func TestReviewRWWriteHolderReadsAtOnceWhateverWaits(t *testing.T) {
	for _, mode := range []locker.Mode{locker.Fair, locker.Barging} {
		t.Run(mode.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				store := memory.New()
				rw := newRW(t, store, locker.Options[string]{Mode: mode})
				other := newRW(t, store, locker.Options[string]{Mode: mode})
				owner := locker.NewOwner()
				w, err := rw.Write().LockWithRenewal(ctx, "doc", 0, locker.WithOwner(owner))
				require.NoError(t, err)
				ww := lockAsync(ctx, other.Write(), "doc")
				synctest.Wait()
				wr := lockAsync(ctx, other.Read(), "doc")
				synctest.Wait()
				start := time.Now()
				r, err := rw.Read().Lock(ctx, "doc", locker.WaitForever, time.Minute, locker.WithOwner(owner))
				require.NoError(t, err, "a write holder takes the read lock at once, whatever waits")
				assert.Zero(t, time.Since(start))
				w2, err := rw.Write().TryLock(ctx, "doc", time.Minute, locker.WithOwner(owner))
				require.NoError(t, err, "the write holder re-enters the write lock, whoever waits")
				assert.Equal(t, w.Fence(), w2.Fence())
				assert.Greater(t, r.Fence(), w.Fence())
				require.NoError(t, w2.Release(ctx))
				require.NoError(t, w.Release(ctx))
				// Downgraded: a reader; the other writer waits for it.
				synctest.Wait()
				require.True(t, pending(ww), "the other writer waits for the downgraded reader")
				require.NoError(t, r.Err())
				if mode == locker.Barging {
					// The other reader shares with the downgraded one.
					gr := waitFor(t, wr, "the other reader")
					require.NoError(t, gr.err)
					require.NoError(t, gr.h.Release(ctx))
				}
				require.NoError(t, r.Release(ctx))
				gw := waitFor(t, ww, "the other writer")
				require.NoError(t, gw.err)
				require.NoError(t, gw.h.Release(ctx))
				if mode == locker.Fair {
					gr := waitFor(t, wr, "the other reader")
					require.NoError(t, gr.err)
					require.NoError(t, gr.h.Release(ctx))
				}
			})
		})
	}
}

func TestReviewRWUpgradeFailsAtOnceEveryWay(t *testing.T) {
	for _, mode := range []locker.Mode{locker.Fair, locker.Barging} {
		t.Run(mode.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				store := memory.New()
				rw := newRW(t, store, locker.Options[string]{Mode: mode})
				other := newRW(t, store, locker.Options[string]{Mode: mode})
				owner := locker.NewOwner()
				r, err := rw.Read().LockWithRenewal(ctx, "doc", 0, locker.WithOwner(owner))
				require.NoError(t, err)
				// Another reader holds too, and a writer waits: nothing of it
				// may make the upgrade wait.
				r2, err := other.Read().TryLock(ctx, "doc", time.Minute)
				require.NoError(t, err)
				ww := lockAsync(ctx, other.Write(), "doc")
				synctest.Wait()
				start := time.Now()
				_, err = rw.Write().LockWithRenewal(ctx, "doc", locker.WaitForever, locker.WithOwner(owner))
				require.ErrorIs(t, err, locker.ErrUpgrade, "LockWithRenewal")
				_, err = rw.Write().Lock(ctx, "doc", time.Hour, time.Minute, locker.WithOwner(owner))
				require.ErrorIs(t, err, locker.ErrUpgrade, "Lock")
				_, err = rw.Write().TryLock(ctx, "doc", time.Minute, locker.WithOwner(owner))
				require.ErrorIs(t, err, locker.ErrUpgrade, "TryLock")
				called := false
				err = rw.Write().Do(ctx, "doc", locker.WaitForever, func(context.Context, *locker.Lock[string]) error {
					called = true
					return nil
				}, locker.WithOwner(owner))
				require.ErrorIs(t, err, locker.ErrUpgrade, "Do")
				assert.False(t, called)
				_, err = rw.Write().LockAll(ctx, []string{"doc", "other"}, locker.WaitForever, time.Minute, locker.WithOwner(owner))
				require.ErrorIs(t, err, locker.ErrUpgrade, "LockAll")
				assert.Zero(t, time.Since(start), "every refusal at once")
				require.NoError(t, r.Err(), "the read lock is untouched")

				// A reader's re-entry goes in at once, though a writer waits.
				again, err := rw.Read().Lock(ctx, "doc", locker.WaitForever, time.Minute, locker.WithOwner(owner))
				require.NoError(t, err, "a reader re-enters whoever waits")
				assert.Equal(t, r.Fence(), again.Fence())
				assert.Zero(t, time.Since(start))
				require.NoError(t, again.Release(ctx))
				require.NoError(t, r.Release(ctx))
				require.NoError(t, r2.Release(ctx))
				gw := waitFor(t, ww, "the writer")
				require.NoError(t, gw.err)
				require.NoError(t, gw.h.Release(ctx))
			})
		})
	}
}

// TestReviewPermitsValidatedBeforeTheStore: bad permits are an
// *ArgumentError; the store (a killed client, which fails every call) is
// not asked.
func TestReviewPermitsValidatedBeforeTheStore(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	c := store.Client()
	sem, err := locker.NewSemaphore(c, 3, locker.Options[string]{})
	require.NoError(t, err)
	defer sem.Close()
	rw, err := locker.NewRW(c, locker.Options[string]{})
	require.NoError(t, err)
	defer rw.Close()
	m, err := locker.New(c, locker.Options[string]{})
	require.NoError(t, err)
	defer m.Close()
	c.Kill()
	check := func(what string, err error) {
		t.Helper()
		var ae *locker.ArgumentError
		require.ErrorAs(t, err, &ae, what)
		assert.Equal(t, "permits", ae.Arg, what)
		assert.NotErrorIs(t, err, memory.ErrKilled, what)
	}
	for _, n := range []int{0, -1, 4} {
		_, err = sem.TryLock(ctx, "pool", time.Minute, locker.WithPermits(n))
		check("semaphore TryLock", err)
		_, err = sem.LockWithRenewal(ctx, "pool", locker.WaitForever, locker.WithPermits(n))
		check("semaphore LockWithRenewal", err)
		_, err = sem.LockAll(ctx, []string{"a", "b"}, time.Second, time.Minute, locker.WithPermits(n))
		check("semaphore LockAll", err)
		err = sem.Do(ctx, "pool", 0, func(context.Context, *locker.Lock[string]) error { return nil }, locker.WithPermits(n))
		check("semaphore Do", err)
	}
	for name, l := range map[string]*locker.Locker[string]{"mutex": m, "read": rw.Read(), "write": rw.Write()} {
		_, err = l.TryLock(ctx, "k", time.Minute, locker.WithPermits(1))
		check(name+" TryLock", err)
		_, err = l.TryLockAll(ctx, []string{"a", "b"}, time.Minute, locker.WithPermits(1))
		check(name+" TryLockAll", err)
	}
	// Sanity: a valid call does reach the killed store.
	_, err = sem.TryLock(ctx, "pool", time.Minute, locker.WithPermits(3))
	require.ErrorIs(t, err, memory.ErrKilled)
}

func TestReviewSemaphoreLimits(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	for _, limit := range []int{0, -1, locker.MaxPermits + 1} {
		_, err := locker.NewSemaphore(store, limit, locker.Options[string]{})
		var ae *locker.ArgumentError
		require.ErrorAs(t, err, &ae, "limit %d", limit)
		assert.Equal(t, "limit", ae.Arg)
	}
	_, err := locker.NewSemaphore(nil, 2, locker.Options[string]{})
	require.ErrorIs(t, err, locker.ErrInvalidArgument)
	_, err = locker.NewRW(nil, locker.Options[string]{})
	require.ErrorIs(t, err, locker.ErrInvalidArgument)
	// A fair Locker needs a queue; a backend whose views have none is
	// ErrUnsupported.
	_, err = locker.NewSemaphore(semNoQueue{store}, 2, locker.Options[string]{})
	require.ErrorIs(t, err, locker.ErrUnsupported)
	_, err = locker.NewRW(rwNoQueue{semNoQueue{store}}, locker.Options[string]{})
	require.ErrorIs(t, err, locker.ErrUnsupported)

	big := newSem(t, store, locker.MaxPermits, locker.Options[string]{})
	h, err := big.TryLock(ctx, "pool", time.Minute, locker.WithPermits(locker.MaxPermits))
	require.NoError(t, err, "MaxPermits of MaxPermits")
	_, err = big.TryLock(ctx, "pool", time.Minute)
	require.ErrorIs(t, err, locker.ErrNotObtained)
	require.NoError(t, h.Release(ctx))
}

// semNoQueue and rwNoQueue hide the Queue of the store's views.
type semNoQueue struct{ s *memory.Store }

func (b semNoQueue) Acquire(ctx context.Context, r driver.AcquireRequest) (driver.AcquireResult, error) {
	return b.s.Acquire(ctx, r)
}
func (b semNoQueue) Release(ctx context.Context, n, o, t string) (bool, int, error) {
	return b.s.Release(ctx, n, o, t)
}
func (b semNoQueue) Extend(ctx context.Context, n, o string, l time.Duration) (bool, error) {
	return b.s.Extend(ctx, n, o, l)
}
func (b semNoQueue) Semaphores() driver.Backend { return struct{ driver.Backend }{b.s.Semaphores()} }

type rwNoQueue struct{ semNoQueue }

func (b rwNoQueue) RWLocks() (driver.Backend, driver.Backend) {
	r, w := b.s.RWLocks()
	return struct{ driver.Backend }{r}, struct{ driver.Backend }{w}
}

func TestReviewSemaphoreMismatchAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := memory.New()
		three, four := newSem(t, store, 3, locker.Options[string]{}), newSem(t, store, 4, locker.Options[string]{})
		owner := locker.NewOwner()
		h, err := three.LockWithRenewal(ctx, "pool", 0, locker.WithOwner(owner), locker.WithPermits(2))
		require.NoError(t, err)
		start := time.Now()
		_, err = three.LockWithRenewal(ctx, "pool", locker.WaitForever, locker.WithOwner(owner), locker.WithPermits(1))
		require.ErrorIs(t, err, locker.ErrMismatch, "re-entry with other permits, LockWithRenewal")
		err = three.Do(ctx, "pool", locker.WaitForever, func(context.Context, *locker.Lock[string]) error { return nil }, locker.WithOwner(owner), locker.WithPermits(3))
		require.ErrorIs(t, err, locker.ErrMismatch, "Do")
		_, err = four.LockWithRenewal(ctx, "pool", locker.WaitForever)
		require.ErrorIs(t, err, locker.ErrMismatch, "another limit")
		assert.Zero(t, time.Since(start))
		require.NoError(t, h.Release(ctx))

		// A waiter alone records the limit.
		full, err := three.TryLock(ctx, "pool", time.Minute, locker.WithPermits(3))
		require.NoError(t, err)
		waiter := lockAsync(ctx, three, "pool")
		synctest.Wait()
		require.NoError(t, full.Release(ctx))
		g := waitFor(t, waiter, "the waiter")
		require.NoError(t, g.err)
		_, err = four.TryLock(ctx, "pool", time.Minute)
		require.ErrorIs(t, err, locker.ErrMismatch)
		require.NoError(t, g.h.Release(ctx))
	})
}

// TestReviewForceReleaseEndsEveryHolding: ForceRelease through Read()
// ends the write hold and the read holds of every owner, through this
// RWLocker at once and through another at its next renewal, each with
// ErrRevoked; the lock is then free, and a second force release is
// ErrNotHeld on either side.
func TestReviewForceReleaseEndsEveryHolding(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := memory.New()
		rw, far := newRW(t, store, locker.Options[string]{}), newRW(t, store, locker.Options[string]{})
		require.ErrorIs(t, rw.Read().ForceRelease(ctx, "doc"), locker.ErrNotHeld, "a free lock")
		require.ErrorIs(t, rw.Write().ForceRelease(ctx, "doc"), locker.ErrNotHeld, "a free lock")
		owner := locker.NewOwner()
		w, err := rw.Write().LockWithRenewal(ctx, "doc", 0, locker.WithOwner(owner))
		require.NoError(t, err)
		r, err := rw.Read().LockWithRenewal(ctx, "doc", 0, locker.WithOwner(owner))
		require.NoError(t, err)
		require.NoError(t, w.Release(ctx))
		r2, err := far.Read().LockWithRenewal(ctx, "doc", 0)
		require.NoError(t, err)
		fw, err := far.Write().LockWithRenewal(ctx, "other", 0) // another key: untouched
		require.NoError(t, err)
		fixed, err := far.Read().TryLock(ctx, "doc", time.Minute)
		require.NoError(t, err)
		waiter := lockAsync(ctx, far.Write(), "doc")
		synctest.Wait()

		require.NoError(t, rw.Read().ForceRelease(ctx, "doc"))
		select {
		case <-r.Done(): // through rw: at once
		default:
			t.Fatal("the read hold through the RWLocker that force released did not end at once")
		}
		select {
		case <-r2.Done(): // through far: at its next renewal
		case <-time.After(time.Minute):
			t.Fatal("the read hold through another RWLocker did not learn of the force release")
		}
		for _, h := range []*locker.Lock[string]{r, r2} {
			require.ErrorIs(t, h.Err(), locker.ErrLost)
			require.ErrorIs(t, h.Err(), locker.ErrRevoked)
		}
		err = fixed.Extend(ctx, time.Minute)
		require.ErrorIs(t, err, locker.ErrNotHeld, "a revoked fixed read hold")
		require.ErrorIs(t, err, locker.ErrRevoked)
		require.ErrorIs(t, fixed.Err(), locker.ErrLost, "Extend ends the handle")
		require.NoError(t, fw.Err())
		g := waitFor(t, waiter, "the writer after the force release")
		require.NoError(t, g.err)
		require.NoError(t, g.h.Release(ctx))
		require.NoError(t, fw.Release(ctx))
		require.ErrorIs(t, rw.Write().ForceRelease(ctx, "doc"), locker.ErrNotHeld)
	})
}

func TestReviewSemaphoreForceReleaseAndDo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := memory.New()
		s, far := newSem(t, store, 3, locker.Options[string]{}), newSem(t, store, 3, locker.Options[string]{})
		require.ErrorIs(t, s.ForceRelease(ctx, "pool"), locker.ErrNotHeld)
		err := s.Do(ctx, "pool", 0, func(ctx context.Context, l *locker.Lock[string]) error {
			_, err := far.TryLock(ctx, "pool", time.Minute, locker.WithPermits(2))
			require.ErrorIs(t, err, locker.ErrNotObtained, "Do holds its 2 permits")
			h, err := far.TryLock(ctx, "pool", time.Minute)
			require.NoError(t, err)
			require.NoError(t, far.ForceRelease(ctx, "pool"))
			<-ctx.Done() // the loss cancels fn's ctx
			require.ErrorIs(t, h.Err(), locker.ErrRevoked, "through far: at once")
			return nil
		}, locker.WithPermits(2))
		require.ErrorIs(t, err, locker.ErrLost)
		require.ErrorIs(t, err, locker.ErrRevoked)
		all, err := s.LockAll(ctx, []string{"pool", "p2"}, time.Second, time.Minute, locker.WithPermits(3))
		require.NoError(t, err, "every permit is back")
		_, err = far.TryLock(ctx, "p2", time.Minute)
		require.ErrorIs(t, err, locker.ErrNotObtained, "LockAll took 3 permits of each")
		require.NoError(t, all.Release(ctx))
		all, err = s.TryLockAll(ctx, []string{"pool", "p2"}, time.Minute, locker.WithPermits(2))
		require.NoError(t, err)
		one, err := far.TryLockAll(ctx, []string{"pool", "p2"}, time.Minute)
		require.NoError(t, err, "1 of 3 is left on each")
		require.NoError(t, one.Release(ctx))
		require.NoError(t, all.Release(ctx))
	})
}

func TestReviewRWDoBothSides(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := memory.New()
		rw := newRW(t, store, locker.Options[string]{})
		err := rw.Read().Do(ctx, "doc", 0, func(ctx context.Context, l *locker.Lock[string]) error {
			r2, err := rw.Read().TryLock(ctx, "doc", time.Minute)
			require.NoError(t, err, "readers share")
			require.NoError(t, r2.Release(ctx))
			_, err = rw.Write().TryLock(ctx, "doc", time.Minute)
			require.ErrorIs(t, err, locker.ErrNotObtained)
			return nil
		})
		require.NoError(t, err)
		err = rw.Write().Do(ctx, "doc", 0, func(ctx context.Context, l *locker.Lock[string]) error {
			_, err := rw.Read().TryLock(ctx, "doc", time.Minute)
			require.ErrorIs(t, err, locker.ErrNotObtained)
			r, err := rw.Read().TryLock(ctx, "doc", time.Minute, locker.WithOwner(l.Owner()))
			require.NoError(t, err, "the writer reads")
			return r.Release(ctx)
		})
		require.NoError(t, err)
	})
}

// TestReviewFencesAcrossSides: a write lock's token is greater than every
// earlier read token, and a read lock's greater than every earlier write.
func TestReviewFencesAcrossSides(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := memory.New()
		rw := newRW(t, store, locker.Options[string]{})
		var last int64
		for range 3 {
			var rs []*locker.Lock[string]
			for range 3 {
				r, err := rw.Read().TryLock(ctx, "doc", time.Minute)
				require.NoError(t, err)
				assert.Greater(t, r.Fence(), last)
				rs = append(rs, r)
			}
			assert.NotEqual(t, rs[0].Fence(), rs[1].Fence(), "distinct reader tokens")
			w := lockAsync(ctx, rw.Write(), "doc")
			synctest.Wait()
			for _, r := range rs {
				require.NoError(t, r.Release(ctx))
			}
			g := waitFor(t, w, "the writer")
			require.NoError(t, g.err)
			for _, r := range rs {
				assert.Greater(t, g.h.Fence(), r.Fence())
			}
			last = g.h.Fence()
			require.NoError(t, g.h.Release(ctx))
		}
	})
}

// TestReviewReaderLeaseFreesWriter: a reader's fixed lease ends, and the
// writer that waits gets in when it does.
func TestReviewReaderLeaseFreesWriter(t *testing.T) {
	for _, mode := range []locker.Mode{locker.Fair, locker.Barging} {
		t.Run(mode.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				store := memory.New()
				rw := newRW(t, store, locker.Options[string]{Mode: mode})
				r, err := rw.Read().TryLock(ctx, "doc", 3*time.Second)
				require.NoError(t, err)
				start := time.Now()
				w, err := rw.Write().Lock(ctx, "doc", time.Minute, time.Minute)
				require.NoError(t, err)
				assert.GreaterOrEqual(t, time.Since(start), 3*time.Second)
				assert.Less(t, time.Since(start), 4*time.Second, "the writer goes in about when the lease ends (synctest time)")
				waitFor(t, r.Done(), "the reader's loss")
				require.ErrorIs(t, r.Err(), locker.ErrLost)
				require.NoError(t, w.Release(ctx))
			})
		})
	}
}

func TestReviewCloseEndsWaitersOnBothSides(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := memory.New()
		holder := newRW(t, store, locker.Options[string]{})
		rw, err := locker.NewRW(store.Client(), locker.Options[string]{})
		require.NoError(t, err)
		r, err := holder.Read().TryLock(ctx, "a", time.Minute)
		require.NoError(t, err)
		w, err := holder.Write().TryLock(ctx, "b", time.Minute)
		require.NoError(t, err)
		ww := lockAsync(ctx, rw.Write(), "a")
		wr := lockAsync(ctx, rw.Read(), "b")
		synctest.Wait()
		require.True(t, pending(ww))
		require.True(t, pending(wr))
		require.NoError(t, rw.Close())
		require.ErrorIs(t, waitFor(t, ww, "the writer").err, locker.ErrClosed)
		require.ErrorIs(t, waitFor(t, wr, "the reader").err, locker.ErrClosed)
		_, err = rw.Read().TryLock(ctx, "c", time.Minute)
		require.ErrorIs(t, err, locker.ErrClosed)
		_, err = rw.Write().TryLock(ctx, "c", time.Minute)
		require.ErrorIs(t, err, locker.ErrClosed)
		require.NoError(t, rw.Close(), "idempotent")
		require.NoError(t, r.Release(ctx))
		require.NoError(t, w.Release(ctx))
		read, _ := store.RWLocks()
		for _, k := range []string{"a", "b"} {
			st, err := read.(driver.Inspector).Inspect(ctx, k)
			require.NoError(t, err)
			assert.Zero(t, st.Waiters, "the closed waiters left the queue")
		}
	})
}

// TestReviewFairRWRQueue: a writer holds; R1, W2, R3 queue. On release R1
// goes in, R3 waits behind W2.
func TestReviewFairRWRQueue(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := memory.New()
		rw := newRW(t, store, locker.Options[string]{})
		w0, err := rw.Write().TryLock(ctx, "doc", time.Minute)
		require.NoError(t, err)
		r1 := lockAsync(ctx, rw.Read(), "doc")
		synctest.Wait()
		w2 := lockAsync(ctx, rw.Write(), "doc")
		synctest.Wait()
		r3 := lockAsync(ctx, rw.Read(), "doc")
		synctest.Wait()
		require.NoError(t, w0.Release(ctx))
		g1 := waitFor(t, r1, "R1")
		require.NoError(t, g1.err)
		synctest.Wait()
		require.True(t, pending(w2))
		require.True(t, pending(r3), "R3 waits behind W2")
		require.NoError(t, g1.h.Release(ctx))
		g2 := waitFor(t, w2, "W2")
		require.NoError(t, g2.err)
		synctest.Wait()
		require.True(t, pending(r3))
		require.NoError(t, g2.h.Release(ctx))
		g3 := waitFor(t, r3, "R3")
		require.NoError(t, g3.err)
		require.NoError(t, g3.h.Release(ctx))
	})
}

// TestReviewGiveUpLetsTheNextInAtOnce: a waiter that gives up leaves the
// queue, and the waiters behind it that fit get in at once, not after a
// fallback interval.
func TestReviewGiveUpLetsTheNextInAtOnce(t *testing.T) {
	t.Run("SemaphoreCancel", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx := context.Background()
			store := memory.New()
			s := newSem(t, store, 3, locker.Options[string]{})
			one, err := s.TryLock(ctx, "pool", time.Minute)
			require.NoError(t, err)
			bctx, cancel := context.WithCancel(ctx)
			big := lockAsync(bctx, s, "pool", locker.WithPermits(3))
			synctest.Wait()
			small := lockAsync(ctx, s, "pool")
			synctest.Wait()
			require.True(t, pending(small), "the head asking 3 of 3 blocks a request for 1")
			start := time.Now()
			cancel()
			require.ErrorIs(t, waitFor(t, big, "the big waiter").err, context.Canceled)
			g := waitFor(t, small, "the small waiter")
			require.NoError(t, g.err)
			assert.Zero(t, time.Since(start), "at once")
			require.NoError(t, g.h.Release(ctx))
			require.NoError(t, one.Release(ctx))
		})
	})
	t.Run("WriterWaitElapses", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx := context.Background()
			store := memory.New()
			rw := newRW(t, store, locker.Options[string]{})
			r0, err := rw.Read().TryLock(ctx, "doc", time.Hour)
			require.NoError(t, err)
			w := make(chan error, 1)
			go func() {
				_, err := rw.Write().Lock(ctx, "doc", 2*time.Second, time.Minute)
				w <- err
			}()
			synctest.Wait()
			r1, r2 := lockAsync(ctx, rw.Read(), "doc"), lockAsync(ctx, rw.Read(), "doc")
			synctest.Wait()
			require.True(t, pending(r1))
			start := time.Now()
			require.ErrorIs(t, waitFor(t, w, "the writer"), locker.ErrNotObtained)
			g1, g2 := waitFor(t, r1, "R1"), waitFor(t, r2, "R2")
			require.NoError(t, g1.err)
			require.NoError(t, g2.err)
			assert.Equal(t, 2*time.Second, time.Since(start).Round(time.Second), "at the writer's give-up, not after a fallback")
			assert.Less(t, time.Since(start), 2*time.Second+100*time.Millisecond)
			require.NoError(t, g1.h.Release(ctx))
			require.NoError(t, g2.h.Release(ctx))
			require.NoError(t, r0.Release(ctx))
		})
	})
	t.Run("SemaphoreBarging", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx := context.Background()
			store := memory.New()
			s := newSem(t, store, 3, locker.Options[string]{Mode: locker.Barging})
			one, err := s.TryLock(ctx, "pool", time.Minute)
			require.NoError(t, err)
			big := lockAsync(ctx, s, "pool", locker.WithPermits(3))
			synctest.Wait()
			h, err := s.TryLock(ctx, "pool", time.Minute)
			require.NoError(t, err, "barging: a request that fits goes in")
			require.NoError(t, h.Release(ctx))
			require.NoError(t, one.Release(ctx))
			g := waitFor(t, big, "the big waiter")
			require.NoError(t, g.err)
			require.NoError(t, g.h.Release(ctx))
		})
	})
}

func TestReviewLockAccessorsOnKinds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := memory.New()
		rw := newRW(t, store, locker.Options[string]{Namespace: "ns"})
		s := newSem(t, store, 2, locker.Options[string]{Namespace: "ns"})
		owner := locker.NewOwner()
		start := time.Now()
		for _, l := range []*locker.Locker[string]{rw.Read(), s} {
			h, err := l.TryLock(ctx, "k", time.Minute, locker.WithOwner(owner))
			require.NoError(t, err)
			assert.Equal(t, owner, h.Owner())
			assert.Equal(t, "k", h.Key())
			assert.Equal(t, start.Add(time.Minute), h.Deadline())
			require.NoError(t, h.Extend(ctx, 2*time.Minute))
			assert.Equal(t, start.Add(2*time.Minute), h.Deadline())
			require.NoError(t, h.Err())
			require.NoError(t, h.Release(ctx))
			require.ErrorIs(t, h.Err(), locker.ErrReleased)
			require.ErrorIs(t, h.Release(ctx), locker.ErrNotHeld)
		}
	})
}

// TestReviewBargingWaiterDoesNotRecordTheLimit: in Barging mode a waiter
// is not in the store, so it does not keep its limit recorded: another
// limit is declared once the holders are gone, and the waiter fails with
// ErrMismatch at its next attempt.
func TestReviewBargingWaiterDoesNotRecordTheLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := memory.New()
		opts := locker.Options[string]{Mode: locker.Barging}
		holder, four := newSem(t, store, 3, opts), newSem(t, store, 4, opts)
		wc := store.Client()
		waiting, err := locker.NewSemaphore(wc, 3, opts)
		require.NoError(t, err)
		defer waiting.Close()
		h, err := holder.TryLock(ctx, "pool", time.Minute, locker.WithPermits(3))
		require.NoError(t, err)
		waiter := lockAsync(ctx, waiting, "pool")
		synctest.Wait()
		_, err = four.TryLock(ctx, "pool", time.Minute)
		require.ErrorIs(t, err, locker.ErrMismatch, "the holder records the limit")
		resume := wc.Stall() // the waiter's next attempt waits
		require.NoError(t, h.Release(ctx))
		h4, err := four.TryLock(ctx, "pool", time.Minute, locker.WithPermits(4))
		require.NoError(t, err, "nobody holds, and the barging waiter is not recorded")
		resume()
		g := waitFor(t, waiter, "the barging waiter")
		require.ErrorIs(t, g.err, locker.ErrMismatch, "the waiter learns of the other limit")
		require.NoError(t, h4.Release(ctx))
	})
}

// TestReviewQueuedWriterWhoReadsMeanwhileIsRefused: an owner queued for
// the write lock that takes a read lock meanwhile (through a Barging
// Locker, which ignores the queue) is a reader asking to upgrade: when its
// turn comes the store must not grant the write (two such owners would
// wait for each other for ever); its call fails with ErrUpgrade and the
// queue moves on.
func TestReviewQueuedWriterWhoReadsMeanwhileIsRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := memory.New()
		fair := newRW(t, store, locker.Options[string]{})
		barge := newRW(t, store, locker.Options[string]{Mode: locker.Barging})
		c, err := fair.Read().TryLock(ctx, "doc", time.Minute)
		require.NoError(t, err)
		a, b := locker.NewOwner(), locker.NewOwner()
		wa := lockAsync(ctx, fair.Write(), "doc", locker.WithOwner(a))
		synctest.Wait()
		wb := lockAsync(ctx, fair.Write(), "doc", locker.WithOwner(b))
		synctest.Wait()
		ra, err := barge.Read().TryLock(ctx, "doc", time.Minute, locker.WithOwner(a))
		require.NoError(t, err)
		rb, err := barge.Read().TryLock(ctx, "doc", time.Minute, locker.WithOwner(b))
		require.NoError(t, err)
		require.NoError(t, c.Release(ctx))
		ga, gb := waitFor(t, wa, "a's write"), waitFor(t, wb, "b's write")
		require.ErrorIs(t, ga.err, locker.ErrUpgrade, "a holds a read lock: no upgrade through the queue")
		require.ErrorIs(t, gb.err, locker.ErrUpgrade)
		require.NoError(t, ra.Release(ctx))
		require.NoError(t, rb.Release(ctx))
		w, err := fair.Write().TryLock(ctx, "doc", time.Minute)
		require.NoError(t, err, "nothing is left behind")
		require.NoError(t, w.Release(ctx))
	})
}

// TestReviewQueuedWriterWhoReadsMeanwhileAlone: as above with one such
// owner, whom nothing else blocks: the grant must not upgrade it either.
func TestReviewQueuedWriterWhoReadsMeanwhileAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store := memory.New()
		fair := newRW(t, store, locker.Options[string]{})
		barge := newRW(t, store, locker.Options[string]{Mode: locker.Barging})
		c, err := fair.Read().TryLock(ctx, "doc", time.Minute)
		require.NoError(t, err)
		a := locker.NewOwner()
		wa := lockAsync(ctx, fair.Write(), "doc", locker.WithOwner(a))
		synctest.Wait()
		ra, err := barge.Read().TryLock(ctx, "doc", time.Minute, locker.WithOwner(a))
		require.NoError(t, err)
		require.NoError(t, c.Release(ctx))
		ga := waitFor(t, wa, "a's write")
		if ga.h != nil {
			_ = ga.h.Release(ctx)
		}
		require.ErrorIs(t, ga.err, locker.ErrUpgrade, "a holds a read lock: no upgrade through the queue")
		require.NoError(t, ra.Release(ctx))
	})
}
