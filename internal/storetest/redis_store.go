package storetest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/internal/rediscore"
	"github.com/disgolock/disgo/locker/driver"
)

// redisStoreTests are the tests of the lock operations that need a raw
// redis-server: key layout, round trips, script cache, outages.
var redisStoreTests = []redisTest{
	{"KeysUseThePrefixAndTheNamesHashTag", testKeysUseThePrefix},
	{"FairTTLIsUnknownBehindTheHead", testFairTTLIsUnknownBehindTheHead},
	{"ExtendBatchIsOneRoundTrip", testExtendBatchIsOneRoundTrip},
	{"ExtendBatchItemErrors", testExtendBatchItemErrors},
	{"KeysOfSpecialNamesHaveOneHashTag", testKeysOfSpecialNames},
	{"FenceRecordOutlivesTheLock", testFenceRecordOutlivesTheLock},
	{"ScriptFlushRecovers", testScriptFlushRecovers},
	{"RoundTripsPerAcquireAndRelease", testRoundTripsPerAcquireAndRelease},
	{"UncontendedPairRunsNoQueueCallNorPublish", testUncontendedPairCommands},
	{"StoreDownFailsFastAndRecovers", testStoreDownFailsFastAndRecovers},
	{"DeadlineOfABlockedServerIsMatchable", testDeadlineOfABlockedServerIsMatchable},
	{"GrantGoesOnlyToTheWaitersStore", testGrantGoesOnlyToTheWaitersStore},
	{"AcquireAllWritesNothingOnFailure", testAcquireAllWritesNothingOnFailure},
}

// testKeysUseThePrefix: every key of a name is under the store's prefix,
// with the name as its hash tag, and a lock is one key.
func testKeysUseThePrefix(t *testing.T, h RedisHarness) {
	e := newEnv(t, h, Options{Prefix: "p"})
	res, err := e.Store.Acquire(ctxT(t), req("a", "alice", time.Minute))
	require.NoError(t, err)
	require.True(t, res.Acquired)
	for _, k := range e.Layout.Keys("a") {
		assert.True(t, strings.HasPrefix(k, "p:{a}:"), k)
	}
	assert.Equal(t, []string{e.Layout.Keys("a")[rediscore.KeyLock]}, e.keys(t))
	assert.Equal(t, []string{e.Layout.Keys("a")[rediscore.KeyFence]}, e.keysMatching(t, "*:fence"))
}

// testFairTTLIsUnknownBehindTheHead: the scripts tell the holder's lease
// to the head of the queue only (driver.AcquireResult.TTL allows it).
func testFairTTLIsUnknownBehindTheHead(t *testing.T, h RedisHarness) {
	s := newEnv(t, h, Options{}).Store
	ctx := ctxT(t)
	_, err := s.AcquireFair(ctx, req("q", "holder", time.Minute), time.Minute)
	require.NoError(t, err)
	for i, r := range []driver.AcquireRequest{req("q", "b", time.Minute), req("q", "c", time.Minute)} {
		res, err := s.AcquireFair(ctx, r, time.Minute)
		require.NoError(t, err)
		require.Equal(t, i, res.Position)
		if i == 0 {
			assert.Positive(t, res.TTL, "the head learns the holder's lease")
		} else {
			assert.Negative(t, res.TTL, "a waiter behind the head is not told the lease")
		}
	}
}

// testExtendBatchIsOneRoundTrip: a batch is one pipeline, and an empty
// one touches nothing.
func testExtendBatchIsOneRoundTrip(t *testing.T, h RedisHarness) {
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
		{Name: "b", Owner: "bob", Lease: time.Hour},
		{Name: "c", Owner: "alice", Lease: time.Hour},
		{Name: "b", Owner: "alice", Lease: time.Hour},
	}
	require.NoError(t, s.ExtendBatch(ctx, batch))
	for i, want := range []bool{true, false, false, true} {
		assert.Equal(t, want, batch[i].Held, "item %d", i)
	}
	assert.Equal(t, int64(1), n.Batches.Load(), "one round trip (pipeline) per batch")
	assert.Zero(t, n.Single.Load())
}

// testKeysOfSpecialNames: the keys of every name have exactly one hash
// tag, and each name a fence record of its own.
func testKeysOfSpecialNames(t *testing.T, h RedisHarness) {
	e := newEnv(t, h, Options{})
	s := e.Store
	ctx := ctxT(t)
	for _, name := range specialNames {
		res, err := s.Acquire(ctx, req(name, "alice", time.Minute))
		require.NoError(t, err, name)
		require.True(t, res.Acquired, "%q collided with another name", name)
		for _, k := range e.Layout.Keys(name) {
			assert.Equal(t, 1, strings.Count(k, "{"), "key %q of %q", k, name)
			assert.Equal(t, 1, strings.Count(k, "}"), "key %q of %q", k, name)
		}
		held, _, err := s.Release(ctx, name, "alice", "")
		require.NoError(t, err, name)
		require.True(t, held, name)
	}
	assert.Empty(t, e.keys(t))
	assert.Len(t, e.keysMatching(t, "*:fence"), len(specialNames), "each name has its own fence record")
}

