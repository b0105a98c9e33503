package memory

import (
	"context"
	"fmt"
	"sync"
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

// TestLeaseAliveAtItsExpiryInstant: a lock is alive up to and including
// its expiry instant, as a Redis key is at its expiry millisecond.
func TestLeaseAliveAtItsExpiryInstant(t *testing.T) {
	s, clk := newStore()
	require.True(t, acquire(t, s, req("a", "t1", time.Second)).Acquired)
	clk.Advance(time.Second)
	assert.False(t, acquire(t, s, req("b", "t2", time.Second)).Acquired, "alive at its expiry instant, as in Redis")
	clk.Advance(time.Nanosecond)
	assert.Equal(t, driver.State{}, inspect(t, s))
	assert.True(t, acquire(t, s, req("b", "t2", time.Second)).Acquired)
}

// TestTTLsByTheClock: the leases and TTLs the store reports are exact by
// its clock (the backend-level suite, package storetest, checks them
// within bounds), and every waiter is told the holder's lease, the head
// and those behind it alike.
func TestTTLsByTheClock(t *testing.T) {
	s, clk := newStore()
	ctx := context.Background()
	first := acquire(t, s, req("a", "t1", 10*time.Second))
	require.True(t, first.Acquired)
	clk.Advance(time.Second)
	require.True(t, acquire(t, s, req("a", "t2", time.Second)).Acquired)
	assert.Equal(t, 9*time.Second, inspect(t, s).TTL, "a shorter re-entry lease must not shorten the lease")
	require.True(t, acquire(t, s, req("a", "t3", 20*time.Second)).Acquired)
	assert.Equal(t, 20*time.Second, inspect(t, s).TTL, "a longer re-entry lease extends it")

	clk.Advance(time.Second)
	ok, err := s.Extend(ctx, name, "a", 2*time.Second)
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, 2*time.Second, inspect(t, s).TTL, "Extend sets the lease, shorter or longer")
	ok, err = s.Extend(ctx, name, "b", time.Minute)
	require.NoError(t, err)
	assert.False(t, ok)
	assert.Equal(t, 2*time.Second, inspect(t, s).TTL, "a non-holder changes nothing")
	batch := []driver.Extension{{Name: name, Owner: "a", Lease: 5 * time.Second}}
	require.NoError(t, s.ExtendBatch(ctx, batch))
	assert.True(t, batch[0].Held)
	assert.Equal(t, 5*time.Second, inspect(t, s).TTL)

	clk.Advance(250 * time.Millisecond)
	assert.Equal(t, driver.AcquireResult{TTL: 4750 * time.Millisecond, Position: 0, Fence: first.Fence}, acquireFair(t, s, req("b", "tb", time.Second), ttl))
	assert.Equal(t, driver.AcquireResult{TTL: 4750 * time.Millisecond, Position: 1, Fence: first.Fence}, acquireFair(t, s, req("c", "tc", time.Second), ttl),
		"a waiter behind the head is told the lease too")
	assert.Equal(t, driver.AcquireResult{TTL: 4750 * time.Millisecond, Position: -1, Fence: first.Fence}, acquireFair(t, s, req("d", "td", time.Second), 0))
	assert.Equal(t, driver.State{Owner: "a", Count: 3, Fence: first.Fence, TTL: 4750 * time.Millisecond, Waiters: 2}, inspect(t, s))
}

