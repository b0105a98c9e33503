package locker_test

import (
	"context"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/backend/memory"
	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/locker/driver"
)

// stallClient is a memory client whose next acquiring calls stall after the
// store has answered, as a process stopped (SIGSTOP, a GC pause) between
// the store's answer and its reading of it does. It records the tickets of
// the attempts and of the releases.
type stallClient struct {
	*memory.Client
	stalls  atomic.Int32 // how many of the next acquiring calls stall
	stall   time.Duration
	tickets chan string // of every single-name attempt
	undone  chan string // of every release by ticket
	failRel atomic.Bool // releases fail (the store does not answer)
}

func newStallClient(store *memory.Store, stall time.Duration, stalls int32) *stallClient {
	c := &stallClient{Client: store.Client(), stall: stall, tickets: make(chan string, 1000), undone: make(chan string, 1000)}
	c.stalls.Store(stalls)
	return c
}

// stalled returns a memory store, a stallClient on it whose next stalls
// acquiring calls stall for stall, and a Locker on that client, closed at
// the end of the test.
func stalled(t *testing.T, stall time.Duration, stalls int32, opts locker.Options[string]) (*memory.Store, *stallClient, *locker.Locker[string]) {
	t.Helper()
	store := memory.New()
	sc := newStallClient(store, stall, stalls)
	l, err := locker.New[string](sc, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return store, sc, l
}

func (c *stallClient) pause() {
	if c.stalls.Add(-1) >= 0 {
		time.Sleep(c.stall)
	}
}

func (c *stallClient) Acquire(ctx context.Context, req driver.AcquireRequest) (driver.AcquireResult, error) {
	c.tickets <- req.Ticket
	res, err := c.Client.Acquire(ctx, req)
	c.pause()
	return res, err
}

func (c *stallClient) AcquireFair(ctx context.Context, req driver.AcquireRequest, ttl time.Duration) (driver.AcquireResult, error) {
	c.tickets <- req.Ticket
	res, err := c.Client.AcquireFair(ctx, req, ttl)
	c.pause()
	return res, err
}

func (c *stallClient) AcquireAll(ctx context.Context, reqs []driver.AcquireRequest, fair bool) ([]driver.AcquireResult, bool, error) {
	res, ok, err := c.Client.AcquireAll(ctx, reqs, fair)
	c.pause()
	return res, ok, err
}

func (c *stallClient) Release(ctx context.Context, name, owner, ticket string) (bool, int, error) {
	if ticket != "" {
		c.undone <- ticket
	}
	if c.failRel.Load() {
		return false, 0, errStore
	}
	return c.Client.Release(ctx, name, owner, ticket)
}

// An acquisition whose answer is read only after its lease ended (the
// process stalled in between) is not a hold: meanwhile the store gave the
// lock to another owner. The call gives it back by its ticket, which
// leaves the other owner's hold alone, and waits for the lock with a new
// ticket. Before the fix it returned a handle whose lease had ended, while
// the other owner held the lock (the fault suite's "acquired before the end
// of" report).
func TestLapsedAcquisitionIsNotReturned(t *testing.T) {
	for _, mode := range []locker.Mode{locker.Fair, locker.Barging} {
		t.Run(mode.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) { testLapsedAcquisition(t, mode) })
		})
	}
}

