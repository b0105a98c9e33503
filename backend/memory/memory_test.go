package memory

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/disgolock/disgo/locker/driver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a manual clock for the store.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

var epoch = time.Unix(1_700_000_000, 0)

func newStore() (*Store, *clock) {
	clk := &clock{t: epoch}
	return NewWithOptions(Options{Now: clk.Now}), clk
}

const (
	name = "orders:42"
	ttl  = 10 * time.Second // waiter TTL
)

func req(owner, ticket string, lease time.Duration) driver.AcquireRequest {
	return driver.AcquireRequest{Name: name, Owner: owner, Ticket: ticket, Lease: lease}
}

func acquire(t *testing.T, b driver.Backend, r driver.AcquireRequest) driver.AcquireResult {
	t.Helper()
	res, err := b.Acquire(context.Background(), r)
	require.NoError(t, err)
	return res
}

func acquireFair(t *testing.T, q driver.Queue, r driver.AcquireRequest, waiterTTL time.Duration) driver.AcquireResult {
	t.Helper()
	res, err := q.AcquireFair(context.Background(), r, waiterTTL)
	require.NoError(t, err)
	return res
}

func release(t *testing.T, b driver.Backend, owner, ticket string) (bool, int) {
	t.Helper()
	held, n, err := b.Release(context.Background(), name, owner, ticket)
	require.NoError(t, err)
	return held, n
}

func inspect(t *testing.T, s *Store) driver.State {
	t.Helper()
	st, err := s.Inspect(context.Background(), name)
	require.NoError(t, err)
	return st
}

func subscribe(t *testing.T, n driver.Notifier, ticket string) driver.Subscription {
	t.Helper()
	sub, err := n.Subscribe(context.Background(), name, ticket)
	require.NoError(t, err)
	t.Cleanup(sub.Close)
	return sub
}

// woken reports whether sub has a pending wake-up, consuming it.
func woken(sub driver.Subscription) bool {
	select {
	case <-sub.Wake():
		return true
	default:
		return false
	}
}

// grantOf returns what sub reports as a grant of the lock to its ticket.
func grantOf(t *testing.T, sub driver.Subscription) (int64, bool) {
	t.Helper()
	return sub.Granted()
}

// grantTickets returns the tickets of name a release may hand the lock to.
func grantTickets(s *Store) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var tickets []string
	if r := s.names[name]; r != nil {
		for tk := range r.grants {
			tickets = append(tickets, tk)
		}
	}
	return tickets
}

// lastTicket returns the ticket of the latest acquisition of name.
func lastTicket(s *Store) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.names[name]; r != nil {
		return r.lastTicket
	}
	return ""
}

func TestReentryCountsOncePerTicket(t *testing.T) {
	s, _ := newStore()
	first := acquire(t, s, req("a", "t1", time.Second))
	require.True(t, first.Acquired)
	assert.Equal(t, 1, first.Count)
	assert.Equal(t, -1, first.Position)

	again := acquire(t, s, req("a", "t1", time.Second))
	assert.Equal(t, driver.AcquireResult{Acquired: true, Fence: first.Fence, Count: 1, Position: -1}, again,
		"a repeated attempt with the same ticket must not count twice")

	second := acquire(t, s, req("a", "t2", time.Second))
	assert.Equal(t, driver.AcquireResult{Acquired: true, Fence: first.Fence, Count: 2, Position: -1}, second,
		"a re-entry counts up and keeps the fence")

	other := acquire(t, s, req("b", "t3", time.Second))
	assert.Equal(t, driver.AcquireResult{TTL: time.Second, Position: -1, Fence: first.Fence}, other, "not acquired: the holder's fence")

	held, n := release(t, s, "a", "")
	assert.True(t, held)
	assert.Equal(t, 1, n)
	held, n = release(t, s, "a", "")
	assert.True(t, held)
	assert.Equal(t, 0, n)
	held, _ = release(t, s, "a", "")
	assert.False(t, held, "double release")
}

func TestReentryNeverShortensLease(t *testing.T) {
	s, clk := newStore()
	require.True(t, acquire(t, s, req("a", "t1", 10*time.Second)).Acquired)
	clk.Advance(time.Second)
	require.True(t, acquire(t, s, req("a", "t2", time.Second)).Acquired)
	assert.Equal(t, 9*time.Second, inspect(t, s).TTL, "a shorter re-entry lease must not shorten the lease")
	require.True(t, acquire(t, s, req("a", "t3", 20*time.Second)).Acquired)
	assert.Equal(t, 20*time.Second, inspect(t, s).TTL, "a longer re-entry lease extends it")
}