// TestGrantLeasesByTheClock: a grant lasts exactly min(lease, waiter TTL)
// from the release, is alive at its expiry instant, and a claim sets the
// full lease.
func TestGrantLeasesByTheClock(t *testing.T) {
	s, clk := newStore()
	require.True(t, acquire(t, s, req("a", "ta", time.Minute)).Acquired)
	require.False(t, acquireFair(t, s, req("b", "tb", 4*time.Second), ttl).Acquired)
	require.False(t, acquireFair(t, s, req("c", "tc", time.Minute), ttl).Acquired)
	require.False(t, acquireFair(t, s, req("d", "td", time.Minute), time.Hour).Acquired)
	clk.Advance(time.Second)

	held, _ := release(t, s, "a", "")
	require.True(t, held)
	st := inspect(t, s)
	assert.Equal(t, driver.State{Owner: "b", Count: 1, Fence: st.Fence, TTL: 4 * time.Second, Waiters: 2}, st,
		"a lease shorter than the waiter TTL is granted for the lease")
	held, _ = release(t, s, "b", "")
	require.True(t, held)
	st = inspect(t, s)
	assert.Equal(t, driver.State{Owner: "c", Count: 1, Fence: st.Fence, TTL: ttl, Waiters: 1}, st,
		"a lease longer than the waiter TTL is granted for the waiter TTL")

	// c died before it heard of the grant: it runs out after c's waiter TTL.
	clk.Advance(ttl)
	assert.Equal(t, driver.AcquireResult{Position: 0, Fence: st.Fence}, acquireFair(t, s, req("d", "td", time.Minute), time.Hour),
		"the grant is alive at its expiry instant")
	clk.Advance(time.Nanosecond)
	assert.True(t, acquireFair(t, s, req("d", "td", 2*time.Second), time.Hour).Acquired)
	held, _ = release(t, s, "d", "")
	require.True(t, held)

	// A claim sets the full lease.
	require.True(t, acquire(t, s, req("a", "ta2", time.Minute)).Acquired)
	require.False(t, acquireFair(t, s, req("e", "te", time.Minute), ttl).Acquired)
	held, _ = release(t, s, "a", "")
	require.True(t, held)
	require.Equal(t, ttl, inspect(t, s).TTL)
	clk.Advance(time.Second)
	require.True(t, acquireFair(t, s, req("e", "te", time.Minute), ttl).Acquired)
	assert.Equal(t, time.Minute, inspect(t, s).TTL, "the claim sets the full lease")
}

// TestBargingReleaseGrantsUnasked: the final release of a barging holder
// hands the lock to the fair head even when no attempt found the holding
// taken (the Redis scripts may skip the queue then: the head re-checks).
func TestBargingReleaseGrantsUnasked(t *testing.T) {
	s, clk := newStore()
	require.True(t, acquire(t, s, req("a", "ta", time.Second)).Acquired)
	require.False(t, acquireFair(t, s, req("b", "tb", time.Second), ttl).Acquired)
	clk.Advance(time.Second + time.Nanosecond) // a's lease lapses: free, with b queued
	require.True(t, acquire(t, s, req("d", "td", time.Second)).Acquired)

	held, _ := release(t, s, "d", "")
	require.True(t, held)
	st := inspect(t, s)
	assert.Equal(t, "b", st.Owner)
	assert.Zero(t, st.Waiters)
}

// TestStoreCountsSubscriptionsOfEveryClient: Store.ActiveSubscriptions
// counts the names any client listens on.
func TestStoreCountsSubscriptionsOfEveryClient(t *testing.T) {
	s, _ := newStore()
	ctx := context.Background()
	c1, c2 := s.Client(), s.Client()
	a1, err := c1.Subscribe(ctx, "a", "t1")
	require.NoError(t, err)
	b1, err := c1.Subscribe(ctx, "b", "t2")
	require.NoError(t, err)
	a2, err := c2.Subscribe(ctx, "a", "t3")
	require.NoError(t, err)
	assert.Equal(t, 2, s.ActiveSubscriptions())
	a1.Close()
	assert.Equal(t, 2, s.ActiveSubscriptions(), "c2 still listens on a")
	b1.Close()
	assert.Equal(t, 1, s.ActiveSubscriptions())
	a2.Close()
	assert.Zero(t, s.ActiveSubscriptions())
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

// TestDoneContextChangesNothing: a call on a done context changes nothing
// (the contract leaves it open; the memory store checks ctx first).
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
