// Package redisstore is the disgo lock store on Redis, written once for
// both Redis adapters: it runs the scripts of internal/rediscore, decodes
// their replies, batches extensions with the NOSCRIPT fallback, and shares
// pub/sub connections among waiters through internal/notifyhub, routing
// shard channels across the masters of a Redis Cluster. An adapter
// (backend/goredis, backend/rueidis) only implements [Client] and
// [Receiver] on its own client library and calls [New].
package redisstore

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/disgolock/disgo/internal/notifyhub"
	"github.com/disgolock/disgo/internal/rediscore"
	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/locker/driver"
)

// Cmd is one command: Head (the command name and the arguments before the
// keys), the Keys (a cluster client routes the command by them; all of one
// command share a hash tag) and the Args after them.
type Cmd struct {
	Head, Keys, Args []string
}

// Reply is the answer to one Cmd: Val as plain Go values (int64, string,
// []any, nil), or Err: an error reply of the server (see Client.Refused),
// or a failure to send or read.
type Reply struct {
	Val any
	Err error
}

// Client is a Redis client as the Store uses it. Its methods are safe for
// concurrent use. The client must never resend a command on its own (after
// a network error it cannot know whether the server ran it).
type Client interface {
	// Do sends cmd in one round trip.
	Do(ctx context.Context, cmd Cmd) Reply
	// DoMulti sends cmds in one pipeline: one round trip per node.
	DoMulti(ctx context.Context, cmds []Cmd) []Reply
	// Refused reports whether err is an error reply of the server (the
	// command reached it and was refused), as opposed to a failure of the
	// connection or the context.
	Refused(err error) bool
	// Cluster reports whether the client is a Redis Cluster client.
	Cluster() bool
	// ClusterSlots sends CLUSTER SLOTS to a node of the cluster and returns
	// its reply as plain Go values and the address of the node.
	ClusterSlots(ctx context.Context) (reply any, from string, err error)
	// Listen returns a new pub/sub connection, which feeds what it reads to
	// ev, using PUBLISH/SUBSCRIBE when classic, sharded pub/sub otherwise.
	// addr is the master to connect to on a Cluster with sharded pub/sub;
	// otherwise it is "", for the client's server or any node of the
	// Cluster.
	Listen(ctx context.Context, addr string, classic bool, ev Events) (Receiver, error)
}

// Events takes what a pub/sub connection reads (a *notifyhub.Hub). Its
// methods never block.
type Events interface {
	Message(channel, payload string)
	Confirmed(channel string, subscribed bool)
}

// Receiver is one pub/sub connection. It keeps its connection alive (an
// idle one is probed) and never restores a broken one: it ends, and the
// Store routes its channels again.
type Receiver interface {
	// Write sends one (S)SUBSCRIBE, or (S)UNSUBSCRIBE, per group of
	// channels, in one round trip, and returns an error per group: nil once
	// written (a client may wait for the server's first confirmation), a
	// refusal of the server, or a failure that leaves the connection in an
	// unknown state. The confirmations go to Events.
	Write(ctx context.Context, subscribe bool, groups [][]string) []error
	// Done is closed once the connection failed or was closed; Events get
	// nothing after that.
	Done() <-chan error
	// Close closes the connection. It is idempotent.
	Close()
}

// Options configures a Store. The zero value is the default.
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
	// the scripts run on: they use SET ... GET). The default, false, uses
	// SPUBLISH/SSUBSCRIBE, which needs Redis 7 or later and works on
	// standalone servers and on Cluster. On Cluster a classic PUBLISH
	// reaches every node, so one connection serves every name, at the cost
	// of sending every release message over the whole cluster bus; a shard
	// message stays within the owning node.
	ClassicPubSub bool

	// Logger receives the Store's background events: a pub/sub connection
	// lost (Warn, with the number of channels it held and the backoff
	// before they are subscribed again) and its channels being subscribed
	// again (Info). Lock operations report their errors to the caller and
	// are not logged. Default: nil, silent.
	Logger *slog.Logger
}

// Store is a disgo lock store on a Redis client. It implements
// driver.Backend, driver.Queue, driver.Notifier, driver.Inspector,
// driver.BatchExtender and driver.ForceReleaser for mutexes, and
// driver.RWLocker and driver.Semaphorer, whose views (see View) implement
// the same for read-write locks and semaphores. Its methods are safe for
// concurrent use.
type Store struct {
	name           string // of the adapter, starting every error
	client         Client
	layout         rediscore.Layout
	fenceRetention time.Duration
	publish        string // rediscore.Sharded or rediscore.Classic
	inbox          string // grants to this Store's waiters come on layout.Inbox(name, inbox)
	hub            *notifyhub.Hub
	router         *router
	read, write    *View // see RWLocks
	sem            *View // see Semaphores
}

