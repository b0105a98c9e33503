package rueidisbackend

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/rueidis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/internal/redistest"
	"github.com/disgolock/disgo/locker"
)

// serverSubscriptions returns how many clients the server has subscribed to
// name's channel.
func serverSubscriptions(t *testing.T, c rueidis.Client, s *Store, name string) int64 {
	t.Helper()
	ch := s.layout.Channel(name)
	counts, err := do(t, c, func(b rueidis.Builder) rueidis.Completed {
		if s.publish == "PUBLISH" {
			return b.PubsubNumsub().Channel(ch).Build()
		}
		return b.PubsubShardnumsub().Channel(ch).Build()
	}).AsIntMap()
	require.NoError(t, err)
	return counts[ch]
}

// pubsubConnections counts the server's pub/sub connections.
func pubsubConnections(t *testing.T, c rueidis.Client) int {
	t.Helper()
	list, err := do(t, c, func(b rueidis.Builder) rueidis.Completed { return b.ClientList().Build() }).ToString()
	require.NoError(t, err)
	n := 0
	for _, line := range strings.Split(list, "\n") {
		if strings.Contains(line, "flags=P") {
			n++
		}
	}
	return n
}

// noSubscriptions waits until s holds no subscription: they linger for a
// moment after their last waiter left.
func noSubscriptions(t *testing.T, s *Store) {
	t.Helper()
	require.Eventually(t, func() bool { return s.ActiveSubscriptions() == 0 },
		patience, 5*time.Millisecond, "the subscriptions to end")
}

func TestSubscriptionsShareOneConnectionAndReturnToZero(t *testing.T) {
	srv := redistest.Start(t)
	s, c := newStore(t, srv, Options{})
	ctx := ctxT(t)
	assert.Equal(t, 0, pubsubConnections(t, c), "a connection before the first Subscribe")
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
	noSubscriptions(t, s)
	require.Eventually(t, func() bool {
		for i := range 5 {
			if serverSubscriptions(t, c, s, fmt.Sprint("n", i)) != 0 {
				return false
			}
		}
		return true
	}, patience, 5*time.Millisecond, "the server still has subscriptions")
}

func TestConcurrentSubscribersOfManyNames(t *testing.T) {
	srv := redistest.Start(t)
	s, c := newStore(t, srv, Options{})
	ctx := ctxT(t)
	const names, perName = 30, 4
	type result struct {
		sub locker.Subscription
		err error
	}
	results := make(chan result, names*perName)
	for i := range names * perName {
		go func() {
			sub, err := s.Subscribe(ctx, fmt.Sprint("n", i%names), fmt.Sprint("t", i))
			results <- result{sub, err}
		}()
	}
	var subs []locker.Subscription
	for range names * perName {
		r := <-results
		require.NoError(t, r.err)
		subs = append(subs, r.sub)
	}
	assert.Equal(t, names, s.ActiveSubscriptions())
	for i := range names {
		require.NoError(t, publish(t, c, s, fmt.Sprint("n", i), "*"))
	}
	for _, sub := range subs {
		woken(t, sub, "a broadcast")
		sub.Close()
	}
	noSubscriptions(t, s)
	require.Eventually(t, func() bool { return serverSubscriptions(t, c, s, "n0") == 0 },
		patience, 5*time.Millisecond, "the server still has subscriptions")
}

func TestSubscribeActive(t *testing.T) {
	srv := redistest.Start(t)
	s, c := newStore(t, srv, Options{})
	ctx := ctxT(t)
	_, ok := s.SubscribeActive("a", "t1")
	assert.False(t, ok, "subscribed without a server subscription")

	first, err := s.Subscribe(ctx, "a", "t1")
	require.NoError(t, err)
	second, ok := s.SubscribeActive("a", "t2")
	require.True(t, ok, "the channel is subscribed already")
	_, ok = s.SubscribeActive("b", "t2")
	assert.False(t, ok, "another name")
	require.NoError(t, publish(t, c, s, "a", "t2"))
	woken(t, second, "a message to the active subscription")
	first.Close()
	second.Close()

	lingering, ok := s.SubscribeActive("a", "t3")
	require.True(t, ok, "the subscription lingers after its last waiter")
	require.NoError(t, publish(t, c, s, "a", "t3"))
	woken(t, lingering, "a message to a subscription taken while lingering")
	lingering.Close()
	noSubscriptions(t, s)
	_, ok = s.SubscribeActive("a", "t4")
	assert.False(t, ok, "subscribed after the subscription ended")
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

	killed, err := do(t, c, func(b rueidis.Builder) rueidis.Completed {
		return b.Arbitrary("CLIENT", "KILL", "TYPE", "pubsub").Build()
	}).AsInt64()
	require.NoError(t, err)
	require.Equal(t, int64(1), killed)
	woken(t, subA, "the wake-up after the connection was lost")
	woken(t, subB, "the wake-up after the connection was lost")

	require.Eventually(t, func() bool { return serverSubscriptions(t, c, s, "a") == 1 },
		patience, 5*time.Millisecond, "resubscription after the reconnect")
	assert.Equal(t, int64(1), serverSubscriptions(t, c, s, "b"))
	assert.Equal(t, 1, pubsubConnections(t, c))
	_, _, err = s.Release(ctx, "a", "alice", "")
	require.NoError(t, err)
	woken(t, subA, "a release after the reconnect")
	assert.Equal(t, 2, s.ActiveSubscriptions())

	// A name subscribed after the reconnect works too.
	subC, err := s.Subscribe(ctx, "c", "t3")
	require.NoError(t, err)
	defer subC.Close()
	require.NoError(t, publish(t, c, s, "c", "t3"))
	woken(t, subC, "a message on a channel subscribed after the reconnect")
}

