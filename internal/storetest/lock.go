package storetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/internal/token"
	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/locker/driver"
)

// lockTests are the tests of the lock operations outside the fair queue.
var lockTests = []test{
	{"TakeReenterRelease", testTakeReenterRelease},
	{"ReleaseByNonHolderChangesNothing", testReleaseByNonHolderChangesNothing},
	{"TicketScopedRelease", testTicketScopedRelease},
	{"Extend", testExtend},
	{"ExtendBatchMixedHeldAndNotHeld", testExtendBatchMixedHeldAndNotHeld},
	{"ExpiredLeaseIsFree", testExpiredLeaseIsFree},
	{"FenceIncreasesAcrossExpiryAndKeyLoss", testFenceIncreasesAcrossExpiryAndKeyLoss},
	{"NamesWithSpecialCharacters", testNamesWithSpecialCharacters},
	{"NoRecordsLeftAfterIdle", testNoRecordsLeftAfterIdle},
	{"LongestLease", testLongestLease},
	{"DoneContextFailsEveryCall", testDoneContextFailsEveryCall},
	{"ConcurrentMutualExclusion", testConcurrentMutualExclusion},
}

func testTakeReenterRelease(t *testing.T, h Harness) {
	s := start(t, h).Store
	ctx := ctxT(t)

	first := req("a", "alice", time.Minute)
	res, err := s.Acquire(ctx, first)
	require.NoError(t, err)
	require.True(t, res.Acquired)
	assert.Equal(t, 1, res.Count)
	assert.Equal(t, -1, res.Position)
	assert.Positive(t, res.Fence)

	again, err := s.Acquire(ctx, first) // same ticket: a repeated attempt, not a second hold
	require.NoError(t, err)
	assert.Equal(t, driver.AcquireResult{Acquired: true, Fence: res.Fence, Count: 1, Position: -1}, again)

	re, err := s.Acquire(ctx, req("a", "alice", time.Second))
	require.NoError(t, err)
	assert.Equal(t, driver.AcquireResult{Acquired: true, Fence: res.Fence, Count: 2, Position: -1}, re,
		"a re-entry counts up and keeps the fence")

	other, err := s.Acquire(ctx, req("a", "bob", time.Minute))
	require.NoError(t, err)
	assert.False(t, other.Acquired)
	assert.Equal(t, -1, other.Position)
	assert.Equal(t, res.Fence, other.Fence, "not acquired: the holder's fence")
	assert.Greater(t, other.TTL, time.Second, "a re-entry with a shorter lease shortened the lease")
	assert.LessOrEqual(t, other.TTL, time.Minute)

	st, err := s.Inspect(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, "alice", st.Owner)
	assert.Equal(t, 2, st.Count)
	assert.Equal(t, res.Fence, st.Fence)
	assert.Positive(t, st.TTL)
	assert.Zero(t, st.Waiters)

	longer, err := s.Acquire(ctx, req("a", "alice", time.Hour))
	require.NoError(t, err)
	assert.Equal(t, 3, longer.Count)
	st, err = s.Inspect(ctx, "a")
	require.NoError(t, err)
	assert.Greater(t, st.TTL, time.Minute, "a re-entry with a longer lease extends it")

	for _, want := range []int{2, 1, 0} {
		held, remaining, err := s.Release(ctx, "a", "alice", "")
		require.NoError(t, err)
		assert.True(t, held)
		assert.Equal(t, want, remaining)
	}
	held, _, err := s.Release(ctx, "a", "alice", "")
	require.NoError(t, err)
	assert.False(t, held, "double release reported held")

	st, err = s.Inspect(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, driver.State{}, st)
}

func testReleaseByNonHolderChangesNothing(t *testing.T, h Harness) {
	s := start(t, h).Store
	ctx := ctxT(t)
	r := req("a", "alice", time.Minute)
	_, err := s.Acquire(ctx, r)
	require.NoError(t, err)
	before, err := s.Inspect(ctx, "a")
	require.NoError(t, err)

	held, remaining, err := s.Release(ctx, "a", "bob", "")
	require.NoError(t, err)
	assert.False(t, held)
	assert.Zero(t, remaining)
	held, _, err = s.Release(ctx, "a", "bob", r.Ticket)
	require.NoError(t, err)
	assert.False(t, held, "a ticket does not make a non-owner the holder")
	held, _, err = s.Release(ctx, "never-held", "bob", "")
	require.NoError(t, err)
	assert.False(t, held)

	st, err := s.Inspect(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, "alice", st.Owner)
	assert.Equal(t, 1, st.Count)
	assert.Equal(t, before.Fence, st.Fence)
	assert.LessOrEqual(t, st.TTL, before.TTL)
	assert.Greater(t, st.TTL, before.TTL-time.Second)
}

