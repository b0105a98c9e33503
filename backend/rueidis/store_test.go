package rueidisbackend

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/fairqueue"
	"github.com/disgolock/disgo/internal/rediscore"
	"github.com/disgolock/disgo/internal/redistest"
	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/renewer"
)

func TestNewRejectsBadInput(t *testing.T) {
	c := newClient(t, redistest.Start(t))
	for name, tc := range map[string]struct {
		client rueidis.Client
		opts   Options
	}{
		"nil client":         {nil, Options{}},
		"brace in prefix":    {c, Options{Prefix: "a{b"}},
		"closing brace":      {c, Options{Prefix: "a}"}},
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

	s, err = New(c, Options{Prefix: "p", FenceRetention: time.Hour, ClassicPubSub: true})
	require.NoError(t, err)
	assert.Equal(t, "p", s.layout.Prefix)
	assert.Equal(t, time.Hour, s.fenceRetention)
	assert.Equal(t, rediscore.Classic, s.publish)
	require.NoError(t, s.Close())
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
	assert.Zero(t, st.Waiters)
	assert.True(t, strings.HasPrefix(s.layout.Keys("a")[rediscore.KeyLock], "p:{a}:"))

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
	c.reset()
	require.NoError(t, s.ExtendBatch(ctx, nil))
	assert.Zero(t, c.do.Load()+c.multi.Load(), "an empty batch touched the server")
	_, err := s.Extend(ctx, "a", "alice", time.Second) // load the script
	require.NoError(t, err)

	c.reset()
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
	assert.Equal(t, int64(1), c.multi.Load(), "one round trip per batch")
	assert.Zero(t, c.do.Load())
	for _, name := range []string{"a", "b"} {
		st, err := s.Inspect(ctx, name)
		require.NoError(t, err)
		assert.Greater(t, st.TTL, time.Minute, name)
	}
}

func TestExtendBatchItemErrors(t *testing.T) {
	srv := redistest.Start(t)
	s, c := newStore(t, srv, Options{})
	ctx := ctxT(t)
	_, err := s.Acquire(ctx, req("a", "alice", time.Minute))
	require.NoError(t, err)
	// A value of the wrong type where the lock string belongs makes the
	// script fail.
	require.NoError(t, do(t, c, func(b rueidis.Builder) rueidis.Completed {
		return b.Hset().Key(s.layout.Keys("bad")[rediscore.KeyLock]).FieldValue().FieldValue("x", "y").Build()
	}).Error())

	batch := []renewer.Extension{
		{Name: "bad", Owner: "alice", Lease: time.Hour},
		{Name: "a", Owner: "alice", Lease: time.Hour},
	}
	require.NoError(t, s.ExtendBatch(ctx, batch))
	assert.Error(t, batch[0].Err)
	assert.False(t, batch[0].Held)
	assert.NoError(t, batch[1].Err)
	assert.True(t, batch[1].Held)
}

func TestFairQueueOrderAndPosition(t *testing.T) {
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

	// A single fair attempt honours the queue without joining it.
	try, err := s.AcquireFair(ctx, req("q", "try", time.Minute), 0)
	require.NoError(t, err)
	assert.False(t, try.Acquired)
	assert.Equal(t, -1, try.Position)
	// Barging ignores the queue but still cannot take a held lock.
	bargeRes, err := s.Acquire(ctx, req("q", "barger", time.Minute))
	require.NoError(t, err)
	assert.False(t, bargeRes.Acquired)
	st, err = s.Inspect(ctx, "q")
	require.NoError(t, err)
	assert.Equal(t, 2, st.Waiters, "attempts that do not queue changed the queue")
}

func TestFairReleaseGrantsTheHead(t *testing.T) {
	srv := redistest.Start(t)
	s, _ := newStore(t, srv, Options{})
	ctx := ctxT(t)
	holder := req("q", "holder", time.Minute)
	first, err := s.AcquireFair(ctx, holder, time.Minute)
	require.NoError(t, err)
	b, c := req("q", "b", time.Minute), req("q", "c", time.Minute)
	for _, r := range []locker.AcquireRequest{b, c} {
		_, err := s.AcquireFair(ctx, r, time.Minute)
		require.NoError(t, err)
	}
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
	woken(t, subB, "the head's grant")
	granter, ok := subB.(locker.Granter)
	require.True(t, ok, "subscriptions do not report grants")
	fence, granted := granter.Granted()
	require.True(t, granted)
	assert.Greater(t, fence, first.Fence)
	probe(t, s, "q")
	notWoken(t, subC, "the release woke a waiter that is not the head")
	_, granted = subC.(locker.Granter).Granted()
	assert.False(t, granted)

	st, err := s.Inspect(ctx, "q")
	require.NoError(t, err)
	assert.Equal(t, locker.State{Owner: "b", Count: 1, Fence: fence, TTL: st.TTL, Waiters: 1}, st)
	assert.Positive(t, st.TTL)

	// The grant is claimed by the head's next attempt, as a re-entry of the
	// same ticket: the hold is not counted twice.
	claim, err := s.AcquireFair(ctx, b, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, locker.AcquireResult{Acquired: true, Fence: fence, Count: 1, Position: -1}, claim)
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
	_, granted = subC.(locker.Granter).Granted()
	assert.True(t, granted)
}

func TestFairFreeLockIsForTheHeadOnly(t *testing.T) {
	srv := redistest.Start(t)
	s, client := newStore(t, srv, Options{})
	ctx := ctxT(t)
	_, err := s.AcquireFair(ctx, req("q", "holder", time.Minute), time.Minute)
	require.NoError(t, err)
	b, c := req("q", "b", time.Minute), req("q", "c", time.Minute)
	for _, r := range []locker.AcquireRequest{b, c} {
		_, err := s.AcquireFair(ctx, r, time.Minute)
		require.NoError(t, err)
	}
	subB, err := s.Subscribe(ctx, "q", b.Ticket)
	require.NoError(t, err)
	defer subB.Close()
	subC, err := s.Subscribe(ctx, "q", c.Ticket)
	require.NoError(t, err)
	defer subC.Close()
	expire(t, client, s, "q")

	// c is not at the head: it must not take the free lock, and the head is
	// told.
	resC, err := s.AcquireFair(ctx, c, time.Minute)
	require.NoError(t, err)
	assert.False(t, resC.Acquired)
	assert.Equal(t, 1, resC.Position)
	assert.Negative(t, resC.TTL, "free lock with another waiter ahead")
	woken(t, subB, "the head's nudge when a non-head found the lock free")
	_, granted := subB.(locker.Granter).Granted()
	assert.False(t, granted, "a nudge is no grant")
	probe(t, s, "q")
	notWoken(t, subC, "the nudge woke a waiter that is not the head")

	resB, err := s.AcquireFair(ctx, b, time.Minute)
	require.NoError(t, err)
	assert.True(t, resB.Acquired)
	resC, err = s.AcquireFair(ctx, c, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, 0, resC.Position)
}

// expire ends the holding of name as a lapsed lease would: without a
// release and without a message.
func expire(t *testing.T, c rueidis.Client, s *Store, name string) {
	t.Helper()
	require.NoError(t, do(t, c, func(b rueidis.Builder) rueidis.Completed {
		return b.Del().Key(s.layout.Keys(name)[rediscore.KeyLock]).Build()
	}).Error())
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
	s, client := newStore(t, srv, Options{})
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

	expire(t, client, s, "q")
	require.NoError(t, s.Leave(ctx, "q", c.Ticket)) // the head gives up on a free lock
	woken(t, subD, "the new head's wake-up")
	probe(t, s, "q")
	notWoken(t, subC, "a departed waiter was woken")
	require.NoError(t, s.Leave(ctx, "q", c.Ticket), "leaving twice is not an error")

	st, err := s.Inspect(ctx, "q")
	require.NoError(t, err)
	assert.Equal(t, 1, st.Waiters)
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
	del := func(keys ...string) {
		t.Helper()
		require.NoError(t, do(t, c, func(b rueidis.Builder) rueidis.Completed { return b.Del().Key(keys...).Build() }).Error())
	}
	acquire("first", time.Minute)
	del(s.layout.Keys("f")[rediscore.KeyLock]) // lock gone, fence kept
	acquire("after the lock key vanished", 20*time.Millisecond)
	acquire("after the lease expired", time.Minute)
	del(s.layout.Keys("f")...)
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
			assert.Equal(t, 1, strings.Count(k, "{"), "key %q of %q", k, name)
			assert.Equal(t, 1, strings.Count(k, "}"), "key %q of %q", k, name)
		}
	}
	assert.Empty(t, keys(t, c))
	fences, err := do(t, c, func(b rueidis.Builder) rueidis.Completed { return b.Keys().Pattern("*:fence").Build() }).AsStrSlice()
	require.NoError(t, err)
	assert.Len(t, fences, len(names), "each name has its own fence record")
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
	fence, err := do(t, c, func(b rueidis.Builder) rueidis.Completed {
		return b.Pttl().Key(s.layout.Keys("idle")[rediscore.KeyFence]).Build()
	}).AsInt64()
	require.NoError(t, err)
	assert.Greater(t, time.Duration(fence)*time.Millisecond, time.Hour, "the fence record is kept for its retention")
}

