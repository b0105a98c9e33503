package memory

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/locker/driver"
)

// views is what a test of the read-write locks and semaphores of a store
// needs: the read, write and semaphore views of its default client.
type views struct {
	s           *Store
	clk         *clock
	r, w, sem   *view
	read, write driver.Backend
}

func newViews(t *testing.T) *views {
	t.Helper()
	s, clk := newStore()
	rd, wr := s.RWLocks()
	rd2, wr2 := s.RWLocks()
	require.Same(t, rd, rd2, "RWLocks returns the same values every time")
	require.Same(t, wr, wr2)
	require.Same(t, s.Semaphores(), s.Semaphores())
	return &views{s: s, clk: clk, r: rd.(*view), w: wr.(*view), sem: s.Semaphores().(*view), read: rd, write: wr}
}

func semReq(owner, ticket string, lease time.Duration, permits, limit int) driver.AcquireRequest {
	r := req(owner, ticket, lease)
	r.Permits, r.Limit = permits, limit
	return r
}

func inspectView(t *testing.T, v *view) driver.State {
	t.Helper()
	st, err := v.Inspect(context.Background(), name)
	require.NoError(t, err)
	return st
}

func extendView(t *testing.T, v *view, owner string, lease time.Duration) (bool, error) {
	t.Helper()
	return v.Extend(context.Background(), name, owner, lease)
}

// checkIdle checks that nothing is kept: no shared record, no pseudo-key.
func checkIdle(t *testing.T, s *Store) {
	t.Helper()
	assert.Empty(t, s.Keys(""))
	s.mu.Lock()
	defer s.mu.Unlock()
	assert.Empty(t, s.shared, "shared records left")
}

func TestRWReadersTogetherWriterExcludes(t *testing.T) {
	v := newViews(t)
	r1 := acquire(t, v.r, req("r1", "t1", 10*time.Second))
	require.True(t, r1.Acquired)
	v.clk.Advance(time.Second)
	r2 := acquire(t, v.r, req("r2", "t2", 20*time.Second))
	require.True(t, r2.Acquired, "readers hold together")
	assert.Greater(t, r2.Fence, r1.Fence, "every fresh hold has a fresh token")

	w := acquire(t, v.w, req("w", "tw", time.Second))
	assert.Equal(t, driver.AcquireResult{TTL: 20 * time.Second, Position: -1, Fence: r2.Fence}, w,
		"a writer waits for every reader: the longest lease, and the newest token of the lock")
	assert.Equal(t, driver.State{Holders: []driver.Holding{
		{Owner: "r1", Count: 1, Fence: r1.Fence, TTL: 9 * time.Second},
		{Owner: "r2", Count: 1, Fence: r2.Fence, TTL: 20 * time.Second},
	}}, inspectView(t, v.w), "readers only: no Owner")

	held, n := release(t, v.r, "r1", "")
	require.True(t, held)
	require.Zero(t, n)
	require.False(t, acquire(t, v.w, req("w", "tw", time.Second)).Acquired)
	held, _ = release(t, v.r, "r2", "")
	require.True(t, held)
	wr := acquire(t, v.w, req("w", "tw", 5*time.Second))
	require.True(t, wr.Acquired)
	assert.Greater(t, wr.Fence, r2.Fence)

	assert.Equal(t, driver.AcquireResult{TTL: 5 * time.Second, Position: -1, Fence: wr.Fence}, acquire(t, v.r, req("r3", "t3", time.Second)),
		"a reader waits for the writer")
	assert.False(t, acquire(t, v.w, req("w2", "tw2", time.Second)).Acquired, "one writer at a time")
	assert.Equal(t, driver.State{Owner: "w", Count: 1, Fence: wr.Fence, TTL: 5 * time.Second,
		Holders: []driver.Holding{{Owner: "w", Write: true, Count: 1, Fence: wr.Fence, TTL: 5 * time.Second}}}, inspectView(t, v.r))

	held, _ = release(t, v.r, "w", "")
	assert.False(t, held, "the read view does not release the write hold")
	held, _ = release(t, v.w, "w", "")
	require.True(t, held)
	checkIdle(t, v.s)
}