// testFenceRecordOutlivesTheLock: the fence record is kept for its
// retention after the lock and its queue are gone.
func testFenceRecordOutlivesTheLock(t *testing.T, h RedisHarness) {
	e := newEnv(t, h, Options{})
	s := e.Store
	ctx := ctxT(t)
	_, err := s.AcquireFair(ctx, req("idle", "holder", time.Minute), time.Minute)
	require.NoError(t, err)
	w := req("idle", "w", time.Minute)
	_, err = s.AcquireFair(ctx, w, time.Minute)
	require.NoError(t, err)
	_, _, err = s.Release(ctx, "idle", "holder", "")
	require.NoError(t, err)
	_, _, err = s.Release(ctx, "idle", "w", w.Ticket)
	require.NoError(t, err)
	assert.Empty(t, e.keys(t))
	assert.Greater(t, e.pttl(t, e.Layout.Keys("idle")[rediscore.KeyFence]), time.Hour, "the fence record is kept for its retention")
}

func testExtendBatchItemErrors(t *testing.T, h RedisHarness) {
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

func testScriptFlushRecovers(t *testing.T, h RedisHarness) {
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

func testRoundTripsPerAcquireAndRelease(t *testing.T, h RedisHarness) {
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

// handshake are commands that are not a lock operation's: the test's INFO
// and what a (re)connecting client sends.
var handshake = map[string]bool{"info": true, "hello": true, "auth": true, "ping": true, "select": true,
	"client|setinfo": true, "client|tracking": true, "client|setname": true}

// testUncontendedPairCommands: with nobody waiting, acquire and release
// run only what the lock itself needs, inside their two scripts: no
// queue call and no publish in the release (INFO commandstats).
func testUncontendedPairCommands(t *testing.T, h RedisHarness) {
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
func testStoreDownFailsFastAndRecovers(t *testing.T, h RedisHarness) {
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
	// A client may find one more dead connection of before the restart
	// (rueidis answers EOF once on it); the store does not retry, the
	// facade does. The attempt that gets through marks the lock waited for.
	require.Eventually(t, func() bool {
		res, err := s.Acquire(ctx, req("a", "someone-waiting", time.Minute))
		return err == nil && !res.Acquired
	}, patience, 10*time.Millisecond, "an attempt on the held lock after the restart")
	_, _, err = s.Release(ctx, "a", "bob", "")
	require.NoError(t, err)
	woken(t, sub, "a release after the restart, new subscription")
	woken(t, waiting, "a release after the restart, subscription from before the outage")
}

func testDeadlineOfABlockedServerIsMatchable(t *testing.T, h RedisHarness) {
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
// on the name (here even with the same ticket) does not receive it. (The
// contract does not ask for it: tickets are unique per call.)
func testGrantGoesOnlyToTheWaitersStore(t *testing.T, h RedisHarness) {
	e := newEnv(t, h, Options{})
	s, other := e.Store, e.open(t, Options{}).Store
	ctx := ctxT(t)
	fair(t, s, req("q", "holder", time.Minute), time.Minute)
	w := req("q", "w", time.Minute)
	require.False(t, fair(t, s, w, time.Minute).Acquired)
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

// testAcquireAllWritesNothingOnFailure: acquireall.lua checks every name
// before it writes, so a name whose fence record is broken, or that is
// taken, leaves the names before it untouched.
func testAcquireAllWritesNothingOnFailure(t *testing.T, h RedisHarness) {
	e := newEnv(t, h, Options{})
	s := e.Store
	ctx := ctxT(t)
	ma, ok := s.(driver.MultiAcquirer)
	require.True(t, ok, "%T does not implement driver.MultiAcquirer", s)
	set := func() []driver.AcquireRequest {
		return []driver.AcquireRequest{req("m-a", "o", time.Minute), req("m-b", "o", time.Minute), req("m-c", "o", time.Minute)}
	}
	e.must(t, "SET", e.Layout.Keys("m-b")[rediscore.KeyFence], "not-a-number")
	_, ok, err := ma.AcquireAll(ctx, set(), false)
	require.True(t, ok)
	require.ErrorIs(t, err, driver.ErrFence)
	assert.Empty(t, e.keys(t), "a failed step wrote nothing")
	e.must(t, "DEL", e.Layout.Keys("m-b")[rediscore.KeyFence])

	_, err = s.Acquire(ctx, req("m-c", "other", time.Minute))
	require.NoError(t, err)
	res, ok, err := ma.AcquireAll(ctx, set(), true)
	require.NoError(t, err)
	require.True(t, ok)
	assert.False(t, res[2].Acquired)
	assert.Positive(t, res[2].TTL, "the holder's lease")
	for _, n := range []string{"m-a", "m-b"} {
		st, err := s.(driver.Inspector).Inspect(ctx, n)
		require.NoError(t, err)
		assert.Empty(t, st.Owner, "%s held after a failed step", n)
	}
}