var (
	_ driver.Backend       = (*Store)(nil)
	_ driver.Queue         = (*Store)(nil)
	_ driver.Notifier      = (*Store)(nil)
	_ driver.Inspector     = (*Store)(nil)
	_ driver.BatchExtender = (*Store)(nil)
	_ driver.ForceReleaser = (*Store)(nil)
)

// script is one Lua script, as the heads of its EVALSHA and EVAL commands
// (shared, never changed).
type script struct {
	evalsha, eval []string
}

func newScript(src string) script { return newScriptN(src, rediscore.NumKeys) }

// newScriptN is newScript for a script of numKeys keys.
func newScriptN(src string, numKeys int) script {
	sum := sha1.Sum([]byte(src))
	n := strconv.Itoa(numKeys)
	return script{evalsha: []string{"EVALSHA", hex.EncodeToString(sum[:]), n}, eval: []string{"EVAL", src, n}}
}

var (
	acquireScript      = newScript(rediscore.AcquireLua)
	releaseScript      = newScript(rediscore.ReleaseLua)
	extendScript       = newScript(rediscore.ExtendLua)
	leaveScript        = newScript(rediscore.LeaveLua)
	inspectScript      = newScript(rediscore.InspectLua)
	inspectQueueScript = newScript(rediscore.InspectQueueLua)
	forceScript        = newScript(rediscore.ForceReleaseLua)
)

// New returns a Store on client; name (the adapter's package name) starts
// its errors. It sends nothing to the server. It returns an error matching
// locker.ErrInvalidArgument (an *locker.ArgumentError) when client is nil,
// Options.Prefix contains a brace or Options.FenceRetention is negative.
func New(name string, client Client, opts Options) (*Store, error) {
	if client == nil {
		return nil, &locker.ArgumentError{Arg: "client", Reason: "nil " + name + " client"}
	}
	cfg, err := rediscore.Resolve(opts.Prefix, opts.FenceRetention, opts.ClassicPubSub)
	if err != nil {
		return nil, err
	}
	s := &Store{
		name:           name,
		client:         client,
		layout:         cfg.Layout,
		fenceRetention: cfg.FenceRetention,
		publish:        cfg.Publish,
		inbox:          rediscore.NewInbox(),
	}
	s.router = newRouter(name, client, opts.ClassicPubSub)
	s.router.log = opts.Logger
	// The hub takes the hub names of every kind (see hubName and View).
	s.hub = notifyhub.New(s.router, s.hubChannel)
	s.router.hub = s.hub
	s.hub.SetInbox(func(h string) string { return s.hubChannel(h) + ":" + s.inbox })
	newViews(s)
	return s, nil
}

// Settings returns the resolved settings of s, for tests.
func Settings(s *Store) rediscore.Settings {
	return rediscore.Settings{Layout: s.layout, FenceRetention: s.fenceRetention, Publish: s.publish}
}

// Close closes the Store's pub/sub connections and waits for its
// goroutines: open subscriptions are woken and later Subscribe calls fail.
// It does not close the client, and the lock operations keep working on
// it. Close is idempotent.
func (s *Store) Close() error {
	s.router.close()
	return nil
}

// Acquire implements driver.Backend: take or re-enter the lock, ignoring
// the fair queue. One round trip. On ctx cancellation (or deadline) it
// returns an error wrapping ctx.Err() and the attempt may or may not have
// been applied; it then still waits up to settleGrace (100 ms) for the
// server's answer, so that the caller's clean-up of the attempt (Leave, or
// a Release with its ticket) runs after it.
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
	v, err := s.run(sctx, acquireScript, req.Name, args)
	done()
	if err == nil {
		err = ctx.Err() // answered after the caller gave up: it will undo the attempt
	}
	var buf [4]int64 // the longest reply
	reply := buf[:0]
	if a, _ := v.([]any); err == nil && len(a) <= len(buf) {
		reply = buf[:len(a)]
		err = decode(reply, a)
	}
	var res driver.AcquireResult
	if err == nil {
		res, err = rediscore.ParseAcquire(reply)
	}
	if err != nil {
		return driver.AcquireResult{}, s.wrap(ctx, op, err)
	}
	return res, nil
}

