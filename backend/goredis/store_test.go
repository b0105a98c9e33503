package goredis

import (
	"bytes"
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/fairqueue"
	"github.com/disgolock/disgo/internal/rediscore"
	"github.com/disgolock/disgo/internal/redistest"
	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/renewer"
)

func TestNewRejectsBadInput(t *testing.T) {
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"}) // never dialled
	defer c.Close()
	for name, tc := range map[string]struct {
		client redis.UniversalClient
		opts   Options
	}{
		"nil client":         {nil, Options{}},
		"brace in prefix":    {c, Options{Prefix: "a{b"}},
		"negative retention": {c, Options{FenceRetention: -time.Second}},
	} {
		s, err := New(tc.client, tc.opts)
		assert.ErrorIs(t, err, locker.ErrInvalidArgument, name)
		assert.Nil(t, s, name)
	}
	s, err := New(c, Options{})
	require.NoError(t, err)
	assert.Equal(t, rediscore.DefaultPrefix, s.layout.Prefix)
	assert.Equal(t, rediscore.DefaultFenceRetention, s.fenceRetention)
	assert.Equal(t, rediscore.Sharded, s.publish)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close is idempotent")
}

func TestTakeReenterRelease(t *testing.T) {
	srv := redistest.Start(t)
	s, _ := newStore(t, srv, Options{Prefix: "p"})
	ctx := ctxT(t)

	first := req("a", "alice", time.Minute)
	res, err := s.Acquire(ctx, first)
	require.NoError(t, err)
	require.True(t, res.Acquired)
	assert.Equal(t, 1, res.Count)
	assert.Positive(t, res.Fence)

	again, err := s.Acquire(ctx, first) // same ticket: a repeated attempt, not a second hold
	require.NoError(t, err)
	assert.Equal(t, locker.AcquireResult{Acquired: true, Fence: res.Fence, Count: 1, Position: -1}, again)

	re, err := s.Acquire(ctx, req("a", "alice", time.Second))
	require.NoError(t, err)
	assert.Equal(t, locker.AcquireResult{Acquired: true, Fence: res.Fence, Count: 2, Position: -1}, re)

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
	assert.Equal(t, locker.State{}, st)
}

