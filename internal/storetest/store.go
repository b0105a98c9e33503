package storetest

import (
	"context"
	"github.com/disgolock/disgo/internal/token"
	"github.com/disgolock/disgo/locker/driver"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/internal/rediscore"
)

// storeTests are the tests of the lock operations.
var storeTests = []test{
	{"TakeReenterRelease", testTakeReenterRelease},
	{"ReleaseByNonHolderChangesNothing", testReleaseByNonHolderChangesNothing},
	{"TicketScopedRelease", testTicketScopedRelease},
	{"Extend", testExtend},
	{"ExtendBatchMixedHeldAndNotHeld", testExtendBatchMixedHeldAndNotHeld},
	{"ExtendBatchItemErrors", testExtendBatchItemErrors},
	{"FairQueueOrderPositionAndHeadOnly", testFairQueueOrderPositionAndHeadOnly},
	{"FairQueueOrderAndPosition", testFairQueueOrderAndPosition},
	{"FairReleaseGrantsTheHead", testFairReleaseGrantsTheHead},
	{"FairFreeLockIsForTheHeadOnly", testFairFreeLockIsForTheHeadOnly},
	{"FairEvictsDeadWaiterAfterItsTTL", testFairEvictsDeadWaiterAfterItsTTL},
	{"LeaveWakesTheNewHead", func(t *testing.T, h Harness) {
		t.Run("AfterAGrant", func(t *testing.T) { testLeaveAfterAGrant(t, h) })
		t.Run("OfAFreeLock", func(t *testing.T) { testLeaveOfAFreeLock(t, h) })
	}},
	{"ReleaseBroadcastsWithoutQueue", testReleaseBroadcastsWithoutQueue},
	{"FenceIncreasesAcrossExpiryAndKeyLoss", testFenceIncreasesAcrossExpiryAndKeyLoss},
	{"NamesWithSpecialCharacters", testNamesWithSpecialCharacters},
	{"NoKeysLeftAfterIdle", testNoKeysLeftAfterIdle},
	{"ScriptFlushRecovers", testScriptFlushRecovers},
	{"RoundTripsPerAcquireAndRelease", testRoundTripsPerAcquireAndRelease},
	{"UncontendedPairRunsNoQueueCallNorPublish", testUncontendedPairCommands},
	{"StoreDownFailsFastAndRecovers", testStoreDownFailsFastAndRecovers},
	{"DeadlineOfABlockedServerIsMatchable", testDeadlineOfABlockedServerIsMatchable},
	{"GrantGoesOnlyToTheWaitersStore", testGrantGoesOnlyToTheWaitersStore},
}

func testTakeReenterRelease(t *testing.T, h Harness) {
	e := newEnv(t, h, Options{Prefix: "p"})
	s := e.Store
	ctx := ctxT(t)

	first := req("a", "alice", time.Minute)
	res, err := s.Acquire(ctx, first)
	require.NoError(t, err)
	require.True(t, res.Acquired)
	assert.Equal(t, 1, res.Count)
	assert.Positive(t, res.Fence)

	again, err := s.Acquire(ctx, first) // same ticket: a repeated attempt, not a second hold
	require.NoError(t, err)
	assert.Equal(t, driver.AcquireResult{Acquired: true, Fence: res.Fence, Count: 1, Position: -1}, again)

	re, err := s.Acquire(ctx, req("a", "alice", time.Second))
	require.NoError(t, err)
	assert.Equal(t, driver.AcquireResult{Acquired: true, Fence: res.Fence, Count: 2, Position: -1}, re)

	other, err := s.Acquire(ctx, req("a", "bob", time.Minute))
	require.NoError(t, err)
	assert.False(t, other.Acquired)
	assert.Equal(t, -1, other.Position)
	assert.Greater(t, other.TTL, time.Second, "a re-entry with a shorter lease shortened the lease")
	assert.LessOrEqual(t, other.TTL, time.Minute)

	st, err := s.Inspect(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, "alice", st.Owner)
	assert.Equal(t, 2, st.Count)
	assert.Equal(t, res.Fence, st.Fence)
	assert.Positive(t, st.TTL)
	assert.Zero(t, st.Waiters)
	assert.True(t, strings.HasPrefix(e.Layout.Keys("a")[rediscore.KeyLock], "p:{a}:"))

	held, remaining, err := s.Release(ctx, "a", "alice", "")
	require.NoError(t, err)
	assert.True(t, held)
	assert.Equal(t, 1, remaining)
	held, remaining, err = s.Release(ctx, "a", "alice", "")
	require.NoError(t, err)
	assert.True(t, held)
	assert.Equal(t, 0, remaining)
	held, _, err = s.Release(ctx, "a", "alice", "")
	require.NoError(t, err)
	assert.False(t, held, "double release reported held")

	st, err = s.Inspect(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, driver.State{}, st)
}