func TestRWUpgradeRefusedWriterReadsDowngrade(t *testing.T) {
	v := newViews(t)
	ctx := context.Background()
	require.True(t, acquire(t, v.r, req("a", "t1", time.Minute)).Acquired)
	before := inspectView(t, v.r)
	_, err := v.w.Acquire(ctx, req("a", "t2", time.Minute))
	require.ErrorIs(t, err, driver.ErrUpgrade)
	_, err = v.w.AcquireFair(ctx, req("a", "t3", time.Minute), ttl)
	require.ErrorIs(t, err, driver.ErrUpgrade, "in fair mode too")
	assert.Equal(t, before, inspectView(t, v.r), "nothing changed")
	held, _ := release(t, v.r, "a", "")
	require.True(t, held)

	w := acquire(t, v.w, req("b", "tw", time.Minute))
	require.True(t, w.Acquired)
	require.False(t, acquireFair(t, v.w, req("c", "tc", time.Minute), ttl).Acquired)
	require.False(t, acquireFair(t, v.r, req("d", "td", time.Minute), ttl).Acquired)
	rd := acquireFair(t, v.r, req("b", "tr", time.Minute), ttl)
	require.True(t, rd.Acquired, "a write holder reads at once, whatever waits")
	assert.Greater(t, rd.Fence, w.Fence, "its read hold is a fresh hold")
	assert.Equal(t, 2, inspectView(t, v.r).Waiters)
	again := acquireFair(t, v.w, req("b", "tw2", time.Minute), ttl)
	assert.Equal(t, driver.AcquireResult{Acquired: true, Fence: w.Fence, Count: 2, Position: -1}, again, "the write hold re-enters at once")
	held, n := release(t, v.w, "b", "")
	require.True(t, held)
	require.Equal(t, 1, n)

	// Downgrade: the write hold ends, the read hold stays; the writer c
	// still waits for it, and the reader d behind c waits for c.
	held, n = release(t, v.w, "b", "")
	require.True(t, held)
	require.Zero(t, n)
	st := inspectView(t, v.r)
	assert.Equal(t, []driver.Holding{{Owner: "b", Count: 1, Fence: rd.Fence, TTL: time.Minute}}, st.Holders)
	assert.Equal(t, 2, st.Waiters)
	assert.Equal(t, "", st.Owner)
}

func TestRWReentryCountsWhateverWaits(t *testing.T) {
	v := newViews(t)
	first := acquire(t, v.r, req("a", "t1", time.Minute))
	require.True(t, first.Acquired)
	require.False(t, acquireFair(t, v.w, req("w", "tw", time.Minute), ttl).Acquired)
	assert.Equal(t, driver.AcquireResult{Acquired: true, Fence: first.Fence, Count: 2, Position: -1}, acquireFair(t, v.r, req("a", "t2", time.Minute), ttl),
		"a reader re-enters past a waiting writer")
	assert.Equal(t, 2, acquireFair(t, v.r, req("a", "t2", time.Minute), ttl).Count, "a repeated attempt counts once")
	assert.False(t, acquireFair(t, v.r, req("b", "tb", time.Minute), ttl).Acquired, "a fresh reader waits behind the writer")

	held, _ := release(t, v.r, "a", "t1")
	assert.False(t, held, "a ticket-scoped release undoes only the latest attempt")
	held, n := release(t, v.r, "a", "t2")
	require.True(t, held)
	assert.Equal(t, 1, n)
}