// settleGrace is how long an acquisition waits for the server's answer
// after its ctx ended. A client may still send a command whose caller gave
// up, and send the caller's next one (the Leave, or the Release that undoes
// the attempt) on another connection, where it could run first: the ticket
// would stay queued, or the lock held by a caller that left. Waiting for
// the answer keeps them in order; the grace bounds that wait when the
// server does not answer.
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
		// Clients bound their socket reads by the deadline.
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
// publishes the wake-up. One round trip; on ctx cancellation it returns an
// error wrapping ctx.Err().
func (s *Store) Release(ctx context.Context, name, owner, ticket string) (held bool, remaining int, err error) {
	v, err := s.run(ctx, releaseScript, name, rediscore.ReleaseArgs(owner, ticket, s.publish, s.fenceRetention))
	n, err := integer(v, err)
	if err != nil {
		return false, 0, s.wrap(ctx, "release", err)
	}
	held, remaining = rediscore.ParseRelease(n)
	return held, remaining, nil
}

// Extend implements driver.Backend: set the remaining lease of a lock owner
// holds. held is false, and nothing changed, when owner does not hold it;
// the error then matches driver.ErrRevoked if an operator forced the
// owner's holding out (see ForceRelease). One round trip, cancellation as
// Release.
func (s *Store) Extend(ctx context.Context, name, owner string, lease time.Duration) (held bool, err error) {
	n, err := integer(s.run(ctx, extendScript, name, rediscore.ExtendArgs(owner, lease)))
	if err != nil {
		return false, s.wrap(ctx, "extend", err)
	}
	return rediscore.ParseExtend(n)
}

// ForceRelease implements driver.ForceReleaser: it ends the holding of name
// whoever holds it and passes the lock on as a final release does, in one
// script; the former owner's next Extend fails with driver.ErrRevoked.
func (s *Store) ForceRelease(ctx context.Context, name string) (held bool, err error) {
	v, err := s.run(ctx, forceScript, name, rediscore.ForceReleaseArgs(s.publish, s.fenceRetention))
	var reply []string
	if err == nil {
		reply, err = strs(v)
	}
	if err != nil {
		return false, s.wrap(ctx, "force release", err)
	}
	return rediscore.ParseForceRelease(reply)
}

// Leave implements driver.Queue: remove ticket from the queue of name,
// waking the new head if that uncovered one of a free lock. Leaving a queue
// one is not in is not an error. One round trip, cancellation as Release.
func (s *Store) Leave(ctx context.Context, name, ticket string) error {
	if _, err := s.run(ctx, leaveScript, name, rediscore.LeaveArgs(ticket, s.publish)); err != nil {
		return s.wrap(ctx, "leave", err)
	}
	return nil
}

// Inspect implements driver.Inspector: a read-only snapshot of name, the
// zero State when it is free and nobody waits. One round trip.
func (s *Store) Inspect(ctx context.Context, name string) (driver.State, error) {
	v, err := s.run(ctx, inspectScript, name, nil)
	if err != nil {
		return driver.State{}, s.wrap(ctx, "inspect", err)
	}
	a, _ := v.([]any)
	if len(a) != 5 {
		return driver.State{}, fmt.Errorf("%s: inspect: unexpected reply %v", s.name, v)
	}
	owner, ok := a[0].(string)
	var n [4]int64
	if err := decode(n[:], a[1:]); !ok || err != nil {
		return driver.State{}, fmt.Errorf("%s: inspect: unexpected reply %v", s.name, v)
	}
	return rediscore.ParseInspect(owner, n[0], n[1], n[2], n[3]), nil
}

// InspectQueue implements driver.Inspector: the fair queue of name in
// queue order, head first, with each waiter's owner, heartbeat TTL and time
// left until its heartbeat deadline by the server's clock; empty when
// nobody waits. It is read-only (lapsed waiters are listed until an
// operation evicts them) and one round trip, for operators: the queue may
// change right after.
func (s *Store) InspectQueue(ctx context.Context, name string) ([]driver.Waiter, error) {
	v, err := s.run(ctx, inspectQueueScript, name, nil)
	if err != nil {
		return nil, s.wrap(ctx, "inspect queue", err)
	}
	reply, err := strs(v)
	if err != nil {
		return nil, fmt.Errorf("%s: inspect queue: %w", s.name, err)
	}
	waiters, err := rediscore.ParseQueue(reply)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.name, err)
	}
	return waiters, nil
}

