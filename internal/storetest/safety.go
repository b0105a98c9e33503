package storetest

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/internal/rediscore"
	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/locker/driver"
)

// safetyTests are the tests of what the scripts must never do: fail after
// they have written, issue a wrong fencing token, or report a stale grant
// as fresh.
var safetyTests = []test{
	{"PublishRefusedByACLDoesNotFailAnAppliedChange", testPublishRefusedByACL},
	{"FenceArithmeticIsExact", testFenceArithmeticIsExact},
	{"FenceRecordOutOfRangeIsATypedError", testFenceRecordOutOfRange},
	{"HandOffWithoutAFenceFreesTheLock", testHandOffWithoutAFence},
	{"NotAcquiredReportsTheNewestFence", testNotAcquiredReportsTheNewestFence},
	{"LongestLease", testLongestLease},
	{"GarbageWaiterRecordIsEvicted", testGarbageWaiterRecord},
	{"LeastPrivilegeACL", testLeastPrivilegeACL},
}

// testPublishRefusedByACL: a user whose ACL allows the lock's keys but no
// channel (Redis 7 gives new users no channel patterns by default). Every
// script that writes and then publishes must still report its change.
func testPublishRefusedByACL(t *testing.T, h Harness) {
	e := newEnv(t, h, Options{})
	e.must(t, "ACL", "SETUSER", "locker", "on", ">secret", "~*", "resetchannels", "+@all")
	s := e.open(t, Options{Username: "locker", Password: "secret"}).Store
	ctx := ctxT(t)

	// Release with nobody waiting: DEL, then the refused broadcast.
	_, err := s.Acquire(ctx, req("a", "alice", time.Minute))
	require.NoError(t, err)
	held, remaining, err := s.Release(ctx, "a", "alice", "")
	require.NoError(t, err, "a release that was applied is reported as failed")
	assert.True(t, held)
	assert.Zero(t, remaining)
	assert.Empty(t, e.keys(t), "the lock is free")

	// Release that hands the lock to the head: the grant message is refused.
	res, err := s.AcquireFair(ctx, req("q", "holder", time.Minute), time.Minute)
	require.NoError(t, err)
	require.True(t, res.Acquired)
	b, c := req("q", "b", time.Minute), req("q", "c", time.Minute)
	for _, r := range []driver.AcquireRequest{b, c} {
		res, err := s.AcquireFair(ctx, r, time.Minute)
		require.NoError(t, err)
		require.False(t, res.Acquired)
	}
	held, _, err = s.Release(ctx, "q", "holder", "")
	require.NoError(t, err, "a hand-off that was applied is reported as failed")
	assert.True(t, held)
	st, err := s.Inspect(ctx, "q")
	require.NoError(t, err)
	assert.Equal(t, "b", st.Owner, "the hand-off was applied")

	// The head's grant lapses; c tries while b is no longer queued but the
	// lock was freed: acquire publishes a reminder to the head, refused.
	claim, err := s.AcquireFair(ctx, b, time.Minute)
	require.NoError(t, err)
	require.True(t, claim.Acquired)
	d := req("q", "d", time.Minute)
	res, err = s.AcquireFair(ctx, d, time.Minute)
	require.NoError(t, err)
	require.False(t, res.Acquired)
	e.expire(t, "q") // b's lease ends without a release: c is the head of a free lock
	res, err = s.AcquireFair(ctx, d, time.Minute)
	require.NoError(t, err, "an attempt that joined the queue is reported as failed")
	assert.False(t, res.Acquired)
	assert.Equal(t, 1, res.Position)

	// Leave of the head of a free lock wakes the next head: refused too.
	require.NoError(t, s.Leave(ctx, "q", c.Ticket), "a Leave that was applied is reported as failed")
	st, err = s.Inspect(ctx, "q")
	require.NoError(t, err)
	assert.Equal(t, 1, st.Waiters, "the Leave was applied")
}

// testFenceArithmeticIsExact: tokens beyond 2^53, where doubles are no
// longer exact, still increase by one.
func testFenceArithmeticIsExact(t *testing.T, h Harness) {
	e := newEnv(t, h, Options{})
	s := e.Store
	ctx := ctxT(t)
	fence := e.Layout.Keys("f")[rediscore.KeyFence]
	for _, last := range []string{"9007199254740993", "9223372036854775806", "9199999999999999999", "99999999999999999"} {
		e.must(t, "SET", fence, last)
		res, err := s.Acquire(ctx, req("f", "alice", time.Minute))
		require.NoError(t, err, "last token %s", last)
		require.True(t, res.Acquired)
		l, _ := strconv.ParseInt(last, 10, 64)
		assert.Equal(t, l+1, res.Fence, "after %s", last)
		assert.Equal(t, strconv.FormatInt(l+1, 10), e.must(t, "GET", fence), "the record holds the new token")
		st, err := s.Inspect(ctx, "f")
		require.NoError(t, err)
		assert.Equal(t, l+1, st.Fence, "Inspect reports the exact token")
		held, _, err := s.Release(ctx, "f", "alice", "")
		require.NoError(t, err)
		require.True(t, held)
	}
}