// TestRWFairOrder: one FIFO queue of readers and writers; a run of readers
// at the head is granted together, each told so; a waiting writer blocks
// the readers behind it.
func TestRWFairOrder(t *testing.T) {
	v := newViews(t)
	w0 := acquire(t, v.w, req("w0", "t0", time.Minute))
	require.True(t, w0.Acquired)
	subs := map[string]driver.Subscription{}
	for _, tk := range []string{"tr1", "tr2", "tw1", "tr3"} {
		subs[tk] = subscribe(t, v.r, tk)
	}
	assert.Equal(t, 0, acquireFair(t, v.r, req("r1", "tr1", time.Minute), ttl).Position)
	assert.Equal(t, 1, acquireFair(t, v.r, req("r2", "tr2", time.Minute), ttl).Position)
	assert.Equal(t, 2, acquireFair(t, v.w, req("w1", "tw1", time.Minute), ttl).Position)
	assert.Equal(t, 3, acquireFair(t, v.r, req("r3", "tr3", time.Minute), ttl).Position)
	for _, sub := range subs {
		woken(sub)
	}

	held, _ := release(t, v.w, "w0", "")
	require.True(t, held)
	f1, ok1 := grantOf(t, subs["tr1"])
	f2, ok2 := grantOf(t, subs["tr2"])
	require.True(t, ok1 && ok2, "the run of readers at the head is granted")
	assert.True(t, woken(subs["tr1"]) && woken(subs["tr2"]))
	assert.Greater(t, f1, w0.Fence)
	assert.Greater(t, f2, f1)
	_, ok := grantOf(t, subs["tw1"])
	assert.False(t, ok, "the writer waits for the readers")
	_, ok = grantOf(t, subs["tr3"])
	assert.False(t, ok, "the reader behind the writer waits for it")
	assert.False(t, woken(subs["tr3"]), "a grant wakes only its ticket")
	st := inspectView(t, v.r)
	assert.Equal(t, []driver.Holding{
		{Owner: "r1", Count: 1, Fence: f1, TTL: ttl},
		{Owner: "r2", Count: 1, Fence: f2, TTL: ttl},
	}, st.Holders, "a grant's lease is min(lease, waiter TTL)")
	assert.Equal(t, 2, st.Waiters)

	// A new reader is behind the writer too, and so is a barging-free TryLock.
	assert.Equal(t, driver.AcquireResult{TTL: -1, Position: -1, Fence: f2}, acquireFair(t, v.r, req("r4", "tr4", time.Minute), 0))
	assert.True(t, acquireFair(t, v.r, req("r1", "tr1", time.Minute), ttl).Acquired, "the grantee claims its grant")
	assert.Equal(t, time.Minute, inspectView(t, v.r).Holders[0].TTL, "the claim sets the full lease")

	held, _ = release(t, v.r, "r1", "")
	require.True(t, held)
	_, ok = grantOf(t, subs["tw1"])
	assert.False(t, ok, "r2 still reads")
	held, _ = release(t, v.r, "r2", "tr2")
	require.True(t, held, "a grantee gives up with a ticket-scoped release")
	fw, ok := grantOf(t, subs["tw1"])
	require.True(t, ok)
	assert.Greater(t, fw, f2, "the write hold's token is greater than every earlier one")
	_, ok = grantOf(t, subs["tr3"])
	assert.False(t, ok)
	held, _ = release(t, v.w, "w1", "")
	require.True(t, held)
	f3, ok := grantOf(t, subs["tr3"])
	require.True(t, ok)
	assert.Greater(t, f3, fw)
	held, _ = release(t, v.r, "r3", "")
	require.True(t, held)
	checkIdle(t, v.s)
}