// ExtendBatch implements driver.BatchExtender: every extension in one
// pipeline of EVALSHA commands (one round trip per node). Items the server
// could not run get their own Err; items whose script was missing from the
// server's cache are sent once more as EVAL, which loads it (nothing ran
// the first time, so this is no retry of the extension). It returns an
// error only when the batch as a whole failed (network, ctx), wrapping
// ctx.Err() on cancellation.
func (s *Store) ExtendBatch(ctx context.Context, batch []driver.Extension) error {
	return s.extendBatch(ctx, batch, extendScript, s.layout.Keys, func(e driver.Extension) []string {
		return rediscore.ExtendArgs(e.Owner, e.Lease)
	})
}

// extendBatch runs the extend script sc of every item of batch on the keys
// of its name, as ExtendBatch describes.
func (s *Store) extendBatch(ctx context.Context, batch []driver.Extension, sc script, keys func(name string) []string, args func(driver.Extension) []string) error {
	todo := make([]int, len(batch))
	for i := range todo {
		todo[i] = i
	}
	for _, cached := range []bool{true, false} {
		if len(todo) == 0 {
			break
		}
		head := sc.evalsha
		if !cached {
			head = sc.eval
		}
		cmds := make([]Cmd, len(todo))
		for j, i := range todo {
			e := batch[i]
			cmds[j] = Cmd{Head: head, Keys: keys(e.Name), Args: args(e)}
		}
		replies := s.client.DoMulti(ctx, cmds)
		var missing []int
		for j, i := range todo {
			n, err := integer(replies[j].Val, replies[j].Err)
			switch {
			case err == nil:
				batch[i].Held, batch[i].Err = rediscore.ParseExtend(n)
			case cached && s.noScript(err):
				missing = append(missing, i)
			case s.client.Refused(err):
				batch[i].Held, batch[i].Err = false, s.wrap(ctx, "extend", err)
			default:
				return s.wrap(ctx, "extend batch", err)
			}
		}
		todo = missing
	}
	return nil
}

// run runs sc on the keys of name in one round trip, or two when the
// server does not have the script cached: EVALSHA, then EVAL on NOSCRIPT
// (the script did not run, so this is no retry).
func (s *Store) run(ctx context.Context, sc script, name string, args []string) (any, error) {
	return s.runKeys(ctx, sc, s.layout.Keys(name), args)
}

// runKeys is run on the given keys.
func (s *Store) runKeys(ctx context.Context, sc script, keys, args []string) (any, error) {
	cmd := Cmd{Head: sc.evalsha, Keys: keys, Args: args}
	r := s.client.Do(ctx, cmd)
	if s.noScript(r.Err) {
		cmd.Head = sc.eval
		r = s.client.Do(ctx, cmd)
	}
	return r.Val, r.Err
}

func (s *Store) noScript(err error) bool {
	return err != nil && s.client.Refused(err) && strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// integer decodes an integer reply: an int64, or a decimal string
// (fencing tokens come as bulk strings, exact).
func integer(v any, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	switch v := v.(type) {
	case int64:
		return v, nil
	case string:
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n, nil
		}
	}
	return 0, fmt.Errorf("unexpected reply %v", v)
}

// strs decodes an array reply of strings.
func strs(v any) ([]string, error) {
	a, ok := v.([]any)
	out := make([]string, len(a))
	for i, e := range a {
		if out[i], ok = e.(string); !ok {
			break
		}
	}
	if !ok {
		return nil, fmt.Errorf("unexpected reply %v", v)
	}
	return out, nil
}

// decode decodes an array reply of len(dst) integers into dst.
func decode(dst []int64, a []any) error {
	if len(a) != len(dst) {
		return fmt.Errorf("unexpected reply %v", a)
	}
	for i, e := range a {
		n, err := integer(e, nil)
		if err != nil {
			return fmt.Errorf("unexpected reply %v", a)
		}
		dst[i] = n
	}
	return nil
}

// wrap names op in an error of the adapter and makes sure the context's
// error can be matched with errors.Is even when the client reports a
// lapsed deadline as a network timeout.
func (s *Store) wrap(ctx context.Context, op string, err error) error {
	cause := ctx.Err()
	if cause == nil {
		if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
			cause = context.DeadlineExceeded
		}
	}
	if cause != nil && !errors.Is(err, cause) {
		return fmt.Errorf("%s: %s: %w: %w", s.name, op, cause, err)
	}
	return fmt.Errorf("%s: %s: %w", s.name, op, err)
}
