// Package storetest is the backend-level test suite of disgo's stores: its
// one job is to run the same driver-level tests against every backend, at
// the level of the driver contracts (package locker/driver) rather than
// through the facade, which package conformance covers.
//
// It has three parts:
//
//   - [Run]: the contract behaviour every backend shares, the memory
//     backend included: acquire, release and extend results, reentrancy
//     by ticket, fair queue positions, eviction, grants, leave, inspection,
//     batch extend, wake-ups and subscription counting. A [Harness] says
//     how to open a store and how to do what differs between backends:
//     expire a lock, make time pass, count subscriptions, list records.
//   - [RunRedis]: the tests that need a raw redis-server (key layout, INFO
//     commandstats, CLIENT KILL, SCRIPT FLUSH, ACLs, records written with
//     raw commands), for the Redis adapters; it runs [Run] too.
//   - [RunCluster]: the tests of what is special about Redis Cluster, once
//     for both adapters.
package storetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/internal/token"
	"github.com/disgolock/disgo/locker/driver"
)

// Store is what a backend's store implements for [Run].
type Store interface {
	driver.Backend
	driver.Queue
	driver.Notifier
	driver.Inspector
	driver.BatchExtender
}

// Harness is what [Run] needs from a backend.
type Harness struct {
	// Start starts a new, empty server of the backend (a redis-server of
	// its own, a fresh memory store) and returns it with a store on it.
	// Everything it opens is closed when the test ends.
	Start func(t *testing.T) *Server
}

// Server is one server of a backend under test, a store on it, and the
// hooks for what differs between backends. Every field is required.
type Server struct {
	// Store is a store on the server, as one process has it.
	Store Store
	// Client returns another store on the same server, as another process
	// has it: the same locks and queues, subscriptions of its own. It is
	// closed when the test ends.
	Client func(t *testing.T) Store
	// Subscriptions returns the number of lock names s (the Store or one
	// returned by Client) holds a subscription on.
	Subscriptions func(s Store) int
	// Unsubscribed waits until the server holds no subscription of any
	// store to any of names, and fails the test when it does not come.
	Unsubscribed func(t *testing.T, names ...string)
	// Expire ends the holding of name as a lapsed lease would: without a
	// release, without a message, leaving its queue alone.
	Expire func(t *testing.T, name string)
	// Wipe deletes every record of name, its queue and fence record
	// included, as an eviction or an operator would.
	Wipe func(t *testing.T, name string)
	// Pass makes more than d pass on the server's clock: leases and
	// heartbeats shorter than d lapse.
	Pass func(t *testing.T, d time.Duration)
	// Records lists the records the server keeps for lock names, apart
	// from fence records (which outlive the locks by design): one per held
	// lock and one or more per non-empty queue.
	Records func(t *testing.T) []string
	// Flush returns once every message published on name's channel before
	// it was called has been delivered to the subscriptions of s, so that
	// a test may check that a subscription was not woken.
	Flush func(t *testing.T, s Store, name string)
}

// Run runs every test of the contract part as a subtest of t, one after
// another, each on a server of its own.
func Run(t *testing.T, h Harness) {
	if h.Start == nil {
		t.Fatal("storetest: Harness.Start is required")
	}
	for _, tc := range slices.Concat(lockTests, fairTests, grantTests, notifyTests) {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, h) })
	}
}

// test is one subtest of the contract part.
type test struct {
	name string
	run  func(t *testing.T, h Harness)
}

// patience bounds every wait of these tests; reaching it is a failure.
const patience = 10 * time.Second

// start starts a server of h, checking that every hook is set.
func start(t *testing.T, h Harness) *Server {
	t.Helper()
	srv := h.Start(t)
	if srv == nil || srv.Store == nil || srv.Client == nil || srv.Subscriptions == nil || srv.Unsubscribed == nil ||
		srv.Expire == nil || srv.Wipe == nil || srv.Pass == nil || srv.Records == nil || srv.Flush == nil {
		t.Fatal("storetest: the Server Harness.Start returned lacks its Store or a hook")
	}
	return srv
}

// waitedFor makes an attempt on name by another owner that finds the lock
// taken, as every waiter makes before it sleeps: only a release of a
// holding that someone waited for wakes the name's waiters.
func waitedFor(t *testing.T, s driver.Backend, name string) {
	t.Helper()
	res, err := s.Acquire(ctxT(t), req(name, "someone-waiting", time.Minute))
	require.NoError(t, err)
	require.False(t, res.Acquired, "%q is not held", name)
}

// broadcast wakes every subscription of name as a release with nobody
// queued does: name is taken, waited for and released.
func broadcast(t *testing.T, s driver.Backend, name string) {
	t.Helper()
	ctx := ctxT(t)
	res, err := s.Acquire(ctx, req(name, "broadcaster", time.Minute))
	require.NoError(t, err)
	require.True(t, res.Acquired, "take %q to broadcast", name)
	waitedFor(t, s, name)
	held, _, err := s.Release(ctx, name, "broadcaster", "")
	require.NoError(t, err)
	require.True(t, held, "release %q to broadcast", name)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	t.Cleanup(cancel)
	return ctx
}

func req(name, owner string, lease time.Duration) driver.AcquireRequest {
	return driver.AcquireRequest{Name: name, Owner: owner, Ticket: token.New(), Lease: lease}
}

// subscribe subscribes ticket to name on s until the test ends.
func subscribe(t *testing.T, s driver.Notifier, name, ticket string) driver.Subscription {
	t.Helper()
	sub, err := s.Subscribe(ctxT(t), name, ticket)
	require.NoError(t, err, "subscribe %q", name)
	t.Cleanup(sub.Close)
	return sub
}

// woken waits for a wake-up of sub.
func woken(t *testing.T, sub driver.Subscription, what string) {
	t.Helper()
	select {
	case <-sub.Wake():
	case <-time.After(patience):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// notWoken asserts that sub has no wake-up pending. It is called after an
// event that follows the message in question on the same connection (see
// Server.Flush), so the message would have arrived by then.
func notWoken(t *testing.T, sub driver.Subscription, what string) {
	t.Helper()
	select {
	case <-sub.Wake():
		t.Fatalf("unexpected wake-up: %s", what)
	default:
	}
}

// drain discards a pending wake-up of sub.
func drain(sub driver.Subscription) {
	select {
	case <-sub.Wake():
	default:
	}
}

// noSubscriptions waits until s holds no subscription: they may linger for
// a moment after their last waiter left.
func (srv *Server) noSubscriptions(t *testing.T, s Store) {
	t.Helper()
	require.Eventually(t, func() bool { return srv.Subscriptions(s) == 0 },
		patience, 5*time.Millisecond, "the subscriptions to end")
}
