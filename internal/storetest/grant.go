package storetest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/locker/driver"
)

// grantTests are the tests of what a final release does: the direct grant
// to the head of the queue, or a broadcast with nobody queued.
var grantTests = []test{
	{"FairReleaseGrantsTheHead", testFairReleaseGrantsTheHead},
	{"GrantIsForTheShorterOfLeaseAndWaiterTTL", testGrantLease},
	{"GrantClaimIsIdempotent", testGrantClaimIsIdempotent},
	{"GrantRunsOutWithoutAClaim", testGrantRunsOutWithoutAClaim},
	{"GiveUpUndoesTheGrant", testGiveUpUndoesTheGrant},
	{"LeaveRemovesTheGrant", testLeaveRemovesTheGrant},
	{"NotAcquiredReportsTheNewestFence", testNotAcquiredReportsTheNewestFence},
	{"ReleaseBroadcastsWithoutQueue", testReleaseBroadcastsWithoutQueue},
}

func testFairReleaseGrantsTheHead(t *testing.T, h Harness) {
	srv := start(t, h)
	s := srv.Store
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
	srv.Flush(t, s, "q")
	notWoken(t, subC, "the release woke a waiter that is not the head")
	_, granted = subC.Granted()
	assert.False(t, granted)

	st := inspect(t, s, "q")
	assert.Equal(t, driver.State{Owner: "b", Count: 1, Fence: fence, TTL: st.TTL, Waiters: 1}, st)
	assert.Positive(t, st.TTL)

	// The grant is claimed by the head's next attempt, as a re-entry of the
	// same ticket: the hold is not counted twice.
	claim := fair(t, s, b, time.Minute)
	assert.Equal(t, driver.AcquireResult{Acquired: true, Fence: fence, Count: 1, Position: -1}, claim)
	resC := fair(t, s, c, time.Minute)
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

// testGrantLease: a grant holds the lock for the head's owner, once, with
// a fresh fence and the head's ticket as the latest acquisition, for
// min(lease, waiter TTL) from the release; the message carries the fence.
func testGrantLease(t *testing.T, h Harness) {
	srv := start(t, h)
	s := srv.Store
	first, err := s.Acquire(ctxT(t), req("q", "a", time.Minute))
	require.NoError(t, err)
	// b asks for a lease shorter than its waiter TTL, c for a longer one.
	b, c := req("q", "b", 30*time.Second), req("q", "c", time.Hour)
	subB, subC, subX := subscribe(t, s, "q", b.Ticket), subscribe(t, s, "q", c.Ticket), subscribe(t, s, "q", "x")
	require.False(t, fair(t, s, b, time.Minute).Acquired)
	require.False(t, fair(t, s, c, time.Minute).Acquired)

	require.True(t, release(t, s, "q", "a", ""))
	st := inspect(t, s, "q")
	assert.Equal(t, driver.State{Owner: "b", Count: 1, Fence: st.Fence, TTL: st.TTL, Waiters: 1}, st,
		"the head holds the lock, once, and left the queue")
	assert.LessOrEqual(t, st.TTL, 30*time.Second, "the grant's lease is the shorter lease")
	assert.Greater(t, st.TTL, 20*time.Second)
	assert.Greater(t, st.Fence, first.Fence, "a grant is a fresh acquisition")
	woken(t, subB, "the grant")
	fence, ok := subB.Granted()
	assert.True(t, ok, "the head's subscription is told of the grant")
	assert.Equal(t, st.Fence, fence, "the message carries the fence")
	srv.Flush(t, s, "q")
	for what, sub := range map[string]driver.Subscription{"c": subC, "x": subX} {
		notWoken(t, sub, what+" woken by a grant to another ticket")
		_, ok := sub.Granted()
		assert.False(t, ok, "%s told of a grant to another ticket", what)
	}

	// b never claims: the grant is a holding of b's owner all the same, and
	// of b's ticket.
	held, remaining, err := s.Release(ctxT(t), "q", "b", b.Ticket)
	require.NoError(t, err)
	require.True(t, held, "the grantee's ticket is the latest acquisition")
	assert.Zero(t, remaining)
	next := inspect(t, s, "q")
	assert.Equal(t, driver.State{Owner: "c", Count: 1, Fence: next.Fence, TTL: next.TTL}, next)
	assert.LessOrEqual(t, next.TTL, time.Minute, "a lease longer than the waiter TTL is granted for the waiter TTL")
	assert.Greater(t, next.TTL, 50*time.Second)
	assert.Greater(t, next.Fence, st.Fence)
	woken(t, subC, "the second grant")
	fence, ok = subC.Granted()
	assert.True(t, ok)
	assert.Equal(t, next.Fence, fence)
}

func testGrantClaimIsIdempotent(t *testing.T, h Harness) {
	srv := start(t, h)
	s := srv.Store
	_, err := s.Acquire(ctxT(t), req("q", "a", time.Minute))
	require.NoError(t, err)
	b := req("q", "b", time.Hour)
	require.False(t, fair(t, s, b, time.Minute).Acquired)
	require.True(t, release(t, s, "q", "a", ""))
	granted := inspect(t, s, "q")
	require.Equal(t, "b", granted.Owner)
	require.LessOrEqual(t, granted.TTL, time.Minute)

	want := driver.AcquireResult{Acquired: true, Fence: granted.Fence, Count: 1, Position: -1}
	assert.Equal(t, want, fair(t, s, b, time.Minute), "the grantee's attempt claims the grant as a re-entry")
	st := inspect(t, s, "q")
	assert.Equal(t, driver.State{Owner: "b", Count: 1, Fence: granted.Fence, TTL: st.TTL}, st, "the claim keeps count and fence")
	assert.Greater(t, st.TTL, 50*time.Minute, "and sets the full lease")
	assert.Equal(t, want, fair(t, s, b, time.Minute), "claiming twice counts once")
	res, err := s.Acquire(ctxT(t), b)
	require.NoError(t, err)
	assert.Equal(t, want, res, "a barging attempt claims alike")

	held, remaining, err := s.Release(ctxT(t), "q", "b", "")
	require.NoError(t, err)
	assert.True(t, held)
	assert.Zero(t, remaining, "one release undoes the grant and its claims")
	assert.Equal(t, driver.State{}, inspect(t, s, "q"))
}

func testGrantRunsOutWithoutAClaim(t *testing.T, h Harness) {
	srv := start(t, h)
	s := srv.Store
	_, err := s.Acquire(ctxT(t), req("q", "a", time.Minute))
	require.NoError(t, err)
	const wt = 300 * time.Millisecond
	b, c := req("q", "b", time.Minute), req("q", "c", time.Minute)
	require.False(t, fair(t, s, b, wt).Acquired)
	require.False(t, fair(t, s, c, time.Minute).Acquired)
	require.True(t, release(t, s, "q", "a", ""))
	st := inspect(t, s, "q")
	require.Equal(t, "b", st.Owner)
	res := fair(t, s, c, time.Minute)
	assert.Equal(t, driver.AcquireResult{Position: 0, Fence: st.Fence, TTL: res.TTL}, res, "the grant stands")
	assert.Positive(t, res.TTL)

	// b died before it heard of the grant: it runs out after b's waiter TTL.
	srv.Pass(t, wt)
	res = fair(t, s, c, time.Minute)
	assert.True(t, res.Acquired, "the next waiter takes the lock once the grant ran out")
	assert.Greater(t, res.Fence, st.Fence)
	next := inspect(t, s, "q")
	assert.Equal(t, driver.State{Owner: "c", Count: 1, Fence: res.Fence, TTL: next.TTL}, next)
	assert.Greater(t, next.TTL, 50*time.Second)
}

func testGiveUpUndoesTheGrant(t *testing.T, h Harness) {
	srv := start(t, h)
	s := srv.Store
	ctx := ctxT(t)
	_, err := s.Acquire(ctx, req("q", "a", time.Minute))
	require.NoError(t, err)
	b, c := req("q", "b", time.Hour), req("q", "c", time.Hour)
	subC := subscribe(t, s, "q", c.Ticket)
	require.False(t, fair(t, s, b, time.Minute).Acquired)
	require.False(t, fair(t, s, c, time.Minute).Acquired)
	require.True(t, release(t, s, "q", "a", ""))

	// b gave up as the grant came: it leaves the queue, then undoes what
	// its ticket holds.
	require.NoError(t, s.Leave(ctx, "q", b.Ticket))
	assert.Equal(t, "b", inspect(t, s, "q").Owner, "Leave does not undo a grant")
	assert.False(t, release(t, s, "q", "b", "another-ticket"), "a release scoped to another ticket does not undo the grant")
	srv.Flush(t, s, "q")
	notWoken(t, subC, "a waiter was woken while the grant stands")
	held, remaining, err := s.Release(ctx, "q", "b", b.Ticket)
	require.NoError(t, err)
	assert.True(t, held)
	assert.Zero(t, remaining)
	st := inspect(t, s, "q")
	assert.Equal(t, driver.State{Owner: "c", Count: 1, Fence: st.Fence, TTL: st.TTL}, st, "the undone grant goes on to the next head")
	assert.LessOrEqual(t, st.TTL, time.Minute)
	woken(t, subC, "the grant to the next head")
	fence, ok := subC.Granted()
	assert.True(t, ok)
	assert.Equal(t, st.Fence, fence)
	assert.False(t, release(t, s, "q", "b", b.Ticket), "a grant is undone once")
}

func testLeaveRemovesTheGrant(t *testing.T, h Harness) {
	srv := start(t, h)
	s := srv.Store
	ctx := ctxT(t)
	_, err := s.Acquire(ctx, req("q", "a", time.Minute))
	require.NoError(t, err)
	b, c := req("q", "b", time.Minute), req("q", "c", time.Minute)
	require.False(t, fair(t, s, b, time.Minute).Acquired)
	require.False(t, fair(t, s, c, time.Minute).Acquired)
	require.NoError(t, s.Leave(ctx, "q", b.Ticket))
	require.NoError(t, s.Leave(ctx, "q", c.Ticket))
	assert.Len(t, srv.Records(t), 1, "the queue's records went with its last waiter: %v", srv.Records(t))

	subB := subscribe(t, s, "q", b.Ticket)
	waitedFor(t, s, "q")
	require.True(t, release(t, s, "q", "a", ""))
	assert.Equal(t, driver.State{}, inspect(t, s, "q"), "a waiter that left is never granted the lock")
	woken(t, subB, "the queue is empty: the release broadcasts")
	_, ok := subB.Granted()
	assert.False(t, ok)
}

// testNotAcquiredReportsTheNewestFence: a "not acquired" answer carries
// the newest token issued for the name, so that a waiter can tell a stale
// grant from a fresh one.
func testNotAcquiredReportsTheNewestFence(t *testing.T, h Harness) {
	srv := start(t, h)
	s := srv.Store
	ctx := ctxT(t)
	holder, _, c := queueTwo(t, s)
	res := fair(t, s, c, time.Minute)
	assert.Equal(t, holder.Fence, res.Fence, "behind the head: the holder's fence")
	res, err := s.Acquire(ctx, req("q", "barger", time.Minute))
	require.NoError(t, err)
	assert.Equal(t, holder.Fence, res.Fence, "barging: the holder's fence")

	// The grant to b lapses; the answer to c carries the grant's fence.
	_, _, err = s.Release(ctx, "q", "holder", "")
	require.NoError(t, err)
	st := inspect(t, s, "q")
	require.Equal(t, "b", st.Owner)
	granted := st.Fence
	assert.Greater(t, granted, holder.Fence)
	res = fair(t, s, c, time.Minute)
	assert.Equal(t, granted, res.Fence, "while the grant stands")
	srv.Expire(t, "q")
	res = fair(t, s, req("q", "late", time.Minute), time.Minute)
	require.False(t, res.Acquired, "c is the head of the free lock")
	assert.Equal(t, granted, res.Fence, "a free lock: the last token issued")
}

func testReleaseBroadcastsWithoutQueue(t *testing.T, h Harness) {
	srv := start(t, h)
	s := srv.Store
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
	assert.Equal(t, driver.State{}, inspect(t, s, "a"), "with an empty queue the release frees the lock")
	woken(t, w1, "broadcast to the first waiter")
	woken(t, w2, "broadcast to the second waiter")
	for what, sub := range map[string]driver.Subscription{"t1": w1, "t2": w2} {
		_, ok := sub.Granted()
		assert.False(t, ok, "%s: a broadcast grants nothing", what)
	}
	srv.Flush(t, s, "b")
	notWoken(t, other, "a release of a woke waiters of b")
}