func testTicketScopedRelease(t *testing.T, h Harness) {
	s := start(t, h).Store
	ctx := ctxT(t)
	r1, r2 := req("a", "alice", time.Minute), req("a", "alice", time.Minute)
	for _, r := range []driver.AcquireRequest{r1, r2} {
		res, err := s.Acquire(ctx, r)
		require.NoError(t, err)
		require.True(t, res.Acquired)
	}

	held, _, err := s.Release(ctx, "a", "alice", r1.Ticket)
	require.NoError(t, err)
	assert.False(t, held, "undo of an attempt that is not the latest acquisition acted")
	st, err := s.Inspect(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, 2, st.Count)
	held, remaining, err := s.Release(ctx, "a", "alice", r2.Ticket)
	require.NoError(t, err)
	assert.True(t, held)
	assert.Equal(t, 1, remaining)
}

func testExtend(t *testing.T, h Harness) {
	srv := start(t, h)
	s := srv.Store
	ctx := ctxT(t)
	_, err := s.Acquire(ctx, req("a", "alice", time.Second))
	require.NoError(t, err)

	held, err := s.Extend(ctx, "a", "alice", time.Hour)
	require.NoError(t, err)
	assert.True(t, held)
	st, err := s.Inspect(ctx, "a")
	require.NoError(t, err)
	assert.Greater(t, st.TTL, time.Minute)

	held, err = s.Extend(ctx, "a", "alice", 2*time.Minute)
	require.NoError(t, err)
	assert.True(t, held)
	st, err = s.Inspect(ctx, "a")
	require.NoError(t, err)
	assert.LessOrEqual(t, st.TTL, 2*time.Minute, "Extend sets the lease, shorter or longer")
	assert.Greater(t, st.TTL, time.Minute)

	held, err = s.Extend(ctx, "a", "bob", time.Hour)
	require.NoError(t, err)
	assert.False(t, held)
	after, err := s.Inspect(ctx, "a")
	require.NoError(t, err)
	assert.LessOrEqual(t, after.TTL, st.TTL, "a non-holder's extend changed the lease")
	held, err = s.Extend(ctx, "free", "alice", time.Hour)
	require.NoError(t, err)
	assert.False(t, held)
	assert.Len(t, srv.Records(t), 1, "extend of a free lock created records: %v", srv.Records(t))
}

func testExtendBatchMixedHeldAndNotHeld(t *testing.T, h Harness) {
	srv := start(t, h)
	s := srv.Store
	ctx := ctxT(t)
	for _, name := range []string{"a", "b"} {
		_, err := s.Acquire(ctx, req(name, "alice", time.Second))
		require.NoError(t, err)
	}
	require.NoError(t, s.ExtendBatch(ctx, nil))

	batch := []driver.Extension{
		{Name: "a", Owner: "alice", Lease: time.Hour},
		{Name: "b", Owner: "bob", Lease: time.Hour},   // held by another owner
		{Name: "c", Owner: "alice", Lease: time.Hour}, // free
		{Name: "b", Owner: "alice", Lease: time.Hour},
		{Name: "c", Owner: "x", Lease: time.Hour, Held: true}, // stale result is overwritten
	}
	require.NoError(t, s.ExtendBatch(ctx, batch))
	for i, want := range []bool{true, false, false, true, false} {
		assert.Equal(t, want, batch[i].Held, "item %d", i)
		assert.NoError(t, batch[i].Err, "item %d", i)
	}
	for _, name := range []string{"a", "b"} {
		st, err := s.Inspect(ctx, name)
		require.NoError(t, err)
		assert.Greater(t, st.TTL, time.Minute, name)
	}
	assert.Len(t, srv.Records(t), 2, "extend of a free lock created records: %v", srv.Records(t))
}