// testFenceRecordOutOfRange: a record that is not a token below 2^63-1
// makes acquisition fail with a typed error, never a wrong or negative
// token, and leaves the record and the lock as they were.
func testFenceRecordOutOfRange(t *testing.T, h Harness) {
	e := newEnv(t, h, Options{})
	s := e.Store
	ctx := ctxT(t)
	keys := e.Layout.Keys("f")
	for _, bad := range []string{"9223372036854775807", "9223372036854775808", "18446744073709551616", "abc", "-5", "12.5", "007", ""} {
		e.must(t, "SET", keys[rediscore.KeyFence], bad)
		for _, fair := range []bool{false, true} {
			var err error
			var res driver.AcquireResult
			if fair {
				res, err = s.AcquireFair(ctx, req("f", "alice", time.Minute), time.Minute)
			} else {
				res, err = s.Acquire(ctx, req("f", "alice", time.Minute))
			}
			require.ErrorIs(t, err, driver.ErrFence, "record %q", bad)
			assert.False(t, res.Acquired)
			assert.Equal(t, bad, e.must(t, "GET", keys[rediscore.KeyFence]), "record %q changed", bad)
			assert.Equal(t, int64(0), e.must(t, "EXISTS", keys[rediscore.KeyLock]), "record %q: a lock was taken", bad)
		}
	}
	// A record of another type.
	e.del(t, keys[rediscore.KeyFence])
	e.must(t, "HSET", keys[rediscore.KeyFence], "x", "1")
	_, err := s.Acquire(ctx, req("f", "alice", time.Minute))
	require.ErrorIs(t, err, driver.ErrFence)
	assert.Equal(t, "hash", e.must(t, "TYPE", keys[rediscore.KeyFence]))
	// Repaired, it works again.
	e.del(t, keys[rediscore.KeyFence])
	res, err := s.Acquire(ctx, req("f", "alice", time.Minute))
	require.NoError(t, err)
	assert.Positive(t, res.Fence)
}

// testHandOffWithoutAFence: when the fence record is exhausted at a
// release, the lock is freed (not handed over with a bad token), the head
// keeps its place, and its own attempt reports the error.
func testHandOffWithoutAFence(t *testing.T, h Harness) {
	e := newEnv(t, h, Options{})
	s := e.Store
	ctx := ctxT(t)
	_, b, _ := queueTwo(t, s)
	keys := e.Layout.Keys("q")
	e.must(t, "SET", keys[rediscore.KeyFence], "9223372036854775807")
	held, remaining, err := s.Release(ctx, "q", "holder", "")
	require.NoError(t, err)
	assert.True(t, held)
	assert.Zero(t, remaining)
	st, err := s.Inspect(ctx, "q")
	require.NoError(t, err)
	assert.Empty(t, st.Owner, "handed over without a valid token")
	assert.Equal(t, 2, st.Waiters, "the head keeps its place")
	_, err = s.AcquireFair(ctx, b, time.Minute)
	require.ErrorIs(t, err, driver.ErrFence)
}

// testNotAcquiredReportsTheNewestFence: a "not acquired" answer carries
// the newest token issued for the name, so that a waiter can tell a stale
// grant from a fresh one.
func testNotAcquiredReportsTheNewestFence(t *testing.T, h Harness) {
	e := newEnv(t, h, Options{})
	s := e.Store
	ctx := ctxT(t)
	holder, b, c := queueTwo(t, s)
	res, err := s.AcquireFair(ctx, c, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, holder.Fence, res.Fence, "behind the head: the holder's fence")
	res, err = s.Acquire(ctx, req("q", "barger", time.Minute))
	require.NoError(t, err)
	assert.Equal(t, holder.Fence, res.Fence, "barging: the holder's fence")

	// The grant to b lapses; the answer to c carries the grant's fence.
	_, _, err = s.Release(ctx, "q", "holder", "")
	require.NoError(t, err)
	st, err := s.Inspect(ctx, "q")
	require.NoError(t, err)
	require.Equal(t, "b", st.Owner)
	granted := st.Fence
	assert.Greater(t, granted, holder.Fence)
	res, err = s.AcquireFair(ctx, c, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, granted, res.Fence, "while the grant stands")
	e.expire(t, "q")
	res, err = s.AcquireFair(ctx, req("q", "late", time.Minute), time.Minute)
	require.NoError(t, err)
	require.False(t, res.Acquired, "c is the head of the free lock")
	assert.Equal(t, granted, res.Fence, "a free lock: the fence record's token")
	_ = b
}