func testReleaseByNonHolderChangesNothing(t *testing.T, h Harness) {
	s := newEnv(t, h, Options{}).Store
	ctx := ctxT(t)
	_, err := s.Acquire(ctx, req("a", "alice", time.Minute))
	require.NoError(t, err)

	held, remaining, err := s.Release(ctx, "a", "bob", "")
	require.NoError(t, err)
	assert.False(t, held)
	assert.Zero(t, remaining)
	held, _, err = s.Release(ctx, "never-held", "bob", "")
	require.NoError(t, err)
	assert.False(t, held)

	st, err := s.Inspect(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, "alice", st.Owner)
	assert.Equal(t, 1, st.Count)
}

func testTicketScopedRelease(t *testing.T, h Harness) {
	s := newEnv(t, h, Options{}).Store
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
	held, remaining, err := s.Release(ctx, "a", "alice", r2.Ticket)
	require.NoError(t, err)
	assert.True(t, held)
	assert.Equal(t, 1, remaining)
}

func testExtend(t *testing.T, h Harness) {
	e := newEnv(t, h, Options{})
	s := e.Store
	ctx := ctxT(t)
	_, err := s.Acquire(ctx, req("a", "alice", time.Second))
	require.NoError(t, err)

	held, err := s.Extend(ctx, "a", "alice", time.Hour)
	require.NoError(t, err)
	assert.True(t, held)
	st, err := s.Inspect(ctx, "a")
	require.NoError(t, err)
	assert.Greater(t, st.TTL, time.Minute)

	held, err = s.Extend(ctx, "a", "bob", time.Hour)
	require.NoError(t, err)
	assert.False(t, held)
	held, err = s.Extend(ctx, "free", "alice", time.Hour)
	require.NoError(t, err)
	assert.False(t, held)
	assert.Equal(t, []string{e.Layout.Keys("a")[rediscore.KeyLock]}, e.keys(t), "extend of a free lock created keys")
}

func testExtendBatchMixedHeldAndNotHeld(t *testing.T, h Harness) {
	e := newEnv(t, h, Options{})
	s, n := e.Store, e.Requests
	ctx := ctxT(t)
	for _, name := range []string{"a", "b"} {
		_, err := s.Acquire(ctx, req(name, "alice", time.Second))
		require.NoError(t, err)
	}
	n.Reset()
	require.NoError(t, s.ExtendBatch(ctx, nil))
	assert.Zero(t, n.Single.Load()+n.Batches.Load(), "an empty batch touched the server")
	_, err := s.Extend(ctx, "a", "alice", time.Second) // load the script
	require.NoError(t, err)

	n.Reset()
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
	assert.Equal(t, int64(1), n.Batches.Load(), "one round trip (pipeline) per batch")
	assert.Zero(t, n.Single.Load())
	for _, name := range []string{"a", "b"} {
		st, err := s.Inspect(ctx, name)
		require.NoError(t, err)
		assert.Greater(t, st.TTL, time.Minute, name)
	}
}

func testExtendBatchItemErrors(t *testing.T, h Harness) {
	e := newEnv(t, h, Options{})
	s := e.Store
	ctx := ctxT(t)
	_, err := s.Acquire(ctx, req("a", "alice", time.Minute))
	require.NoError(t, err)
	// A value of the wrong type where the lock string belongs makes the
	// script fail.
	e.must(t, "HSET", e.Layout.Keys("bad")[rediscore.KeyLock], "x", "y")

	batch := []driver.Extension{
		{Name: "bad", Owner: "alice", Lease: time.Hour},
		{Name: "a", Owner: "alice", Lease: time.Hour},
	}
	require.NoError(t, s.ExtendBatch(ctx, batch))
	assert.Error(t, batch[0].Err)
	assert.False(t, batch[0].Held)
	assert.NoError(t, batch[1].Err)
	assert.True(t, batch[1].Held)
}