func TestFenceIncreasesAcrossExpiryWipeAndClockSteps(t *testing.T) {
	s, clk := newStore()
	f1 := acquire(t, s, req("a", "t1", time.Second)).Fence
	assert.GreaterOrEqual(t, f1, epoch.UnixMicro(), "a fence is not below the store clock in µs")

	clk.Advance(time.Second + time.Nanosecond)
	f2 := acquire(t, s, req("b", "t2", time.Second))
	require.True(t, f2.Acquired, "an expired lock is free")
	assert.Greater(t, f2.Fence, f1)

	s.Wipe(name)
	f3 := acquire(t, s, req("c", "t3", time.Second))
	require.True(t, f3.Acquired)
	assert.Greater(t, f3.Fence, f2.Fence, "after Wipe, with the clock standing still")

	clk.Set(epoch.Add(-time.Hour))
	assert.Equal(t, time.Second, inspect(t, s).TTL, "store time never goes back")
	held, _ := release(t, s, "c", "")
	require.True(t, held, "a clock stepping back must not expire or revive locks")
	f4 := acquire(t, s, req("d", "t4", time.Second))
	require.True(t, f4.Acquired)
	assert.Greater(t, f4.Fence, f3.Fence, "after the clock stepped back")
}

func TestLeaseExpiry(t *testing.T) {
	s, clk := newStore()
	require.True(t, acquire(t, s, req("a", "t1", time.Second)).Acquired)
	clk.Advance(time.Second)
	assert.False(t, acquire(t, s, req("b", "t2", time.Second)).Acquired, "alive at its expiry instant, as in Redis")
	clk.Advance(time.Nanosecond)
	assert.Equal(t, driver.State{}, inspect(t, s))

	held, _ := release(t, s, "a", "")
	assert.False(t, held, "release after expiry")
	ok, err := s.Extend(context.Background(), name, "a", time.Second)
	require.NoError(t, err)
	assert.False(t, ok, "extend after expiry")
	assert.Empty(t, s.Keys(name))
	assert.True(t, acquire(t, s, req("b", "t2", time.Second)).Acquired)
}

func TestReleaseByNonHolderChangesNothing(t *testing.T) {
	s, _ := newStore()
	res := acquire(t, s, req("a", "t1", time.Second))
	require.True(t, res.Acquired)
	before := inspect(t, s)

	held, n := release(t, s, "b", "")
	assert.False(t, held)
	assert.Zero(t, n)
	held, _ = release(t, s, "b", "t1")
	assert.False(t, held, "a ticket does not make a non-owner the holder")
	assert.Equal(t, before, inspect(t, s))
}

func TestTicketScopedRelease(t *testing.T) {
	s, _ := newStore()
	require.True(t, acquire(t, s, req("a", "t1", time.Second)).Acquired)
	require.True(t, acquire(t, s, req("a", "t2", time.Second)).Acquired)

	held, _ := release(t, s, "a", "t1")
	assert.False(t, held, "t1 is not the latest acquisition")
	assert.Equal(t, 2, inspect(t, s).Count)

	held, n := release(t, s, "a", "t2")
	assert.True(t, held)
	assert.Equal(t, 1, n)
}

func TestFairHeadOnlyTake(t *testing.T) {
	s, clk := newStore()
	require.True(t, acquire(t, s, req("a", "ta", time.Second)).Acquired)
	subB, subC, subD := subscribe(t, s, "tb"), subscribe(t, s, "tc"), subscribe(t, s, "td")

	clk.Advance(100 * time.Millisecond)
	assert.Equal(t, driver.AcquireResult{TTL: 900 * time.Millisecond, Position: 0, Fence: s.lastFence}, acquireFair(t, s, req("b", "tb", time.Second), ttl))
	assert.Equal(t, driver.AcquireResult{TTL: 900 * time.Millisecond, Position: 1, Fence: s.lastFence}, acquireFair(t, s, req("c", "tc", time.Second), ttl))
	assert.Equal(t, 2, inspect(t, s).Waiters)

	// A's lease lapses: the lock is free, B is the head, and nobody is told.
	clk.Advance(900*time.Millisecond + time.Nanosecond)
	for tk, sub := range map[string]driver.Subscription{"tb": subB, "tc": subC, "td": subD} {
		assert.False(t, woken(sub), "lease expiry woke %s", tk)
	}

	// C tries while the lock is free but B is the head: no, and B is reminded.
	assert.Equal(t, driver.AcquireResult{TTL: -1, Position: 1, Fence: s.lastFence}, acquireFair(t, s, req("c", "tc", time.Second), ttl))
	assert.True(t, woken(subB), "a free lock with another head wakes the head")
	_, ok := grantOf(t, subB)
	assert.False(t, ok, "a reminder grants nothing")
	assert.False(t, woken(subC))
	assert.False(t, woken(subD))

	got := acquireFair(t, s, req("b", "tb", time.Second), ttl)
	require.True(t, got.Acquired)
	assert.Equal(t, 1, inspect(t, s).Waiters, "the head left the queue when it took the lock")

	held, _ := release(t, s, "b", "")
	require.True(t, held)
	assert.True(t, woken(subC), "the release hands the lock to the new head")
	assert.False(t, woken(subB), "only the head")
	assert.False(t, woken(subD), "only the head")
	assert.Equal(t, "c", inspect(t, s).Owner)
	require.True(t, acquireFair(t, s, req("c", "tc", time.Second), ttl).Acquired)
	assert.Zero(t, inspect(t, s).Waiters)
}