func testLapsedAcquisition(t *testing.T, mode locker.Mode) {
	ctx := context.Background()
	store, sc, a := stalled(t, 2*time.Second, 1, locker.Options[string]{Mode: mode})
	b, err := locker.New[string](store.Client(), locker.Options[string]{Mode: mode})
	require.NoError(t, err)
	defer func() { _ = b.Close() }()

	var bReleased atomic.Bool
	got := make(chan *locker.Lock[string], 1)
	go func() {
		h, err := a.Lock(ctx, "k", time.Minute, time.Second)
		assert.NoError(t, err)
		if err == nil {
			assert.True(t, bReleased.Load(), "a returned a hold while b held the lock")
			assert.True(t, time.Now().Before(h.Deadline()), "a returned a hold whose lease had ended")
		}
		got <- h
	}()
	first := <-sc.tickets

	// a's lease ends while it stalls; b takes the lock.
	time.Sleep(1100 * time.Millisecond)
	hb, err := b.TryLock(ctx, "k", 5*time.Second)
	require.NoError(t, err, "a's lease should have ended")

	// a reads its answer, gives it back by its ticket, and waits anew.
	assert.Equal(t, first, <-sc.undone, "the lapsed acquisition is given back by its ticket")
	again := <-sc.tickets
	assert.NotEqual(t, first, again, "the next attempt has a new ticket")
	synctest.Wait()
	select {
	case <-hb.Done():
		t.Fatalf("b lost its hold: %v", hb.Err())
	case <-got:
		t.Fatal("a returned while b held the lock")
	default:
	}
	st, err := store.Inspect(ctx, "k")
	require.NoError(t, err)
	assert.Equal(t, hb.Owner(), st.Owner, "giving a's acquisition back released b's hold")

	bReleased.Store(true)
	require.NoError(t, hb.Release(ctx))
	ha := <-got
	require.NotNil(t, ha)
	assert.Greater(t, ha.Fence(), hb.Fence(), "a's hold must be fenced after b's")
	require.NoError(t, ha.Release(ctx))
}

// A single attempt (a wait of zero) whose answer lapsed fails with
// ErrNotObtained and leaves nothing held; so does a wait that ran out
// during the stall.
func TestLapsedSingleAttemptFails(t *testing.T) {
	for name, wait := range map[string]time.Duration{"try": 0, "wait over": time.Second} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := context.Background()
				store, sc, a := stalled(t, 2*time.Second, 1, locker.Options[string]{})

				h, err := a.Lock(ctx, "k", wait, time.Second)
				require.ErrorIs(t, err, locker.ErrNotObtained)
				require.Nil(t, h)
				assert.Equal(t, <-sc.tickets, <-sc.undone, "given back by its ticket")
				assert.Len(t, sc.tickets, 0, "attempted again after the wait ended")
				st, err := store.Inspect(ctx, "k")
				require.NoError(t, err)
				assert.Empty(t, st.Owner)
			})
		})
	}
}

// The atomic attempt at a set of locks lapses the same way: TryLockAll
// fails and holds nothing; LockAll takes the set again with fresh fences.
func TestLapsedAtomicSetIsNotReturned(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store, sc, a := stalled(t, 2*time.Second, 1, locker.Options[string]{})
		names := []string{"x", "y"}

		_, err := a.TryLockAll(ctx, names, time.Second)
		require.ErrorIs(t, err, locker.ErrNotObtained)
		fences := map[string]int64{}
		for _, n := range names {
			st, err := store.Inspect(ctx, n)
			require.NoError(t, err)
			assert.Empty(t, st.Owner, "%s is held after a lapsed TryLockAll", n)
			fences[n] = st.Fence
		}

		sc.stalls.Store(1)
		m, err := a.LockAll(ctx, names, time.Minute, time.Second)
		require.NoError(t, err)
		for _, h := range m.Locks() {
			assert.True(t, time.Now().Before(h.Deadline()), "%s: a hold whose lease had ended", h.Name())
			assert.Greater(t, h.Fence(), fences[h.Name()], "%s: the lapsed fence was returned", h.Name())
			st, err := store.Inspect(ctx, h.Name())
			require.NoError(t, err)
			assert.Equal(t, h.Owner(), st.Owner)
		}
		require.NoError(t, m.Release(ctx))
	})
}

