// Package goredis is the disgo lock store over github.com/redis/go-redis/v9:
// it runs disgo's Redis store (its Lua scripts and pub/sub wake-ups) on a
// redis.UniversalClient.
//
//	client := redis.NewClient(&redis.Options{Addr: "localhost:6379", ContextTimeoutEnabled: true})
//	store, err := goredis.New(client, goredis.Options{})
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
// Deadlines: go-redis applies a context's deadline to its socket reads and
// writes only when the client has ContextTimeoutEnabled: true. Set it, so
// that the facade's request timeouts and wait times bound every call;
// otherwise a call to an unresponsive server lasts up to the client's
// ReadTimeout (3 s by default), whatever the context says. A lapsed
// deadline is reported as an error matching context.DeadlineExceeded. An
// acquisition whose context ended still waits up to 100 ms for the
// server's answer, so that the caller's clean-up of it runs after it.
//
// Every lock operation is one round trip: an EVALSHA of the script, or an
// EVAL when the server's script cache lacks it (after a restart or SCRIPT
// FLUSH). The Store marks these commands as not retryable, so go-redis
// never resends one on its own after a network error (its MaxRetries does
// not apply to them): a resent release could undo two holds. Retrying is
// the facade's decision. ExtendBatch sends one pipeline.
//
// Batching: while fewer than 4 of a Store's lock commands are in flight,
// each is sent on its own, as above. Beyond that, further commands queue, and whenever one of those requests completes,
// the queue goes out as one pipeline (one write and one read on one pooled
// connection), which under load saves the client and the server a system
// call or two per command. A queued command keeps its own context: if it
// ends while the command waits in the queue, the caller returns its error
// at once and the command is never sent. Once a command is in a pipeline,
// its caller waits for the pipeline's answer, so that nothing the caller
// does next overtakes the command; a pipeline ends at the earliest deadline
// among its commands, and a command with less than 50 ms left when the
// pipeline forms is sent on its own instead. go-redis hooks see these
// pipelines (ProcessPipelineHook), with the first command's context
// values; a hook that panics in one fails its commands with an error
// rather than the process. A pipeline is never resent after a network
// error. A *redis.Client batches, whether standalone or made by
// NewFailoverClient (a pipeline goes to the current master, as a command
// does); Cluster and Ring clients send every command on its own.
//
// All keys of one lock name share a hash tag and every key a script touches
// is passed in KEYS, so the scripts run unchanged on Redis Cluster
// (*redis.ClusterClient routes each call by its first key) and behind
// proxies. Wake-ups on Cluster use sharded pub/sub, one connection per
// master (see [Store]); go-redis' own resubscription after a
// reconnect is not used, since it would send the channels of several slots
// in one command. A waiter listens on its lock's channel and on its
// Store's inbox channel for that lock (the channel plus ":" and a random id
// per Store, with the same hash tag): a release hands the lock to the head
// of the queue with a message on the head's inbox only, so that under
// contention one process is woken per hand-off, not every process waiting
// on the name.
package goredis

import (
	"context"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/disgolock/disgo/internal/redisstore"
	"github.com/disgolock/disgo/locker"
)

// Store is a disgo lock store on a go-redis client. Its methods are safe for
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

// New returns a Store on client, which stays the caller's to close (give it
// ContextTimeoutEnabled: true, see the package doc). It sends nothing to
// the server. It returns an error matching locker.ErrInvalidArgument (an
// *locker.ArgumentError) when client is nil or a *redis.AutoPipeliner,
// Options.Prefix contains a brace, or Options.FenceRetention is negative.
//
// An AutoPipeliner is refused because it does not end a command at its
// context's deadline (on a stopped server a call waited for its socket
// timeout, 35 s, not its 200 ms deadline), and it hides a Cluster client's
// topology from the Store. Give New its client.
func New(client redis.UniversalClient, opts Options) (*Store, error) {
	if _, ok := client.(*redis.AutoPipeliner); ok {
		return nil, &locker.ArgumentError{Arg: "client", Reason: "a *redis.AutoPipeliner does not bound its calls by their context; pass its client"}
	}
	var c redisstore.Client // nil for a nil client
	if client != nil {
		c = newConn(client)
	}
	return redisstore.New("goredis", c, opts)
}

// conn is the redisstore.Client of a go-redis client.
type conn struct {
	c redis.UniversalClient
	b *batcher // sends Do's commands; nil: each on its own
}

// newConn returns the conn of client, batching on a *redis.Client only: a
// Cluster or Ring client routes each command by its key.
func newConn(client redis.UniversalClient) conn {
	c := conn{c: client}
	if rc, ok := client.(*redis.Client); ok {
		c.b = newBatcher(rc)
	}
	return c
}

func command(ctx context.Context, cmd redisstore.Cmd) once {
	a := make([]any, 0, len(cmd.Head)+len(cmd.Keys)+len(cmd.Args))
	for _, part := range [][]string{cmd.Head, cmd.Keys, cmd.Args} {
		for _, s := range part {
			a = append(a, s)
		}
	}
	return once{redis.NewCmd(ctx, a...)}
}