// TestRWBargingWakesEveryone: with an empty queue, a holding's end wakes
// every waiter of the lock, and only of that lock.
func TestRWBargingWakesEveryone(t *testing.T) {
	v := newViews(t)
	require.True(t, acquire(t, v.w, req("w", "tw", time.Minute)).Acquired)
	a, b := subscribe(t, v.r, "ta"), subscribe(t, v.w, "tb")
	m, sem := subscribe(t, v.s, "tm"), subscribe(t, v.sem, "ts")
	require.False(t, acquire(t, v.r, req("a", "ta", time.Minute)).Acquired)
	held, _ := release(t, v.w, "w", "")
	require.True(t, held)
	assert.True(t, woken(a))
	assert.True(t, woken(b), "the read and write views share their wake-ups")
	assert.False(t, woken(m), "the mutex of the name is another lock")
	assert.False(t, woken(sem), "the semaphore of the name is another lock")
	assert.Equal(t, 3, v.s.ActiveSubscriptions(), "three locks listened on")
}

func TestKindsAreSeparateLocks(t *testing.T) {
	v := newViews(t)
	require.True(t, acquire(t, v.s, req("m", "tm", time.Minute)).Acquired)
	require.True(t, acquire(t, v.w, req("w", "tw", time.Minute)).Acquired)
	require.True(t, acquire(t, v.sem, semReq("s", "ts", time.Minute, 1, 1)).Acquired)
	assert.False(t, acquire(t, v.s, req("x", "tx", time.Minute)).Acquired)
	assert.False(t, acquire(t, v.r, req("x", "tx", time.Minute)).Acquired)
	assert.False(t, acquire(t, v.sem, semReq("x", "tx", time.Minute, 1, 1)).Acquired)
	assert.ElementsMatch(t, []string{name + ":lock", name + ":rw", name + ":sem"}, v.s.Keys(name))
	assert.Equal(t, "m", inspect(t, v.s).Owner)
	assert.Equal(t, "w", inspectView(t, v.r).Owner)
	assert.Equal(t, 1, inspectView(t, v.sem).Used)

	v.s.Wipe(name)
	assert.Empty(t, v.s.Keys(name), "Wipe deletes every lock of the name")
}

func TestSemaphorePermitsAndMismatch(t *testing.T) {
	v := newViews(t)
	ctx := context.Background()
	a := acquire(t, v.sem, semReq("a", "ta", 10*time.Second, 2, 3))
	require.True(t, a.Acquired)
	v.clk.Advance(time.Second)
	c := acquire(t, v.sem, semReq("c", "tc", 20*time.Second, 1, 3))
	require.True(t, c.Acquired)
	assert.Greater(t, c.Fence, a.Fence)
	assert.Equal(t, driver.AcquireResult{TTL: 9 * time.Second, Position: -1, Fence: c.Fence}, acquire(t, v.sem, semReq("b", "tb", time.Second, 2, 3)),
		"2 permits come back when a's lease ends")
	assert.Equal(t, driver.AcquireResult{TTL: 20 * time.Second, Position: -1, Fence: c.Fence}, acquire(t, v.sem, semReq("b", "tb", time.Second, 3, 3)),
		"3 permits come back when c's lease ends too")
	assert.Equal(t, driver.State{Limit: 3, Used: 3, Holders: []driver.Holding{
		{Owner: "a", Count: 1, Permits: 2, Fence: a.Fence, TTL: 9 * time.Second},
		{Owner: "c", Count: 1, Permits: 1, Fence: c.Fence, TTL: 20 * time.Second},
	}}, inspectView(t, v.sem))

	before := inspectView(t, v.sem)
	_, err := v.sem.Acquire(ctx, semReq("d", "td", time.Second, 1, 4))
	require.ErrorIs(t, err, driver.ErrMismatch, "another limit")
	_, err = v.sem.AcquireFair(ctx, semReq("d", "td", time.Second, 1, 4), ttl)
	require.ErrorIs(t, err, driver.ErrMismatch)
	_, err = v.sem.Acquire(ctx, semReq("a", "ta2", time.Second, 1, 3))
	require.ErrorIs(t, err, driver.ErrMismatch, "a re-entry with other permits")
	assert.Equal(t, before, inspectView(t, v.sem), "nothing changed")
	assert.Equal(t, driver.AcquireResult{Acquired: true, Fence: a.Fence, Count: 2, Position: -1}, acquire(t, v.sem, semReq("a", "ta2", time.Second, 2, 3)),
		"a re-entry keeps its permits, whatever is free")
	_, err = v.sem.Acquire(ctx, semReq("e", "te", time.Second, 4, 3))
	require.Error(t, err, "more permits than the limit is refused")

	// a dies: its permits come back at its lease's end (alive at the instant).
	v.clk.Advance(9 * time.Second)
	assert.False(t, acquire(t, v.sem, semReq("b", "tb", time.Second, 2, 3)).Acquired)
	v.clk.Advance(time.Nanosecond)
	b := acquire(t, v.sem, semReq("b", "tb", time.Second, 2, 3))
	require.True(t, b.Acquired)
	assert.Greater(t, b.Fence, c.Fence)
	assert.Equal(t, 3, inspectView(t, v.sem).Used)

	require.True(t, mustRelease(t, v.sem, "b"))
	require.True(t, mustRelease(t, v.sem, "c"))
	assert.Equal(t, driver.State{}, inspectView(t, v.sem), "the limit is forgotten when nobody holds or waits")
	assert.True(t, acquire(t, v.sem, semReq("f", "tf", time.Second, 5, 5)).Acquired, "so another limit may be declared")
	require.True(t, mustRelease(t, v.sem, "f"))
	checkIdle(t, v.s)
}

