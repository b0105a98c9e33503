// Package rueidisbackend is the disgo lock store over
// github.com/redis/rueidis: it runs the shared Lua scripts of disgo's Redis
// protocol on a rueidis.Client and delivers release wake-ups over shared
// pub/sub connections: one to a standalone server, one per master of a
// Redis Cluster.
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
// driver.Notifier (with driver.Notifier, and subscriptions that
// are driver.Subscription), driver.Inspector and driver.BatchExtender.
//
// Every lock operation is one round trip: an EVALSHA of the script, or an
// EVAL when the server's script cache lacks it (after a restart or SCRIPT
// FLUSH). The commands are built not retryable, so rueidis never resends
// one on its own after a network error: a resent release could undo two
// holds. Retrying is the facade's decision. Concurrent operations share the
// client's connections through rueidis' auto-pipelining; nothing here takes
// a dedicated connection for a lock operation (with the client option
// DisableAutoPipelining, rueidis uses a pooled connection per command
// instead, which works too).
//
// All keys of one lock name share a hash tag and every key a script touches
// is passed in KEYS, so the scripts run unchanged on Redis Cluster (give
// rueidis.NewClient the addresses of some of its nodes) and behind proxies.
// Wake-ups on Cluster use sharded pub/sub: each lock's channel lives on the
// master of the lock's slot (see [Store.Subscribe]).//
// A waiter listens on its lock's channel and on its Store's inbox channel
// for that lock (the channel plus ":" and a random id per Store, with the
// same hash tag): a release hands the lock to the head of the queue with a
// message on the head's inbox only, so that under contention one process
// is woken per hand-off, not every process waiting on the name.
//
// Both Redis adapters of disgo share keys, scripts and messages: a lock
// taken through one is seen, waited on and handed over through the other.
package rueidisbackend

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/redis/rueidis"

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
	// later and works on standalone servers and on Cluster.
	ClassicPubSub bool
}

// Store is a disgo lock store on a rueidis client. Its methods are safe for
// concurrent use.
type Store struct {
	client         rueidis.Client
	layout         rediscore.Layout
	fenceRetention time.Duration
	publish        string // rediscore.Sharded or rediscore.Classic
	inbox          string // this Store's inbox id: grants to its waiters come on layout.Inbox(name, inbox)
	hub            *notifyhub.Hub
	closeNotify    func() // closes the hub and its connections
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

// The scripts.
var (
	acquireScript = newScript(rediscore.AcquireLua)
	releaseScript = newScript(rediscore.ReleaseLua)
	extendScript  = newScript(rediscore.ExtendLua)
	leaveScript   = newScript(rediscore.LeaveLua)
	inspectScript = newScript(rediscore.InspectLua)
	queueScript   = newScript(rediscore.InspectQueueLua)
	forceScript   = newScript(rediscore.ForceReleaseLua)
)

// New returns a Store on client, which stays the caller's to close. It
// sends nothing to the server. It returns an error matching
// locker.ErrInvalidArgument (an *locker.ArgumentError) when client is nil,
// Options.Prefix contains a brace, or Options.FenceRetention is negative.
func New(client rueidis.Client, opts Options) (*Store, error) {
	if client == nil {
		return nil, &locker.ArgumentError{Arg: "client", Reason: "nil rueidis client"}
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
	if client.Mode() == rueidis.ClientModeCluster && !opts.ClassicPubSub {
		s.hub, s.closeNotify = newShards(client, s.layout.Channel)
	} else {
		ps := newPubSub(client, opts.ClassicPubSub, s.layout.Channel)
		s.hub, s.closeNotify = ps.hub, ps.close
	}
	s.hub.SetInbox(func(name string) string { return s.layout.Inbox(name, s.inbox) })
	return s, nil
}

// Close closes the Store's pub/sub connections and waits for its
// goroutines: open subscriptions are woken and later Subscribe calls fail.
// It does not close the client, and the lock operations keep working on
// it. Close is idempotent.
func (s *Store) Close() error {
	s.closeNotify()
	return nil
}

// Acquire implements driver.Backend: take or re-enter the lock, ignoring
// the fair queue. One round trip; on ctx cancellation (or deadline) it
// returns an error wrapping ctx.Err() and the attempt may or may not have
// been applied. It then still waits for the server's answer for up to
// 100 ms, so that the caller's next command for the ticket (Leave, or a
// Release that undoes the attempt) runs after it.
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
	sctx, done := settle(ctx)
	reply, err := s.run(sctx, acquireScript, req.Name, args).AsIntSlice()
	done()
	if err == nil {
		err = ctx.Err() // answered after the caller gave up: it will undo the attempt
	}
	if err != nil {
		return driver.AcquireResult{}, wrap(ctx, op, err)
	}
	res, err := rediscore.ParseAcquire(reply)
	if err != nil {
		return driver.AcquireResult{}, wrap(ctx, op, err)
	}
	return res, nil
}

// settleGrace is how long an acquisition waits for the server's answer
// after its ctx ended. rueidis still sends a command whose caller gave up,
// and may send the caller's next one (the Leave, or the Release that
// undoes the attempt) on another of its pipelined connections, where it
// could run first: the ticket would stay queued, or the lock held by a
// caller that left. Waiting for the answer keeps them in order; the grace
// bounds that wait when the server does not answer.
const settleGrace = 100 * time.Millisecond

// settle returns a context with ctx's values that ends settleGrace after
// ctx does, and the function that releases it.
func settle(ctx context.Context) (context.Context, func()) {
	if ctx.Done() == nil {
		return ctx, func() {} // it never ends
	}
	var sctx context.Context
	var cancel context.CancelFunc
	if d, ok := ctx.Deadline(); ok {
		// With a deadline rueidis sends on an idle connection directly,
		// not through its writer goroutine.
		sctx, cancel = context.WithDeadline(context.WithoutCancel(ctx), d.Add(settleGrace))
	} else {
		sctx, cancel = context.WithCancel(context.WithoutCancel(ctx))
	}
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(settleGrace, cancel) })
	return sctx, func() {
		stop()
		cancel()
	}
}

