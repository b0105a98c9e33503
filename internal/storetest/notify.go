package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/locker/driver"
)

// notifyTests are the tests of the subscriptions.
var notifyTests = []test{
	{"SubscriptionsShareOneConnectionAndReturnToZero", testSubscriptionsShareOneConnectionAndReturnToZero},
	{"ConcurrentSubscribersOfManyNames", testConcurrentSubscribersOfManyNames},
	{"SubscribeActive", testSubscribeActive},
	{"ClassicPubSub", testClassicPubSub},
	{"ReconnectWakesEveryoneAndResubscribes", testReconnectWakesEveryoneAndResubscribes},
	{"IdleConnectionLossReconnectsOnDemand", testIdleConnectionLossReconnectsOnDemand},
	{"SubscribeHonoursContext", testSubscribeHonoursContext},
	{"CloseWakesSubscriptionsAndStops", testCloseWakesSubscriptionsAndStops},
	{"CloseWhileServerDown", testCloseWhileServerDown},
	{"ChurnAcrossReconnects", testChurnAcrossReconnects},
}

// unsubscribed waits until the server has no subscription to any of names.
func (e *env) unsubscribed(t *testing.T, what string, names ...string) {
	t.Helper()
	require.Eventually(t, func() bool {
		for _, name := range names {
			if e.serverSubscriptions(t, name) != 0 {
				return false
			}
		}
		return true
	}, patience, 5*time.Millisecond, what)
}

func testSubscriptionsShareOneConnectionAndReturnToZero(t *testing.T, h Harness) {
	e := newEnv(t, h, Options{})
	s := e.Store
	ctx := ctxT(t)
	assert.Equal(t, 0, e.pubsubConnections(t), "a connection before the first Subscribe")
	var subs []driver.Subscription
	for i := range 20 {
		sub, err := s.Subscribe(ctx, fmt.Sprint("n", i%5), fmt.Sprint("t", i))
		require.NoError(t, err)
		subs = append(subs, sub)
	}
	assert.Equal(t, 5, s.ActiveSubscriptions())
	assert.Equal(t, 1, e.pubsubConnections(t))
	var names []string
	for i := range 5 {
		names = append(names, fmt.Sprint("n", i))
		assert.Equal(t, int64(1), e.serverSubscriptions(t, names[i]))
	}

	for _, sub := range subs {
		sub.Close()
	}
	// The store subscriptions linger a moment for the next waiter, then go.
	noSubscriptions(t, s)
	e.unsubscribed(t, "the server still has subscriptions", names...)
}

func testConcurrentSubscribersOfManyNames(t *testing.T, h Harness) {
	e := newEnv(t, h, Options{})
	s := e.Store
	ctx := ctxT(t)
	const names, perName = 30, 4
	type result struct {
		sub driver.Subscription
		err error
	}
	results := make(chan result, names*perName)
	for i := range names * perName {
		go func() {
			sub, err := s.Subscribe(ctx, fmt.Sprint("n", i%names), fmt.Sprint("t", i))
			results <- result{sub, err}
		}()
	}
	var subs []driver.Subscription
	for range names * perName {
		r := <-results
		require.NoError(t, r.err)
		subs = append(subs, r.sub)
	}
	assert.Equal(t, names, s.ActiveSubscriptions())
	for i := range names {
		require.NoError(t, e.publish(t, fmt.Sprint("n", i), "*"))
	}
	for _, sub := range subs {
		woken(t, sub, "a broadcast")
		sub.Close()
	}
	noSubscriptions(t, s)
	e.unsubscribed(t, "the server still has subscriptions", "n0")
}

func testSubscribeActive(t *testing.T, h Harness) {
	e := newEnv(t, h, Options{})
	s := e.Store
	ctx := ctxT(t)
	_, ok := s.SubscribeActive("a", "t1")
	assert.False(t, ok, "subscribed without a server subscription")

	first, err := s.Subscribe(ctx, "a", "t1")
	require.NoError(t, err)
	second, ok := s.SubscribeActive("a", "t2")
	require.True(t, ok, "the channel is subscribed already")
	_, ok = s.SubscribeActive("b", "t2")
	assert.False(t, ok, "another name")
	require.NoError(t, e.publish(t, "a", "t2"))
	woken(t, second, "a message to the active subscription")
	first.Close()
	second.Close()

	lingering, ok := s.SubscribeActive("a", "t3")
	require.True(t, ok, "the subscription lingers after its last waiter")
	require.NoError(t, e.publish(t, "a", "t3"))
	woken(t, lingering, "a message to a subscription taken while lingering")
	lingering.Close()
	noSubscriptions(t, s)
	_, ok = s.SubscribeActive("a", "t4")
	assert.False(t, ok, "subscribed after the subscription ended")
}