// queueTwo takes lock "q" fairly for "holder" and queues b and c behind it
// (b twice: a repeated attempt keeps its place), checking their positions;
// it returns the holder's result.
func queueTwo(t *testing.T, s Store) (holder driver.AcquireResult, b, c driver.AcquireRequest) {
	t.Helper()
	ctx := ctxT(t)
	const ttl = time.Minute
	holder, err := s.AcquireFair(ctx, req("q", "holder", time.Minute), ttl)
	require.NoError(t, err)
	require.True(t, holder.Acquired)

	b, c = req("q", "b", time.Minute), req("q", "c", time.Minute)
	for i, r := range []driver.AcquireRequest{b, c, b} {
		res, err := s.AcquireFair(ctx, r, ttl)
		require.NoError(t, err)
		assert.False(t, res.Acquired)
		assert.Equal(t, []int{0, 1, 0}[i], res.Position, "attempt %d", i)
		if res.Position == 0 {
			assert.Positive(t, res.TTL, "the head learns the holder's lease")
		} else {
			assert.Negative(t, res.TTL, "a waiter behind the head is not told the lease")
		}
	}
	st, err := s.Inspect(ctx, "q")
	require.NoError(t, err)
	assert.Equal(t, 2, st.Waiters)
	return holder, b, c
}

// barge checks that barging ignores the queue but still cannot take the
// held lock "q".
func barge(t *testing.T, s Store) {
	t.Helper()
	bargeRes, err := s.Acquire(ctxT(t), req("q", "barger", time.Minute))
	require.NoError(t, err)
	assert.False(t, bargeRes.Acquired)
}

// subscribe subscribes ticket to name on s until the test ends.
func subscribe(t *testing.T, s Store, name, ticket string) driver.Subscription {
	t.Helper()
	sub, err := s.Subscribe(ctxT(t), name, ticket)
	require.NoError(t, err)
	t.Cleanup(sub.Close)
	return sub
}

func testFairQueueOrderPositionAndHeadOnly(t *testing.T, h Harness) {
	s := newEnv(t, h, Options{}).Store
	ctx := ctxT(t)
	res, b, c := queueTwo(t, s)
	barge(t, s)
	subB := subscribe(t, s, "q", b.Ticket)
	subC := subscribe(t, s, "q", c.Ticket)

	held, remaining, err := s.Release(ctx, "q", "holder", "")
	require.NoError(t, err)
	require.True(t, held)
	require.Zero(t, remaining)
	// The release hands the lock to the head, and tells it the fence.
	woken(t, subB, "the head's grant")
	fence, granted := subB.Granted()
	require.True(t, granted)
	notWoken(t, subC, "the release woke a waiter that is not the head")
	_, granted = subC.Granted()
	assert.False(t, granted)
	st, err := s.Inspect(ctx, "q")
	require.NoError(t, err)
	assert.Equal(t, driver.State{Owner: "b", Count: 1, Fence: fence, TTL: st.TTL, Waiters: 1}, st)
	assert.Greater(t, fence, res.Fence)
	assert.Positive(t, st.TTL)

	// c is the head now, but b holds the lock.
	resC, err := s.AcquireFair(ctx, c, time.Minute)
	require.NoError(t, err)
	assert.False(t, resC.Acquired)
	assert.Equal(t, 0, resC.Position)
	assert.Positive(t, resC.TTL)

	// b claims the grant with its ticket: an idempotent re-entry.
	resB, err := s.AcquireFair(ctx, b, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, driver.AcquireResult{Acquired: true, Fence: fence, Count: 1, Position: -1}, resB)
}

func testFairQueueOrderAndPosition(t *testing.T, h Harness) {
	s := newEnv(t, h, Options{}).Store
	ctx := ctxT(t)
	queueTwo(t, s)

	// A single fair attempt honours the queue without joining it.
	try, err := s.AcquireFair(ctx, req("q", "try", time.Minute), 0)
	require.NoError(t, err)
	assert.False(t, try.Acquired)
	assert.Equal(t, -1, try.Position)
	barge(t, s)
	st, err := s.Inspect(ctx, "q")
	require.NoError(t, err)
	assert.Equal(t, 2, st.Waiters, "attempts that do not queue changed the queue")
}

// queueBC takes lock "q" fairly for "holder", queues b and c behind it and
// subscribes them; it returns the holder's result.
func queueBC(t *testing.T, s Store) (first driver.AcquireResult, b, c driver.AcquireRequest, subB, subC driver.Subscription) {
	t.Helper()
	ctx := ctxT(t)
	first, err := s.AcquireFair(ctx, req("q", "holder", time.Minute), time.Minute)
	require.NoError(t, err)
	b, c = req("q", "b", time.Minute), req("q", "c", time.Minute)
	for _, r := range []driver.AcquireRequest{b, c} {
		_, err := s.AcquireFair(ctx, r, time.Minute)
		require.NoError(t, err)
	}
	return first, b, c, subscribe(t, s, "q", b.Ticket), subscribe(t, s, "q", c.Ticket)
}