// Release implements driver.Backend: undo one acquisition by owner (only
// the one that carried ticket, if ticket is not empty). held is false, and
// nothing changed, when owner does not hold the lock. The last release
// publishes the wake-up. One round trip, cancellation as Acquire.
func (s *Store) Release(ctx context.Context, name, owner, ticket string) (held bool, remaining int, err error) {
	n, err := s.run(ctx, releaseScript, name, rediscore.ReleaseArgs(owner, ticket, s.publish, s.fenceRetention)).ToInt64()
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
	n, err := s.run(ctx, extendScript, name, rediscore.ExtendArgs(owner, lease)).ToInt64()
	if err != nil {
		return false, wrap(ctx, "extend", err)
	}
	return rediscore.ParseExtend(n)
}

// ForceRelease implements driver.ForceReleaser: it ends the holding of name
// whoever holds it and passes the lock on as a final release does, in one
// script; the former owner's next Extend fails with driver.ErrRevoked.
func (s *Store) ForceRelease(ctx context.Context, name string) (held bool, err error) {
	reply, err := s.run(ctx, forceScript, name, rediscore.ForceReleaseArgs(s.publish, s.fenceRetention)).AsStrSlice()
	if err != nil {
		return false, wrap(ctx, "force release", err)
	}
	return rediscore.ParseForceRelease(reply)
}

// Leave implements driver.Queue: remove ticket from the queue of name,
// waking the new head if that uncovered one of a free lock. Leaving a queue
// one is not in is not an error. One round trip, cancellation as Acquire.
func (s *Store) Leave(ctx context.Context, name, ticket string) error {
	if err := s.run(ctx, leaveScript, name, rediscore.LeaveArgs(ticket, s.publish)).Error(); err != nil {
		return wrap(ctx, "leave", err)
	}
	return nil
}

// Inspect implements driver.Inspector: a read-only snapshot of name, the
// zero State when it is free and nobody waits. One round trip.
func (s *Store) Inspect(ctx context.Context, name string) (driver.State, error) {
	reply, err := s.run(ctx, inspectScript, name, nil).ToArray()
	if err != nil {
		return driver.State{}, wrap(ctx, "inspect", err)
	}
	if len(reply) != 5 {
		return driver.State{}, fmt.Errorf("rueidisbackend: inspect: reply has %d elements, want 5", len(reply))
	}
	owner, err := reply[0].ToString()
	var n [4]int64
	for i := range n {
		if err == nil {
			n[i], err = reply[i+1].AsInt64() // the fence comes as a bulk string
		}
	}
	if err != nil {
		return driver.State{}, fmt.Errorf("rueidisbackend: inspect: unexpected reply: %w", err)
	}
	return rediscore.ParseInspect(owner, n[0], n[1], n[2], n[3]), nil
}