func TestBargingIgnoresQueue(t *testing.T) {
	s, clk := newStore()
	require.True(t, acquire(t, s, req("a", "ta", time.Second)).Acquired)
	require.False(t, acquireFair(t, s, req("b", "tb", time.Second), ttl).Acquired)
	clk.Advance(time.Second + time.Nanosecond) // A's lease lapses: free, with B queued

	res := acquire(t, s, req("d", "td", time.Second))
	assert.True(t, res.Acquired, "barging takes a free lock whoever is queued")
	st := inspect(t, s)
	assert.Equal(t, "d", st.Owner)
	assert.Equal(t, 1, st.Waiters, "barging leaves the queue alone")

	held, _ := release(t, s, "d", "")
	require.True(t, held)
	st = inspect(t, s)
	assert.Equal(t, "b", st.Owner, "a barging holder's final release hands the lock to the fair head all the same")
	assert.Zero(t, st.Waiters)
}

func TestFairSingleAttemptDoesNotJoin(t *testing.T) {
	s, clk := newStore()
	require.True(t, acquire(t, s, req("a", "ta", time.Second)).Acquired)
	assert.Equal(t, driver.AcquireResult{TTL: time.Second, Position: -1, Fence: s.lastFence}, acquireFair(t, s, req("b", "tb", time.Second), 0))
	assert.Zero(t, inspect(t, s).Waiters, "a zero waiter TTL does not join")
	assert.Empty(t, grantTickets(s), "nor records a grant")
	held, _ := release(t, s, "a", "")
	require.True(t, held)
	assert.Equal(t, driver.State{}, inspect(t, s), "a single attempt is never granted the lock")

	require.True(t, acquire(t, s, req("a", "ta2", time.Second)).Acquired)
	require.False(t, acquireFair(t, s, req("c", "tc", time.Second), ttl).Acquired)
	clk.Advance(time.Second + time.Nanosecond) // A's lease lapses: free, C at the head
	subC := subscribe(t, s, "tc")
	assert.Equal(t, driver.AcquireResult{TTL: -1, Position: -1, Fence: s.lastFence}, acquireFair(t, s, req("b", "tb", time.Second), 0),
		"a single attempt honours the queue")
	assert.False(t, woken(subC), "a single attempt wakes nobody")
	assert.Equal(t, 1, inspect(t, s).Waiters)
	assert.True(t, acquireFair(t, s, req("c", "tc", time.Second), 0).Acquired, "the head takes it with a single attempt")
	assert.Zero(t, inspect(t, s).Waiters)
	assert.Empty(t, grantTickets(s))
}

func TestFairReentryLeavesQueue(t *testing.T) {
	s, clk := newStore()
	require.True(t, acquire(t, s, req("x", "tx", time.Second)).Acquired)
	// Owner a queues one call, then, once x's lease lapsed, takes the lock
	// with another one.
	require.False(t, acquireFair(t, s, req("a", "t1", time.Second), ttl).Acquired)
	clk.Advance(time.Second + time.Nanosecond)
	require.True(t, acquire(t, s, req("a", "t2", time.Second)).Acquired)

	res := acquireFair(t, s, req("a", "t1", time.Second), ttl)
	assert.True(t, res.Acquired)
	assert.Equal(t, 2, res.Count)
	assert.Zero(t, inspect(t, s).Waiters, "the re-entering ticket left the queue")
	assert.Empty(t, grantTickets(s), "and its grant entry went with it")
}

func TestFairKeepsPlaceAndRefreshesHeartbeat(t *testing.T) {
	s, clk := newStore()
	require.True(t, acquire(t, s, req("a", "ta", time.Minute)).Acquired)
	const wt = 300 * time.Millisecond
	assert.Equal(t, 0, acquireFair(t, s, req("b", "tb", time.Minute), wt).Position)
	assert.Equal(t, 1, acquireFair(t, s, req("c", "tc", time.Minute), wt).Position)

	clk.Advance(200 * time.Millisecond)
	assert.Equal(t, 0, acquireFair(t, s, req("b", "tb", time.Minute), wt).Position, "a heartbeat keeps the place")
	clk.Advance(99 * time.Millisecond)
	assert.Equal(t, 2, acquireFair(t, s, req("d", "td", time.Minute), wt).Position, "c is not lapsed yet")
	clk.Advance(time.Millisecond)
	assert.Equal(t, 1, acquireFair(t, s, req("d", "td", time.Minute), wt).Position, "c lapsed at its deadline and was evicted")
	assert.Equal(t, 2, inspect(t, s).Waiters)
}

func TestFairEvictsDeadHead(t *testing.T) {
	s, clk := newStore()
	require.True(t, acquire(t, s, req("a", "ta", 50*time.Millisecond)).Acquired)
	const wt = 100 * time.Millisecond
	require.False(t, acquireFair(t, s, req("b", "tb", time.Second), wt).Acquired)
	// B dies. A's lease lapses; C waits behind B until B's heartbeat lapses.
	clk.Advance(wt - time.Millisecond)
	res := acquireFair(t, s, req("c", "tc", time.Second), time.Second)
	assert.Equal(t, driver.AcquireResult{TTL: -1, Position: 1, Fence: s.lastFence}, res)
	clk.Advance(time.Millisecond)
	assert.True(t, acquireFair(t, s, req("c", "tc", time.Second), time.Second).Acquired)
	assert.Zero(t, inspect(t, s).Waiters)
	assert.Empty(t, grantTickets(s), "the evicted waiter's grant entry is gone")
}

