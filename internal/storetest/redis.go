package storetest

// This file is the Redis part of the suite: its harness, and the helpers
// of the tests that need a raw redis-server.

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/internal/rediscore"
	"github.com/disgolock/disgo/internal/redistest"
	"github.com/disgolock/disgo/internal/token"
)

// RedisHarness is what [RunRedis] needs from a Redis adapter.
type RedisHarness struct {
	// Open returns a store with opts on a new client of srv, counting its
	// requests; the store and the client are closed when the test ends.
	Open func(t *testing.T, srv *redistest.Server, opts Options) Fixture
	// Admin returns a Do on a new client of srv of its own (not counted in
	// any Fixture's Requests), closed when the test ends.
	Admin func(t *testing.T, srv *redistest.Server) Do
}

// Options are the adapter options the suite sets.
type Options struct {
	Prefix        string
	ClassicPubSub bool
	// Username and Password, when set, authenticate the store's client as
	// that ACL user.
	Username, Password string
}

// RedisStore is what a Redis adapter's Store implements.
type RedisStore interface {
	Store
	// ActiveSubscriptions returns the number of lock names whose channel
	// the store holds a server subscription for.
	ActiveSubscriptions() int
	// Close closes the store's pub/sub connections; it is idempotent.
	Close() error
}

// Fixture is one store under test.
type Fixture struct {
	Store RedisStore
	// Layout is the store's key layout.
	Layout rediscore.Layout
	// Publish is the command the store's scripts publish with:
	// rediscore.Sharded or rediscore.Classic.
	Publish string
	// Requests is counted by the store's client.
	Requests *Requests
}

// Requests counts the round trips of a client, apart from the handshake of
// each new connection: Single commands, and Batches (a pipeline or a
// DoMulti, one round trip each).
type Requests struct {
	Single, Batches atomic.Int64
}

// Reset sets both counts to zero.
func (r *Requests) Reset() { r.Single.Store(0); r.Batches.Store(0) }

// Do sends one command and returns its reply as plain Go values: a string,
// an int64, a []any or a map.
type Do func(ctx context.Context, args ...string) (any, error)

// RunRedis runs the contract part ([Run]) and the Redis part of the suite
// as subtests of t, one after another, each on a redis-server of its own.
func RunRedis(t *testing.T, h RedisHarness) {
	if h.Open == nil || h.Admin == nil {
		t.Fatal("storetest: RedisHarness.Open and RedisHarness.Admin are required")
	}
	Run(t, Harness{Start: h.start})
	for _, tc := range slices.Concat(redisStoreTests, redisNotifyTests, safetyTests) {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, h) })
	}
}

// redisTest is one subtest of the Redis part.
type redisTest struct {
	name string
	run  func(t *testing.T, h RedisHarness)
}

// start is the Harness.Start of [Run] on a Redis adapter: the hooks work
// on raw commands of an admin client.
func (h RedisHarness) start(t *testing.T) *Server {
	e := newEnv(t, h, Options{})
	return &Server{
		Store:         e.Store,
		Client:        func(t *testing.T) Store { return e.open(t, Options{}).Store },
		Subscriptions: func(s Store) int { return s.(RedisStore).ActiveSubscriptions() },
		Unsubscribed:  func(t *testing.T, names ...string) { e.unsubscribed(t, "the server still has subscriptions", names...) },
		Expire:        e.expire,
		Wipe:          func(t *testing.T, name string) { e.del(t, e.Layout.Keys(name)...) },
		Pass: func(t *testing.T, d time.Duration) {
			// Redis expires a key once its millisecond has passed.
			time.Sleep(d + 2*time.Millisecond)
		},
		Records: e.keys,
		Flush:   func(t *testing.T, s Store, name string) { e.probe(t, s, name) },
	}
}

// env is the setting of one test: a server, a store on it and an admin
// client of it.
type env struct {
	Fixture
	h     RedisHarness
	srv   *redistest.Server
	admin Do
}

// newEnv starts a server and opens a store with opts on it.
func newEnv(t *testing.T, h RedisHarness, opts Options) *env {
	t.Helper()
	srv := redistest.Start(t)
	return &env{Fixture: h.Open(t, srv, opts), h: h, srv: srv, admin: h.Admin(t, srv)}
}

// open opens another store on e's server.
func (e *env) open(t *testing.T, opts Options) Fixture {
	t.Helper()
	return e.h.Open(t, e.srv, opts)
}

// newAdmin replaces the admin client by a new one.
func (e *env) newAdmin(t *testing.T) { e.admin = e.h.Admin(t, e.srv) }

// do sends a command on the admin client.
func (e *env) do(t *testing.T, args ...string) (any, error) {
	t.Helper()
	return e.admin(ctxT(t), args...)
}