func testFairReleaseGrantsTheHead(t *testing.T, h Harness) {
	e := newEnv(t, h, Options{})
	s := e.Store
	ctx := ctxT(t)
	first, b, c, subB, subC := queueBC(t, s)

	held, remaining, err := s.Release(ctx, "q", "holder", "")
	require.NoError(t, err)
	require.True(t, held)
	require.Zero(t, remaining)
	woken(t, subB, "the head's grant")
	fence, granted := subB.Granted()
	require.True(t, granted)
	assert.Greater(t, fence, first.Fence)
	e.probe(t, s, "q")
	notWoken(t, subC, "the release woke a waiter that is not the head")
	_, granted = subC.Granted()
	assert.False(t, granted)

	st, err := s.Inspect(ctx, "q")
	require.NoError(t, err)
	assert.Equal(t, driver.State{Owner: "b", Count: 1, Fence: fence, TTL: st.TTL, Waiters: 1}, st)
	assert.Positive(t, st.TTL)

	// The grant is claimed by the head's next attempt, as a re-entry of the
	// same ticket: the hold is not counted twice.
	claim, err := s.AcquireFair(ctx, b, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, driver.AcquireResult{Acquired: true, Fence: fence, Count: 1, Position: -1}, claim)
	resC, err := s.AcquireFair(ctx, c, time.Minute)
	require.NoError(t, err)
	assert.False(t, resC.Acquired)
	assert.Equal(t, 0, resC.Position)

	// A waiter that gave up undoes its grant with a ticket-scoped release,
	// which hands the lock on.
	require.NoError(t, s.Leave(ctx, "q", b.Ticket))
	held, remaining, err = s.Release(ctx, "q", "b", b.Ticket)
	require.NoError(t, err)
	assert.True(t, held)
	assert.Zero(t, remaining)
	woken(t, subC, "the next grant")
	_, granted = subC.Granted()
	assert.True(t, granted)
}

func testFairFreeLockIsForTheHeadOnly(t *testing.T, h Harness) {
	e := newEnv(t, h, Options{})
	s := e.Store
	ctx := ctxT(t)
	_, b, c, subB, subC := queueBC(t, s)
	e.expire(t, "q")

	// c is not at the head: it must not take the free lock, and the head is
	// told.
	resC, err := s.AcquireFair(ctx, c, time.Minute)
	require.NoError(t, err)
	assert.False(t, resC.Acquired)
	assert.Equal(t, 1, resC.Position)
	assert.Negative(t, resC.TTL, "free lock with another waiter ahead")
	woken(t, subB, "the head's nudge when a non-head found the lock free")
	_, granted := subB.Granted()
	assert.False(t, granted, "a nudge is no grant")
	e.probe(t, s, "q")
	notWoken(t, subC, "the nudge woke a waiter that is not the head")

	resB, err := s.AcquireFair(ctx, b, time.Minute)
	require.NoError(t, err)
	assert.True(t, resB.Acquired)
	resC, err = s.AcquireFair(ctx, c, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, 0, resC.Position)
}

func testFairEvictsDeadWaiterAfterItsTTL(t *testing.T, h Harness) {
	e := newEnv(t, h, Options{})
	s := e.Store
	ctx := ctxT(t)
	holder := req("q", "holder", time.Minute)
	_, err := s.AcquireFair(ctx, holder, time.Minute)
	require.NoError(t, err)
	dead, live := req("q", "dead", time.Minute), req("q", "live", time.Minute)
	_, err = s.AcquireFair(ctx, dead, 50*time.Millisecond) // never heard of again
	require.NoError(t, err)
	res, err := s.AcquireFair(ctx, live, time.Minute)
	require.NoError(t, err)
	require.Equal(t, 1, res.Position)
	_, _, err = s.Release(ctx, "q", "holder", "")
	require.NoError(t, err)

	require.Eventually(t, func() bool {
		res, err := s.AcquireFair(ctx, live, time.Minute)
		return err == nil && res.Acquired
	}, patience, 10*time.Millisecond, "the dead waiter stalled the queue")
	_, _, err = s.Release(ctx, "q", "live", "")
	require.NoError(t, err)
	assert.Empty(t, e.keys(t), "keys left behind after the queue emptied")
}