func TestReleaseEvictsLapsedBeforeWaking(t *testing.T) {
	s, clk := newStore()
	require.True(t, acquire(t, s, req("a", "ta", time.Minute)).Acquired)
	subB, subC := subscribe(t, s, "tb"), subscribe(t, s, "tc")
	require.False(t, acquireFair(t, s, req("b", "tb", time.Minute), 100*time.Millisecond).Acquired)
	require.False(t, acquireFair(t, s, req("c", "tc", time.Minute), time.Second).Acquired)
	clk.Advance(100 * time.Millisecond)

	held, _ := release(t, s, "a", "")
	require.True(t, held)
	assert.False(t, woken(subB), "the lapsed head is evicted, not woken")
	_, ok := grantOf(t, subB)
	assert.False(t, ok, "nor granted the lock")
	assert.True(t, woken(subC))
	st := inspect(t, s)
	assert.Equal(t, "c", st.Owner, "the next live waiter is granted the lock")
	assert.Zero(t, st.Waiters)
	assert.Empty(t, grantTickets(s), "the evicted waiter's grant entry is gone")
}

func TestReleaseWithOnlyLapsedWaitersFrees(t *testing.T) {
	s, clk := newStore()
	require.True(t, acquire(t, s, req("a", "ta", time.Minute)).Acquired)
	subB, subX := subscribe(t, s, "tb"), subscribe(t, s, "tx")
	require.False(t, acquireFair(t, s, req("b", "tb", time.Minute), 100*time.Millisecond).Acquired)
	clk.Advance(100 * time.Millisecond)

	held, _ := release(t, s, "a", "")
	require.True(t, held)
	assert.Equal(t, driver.State{}, inspect(t, s), "a lapsed waiter is evicted, never granted the lock")
	for tk, sub := range map[string]driver.Subscription{"tb": subB, "tx": subX} {
		assert.True(t, woken(sub), "%s: with the queue empty after eviction, the release broadcasts", tk)
		_, ok := grantOf(t, sub)
		assert.False(t, ok, "%s: a broadcast grants nothing", tk)
	}
	assert.Empty(t, s.Keys(name))
}

func TestReleaseBroadcastsWithEmptyQueue(t *testing.T) {
	s, _ := newStore()
	require.True(t, acquire(t, s, req("a", "ta", time.Second)).Acquired)
	x, y := subscribe(t, s, "tx"), subscribe(t, s, "ty")
	// Only barging waiters: they do not queue.
	require.False(t, acquire(t, s, req("x", "tx", time.Second)).Acquired)
	require.False(t, acquire(t, s, req("y", "ty", time.Second)).Acquired)
	other, err := s.Subscribe(context.Background(), "other", "tx")
	require.NoError(t, err)
	defer other.Close()

	held, _ := release(t, s, "a", "")
	require.True(t, held)
	assert.Equal(t, driver.State{}, inspect(t, s), "with an empty queue the release frees the lock")
	for tk, sub := range map[string]driver.Subscription{"tx": x, "ty": y} {
		assert.True(t, woken(sub), "%s not woken", tk)
		_, ok := grantOf(t, sub)
		assert.False(t, ok, "%s: a broadcast grants nothing", tk)
	}
	assert.False(t, woken(other), "another name's waiters are not woken")
}

func TestLeave(t *testing.T) {
	s, clk := newStore()
	ctx := context.Background()
	require.True(t, acquire(t, s, req("a", "ta", time.Second)).Acquired)
	subs := map[string]driver.Subscription{}
	for _, tk := range []string{"tb", "tc", "td", "te"} {
		subs[tk] = subscribe(t, s, tk)
		require.False(t, acquireFair(t, s, req(tk, tk, time.Second), ttl).Acquired)
	}
	noWakes := func(msg string) {
		t.Helper()
		for tk, sub := range subs {
			assert.False(t, woken(sub), "%s: %s woken", msg, tk)
		}
	}

	require.NoError(t, s.Leave(ctx, name, "tb"))
	noWakes("head leaves while the lock is held")
	require.NoError(t, s.Leave(ctx, name, "nope"))
	assert.Equal(t, 3, inspect(t, s).Waiters)

	clk.Advance(time.Second + time.Nanosecond) // the lease lapses: no message
	noWakes("lease expiry")
	require.NoError(t, s.Leave(ctx, name, "td"))
	noWakes("a non-head leaves")
	require.NoError(t, s.Leave(ctx, name, "tc"))
	assert.True(t, woken(subs["te"]), "the head leaves a free lock: the new head is woken")
	noWakes("only the new head")

	require.NoError(t, s.Leave(ctx, name, "te"))
	assert.Equal(t, driver.State{}, inspect(t, s))
	assert.Empty(t, s.Keys(""))
	assert.Empty(t, s.names)
}