// testExpiredLeaseIsFree: once its lease lapsed, a lock is free, and its
// former owner neither releases nor extends it.
func testExpiredLeaseIsFree(t *testing.T, h Harness) {
	srv := start(t, h)
	s := srv.Store
	ctx := ctxT(t)
	res, err := s.Acquire(ctx, req("a", "alice", 50*time.Millisecond))
	require.NoError(t, err)
	require.True(t, res.Acquired)
	srv.Pass(t, 50*time.Millisecond)

	st, err := s.Inspect(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, driver.State{}, st)
	held, _, err := s.Release(ctx, "a", "alice", "")
	require.NoError(t, err)
	assert.False(t, held, "release after expiry")
	held, err = s.Extend(ctx, "a", "alice", time.Minute)
	require.NoError(t, err)
	assert.False(t, held, "extend after expiry")
	assert.Empty(t, srv.Records(t))
	bob, err := s.Acquire(ctx, req("a", "bob", time.Minute))
	require.NoError(t, err)
	assert.True(t, bob.Acquired)
	assert.Greater(t, bob.Fence, res.Fence)
}

func testFenceIncreasesAcrossExpiryAndKeyLoss(t *testing.T, h Harness) {
	srv := start(t, h)
	s := srv.Store
	ctx := ctxT(t)
	var last int64
	acquire := func(what string, lease time.Duration) {
		t.Helper()
		res, err := s.Acquire(ctx, req("f", token.New(), lease))
		require.NoError(t, err)
		require.True(t, res.Acquired, what)
		assert.Greater(t, res.Fence, last, what)
		last = res.Fence
	}
	acquire("first", time.Minute)
	srv.Expire(t, "f") // lock gone, fence kept
	acquire("after the lock record vanished", 20*time.Millisecond)
	srv.Pass(t, 20*time.Millisecond)
	acquire("after the lease expired", time.Minute)
	srv.Wipe(t, "f")
	acquire("after every record was deleted", time.Minute)
}

func testNamesWithSpecialCharacters(t *testing.T, h Harness) {
	srv := start(t, h)
	s := srv.Store
	ctx := ctxT(t)
	for _, name := range specialNames {
		res, err := s.Acquire(ctx, req(name, "alice", time.Minute))
		require.NoError(t, err, name)
		require.True(t, res.Acquired, "%q collided with another name", name)
	}
	for _, name := range specialNames {
		sub, err := s.Subscribe(ctx, name, "t")
		require.NoError(t, err, name)
		waitedFor(t, s, name)
		held, remaining, err := s.Release(ctx, name, "alice", "")
		require.NoError(t, err, name)
		require.True(t, held, name)
		require.Zero(t, remaining, name)
		woken(t, sub, "the release of "+name)
		sub.Close()
	}
	assert.Empty(t, srv.Records(t))
}

// specialNames contain hash tag braces, the escape character, key
// separators and non-ASCII characters.
var specialNames = []string{"a{b}c", "a%7Bb%7Dc", "}{", "{}", "%", "%25", "x:y:z", "日本語🔒", "a%b"}

func testNoRecordsLeftAfterIdle(t *testing.T, h Harness) {
	srv := start(t, h)
	s := srv.Store
	ctx := ctxT(t)
	holder := req("idle", "holder", time.Minute)
	_, err := s.AcquireFair(ctx, holder, time.Minute)
	require.NoError(t, err)
	res, err := s.Acquire(ctx, req("idle", "barger", time.Minute))
	require.NoError(t, err)
	require.False(t, res.Acquired)
	assert.Len(t, srv.Records(t), 1, "a failed barging attempt writes nothing but the lock's own record")
	w1, w2 := req("idle", "w1", time.Minute), req("idle", "w2", time.Minute)
	for _, r := range []driver.AcquireRequest{w1, w2} {
		_, err := s.AcquireFair(ctx, r, time.Minute)
		require.NoError(t, err)
	}
	require.NoError(t, s.Leave(ctx, "idle", w2.Ticket))
	_, _, err = s.Release(ctx, "idle", "holder", "")
	require.NoError(t, err)
	res, err = s.AcquireFair(ctx, w1, time.Minute)
	require.NoError(t, err)
	require.True(t, res.Acquired)
	_, _, err = s.Release(ctx, "idle", "w1", "")
	require.NoError(t, err)
	assert.Empty(t, srv.Records(t))

	// Reads and no-ops create nothing.
	st, err := s.Inspect(ctx, "unknown")
	require.NoError(t, err)
	assert.Equal(t, driver.State{}, st)
	q, err := s.InspectQueue(ctx, "unknown")
	require.NoError(t, err)
	assert.Empty(t, q)
	held, err := s.Extend(ctx, "unknown", "a", time.Second)
	require.NoError(t, err)
	assert.False(t, held)
	require.NoError(t, s.Leave(ctx, "unknown", "t"))
	assert.Empty(t, srv.Records(t))
}

