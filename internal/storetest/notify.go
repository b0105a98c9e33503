package storetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/locker/driver"
)

// notifyTests are the tests of the subscriptions.
var notifyTests = []test{
	{"SubscriptionsCountPerName", testSubscriptionsCountPerName},
	{"ConcurrentSubscribersOfManyNames", testConcurrentSubscribersOfManyNames},
	{"SubscribeActiveWhileSubscribed", testSubscribeActiveWhileSubscribed},
	{"SubscribeHonoursContext", testSubscribeHonoursContext},
	{"WakeUpsCoalesce", testWakeUpsCoalesce},
}

// testSubscriptionsCountPerName: a store counts the names it holds
// subscriptions on, each store its own; a closed subscription is never
// signalled again.
func testSubscriptionsCountPerName(t *testing.T, h Harness) {
	srv := start(t, h)
	c1, c2 := srv.Store, srv.Client(t)
	ctx := ctxT(t)
	sub := func(s Store, name, ticket string) driver.Subscription {
		t.Helper()
		sub, err := s.Subscribe(ctx, name, ticket)
		require.NoError(t, err)
		return sub
	}
	a1, a2, b1, a3 := sub(c1, "a", "t1"), sub(c1, "a", "t2"), sub(c1, "b", "t3"), sub(c2, "a", "t4")
	assert.Equal(t, 2, srv.Subscriptions(c1))
	assert.Equal(t, 1, srv.Subscriptions(c2))

	a1.Close()
	a1.Close()
	assert.Equal(t, 2, srv.Subscriptions(c1), "a2 still listens on a; Close is idempotent")
	a2.Close()
	b1.Close()
	srv.noSubscriptions(t, c1)
	assert.Equal(t, 1, srv.Subscriptions(c2), "another store's subscription stays")

	broadcast(t, c2, "a")
	woken(t, a3, "the broadcast")
	srv.Flush(t, c1, "a")
	notWoken(t, a1, "a closed subscription was signalled")
	notWoken(t, a2, "a closed subscription was signalled")
	a3.Close()
	srv.noSubscriptions(t, c2)
	srv.Unsubscribed(t, "a", "b")
}

func testConcurrentSubscribersOfManyNames(t *testing.T, h Harness) {
	srv := start(t, h)
	s := srv.Store
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
	assert.Equal(t, names, srv.Subscriptions(s))
	all := make([]string, names)
	for i := range names {
		all[i] = fmt.Sprint("n", i)
		broadcast(t, s, all[i])
	}
	for _, sub := range subs {
		woken(t, sub, "a broadcast")
		sub.Close()
	}
	srv.noSubscriptions(t, s)
	srv.Unsubscribed(t, all...)
}

// testSubscribeActiveWhileSubscribed: while a store holds a subscription
// to a name, SubscribeActive subscribes at once, and the subscription is
// woken.
func testSubscribeActiveWhileSubscribed(t *testing.T, h Harness) {
	srv := start(t, h)
	s := srv.Store
	first := subscribe(t, s, "a", "t1")
	second, ok := s.SubscribeActive("a", "t2")
	require.True(t, ok, "the name is subscribed already")
	broadcast(t, s, "a")
	woken(t, second, "a wake-up of the active subscription")
	woken(t, first, "a wake-up of the first subscription")
	first.Close()
	second.Close()

	srv.noSubscriptions(t, s)
	srv.Unsubscribed(t, "a")
}

func testSubscribeHonoursContext(t *testing.T, h Harness) {
	srv := start(t, h)
	s := srv.Store
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := s.Subscribe(ctx, "a", "t")
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, 0, srv.Subscriptions(s))
}

// testWakeUpsCoalesce: wake-ups a subscription did not take yet come as one.
func testWakeUpsCoalesce(t *testing.T, h Harness) {
	srv := start(t, h)
	s := srv.Store
	sub := subscribe(t, s, "a", "t")
	for range 3 {
		broadcast(t, s, "a")
	}
	srv.Flush(t, s, "a")
	woken(t, sub, "the wake-ups")
	notWoken(t, sub, "wake-ups did not coalesce into one")
}