func TestReleaseGrantsHead(t *testing.T) {
	s, clk := newStore()
	first := acquire(t, s, req("a", "ta", time.Minute))
	require.True(t, first.Acquired)
	subB, subC, subX := subscribe(t, s, "tb"), subscribe(t, s, "tc"), subscribe(t, s, "tx")
	// B asks for a lease shorter than its waiter TTL, C for a longer one.
	require.False(t, acquireFair(t, s, req("b", "tb", 4*time.Second), ttl).Acquired)
	require.False(t, acquireFair(t, s, req("c", "tc", time.Minute), ttl).Acquired)
	clk.Advance(time.Second)

	held, n := release(t, s, "a", "")
	require.True(t, held)
	assert.Zero(t, n)
	st := inspect(t, s)
	assert.Equal(t, driver.State{Owner: "b", Count: 1, Fence: st.Fence, TTL: 4 * time.Second, Waiters: 1}, st,
		"the head holds the lock, once, for min(lease, waiter TTL), and left the queue")
	assert.Greater(t, st.Fence, first.Fence, "a grant is a fresh acquisition")
	assert.Equal(t, "tb", lastTicket(s), "the grantee's ticket is the latest acquisition")
	assert.Equal(t, []string{"tc"}, grantTickets(s))
	assert.True(t, woken(subB))
	fence, ok := grantOf(t, subB)
	assert.True(t, ok, "the head's subscription is told of the grant")
	assert.Equal(t, st.Fence, fence, "the message carries the fence")
	for tk, sub := range map[string]driver.Subscription{"tc": subC, "tx": subX} {
		assert.False(t, woken(sub), "%s woken by a grant to another ticket", tk)
		_, ok := grantOf(t, sub)
		assert.False(t, ok, "%s told of a grant to another ticket", tk)
	}

	// B never claims: the grant is a holding of B's owner all the same.
	held, _ = release(t, s, "b", "")
	require.True(t, held)
	next := inspect(t, s)
	assert.Equal(t, driver.State{Owner: "c", Count: 1, Fence: next.Fence, TTL: ttl}, next,
		"a lease longer than the waiter TTL is granted for the waiter TTL")
	assert.Greater(t, next.Fence, st.Fence)
	fence, ok = grantOf(t, subC)
	assert.True(t, ok)
	assert.Equal(t, next.Fence, fence)
	assert.Empty(t, grantTickets(s))
}

func TestGrantClaimIsIdempotent(t *testing.T) {
	s, clk := newStore()
	require.True(t, acquire(t, s, req("a", "ta", time.Minute)).Acquired)
	require.False(t, acquireFair(t, s, req("b", "tb", time.Minute), ttl).Acquired)
	held, _ := release(t, s, "a", "")
	require.True(t, held)
	granted := inspect(t, s)
	require.Equal(t, "b", granted.Owner)
	require.Equal(t, ttl, granted.TTL)

	clk.Advance(time.Second)
	want := driver.AcquireResult{Acquired: true, Fence: granted.Fence, Count: 1, Position: -1}
	assert.Equal(t, want, acquireFair(t, s, req("b", "tb", time.Minute), ttl), "the grantee's attempt claims the grant as a re-entry")
	assert.Equal(t, driver.State{Owner: "b", Count: 1, Fence: granted.Fence, TTL: time.Minute}, inspect(t, s),
		"the claim keeps count and fence and sets the full lease")
	assert.Equal(t, want, acquireFair(t, s, req("b", "tb", time.Minute), ttl), "claiming twice counts once")
	assert.Equal(t, want, acquire(t, s, req("b", "tb", time.Minute)), "a barging attempt claims alike")

	held, n := release(t, s, "b", "")
	assert.True(t, held)
	assert.Zero(t, n, "one release undoes the grant and its claims")
	assert.Equal(t, driver.State{}, inspect(t, s))
}

func TestGrantRunsOutWithoutClaim(t *testing.T) {
	s, clk := newStore()
	require.True(t, acquire(t, s, req("a", "ta", time.Minute)).Acquired)
	require.False(t, acquireFair(t, s, req("b", "tb", time.Minute), ttl).Acquired)
	require.False(t, acquireFair(t, s, req("c", "tc", time.Minute), time.Minute).Acquired)
	held, _ := release(t, s, "a", "")
	require.True(t, held)
	require.Equal(t, "b", inspect(t, s).Owner)

	// B died before it heard of the grant: it runs out after B's waiter TTL.
	clk.Advance(ttl)
	assert.Equal(t, driver.AcquireResult{Position: 0, Fence: inspect(t, s).Fence}, acquireFair(t, s, req("c", "tc", time.Minute), time.Minute),
		"the grant is alive at its expiry instant")
	clk.Advance(time.Nanosecond)
	res := acquireFair(t, s, req("c", "tc", time.Minute), time.Minute)
	assert.True(t, res.Acquired, "the next waiter takes the lock once the grant ran out")
	assert.Equal(t, driver.State{Owner: "c", Count: 1, Fence: res.Fence, TTL: time.Minute}, inspect(t, s))
}

