package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/locker/driver"
)

// fairTests are the tests of the fair queue: positions, eviction, leaving
// and inspection.
var fairTests = []test{
	{"FairQueueOrderPositionAndHeadOnly", testFairQueueOrderPositionAndHeadOnly},
	{"FairQueueOrderAndPosition", testFairQueueOrderAndPosition},
	{"FairSingleAttemptDoesNotJoin", testFairSingleAttemptDoesNotJoin},
	{"FairReentryLeavesTheQueue", testFairReentryLeavesTheQueue},
	{"BargingIgnoresTheQueue", testBargingIgnoresTheQueue},
	{"FairFreeLockIsForTheHeadOnly", testFairFreeLockIsForTheHeadOnly},
	{"FairEvictsDeadWaiterAfterItsTTL", testFairEvictsDeadWaiterAfterItsTTL},
	{"FairEvictsALapsedHead", testFairEvictsALapsedHead},
	{"ReleaseEvictsLapsedBeforeWaking", testReleaseEvictsLapsedBeforeWaking},
	{"ReleaseWithOnlyLapsedWaitersFrees", testReleaseWithOnlyLapsedWaitersFrees},
	{"LeaveWakesTheNewHead", func(t *testing.T, h Harness) {
		t.Run("AfterAGrant", func(t *testing.T) { testLeaveAfterAGrant(t, h) })
		t.Run("OfAFreeLock", func(t *testing.T) { testLeaveOfAFreeLock(t, h) })
	}},
	{"LeaveWakesOnlyTheHeadOfAFreeLock", testLeaveWakesOnlyTheHeadOfAFreeLock},
	{"InspectQueue", func(t *testing.T, h Harness) {
		t.Run("OrderPositionsAndOwners", func(t *testing.T) { testInspectQueueOrder(t, h) })
		t.Run("HeartbeatWithinTTL", func(t *testing.T) { testInspectQueueHeartbeat(t, h) })
		t.Run("LapsedWaiterIsNegative", func(t *testing.T) { testInspectQueueLapsed(t, h) })
	}},
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
		assert.LessOrEqual(t, res.TTL, time.Minute, "attempt %d", i)
		if res.Position == 0 {
			assert.Positive(t, res.TTL, "the head learns the holder's lease")
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

// inspect returns the state of name.
func inspect(t *testing.T, s driver.Inspector, name string) driver.State {
	t.Helper()
	st, err := s.Inspect(ctxT(t), name)
	require.NoError(t, err)
	return st
}

// fair makes a fair attempt with waiterTTL and returns its result.
func fair(t *testing.T, s driver.Queue, r driver.AcquireRequest, waiterTTL time.Duration) driver.AcquireResult {
	t.Helper()
	res, err := s.AcquireFair(ctxT(t), r, waiterTTL)
	require.NoError(t, err)
	return res
}

// release releases name for owner (scoped to ticket unless empty) and
// reports whether owner held it.
func release(t *testing.T, s driver.Backend, name, owner, ticket string) bool {
	t.Helper()
	held, _, err := s.Release(ctxT(t), name, owner, ticket)
	require.NoError(t, err)
	return held
}

func testFairQueueOrderPositionAndHeadOnly(t *testing.T, h Harness) {
	s := start(t, h).Store
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
	st := inspect(t, s, "q")
	assert.Equal(t, driver.State{Owner: "b", Count: 1, Fence: fence, TTL: st.TTL, Waiters: 1}, st)
	assert.Greater(t, fence, res.Fence)
	assert.Positive(t, st.TTL)

	// c is the head now, but b holds the lock.
	resC := fair(t, s, c, time.Minute)
	assert.False(t, resC.Acquired)
	assert.Equal(t, 0, resC.Position)
	assert.Positive(t, resC.TTL)

	// b claims the grant with its ticket: an idempotent re-entry.
	resB := fair(t, s, b, time.Minute)
	assert.Equal(t, driver.AcquireResult{Acquired: true, Fence: fence, Count: 1, Position: -1}, resB)
}

func testFairQueueOrderAndPosition(t *testing.T, h Harness) {
	s := start(t, h).Store
	queueTwo(t, s)

	// A single fair attempt honours the queue without joining it.
	try := fair(t, s, req("q", "try", time.Minute), 0)
	assert.False(t, try.Acquired)
	assert.Equal(t, -1, try.Position)
	barge(t, s)
	assert.Equal(t, 2, inspect(t, s, "q").Waiters, "attempts that do not queue changed the queue")
}

// testFairSingleAttemptDoesNotJoin: a fair attempt with a zero waiter TTL
// is never queued, so never granted the lock; it honours the queue, and
// wakes nobody.
func testFairSingleAttemptDoesNotJoin(t *testing.T, h Harness) {
	srv := start(t, h)
	s := srv.Store
	_, err := s.Acquire(ctxT(t), req("q", "a", time.Minute))
	require.NoError(t, err)
	res := fair(t, s, req("q", "b", time.Minute), 0)
	assert.False(t, res.Acquired)
	assert.Equal(t, -1, res.Position)
	assert.Positive(t, res.TTL, "the holder's lease")
	assert.Zero(t, inspect(t, s, "q").Waiters, "a zero waiter TTL does not join")
	require.True(t, release(t, s, "q", "a", ""))
	assert.Equal(t, driver.State{}, inspect(t, s, "q"), "a single attempt is never granted the lock")

	_, err = s.Acquire(ctxT(t), req("q", "a", time.Minute))
	require.NoError(t, err)
	c := req("q", "c", time.Minute)
	require.False(t, fair(t, s, c, time.Minute).Acquired)
	srv.Expire(t, "q") // free, with c at the head
	subC := subscribe(t, s, "q", c.Ticket)
	res = fair(t, s, req("q", "b", time.Minute), 0)
	assert.False(t, res.Acquired, "a single attempt honours the queue")
	assert.Equal(t, -1, res.Position)
	assert.Negative(t, res.TTL, "free, but another waiter is ahead")
	srv.Flush(t, s, "q")
	notWoken(t, subC, "a single attempt woke the head")
	assert.Equal(t, 1, inspect(t, s, "q").Waiters)
	assert.True(t, fair(t, s, c, 0).Acquired, "the head takes it with a single attempt")
	assert.Zero(t, inspect(t, s, "q").Waiters)
}

// testFairReentryLeavesTheQueue: an owner that holds the lock re-enters
// with a fair attempt of a ticket it had queued, which leaves the queue.
func testFairReentryLeavesTheQueue(t *testing.T, h Harness) {
	srv := start(t, h)
	s := srv.Store
	_, err := s.Acquire(ctxT(t), req("q", "x", time.Minute))
	require.NoError(t, err)
	// Owner a queues one call, then, once x's lease lapsed, takes the lock
	// with another one.
	queued := req("q", "a", time.Minute)
	require.False(t, fair(t, s, queued, time.Minute).Acquired)
	srv.Expire(t, "q")
	res, err := s.Acquire(ctxT(t), req("q", "a", time.Minute))
	require.NoError(t, err)
	require.True(t, res.Acquired)

	again := fair(t, s, queued, time.Minute)
	assert.True(t, again.Acquired)
	assert.Equal(t, 2, again.Count)
	assert.Equal(t, res.Fence, again.Fence)
	assert.Zero(t, inspect(t, s, "q").Waiters, "the re-entering ticket left the queue")
	assert.Len(t, srv.Records(t), 1, "the queue's records are gone: %v", srv.Records(t))
}

// testBargingIgnoresTheQueue: a barging attempt takes a free lock whoever
// is queued and leaves the queue alone; its final release hands the lock
// to the head all the same, once the head found it taken.
func testBargingIgnoresTheQueue(t *testing.T, h Harness) {
	srv := start(t, h)
	s := srv.Store
	_, err := s.Acquire(ctxT(t), req("q", "a", time.Minute))
	require.NoError(t, err)
	b := req("q", "b", time.Minute)
	require.False(t, fair(t, s, b, time.Minute).Acquired)
	subB := subscribe(t, s, "q", b.Ticket)
	srv.Expire(t, "q") // free, with b queued

	res, err := s.Acquire(ctxT(t), req("q", "d", time.Minute))
	require.NoError(t, err)
	assert.True(t, res.Acquired, "barging takes a free lock whoever is queued")
	st := inspect(t, s, "q")
	assert.Equal(t, "d", st.Owner)
	assert.Equal(t, 1, st.Waiters, "barging leaves the queue alone")

	// b's next attempt finds the lock taken, as every waiter's before it
	// sleeps: d's final release hands the lock to b all the same.
	res = fair(t, s, b, time.Minute)
	assert.False(t, res.Acquired)
	assert.Equal(t, 0, res.Position)
	require.True(t, release(t, s, "q", "d", ""))
	woken(t, subB, "the grant to the head")
	fence, ok := subB.Granted()
	assert.True(t, ok)
	st = inspect(t, s, "q")
	assert.Equal(t, "b", st.Owner, "a barging holder's final release hands the lock to the fair head all the same")
	assert.Equal(t, fence, st.Fence)
	assert.Zero(t, st.Waiters)
}

// queueBC takes lock "q" fairly for "holder", queues b and c behind it and
// subscribes them; it returns the holder's result.
func queueBC(t *testing.T, s Store) (first driver.AcquireResult, b, c driver.AcquireRequest, subB, subC driver.Subscription) {
	t.Helper()
	first = fair(t, s, req("q", "holder", time.Minute), time.Minute)
	b, c = req("q", "b", time.Minute), req("q", "c", time.Minute)
	for _, r := range []driver.AcquireRequest{b, c} {
		fair(t, s, r, time.Minute)
	}
	return first, b, c, subscribe(t, s, "q", b.Ticket), subscribe(t, s, "q", c.Ticket)
}

func testFairFreeLockIsForTheHeadOnly(t *testing.T, h Harness) {
	srv := start(t, h)
	s := srv.Store
	_, b, c, subB, subC := queueBC(t, s)
	d := subscribe(t, s, "q", "d")
	srv.Expire(t, "q")
	srv.Flush(t, s, "q")
	for what, sub := range map[string]driver.Subscription{"b": subB, "c": subC, "d": d} {
		notWoken(t, sub, "lease expiry woke "+what)
	}

	// c is not at the head: it must not take the free lock, and the head is
	// told.
	resC := fair(t, s, c, time.Minute)
	assert.False(t, resC.Acquired)
	assert.Equal(t, 1, resC.Position)
	assert.Negative(t, resC.TTL, "free lock with another waiter ahead")
	woken(t, subB, "the head's nudge when a non-head found the lock free")
	_, granted := subB.Granted()
	assert.False(t, granted, "a nudge is no grant")
	srv.Flush(t, s, "q")
	notWoken(t, subC, "the nudge woke a waiter that is not the head")
	notWoken(t, d, "the nudge woke a subscription of no queued ticket")

	resB := fair(t, s, b, time.Minute)
	assert.True(t, resB.Acquired)
	assert.Equal(t, 1, inspect(t, s, "q").Waiters, "the head left the queue when it took the lock")
	resC = fair(t, s, c, time.Minute)
	assert.Equal(t, 0, resC.Position)

	// b's release hands the lock to c, the head now, and wakes only c.
	require.True(t, release(t, s, "q", "b", ""))
	woken(t, subC, "the new head's grant")
	srv.Flush(t, s, "q")
	notWoken(t, subB, "the grant woke the former holder")
	notWoken(t, d, "the grant woke a subscription of no queued ticket")
	assert.Equal(t, "c", inspect(t, s, "q").Owner)
	require.True(t, fair(t, s, c, time.Minute).Acquired)
	assert.Zero(t, inspect(t, s, "q").Waiters)
}

func testFairEvictsDeadWaiterAfterItsTTL(t *testing.T, h Harness) {
	srv := start(t, h)
	s := srv.Store
	ctx := ctxT(t)
	fair(t, s, req("q", "holder", time.Minute), time.Minute)
	dead, live := req("q", "dead", time.Minute), req("q", "live", time.Minute)
	fair(t, s, dead, 50*time.Millisecond) // never heard of again
	res := fair(t, s, live, time.Minute)
	require.Equal(t, 1, res.Position)
	_, _, err := s.Release(ctx, "q", "holder", "")
	require.NoError(t, err)
	srv.Pass(t, 50*time.Millisecond) // the dead waiter's heartbeat, or its grant, lapses

	require.Eventually(t, func() bool {
		res, err := s.AcquireFair(ctx, live, time.Minute)
		return err == nil && res.Acquired
	}, patience, 10*time.Millisecond, "the dead waiter stalled the queue")
	_, _, err = s.Release(ctx, "q", "live", "")
	require.NoError(t, err)
	assert.Empty(t, srv.Records(t), "records left behind after the queue emptied")
}

// testFairEvictsALapsedHead: a waiter behind a head that stopped
// heartbeating waits for the head's heartbeat to lapse, then takes the
// free lock.
func testFairEvictsALapsedHead(t *testing.T, h Harness) {
	srv := start(t, h)
	s := srv.Store
	_, err := s.Acquire(ctxT(t), req("q", "a", time.Minute))
	require.NoError(t, err)
	const wt = 300 * time.Millisecond
	require.False(t, fair(t, s, req("q", "b", time.Minute), wt).Acquired)
	// b dies; a's lease lapses; c waits behind b until b's heartbeat lapses.
	srv.Expire(t, "q")
	c := req("q", "c", time.Minute)
	res := fair(t, s, c, time.Minute)
	assert.False(t, res.Acquired)
	assert.Equal(t, 1, res.Position)
	assert.Negative(t, res.TTL)
	srv.Pass(t, wt)
	assert.True(t, fair(t, s, c, time.Minute).Acquired)
	assert.Zero(t, inspect(t, s, "q").Waiters)
}

func testReleaseEvictsLapsedBeforeWaking(t *testing.T, h Harness) {
	srv := start(t, h)
	s := srv.Store
	_, err := s.Acquire(ctxT(t), req("q", "a", time.Minute))
	require.NoError(t, err)
	b, c := req("q", "b", time.Minute), req("q", "c", time.Minute)
	subB, subC := subscribe(t, s, "q", b.Ticket), subscribe(t, s, "q", c.Ticket)
	require.False(t, fair(t, s, b, 50*time.Millisecond).Acquired)
	require.False(t, fair(t, s, c, time.Minute).Acquired)
	srv.Pass(t, 50*time.Millisecond)

	require.True(t, release(t, s, "q", "a", ""))
	woken(t, subC, "the grant to the next live waiter")
	srv.Flush(t, s, "q")
	notWoken(t, subB, "the lapsed head is evicted, not woken")
	_, ok := subB.Granted()
	assert.False(t, ok, "nor granted the lock")
	_, ok = subC.Granted()
	assert.True(t, ok)
	st := inspect(t, s, "q")
	assert.Equal(t, "c", st.Owner, "the next live waiter is granted the lock")
	assert.Zero(t, st.Waiters)
}

func testReleaseWithOnlyLapsedWaitersFrees(t *testing.T, h Harness) {
	srv := start(t, h)
	s := srv.Store
	_, err := s.Acquire(ctxT(t), req("q", "a", time.Minute))
	require.NoError(t, err)
	b := req("q", "b", time.Minute)
	subB, subX := subscribe(t, s, "q", b.Ticket), subscribe(t, s, "q", "x")
	require.False(t, fair(t, s, b, 50*time.Millisecond).Acquired)
	srv.Pass(t, 50*time.Millisecond)

	require.True(t, release(t, s, "q", "a", ""))
	assert.Equal(t, driver.State{}, inspect(t, s, "q"), "a lapsed waiter is evicted, never granted the lock")
	for what, sub := range map[string]driver.Subscription{"b": subB, "x": subX} {
		woken(t, sub, what+": with the queue empty after eviction, the release broadcasts")
		_, ok := sub.Granted()
		assert.False(t, ok, "%s: a broadcast grants nothing", what)
	}
	assert.Empty(t, srv.Records(t))
}

// queueBCD takes lock "q" fairly for "holder", queues b, c and d behind
// it, subscribes c and d, and checks that the head leaving while the lock
// is held wakes nobody.
func queueBCD(t *testing.T, srv *Server) (b, c, d driver.AcquireRequest, subC, subD driver.Subscription) {
	t.Helper()
	s := srv.Store
	ctx := ctxT(t)
	fair(t, s, req("q", "holder", time.Minute), time.Minute)
	b, c, d = req("q", "b", time.Minute), req("q", "c", time.Minute), req("q", "d", time.Minute)
	for _, r := range []driver.AcquireRequest{b, c, d} {
		fair(t, s, r, time.Minute)
	}
	subC, subD = subscribe(t, s, "q", c.Ticket), subscribe(t, s, "q", d.Ticket)

	// While the lock is held, a departing head wakes nobody.
	require.NoError(t, s.Leave(ctx, "q", b.Ticket))
	srv.Flush(t, s, "q")
	notWoken(t, subC, "a waiter was woken while the lock is held")
	return b, c, d, subC, subD
}

func testLeaveAfterAGrant(t *testing.T, h Harness) {
	srv := start(t, h)
	s := srv.Store
	ctx := ctxT(t)
	_, c, _, subC, subD := queueBCD(t, srv)
	_, _, err := s.Release(ctx, "q", "holder", "") // grants c, the head now
	require.NoError(t, err)
	woken(t, subC, "the head's grant")
	_, granted := subC.Granted()
	require.True(t, granted)

	// c gives up after the grant: leaving wakes nobody (the lock is held),
	// and the ticket-scoped release that undoes the grant hands it to d.
	require.NoError(t, s.Leave(ctx, "q", c.Ticket))
	srv.Flush(t, s, "q")
	notWoken(t, subD, "a waiter was woken while the lock is granted")
	held, _, err := s.Release(ctx, "q", "c", c.Ticket)
	require.NoError(t, err)
	require.True(t, held)
	woken(t, subD, "the new head's grant")
	st := inspect(t, s, "q")
	assert.Equal(t, "d", st.Owner)
	assert.Zero(t, st.Waiters)
	require.NoError(t, s.Leave(ctx, "q", c.Ticket), "leaving twice is not an error")

	// A head that leaves a free lock wakes the next: free the lock by
	// expiry (no release, no grant) with e queued behind f.
	e1, f := req("q", "e", time.Minute), req("q", "f", time.Minute)
	for _, r := range []driver.AcquireRequest{e1, f} {
		fair(t, s, r, time.Minute)
	}
	subF := subscribe(t, s, "q", f.Ticket)
	held, err = s.Extend(ctx, "q", "d", time.Millisecond)
	require.NoError(t, err)
	require.True(t, held)
	srv.Pass(t, time.Millisecond)
	require.Eventually(t, func() bool {
		st, err := s.Inspect(ctx, "q")
		return err == nil && st.Owner == ""
	}, patience, time.Millisecond, "the lease to run out")
	require.NoError(t, s.Leave(ctx, "q", e1.Ticket))
	woken(t, subF, "the new head's wake-up after the head left a free lock")
}

func testLeaveOfAFreeLock(t *testing.T, h Harness) {
	srv := start(t, h)
	s := srv.Store
	ctx := ctxT(t)
	_, c, _, subC, subD := queueBCD(t, srv)

	srv.Expire(t, "q")
	require.NoError(t, s.Leave(ctx, "q", c.Ticket)) // the head gives up on a free lock
	woken(t, subD, "the new head's wake-up")
	srv.Flush(t, s, "q")
	notWoken(t, subC, "a departed waiter was woken")
	require.NoError(t, s.Leave(ctx, "q", c.Ticket), "leaving twice is not an error")
	assert.Equal(t, 1, inspect(t, s, "q").Waiters)
}

// testLeaveWakesOnlyTheHeadOfAFreeLock: of every Leave, only that of the
// head of a free lock wakes anyone, and only the new head; a queue
// everybody left keeps no record.
func testLeaveWakesOnlyTheHeadOfAFreeLock(t *testing.T, h Harness) {
	srv := start(t, h)
	s := srv.Store
	ctx := ctxT(t)
	_, err := s.Acquire(ctx, req("q", "a", time.Minute))
	require.NoError(t, err)
	tickets := map[string]driver.AcquireRequest{}
	subs := map[string]driver.Subscription{}
	for _, w := range []string{"b", "c", "d", "e"} {
		tickets[w] = req("q", w, time.Minute)
		subs[w] = subscribe(t, s, "q", tickets[w].Ticket)
		require.False(t, fair(t, s, tickets[w], time.Minute).Acquired)
	}
	noWakes := func(what string) {
		t.Helper()
		srv.Flush(t, s, "q")
		for w, sub := range subs {
			notWoken(t, sub, what+": "+w)
		}
	}

	require.NoError(t, s.Leave(ctx, "q", tickets["b"].Ticket))
	noWakes("the head left while the lock is held")
	require.NoError(t, s.Leave(ctx, "q", "nope"))
	assert.Equal(t, 3, inspect(t, s, "q").Waiters)

	srv.Expire(t, "q")
	noWakes("lease expiry")
	require.NoError(t, s.Leave(ctx, "q", tickets["d"].Ticket))
	noWakes("a waiter that is not the head left")
	require.NoError(t, s.Leave(ctx, "q", tickets["c"].Ticket))
	woken(t, subs["e"], "the head left a free lock: the new head")
	noWakes("only the new head")

	require.NoError(t, s.Leave(ctx, "q", tickets["e"].Ticket))
	assert.Equal(t, driver.State{}, inspect(t, s, "q"))
	assert.Empty(t, srv.Records(t))
}

func testInspectQueueOrder(t *testing.T, h Harness) {
	s := start(t, h).Store
	ctx := ctxT(t)
	q, err := s.InspectQueue(ctx, "q")
	require.NoError(t, err)
	assert.NotNil(t, q, "an empty queue is an empty slice")
	assert.Empty(t, q)

	_, b, c := queueTwo(t, s)
	d := req("q", "d", time.Minute)
	fair(t, s, d, time.Minute)
	_, err = s.Acquire(ctx, req("q", "barger", time.Minute)) // not queued
	require.NoError(t, err)
	fair(t, s, req("q", "try", time.Minute), 0) // not queued either

	q, err = s.InspectQueue(ctx, "q")
	require.NoError(t, err)
	require.Len(t, q, 3)
	for i, r := range []driver.AcquireRequest{b, c, d} {
		assert.Equal(t, i, q[i].Position, "waiter %d", i)
		assert.Equal(t, r.Ticket, q[i].Ticket, "waiter %d", i)
		assert.Equal(t, r.Owner, q[i].Owner, "waiter %d", i)
		assert.Equal(t, time.Minute, q[i].TTL, "waiter %d", i)
	}
	assert.Equal(t, 3, inspect(t, s, "q").Waiters, "InspectQueue changed the queue")

	require.NoError(t, s.Leave(ctx, "q", c.Ticket))
	q, err = s.InspectQueue(ctx, "q")
	require.NoError(t, err)
	require.Len(t, q, 2)
	assert.Equal(t, []string{b.Ticket, d.Ticket}, []string{q[0].Ticket, q[1].Ticket})
	assert.Equal(t, []int{0, 1}, []int{q[0].Position, q[1].Position})

	// The grant to b takes it out of the queue.
	require.True(t, release(t, s, "q", "holder", ""))
	q, err = s.InspectQueue(ctx, "q")
	require.NoError(t, err)
	require.Len(t, q, 1)
	assert.Equal(t, driver.Waiter{Position: 0, Ticket: d.Ticket, Owner: "d", Heartbeat: q[0].Heartbeat, TTL: time.Minute}, q[0])
}

func testInspectQueueHeartbeat(t *testing.T, h Harness) {
	srv := start(t, h)
	s := srv.Store
	ctx := ctxT(t)
	_, err := s.Acquire(ctx, req("q", "a", time.Minute))
	require.NoError(t, err)
	b := req("q", "b", time.Minute)
	fair(t, s, b, 10*time.Second)
	q, err := s.InspectQueue(ctx, "q")
	require.NoError(t, err)
	require.Len(t, q, 1)
	assert.Positive(t, q[0].Heartbeat)
	assert.LessOrEqual(t, q[0].Heartbeat, 10*time.Second, "the heartbeat is within the waiter's TTL")
	assert.Equal(t, 10*time.Second, q[0].TTL)

	srv.Pass(t, time.Second)
	q, err = s.InspectQueue(ctx, "q")
	require.NoError(t, err)
	require.Len(t, q, 1)
	assert.Less(t, q[0].Heartbeat, 9*time.Second, "the heartbeat runs down with the clock")
	assert.Positive(t, q[0].Heartbeat)

	fair(t, s, b, 10*time.Second) // renews the heartbeat
	q, err = s.InspectQueue(ctx, "q")
	require.NoError(t, err)
	require.Len(t, q, 1)
	assert.Greater(t, q[0].Heartbeat, 9*time.Second, "a renewed heartbeat")
	assert.LessOrEqual(t, q[0].Heartbeat, 10*time.Second)
}

func testInspectQueueLapsed(t *testing.T, h Harness) {
	srv := start(t, h)
	s := srv.Store
	ctx := ctxT(t)
	_, err := s.Acquire(ctx, req("q", "a", time.Minute))
	require.NoError(t, err)
	lapsed, live := req("q", "lapsed", time.Minute), req("q", "live", time.Minute)
	fair(t, s, lapsed, 50*time.Millisecond)
	fair(t, s, live, time.Minute)
	srv.Pass(t, 50*time.Millisecond)

	q, err := s.InspectQueue(ctx, "q")
	require.NoError(t, err)
	require.Len(t, q, 2, "a lapsed waiter is listed until an operation evicts it")
	assert.Equal(t, lapsed.Ticket, q[0].Ticket)
	assert.Negative(t, q[0].Heartbeat, "a lapsed waiter")
	assert.Equal(t, live.Ticket, q[1].Ticket)
	assert.Positive(t, q[1].Heartbeat)

	// A store evicts a lapsed waiter at the latest when it stands at the
	// head of the queue of a free lock.
	srv.Expire(t, "q")
	res := fair(t, s, live, time.Minute)
	assert.True(t, res.Acquired, "the lapsed head was evicted")
	q, err = s.InspectQueue(ctx, "q")
	require.NoError(t, err)
	assert.Empty(t, q)
}