func mustRelease(t *testing.T, b driver.Backend, owner string) bool {
	t.Helper()
	held, _ := release(t, b, owner, "")
	return held
}

// TestSemaphoreFairHeadBlocks: a head that does not fit blocks those
// behind it; permits coming back are granted to the head and on while they
// suffice.
func TestSemaphoreFairHeadBlocks(t *testing.T) {
	v := newViews(t)
	require.True(t, acquire(t, v.sem, semReq("a", "ta", time.Minute, 2, 4)).Acquired)
	require.True(t, acquire(t, v.sem, semReq("z", "tz", time.Minute, 1, 4)).Acquired)
	sb, sc, sd := subscribe(t, v.sem, "tb"), subscribe(t, v.sem, "tc"), subscribe(t, v.sem, "td")
	assert.Equal(t, 0, acquireFair(t, v.sem, semReq("b", "tb", time.Minute, 3, 4), ttl).Position)
	assert.Equal(t, 1, acquireFair(t, v.sem, semReq("c", "tc", time.Minute, 1, 4), ttl).Position, "one permit is free, but b is ahead")
	assert.Equal(t, 2, acquireFair(t, v.sem, semReq("d", "td", time.Minute, 1, 4), ttl).Position)
	assert.Equal(t, 4, inspectView(t, v.sem).Limit)

	require.True(t, mustRelease(t, v.sem, "z"))
	_, ok := grantOf(t, sb)
	assert.False(t, ok, "2 free, b needs 3")
	require.True(t, mustRelease(t, v.sem, "a"))
	fb, okb := grantOf(t, sb)
	fc, okc := grantOf(t, sc)
	require.True(t, okb && okc, "4 free: b (3) and c (1)")
	assert.Greater(t, fc, fb)
	_, ok = grantOf(t, sd)
	assert.False(t, ok, "no permit left for d")
	st := inspectView(t, v.sem)
	assert.Equal(t, 4, st.Used)
	assert.Equal(t, 1, st.Waiters)

	require.NoError(t, v.sem.Leave(context.Background(), name, "td"))
	held, _ := release(t, v.sem, "b", "tb")
	require.True(t, held)
	held, _ = release(t, v.sem, "c", "tc")
	require.True(t, held)
	checkIdle(t, v.s)
}