func TestReleaseByNonHolderChangesNothing(t *testing.T) {
	srv := redistest.Start(t)
	s, _ := newStore(t, srv, Options{})
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

func TestTicketScopedRelease(t *testing.T) {
	srv := redistest.Start(t)
	s, _ := newStore(t, srv, Options{})
	ctx := ctxT(t)
	r1, r2 := req("a", "alice", time.Minute), req("a", "alice", time.Minute)
	for _, r := range []locker.AcquireRequest{r1, r2} {
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

func TestExtend(t *testing.T) {
	srv := redistest.Start(t)
	s, c := newStore(t, srv, Options{})
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
	assert.Equal(t, []string{s.layout.Keys("a")[rediscore.KeyLock]}, keys(t, c), "extend of a free lock created keys")
}

func TestExtendBatchMixedHeldAndNotHeld(t *testing.T) {
	srv := redistest.Start(t)
	s, c := newStore(t, srv, Options{})
	ctx := ctxT(t)
	for _, name := range []string{"a", "b"} {
		_, err := s.Acquire(ctx, req(name, "alice", time.Second))
		require.NoError(t, err)
	}
	require.NoError(t, s.ExtendBatch(ctx, nil))
	_, err := s.Extend(ctx, "a", "alice", time.Second) // load the script
	require.NoError(t, err)

	cnt := &counter{}
	c.AddHook(cnt)
	batch := []renewer.Extension{
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
	assert.Equal(t, int64(1), cnt.pipelines.Load(), "one pipeline per batch")
	for _, name := range []string{"a", "b"} {
		st, err := s.Inspect(ctx, name)
		require.NoError(t, err)
		assert.Greater(t, st.TTL, time.Minute, name)
	}
}

func TestFairQueueOrderPositionAndHeadOnly(t *testing.T) {
	srv := redistest.Start(t)
	s, _ := newStore(t, srv, Options{})
	ctx := ctxT(t)
	const ttl = time.Minute
	holder := req("q", "holder", time.Minute)
	res, err := s.AcquireFair(ctx, holder, ttl)
	require.NoError(t, err)
	require.True(t, res.Acquired)

	b, c := req("q", "b", time.Minute), req("q", "c", time.Minute)
	for i, r := range []locker.AcquireRequest{b, c, b} {
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

	// Barging ignores the queue but still cannot take a held lock.
	bargeRes, err := s.Acquire(ctx, req("q", "barger", time.Minute))
	require.NoError(t, err)
	assert.False(t, bargeRes.Acquired)

	subB, err := s.Subscribe(ctx, "q", b.Ticket)
	require.NoError(t, err)
	defer subB.Close()
	subC, err := s.Subscribe(ctx, "q", c.Ticket)
	require.NoError(t, err)
	defer subC.Close()

	held, remaining, err := s.Release(ctx, "q", "holder", "")
	require.NoError(t, err)
	require.True(t, held)
	require.Zero(t, remaining)
	// The release hands the lock to the head, and tells it the fence.
	woken(t, subB, "the head's grant")
	fence, granted := subB.(locker.Granter).Granted()
	require.True(t, granted)
	notWoken(t, subC, "the release woke a waiter that is not the head")
	_, granted = subC.(locker.Granter).Granted()
	assert.False(t, granted)
	st, err = s.Inspect(ctx, "q")
	require.NoError(t, err)
	assert.Equal(t, locker.State{Owner: "b", Count: 1, Fence: fence, TTL: st.TTL, Waiters: 1}, st)
	assert.Greater(t, fence, res.Fence)
	assert.Positive(t, st.TTL)

	// c is the head now, but b holds the lock.
	resC, err := s.AcquireFair(ctx, c, ttl)
	require.NoError(t, err)
	assert.False(t, resC.Acquired)
	assert.Equal(t, 0, resC.Position)
	assert.Positive(t, resC.TTL)

	// b claims the grant with its ticket: an idempotent re-entry.
	resB, err := s.AcquireFair(ctx, b, ttl)
	require.NoError(t, err)
	assert.Equal(t, locker.AcquireResult{Acquired: true, Fence: fence, Count: 1, Position: -1}, resB)
}

func TestFairEvictsDeadWaiterAfterItsTTL(t *testing.T) {
	srv := redistest.Start(t)
	s, c := newStore(t, srv, Options{})
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
	assert.Empty(t, keys(t, c), "keys left behind after the queue emptied")
}

func TestLeaveWakesTheNewHead(t *testing.T) {
	srv := redistest.Start(t)
	s, _ := newStore(t, srv, Options{})
	ctx := ctxT(t)
	_, err := s.AcquireFair(ctx, req("q", "holder", time.Minute), time.Minute)
	require.NoError(t, err)
	b, c, d := req("q", "b", time.Minute), req("q", "c", time.Minute), req("q", "d", time.Minute)
	for _, r := range []locker.AcquireRequest{b, c, d} {
		_, err := s.AcquireFair(ctx, r, time.Minute)
		require.NoError(t, err)
	}
	subC, err := s.Subscribe(ctx, "q", c.Ticket)
	require.NoError(t, err)
	defer subC.Close()
	subD, err := s.Subscribe(ctx, "q", d.Ticket)
	require.NoError(t, err)
	defer subD.Close()

	// While the lock is held, a departing head wakes nobody.
	require.NoError(t, s.Leave(ctx, "q", b.Ticket))
	probe(t, s, "q")
	notWoken(t, subC, "a waiter was woken while the lock is held")
	_, _, err = s.Release(ctx, "q", "holder", "") // grants c, the head now
	require.NoError(t, err)
	woken(t, subC, "the head's grant")
	_, granted := subC.(locker.Granter).Granted()
	require.True(t, granted)

	// c gives up after the grant: leaving wakes nobody (the lock is held),
	// and the ticket-scoped release that undoes the grant hands it to d.
	require.NoError(t, s.Leave(ctx, "q", c.Ticket))
	probe(t, s, "q")
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
	e, f := req("q", "e", time.Minute), req("q", "f", time.Minute)
	for _, r := range []locker.AcquireRequest{e, f} {
		_, err := s.AcquireFair(ctx, r, time.Minute)
		require.NoError(t, err)
	}
	subF, err := s.Subscribe(ctx, "q", f.Ticket)
	require.NoError(t, err)
	defer subF.Close()
	held, err = s.Extend(ctx, "q", "d", time.Millisecond)
	require.NoError(t, err)
	require.True(t, held)
	require.Eventually(t, func() bool {
		st, err := s.Inspect(ctx, "q")
		return err == nil && st.Owner == ""
	}, patience, time.Millisecond, "the lease to run out")
	require.NoError(t, s.Leave(ctx, "q", e.Ticket))
	woken(t, subF, "the new head's wake-up after the head left a free lock")
}

func TestReleaseBroadcastsWithoutQueue(t *testing.T) {
	srv := redistest.Start(t)
	s, _ := newStore(t, srv, Options{})
	ctx := ctxT(t)
	_, err := s.Acquire(ctx, req("a", "alice", time.Minute))
	require.NoError(t, err)
	w1, err := s.Subscribe(ctx, "a", "t1")
	require.NoError(t, err)
	defer w1.Close()
	w2, err := s.Subscribe(ctx, "a", "t2")
	require.NoError(t, err)
	defer w2.Close()
	other, err := s.Subscribe(ctx, "b", "t1")
	require.NoError(t, err)
	defer other.Close()

	_, _, err = s.Release(ctx, "a", "alice", "")
	require.NoError(t, err)
	woken(t, w1, "broadcast to the first waiter")
	woken(t, w2, "broadcast to the second waiter")
	probe(t, s, "b")
	notWoken(t, other, "a release of a woke waiters of b")
}

func TestFenceIncreasesAcrossExpiryAndKeyLoss(t *testing.T) {
	srv := redistest.Start(t)
	s, c := newStore(t, srv, Options{})
	ctx := ctxT(t)
	var last int64
	acquire := func(what string, lease time.Duration) {
		t.Helper()
		var res locker.AcquireResult
		require.Eventually(t, func() bool {
			var err error
			res, err = s.Acquire(ctx, req("f", fairqueue.NewTicket(), lease))
			return err == nil && res.Acquired
		}, patience, time.Millisecond, "acquire (%s)", what)
		assert.Greater(t, res.Fence, last, what)
		last = res.Fence
	}
	acquire("first", time.Minute)
	require.NoError(t, c.Del(ctx, s.layout.Keys("f")[rediscore.KeyLock]).Err()) // lock gone, fence kept
	acquire("after the lock key vanished", 20*time.Millisecond)
	acquire("after the lease expired", time.Minute)
	require.NoError(t, c.Del(ctx, s.layout.Keys("f")...).Err())
	acquire("after every key was deleted", time.Minute)
}

func TestNamesWithSpecialCharacters(t *testing.T) {
	srv := redistest.Start(t)
	s, c := newStore(t, srv, Options{})
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
		held, remaining, err := s.Release(ctx, name, "alice", "")
		require.NoError(t, err, name)
		require.True(t, held, name)
		require.Zero(t, remaining, name)
		woken(t, sub, "the release of "+name)
		sub.Close()
		for _, k := range s.layout.Keys(name) {
			assert.Equal(t, 1, countByte(k, '{'), "key %q of %q", k, name)
		}
	}
	assert.Empty(t, keys(t, c))
	fences, err := c.Keys(ctx, "*:fence").Result()
	require.NoError(t, err)
	assert.Len(t, fences, len(names), "each name has its own fence record")
}

func countByte(s string, b byte) int {
	n := 0
	for i := range len(s) {
		if s[i] == b {
			n++
		}
	}
	return n
}

func TestNoKeysLeftAfterIdle(t *testing.T) {
	srv := redistest.Start(t)
	s, c := newStore(t, srv, Options{})
	ctx := ctxT(t)
	holder := req("idle", "holder", time.Minute)
	_, err := s.AcquireFair(ctx, holder, time.Minute)
	require.NoError(t, err)
	w1, w2 := req("idle", "w1", time.Minute), req("idle", "w2", time.Minute)
	for _, r := range []locker.AcquireRequest{w1, w2} {
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

	assert.Empty(t, keys(t, c))
	fence, err := c.PTTL(ctx, s.layout.Keys("idle")[rediscore.KeyFence]).Result()
	require.NoError(t, err)
	assert.Greater(t, fence, time.Hour, "the fence record is kept for its retention")
}

func TestScriptFlushRecovers(t *testing.T) {
	srv := redistest.Start(t)
	s, c := newStore(t, srv, Options{})
	ctx := ctxT(t)
	cnt := &counter{}
	c.AddHook(cnt)

	require.NoError(t, c.ScriptFlush(ctx).Err())
	cnt.reset()
	res, err := s.Acquire(ctx, req("a", "alice", time.Minute))
	require.NoError(t, err)
	assert.True(t, res.Acquired)
	assert.Equal(t, int64(2), cnt.cmds.Load(), "EVALSHA, then EVAL on NOSCRIPT")
	cnt.reset()
	held, err := s.Extend(ctx, "a", "alice", time.Minute) // another script: also flushed
	require.NoError(t, err)
	assert.True(t, held)
	assert.Equal(t, int64(2), cnt.cmds.Load())
	cnt.reset()
	_, err = s.Extend(ctx, "a", "alice", time.Minute)
	require.NoError(t, err)
	assert.Equal(t, int64(1), cnt.cmds.Load(), "EVAL loaded the script")

	require.NoError(t, c.ScriptFlush(ctx).Err())
	cnt.reset()
	batch := []renewer.Extension{{Name: "a", Owner: "alice", Lease: time.Minute}, {Name: "b", Owner: "alice", Lease: time.Minute}}
	require.NoError(t, s.ExtendBatch(ctx, batch))
	assert.True(t, batch[0].Held)
	assert.False(t, batch[1].Held)
	assert.NoError(t, batch[0].Err)
	assert.Equal(t, int64(2), cnt.pipelines.Load(), "EVALSHA batch, then the EVAL batch")
}

func TestRoundTripsPerAcquireAndRelease(t *testing.T) {
	srv := redistest.Start(t)
	s, c := newStore(t, srv, Options{})
	ctx := ctxT(t)
	// Load the scripts.
	_, err := s.Acquire(ctx, req("warm", "alice", time.Minute))
	require.NoError(t, err)
	_, _, err = s.Release(ctx, "warm", "alice", "")
	require.NoError(t, err)

	cnt := &counter{}
	c.AddHook(cnt)
	for _, fair := range []bool{false, true} {
		cnt.reset()
		r := req("rt", "alice", time.Minute)
		if fair {
			_, err = s.AcquireFair(ctx, r, time.Minute)
		} else {
			_, err = s.Acquire(ctx, r)
		}
		require.NoError(t, err)
		_, _, err = s.Release(ctx, "rt", "alice", "")
		require.NoError(t, err)
		assert.Equal(t, int64(2), cnt.cmds.Load(), "round trips per acquire+release (fair=%v)", fair)
		assert.Zero(t, cnt.pipelines.Load())
	}
}

func TestStoreDownFailsFastAndRecovers(t *testing.T) {
	srv := redistest.Start(t)
	s, _ := newStore(t, srv, Options{})
	ctx := ctxT(t)
	_, err := s.Acquire(ctx, req("a", "alice", time.Minute))
	require.NoError(t, err)

	srv.Stop()
	short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = s.Acquire(short, req("a", "bob", time.Minute))
	assert.Error(t, err)
	_, _, err = s.Release(short, "a", "alice", "")
	assert.Error(t, err)
	_, err = s.Subscribe(short, "a", "t")
	assert.Error(t, err, "subscribing to a stopped server succeeded")

	srv.Restart(t)
	require.Eventually(t, func() bool {
		res, err := s.Acquire(ctx, req("a", "bob", time.Minute))
		return err == nil && res.Acquired
	}, patience, 10*time.Millisecond, "acquire after the restart")
	sub, err := s.Subscribe(ctx, "a", "t")
	require.NoError(t, err)
	defer sub.Close()
	_, _, err = s.Release(ctx, "a", "bob", "")
	require.NoError(t, err)
	woken(t, sub, "a release after the restart")
}

func TestDeadlineOfABlockedServerIsMatchable(t *testing.T) {
	srv := redistest.Start(t)
	s, _ := newStore(t, srv, Options{})
	ctx := ctxT(t)
	_, err := s.Acquire(ctx, req("a", "alice", time.Minute)) // connection and script ready
	require.NoError(t, err)
	_, err = s.Extend(ctx, "a", "alice", time.Minute)
	require.NoError(t, err)
	// The server stops answering for a while.
	require.NoError(t, newClient(t, srv).Do(ctx, "CLIENT", "PAUSE", "1000", "ALL").Err())

	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err = s.Acquire(short, req("a", "bob", time.Minute))
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	short, cancel = context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	err = s.ExtendBatch(short, []renewer.Extension{{Name: "a", Owner: "alice", Lease: time.Minute}})
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
}

// TestNoBlindRetryOfARelease: when the connection drops after the server
// ran a release but before the reply arrived, go-redis must not send the
// release again (its MaxRetries would), which would undo a second hold.
func TestNoBlindRetryOfARelease(t *testing.T) {
	srv := redistest.Start(t)
	direct, _ := newStore(t, srv, Options{})
	ctx := ctxT(t)
	for range 2 {
		_, err := direct.Acquire(ctx, locker.AcquireRequest{Name: "a", Owner: "alice", Ticket: fairqueue.NewTicket(), Lease: time.Minute})
		require.NoError(t, err)
	}
	_, _, err := direct.Release(ctx, "other", "alice", "") // load the script
	require.NoError(t, err)

	proxy := replyDropper(t, srv.Addr)
	c := redis.NewClient(&redis.Options{Addr: proxy, MaxRetries: 3, ContextTimeoutEnabled: true})
	defer c.Close()
	s, err := New(c, Options{})
	require.NoError(t, err)
	defer s.Close()
	_, _, err = s.Release(ctx, "a", "alice", "")
	require.Error(t, err, "the reply was not dropped")

	st, err := direct.Inspect(ctx, "a")
	require.NoError(t, err)
	assert.Equal(t, 1, st.Count, "the release ran more than once")
}

// replyDropper is a proxy to addr that, the first time a client sends an
// EVALSHA, passes it to the server, swallows the reply and closes the
// client's connection.
func replyDropper(t *testing.T, addr string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var once atomic.Bool
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = l.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			client, err := l.Accept()
			if err != nil {
				return
			}
			server, err := net.Dial("tcp", addr)
			if err != nil {
				_ = client.Close()
				continue
			}
			var swallow atomic.Bool
			wg.Add(2)
			go func() { // client to server
				defer wg.Done()
				defer server.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := client.Read(buf)
					if err != nil {
						return
					}
					if bytes.Contains(bytes.ToLower(buf[:n]), []byte("evalsha")) && once.CompareAndSwap(false, true) {
						swallow.Store(true) // before the server can answer
					}
					if _, err := server.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
			go func() { // server to client
				defer wg.Done()
				defer client.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := server.Read(buf)
					if err != nil || swallow.Load() {
						return // the reply, if any, is dropped with the connection
					}
					if _, err := client.Write(buf[:n]); err != nil {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

// TestGrantGoesOnlyToTheWaitersStore: a grant is published on the inbox
// channel of the store whose waiter got the lock, so another store waiting
// on the name (here even with the same ticket) does not receive it.
func TestGrantGoesOnlyToTheWaitersStore(t *testing.T) {
	srv := redistest.Start(t)
	s, _ := newStore(t, srv, Options{})
	other, _ := newStore(t, srv, Options{})
	ctx := ctxT(t)
	_, err := s.AcquireFair(ctx, req("q", "holder", time.Minute), time.Minute)
	require.NoError(t, err)
	w := req("q", "w", time.Minute)
	res, err := s.AcquireFair(ctx, w, time.Minute)
	require.NoError(t, err)
	require.False(t, res.Acquired)
	sub, err := s.Subscribe(ctx, "q", w.Ticket)
	require.NoError(t, err)
	defer sub.Close()
	elsewhere, err := other.Subscribe(ctx, "q", w.Ticket)
	require.NoError(t, err)
	defer elsewhere.Close()

	held, _, err := s.Release(ctx, "q", "holder", "")
	require.NoError(t, err)
	require.True(t, held)
	woken(t, sub, "the grant on the waiter's store")
	_, granted := sub.(locker.Granter).Granted()
	require.True(t, granted)
	probe(t, other, "q")
	notWoken(t, elsewhere, "the grant reached a store the waiter is not on")
	_, granted = elsewhere.(locker.Granter).Granted()
	assert.False(t, granted)
}