// must sends a command on the admin client and fails the test on an error.
func (e *env) must(t *testing.T, args ...string) any {
	t.Helper()
	v, err := e.do(t, args...)
	require.NoError(t, err, "%q", args)
	return v
}

// keys lists every key of the server but the fence records.
func (e *env) keys(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, k := range e.keysMatching(t, "*") {
		if !strings.HasSuffix(k, ":fence") {
			out = append(out, k)
		}
	}
	return out
}

// keysMatching lists the keys of the server that match pattern.
func (e *env) keysMatching(t *testing.T, pattern string) []string {
	t.Helper()
	var out []string
	for _, k := range e.must(t, "KEYS", pattern).([]any) {
		out = append(out, k.(string))
	}
	return out
}

// pttl returns the remaining time to live of key.
func (e *env) pttl(t *testing.T, key string) time.Duration {
	t.Helper()
	return time.Duration(e.must(t, "PTTL", key).(int64)) * time.Millisecond
}

// del deletes keys.
func (e *env) del(t *testing.T, keys ...string) {
	t.Helper()
	e.must(t, append([]string{"DEL"}, keys...)...)
}

// expire ends the holding of name as a lapsed lease would: without a
// release and without a message.
func (e *env) expire(t *testing.T, name string) {
	t.Helper()
	e.del(t, e.Layout.Keys(name)[rediscore.KeyLock])
}

// publish sends message on name's channel, the way the store's scripts do.
func (e *env) publish(t *testing.T, name, message string) error {
	t.Helper()
	_, err := e.do(t, e.Publish, e.Layout.Channel(name), message)
	return err
}

// probe publishes a message on name's channel and waits until s delivered
// it: every message published on that channel before has been delivered
// too (one connection delivers in order).
func (e *env) probe(t *testing.T, s Store, name string) {
	t.Helper()
	ctx := ctxT(t)
	ticket := token.New()
	sub, err := s.Subscribe(ctx, name, ticket)
	require.NoError(t, err)
	defer sub.Close()
	require.NoError(t, e.publish(t, name, ticket))
	woken(t, sub, "the probe message")
}

// serverSubscriptions returns how many clients the server has subscribed
// to name's channel.
func (e *env) serverSubscriptions(t *testing.T, name string) int64 {
	t.Helper()
	ch := e.Layout.Channel(name)
	cmd := "SHARDNUMSUB"
	if e.Publish == rediscore.Classic {
		cmd = "NUMSUB"
	}
	v := e.must(t, "PUBSUB", cmd, ch)
	n, ok := subscribersIn(v, ch)
	require.True(t, ok, "PUBSUB %s: unexpected reply %#v", cmd, v)
	return n
}

// pubsubConnections counts the server's pub/sub connections.
func (e *env) pubsubConnections(t *testing.T) int {
	t.Helper()
	n := 0
	for _, line := range strings.Split(e.must(t, "CLIENT", "LIST").(string), "\n") {
		if strings.Contains(line, "flags=P") {
			n++
		}
	}
	return n
}

// killPubSub closes the server's pub/sub connections and returns how many
// there were.
func (e *env) killPubSub(t *testing.T) int64 {
	t.Helper()
	return e.must(t, "CLIENT", "KILL", "TYPE", "pubsub").(int64)
}

// scriptCalls returns the number of EVALSHA and EVAL commands the server
// ran, from INFO commandstats (which also counts the commands scripts call,
// so the other counters do not tell round trips).
func (e *env) scriptCalls(t *testing.T) int64 {
	t.Helper()
	var n int64
	for _, line := range strings.Split(e.must(t, "INFO", "commandstats").(string), "\n") {
		name, stats, _ := strings.Cut(strings.TrimSpace(line), ":")
		if name != "cmdstat_evalsha" && name != "cmdstat_eval" {
			continue
		}
		calls, _, _ := strings.Cut(strings.TrimPrefix(stats, "calls="), ",")
		v, err := strconv.ParseInt(calls, 10, 64)
		require.NoError(t, err, line)
		n += v
	}
	return n
}

// commandStats returns the calls of every command the server ran, from
// INFO commandstats, by lower-case command name.
func (e *env) commandStats(t *testing.T) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, line := range strings.Split(e.must(t, "INFO", "commandstats").(string), "\n") {
		name, stats, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		calls, _, _ := strings.Cut(strings.TrimPrefix(stats, "calls="), ",")
		v, err := strconv.ParseInt(calls, 10, 64)
		require.NoError(t, err, line)
		out[strings.TrimPrefix(name, "cmdstat_")] = v
	}
	return out
}

// noSubscriptions waits until s holds no subscription: they linger for a
// moment after their last waiter left.
func noSubscriptions(t *testing.T, s RedisStore) {
	t.Helper()
	require.Eventually(t, func() bool { return s.ActiveSubscriptions() == 0 },
		patience, 5*time.Millisecond, "the subscriptions to end")
}
