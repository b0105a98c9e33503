// Package goredis is the disgo lock store over github.com/redis/go-redis/v9:
// it runs the shared Lua scripts of disgo's Redis protocol on a
// redis.UniversalClient and delivers release wake-ups over one shared
// pub/sub connection.
//
// A [*Store] implements driver.Backend, driver.Queue (fair mode),
// driver.Notifier, driver.Inspector and driver.BatchExtender:
//
//	client := redis.NewClient(&redis.Options{Addr: "localhost:6379", ContextTimeoutEnabled: true})
//	store, err := goredis.New(client, goredis.Options{})
//	...
//	defer store.Close()
//	lk, err := locker.New[string](store, locker.Options[string]{})
//
// Deadlines: go-redis applies a context's deadline to its socket reads and
// writes only when the client has ContextTimeoutEnabled: true. Set it, so
// that the facade's request timeouts and wait times bound every call;
// otherwise a call to an unresponsive server lasts up to the client's
// ReadTimeout (3 s by default), whatever the context says. A lapsed
// deadline is reported as an error matching context.DeadlineExceeded.
//
// Every lock operation is one round trip: an EVALSHA of the script, or an
// EVAL when the server's script cache lacks it (after a restart or SCRIPT
// FLUSH). The Store marks these commands as not retryable, so go-redis
// never resends one on its own after a network error (its MaxRetries does
// not apply to them): a resent release could undo two holds. Retrying is
// the facade's decision.
//
// All keys of one lock name share a hash tag and every key a script touches
// is passed in KEYS, so the scripts run unchanged on Redis Cluster
// (*redis.ClusterClient routes each call by its first key) and behind
// proxies. Wake-ups on Cluster use sharded pub/sub, one connection per
// master node (see [Store.Subscribe]).//
// A waiter listens on its lock's channel and on its Store's inbox channel
// for that lock (the channel plus ":" and a random id per Store, with the
// same hash tag): a release hands the lock to the head of the queue with a
// message on the head's inbox only, so that under contention one process
// is woken per hand-off, not every process waiting on the name.
package goredis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/disgolock/disgo/internal/notifyhub"
	"github.com/disgolock/disgo/internal/rediscore"
	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/locker/driver"
)

// Options configures a [Store]. The zero value is the default.
type Options struct {
	// Prefix starts every key and channel, as Prefix + ":{name}:...".
	// Default: rediscore.DefaultPrefix ("disgo"). It must not contain '{'
	// or '}', which would break the hash tag.
	Prefix string

	// FenceRetention is how long the last fencing token of a name is kept
	// after it was issued. Default: rediscore.DefaultFenceRetention (7
	// days). Negative is invalid.
	FenceRetention time.Duration

	// ClassicPubSub selects PUBLISH/SUBSCRIBE, for Redis 6.2 (the oldest
	// the scripts run on: they use SET ... GET). The
	// default, false, uses SPUBLISH/SSUBSCRIBE, which needs Redis 7 or
	// later and works on standalone servers and on Cluster. On Cluster a
	// classic PUBLISH reaches every node, so one connection serves every
	// name, at the cost of sending every release message over the whole
	// cluster bus; a shard message stays within the owning node.
	ClassicPubSub bool
}

// Store is a disgo lock store on a go-redis client. Its methods are safe for
// concurrent use.
type Store struct {
	client         redis.UniversalClient
	layout         rediscore.Layout
	fenceRetention time.Duration
	publish        string // rediscore.Sharded or rediscore.Classic
	inbox          string // this Store's inbox id: grants to its waiters come on layout.Inbox(name, inbox)
	hub            *notifyhub.Hub
	closeConns     func() error // closes hub and the pub/sub connections feeding it
}

var (
	_ driver.Backend       = (*Store)(nil)
	_ driver.Queue         = (*Store)(nil)
	_ driver.Notifier      = (*Store)(nil)
	_ driver.Inspector     = (*Store)(nil)
	_ driver.Notifier      = (*Store)(nil)
	_ driver.BatchExtender = (*Store)(nil)
	_ driver.ForceReleaser = (*Store)(nil)
)

// The scripts, with the SHA1 digests EVALSHA names them by.
var (
	acquireScript = newScript(rediscore.AcquireLua)
	releaseScript = newScript(rediscore.ReleaseLua)
	extendScript  = newScript(rediscore.ExtendLua)
	leaveScript   = newScript(rediscore.LeaveLua)
	inspectScript = newScript(rediscore.InspectLua)
	queueScript   = newScript(rediscore.InspectQueueLua)
	forceScript   = newScript(rediscore.ForceReleaseLua)
)