// InspectQueue implements driver.Inspector: the fair queue of name, head
// first, in one read-only script.
func (s *Store) InspectQueue(ctx context.Context, name string) ([]driver.Waiter, error) {
	reply, err := s.run(ctx, queueScript, name, nil).AsStrSlice()
	if err != nil {
		return nil, wrap(ctx, "inspect queue", err)
	}
	return rediscore.ParseQueue(reply)
}

// ExtendBatch implements driver.BatchExtender: every extension in one
// DoMulti of EVALSHA commands (one round trip per node; rueidis splits the
// batch by node on a cluster client). Items the server could not run get
// their own Err; items whose script was missing from the server's cache
// are sent once more as EVAL, which loads it (nothing ran the first time,
// so this is no retry of the extension). It returns an error only when the
// batch as a whole failed (network, ctx), wrapping ctx.Err() on
// cancellation.
//
// It does not use rueidis' Lua.ExecMulti, which sends SCRIPT LOAD to every
// node before each batch: two round trips instead of one.
func (s *Store) ExtendBatch(ctx context.Context, batch []driver.Extension) error {
	todo := make([]int, len(batch))
	for i := range todo {
		todo[i] = i
	}
	for _, cached := range []bool{true, false} {
		if len(todo) == 0 {
			break
		}
		cmds := make(rueidis.Commands, len(todo))
		for j, i := range todo {
			e := batch[i]
			cmds[j] = extendScript.command(s.client, cached, s.layout.Keys(e.Name), rediscore.ExtendArgs(e.Owner, e.Lease))
		}
		results := s.client.DoMulti(ctx, cmds...)
		var missing []int
		for j, i := range todo {
			n, err := results[j].ToInt64()
			replyErr, isReply := rueidis.IsRedisErr(err)
			switch {
			case err == nil:
				batch[i].Held, batch[i].Err = rediscore.ParseExtend(n)
			case cached && isReply && replyErr.IsNoScript():
				missing = append(missing, i)
			case isReply:
				batch[i].Held, batch[i].Err = false, wrap(ctx, "extend", err)
			default:
				return wrap(ctx, "extend batch", err)
			}
		}
		todo = missing
	}
	return nil
}

// script is one Lua script: rueidis' runner for single calls, and the
// digest to build EVALSHA commands of batches.
type script struct {
	lua *rueidis.Lua
	src string
	sha string
}

func newScript(src string) script {
	sum := sha1.Sum([]byte(src))
	return script{lua: rueidis.NewLuaScript(src), src: src, sha: hex.EncodeToString(sum[:])}
}

// command builds an EVALSHA (cached) or EVAL of sc, not retryable.
func (sc script) command(c rueidis.Client, cached bool, keys, args []string) rueidis.Completed {
	if cached {
		return c.B().Evalsha().Sha1(sc.sha).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
	}
	return c.B().Eval().Script(sc.src).Numkeys(int64(len(keys))).Key(keys...).Arg(args...).Build()
}

// run runs sc on every key of name in one round trip, or two when the
// server does not have the script cached: rueidis sends EVALSHA, then EVAL
// on NOSCRIPT (the script did not run, so this is no retry).
func (s *Store) run(ctx context.Context, sc script, name string, args []string) rueidis.RedisResult {
	return sc.lua.Exec(ctx, s.client, s.layout.Keys(name), args)
}

// wrap names op in a driver error and makes sure the context's error can be
// matched with errors.Is even when rueidis reports a lapsed deadline as a
// network timeout.
func wrap(ctx context.Context, op string, err error) error {
	cause := ctx.Err()
	if cause == nil {
		if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
			cause = context.DeadlineExceeded
		}
	}
	if cause != nil && !errors.Is(err, cause) {
		return fmt.Errorf("rueidisbackend: %s: %w: %w", op, cause, err)
	}
	return fmt.Errorf("rueidisbackend: %s: %w", op, err)
}