// TestKindsLapsedHoldingsAndWaiters: a lease that ends publishes nothing,
// but the next call that changes the lock grants what fits; a lapsed
// waiter is evicted and its grant dropped; a lapsed grant leaves its
// grantee a "not acquired" answer with a token not lower than the grant's.
func TestKindsLapsedHoldingsAndWaiters(t *testing.T) {
	v := newViews(t)
	require.True(t, acquire(t, v.w, req("w", "tw", time.Second)).Acquired)
	sa := subscribe(t, v.r, "ta")
	require.False(t, acquireFair(t, v.r, req("a", "ta", time.Minute), ttl).Acquired)
	require.False(t, acquireFair(t, v.r, req("lapse", "tl", time.Minute), 100*time.Millisecond).Acquired)
	require.False(t, acquireFair(t, v.r, req("b", "tb", time.Minute), ttl).Acquired)
	v.clk.Advance(time.Second + time.Nanosecond)
	_, ok := grantOf(t, sa)
	require.False(t, ok, "expiry publishes nothing")
	assert.Equal(t, 3, inspectView(t, v.r).Waiters, "Inspect grants nothing and evicts nobody")

	bres := acquireFair(t, v.r, req("b", "tb", time.Minute), ttl)
	require.True(t, bres.Acquired, "b's attempt grants a, evicts the lapsed waiter, and so b is next")
	fa, ok := grantOf(t, sa)
	require.True(t, ok)
	assert.Less(t, fa, bres.Fence)
	ws, err := v.r.InspectQueue(context.Background(), name)
	require.NoError(t, err)
	assert.Empty(t, ws)

	// a never claims its grant: it lapses with a's waiter TTL.
	require.True(t, mustRelease(t, v.r, "b"))
	v.clk.Advance(ttl + time.Nanosecond)
	st := acquireFair(t, v.w, req("w", "tw2", time.Minute), 0)
	require.True(t, st.Acquired)
	res := acquireFair(t, v.r, req("a", "ta", time.Minute), ttl)
	require.False(t, res.Acquired)
	assert.GreaterOrEqual(t, res.Fence, fa, "the stale-grant rule: a lapsed grant is older than the answer")
	require.NoError(t, v.r.Leave(context.Background(), name, "ta"))
	require.True(t, mustRelease(t, v.w, "w"))
	checkIdle(t, v.s)
}

// TestKindsLeaveGrantsNext: a head that leaves uncovers the next, which is
// granted at once if it fits.
func TestKindsLeaveGrantsNext(t *testing.T) {
	v := newViews(t)
	require.True(t, acquire(t, v.r, req("r", "tr", time.Minute)).Acquired)
	sb := subscribe(t, v.r, "tb")
	require.False(t, acquireFair(t, v.w, req("w", "tw", time.Minute), ttl).Acquired)
	require.False(t, acquireFair(t, v.r, req("b", "tb", time.Minute), ttl).Acquired, "behind the writer")
	require.NoError(t, v.w.Leave(context.Background(), name, "tw"))
	_, ok := grantOf(t, sb)
	assert.True(t, ok, "the writer left: the reader fits with r")
	assert.Len(t, inspectView(t, v.r).Holders, 2)
}