func testClassicPubSub(t *testing.T, h Harness) {
	e := newEnv(t, h, Options{ClassicPubSub: true})
	s := e.Store
	ctx := ctxT(t)
	_, err := s.Acquire(ctx, req("a", "alice", time.Minute))
	require.NoError(t, err)
	sub, err := s.Subscribe(ctx, "a", "t")
	require.NoError(t, err)
	assert.Equal(t, int64(1), e.serverSubscriptions(t, "a"))
	waitedFor(t, s, "a")
	_, _, err = s.Release(ctx, "a", "alice", "")
	require.NoError(t, err)
	woken(t, sub, "a classic PUBLISH wake-up")
	sub.Close()
	e.unsubscribed(t, "the server still has the subscription", "a")
}

func testReconnectWakesEveryoneAndResubscribes(t *testing.T, h Harness) {
	e := newEnv(t, h, Options{})
	s := e.Store
	ctx := ctxT(t)
	_, err := s.Acquire(ctx, req("a", "alice", time.Minute))
	require.NoError(t, err)
	subA := subscribe(t, s, "a", "t1")
	subB := subscribe(t, s, "b", "t2")

	require.Equal(t, int64(1), e.killPubSub(t))
	woken(t, subA, "the wake-up after the connection was lost")
	woken(t, subB, "the wake-up after the connection was lost")

	require.Eventually(t, func() bool { return e.serverSubscriptions(t, "a") == 1 },
		patience, 5*time.Millisecond, "resubscription after the reconnect")
	assert.Equal(t, int64(1), e.serverSubscriptions(t, "b"))
	assert.Equal(t, 1, e.pubsubConnections(t))
	_, _, err = s.Release(ctx, "a", "alice", "")
	require.NoError(t, err)
	woken(t, subA, "a release after the reconnect")
	assert.Equal(t, 2, s.ActiveSubscriptions())

	// A name subscribed after the reconnect works too.
	subC := subscribe(t, s, "c", "t3")
	require.NoError(t, e.publish(t, "c", "t3"))
	woken(t, subC, "a message on a channel subscribed after the reconnect")
}

func testIdleConnectionLossReconnectsOnDemand(t *testing.T, h Harness) {
	e := newEnv(t, h, Options{})
	s := e.Store
	ctx := ctxT(t)
	sub, err := s.Subscribe(ctx, "a", "t")
	require.NoError(t, err)
	sub.Close()
	e.unsubscribed(t, "the unsubscription", "a")

	e.srv.Stop()
	e.srv.Restart(t)
	require.Eventually(t, func() bool {
		sub, err = s.Subscribe(ctx, "a", "t")
		return err == nil
	}, patience, 10*time.Millisecond, "a subscription after the restart")
	defer sub.Close()
	e.newAdmin(t)
	assert.Equal(t, int64(1), e.serverSubscriptions(t, "a"))
	require.NoError(t, e.publish(t, "a", "t"))
	woken(t, sub, "a message after the restart")
}

func testSubscribeHonoursContext(t *testing.T, h Harness) {
	s := newEnv(t, h, Options{}).Store
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Subscribe(ctx, "a", "t")
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 0, s.ActiveSubscriptions())
}

func testCloseWakesSubscriptionsAndStops(t *testing.T, h Harness) {
	e := newEnv(t, h, Options{})
	s := e.Store
	ctx := ctxT(t)
	sub, err := s.Subscribe(ctx, "a", "t")
	require.NoError(t, err)

	require.NoError(t, s.Close())
	woken(t, sub, "the wake-up on Close")
	_, err = s.Subscribe(ctx, "a", "t")
	assert.Error(t, err)
	sub.Close()
	require.NoError(t, s.Close())
	require.Eventually(t, func() bool { return e.pubsubConnections(t) == 0 },
		patience, 5*time.Millisecond, "the pub/sub connection is still open")
	// The lock operations still work on the caller's client.
	res, err := s.Acquire(ctx, req("a", "alice", time.Minute))
	require.NoError(t, err)
	assert.True(t, res.Acquired)
}

func testCloseWhileServerDown(t *testing.T, h Harness) {
	e := newEnv(t, h, Options{})
	s := e.Store
	subscribe(t, s, "a", "t")
	e.srv.Stop() // the Store keeps trying to reconnect

	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(patience):
		t.Fatal("timed out waiting for Close while the server is down")
	}
}

func testChurnAcrossReconnects(t *testing.T, h Harness) {
	e := newEnv(t, h, Options{})
	s := e.Store
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
		killed += e.killPubSub(t)
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
	var all []string
	for i := range names {
		all = append(all, fmt.Sprint("n", i))
	}
	e.unsubscribed(t, "the server still has subscriptions after the churn", all...)

	var sub driver.Subscription
	require.Eventually(t, func() bool {
		var err error
		sub, err = s.Subscribe(ctx, "n0", "final")
		return err == nil
	}, patience, 10*time.Millisecond, "a subscription after the churn")
	defer sub.Close()
	require.NoError(t, e.publish(t, "n0", "final"))
	woken(t, sub, "a message after the churn")
}
