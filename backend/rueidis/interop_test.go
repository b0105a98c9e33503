package rueidisbackend_test

import (
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/backend/goredis"
	rueidisbackend "github.com/disgolock/disgo/backend/rueidis"
	"github.com/disgolock/disgo/internal/redistest"
	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/locker/driver"
)

// TestInterop checks on one redis-server that the two Redis adapters share
// keys, scripts and messages. (TestCluster checks it on a Redis Cluster.)
func TestInterop(t *testing.T) {
	testInterop(t, redistest.Start(t).Addr)
}

// store is what both adapters' Stores implement.
type store interface {
	driver.Backend
	driver.Queue
	driver.Notifier
	driver.Inspector
}

// testInterop runs the interoperability tests on the servers at addrs: a
// standalone server, or the nodes of a cluster.
func testInterop(t *testing.T, addrs ...string) {
	rc := connect(t, addrs...)
	t.Cleanup(rc.Close)
	r, err := rueidisbackend.New(rc, rueidisbackend.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, r.Close()) })
	// One address makes a redis.Client, several a redis.ClusterClient.
	gc := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: addrs, ContextTimeoutEnabled: true})
	t.Cleanup(func() { assert.NoError(t, gc.Close()) })
	g, err := goredis.New(gc, goredis.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, g.Close()) })

	for _, tc := range []struct {
		name           string
		holder, waiter store
	}{
		{"GoredisHolderRueidisWaiter", g, r},
		{"RueidisHolderGoredisWaiter", r, g},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Run("SameStateAndGrant", func(t *testing.T) { testSameStateAndGrant(t, tc.holder, tc.waiter) })
			t.Run("FairHandOver", func(t *testing.T) { testFairHandOver(t, tc.holder, tc.waiter) })
		})
	}
}

// testSameStateAndGrant: the waiter's adapter sees the holder's lock with
// its fence, and understands the message that hands it over.
func testSameStateAndGrant(t *testing.T, holder, waiter store) {
	ctx := ctxFor(t)
	name := t.Name()
	res, err := holder.Acquire(ctx, req(name, "alice"))
	require.NoError(t, err)
	require.True(t, res.Acquired)
	st, err := waiter.Inspect(ctx, name)
	require.NoError(t, err)
	assert.Equal(t, "alice", st.Owner)
	assert.Equal(t, res.Fence, st.Fence)
	assert.Equal(t, 1, st.Count)

	bob := req(name, "bob")
	queued, err := waiter.AcquireFair(ctx, bob, time.Minute)
	require.NoError(t, err)
	require.False(t, queued.Acquired)
	st, err = holder.Inspect(ctx, name)
	require.NoError(t, err)
	assert.Equal(t, 1, st.Waiters, "the holder's adapter sees the waiter")
	sub, err := waiter.Subscribe(ctx, name, bob.Ticket)
	require.NoError(t, err)
	defer sub.Close()

	held, _, err := holder.Release(ctx, name, "alice", "")
	require.NoError(t, err)
	require.True(t, held)
	woken(t, sub, "the hand-over message")
	fence, granted := sub.Granted()
	require.True(t, granted, "the message did not grant the lock")
	assert.Greater(t, fence, res.Fence)
	st, err = holder.Inspect(ctx, name)
	require.NoError(t, err)
	assert.Equal(t, driver.State{Owner: "bob", Count: 1, Fence: fence, TTL: st.TTL}, st)
	held, _, err = waiter.Release(ctx, name, "bob", "")
	require.NoError(t, err)
	assert.True(t, held)
}

// testFairHandOver: through the facade, a fair waiter on one adapter gets
// the lock when the holder on the other releases it.
func testFairHandOver(t *testing.T, holder, waiter store) {
	ctx := ctxFor(t)
	name := t.Name()
	newLocker := func(s store) *locker.Locker[string] {
		lk, err := locker.New(s, locker.Options[string]{Mode: locker.Fair})
		require.NoError(t, err)
		t.Cleanup(func() { assert.NoError(t, lk.Close()) })
		return lk
	}
	lh, lw := newLocker(holder), newLocker(waiter)
	h, err := lh.TryLock(ctx, name, time.Minute)
	require.NoError(t, err)

	type result struct {
		lock *locker.Lock[string]
		err  error
	}
	got := make(chan result, 1)
	go func() {
		l, err := lw.Lock(ctx, name, patience, time.Minute)
		got <- result{l, err}
	}()
	require.Eventually(t, func() bool {
		st, err := holder.Inspect(ctx, name)
		return err == nil && st.Waiters == 1
	}, patience, 5*time.Millisecond, "the waiter to queue")
	require.NoError(t, h.Release(ctx))

	var w result
	select {
	case w = <-got:
	case <-time.After(patience):
		t.Fatal("timed out waiting for the hand-over")
	}
	require.NoError(t, w.err)
	assert.Greater(t, w.lock.Fence(), h.Fence())
	st, err := holder.Inspect(ctx, name)
	require.NoError(t, err)
	assert.Equal(t, w.lock.Owner(), st.Owner)
	assert.Equal(t, w.lock.Fence(), st.Fence)
	require.NoError(t, w.lock.Release(ctx))
}