func TestKindsForceRelease(t *testing.T) {
	v := newViews(t)
	ctx := context.Background()
	held, err := v.w.ForceRelease(ctx, name)
	require.NoError(t, err)
	assert.False(t, held, "a free lock")

	require.True(t, acquire(t, v.r, req("r1", "t1", time.Minute)).Acquired)
	require.True(t, acquire(t, v.r, req("r2", "t2", time.Minute)).Acquired)
	sw := subscribe(t, v.w, "tw")
	require.False(t, acquireFair(t, v.w, req("w", "tw", time.Minute), ttl).Acquired)
	held, err = v.w.ForceRelease(ctx, name)
	require.NoError(t, err)
	require.True(t, held)
	fw, ok := grantOf(t, sw)
	require.True(t, ok, "the lock passes on to the head")
	ok, err = extendView(t, v.r, "r1", time.Minute)
	assert.False(t, ok)
	assert.ErrorIs(t, err, driver.ErrRevoked)
	ok, err = extendView(t, v.w, "r1", time.Minute)
	assert.False(t, ok)
	assert.NoError(t, err, "r1 never held the write hold")
	batch := []driver.Extension{{Name: name, Owner: "r2", Lease: time.Minute}, {Name: name, Owner: "w", Lease: time.Minute}}
	require.NoError(t, v.r.ExtendBatch(ctx, batch))
	assert.ErrorIs(t, batch[0].Err, driver.ErrRevoked)
	assert.False(t, batch[1].Held, "w holds the write hold, not a read hold")
	ok, err = extendView(t, v.w, "w", 2*time.Minute)
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, driver.State{Owner: "w", Count: 1, Fence: fw, TTL: 2 * time.Minute,
		Holders: []driver.Holding{{Owner: "w", Write: true, Count: 1, Fence: fw, TTL: 2 * time.Minute}}}, inspectView(t, v.r))

	// Through the read view, the write hold ends too; semaphores likewise.
	held, err = v.r.ForceRelease(ctx, name)
	require.NoError(t, err)
	require.True(t, held)
	_, err = extendView(t, v.w, "w", time.Minute)
	assert.ErrorIs(t, err, driver.ErrRevoked)
	require.True(t, acquire(t, v.sem, semReq("s", "ts", time.Minute, 2, 2)).Acquired)
	held, err = v.sem.ForceRelease(ctx, name)
	require.NoError(t, err)
	require.True(t, held)
	_, err = extendView(t, v.sem, "s", time.Minute)
	assert.ErrorIs(t, err, driver.ErrRevoked)
	assert.Equal(t, driver.State{}, inspectView(t, v.sem))

	// The markers last the rest of the lease plus a second, then nothing is kept.
	v.clk.Advance(2*time.Minute + time.Second)
	_, err = extendView(t, v.w, "w", time.Minute)
	assert.ErrorIs(t, err, driver.ErrRevoked, "at the marker's end instant")
	v.clk.Advance(time.Nanosecond)
	ok, err = extendView(t, v.w, "w", time.Minute)
	assert.NoError(t, err)
	assert.False(t, ok)
	checkIdle(t, v.s)
}

// TestKindsKilledClient: the views share their client's kill.
func TestKindsKilledClient(t *testing.T) {
	s, _ := newStore()
	c := s.Client()
	rd, _ := c.RWLocks()
	sub, err := rd.(driver.Notifier).Subscribe(context.Background(), name, "t")
	require.NoError(t, err)
	defer sub.Close()
	assert.Equal(t, 1, c.ActiveSubscriptions())
	c.Kill()
	_, err = rd.Acquire(context.Background(), req("a", "t", time.Second))
	assert.ErrorIs(t, err, ErrKilled)
	_, err = c.Semaphores().Acquire(context.Background(), semReq("a", "t", time.Second, 1, 1))
	assert.ErrorIs(t, err, ErrKilled)
	assert.Zero(t, c.ActiveSubscriptions())
}

func TestSweepDropsExpiredSharedRecords(t *testing.T) {
	v := newViews(t)
	ctx := context.Background()
	for i := range 1000 {
		_, err := v.r.Acquire(ctx, driver.AcquireRequest{Name: fmt.Sprint("short", i), Owner: "a", Ticket: "t", Lease: time.Millisecond})
		require.NoError(t, err)
	}
	v.clk.Advance(time.Second)
	for i := range 500 {
		_, err := v.sem.Acquire(ctx, driver.AcquireRequest{Name: fmt.Sprint("long", i), Owner: "a", Ticket: "t", Lease: time.Hour, Permits: 1, Limit: 1})
		require.NoError(t, err)
	}
	v.s.mu.Lock()
	n := len(v.s.shared)
	v.s.mu.Unlock()
	assert.Equal(t, 500, n, "expired records nobody touched again are swept")
}