// queueBCD takes lock "q" fairly for "holder", queues b, c and d behind
// it, subscribes c and d, and checks that the head leaving while the lock
// is held wakes nobody.
func queueBCD(t *testing.T, e *env) (b, c, d driver.AcquireRequest, subC, subD driver.Subscription) {
	t.Helper()
	s := e.Store
	ctx := ctxT(t)
	_, err := s.AcquireFair(ctx, req("q", "holder", time.Minute), time.Minute)
	require.NoError(t, err)
	b, c, d = req("q", "b", time.Minute), req("q", "c", time.Minute), req("q", "d", time.Minute)
	for _, r := range []driver.AcquireRequest{b, c, d} {
		_, err := s.AcquireFair(ctx, r, time.Minute)
		require.NoError(t, err)
	}
	subC, subD = subscribe(t, s, "q", c.Ticket), subscribe(t, s, "q", d.Ticket)

	// While the lock is held, a departing head wakes nobody.
	require.NoError(t, s.Leave(ctx, "q", b.Ticket))
	e.probe(t, s, "q")
	notWoken(t, subC, "a waiter was woken while the lock is held")
	return b, c, d, subC, subD
}

func testLeaveAfterAGrant(t *testing.T, h Harness) {
	e := newEnv(t, h, Options{})
	s := e.Store
	ctx := ctxT(t)
	_, c, _, subC, subD := queueBCD(t, e)
	_, _, err := s.Release(ctx, "q", "holder", "") // grants c, the head now
	require.NoError(t, err)
	woken(t, subC, "the head's grant")
	_, granted := subC.Granted()
	require.True(t, granted)

	// c gives up after the grant: leaving wakes nobody (the lock is held),
	// and the ticket-scoped release that undoes the grant hands it to d.
	require.NoError(t, s.Leave(ctx, "q", c.Ticket))
	e.probe(t, s, "q")
	notWoken(t, subD, "a waiter was woken while the lock is granted")
	held, _, err := s.Release(ctx, "q", "c", c.Ticket)
	require.NoError(t, err)
	require.True(t, held)
	woken(t, subD, "the new head's grant")
	st, err := s.Inspect(ctx, "q")
	require.NoError(t, err)
	assert.Equal(t, "d", st.Owner)
	assert.Zero(t, st.Waiters)
	require.NoError(t, s.Leave(ctx, "q", c.Ticket), "leaving twice is not an error")

	// A head that leaves a free lock wakes the next: free the lock by
	// expiry (no release, no grant) with e queued behind f.
	e1, f := req("q", "e", time.Minute), req("q", "f", time.Minute)
	for _, r := range []driver.AcquireRequest{e1, f} {
		_, err := s.AcquireFair(ctx, r, time.Minute)
		require.NoError(t, err)
	}
	subF := subscribe(t, s, "q", f.Ticket)
	held, err = s.Extend(ctx, "q", "d", time.Millisecond)
	require.NoError(t, err)
	require.True(t, held)
	require.Eventually(t, func() bool {
		st, err := s.Inspect(ctx, "q")
		return err == nil && st.Owner == ""
	}, patience, time.Millisecond, "the lease to run out")
	require.NoError(t, s.Leave(ctx, "q", e1.Ticket))
	woken(t, subF, "the new head's wake-up after the head left a free lock")
}

func testLeaveOfAFreeLock(t *testing.T, h Harness) {
	e := newEnv(t, h, Options{})
	s := e.Store
	ctx := ctxT(t)
	_, c, _, subC, subD := queueBCD(t, e)

	e.expire(t, "q")
	require.NoError(t, s.Leave(ctx, "q", c.Ticket)) // the head gives up on a free lock
	woken(t, subD, "the new head's wake-up")
	e.probe(t, s, "q")
	notWoken(t, subC, "a departed waiter was woken")
	require.NoError(t, s.Leave(ctx, "q", c.Ticket), "leaving twice is not an error")

	st, err := s.Inspect(ctx, "q")
	require.NoError(t, err)
	assert.Equal(t, 1, st.Waiters)
}

func testReleaseBroadcastsWithoutQueue(t *testing.T, h Harness) {
	e := newEnv(t, h, Options{})
	s := e.Store
	ctx := ctxT(t)
	_, err := s.Acquire(ctx, req("a", "alice", time.Minute))
	require.NoError(t, err)
	w1 := subscribe(t, s, "a", "t1")
	w2 := subscribe(t, s, "a", "t2")
	other := subscribe(t, s, "b", "t1")
	// A waiter finds the lock taken before it sleeps: that marks the holding
	// as waited for, and only such a release publishes.
	res, err := s.Acquire(ctx, req("a", "bob", time.Minute))
	require.NoError(t, err)
	require.False(t, res.Acquired)

	_, _, err = s.Release(ctx, "a", "alice", "")
	require.NoError(t, err)
	woken(t, w1, "broadcast to the first waiter")
	woken(t, w2, "broadcast to the second waiter")
	e.probe(t, s, "b")
	notWoken(t, other, "a release of a woke waiters of b")
}

