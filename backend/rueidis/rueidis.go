// Package rueidisbackend is the disgo lock store over
// github.com/redis/rueidis: it runs disgo's Redis store (its Lua scripts
// and pub/sub wake-ups) on a rueidis.Client.
//
// The folder is backend/rueidis but the package is named rueidisbackend, so
// that a program importing both this package and github.com/redis/rueidis
// needs no import alias:
//
//	import (
//		"github.com/redis/rueidis"
//		"github.com/disgolock/disgo/backend/rueidis" // package rueidisbackend
//	)
//
//	client, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{"localhost:6379"}})
//	...
//	store, err := rueidisbackend.New(client, rueidisbackend.Options{})
//	...
//	defer store.Close()
//	lk, err := locker.New[string](store, locker.Options[string]{})
//
// A [*Store] implements driver.Backend, driver.Queue (fair mode),
// driver.Notifier, driver.Inspector (with InspectQueue, which lists a
// lock's fair queue for operators), driver.BatchExtender and
// driver.ForceReleaser, and driver.RWLocker and driver.Semaphorer for
// locker.NewRW and locker.NewSemaphore (their views have every capability
// above; a name's mutex, read-write lock and semaphore have keys of their
// own). Both Redis
// adapters of disgo are this one store: they share keys, scripts and
// messages, so a lock taken through one is seen, waited on and handed over
// through the other.
//
// Every lock operation is one round trip: an EVALSHA of the script, or an
// EVAL when the server's script cache lacks it (after a restart or SCRIPT
// FLUSH). The commands are built not retryable, so rueidis never resends
// one on its own after a network error: a resent release could undo two
// holds. Retrying is the facade's decision. Concurrent operations share the
// client's connections through rueidis' auto-pipelining (with the client
// option DisableAutoPipelining, rueidis uses a pooled connection per
// command instead, which works too); ExtendBatch sends one DoMulti. Since
// rueidis may send a caller's next command on another pipelined connection
// than an acquisition whose caller gave up, such an acquisition still waits
// up to 100 ms for the server's answer, so that the clean-up of it runs
// after it.
//
// All keys of one lock name share a hash tag and every key a script touches
// is passed in KEYS, so the scripts run unchanged on Redis Cluster (give
// rueidis.NewClient the addresses of some of its nodes) and behind proxies.
// Wake-ups on Cluster use sharded pub/sub, one dedicated connection per
// master (see [Store]). A waiter listens on its lock's channel
// and on its Store's inbox channel for that lock (the channel plus ":" and
// a random id per Store, with the same hash tag): a release hands the lock
// to the head of the queue with a message on the head's inbox only, so
// that under contention one process is woken per hand-off, not every
// process waiting on the name.
package rueidisbackend

import (
	"context"
	"errors"

	"github.com/redis/rueidis"

	"github.com/disgolock/disgo/internal/redisstore"
)

// Store is a disgo lock store on a rueidis client. Its methods are safe for
// concurrent use: those of the driver interfaces the package doc lists
// (Acquire, AcquireFair, Release, Extend, Leave, Subscribe,
// SubscribeActive, Inspect, InspectQueue, ExtendBatch, ForceRelease), one
// round trip each, plus:
//
//   - Close closes the Store's pub/sub connections and waits for its
//     goroutines: open subscriptions are woken and later Subscribe calls
//     fail. It does not close the client, and the lock operations keep
//     working on it. It is idempotent.
//   - ActiveSubscriptions returns the number of lock names whose channel
//     the Store holds (or is setting up) a server subscription for,
//     including those that linger for a moment after their last waiter.
//
// Subscriptions share one pub/sub connection, made on first use; on a
// Cluster with sharded pub/sub, one per master, each channel subscribed on
// the master of its slot (read with CLUSTER SLOTS). When a connection
// breaks, or a slot moves, the waiters of its channels are woken and the
// channels still wanted are subscribed again after a backoff (10 ms,
// doubling up to 1 s).
type Store = redisstore.Store

// Options configures a [Store]. The zero value is the default:
//
//   - Prefix starts every key and channel, as Prefix + ":{name}:...".
//     Default "disgo". It must not contain '{' or '}', which would break
//     the hash tag.
//   - FenceRetention is how long the last fencing token of a name is kept
//     after it was issued. Default 7 days. Negative is invalid.
//   - ClassicPubSub selects PUBLISH/SUBSCRIBE, for Redis 6.2 (the oldest
//     the scripts run on). The default, false, uses SPUBLISH/SSUBSCRIBE,
//     which needs Redis 7 or later and works on standalone servers and on
//     Cluster. On Cluster a classic PUBLISH reaches every node, so one
//     connection serves every name, at the cost of sending every release
//     message over the whole cluster bus.
type Options = redisstore.Options