// testLongestLease: locker.MaxLease is a lease Redis takes.
func testLongestLease(t *testing.T, h Harness) {
	e := newEnv(t, h, Options{})
	s := e.Store
	ctx := ctxT(t)
	res, err := s.Acquire(ctx, req("long", "alice", locker.MaxLease))
	require.NoError(t, err)
	require.True(t, res.Acquired)
	assert.Greater(t, e.pttl(t, e.Layout.Keys("long")[rediscore.KeyLock]), locker.MaxLease-time.Minute)
	held, err := s.Extend(ctx, "long", "alice", locker.MaxLease)
	require.NoError(t, err)
	assert.True(t, held)
	res, err = s.AcquireFair(ctx, req("long", "bob", locker.MaxLease), locker.MaxLease)
	require.NoError(t, err, "a waiter TTL of MaxLease")
	assert.False(t, res.Acquired)
}

// testGarbageWaiterRecord: a waiter record the scripts cannot read counts
// as a dead waiter: the scripts evict it instead of failing.
func testGarbageWaiterRecord(t *testing.T, h Harness) {
	e := newEnv(t, h, Options{})
	s := e.Store
	ctx := ctxT(t)
	_, b, c := queueTwo(t, s)
	waiters := e.Layout.Keys("q")[rediscore.KeyWaiters]
	e.must(t, "HSET", waiters, b.Ticket, "not a record")
	held, _, err := s.Release(ctx, "q", "holder", "")
	require.NoError(t, err)
	assert.True(t, held)
	st, err := s.Inspect(ctx, "q")
	require.NoError(t, err)
	assert.Equal(t, "c", st.Owner, "the unreadable head was skipped")

	// On the acquire side: a free lock whose head's record is garbage.
	_, _, err = s.Release(ctx, "q", "c", "")
	require.NoError(t, err)
	d, f := req("q", "d", time.Minute), req("q", "f", time.Minute)
	_, err = s.Acquire(ctx, req("q", "x", time.Minute))
	require.NoError(t, err)
	for _, r := range []driver.AcquireRequest{d, f} {
		_, err := s.AcquireFair(ctx, r, time.Minute)
		require.NoError(t, err)
	}
	e.must(t, "HSET", waiters, d.Ticket, "garbage")
	e.expire(t, "q")
	res, err := s.AcquireFair(ctx, f, time.Minute)
	require.NoError(t, err)
	assert.True(t, res.Acquired, "the unreadable head was evicted")
	_ = c
}

// testLeastPrivilegeACL: a user with exactly rediscore.ACLRules locks,
// waits, is handed the lock, renews and releases through the facade.
func testLeastPrivilegeACL(t *testing.T, h Harness) {
	e := newEnv(t, h, Options{})
	rules := strings.Fields(rediscore.ACLRules(rediscore.DefaultPrefix))
	e.must(t, append([]string{"ACL", "SETUSER", "locker", "reset", "on", ">secret"}, rules...)...)
	open := func() *locker.Locker[string] {
		s := e.open(t, Options{Username: "locker", Password: "secret"}).Store
		l, err := locker.New(s, locker.Options[string]{RenewLease: 300 * time.Millisecond, FallbackInterval: time.Minute})
		require.NoError(t, err)
		t.Cleanup(func() { _ = l.Close() })
		return l
	}
	a, b := open(), open()
	ctx := ctxT(t)
	ha, err := a.LockWithRenewal(ctx, "acl", 0)
	require.NoError(t, err)
	got := make(chan error, 1)
	var hb *locker.Lock[string]
	go func() {
		var err error
		hb, err = b.LockWithRenewal(ctx, "acl", patience)
		got <- err
	}()
	require.Eventually(t, func() bool {
		st, err := e.Store.Inspect(ctx, "acl")
		return err == nil && st.Waiters == 1
	}, patience, 5*time.Millisecond, "the waiter to queue")
	require.Eventually(t, func() bool { return e.serverSubscriptions(t, "acl") == 1 },
		patience, 5*time.Millisecond, "the waiter's subscription (refused by the ACL?)")
	time.Sleep(time.Second) // three renewals of the holder
	require.NoError(t, ha.Err(), "renewal failed under the ACL")
	require.NoError(t, ha.Release(ctx))
	select {
	case err := <-got:
		require.NoError(t, err)
	case <-time.After(patience):
		t.Fatal("timed out waiting for the hand-off (FallbackInterval is a minute: a wake-up was refused)")
	}
	require.NoError(t, hb.Release(ctx))
}