func testFenceIncreasesAcrossExpiryAndKeyLoss(t *testing.T, h Harness) {
	e := newEnv(t, h, Options{})
	s := e.Store
	ctx := ctxT(t)
	var last int64
	acquire := func(what string, lease time.Duration) {
		t.Helper()
		var res driver.AcquireResult
		require.Eventually(t, func() bool {
			var err error
			res, err = s.Acquire(ctx, req("f", token.New(), lease))
			return err == nil && res.Acquired
		}, patience, time.Millisecond, "acquire (%s)", what)
		assert.Greater(t, res.Fence, last, what)
		last = res.Fence
	}
	acquire("first", time.Minute)
	e.del(t, e.Layout.Keys("f")[rediscore.KeyLock]) // lock gone, fence kept
	acquire("after the lock key vanished", 20*time.Millisecond)
	acquire("after the lease expired", time.Minute)
	e.del(t, e.Layout.Keys("f")...)
	acquire("after every key was deleted", time.Minute)
}

func testNamesWithSpecialCharacters(t *testing.T, h Harness) {
	e := newEnv(t, h, Options{})
	s := e.Store
	ctx := ctxT(t)
	names := []string{"a{b}c", "a%7Bb%7Dc", "}{", "{}", "%", "%25", "x:y:z", "日本語🔒", "a%b"}
	for _, name := range names {
		res, err := s.Acquire(ctx, req(name, "alice", time.Minute))
		require.NoError(t, err, name)
		require.True(t, res.Acquired, "%q collided with another name", name)
	}
	for _, name := range names {
		sub, err := s.Subscribe(ctx, name, "t")
		require.NoError(t, err, name)
		waitedFor(t, s, name)
		held, remaining, err := s.Release(ctx, name, "alice", "")
		require.NoError(t, err, name)
		require.True(t, held, name)
		require.Zero(t, remaining, name)
		woken(t, sub, "the release of "+name)
		sub.Close()
		for _, k := range e.Layout.Keys(name) {
			assert.Equal(t, 1, strings.Count(k, "{"), "key %q of %q", k, name)
			assert.Equal(t, 1, strings.Count(k, "}"), "key %q of %q", k, name)
		}
	}
	assert.Empty(t, e.keys(t))
	assert.Len(t, e.keysMatching(t, "*:fence"), len(names), "each name has its own fence record")
}

func testNoKeysLeftAfterIdle(t *testing.T, h Harness) {
	e := newEnv(t, h, Options{})
	s := e.Store
	ctx := ctxT(t)
	holder := req("idle", "holder", time.Minute)
	_, err := s.AcquireFair(ctx, holder, time.Minute)
	require.NoError(t, err)
	w1, w2 := req("idle", "w1", time.Minute), req("idle", "w2", time.Minute)
	for _, r := range []driver.AcquireRequest{w1, w2} {
		_, err := s.AcquireFair(ctx, r, time.Minute)
		require.NoError(t, err)
	}
	require.NoError(t, s.Leave(ctx, "idle", w2.Ticket))
	_, _, err = s.Release(ctx, "idle", "holder", "")
	require.NoError(t, err)
	res, err := s.AcquireFair(ctx, w1, time.Minute)
	require.NoError(t, err)
	require.True(t, res.Acquired)
	_, _, err = s.Release(ctx, "idle", "w1", "")
	require.NoError(t, err)

	assert.Empty(t, e.keys(t))
	assert.Greater(t, e.pttl(t, e.Layout.Keys("idle")[rediscore.KeyFence]), time.Hour, "the fence record is kept for its retention")
}

func testScriptFlushRecovers(t *testing.T, h Harness) {
	e := newEnv(t, h, Options{})
	s, n := e.Store, e.Requests
	ctx := ctxT(t)

	e.must(t, "SCRIPT", "FLUSH")
	n.Reset()
	res, err := s.Acquire(ctx, req("a", "alice", time.Minute))
	require.NoError(t, err)
	assert.True(t, res.Acquired)
	assert.Equal(t, int64(2), n.Single.Load(), "EVALSHA, then EVAL on NOSCRIPT")
	n.Reset()
	held, err := s.Extend(ctx, "a", "alice", time.Minute) // another script: also flushed
	require.NoError(t, err)
	assert.True(t, held)
	assert.Equal(t, int64(2), n.Single.Load())
	n.Reset()
	_, err = s.Extend(ctx, "a", "alice", time.Minute)
	require.NoError(t, err)
	assert.Equal(t, int64(1), n.Single.Load(), "EVAL loaded the script")

	e.must(t, "SCRIPT", "FLUSH")
	n.Reset()
	batch := []driver.Extension{{Name: "a", Owner: "alice", Lease: time.Minute}, {Name: "b", Owner: "alice", Lease: time.Minute}}
	require.NoError(t, s.ExtendBatch(ctx, batch))
	assert.True(t, batch[0].Held)
	assert.False(t, batch[1].Held)
	assert.NoError(t, batch[0].Err)
	assert.NoError(t, batch[1].Err)
	assert.Equal(t, int64(2), n.Batches.Load(), "EVALSHA batch, then the EVAL batch")
	n.Reset()
	require.NoError(t, s.ExtendBatch(ctx, batch))
	assert.True(t, batch[0].Held)
	assert.Equal(t, int64(1), n.Batches.Load(), "EVAL loaded the script")
}