// New returns a Store on client, which stays the caller's to close. It
// sends nothing to the server. It returns an error matching
// locker.ErrInvalidArgument (an *locker.ArgumentError) when client is nil,
// Options.Prefix contains a brace, or Options.FenceRetention is negative.
func New(client rueidis.Client, opts Options) (*Store, error) {
	if client == nil {
		return redisstore.New("rueidisbackend", nil, opts)
	}
	return redisstore.New("rueidisbackend", conn{client}, opts)
}

// conn is the redisstore.Client of a rueidis client.
type conn struct{ c rueidis.Client }

func (c conn) build(cmd redisstore.Cmd) rueidis.Completed {
	return c.c.B().Arbitrary(cmd.Head...).Keys(cmd.Keys...).Args(cmd.Args...).Build()
}

func reply(r rueidis.RedisResult) redisstore.Reply {
	v, err := r.ToAny()
	return redisstore.Reply{Val: v, Err: err}
}

func (c conn) Do(ctx context.Context, cmd redisstore.Cmd) redisstore.Reply {
	return reply(c.c.Do(ctx, c.build(cmd)))
}

func (c conn) DoMulti(ctx context.Context, cmds []redisstore.Cmd) []redisstore.Reply {
	built := make(rueidis.Commands, len(cmds))
	for i, cmd := range cmds {
		built[i] = c.build(cmd)
	}
	out := make([]redisstore.Reply, len(cmds))
	for i, r := range c.c.DoMulti(ctx, built...) {
		out[i] = reply(r)
	}
	return out
}

func (conn) Refused(err error) bool {
	_, ok := rueidis.IsRedisErr(err)
	return ok
}

func (c conn) Cluster() bool { return c.c.Mode() == rueidis.ClientModeCluster }

func (c conn) ClusterSlots(ctx context.Context) (any, string, error) {
	err := errors.New("rueidisbackend: the cluster client knows no node")
	for addr, n := range c.c.Nodes() {
		var v any
		if v, err = n.Do(ctx, n.B().ClusterSlots().Build()).ToAny(); err == nil {
			return v, addr, nil
		}
	}
	return nil, "", err
}

func (c conn) Listen(_ context.Context, addr string, classic bool, ev redisstore.Events) (redisstore.Receiver, error) {
	client := c.c
	if addr != "" {
		if client = c.c.Nodes()[addr]; client == nil {
			return nil, errors.New("rueidisbackend: the cluster client has no connection to master " + addr)
		}
	}
	dc, _ := client.Dedicate() // dc.Close returns the connection to the client
	done := dc.SetPubSubHooks(rueidis.PubSubHooks{
		OnMessage: func(m rueidis.PubSubMessage) { ev.Message(m.Channel, m.Message) },
		OnSubscription: func(s rueidis.PubSubSubscription) {
			ev.Confirmed(s.Channel, s.Kind == "subscribe" || s.Kind == "ssubscribe")
		},
	})
	return receiver{dc, classic, done}, nil
}

// receiver is a dedicated rueidis connection with pub/sub hooks. rueidis'
// keepalive PING, paced by ClientOption.ConnWriteTimeout, finds a silent
// one.
type receiver struct {
	dc      rueidis.DedicatedClient
	classic bool
	done    <-chan error
}

func (r receiver) Write(ctx context.Context, subscribe bool, groups [][]string) []error {
	cmds := make(rueidis.Commands, len(groups))
	for i, g := range groups {
		b := r.dc.B()
		switch {
		case subscribe && r.classic:
			cmds[i] = b.Subscribe().Channel(g...).Build()
		case subscribe:
			cmds[i] = b.Ssubscribe().Channel(g...).Build()
		case r.classic:
			cmds[i] = b.Unsubscribe().Channel(g...).Build()
		default:
			cmds[i] = b.Sunsubscribe().Channel(g...).Build()
		}
	}
	errs := make([]error, len(groups))
	for i, res := range r.dc.DoMulti(ctx, cmds...) {
		errs[i] = res.Error()
	}
	return errs
}

func (r receiver) Done() <-chan error { return r.done }

func (r receiver) Close() { r.dc.Close() }