func TestScriptFlushRecovers(t *testing.T) {
	srv := redistest.Start(t)
	s, c := newStore(t, srv, Options{})
	ctx := ctxT(t)
	flush := func() {
		t.Helper()
		require.NoError(t, do(t, c.Client, func(b rueidis.Builder) rueidis.Completed { return b.ScriptFlush().Build() }).Error())
	}

	flush()
	c.reset()
	res, err := s.Acquire(ctx, req("a", "alice", time.Minute))
	require.NoError(t, err)
	assert.True(t, res.Acquired)
	assert.Equal(t, int64(2), c.do.Load(), "EVALSHA, then EVAL on NOSCRIPT")
	c.reset()
	held, err := s.Extend(ctx, "a", "alice", time.Minute) // another script: also flushed
	require.NoError(t, err)
	assert.True(t, held)
	assert.Equal(t, int64(2), c.do.Load())
	c.reset()
	_, err = s.Extend(ctx, "a", "alice", time.Minute)
	require.NoError(t, err)
	assert.Equal(t, int64(1), c.do.Load(), "EVAL loaded the script")

	flush()
	c.reset()
	batch := []renewer.Extension{{Name: "a", Owner: "alice", Lease: time.Minute}, {Name: "b", Owner: "alice", Lease: time.Minute}}
	require.NoError(t, s.ExtendBatch(ctx, batch))
	assert.True(t, batch[0].Held)
	assert.False(t, batch[1].Held)
	assert.NoError(t, batch[0].Err)
	assert.NoError(t, batch[1].Err)
	assert.Equal(t, int64(2), c.multi.Load(), "EVALSHA batch, then the EVAL batch")
	c.reset()
	require.NoError(t, s.ExtendBatch(ctx, batch))
	assert.True(t, batch[0].Held)
	assert.Equal(t, int64(1), c.multi.Load(), "EVAL loaded the script")
}