func TestGiveUpUndoesGrant(t *testing.T) {
	s, _ := newStore()
	ctx := context.Background()
	require.True(t, acquire(t, s, req("a", "ta", time.Minute)).Acquired)
	subC := subscribe(t, s, "tc")
	require.False(t, acquireFair(t, s, req("b", "tb", time.Minute), ttl).Acquired)
	require.False(t, acquireFair(t, s, req("c", "tc", time.Minute), ttl).Acquired)
	held, _ := release(t, s, "a", "")
	require.True(t, held)

	// B gave up as the grant came: it leaves the queue, then undoes what
	// its ticket holds.
	require.NoError(t, s.Leave(ctx, name, "tb"))
	assert.Equal(t, "b", inspect(t, s).Owner, "Leave does not undo a grant")
	held, _ = release(t, s, "b", "tz")
	assert.False(t, held, "a release scoped to another ticket does not undo the grant")
	assert.False(t, woken(subC))
	held, n := release(t, s, "b", "tb")
	assert.True(t, held)
	assert.Zero(t, n)
	st := inspect(t, s)
	assert.Equal(t, driver.State{Owner: "c", Count: 1, Fence: st.Fence, TTL: ttl}, st, "the undone grant goes on to the next head")
	assert.True(t, woken(subC))
	fence, ok := grantOf(t, subC)
	assert.True(t, ok)
	assert.Equal(t, st.Fence, fence)
	held, _ = release(t, s, "b", "tb")
	assert.False(t, held, "a grant is undone once")
}

func TestLeaveRemovesGrant(t *testing.T) {
	s, _ := newStore()
	ctx := context.Background()
	require.True(t, acquire(t, s, req("a", "ta", time.Minute)).Acquired)
	require.False(t, acquireFair(t, s, req("b", "tb", time.Minute), ttl).Acquired)
	require.False(t, acquireFair(t, s, req("c", "tc", time.Minute), ttl).Acquired)
	assert.ElementsMatch(t, []string{"tb", "tc"}, grantTickets(s))

	require.NoError(t, s.Leave(ctx, name, "tb"))
	assert.Equal(t, []string{"tc"}, grantTickets(s))
	require.NoError(t, s.Leave(ctx, name, "tc"))
	assert.Empty(t, grantTickets(s))

	subB := subscribe(t, s, "tb")
	held, _ := release(t, s, "a", "")
	require.True(t, held)
	assert.Equal(t, driver.State{}, inspect(t, s), "a waiter that left is never granted the lock")
	assert.True(t, woken(subB), "the queue is empty: the release broadcasts")
	_, ok := grantOf(t, subB)
	assert.False(t, ok)
}

func TestNoRecordsWhenIdle(t *testing.T) {
	s, clk := newStore()
	require.True(t, acquire(t, s, req("a", "ta", time.Second)).Acquired)
	assert.False(t, acquire(t, s, req("b", "tb", time.Second)).Acquired)
	assert.Equal(t, []string{name + ":lock"}, s.Keys("orders"), "a failed barging attempt writes nothing")
	require.False(t, acquireFair(t, s, req("b", "tb", time.Second), 100*time.Millisecond).Acquired)
	require.False(t, acquireFair(t, s, req("c", "tc", time.Second), 100*time.Millisecond).Acquired)
	assert.ElementsMatch(t, []string{name + ":lock", name + ":q"}, s.Keys("orders"))
	assert.Empty(t, s.Keys("nomatch"))

	held, _ := release(t, s, "a", "")
	require.True(t, held)
	assert.ElementsMatch(t, []string{name + ":lock", name + ":q"}, s.Keys(name), "B holds the grant, C still queues")
	// Neither comes back: B's grant runs out with its waiter TTL, and C's
	// queue vanishes a second after its heartbeat deadline.
	clk.Advance(100*time.Millisecond + time.Nanosecond)
	assert.Equal(t, []string{name + ":q"}, s.Keys(name))
	clk.Advance(time.Second - time.Nanosecond)
	assert.Equal(t, 1, inspect(t, s).Waiters, "lapsed but not evicted, as in Redis")
	clk.Advance(time.Nanosecond)
	assert.Empty(t, s.Keys(name))
	assert.Empty(t, s.names)

	st, err := s.Inspect(context.Background(), "unknown")
	require.NoError(t, err)
	assert.Equal(t, driver.State{}, st)
	ok, err := s.Extend(context.Background(), "unknown", "a", time.Second)
	require.NoError(t, err)
	assert.False(t, ok)
	assert.Empty(t, s.names, "reads and no-ops create no records")
}

func TestQueueLivesWhileAnyHeartbeatDoes(t *testing.T) {
	s, clk := newStore()
	require.True(t, acquire(t, s, req("a", "ta", time.Minute)).Acquired)
	require.False(t, acquireFair(t, s, req("b", "tb", time.Minute), 10*time.Second).Acquired)
	require.False(t, acquireFair(t, s, req("c", "tc", time.Minute), 100*time.Millisecond).Acquired)
	clk.Advance(5 * time.Second)
	assert.Equal(t, 2, inspect(t, s).Waiters, "a short heartbeat joining later must not cut the queue's life short")
}

