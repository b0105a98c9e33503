package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/internal/redisstore"
	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/locker/driver"
)

// The review's tests of the read-write lock and semaphore godoc through
// the facade on Redis, for both adapters: the cases of
// locker/kinds_review_test.go (memory) where a Redis difference may hide.

// slow makes every wake-up but a store's own unlikely to come in time: a
// waiter that gets in within soon was woken (granted) by the store.
var slow = locker.Options[string]{WaiterTTL: time.Minute, FallbackInterval: time.Minute}

const soon = 5 * time.Second // far below slow's re-checks

type rres struct {
	h   *locker.Lock[string]
	err error
}

func rlockAsync(ctx context.Context, l *locker.Locker[string], key string, opts ...locker.CallOption) <-chan rres {
	ch := make(chan rres, 1)
	go func() {
		h, err := l.Lock(ctx, key, locker.WaitForever, time.Minute, opts...)
		ch <- rres{h, err}
	}()
	return ch
}

// queued waits until the fair queue of name on v has n waiters.
func queued(t *testing.T, v driver.Backend, name string, n int) {
	t.Helper()
	require.Eventually(t, func() bool {
		st, err := v.(driver.Inspector).Inspect(context.Background(), name)
		return err == nil && st.Waiters == n
	}, patience, time.Millisecond, "%d waiters on %s", n, name)
}

func got(t *testing.T, ch <-chan rres, within time.Duration, what string) *locker.Lock[string] {
	t.Helper()
	select {
	case r := <-ch:
		require.NoError(t, r.err, what)
		return r.h
	case <-time.After(within):
		t.Fatalf("%s: not within %v", what, within)
	}
	return nil
}

func still(t *testing.T, ch <-chan rres, what string) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("%s: returned %v, %v", what, r.h, r.err)
	case <-time.After(50 * time.Millisecond):
	}
}

func newRWT(t *testing.T, b driver.Backend, opts locker.Options[string]) *locker.RWLocker[string] {
	rw, err := locker.NewRW(b, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = rw.Close() })
	return rw
}