func reply(c once) redisstore.Reply {
	v, err := c.Result()
	return redisstore.Reply{Val: v, Err: err}
}

func (c conn) Do(ctx context.Context, cmd redisstore.Cmd) redisstore.Reply {
	rc := command(ctx, cmd)
	if c.b != nil {
		_ = c.b.process(ctx, rc)
	} else {
		_ = c.c.Process(ctx, rc)
	}
	return reply(rc)
}

func (c conn) DoMulti(ctx context.Context, cmds []redisstore.Cmd) []redisstore.Reply {
	pipe := c.c.Pipeline()
	rcs := make([]once, len(cmds))
	for i, cmd := range cmds {
		rcs[i] = command(ctx, cmd)
		_ = pipe.Process(ctx, rcs[i])
	}
	_, _ = pipe.Exec(ctx) // errors are read per command
	out := make([]redisstore.Reply, len(cmds))
	for i, rc := range rcs {
		out[i] = reply(rc)
	}
	return out
}

func (conn) Refused(err error) bool {
	var e redis.Error
	return errors.As(err, &e)
}

func (c conn) Cluster() bool {
	_, ok := c.c.(*redis.ClusterClient)
	return ok
}

func (c conn) ClusterSlots(ctx context.Context) (any, string, error) {
	node, err := c.c.(*redis.ClusterClient).MasterForKey(ctx, "")
	if err != nil {
		return nil, "", err
	}
	v, err := node.Do(ctx, "CLUSTER", "SLOTS").Result()
	return v, node.Options().Addr, err
}

func (c conn) Listen(ctx context.Context, addr string, classic bool, ev redisstore.Events) (redisstore.Receiver, error) {
	// Without channels, none of these touches the network.
	r := &receiver{classic: classic, ev: ev, done: make(chan error)}
	switch cc, _ := c.c.(*redis.ClusterClient); {
	case addr == "" && classic:
		r.ps = c.c.Subscribe(context.Background())
	case addr == "":
		r.ps = c.c.SSubscribe(context.Background())
	default:
		var mu sync.Mutex
		_ = cc.ForEachMaster(ctx, func(_ context.Context, n *redis.Client) error {
			if n.Options().Addr == addr {
				mu.Lock()
				r.ps = n.SSubscribe(context.Background())
				mu.Unlock()
			}
			return nil
		})
		if r.ps == nil {
			cc.ReloadState(ctx)
			return nil, errors.New("goredis: the cluster client knows no master " + addr)
		}
		r.reload = cc.ReloadState
	}
	go r.receive()
	return r, nil
}

// pingInterval is how long a pub/sub connection may be silent before it is
// probed with a PING.
const pingInterval = 3 * time.Second

// receiver is one go-redis pub/sub connection, read by its own goroutine.
type receiver struct {
	ps      *redis.PubSub
	classic bool
	ev      redisstore.Events
	reload  func(context.Context) // reloads the cluster client's slot map; nil when standalone
	done    chan error
}

func (r *receiver) Write(ctx context.Context, subscribe bool, groups [][]string) []error {
	write := r.ps.SSubscribe
	switch {
	case r.classic && subscribe:
		write = r.ps.Subscribe
	case r.classic:
		write = r.ps.Unsubscribe
	case !subscribe:
		write = r.ps.SUnsubscribe
	}
	errs := make([]error, len(groups))
	for i, g := range groups {
		errs[i] = write(ctx, g...)
	}
	return errs
}

func (r *receiver) Done() <-chan error { return r.done }

func (r *receiver) Close() { _ = r.ps.Close() }

// receive reads the connection until it fails or is closed.
func (r *receiver) receive() {
	defer close(r.done)
	ctx := context.Background() // a cancelled context would make go-redis drop the connection
	for {
		msg, err := r.ps.ReceiveTimeout(ctx, pingInterval)
		var netErr net.Error
		switch m := msg.(type) {
		case *redis.Message:
			r.ev.Message(m.Channel, m.Payload)
		case *redis.Subscription:
			r.ev.Confirmed(m.Channel, m.Kind == "subscribe" || m.Kind == "ssubscribe")
		}
		switch {
		case err == nil:
		case errors.As(err, &netErr) && netErr.Timeout():
			_ = r.ps.Ping(ctx) // idle: probe; the pong arrives as a message
		default:
			// Closed, failed, or an error reply: MOVED (the slot map
			// changed) or CROSSSLOT (go-redis resubscribed after a
			// reconnect). go-redis would restore the connection itself.
			if (conn{}).Refused(err) && r.reload != nil {
				r.reload(ctx)
			}
			_ = r.ps.Close()
			return
		}
	}
}

// once is a command that go-redis must send at most once: it does not
// retry it on network errors, whatever the client's MaxRetries.
type once struct{ *redis.Cmd }

// NoRetry tells go-redis not to resend the command.
func (once) NoRetry() bool { return true }