func testRoundTripsPerAcquireAndRelease(t *testing.T, h Harness) {
	e := newEnv(t, h, Options{})
	s, n := e.Store, e.Requests
	ctx := ctxT(t)
	// Load the scripts.
	_, err := s.Acquire(ctx, req("warm", "alice", time.Minute))
	require.NoError(t, err)
	_, _, err = s.Release(ctx, "warm", "alice", "")
	require.NoError(t, err)

	for _, fair := range []bool{false, true} {
		n.Reset()
		before := e.scriptCalls(t)
		r := req("rt", "alice", time.Minute)
		var res driver.AcquireResult
		if fair {
			res, err = s.AcquireFair(ctx, r, time.Minute)
		} else {
			res, err = s.Acquire(ctx, r)
		}
		require.NoError(t, err)
		require.True(t, res.Acquired)
		held, _, err := s.Release(ctx, "rt", "alice", "")
		require.NoError(t, err)
		require.True(t, held)
		assert.Equal(t, int64(2), n.Single.Load(), "round trips per acquire+release (fair=%v)", fair)
		assert.Zero(t, n.Batches.Load())
		assert.Equal(t, int64(2), e.scriptCalls(t)-before, "scripts the server ran (fair=%v)", fair)
	}
}

// testUncontendedPairCommands: with nobody waiting, acquire and release
// run only what the lock itself needs, inside their two scripts: no
// queue call and no publish in the release (INFO commandstats).
// handshake are commands that are not a lock operation's: the test's INFO
// and what a (re)connecting client sends.
var handshake = map[string]bool{"info": true, "hello": true, "auth": true, "ping": true, "select": true,
	"client|setinfo": true, "client|tracking": true, "client|setname": true}

func testUncontendedPairCommands(t *testing.T, h Harness) {
	e := newEnv(t, h, Options{})
	s := e.Store
	ctx := ctxT(t)
	_, err := s.Acquire(ctx, req("warm", "alice", time.Minute)) // load the scripts
	require.NoError(t, err)
	_, _, err = s.Release(ctx, "warm", "alice", "")
	require.NoError(t, err)
	for _, fair := range []bool{false, true} {
		before := e.commandStats(t)
		r := req("rt", "alice", time.Minute)
		var res driver.AcquireResult
		if fair {
			res, err = s.AcquireFair(ctx, r, time.Minute)
		} else {
			res, err = s.Acquire(ctx, r)
		}
		require.NoError(t, err)
		require.True(t, res.Acquired)
		_, _, err = s.Release(ctx, "rt", "alice", "")
		require.NoError(t, err)
		after := e.commandStats(t)
		ran := map[string]int64{}
		var total int64
		for cmd, calls := range after {
			// INFO is the test's own; a connection's handshake (a client
			// reconnecting on a loaded machine) is not the pair's.
			if d := calls - before[cmd]; d > 0 && !handshake[cmd] {
				ran[cmd] = d
				total += d
			}
		}
		for _, cmd := range []string{"zpopmin", "spublish", "publish", "hget", "hdel"} {
			assert.Zero(t, ran[cmd], "the uncontended pair ran %s (fair=%v): %v", cmd, fair, ran)
		}
		want := int64(8) // 2 EVALSHA; GET TIME SET..GET SET; GET DEL
		if fair {
			want++ // ZRANGE of the empty queue
		}
		assert.Equal(t, want, total, "commands of an uncontended pair (fair=%v): %v", fair, ran)
		t.Logf("uncontended pair (fair=%v): %d commands, the 2 EVALSHA included: %v", fair, total, ran)
	}
}

// failsWhileDown calls call with a short deadline, and asserts that it
// fails in time.
func failsWhileDown(t *testing.T, what string, call func(context.Context) error) {
	t.Helper()
	short, cancel := context.WithTimeout(ctxT(t), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- call(short) }()
	select {
	case err := <-done:
		assert.Error(t, err, what)
	case <-time.After(patience):
		t.Fatalf("timed out waiting for %s to fail", what)
	}
}