func newSemT(t *testing.T, b driver.Backend, limit int, opts locker.Options[string]) *locker.Locker[string] {
	s, err := locker.NewSemaphore(b, limit, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestReviewKindWriterReadsUpgradeAndReentryAtOnce(t *testing.T) {
	forEachAdapter(t, func(t *testing.T, s *redisstore.Store) {
		for _, mode := range []locker.Mode{locker.Fair, locker.Barging} {
			t.Run(mode.String(), func(t *testing.T) {
				ctx := ctxT(t)
				opts := slow
				opts.Mode = mode
				rw, other := newRWT(t, s, opts), newRWT(t, s, opts)
				read, _ := s.RWLocks()
				owner := locker.NewOwner()
				key := "wr-" + mode.String()
				w, err := rw.Write().LockWithRenewal(ctx, key, 0, locker.WithOwner(owner))
				require.NoError(t, err)
				ww := rlockAsync(ctx, other.Write(), key)
				if mode == locker.Fair {
					queued(t, read, key, 1)
				} else {
					still(t, ww, "the other writer")
				}
				wr := rlockAsync(ctx, other.Read(), key)
				if mode == locker.Fair {
					queued(t, read, key, 2)
				} else {
					still(t, wr, "the other reader")
				}
				r, err := rw.Read().TryLock(ctx, key, time.Minute, locker.WithOwner(owner))
				require.NoError(t, err, "a write holder takes the read lock at once, whatever waits")
				assert.Greater(t, r.Fence(), w.Fence())
				w2, err := rw.Write().TryLock(ctx, key, time.Minute, locker.WithOwner(owner))
				require.NoError(t, err, "the writer re-enters whoever waits")
				require.NoError(t, w2.Release(ctx))
				require.NoError(t, w.Release(ctx))
				still(t, ww, "the other writer waits for the downgraded reader")
				if mode == locker.Barging {
					require.NoError(t, got(t, wr, soon, "the other reader shares").Release(ctx))
				}

				// The downgraded reader: upgrade refused at once, re-entry at once.
				_, err = rw.Write().LockWithRenewal(ctx, key, locker.WaitForever, locker.WithOwner(owner))
				require.ErrorIs(t, err, locker.ErrUpgrade)
				_, err = rw.Write().LockAll(ctx, []string{key, key + "x"}, locker.WaitForever, time.Minute, locker.WithOwner(owner))
				require.ErrorIs(t, err, locker.ErrUpgrade)
				again, err := rw.Read().Lock(ctx, key, locker.WaitForever, time.Minute, locker.WithOwner(owner))
				require.NoError(t, err, "a reader re-enters though a writer waits")
				assert.Equal(t, r.Fence(), again.Fence())
				require.NoError(t, again.Release(ctx))
				require.NoError(t, r.Release(ctx))
				gw := got(t, ww, soon, "the other writer")
				require.NoError(t, gw.Release(ctx))
				if mode == locker.Fair {
					require.NoError(t, got(t, wr, soon, "the other reader").Release(ctx))
				}
			})
		}
	})
}

func TestReviewKindFairQueueOrder(t *testing.T) {
	forEachAdapter(t, func(t *testing.T, s *redisstore.Store) {
		ctx := ctxT(t)
		rw := newRWT(t, s, slow)
		read, _ := s.RWLocks()
		w0, err := rw.Write().TryLock(ctx, "q", time.Minute)
		require.NoError(t, err)
		r1 := rlockAsync(ctx, rw.Read(), "q")
		queued(t, read, "q", 1)
		w2 := rlockAsync(ctx, rw.Write(), "q")
		queued(t, read, "q", 2)
		r3 := rlockAsync(ctx, rw.Read(), "q")
		queued(t, read, "q", 3)
		require.NoError(t, w0.Release(ctx))
		h1 := got(t, r1, soon, "R1")
		still(t, r3, "R3 waits behind W2")
		require.NoError(t, h1.Release(ctx))
		h2 := got(t, w2, soon, "W2")
		assert.Greater(t, h2.Fence(), h1.Fence())
		still(t, r3, "R3 waits for W2's release")
		require.NoError(t, h2.Release(ctx))
		h3 := got(t, r3, soon, "R3")
		assert.Greater(t, h3.Fence(), h2.Fence())
		require.NoError(t, h3.Release(ctx))

		// A semaphore head asking 3 of 3 while 1 is in use blocks a request
		// for 1; when it gives up, the request for 1 gets in at once.
		sem := newSemT(t, s, 3, slow)
		sv := s.Semaphores()
		one, err := sem.TryLock(ctx, "p", time.Minute)
		require.NoError(t, err)
		bctx, cancel := context.WithCancel(ctx)
		big := rlockAsync(bctx, sem, "p", locker.WithPermits(3))
		queued(t, sv, "p", 1)
		small := rlockAsync(ctx, sem, "p")
		queued(t, sv, "p", 2)
		still(t, small, "the request for 1 waits behind the head")
		cancel()
		select {
		case r := <-big:
			require.ErrorIs(t, r.err, context.Canceled)
		case <-time.After(soon):
			t.Fatal("the big waiter did not give up")
		}
		require.NoError(t, got(t, small, soon, "the request for 1 after the head left").Release(ctx))
		require.NoError(t, one.Release(ctx))

		// A writer whose wait elapses lets the readers behind it in at once.
		r0, err := rw.Read().TryLock(ctx, "g", time.Minute)
		require.NoError(t, err)
		wdone := make(chan error, 1)
		go func() {
			_, err := rw.Write().Lock(ctx, "g", 300*time.Millisecond, time.Minute)
			wdone <- err
		}()
		queued(t, read, "g", 1)
		ra, rb := rlockAsync(ctx, rw.Read(), "g"), rlockAsync(ctx, rw.Read(), "g")
		queued(t, read, "g", 3)
		select {
		case err := <-wdone:
			require.ErrorIs(t, err, locker.ErrNotObtained)
		case <-time.After(soon):
			t.Fatal("the writer's wait did not end")
		}
		require.NoError(t, got(t, ra, soon, "reader a").Release(ctx))
		require.NoError(t, got(t, rb, soon, "reader b").Release(ctx))
		require.NoError(t, r0.Release(ctx))
	})
}

func TestReviewKindForceReleaseAndExtend(t *testing.T) {
	forEachAdapter(t, func(t *testing.T, s *redisstore.Store) {
		ctx := ctxT(t)
		rw, far := newRWT(t, s, locker.Options[string]{}), newRWT(t, s, locker.Options[string]{RenewLease: 300 * time.Millisecond})
		require.ErrorIs(t, rw.Read().ForceRelease(ctx, "f"), locker.ErrNotHeld)
		require.ErrorIs(t, rw.Write().ForceRelease(ctx, "f"), locker.ErrNotHeld)
		owner := locker.NewOwner()
		w, err := rw.Write().LockWithRenewal(ctx, "f", 0, locker.WithOwner(owner))
		require.NoError(t, err)
		r, err := rw.Read().LockWithRenewal(ctx, "f", 0, locker.WithOwner(owner))
		require.NoError(t, err)
		waiter := rlockAsync(ctx, far.Write(), "f")
		require.NoError(t, rw.Read().ForceRelease(ctx, "f"))
		for _, h := range []*locker.Lock[string]{w, r} {
			select {
			case <-h.Done():
			default:
				t.Fatal("a holding through the RWLocker that force released did not end at once")
			}
			require.ErrorIs(t, h.Err(), locker.ErrRevoked)
		}
		gw := got(t, waiter, soon, "the writer after the force release")

		// Readers through another RWLocker: renewed and fixed.
		require.NoError(t, gw.Release(ctx))
		r2, err := far.Read().LockWithRenewal(ctx, "f", 0)
		require.NoError(t, err)
		fixed, err := far.Read().TryLock(ctx, "f", time.Minute)
		require.NoError(t, err)
		require.NoError(t, rw.Write().ForceRelease(ctx, "f"))
		select {
		case <-r2.Done():
		case <-time.After(soon):
			t.Fatal("a renewed reader did not learn of the force release")
		}
		require.ErrorIs(t, r2.Err(), locker.ErrRevoked)
		err = fixed.Extend(ctx, time.Minute)
		require.ErrorIs(t, err, locker.ErrNotHeld)
		require.ErrorIs(t, err, locker.ErrRevoked)
		require.ErrorIs(t, rw.Write().ForceRelease(ctx, "f"), locker.ErrNotHeld)

		// A semaphore's force release.
		sem := newSemT(t, s, 2, locker.Options[string]{})
		require.ErrorIs(t, sem.ForceRelease(ctx, "fs"), locker.ErrNotHeld)
		a, err := sem.TryLock(ctx, "fs", time.Minute)
		require.NoError(t, err)
		require.NoError(t, sem.ForceRelease(ctx, "fs"))
		require.ErrorIs(t, a.Err(), locker.ErrRevoked)
		b, err := sem.TryLock(ctx, "fs", time.Minute, locker.WithPermits(2))
		require.NoError(t, err, "every permit is back")
		require.NoError(t, b.Release(ctx))
	})
}

func TestReviewKindSemaphoreRules(t *testing.T) {
	forEachAdapter(t, func(t *testing.T, s *redisstore.Store) {
		ctx := ctxT(t)
		three, four := newSemT(t, s, 3, slow), newSemT(t, s, 4, slow)
		owner := locker.NewOwner()
		h, err := three.LockWithRenewal(ctx, "m", 0, locker.WithOwner(owner), locker.WithPermits(2))
		require.NoError(t, err)
		_, err = three.LockWithRenewal(ctx, "m", locker.WaitForever, locker.WithOwner(owner))
		require.ErrorIs(t, err, locker.ErrMismatch, "re-entry with other permits")
		_, err = four.Lock(ctx, "m", locker.WaitForever, time.Minute)
		require.ErrorIs(t, err, locker.ErrMismatch, "another limit")
		require.NoError(t, h.Release(ctx))

		// A waiter alone keeps the limit recorded.
		full, err := three.TryLock(ctx, "m", time.Minute, locker.WithPermits(3))
		require.NoError(t, err)
		waiter := rlockAsync(ctx, three, "m")
		queued(t, s.Semaphores(), "m", 1)
		_, err = four.TryLock(ctx, "m", time.Minute)
		require.ErrorIs(t, err, locker.ErrMismatch, "the holder and a waiter")
		require.NoError(t, full.Release(ctx))
		g := got(t, waiter, soon, "the waiter")
		require.NoError(t, g.Release(ctx))
		h4, err := four.TryLock(ctx, "m", time.Minute, locker.WithPermits(4))
		require.NoError(t, err, "nobody holds or waits: another limit may be declared")
		require.NoError(t, h4.Release(ctx))

		// LockAll with permits takes them on every key.
		all, err := three.LockAll(ctx, []string{"m", "n"}, time.Second, time.Minute, locker.WithPermits(3))
		require.NoError(t, err)
		for _, k := range []string{"m", "n"} {
			_, err = three.TryLock(ctx, k, time.Minute)
			require.ErrorIs(t, err, locker.ErrNotObtained, "LockAll took 3 of %s", k)
		}
		require.NoError(t, all.Release(ctx))

		// The largest limit.
		big := newSemT(t, s, locker.MaxPermits, locker.Options[string]{})
		bh, err := big.TryLock(ctx, "big", time.Minute, locker.WithPermits(locker.MaxPermits))
		require.NoError(t, err)
		_, err = big.TryLock(ctx, "big", time.Minute)
		require.ErrorIs(t, err, locker.ErrNotObtained)
		require.NoError(t, bh.Release(ctx))
		bh, err = big.TryLock(ctx, "big", time.Minute, locker.WithPermits(locker.MaxPermits-1))
		require.NoError(t, err)
		one, err := big.TryLock(ctx, "big", time.Minute)
		require.NoError(t, err)
		require.NoError(t, one.Release(ctx))
		require.NoError(t, bh.Release(ctx))
	})
}

func TestReviewKindLeaseCloseAndFences(t *testing.T) {
	forEachAdapter(t, func(t *testing.T, s *redisstore.Store) {
		ctx := ctxT(t)
		for _, mode := range []locker.Mode{locker.Fair, locker.Barging} {
			rw := newRWT(t, s, locker.Options[string]{Mode: mode})
			key := "l-" + mode.String()
			r, err := rw.Read().TryLock(ctx, key, 200*time.Millisecond)
			require.NoError(t, err)
			w, err := rw.Write().Lock(ctx, key, soon, time.Minute)
			require.NoError(t, err, "%v: the reader's lease ended and the writer got in", mode)
			assert.Greater(t, w.Fence(), r.Fence())
			require.NoError(t, w.Release(ctx))
		}

		holder := newRWT(t, s, locker.Options[string]{})
		rw, err := locker.NewRW(s, locker.Options[string]{})
		require.NoError(t, err)
		r, err := holder.Read().TryLock(ctx, "ca", time.Minute)
		require.NoError(t, err)
		w, err := holder.Write().TryLock(ctx, "cb", time.Minute)
		require.NoError(t, err)
		ww, wr := rlockAsync(ctx, rw.Write(), "ca"), rlockAsync(ctx, rw.Read(), "cb")
		read, _ := s.RWLocks()
		queued(t, read, "ca", 1)
		queued(t, read, "cb", 1)
		require.NoError(t, rw.Close())
		for _, ch := range []<-chan rres{ww, wr} {
			select {
			case r := <-ch:
				require.ErrorIs(t, r.err, locker.ErrClosed)
			case <-time.After(soon):
				t.Fatal("a waiter did not return on Close")
			}
		}
		queued(t, read, "ca", 0)
		queued(t, read, "cb", 0)
		require.NoError(t, r.Release(ctx))
		require.NoError(t, w.Release(ctx))

		var last int64
		for range 2 {
			var rs []*locker.Lock[string]
			for range 3 {
				h, err := holder.Read().TryLock(ctx, "fe", time.Minute)
				require.NoError(t, err)
				assert.Greater(t, h.Fence(), last)
				rs = append(rs, h)
			}
			for _, h := range rs {
				require.NoError(t, h.Release(ctx))
			}
			h, err := holder.Write().TryLock(ctx, "fe", time.Minute)
			require.NoError(t, err)
			for _, r := range rs {
				assert.Greater(t, h.Fence(), r.Fence())
			}
			last = h.Fence()
			require.NoError(t, h.Release(ctx))
		}
	})
}

// TestReviewKindBargingAttemptRecordsNoLimit: a barging attempt that
// found the semaphore full records no limit (as on memory): once the
// holders are gone another limit is declared, and the barging waiter's
// next attempt gets ErrMismatch. A fair waiter keeps the limit recorded.
func TestReviewKindBargingAttemptRecordsNoLimit(t *testing.T) {
	forEachAdapterRaw(t, func(t *testing.T, e kindEnv) {
		ctx := ctxT(t)
		acquired(t)(e.k.sem.Acquire(ctx, semReq("b", "alice", 3, 3)))
		notAcquired(t)(e.k.sem.Acquire(ctx, semReq("b", "bob", 1, 3)))
		held, _, err := e.k.sem.Release(ctx, "b", "alice", "")
		require.NoError(t, err)
		require.True(t, held)
		acquired(t)(e.k.sem.Acquire(ctx, semReq("b", "carol", 4, 4)))
		_, err = e.k.sem.Acquire(ctx, semReq("b", "bob", 1, 3))
		require.ErrorIs(t, err, driver.ErrMismatch)
		held, _, err = e.k.sem.Release(ctx, "b", "carol", "")
		require.NoError(t, err)
		require.True(t, held)

		acquired(t)(e.k.sem.Acquire(ctx, semReq("f", "alice", 3, 3)))
		notAcquired(t)(e.k.sem.AcquireFair(ctx, semReq("f", "bob", 1, 3), time.Minute))
		held, _, err = e.k.sem.Release(ctx, "f", "alice", "")
		require.NoError(t, err)
		require.True(t, held)
		_, err = e.k.sem.Acquire(ctx, semReq("f", "carol", 4, 4))
		require.ErrorIs(t, err, driver.ErrMismatch, "the fair waiter (granted now) keeps the limit")
	})
}

// TestReviewKindQueuedWriterWhoReadsMeanwhile: an owner queued for the
// write lock that takes a read lock meanwhile (barging) is refused with
// ErrUpgrade when its turn comes, not upgraded (as on memory).
func TestReviewKindQueuedWriterWhoReadsMeanwhile(t *testing.T) {
	forEachAdapter(t, func(t *testing.T, s *redisstore.Store) {
		ctx := ctxT(t)
		fair := newRWT(t, s, slow)
		barge := newRWT(t, s, locker.Options[string]{Mode: locker.Barging})
		read, _ := s.RWLocks()
		c, err := fair.Read().TryLock(ctx, "u", time.Minute)
		require.NoError(t, err)
		a := locker.NewOwner()
		wa := rlockAsync(ctx, fair.Write(), "u", locker.WithOwner(a))
		queued(t, read, "u", 1)
		ra, err := barge.Read().TryLock(ctx, "u", time.Minute, locker.WithOwner(a))
		require.NoError(t, err)
		require.NoError(t, c.Release(ctx))
		select {
		case r := <-wa:
			if r.h != nil {
				_ = r.h.Release(ctx)
			}
			require.ErrorIs(t, r.err, locker.ErrUpgrade)
		case <-time.After(soon):
			t.Fatal("the queued writer was not answered")
		}
		queued(t, read, "u", 0)
		require.NoError(t, ra.Release(ctx))
	})
}