// New returns a Store on client, which stays the caller's to close (give it
// ContextTimeoutEnabled: true, see the package doc). It sends nothing to
// the server. It returns an error matching
// locker.ErrInvalidArgument (an *locker.ArgumentError) when client is nil,
// Options.Prefix contains a brace, or Options.FenceRetention is negative.
func New(client redis.UniversalClient, opts Options) (*Store, error) {
	if client == nil {
		return nil, &locker.ArgumentError{Arg: "client", Reason: "nil redis client"}
	}
	cfg, err := rediscore.Resolve(opts.Prefix, opts.FenceRetention, opts.ClassicPubSub)
	if err != nil {
		return nil, err
	}
	s := &Store{
		client:         client,
		layout:         cfg.Layout,
		fenceRetention: cfg.FenceRetention,
		publish:        cfg.Publish,
		inbox:          rediscore.NewInbox(),
	}
	if cc, ok := client.(*redis.ClusterClient); ok && !opts.ClassicPubSub {
		s.hub, s.closeConns = newShards(cc, s.layout.Channel)
	} else {
		s.hub, s.closeConns = newConn(client, opts.ClassicPubSub, s.layout.Channel)
	}
	s.hub.SetInbox(func(name string) string { return s.layout.Inbox(name, s.inbox) })
	return s, nil
}

// Close closes the Store's pub/sub connections and waits for their
// goroutines: open subscriptions are woken and later Subscribe calls fail.
// It does not close the client, and the lock operations keep working on it.
// Close is idempotent.
func (s *Store) Close() error { return s.closeConns() }

// Acquire implements driver.Backend: take or re-enter the lock, ignoring
// the fair queue. One round trip; on ctx cancellation it returns an error
// wrapping ctx.Err() and the attempt may or may not have been applied.
func (s *Store) Acquire(ctx context.Context, req driver.AcquireRequest) (driver.AcquireResult, error) {
	return s.acquire(ctx, "acquire", req, false, 0)
}

// AcquireFair implements driver.Queue: take the lock in queue order, or
// join or keep the queue and renew the ticket's heartbeat. One round trip,
// cancellation as Acquire.
func (s *Store) AcquireFair(ctx context.Context, req driver.AcquireRequest, waiterTTL time.Duration) (driver.AcquireResult, error) {
	return s.acquire(ctx, "acquire fair", req, true, waiterTTL)
}

func (s *Store) acquire(ctx context.Context, op string, req driver.AcquireRequest, fair bool, waiterTTL time.Duration) (driver.AcquireResult, error) {
	args := rediscore.AcquireArgs(req, fair, waiterTTL, s.fenceRetention, s.publish, s.inbox)
	cmd := s.run(ctx, acquireScript, req.Name, args)
	reply, err := cmd.Int64Slice()
	if err != nil {
		return driver.AcquireResult{}, wrap(ctx, op, err)
	}
	res, err := rediscore.ParseAcquire(reply)
	if err != nil {
		return driver.AcquireResult{}, wrap(ctx, op, err)
	}
	return res, nil
}

// Release implements driver.Backend: undo one acquisition by owner (only
// the one that carried ticket, if ticket is not empty). held is false, and
// nothing changed, when owner does not hold the lock. The last release
// publishes the wake-up. One round trip, cancellation as Acquire.
func (s *Store) Release(ctx context.Context, name, owner, ticket string) (held bool, remaining int, err error) {
	n, err := s.run(ctx, releaseScript, name, rediscore.ReleaseArgs(owner, ticket, s.publish, s.fenceRetention)).Int64()
	if err != nil {
		return false, 0, wrap(ctx, "release", err)
	}
	held, remaining = rediscore.ParseRelease(n)
	return held, remaining, nil
}

// Extend implements driver.Backend and renewer.Extender: set the remaining
// lease of a lock owner holds. held is false, and nothing changed, when
// owner does not hold it. One round trip, cancellation as Acquire.
func (s *Store) Extend(ctx context.Context, name, owner string, lease time.Duration) (held bool, err error) {
	n, err := s.run(ctx, extendScript, name, rediscore.ExtendArgs(owner, lease)).Int64()
	if err != nil {
		return false, wrap(ctx, "extend", err)
	}
	return rediscore.ParseExtend(n)
}

// ForceRelease implements driver.ForceReleaser: it ends the holding of name
// whoever holds it and passes the lock on as a final release does, in one
// script; the former owner's next Extend fails with driver.ErrRevoked.
func (s *Store) ForceRelease(ctx context.Context, name string) (held bool, err error) {
	reply, err := s.run(ctx, forceScript, name, rediscore.ForceReleaseArgs(s.publish, s.fenceRetention)).StringSlice()
	if err != nil {
		return false, wrap(ctx, "force release", err)
	}
	return rediscore.ParseForceRelease(reply)
}

// Leave implements driver.Queue: remove ticket from the queue of name,
// waking the new head if that uncovered one of a free lock. Leaving a queue
// one is not in is not an error. One round trip, cancellation as Acquire.
func (s *Store) Leave(ctx context.Context, name, ticket string) error {
	if err := s.run(ctx, leaveScript, name, rediscore.LeaveArgs(ticket, s.publish)).Err(); err != nil {
		return wrap(ctx, "leave", err)
	}
	return nil
}

