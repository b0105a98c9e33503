package memory

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/locker/driver"
)

// heldCount returns how many calls and messages c holds back.
func heldCount(c *Client) int {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return len(c.held)
}

// awaitHeld waits until c holds n calls and messages back.
func awaitHeld(t *testing.T, c *Client, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return heldCount(c) == n }, 5*time.Second, time.Millisecond,
		"the stalled client to hold %d calls and messages back", n)
}

// async runs f on its own goroutine; the channel delivers its error.
func async(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

func TestStallBlocksEveryCallUntilResume(t *testing.T) {
	s, clk := newStore()
	c, other := s.Client(), s.Client()
	ctx := context.Background()
	require.True(t, acquire(t, c, req("a", "ta", time.Minute)).Acquired)
	resume := c.Stall()

	calls := map[string]func() error{
		"Acquire": func() error { _, err := c.Acquire(ctx, req("a", "ta2", time.Minute)); return err },
		"AcquireFair": func() error {
			_, err := c.AcquireFair(ctx, req("b", "tb", time.Minute), ttl)
			return err
		},
		"Extend": func() error { _, err := c.Extend(ctx, name, "a", 2*time.Minute); return err },
		"ExtendBatch": func() error {
			return c.ExtendBatch(ctx, []driver.Extension{{Name: name, Owner: "a", Lease: time.Minute}})
		},
		"Leave":     func() error { return c.Leave(ctx, name, "tz") },
		"Inspect":   func() error { _, err := c.Inspect(ctx, name); return err },
		"Subscribe": func() error { _, err := c.Subscribe(ctx, "other", "t"); return err },
	}
	done := make(map[string]<-chan error)
	for what, f := range calls {
		done[what] = async(f)
	}
	awaitHeld(t, c, len(calls))
	time.Sleep(20 * time.Millisecond)
	for what, ch := range done {
		select {
		case err := <-ch:
			t.Fatalf("%s of a stalled client returned %v", what, err)
		default:
		}
	}
	st := inspect(t, s)
	assert.Equal(t, 1, st.Count, "a stalled client's re-entry reached the store")
	assert.Zero(t, st.Waiters, "a stalled client's fair attempt reached the store")
	assert.Zero(t, s.ActiveSubscriptions(), "a stalled client's subscription reached the store")
	_, err := other.Inspect(ctx, name)
	require.NoError(t, err, "another client is not stalled")

	clk.Advance(time.Second)
	resume()
	for what, ch := range done {
		select {
		case err := <-ch:
			assert.NoError(t, err, what)
		case <-time.After(5 * time.Second):
			t.Fatalf("timed out waiting for %s to return after resume", what)
		}
	}
	st = inspect(t, s)
	assert.Equal(t, 2, st.Count)
	assert.Equal(t, 1, st.Waiters)
	assert.Equal(t, 1, c.ActiveSubscriptions())
	assert.Zero(t, heldCount(c))

	resume() // idempotent
	res, err := c.Acquire(ctx, req("a", "ta3", time.Minute))
	require.NoError(t, err, "a resumed client acts at once")
	assert.Equal(t, 3, res.Count)
}

func TestStallHoldsMessagesBack(t *testing.T) {
	s, _ := newStore()
	c, holder := s.Client(), s.Client()
	require.True(t, acquire(t, holder, req("h", "th", time.Minute)).Acquired)
	require.False(t, acquireFair(t, c, req("w", "tw", time.Minute), ttl).Acquired)
	sub := subscribe(t, c, "tw")
	all := subscribe(t, holder, "tx") // of another client, not stalled

	resume := c.Stall()
	held, _ := release(t, holder, "h", "")
	require.True(t, held)
	assert.Equal(t, "w", inspect(t, s).Owner, "the store granted the lock to the stalled waiter")
	_, granted := grantOf(t, sub)
	assert.False(t, granted, "a stalled client saw a grant")
	assert.False(t, woken(sub), "a stalled client was woken")
	assert.Equal(t, 1, heldCount(c))

	// Local to the process: answered at once.
	late, ok := c.SubscribeActive(name, "tw")
	require.True(t, ok, "SubscribeActive on a stalled client")
	defer late.Close()
	assert.Equal(t, 1, c.ActiveSubscriptions(), "two subscriptions of one name")

	// A broadcast to the other client gets through.
	held, _ = release(t, s, "w", "")
	require.True(t, held)
	assert.True(t, woken(all), "a client that is not stalled was not woken")
	assert.False(t, woken(sub))
	assert.Equal(t, 3, heldCount(c), "the grant, and the broadcast to each subscription")

	resume()
	fence, granted := grantOf(t, sub)
	assert.True(t, granted, "the grant held back was not delivered on resume")
	assert.Positive(t, fence)
	assert.True(t, woken(sub))
	assert.True(t, woken(late))
	_, granted = grantOf(t, late)
	assert.False(t, granted, "the late subscription got a grant published before it existed")
}

func TestStallDeliversInOriginalOrder(t *testing.T) {
	s, _ := newStore()
	c, holder := s.Client(), s.Client()
	ctx := context.Background()
	require.True(t, acquire(t, holder, req("h", "th", time.Minute)).Acquired)
	require.False(t, acquireFair(t, c, req("w", "tw", time.Minute), ttl).Acquired)
	sub := subscribe(t, c, "tw")
	resume := c.Stall()

	// First a call: the stalled client's Inspect, then the grant message,
	// then its claim of the grant.
	inspected := make(chan driver.State, 1)
	go func() {
		st, _ := c.Inspect(ctx, name)
		inspected <- st
	}()
	awaitHeld(t, c, 1)
	held, _ := release(t, holder, "h", "")
	require.True(t, held)
	awaitHeld(t, c, 2)
	g := sub
	claimed := make(chan bool, 1)
	go func() {
		res, err := c.AcquireFair(ctx, req("w", "tw", time.Minute), ttl)
		// The grant message came before the claim: it is delivered by now.
		_, granted := g.Granted()
		claimed <- err == nil && res.Acquired && granted
	}()
	awaitHeld(t, c, 3)

	resume()
	st := <-inspected
	assert.Equal(t, "w", st.Owner, "the call held back acted on the store as it is at resume")
	assert.True(t, <-claimed, "the claim was not answered as a re-entry after the grant message")
}

func TestStallCallWhoseContextEndsChangesNothing(t *testing.T) {
	s, _ := newStore()
	c := s.Client()
	resume := c.Stall()
	defer resume()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Acquire(ctx, req("a", "ta", time.Minute))
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.GreaterOrEqual(t, time.Since(start), 30*time.Millisecond, "a stalled call did not block")
	resume()
	assert.Empty(t, s.Keys(""), "a call whose ctx ended while stalled acted on resume")

	cctx, cancelNow := context.WithCancel(context.Background())
	cancelNow()
	c2 := s.Client()
	defer c2.Stall()()
	_, err = c2.Acquire(cctx, req("a", "ta", time.Minute))
	assert.ErrorIs(t, err, context.Canceled, "a done ctx fails at once, stalled or not")
}

func TestStallsNest(t *testing.T) {
	s, _ := newStore()
	c := s.Client()
	r1, r2 := c.Stall(), c.Stall()
	done := async(func() error { _, err := c.Acquire(context.Background(), req("a", "ta", time.Minute)); return err })
	awaitHeld(t, c, 1)
	r1()
	r1()
	select {
	case err := <-done:
		t.Fatalf("a call returned (%v) while one of two stalls lasted", err)
	case <-time.After(20 * time.Millisecond):
	}
	r2()
	require.NoError(t, <-done)
	assert.Equal(t, "a", inspect(t, s).Owner)
}

func TestKillEndsStall(t *testing.T) {
	s, _ := newStore()
	c := s.Client()
	ctx := context.Background()
	sub := subscribe(t, c, "ta")
	resume := c.Stall()
	defer resume()
	done := async(func() error { _, err := c.Acquire(ctx, req("a", "ta", time.Minute)); return err })
	awaitHeld(t, c, 1)
	held, _ := release(t, s, "x", "")
	require.False(t, held)
	_, err := s.Acquire(ctx, req("b", "tb", time.Minute))
	require.NoError(t, err)
	_, _, err = s.Release(ctx, name, "b", "")
	require.NoError(t, err)
	awaitHeld(t, c, 2)

	c.Kill()
	assert.ErrorIs(t, <-done, ErrKilled, "a call held back by a stall returns once the client is killed")
	resume()
	assert.False(t, woken(sub), "a message held back for a killed client was delivered")
	assert.Empty(t, s.Keys(""))
}
