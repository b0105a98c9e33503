package goredis

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/internal/redistest"
	"github.com/disgolock/disgo/locker"
)

// serverSubscriptions returns how many clients the server has subscribed to
// name's channel.
func serverSubscriptions(t *testing.T, c *redis.Client, s *Store, name string) int64 {
	t.Helper()
	ch := s.layout.Channel(name)
	var counts map[string]int64
	var err error
	if s.publish == "PUBLISH" {
		counts, err = c.PubSubNumSub(ctxT(t), ch).Result()
	} else {
		counts, err = c.PubSubShardNumSub(ctxT(t), ch).Result()
	}
	require.NoError(t, err)
	return counts[ch]
}

// pubsubConnections counts the server's pub/sub connections.
func pubsubConnections(t *testing.T, c *redis.Client) int {
	t.Helper()
	list, err := c.ClientList(ctxT(t)).Result()
	require.NoError(t, err)
	n := 0
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, "flags=P") {
			n++
		}
	}
	return n
}

func TestSubscriptionsShareOneConnectionAndReturnToZero(t *testing.T) {
	srv := redistest.Start(t)
	s, c := newStore(t, srv, Options{})
	ctx := ctxT(t)
	var subs []locker.Subscription
	for i := range 20 {
		sub, err := s.Subscribe(ctx, fmt.Sprint("n", i%5), fmt.Sprint("t", i))
		require.NoError(t, err)
		subs = append(subs, sub)
	}
	assert.Equal(t, 5, s.ActiveSubscriptions())
	assert.Equal(t, 1, pubsubConnections(t, c))
	for i := range 5 {
		assert.Equal(t, int64(1), serverSubscriptions(t, c, s, fmt.Sprint("n", i)))
	}

	for _, sub := range subs {
		sub.Close()
	}
	// The store subscriptions linger a moment for the next waiter, then go.
	require.Eventually(t, func() bool { return s.ActiveSubscriptions() == 0 },
		patience, 5*time.Millisecond, "subscriptions still held")
	require.Eventually(t, func() bool {
		for i := range 5 {
			if serverSubscriptions(t, c, s, fmt.Sprint("n", i)) != 0 {
				return false
			}
		}
		return true
	}, patience, 5*time.Millisecond, "the server still has subscriptions")
}

func TestClassicPubSub(t *testing.T) {
	srv := redistest.Start(t)
	s, c := newStore(t, srv, Options{ClassicPubSub: true})
	ctx := ctxT(t)
	_, err := s.Acquire(ctx, req("a", "alice", time.Minute))
	require.NoError(t, err)
	sub, err := s.Subscribe(ctx, "a", "t")
	require.NoError(t, err)
	assert.Equal(t, int64(1), serverSubscriptions(t, c, s, "a"))
	_, _, err = s.Release(ctx, "a", "alice", "")
	require.NoError(t, err)
	woken(t, sub, "a classic PUBLISH wake-up")
	sub.Close()
	require.Eventually(t, func() bool { return serverSubscriptions(t, c, s, "a") == 0 },
		patience, 5*time.Millisecond, "the server still has the subscription")
}

func TestReconnectWakesEveryoneAndResubscribes(t *testing.T) {
	srv := redistest.Start(t)
	s, c := newStore(t, srv, Options{})
	ctx := ctxT(t)
	_, err := s.Acquire(ctx, req("a", "alice", time.Minute))
	require.NoError(t, err)
	subA, err := s.Subscribe(ctx, "a", "t1")
	require.NoError(t, err)
	defer subA.Close()
	subB, err := s.Subscribe(ctx, "b", "t2")
	require.NoError(t, err)
	defer subB.Close()

	killed, err := c.ClientKillByFilter(ctx, "TYPE", "pubsub").Result()
	require.NoError(t, err)
	require.Equal(t, int64(1), killed)
	woken(t, subA, "the wake-up after the connection was lost")
	woken(t, subB, "the wake-up after the connection was lost")

	require.Eventually(t, func() bool { return serverSubscriptions(t, c, s, "a") == 1 },
		patience, 5*time.Millisecond, "resubscription after the reconnect")
	_, _, err = s.Release(ctx, "a", "alice", "")
	require.NoError(t, err)
	woken(t, subA, "a release after the reconnect")
	assert.Equal(t, 2, s.ActiveSubscriptions())
}

func TestSubscribeHonoursContext(t *testing.T) {
	srv := redistest.Start(t)
	s, _ := newStore(t, srv, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Subscribe(ctx, "a", "t")
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 0, s.ActiveSubscriptions())
}

func TestCloseWakesSubscriptionsAndStops(t *testing.T) {
	srv := redistest.Start(t)
	c := newClient(t, srv)
	s, err := New(c, Options{})
	require.NoError(t, err)
	ctx := ctxT(t)
	sub, err := s.Subscribe(ctx, "a", "t")
	require.NoError(t, err)

	require.NoError(t, s.Close())
	woken(t, sub, "the wake-up on Close")
	_, err = s.Subscribe(ctx, "a", "t")
	assert.Error(t, err)
	sub.Close()
	require.NoError(t, s.Close())
	require.Eventually(t, func() bool { return pubsubConnections(t, c) == 0 },
		patience, 5*time.Millisecond, "the pub/sub connection is still open")
	// The lock operations still work on the caller's client.
	res, err := s.Acquire(ctx, req("a", "alice", time.Minute))
	require.NoError(t, err)
	assert.True(t, res.Acquired)
}