func TestIdleConnectionLossReconnectsOnDemand(t *testing.T) {
	srv := redistest.Start(t)
	s, c := newStore(t, srv, Options{})
	ctx := ctxT(t)
	sub, err := s.Subscribe(ctx, "a", "t")
	require.NoError(t, err)
	sub.Close()
	require.Eventually(t, func() bool { return serverSubscriptions(t, c, s, "a") == 0 },
		patience, 5*time.Millisecond, "the unsubscription")

	srv.Stop()
	srv.Restart(t)
	require.Eventually(t, func() bool {
		sub, err = s.Subscribe(ctx, "a", "t")
		return err == nil
	}, patience, 10*time.Millisecond, "a subscription after the restart")
	defer sub.Close()
	admin := newClient(t, srv)
	assert.Equal(t, int64(1), serverSubscriptions(t, admin, s, "a"))
	require.NoError(t, publish(t, admin, s, "a", "t"))
	woken(t, sub, "a message after the restart")
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

func TestSubscribeRefusedByTheServer(t *testing.T) {
	srv := redistest.Start(t)
	s, c := newStore(t, srv, Options{})
	ctx := ctxT(t)
	acl := func(rule string) {
		t.Helper()
		require.NoError(t, do(t, c, func(b rueidis.Builder) rueidis.Completed {
			return b.Arbitrary("ACL", "SETUSER", "default", rule).Build()
		}).Error())
	}
	refused := func(what string, others int) {
		t.Helper()
		_, err := s.Subscribe(ctx, "a", "t")
		assert.Error(t, err, what)
		require.Eventually(t, func() bool { return s.ActiveSubscriptions() == others },
			patience, 5*time.Millisecond, "the refused subscription was kept (%s)", what)
	}
	// As a server that does not know SSUBSCRIBE (Redis before 7) would.
	acl("-ssubscribe")
	refused("on a new connection", 0)
	acl("+ssubscribe")
	held, err := s.Subscribe(ctx, "held", "t")
	require.NoError(t, err)
	defer held.Close()
	acl("-ssubscribe")
	refused("on the open connection", 1)
	acl("+ssubscribe")

	sub, err := s.Subscribe(ctx, "a", "t")
	require.NoError(t, err)
	defer sub.Close()
	assert.Equal(t, 1, pubsubConnections(t, c), "a refusal replaced the connection")
	for _, name := range []string{"a", "held"} {
		require.NoError(t, publish(t, c, s, name, "t"))
	}
	woken(t, sub, "a message after the refusal ended")
	woken(t, held, "a message on the subscription held during the refusal")
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

func TestCloseWhileServerDown(t *testing.T) {
	srv := redistest.Start(t)
	c := newClient(t, srv)
	s, err := New(c, Options{})
	require.NoError(t, err)
	ctx := ctxT(t)
	sub, err := s.Subscribe(ctx, "a", "t")
	require.NoError(t, err)
	defer sub.Close()
	srv.Stop() // the Store keeps trying to reconnect

	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(patience):
		t.Fatal("timed out waiting for Close while the server is down")
	}
}

func TestChurnAcrossReconnects(t *testing.T) {
	srv := redistest.Start(t)
	s, c := newStore(t, srv, Options{})
	ctx := ctxT(t)
	const workers, names = 8, 6
	stop := make(chan struct{})
	done := make(chan int, workers)
	for w := range workers {
		go func() {
			ok := 0
			for i := 0; ; i++ {
				select {
				case <-stop:
					done <- ok
					return
				default:
				}
				short, cancel := context.WithTimeout(ctx, time.Second)
				sub, err := s.Subscribe(short, fmt.Sprint("n", (w+i)%names), fmt.Sprint("t", w))
				cancel()
				if err == nil {
					ok++
					if i%3 == 0 {
						time.Sleep(time.Millisecond)
					}
					sub.Close()
				}
			}
		}()
	}
	var killed int64
	for killed < 5 {
		time.Sleep(20 * time.Millisecond)
		n, err := do(t, c, func(b rueidis.Builder) rueidis.Completed {
			return b.Arbitrary("CLIENT", "KILL", "TYPE", "pubsub").Build()
		}).AsInt64()
		require.NoError(t, err)
		killed += n
	}
	close(stop)
	subscribed := 0
	for range workers {
		select {
		case n := <-done:
			subscribed += n
		case <-time.After(patience):
			t.Fatal("timed out waiting for the subscribers")
		}
	}
	assert.Positive(t, subscribed)
	noSubscriptions(t, s)
	require.Eventually(t, func() bool {
		for i := range names {
			if serverSubscriptions(t, c, s, fmt.Sprint("n", i)) != 0 {
				return false
			}
		}
		return true
	}, patience, 10*time.Millisecond, "the server still has subscriptions after the churn")

	var sub locker.Subscription
	require.Eventually(t, func() bool {
		var err error
		sub, err = s.Subscribe(ctx, "n0", "final")
		return err == nil
	}, patience, 10*time.Millisecond, "a subscription after the churn")
	defer sub.Close()
	require.NoError(t, publish(t, c, s, "n0", "final"))
	woken(t, sub, "a message after the churn")
}