// Inspect implements driver.Inspector: a read-only snapshot of name, the
// zero State when it is free and nobody waits. One round trip.
func (s *Store) Inspect(ctx context.Context, name string) (driver.State, error) {
	reply, err := s.run(ctx, inspectScript, name, nil).Slice()
	if err != nil {
		return driver.State{}, wrap(ctx, "inspect", err)
	}
	if len(reply) != 5 {
		return driver.State{}, fmt.Errorf("goredis: inspect: reply has %d elements, want 5", len(reply))
	}
	owner, ok := reply[0].(string)
	var n [4]int64
	for i := range n {
		var err error
		switch v := reply[i+1].(type) {
		case int64:
			n[i] = v
		case string: // the fence, exact as a bulk string
			n[i], err = strconv.ParseInt(v, 10, 64)
		default:
			ok = false
		}
		ok = ok && err == nil
	}
	if !ok {
		return driver.State{}, fmt.Errorf("goredis: inspect: unexpected reply %v", reply)
	}
	return rediscore.ParseInspect(owner, n[0], n[1], n[2], n[3]), nil
}

// InspectQueue implements driver.Inspector: the fair queue of name, head
// first, in one read-only script.
func (s *Store) InspectQueue(ctx context.Context, name string) ([]driver.Waiter, error) {
	reply, err := s.run(ctx, queueScript, name, nil).StringSlice()
	if err != nil {
		return nil, wrap(ctx, "inspect queue", err)
	}
	return rediscore.ParseQueue(reply)
}

// ExtendBatch implements driver.BatchExtender: every extension in one
// pipeline (one round trip per node). Items the server could not run get
// their own Err; a script missing from the server's cache is sent once more
// as EVAL, which loads it (nothing ran the first time, so this is no retry
// of the extension). It returns an error only when the batch as a whole
// failed (network, ctx), wrapping ctx.Err() on cancellation.
func (s *Store) ExtendBatch(ctx context.Context, batch []driver.Extension) error {
	todo := make([]int, len(batch))
	for i := range todo {
		todo[i] = i
	}
	for _, verb := range []string{"evalsha", "eval"} {
		if len(todo) == 0 {
			break
		}
		cmds := make([]*redis.Cmd, len(todo))
		pipe := s.client.Pipeline()
		for j, i := range todo {
			e := batch[i]
			cmds[j] = evalCmd(ctx, verb, extendScript, e.Name, s.layout, rediscore.ExtendArgs(e.Owner, e.Lease))
			_ = pipe.Process(ctx, once{cmds[j]})
		}
		_, _ = pipe.Exec(ctx) // errors are read per command below
		var missing []int
		for j, i := range todo {
			n, err := cmds[j].Int64()
			var replyErr redis.Error
			switch {
			case err == nil:
				batch[i].Held, batch[i].Err = rediscore.ParseExtend(n)
			case verb == "evalsha" && isNoScript(err):
				missing = append(missing, i)
			case errors.As(err, &replyErr):
				batch[i].Held, batch[i].Err = false, wrap(ctx, "extend", err)
			default:
				return wrap(ctx, "extend batch", err)
			}
		}
		todo = missing
	}
	return nil
}

// script is one Lua script and its digest.
type script struct {
	src, sha string
}

func newScript(src string) script {
	return script{src: src, sha: redis.NewScript(src).Hash()}
}

// run runs sc on the keys of name in one round trip, or two when the
// server does not have the script cached: EVALSHA, then EVAL on NOSCRIPT
// (the script did not run, so this is no retry).
func (s *Store) run(ctx context.Context, sc script, name string, args []string) *redis.Cmd {
	cmd := evalCmd(ctx, "evalsha", sc, name, s.layout, args)
	_ = s.client.Process(ctx, once{cmd})
	if isNoScript(cmd.Err()) {
		cmd = evalCmd(ctx, "eval", sc, name, s.layout, args)
		_ = s.client.Process(ctx, once{cmd})
	}
	return cmd
}

// evalCmd builds EVAL or EVALSHA of sc with every key of name in KEYS.
func evalCmd(ctx context.Context, verb string, sc script, name string, l rediscore.Layout, args []string) *redis.Cmd {
	keys := l.Keys(name)
	body := sc.sha
	if verb == "eval" {
		body = sc.src
	}
	a := make([]any, 0, 3+len(keys)+len(args))
	a = append(a, verb, body, len(keys))
	for _, k := range keys {
		a = append(a, k)
	}
	for _, v := range args {
		a = append(a, v)
	}
	return redis.NewCmd(ctx, a...)
}

// once is a command that go-redis must send at most once: it does not
// retry it on network errors, whatever the client's MaxRetries.
type once struct{ *redis.Cmd }

// NoRetry tells go-redis not to resend the command.
func (once) NoRetry() bool { return true }

func isNoScript(err error) bool {
	return err != nil && redis.HasErrorPrefix(err, "NOSCRIPT")
}

// wrap names op in a driver error and makes sure the context's error can be
// matched with errors.Is: go-redis reports a lapsed deadline as a network
// timeout, not as context.DeadlineExceeded.
func wrap(ctx context.Context, op string, err error) error {
	cause := ctx.Err()
	if cause == nil {
		if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
			cause = context.DeadlineExceeded
		}
	}
	if cause != nil && !errors.Is(err, cause) {
		return fmt.Errorf("goredis: %s: %w: %w", op, cause, err)
	}
	return fmt.Errorf("goredis: %s: %w", op, err)
}