// testLongestLease: locker.MaxLease is a lease every store takes.
func testLongestLease(t *testing.T, h Harness) {
	s := start(t, h).Store
	ctx := ctxT(t)
	res, err := s.Acquire(ctx, req("long", "alice", locker.MaxLease))
	require.NoError(t, err)
	require.True(t, res.Acquired)
	st, err := s.Inspect(ctx, "long")
	require.NoError(t, err)
	assert.Greater(t, st.TTL, locker.MaxLease-time.Minute)
	held, err := s.Extend(ctx, "long", "alice", locker.MaxLease)
	require.NoError(t, err)
	assert.True(t, held)
	res, err = s.AcquireFair(ctx, req("long", "bob", locker.MaxLease), locker.MaxLease)
	require.NoError(t, err, "a waiter TTL of MaxLease")
	assert.False(t, res.Acquired)
	assert.Equal(t, 0, res.Position)
}

// testDoneContextFailsEveryCall: a call on a done context returns an
// error wrapping ctx.Err(). (Whether it changed the store is not said: a
// store may have sent it.)
func testDoneContextFailsEveryCall(t *testing.T, h Harness) {
	srv := start(t, h)
	s := srv.Store
	done, cancel := context.WithCancel(ctxT(t))
	cancel()

	_, err := s.Acquire(done, req("a", "alice", time.Minute))
	assert.ErrorIs(t, err, context.Canceled)
	_, err = s.AcquireFair(done, req("a", "alice", time.Minute), time.Minute)
	assert.ErrorIs(t, err, context.Canceled)
	_, _, err = s.Release(done, "a", "alice", "")
	assert.ErrorIs(t, err, context.Canceled)
	_, err = s.Extend(done, "a", "alice", time.Hour)
	assert.ErrorIs(t, err, context.Canceled)
	assert.ErrorIs(t, s.ExtendBatch(done, []driver.Extension{{Name: "a", Owner: "alice", Lease: time.Hour}}), context.Canceled)
	assert.ErrorIs(t, s.Leave(done, "a", "t"), context.Canceled)
	_, err = s.Inspect(done, "a")
	assert.ErrorIs(t, err, context.Canceled)
	_, err = s.InspectQueue(done, "a")
	assert.ErrorIs(t, err, context.Canceled)
	sub, err := s.Subscribe(done, "a", "t")
	assert.ErrorIs(t, err, context.Canceled)
	assert.Nil(t, sub)
	assert.Zero(t, srv.Subscriptions(s))
}

// testConcurrentMutualExclusion hammers one name from several clients, in
// both modes, and checks that no two owners are ever inside at once.
func testConcurrentMutualExclusion(t *testing.T, h Harness) {
	srv := start(t, h)
	const workers, rounds = 8, 100
	var inside atomic.Int32
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	clients := make([]Store, workers)
	for w := range workers {
		c := srv.Client(t)
		clients[w] = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- mutex(c, w, rounds, &inside)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.Empty(t, srv.Records(t))
	for _, c := range clients {
		srv.noSubscriptions(t, c)
	}
}

// mutex is one worker of testConcurrentMutualExclusion.
func mutex(c Store, w, rounds int, inside *atomic.Int32) error {
	ctx, cancel := context.WithTimeout(context.Background(), 4*patience)
	defer cancel()
	const name = "mutex"
	fair := w%2 == 0
	for i := range rounds {
		r := driver.AcquireRequest{Name: name, Owner: fmt.Sprint("w", w, "-", i), Ticket: token.New(), Lease: time.Minute}
		sub, err := c.Subscribe(ctx, name, r.Ticket)
		if err != nil {
			return err
		}
		for {
			var res driver.AcquireResult
			if fair {
				res, err = c.AcquireFair(ctx, r, time.Minute)
			} else {
				res, err = c.Acquire(ctx, r)
			}
			if err != nil {
				sub.Close()
				return err
			}
			if res.Acquired {
				break
			}
			select {
			case <-sub.Wake():
			case <-time.After(5 * time.Millisecond): // fallback: barging waiters are not woken while others queue
			}
		}
		sub.Close()
		if n := inside.Add(1); n != 1 {
			return fmt.Errorf("%d owners inside at once", n)
		}
		inside.Add(-1)
		held, n, err := c.Release(ctx, name, r.Owner, "")
		if err != nil {
			return err
		}
		if !held || n != 0 {
			return fmt.Errorf("release: held=%v remaining=%d", held, n)
		}
	}
	return nil
}