// testStoreDownFailsFastAndRecovers: with a subscription open, every
// operation fails in time while the server is down, and the subscription
// is woken on the reconnect and by a release after it.
func testStoreDownFailsFastAndRecovers(t *testing.T, h Harness) {
	e := newEnv(t, h, Options{})
	s := e.Store
	ctx := ctxT(t)
	_, err := s.Acquire(ctx, req("a", "alice", time.Minute))
	require.NoError(t, err)
	waiting := subscribe(t, s, "a", "w")

	e.srv.Stop()
	failsWhileDown(t, "acquire", func(ctx context.Context) error { _, err := s.Acquire(ctx, req("a", "bob", time.Minute)); return err })
	failsWhileDown(t, "release", func(ctx context.Context) error { _, _, err := s.Release(ctx, "a", "alice", ""); return err })
	failsWhileDown(t, "extend", func(ctx context.Context) error { _, err := s.Extend(ctx, "a", "alice", time.Minute); return err })
	failsWhileDown(t, "leave", func(ctx context.Context) error { return s.Leave(ctx, "a", "t") })
	failsWhileDown(t, "inspect", func(ctx context.Context) error { _, err := s.Inspect(ctx, "a"); return err })
	failsWhileDown(t, "extend batch", func(ctx context.Context) error {
		return s.ExtendBatch(ctx, []driver.Extension{{Name: "a", Owner: "alice", Lease: time.Minute}})
	})
	failsWhileDown(t, "subscribe", func(ctx context.Context) error {
		sub, err := s.Subscribe(ctx, "b", "t")
		if err == nil {
			sub.Close()
		}
		return err
	})

	e.srv.Restart(t)
	woken(t, waiting, "the wake-up after the reconnect")
	require.Eventually(t, func() bool {
		res, err := s.Acquire(ctx, req("a", "bob", time.Minute))
		return err == nil && res.Acquired
	}, patience, 10*time.Millisecond, "acquire after the restart")
	sub := subscribe(t, s, "a", "t")
	drain(waiting)
	waitedFor(t, s, "a")
	_, _, err = s.Release(ctx, "a", "bob", "")
	require.NoError(t, err)
	woken(t, sub, "a release after the restart, new subscription")
	woken(t, waiting, "a release after the restart, subscription from before the outage")
}

func testDeadlineOfABlockedServerIsMatchable(t *testing.T, h Harness) {
	e := newEnv(t, h, Options{})
	s := e.Store
	ctx := ctxT(t)
	_, err := s.Acquire(ctx, req("a", "alice", time.Minute)) // connection and script ready
	require.NoError(t, err)
	_, err = s.Extend(ctx, "a", "alice", time.Minute)
	require.NoError(t, err)
	// The server stops answering for a while.
	e.must(t, "CLIENT", "PAUSE", "1000", "ALL")

	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err = s.Acquire(short, req("a", "bob", time.Minute))
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	short, cancel = context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	err = s.ExtendBatch(short, []driver.Extension{{Name: "a", Owner: "alice", Lease: time.Minute}})
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, _, err = s.Release(cancelled, "a", "alice", "")
	assert.ErrorIs(t, err, context.Canceled)
}

// testGrantGoesOnlyToTheWaitersStore: a grant is published on the inbox
// channel of the store whose waiter got the lock, so another store waiting
// on the name (here even with the same ticket) does not receive it.
func testGrantGoesOnlyToTheWaitersStore(t *testing.T, h Harness) {
	e := newEnv(t, h, Options{})
	s, other := e.Store, e.open(t, Options{}).Store
	ctx := ctxT(t)
	_, err := s.AcquireFair(ctx, req("q", "holder", time.Minute), time.Minute)
	require.NoError(t, err)
	w := req("q", "w", time.Minute)
	res, err := s.AcquireFair(ctx, w, time.Minute)
	require.NoError(t, err)
	require.False(t, res.Acquired)
	sub := subscribe(t, s, "q", w.Ticket)
	elsewhere := subscribe(t, other, "q", w.Ticket)

	held, _, err := s.Release(ctx, "q", "holder", "")
	require.NoError(t, err)
	require.True(t, held)
	woken(t, sub, "the grant on the waiter's store")
	_, granted := sub.Granted()
	require.True(t, granted)
	e.probe(t, other, "q")
	notWoken(t, elsewhere, "the grant reached a store the waiter is not on")
	_, granted = elsewhere.Granted()
	assert.False(t, granted)
}