// A lease shorter than the store's round trip lapses on every attempt: the
// call backs off between them (10 ms doubling to 1 s), so that it does not
// hammer the store for its whole wait, and ends with ErrNotObtained.
func TestLeaseShorterThanTheRoundTripBacksOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		_, sc, a := stalled(t, 5*time.Millisecond, 1<<30, locker.Options[string]{Mode: locker.Barging}) // every answer takes 5 ms

		t0 := time.Now()
		_, err := a.Lock(ctx, "k", 3*time.Second, locker.MinLease)
		require.ErrorIs(t, err, locker.ErrNotObtained)
		assert.Contains(t, err.Error(), "lease ended before")
		took := time.Since(t0)
		assert.LessOrEqual(t, took, 3*time.Second+100*time.Millisecond, "the wait bounds the call")
		// At once, then after 10, 20, 40, ..., 640 ms and 1 s: 10 attempts
		// fit in 3 s, not 300.
		n := len(sc.tickets)
		assert.GreaterOrEqual(t, n, 5, "attempts made")
		assert.LessOrEqual(t, n, 12, "attempts made in 3 s")
		assert.Equal(t, n, len(sc.undone), "each given back")
	})
}

// When the store does not answer the giving back of a lapsed acquisition,
// the call makes no other: the old ticket may still hold, and a new
// attempt of the same owner would re-enter that holding and outlive the
// user's release. It fails with ErrNotObtained; the janitor retries the
// clean-up.
func TestLapsedAcquisitionNotGivenBackIsNotRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		store, sc, a := stalled(t, 2*time.Second, 1, locker.Options[string]{Mode: locker.Barging})
		sc.failRel.Store(true)

		_, err := a.Lock(ctx, "k", time.Minute, time.Second, locker.WithOwner("me"))
		require.ErrorIs(t, err, locker.ErrNotObtained)
		first := <-sc.tickets
		assert.Len(t, sc.tickets, 0, "no new attempt while the old ticket may hold")
		assert.Equal(t, first, <-sc.undone)

		sc.failRel.Store(false)
		assert.Equal(t, first, <-sc.undone, "the janitor retries giving it back")
		// After that, the owner's next call starts from a clean slate.
		h, err := a.Lock(ctx, "k", time.Minute, time.Second, locker.WithOwner("me"))
		require.NoError(t, err)
		st, err := store.Inspect(ctx, "k")
		require.NoError(t, err)
		assert.Equal(t, 1, st.Count, "a fresh holding, not a re-entry of the lapsed one")
		require.NoError(t, h.Release(ctx))
		st, err = store.Inspect(ctx, "k")
		require.NoError(t, err)
		assert.Empty(t, st.Owner, "released: nothing left held")
	})
}

// A lapsed acquisition is reported to the Observer (EventLapsed) before the
// call ends, once per lapse.
func TestLapsedAcquisitionIsObserved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		rec := &recorder{}
		_, _, a := stalled(t, 2*time.Second, 1, locker.Options[string]{Mode: locker.Barging, Observer: rec})

		h, err := a.Lock(ctx, "k", time.Minute, time.Second)
		require.NoError(t, err)
		require.NoError(t, h.Release(ctx))
		name := h.Name()
		assert.Equal(t, []string{
			"start lock " + name, "lapsed " + name, "held " + name, "end lock " + name + " ok fenced waited",
			"start release " + name, "released " + name, "end release " + name + " ok fenced",
		}, rec.take())
	})
}

// When the store does not answer giving back a lapsed atomic set, LockAll
// does not go on name by name: the old tickets may still hold.
func TestLapsedAtomicSetNotGivenBackIsNotRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, sc, a := stalled(t, 2*time.Second, 1, locker.Options[string]{})
		sc.failRel.Store(true)
		_, err := a.LockAll(context.Background(), []string{"x", "y"}, time.Minute, time.Second)
		require.ErrorIs(t, err, locker.ErrNotObtained)
		assert.Len(t, sc.undone, 2, "each name's give-back was tried")
		assert.Len(t, sc.tickets, 0, "no attempt name by name while the old tickets may hold")
	})
}