func TestSweepDropsExpiredRecords(t *testing.T) {
	s, clk := newStore()
	ctx := context.Background()
	for i := range 1000 {
		_, err := s.Acquire(ctx, driver.AcquireRequest{Name: fmt.Sprint("short", i), Owner: "a", Ticket: "t", Lease: time.Millisecond})
		require.NoError(t, err)
	}
	clk.Advance(time.Second)
	for i := range 500 {
		_, err := s.Acquire(ctx, driver.AcquireRequest{Name: fmt.Sprint("long", i), Owner: "a", Ticket: "t", Lease: time.Hour})
		require.NoError(t, err)
	}
	s.mu.Lock()
	n := len(s.names)
	s.mu.Unlock()
	assert.Equal(t, 500, n, "expired records nobody touched again are swept")
}

func TestExtend(t *testing.T) {
	s, clk := newStore()
	ctx := context.Background()
	require.True(t, acquire(t, s, req("a", "ta", 10*time.Second)).Acquired)
	clk.Advance(time.Second)

	ok, err := s.Extend(ctx, name, "a", 2*time.Second)
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, 2*time.Second, inspect(t, s).TTL, "Extend sets the lease, shorter or longer")

	ok, err = s.Extend(ctx, name, "b", time.Minute)
	require.NoError(t, err)
	assert.False(t, ok)
	assert.Equal(t, 2*time.Second, inspect(t, s).TTL, "a non-holder changes nothing")

	batch := []driver.Extension{
		{Name: name, Owner: "a", Lease: 5 * time.Second},
		{Name: name, Owner: "b", Lease: time.Minute},
		{Name: "unknown", Owner: "a", Lease: time.Minute},
	}
	require.NoError(t, s.ExtendBatch(ctx, batch))
	assert.True(t, batch[0].Held)
	assert.False(t, batch[1].Held)
	assert.False(t, batch[2].Held)
	for _, e := range batch {
		assert.NoError(t, e.Err)
	}
	assert.Equal(t, 5*time.Second, inspect(t, s).TTL)
	assert.Empty(t, s.Keys("unknown"))
}

func TestInspect(t *testing.T) {
	s, clk := newStore()
	res := acquire(t, s, req("a", "ta", time.Second))
	require.True(t, acquire(t, s, req("a", "ta2", time.Second)).Acquired)
	require.False(t, acquireFair(t, s, req("b", "tb", time.Second), ttl).Acquired)
	clk.Advance(250 * time.Millisecond)
	assert.Equal(t, driver.State{Owner: "a", Count: 2, Fence: res.Fence, TTL: 750 * time.Millisecond, Waiters: 1}, inspect(t, s))
}

func TestSubscriptionsCountPerName(t *testing.T) {
	s, _ := newStore()
	ctx := context.Background()
	c1, c2 := s.Client(), s.Client()
	a1, err := c1.Subscribe(ctx, "a", "t1")
	require.NoError(t, err)
	a2, err := c1.Subscribe(ctx, "a", "t2")
	require.NoError(t, err)
	b1, err := c1.Subscribe(ctx, "b", "t3")
	require.NoError(t, err)
	a3, err := c2.Subscribe(ctx, "a", "t4")
	require.NoError(t, err)
	assert.Equal(t, 2, c1.ActiveSubscriptions())
	assert.Equal(t, 1, c2.ActiveSubscriptions())
	assert.Equal(t, 2, s.ActiveSubscriptions())

	a1.Close()
	a1.Close()
	assert.Equal(t, 2, c1.ActiveSubscriptions(), "a2 still listens on a; Close is idempotent")
	a2.Close()
	assert.Equal(t, 1, c1.ActiveSubscriptions())
	assert.Equal(t, 2, s.ActiveSubscriptions(), "c2 still listens on a")

	_, err = c2.Acquire(ctx, driver.AcquireRequest{Name: "a", Owner: "o", Ticket: "t", Lease: time.Second})
	require.NoError(t, err)
	_, _, err = c2.Release(ctx, "a", "o", "")
	require.NoError(t, err)
	assert.False(t, woken(a1), "a closed subscription is never signalled")
	assert.True(t, woken(a3))

	b1.Close()
	a3.Close()
	assert.Zero(t, c1.ActiveSubscriptions())
	assert.Zero(t, c2.ActiveSubscriptions())
	assert.Zero(t, s.ActiveSubscriptions())
}

func TestWakeUpsCoalesce(t *testing.T) {
	s, _ := newStore()
	sub := subscribe(t, s, "tx")
	for range 3 {
		require.True(t, acquire(t, s, req("a", "ta", time.Second)).Acquired)
		held, _ := release(t, s, "a", "")
		require.True(t, held)
	}
	assert.True(t, woken(sub))
	assert.False(t, woken(sub), "wake-ups coalesce into one")
}