func TestRoundTripsPerAcquireAndRelease(t *testing.T) {
	srv := redistest.Start(t)
	s, c := newStore(t, srv, Options{})
	admin := newClient(t, srv)
	ctx := ctxT(t)
	// Load the scripts.
	_, err := s.Acquire(ctx, req("warm", "alice", time.Minute))
	require.NoError(t, err)
	_, _, err = s.Release(ctx, "warm", "alice", "")
	require.NoError(t, err)

	for _, fair := range []bool{false, true} {
		c.reset()
		before := scriptCalls(t, admin)
		r := req("rt", "alice", time.Minute)
		var res locker.AcquireResult
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
		assert.Equal(t, int64(2), c.do.Load(), "round trips per acquire+release (fair=%v)", fair)
		assert.Zero(t, c.multi.Load())
		assert.Equal(t, int64(2), scriptCalls(t, admin)-before, "scripts the server ran (fair=%v)", fair)
	}
}

func TestStoreDownFailsFastAndRecovers(t *testing.T) {
	srv := redistest.Start(t)
	s, _ := newStore(t, srv, Options{})
	ctx := ctxT(t)
	_, err := s.Acquire(ctx, req("a", "alice", time.Minute))
	require.NoError(t, err)
	waiting, err := s.Subscribe(ctx, "a", "w")
	require.NoError(t, err)
	defer waiting.Close()

	srv.Stop()
	bounded := func(what string, call func(context.Context) error) {
		t.Helper()
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
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
	bounded("acquire", func(ctx context.Context) error { _, err := s.Acquire(ctx, req("a", "bob", time.Minute)); return err })
	bounded("release", func(ctx context.Context) error { _, _, err := s.Release(ctx, "a", "alice", ""); return err })
	bounded("extend", func(ctx context.Context) error { _, err := s.Extend(ctx, "a", "alice", time.Minute); return err })
	bounded("leave", func(ctx context.Context) error { return s.Leave(ctx, "a", "t") })
	bounded("inspect", func(ctx context.Context) error { _, err := s.Inspect(ctx, "a"); return err })
	bounded("extend batch", func(ctx context.Context) error {
		return s.ExtendBatch(ctx, []renewer.Extension{{Name: "a", Owner: "alice", Lease: time.Minute}})
	})
	bounded("subscribe", func(ctx context.Context) error {
		sub, err := s.Subscribe(ctx, "b", "t")
		if err == nil {
			sub.Close()
		}
		return err
	})

	srv.Restart(t)
	woken(t, waiting, "the wake-up after the reconnect")
	require.Eventually(t, func() bool {
		res, err := s.Acquire(ctx, req("a", "bob", time.Minute))
		return err == nil && res.Acquired
	}, patience, 10*time.Millisecond, "acquire after the restart")
	sub, err := s.Subscribe(ctx, "a", "t")
	require.NoError(t, err)
	defer sub.Close()
	drain(waiting)
	_, _, err = s.Release(ctx, "a", "bob", "")
	require.NoError(t, err)
	woken(t, sub, "a release after the restart, new subscription")
	woken(t, waiting, "a release after the restart, subscription from before the outage")
}

// drain discards a pending wake-up of sub.
func drain(sub locker.Subscription) {
	select {
	case <-sub.Wake():
	default:
	}
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
	require.NoError(t, do(t, newClient(t, srv), func(b rueidis.Builder) rueidis.Completed {
		return b.Arbitrary("CLIENT", "PAUSE", "1000", "ALL").Build()
	}).Error())

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

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, _, err = s.Release(cancelled, "a", "alice", "")
	assert.ErrorIs(t, err, context.Canceled)
}

// TestGivingUpRunsAfterTheAbandonedAttempt: an attempt whose caller gave
// up while it was on its way still runs in the server, and the caller's
// clean-up (Leave, or the Release that undoes the attempt) must run after
// it, even when rueidis sends the two on different connections.
func TestGivingUpRunsAfterTheAbandonedAttempt(t *testing.T) {
	srv := redistest.Start(t)
	s, _ := newStore(t, srv, Options{})
	ctx := ctxT(t)
	var load sync.WaitGroup
	defer load.Wait()
	for i := range 100 {
		fair := i%2 == 0
		name := fmt.Sprint("abandoned-", i)
		if fair {
			_, err := s.Acquire(ctx, req(name, "alice", time.Minute))
			require.NoError(t, err)
		}
		// Other traffic, so that the pipelined connections are busy.
		for range 3 {
			load.Go(func() { _, _ = s.Inspect(ctx, "other") })
		}
		r := req(name, "bob", time.Minute)
		gaveUp, cancel := context.WithCancel(ctx)
		go func() {
			time.Sleep(time.Duration(i%40) * time.Microsecond)
			cancel()
		}()
		if fair {
			_, _ = s.AcquireFair(gaveUp, r, time.Minute)
			require.NoError(t, s.Leave(ctx, name, r.Ticket))
		} else {
			_, _ = s.Acquire(gaveUp, r)
			_, _, err := s.Release(ctx, name, "bob", r.Ticket)
			require.NoError(t, err)
		}
		st, err := s.Inspect(ctx, name)
		require.NoError(t, err)
		if fair {
			require.Zero(t, st.Waiters, "%s: the ticket stayed queued after Leave", name)
		} else {
			require.Empty(t, st.Owner, "%s: the undone attempt holds the lock", name)
		}
	}
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