func TestKill(t *testing.T) {
	s, clk := newStore()
	ctx := context.Background()
	c1, c2 := s.Client(), s.Client()
	_, err := c1.Acquire(ctx, req("a", "ta", time.Second))
	require.NoError(t, err)
	sub, err := c1.Subscribe(ctx, name, "tz")
	require.NoError(t, err)
	_, err = c2.Subscribe(ctx, "other", "t")
	require.NoError(t, err)

	c1.Kill()
	c1.Kill()
	assert.Zero(t, c1.ActiveSubscriptions())
	assert.Equal(t, 1, s.ActiveSubscriptions(), "only the killed client's subscriptions go")

	_, err = c1.Acquire(ctx, req("a", "tb", time.Second))
	assert.ErrorIs(t, err, ErrKilled)
	_, err = c1.AcquireFair(ctx, req("a", "tb", time.Second), ttl)
	assert.ErrorIs(t, err, ErrKilled)
	_, _, err = c1.Release(ctx, name, "a", "")
	assert.ErrorIs(t, err, ErrKilled)
	_, err = c1.Extend(ctx, name, "a", time.Second)
	assert.ErrorIs(t, err, ErrKilled)
	assert.ErrorIs(t, c1.ExtendBatch(ctx, []driver.Extension{{Name: name, Owner: "a", Lease: time.Second}}), ErrKilled)
	assert.ErrorIs(t, c1.Leave(ctx, name, "tb"), ErrKilled)
	_, err = c1.Subscribe(ctx, name, "tz")
	assert.ErrorIs(t, err, ErrKilled)
	_, err = c1.Inspect(ctx, name)
	assert.ErrorIs(t, err, ErrKilled)

	st, err := c2.Inspect(ctx, name)
	require.NoError(t, err)
	assert.Equal(t, "a", st.Owner, "a dead process's lock stays until its lease ends")
	_, err = c2.Acquire(ctx, req("b", "tb", time.Second))
	require.NoError(t, err)
	clk.Advance(time.Second + time.Nanosecond)
	res, err := c2.Acquire(ctx, req("b", "tb", time.Second))
	require.NoError(t, err)
	assert.True(t, res.Acquired)
	_, _, err = c2.Release(ctx, name, "b", "")
	require.NoError(t, err)
	assert.False(t, woken(sub), "a killed client's subscription stops")
	sub.Close()
	assert.Equal(t, 1, s.ActiveSubscriptions())
}

func TestDoneContextChangesNothing(t *testing.T) {
	s, _ := newStore()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	_, err := s.Acquire(ctx, req("a", "ta", time.Second))
	assert.ErrorIs(t, err, context.Canceled)
	_, err = s.AcquireFair(ctx, req("a", "ta", time.Second), ttl)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Empty(t, s.Keys(""))

	require.True(t, acquire(t, s, req("a", "ta", time.Second)).Acquired)
	_, _, err = s.Release(ctx, name, "a", "")
	assert.ErrorIs(t, err, context.Canceled)
	_, err = s.Extend(ctx, name, "a", time.Minute)
	assert.ErrorIs(t, err, context.Canceled)
	assert.ErrorIs(t, s.ExtendBatch(ctx, []driver.Extension{{Name: name, Owner: "a", Lease: time.Minute}}), context.Canceled)
	assert.ErrorIs(t, s.Leave(ctx, name, "ta"), context.Canceled)
	_, err = s.Inspect(ctx, name)
	assert.ErrorIs(t, err, context.Canceled)
	sub, err := s.Subscribe(ctx, name, "ta")
	assert.ErrorIs(t, err, context.Canceled)
	assert.Nil(t, sub)
	assert.Zero(t, s.ActiveSubscriptions())
	assert.Equal(t, driver.State{Owner: "a", Count: 1, Fence: inspect(t, s).Fence, TTL: time.Second}, inspect(t, s))
}

func TestNewUsesRealClock(t *testing.T) {
	s := New()
	before := time.Now().UnixMicro()
	res := acquire(t, s, req("a", "ta", time.Minute))
	require.True(t, res.Acquired)
	assert.GreaterOrEqual(t, res.Fence, before)
	st := inspect(t, s)
	assert.Positive(t, st.TTL)
	assert.LessOrEqual(t, st.TTL, time.Minute)
}

// TestConcurrentMutualExclusion hammers one name from several clients, in
// both modes, and checks that no two owners are ever inside at once.
func TestConcurrentMutualExclusion(t *testing.T) {
	s := New()
	const workers, rounds = 8, 100
	var inside atomic.Int32
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- worker(s.Client(), w, rounds, &inside)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.Empty(t, s.Keys(""))
	assert.Zero(t, s.ActiveSubscriptions())
}

func worker(c *Client, w, rounds int, inside *atomic.Int32) error {
	ctx := context.Background()
	fair := w%2 == 0
	for i := range rounds {
		r := driver.AcquireRequest{Name: name, Owner: fmt.Sprint("w", w, "-", i), Ticket: fmt.Sprint("t", w, "-", i), Lease: time.Minute}
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
