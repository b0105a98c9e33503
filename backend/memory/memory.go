// Package memory is disgo's in-memory reference backend: one lock store
// kept in the process, with exactly the semantics of the Redis scripts in
// internal/rediscore/lua. It is the embedded default for examples and for
// unit tests of code that takes locks, and it passes the conformance suite.
//
// A [Store] is the "server". It implements driver.Backend, driver.Queue,
// driver.Notifier, driver.Inspector, driver.BatchExtender,
// driver.ForceReleaser, driver.RWLocker and driver.Semaphorer itself, so
// memory.New() can be passed straight to locker.New, locker.NewRW and
// locker.NewSemaphore. [Store.Client] hands
// out further independent views of the same store, each behaving like a
// separate process with its own subscriptions, which a test can [Client.Kill]
// to simulate a crash, or [Client.Stall] to simulate a process pause.
//
// The rules, as in Redis:
//
//   - A lock is {owner, hold count, fencing token, ticket of the latest
//     acquisition, lease expiry}. Expiry is checked lazily against the
//     store's clock: an expired lock is free. A lock is alive up to and
//     including its expiry instant (Redis keeps a key alive at its expiry
//     millisecond).
//   - A re-entry counts once per distinct ticket and never shortens the
//     lease.
//   - A fair attempt with a zero waiter TTL honours the queue but does not
//     join it and wakes nobody (TryLock in fair mode).
//   - Fair mode follows package fairqueue: lapsed waiters are evicted first
//     (barging attempts and re-entries evict nobody); a free lock goes to
//     the head (or to anyone when the queue is empty); otherwise the ticket
//     joins or keeps its place with a heartbeat deadline of now+waiterTTL,
//     recording on joining its grant: its owner and min(lease, waiterTTL).
//     An abandoned queue (everybody lapsed, nobody touching the name)
//     vanishes one second after its latest heartbeat deadline, like the
//     Redis queue keys.
//   - The final release evicts lapsed waiters and hands the lock straight
//     to the head ticket (direct grant): its owner holds it with count 1, a
//     fresh fencing token, the ticket as latest acquisition and the lease
//     recorded in its grant, and the message "<ticket> <fence>" tells it so
//     (see driver.Subscription). The grantee claims the grant by an attempt with
//     its ticket (an idempotent re-entry), or undoes it with a release
//     scoped to its ticket. With an empty queue the release frees the lock
//     and wakes every waiter of the name. Lease expiry publishes nothing:
//     waiters rely on their fallback re-check, as with Redis.
//   - Fencing tokens come from one store-wide counter, max(last+1, now in
//     µs), so they increase strictly per name even after [Store.Wipe] or
//     expiry, whatever the clock does.
//   - Nothing is kept for an idle name (lock free and queue empty).
//
// Read-write locks and semaphores ([Client.RWLocks], [Client.Semaphores]):
// the read-write lock and the semaphore of a name are locks of their own,
// apart from each other and from the name's mutex: each has its own
// record, queue and subscription topic. A record holds any number of
// holdings, one per (owner, write) slot, each as a mutex holding is
// {hold count, permits, fencing token, ticket of the latest acquisition,
// lease expiry}, alive up to and including its expiry instant. The rules,
// beyond those of the mutex above:
//
//   - Read: a fresh read hold fits while no other owner holds the write
//     hold. Write: a fresh write hold fits while no other owner holds
//     anything; an owner that holds a read hold and no write hold gets
//     driver.ErrUpgrade. Semaphore: a fresh holding of k permits fits
//     while the permits of the live holdings plus k are at most the limit.
//     The limit is recorded while the semaphore has holders or waiters; a
//     request declaring another one, or an owner's re-entry asking other
//     permits than it holds, gets driver.ErrMismatch. An error changes
//     nothing.
//   - A re-entry (the slot is held) counts once per distinct ticket, never
//     shortens the lease and is taken at once, whatever waits; so is a
//     fresh read hold by the owner of the write hold.
//   - Every call that changes a lock (Acquire, AcquireFair, Release, Leave,
//     ForceRelease) first expires lapsed holdings, evicts lapsed waiters
//     and grants holdings to the head of the queue and on while they fit
//     (the grant pass); it ends with a grant pass too. Barging attempts
//     evict too. Extend, ExtendBatch, Inspect and InspectQueue grant
//     nothing. So after every changing call, the head of the queue (if
//     any) does not fit: a head that does not fit blocks those behind it.
//   - A fair fresh hold is taken by the head of the queue or with an empty
//     queue; otherwise the ticket joins or keeps its place, recording on
//     joining its grant: its slot, permits and min(lease, waiter TTL).
//     Barging takes whatever fits.
//   - A grant makes the head's owner hold its slot with count 1, a fresh
//     fencing token, the ticket as latest acquisition and the lease of its
//     grant, and tells it "<ticket> <fence>". (Should the owner hold the
//     slot already, taken meanwhile with another ticket, the grant is a
//     re-entry of it: counted once more, with the ticket as the latest.)
//   - When a holding ends (Release to zero, ForceRelease) and the queue is
//     empty after the grant pass, every waiter of the lock is woken.
//   - Fencing tokens come from the store-wide counter, so every fresh hold
//     of a lock gets a token greater than every earlier one. A "not
//     acquired" answer carries the newest token issued for the lock while
//     its record lived, or the store-wide last one when none was.
//   - ForceRelease (either view of a read-write lock) ends every holding
//     and marks each (owner, write) slot revoked for the rest of its lease
//     plus a second, so that the former holder's Extend of that view fails
//     with driver.ErrRevoked.
//   - Nothing is kept for an idle lock (no holding, no waiter, no revoked
//     marker).
//
// Differences from Redis, none of which a caller can rely on the other way:
// eviction is not limited to 64 waiters per call, and with different
// waiter TTLs mixed on one name an abandoned queue may be kept until one
// second after the longest heartbeat deadline it ever had.
package memory

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/disgolock/disgo/fairqueue"
	"github.com/disgolock/disgo/locker/driver"
)

var (
	_ driver.Backend       = (*Store)(nil)
	_ driver.Queue         = (*Store)(nil)
	_ driver.Notifier      = (*Store)(nil)
	_ driver.Inspector     = (*Store)(nil)
	_ driver.BatchExtender = (*Store)(nil)
	_ driver.Backend       = (*Client)(nil)
	_ driver.Queue         = (*Client)(nil)
	_ driver.Notifier      = (*Client)(nil)
	_ driver.Inspector     = (*Client)(nil)
	_ driver.BatchExtender = (*Client)(nil)
	_ driver.ForceReleaser = (*Client)(nil)
	_ driver.ForceReleaser = (*Store)(nil)
)

// ErrKilled is returned by every call of a [Client] after [Client.Kill].
var ErrKilled = errors.New("memory: client killed")

// broadcast is the wake-up message addressed to every waiter of a name.
const broadcast = "*"

// queueGrace is how long an abandoned queue outlives its latest heartbeat
// deadline (the Redis queue keys expire at that deadline plus one second).
const queueGrace = time.Second

// minSweep is the number of records below which the store never sweeps.
const minSweep = 64

// Options configures a [Store]. The zero value means the defaults.
type Options struct {
	// Now is the store's clock, used for lease expiry, waiter heartbeats
	// and fencing tokens. It must be safe for concurrent use; the store
	// never calls it while holding its lock, and never lets its own time
	// go backwards (an earlier reading counts as the latest one seen).
	// Default: time.Now.
	Now func() time.Time
}

// Store is one shared in-memory lock store. Its methods act as one default
// [Client] of the store. The zero Store is not usable; call [New] or
// [NewWithOptions]. A Store holds no goroutines and needs no closing.
//
// All methods are safe for concurrent use.
type Store struct {
	now func() time.Time
	def *Client

	mu        sync.Mutex
	clock     time.Time          // latest time seen; store time never goes back
	lastFence int64              // last fencing token issued, store-wide
	names     map[string]*record // live names only (lock held or queue non-empty)
	sweepAt   int                // sweep idle records when names grows beyond this
	subs      map[topic]map[*subscription]struct{}

	shared        map[topic]*shared // live read-write locks and semaphores
	sharedSweepAt int               // sweep idle shared records when shared grows beyond this
}

// record is the state of one name.
type record struct {
	owner      string
	count      int // hold count; 0 means free
	fence      int64
	lastTicket string
	expiry     time.Time // lease end, meaningful while count > 0

	room       fairqueue.Room
	queueUntil time.Time        // the queue vanishes after this, meaningful while room.Len() > 0
	grants     map[string]grant // per queued ticket: what a release needs to hand it the lock

	revoked      string    // owner whose holding ForceRelease ended (forcerelease.lua's marker)
	revokedUntil time.Time // the marker lasts the rest of that lease plus a second
}

// grant is what the final release needs to hand the lock straight to a
// queued ticket (the waiter records of the Redis scripts).
type grant struct {
	owner string
	lease time.Duration // min(lease, waiter TTL)
	ttl   time.Duration // the waiter TTL of its latest attempt
}

// evict removes lapsed waiters and their grants.
func (r *record) evict(now time.Time) {
	if r.room.Evict(now) > 0 {
		for t := range r.grants {
			if r.room.Position(t) < 0 {
				delete(r.grants, t)
			}
		}
	}
}

// leave removes ticket from the queue and its grant, and reports whether
// it was queued.
func (r *record) leave(ticket string) bool {
	delete(r.grants, ticket)
	return r.room.Leave(ticket)
}

// New returns an empty store on the real clock.
func New() *Store { return NewWithOptions(Options{}) }

// NewWithOptions returns an empty store configured by o.
func NewWithOptions(o Options) *Store {
	s := &Store{
		now:     o.Now,
		names:   make(map[string]*record),
		subs:    make(map[topic]map[*subscription]struct{}),
		sweepAt: minSweep,

		shared:        make(map[topic]*shared),
		sharedSweepAt: minSweep,
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.def = s.Client()
	return s
}

// Client returns a new independent client of the store, like a separate
// process: it sees the same locks and queues, has its own subscriptions,
// and can be killed on its own.
func (s *Store) Client() *Client {
	c := &Client{s: s, names: make(map[topic]int)}
	c.read = &view{c: c, kind: rwLock}
	c.write = &view{c: c, kind: rwLock, write: true}
	c.sem = &view{c: c, kind: semLock}
	return c
}

// ActiveSubscriptions returns the number of locks that at least one live
// subscription of any client of the store listens on; the mutex, the
// read-write lock and the semaphore of a name count apart.
func (s *Store) ActiveSubscriptions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.subs)
}

// Wipe deletes all state of name, locks and queues (its mutex, read-write
// lock and semaphore), as an eviction or an operator would. It publishes
// nothing and leaves subscriptions alone. Fencing tokens stay increasing:
// the counter is store-wide.
func (s *Store) Wipe(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.names, name)
	delete(s.shared, topic{rwLock, name})
	delete(s.shared, topic{semLock, name})
}

// Keys returns the pseudo-keys of the live records of lock names that
// contain substr: name+":lock" while the mutex is held and name+":q" while
// its queue is not empty; name+":rw" and name+":rw:q" likewise for the
// read-write lock, and name+":sem" and name+":sem:q" for the semaphore. A
// Store keeps no per-name fence record. Records found idle on the way are
// dropped.
func (s *Store) Keys(substr string) []string {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	now = s.tick(now)
	s.sweep(now)
	s.sweepShared(now)
	keys := s.sharedKeys(substr)
	for name, r := range s.names {
		if !strings.Contains(name, substr) {
			continue
		}
		if r.count > 0 {
			keys = append(keys, name+":lock")
		}
		if r.room.Len() > 0 {
			keys = append(keys, name+":q")
		}
	}
	return keys
}

// Acquire implements driver.Backend on the store's default client.
func (s *Store) Acquire(ctx context.Context, req driver.AcquireRequest) (driver.AcquireResult, error) {
	return s.def.Acquire(ctx, req)
}

// AcquireFair implements driver.Queue on the store's default client.
func (s *Store) AcquireFair(ctx context.Context, req driver.AcquireRequest, waiterTTL time.Duration) (driver.AcquireResult, error) {
	return s.def.AcquireFair(ctx, req, waiterTTL)
}

// Release implements driver.Backend on the store's default client.
func (s *Store) Release(ctx context.Context, name, owner, ticket string) (held bool, remaining int, err error) {
	return s.def.Release(ctx, name, owner, ticket)
}

// ForceRelease implements driver.ForceReleaser on the store's default client.
func (s *Store) ForceRelease(ctx context.Context, name string) (bool, error) {
	return s.def.ForceRelease(ctx, name)
}

// Extend implements driver.Backend on the store's default client.
func (s *Store) Extend(ctx context.Context, name, owner string, lease time.Duration) (bool, error) {
	return s.def.Extend(ctx, name, owner, lease)
}

// ExtendBatch implements driver.BatchExtender on the store's default client.
func (s *Store) ExtendBatch(ctx context.Context, batch []driver.Extension) error {
	return s.def.ExtendBatch(ctx, batch)
}

// Leave implements driver.Queue on the store's default client.
func (s *Store) Leave(ctx context.Context, name, ticket string) error {
	return s.def.Leave(ctx, name, ticket)
}

// Subscribe implements driver.Notifier on the store's default client.
func (s *Store) Subscribe(ctx context.Context, name, ticket string) (driver.Subscription, error) {
	return s.def.Subscribe(ctx, name, ticket)
}

// Inspect implements driver.Inspector on the store's default client.
func (s *Store) Inspect(ctx context.Context, name string) (driver.State, error) {
	return s.def.Inspect(ctx, name)
}

// InspectQueue implements driver.Inspector on the store's default client.
func (s *Store) InspectQueue(ctx context.Context, name string) ([]driver.Waiter, error) {
	return s.def.InspectQueue(ctx, name)
}

// tick advances the store clock to t and returns the store time; a t
// earlier than a reading already seen counts as that reading. Called with
// s.mu held.
func (s *Store) tick(t time.Time) time.Time {
	if t.After(s.clock) {
		s.clock = t
	}
	return s.clock
}

// get returns the record of name at now, lazily expired; a fresh one when
// the name is idle. Called with s.mu held; hand it back with put.
func (s *Store) get(name string, now time.Time) *record {
	r := s.names[name]
	if r == nil {
		return &record{}
	}
	r.expire(now)
	return r
}

// put stores r as the record of name, or drops it when it is idle. Called
// with s.mu held.
func (s *Store) put(name string, r *record, now time.Time) {
	if r.idle() {
		delete(s.names, name)
		return
	}
	if _, ok := s.names[name]; ok {
		return
	}
	s.names[name] = r
	if len(s.names) > s.sweepAt {
		s.sweep(now)
	}
}

// sweep drops every record that has become idle since it was last
// touched (locks that expired, queues that vanished). Triggered when the
// number of records doubles, it costs amortized O(1) per new record and
// keeps the store at most twice its live size. Called with s.mu held.
func (s *Store) sweep(now time.Time) {
	for name, r := range s.names {
		r.expire(now)
		if r.idle() {
			delete(s.names, name)
		}
	}
	s.sweepAt = max(2*len(s.names), minSweep)
}

// publish wakes the subscriptions of name addressed by msg: the one ticket,
// or all for a broadcast. A subscription of a stalled client gets the
// message when the client resumes. It never blocks. Called with s.mu held.
func (s *Store) publish(tp topic, msg string) {
	ticket, fence := msg, int64(0)
	if i := strings.IndexByte(msg, ' '); i >= 0 {
		ticket = msg[:i]
		fence, _ = strconv.ParseInt(msg[i+1:], 10, 64)
	}
	for sub := range s.subs[tp] {
		if ticket == broadcast || sub.ticket == ticket {
			if c := sub.c; c.stalls > 0 {
				c.held = append(c.held, &held{sub: sub, fence: fence})
				continue
			}
			sub.deliver(fence)
		}
	}
}

// fence issues the next fencing token; ok is false, and nothing changes,
// when the counter is at the end of the int64 range. Called with s.mu held.
func (s *Store) fence(now time.Time) (f int64, ok bool) {
	if s.lastFence == math.MaxInt64 {
		return 0, false
	}
	s.lastFence = max(s.lastFence+1, now.UnixMicro())
	return s.lastFence, true
}

// errFence is what an acquisition gets when no fencing token can be issued.
var errFence = fmt.Errorf("memory: %w: the store-wide counter is at 2^63-1", driver.ErrFence)

func (r *record) expire(now time.Time) {
	if r.count > 0 && now.After(r.expiry) {
		r.free()
	}
	if r.room.Len() > 0 && now.After(r.queueUntil) {
		r.room, r.grants = fairqueue.Room{}, nil
	}
	if r.revoked != "" && now.After(r.revokedUntil) {
		r.revoked, r.revokedUntil = "", time.Time{}
	}
}

func (r *record) free() {
	r.owner, r.count, r.fence, r.lastTicket, r.expiry = "", 0, 0, "", time.Time{}
}

func (r *record) idle() bool { return r.count == 0 && r.room.Len() == 0 && r.revoked == "" }

// Client is one independent view of a [Store], like one process with its
// own connection. It implements driver.Backend, driver.Queue,
// driver.Notifier, driver.Inspector and driver.BatchExtender.
//
// All methods are safe for concurrent use and never block, except while
// the client is stalled (see [Client.Stall]): each acts at once. Each
// first checks ctx and returns an error wrapping ctx.Err(), changing
// nothing, when ctx is done; after [Client.Kill] each returns [ErrKilled].
type Client struct {
	s *Store

	// guarded by s.mu
	killed bool
	names  map[topic]int // live subscriptions of this client per lock
	stalls int           // Stall calls not yet resumed; > 0: stalled
	held   []*held       // while stalled (and resuming): calls and messages held back, oldest first

	read, write, sem *view // the views of the client's read-write locks and semaphores
}

// held is a call or a message held back while its client is stalled.
type held struct {
	// A message: sub gets it (with the fence of a grant, 0 for a wake-up).
	sub   *subscription
	fence int64
	// A call: goOn is closed when it may proceed, and the call closes
	// entered once it holds the store's lock (or gives up after goOn was
	// closed), so that what was held back after it comes after it.
	goOn      chan struct{}
	entered   chan struct{}
	started   bool // goOn was closed (guarded by s.mu)
	abandoned bool // the call's ctx ended before it could proceed (guarded by s.mu)
}

// Kill cuts the client off the store at once, as if its process died:
// every later call returns [ErrKilled], and its subscriptions stop and are
// released. Locks it holds and queue places it has stay until their lease
// or heartbeat lapses. Calls held back by a stall return ErrKilled, and the
// messages held back are dropped. Kill is idempotent and safe for
// concurrent use.
func (c *Client) Kill() {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	c.killed = true
	for _, subs := range c.s.subs {
		for sub := range subs {
			if sub.c == c {
				c.s.unsubscribe(sub)
			}
		}
	}
	for _, h := range c.held {
		if h.goOn != nil && !h.abandoned && !h.started {
			h.started = true
			close(h.goOn) // it finds the client killed
		}
	}
	c.held = nil
}

// Stall stalls the client as a process pause would (SIGSTOP, a long GC
// pause, a VM freeze), until resume is called: every call of the client
// blocks before it touches the store, and the messages published to its
// subscriptions are held back (their Wake is not signalled, and the fence
// that Granted reports is not updated). On resume they are delivered, late,
// in their original order: a call made while stalled acts on the store
// only after every message and call held back before it, and before those
// held back after it. A blocked call whose ctx ends first returns an error
// wrapping ctx.Err() and changes nothing. What is local to the process
// goes on: Granted, Close and ActiveSubscriptions answer at once, and
// SubscribeActive registers a subscription without waiting (its messages
// are held back too).
//
// Stalls nest: the client runs again once every resume returned by Stall
// was called. resume is idempotent and returns once every call and message
// held back was delivered. Kill during a stall ends it: the calls held
// back return [ErrKilled]. Stall and resume are safe for concurrent use.
func (c *Client) Stall() (resume func()) {
	s := c.s
	s.mu.Lock()
	c.stalls++
	s.mu.Unlock()
	var once sync.Once
	return func() { once.Do(c.resume) }
}

// resume ends one stall; the last one delivers what was held back, in order.
func (c *Client) resume() {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if c.stalls--; c.stalls > 0 {
		return
	}
	// Calls made and messages published meanwhile are held back too, so
	// that they come after what is already held (stalls stays > 0 for
	// publish and begin until the loop ends).
	c.stalls++
	defer func() { c.stalls-- }()
	for len(c.held) > 0 && c.stalls == 1 { // a Stall meanwhile holds the rest back again
		h := c.held[0]
		c.held[0] = nil
		c.held = c.held[1:]
		switch {
		case h.sub != nil:
			if _, live := s.subs[h.sub.topic][h.sub]; live {
				h.sub.deliver(h.fence)
			}
		case h.abandoned, h.started:
		default:
			h.started = true
			close(h.goOn)
			s.mu.Unlock()
			<-h.entered
			s.mu.Lock()
		}
	}
	if len(c.held) == 0 {
		c.held = nil // let the backing array go
	}
}

// ActiveSubscriptions returns the number of locks this client holds at
// least one live subscription on; the mutex, the read-write lock and the
// semaphore of a name count apart.
func (c *Client) ActiveSubscriptions() int {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return len(c.names)
}

// begin reads the clock, checks ctx and the client, and locks the store;
// while the client is stalled it first waits for its turn (see Stall). On
// success the caller must unlock s.mu; the returned time is the store time
// of the operation.
func (c *Client) begin(ctx context.Context) (time.Time, error) {
	t := c.s.now()
	if err := ctx.Err(); err != nil {
		return time.Time{}, fmt.Errorf("memory: %w", err)
	}
	c.s.mu.Lock()
	if c.killed {
		c.s.mu.Unlock()
		return time.Time{}, ErrKilled
	}
	if c.stalls > 0 {
		return c.wait(ctx)
	}
	return c.s.tick(t), nil
}

// wait holds a call of a stalled client back until resume lets it go on,
// in the order it was made. Called with s.mu held; returns with s.mu held
// on success, and without it on error.
func (c *Client) wait(ctx context.Context) (time.Time, error) {
	s := c.s
	h := &held{goOn: make(chan struct{}), entered: make(chan struct{})}
	c.held = append(c.held, h)
	s.mu.Unlock()
	select {
	case <-h.goOn:
	case <-ctx.Done():
	}
	s.mu.Lock()
	if !h.started {
		h.abandoned = true // still held: resume skips it
		s.mu.Unlock()
		return time.Time{}, fmt.Errorf("memory: %w", ctx.Err())
	}
	// Read the clock without the store's lock, which resume does not hold
	// while it waits for this call to enter.
	s.mu.Unlock()
	t := s.now()
	s.mu.Lock()
	close(h.entered)
	switch {
	case c.killed:
		s.mu.Unlock()
		return time.Time{}, ErrKilled
	case ctx.Err() != nil:
		s.mu.Unlock()
		return time.Time{}, fmt.Errorf("memory: %w", ctx.Err())
	}
	return s.tick(t), nil
}

// Acquire implements driver.Backend: it takes the lock if it is free or
// re-enters it if req.Owner holds it, ignoring the fair queue. Taken by
// another owner is Acquired == false with the holder's remaining lease in
// TTL and Position -1.
func (c *Client) Acquire(ctx context.Context, req driver.AcquireRequest) (driver.AcquireResult, error) {
	return c.acquire(ctx, req, false, 0)
}

// AcquireFair implements driver.Queue: Acquire in arrival order, as
// described by package fairqueue and driver.Queue. A zero waiterTTL makes
// a single attempt that honours the queue without joining it.
func (c *Client) AcquireFair(ctx context.Context, req driver.AcquireRequest, waiterTTL time.Duration) (driver.AcquireResult, error) {
	return c.acquire(ctx, req, true, waiterTTL)
}

// acquire mirrors acquire.lua.
func (c *Client) acquire(ctx context.Context, req driver.AcquireRequest, fair bool, waiterTTL time.Duration) (driver.AcquireResult, error) {
	now, err := c.begin(ctx)
	if err != nil {
		return driver.AcquireResult{}, err
	}
	s := c.s
	defer s.mu.Unlock()
	r := s.get(req.Name, now)
	defer s.put(req.Name, r, now)

	if r.count > 0 && r.owner == req.Owner {
		// Re-entry: count once per ticket, never shorten the lease.
		if r.lastTicket != req.Ticket {
			r.count++
			r.lastTicket = req.Ticket
		}
		if r.expiry.Sub(now) < req.Lease {
			r.expiry = now.Add(req.Lease)
		}
		if fair {
			r.leave(req.Ticket)
		}
		return driver.AcquireResult{Acquired: true, Fence: r.fence, Count: r.count, Position: -1}, nil
	}

	head, queued := "", false
	if fair && r.room.Len() > 0 {
		r.evict(now)
		head, queued = r.room.Head()
	}
	if r.count == 0 && (!queued || head == req.Ticket) {
		f, ok := s.fence(now)
		if !ok {
			return driver.AcquireResult{}, errFence
		}
		r.owner, r.count, r.fence, r.lastTicket = req.Owner, 1, f, req.Ticket
		r.expiry = now.Add(req.Lease)
		if queued {
			r.leave(req.Ticket)
		}
		return driver.AcquireResult{Acquired: true, Fence: r.fence, Count: 1, Position: -1}, nil
	}

	// Not acquired: the newest fence issued, which no earlier grant exceeds.
	res := driver.AcquireResult{TTL: -1, Position: -1, Fence: s.lastFence}
	if r.count > 0 {
		res.TTL, res.Fence = r.expiry.Sub(now), r.fence
	}
	if fair && waiterTTL > 0 {
		deadline := now.Add(waiterTTL)
		if until := deadline.Add(queueGrace); r.room.Len() == 0 || until.After(r.queueUntil) {
			r.queueUntil = until
		}
		if r.room.Position(req.Ticket) < 0 {
			if r.grants == nil {
				r.grants = make(map[string]grant)
			}
			r.grants[req.Ticket] = grant{owner: req.Owner, lease: min(req.Lease, waiterTTL), ttl: waiterTTL}
		}
		res.Position = r.room.Join(req.Ticket, deadline)
		if r.count == 0 {
			// Free, but another waiter is ahead: make sure it knows.
			s.publish(topic{mutexLock, req.Name}, head)
		}
	}
	return res, nil
}

// Release implements driver.Backend, mirroring release.lua: it undoes one
// acquisition by owner (with a non-empty ticket, only if the latest
// acquisition carried it). held is false, and nothing changes, when owner
// does not hold the lock. The final release hands the lock to the head
// waiter and tells it so, or, with an empty queue, frees the lock and wakes
// every waiter of name.
func (c *Client) Release(ctx context.Context, name, owner, ticket string) (held bool, remaining int, err error) {
	now, err := c.begin(ctx)
	if err != nil {
		return false, 0, err
	}
	s := c.s
	defer s.mu.Unlock()
	r := s.get(name, now)
	defer s.put(name, r, now)
	if r.count == 0 || r.owner != owner || (ticket != "" && r.lastTicket != ticket) {
		return false, 0, nil
	}
	r.count--
	if r.count > 0 {
		return true, r.count, nil
	}
	s.handOn(name, r, now)
	return true, 0, nil
}

// ForceRelease implements driver.ForceReleaser, mirroring forcerelease.lua:
// it ends the holding of name whatever its owner and count, passes the lock
// on as the final Release does, and marks the former owner revoked for the
// rest of its lease plus a second, so that its Extend fails with
// driver.ErrRevoked.
func (c *Client) ForceRelease(ctx context.Context, name string) (bool, error) {
	now, err := c.begin(ctx)
	if err != nil {
		return false, err
	}
	s := c.s
	defer s.mu.Unlock()
	r := s.get(name, now)
	defer s.put(name, r, now)
	if r.count == 0 {
		return false, nil
	}
	r.revoked, r.revokedUntil = r.owner, r.expiry.Add(time.Second)
	s.handOn(name, r, now)
	return true, nil
}

// handOn passes on the lock of name, whose last hold just ended: to the
// head of the queue with a fresh fence, or to nobody, waking every waiter.
// Called with s.mu held.
func (s *Store) handOn(name string, r *record, now time.Time) {
	r.free()
	msg := broadcast
	if r.room.Len() > 0 {
		r.evict(now)
		if head, ok := r.room.Head(); ok {
			msg = head
			g, ok := r.grants[head]
			var f int64
			if ok {
				f, ok = s.fence(now) // no token left: free the lock instead, the head's attempt reports it
			}
			if ok {
				// Hand over: the head holds the lock now.
				r.owner, r.count, r.fence, r.lastTicket = g.owner, 1, f, head
				r.expiry = now.Add(g.lease)
				r.leave(head)
				msg = head + " " + strconv.FormatInt(r.fence, 10)
			}
		}
	}
	s.publish(topic{mutexLock, name}, msg)
}

// Extend implements driver.Backend, mirroring extend.lua: it sets the
// remaining lease to lease (longer or shorter) if owner holds the lock;
// otherwise it returns false and changes nothing, with an error matching
// driver.ErrRevoked when ForceRelease ended owner's holding.
func (c *Client) Extend(ctx context.Context, name, owner string, lease time.Duration) (bool, error) {
	now, err := c.begin(ctx)
	if err != nil {
		return false, err
	}
	defer c.s.mu.Unlock()
	return c.s.extend(name, owner, lease, now)
}

// ExtendBatch implements driver.BatchExtender: it extends every item as
// Extend would, in one atomic step, setting each item's Held and Err (an
// error matching driver.ErrRevoked for a revoked owner, else nil). It fails as a whole only when ctx is done or the client killed.
func (c *Client) ExtendBatch(ctx context.Context, batch []driver.Extension) error {
	now, err := c.begin(ctx)
	if err != nil {
		return err
	}
	defer c.s.mu.Unlock()
	for i := range batch {
		e := &batch[i]
		e.Held, e.Err = c.s.extend(e.Name, e.Owner, e.Lease, now)
	}
	return nil
}

// extend is one Extend. Called with s.mu held.
func (s *Store) extend(name, owner string, lease time.Duration, now time.Time) (bool, error) {
	r := s.get(name, now)
	defer s.put(name, r, now)
	if r.count == 0 || r.owner != owner {
		if r.revoked != "" && r.revoked == owner {
			return false, errRevoked
		}
		return false, nil
	}
	r.expiry = now.Add(lease)
	return true, nil
}

// errRevoked is Extend's error for an owner whose holding ForceRelease ended.
var errRevoked = fmt.Errorf("memory: %w", driver.ErrRevoked)

// Leave implements driver.Queue, mirroring leave.lua: it removes ticket
// and its grant from the queue of name; if ticket was the head and the
// lock is free, the new head (if any) is woken. A grant made to ticket
// before is not undone (Release with the ticket does that). Leaving a
// queue one is not in is no error.
func (c *Client) Leave(ctx context.Context, name, ticket string) error {
	now, err := c.begin(ctx)
	if err != nil {
		return err
	}
	s := c.s
	defer s.mu.Unlock()
	r := s.get(name, now)
	defer s.put(name, r, now)
	head, _ := r.room.Head()
	if r.leave(ticket) && head == ticket && r.count == 0 {
		if next, ok := r.room.Head(); ok {
			s.publish(topic{mutexLock, name}, next)
		}
	}
	return nil
}

// Inspect implements driver.Inspector, mirroring inspect.lua: a read-only
// snapshot of name. Waiters counts queued tickets, including lapsed ones
// not yet evicted.
func (c *Client) Inspect(ctx context.Context, name string) (driver.State, error) {
	now, err := c.begin(ctx)
	if err != nil {
		return driver.State{}, err
	}
	s := c.s
	defer s.mu.Unlock()
	r := s.get(name, now)
	defer s.put(name, r, now)
	st := driver.State{Waiters: r.room.Len()}
	if r.count > 0 {
		st.Owner, st.Count, st.Fence, st.TTL = r.owner, r.count, r.fence, r.expiry.Sub(now)
	}
	return st, nil
}

// InspectQueue implements driver.Inspector: the queue of name, head first.
func (c *Client) InspectQueue(ctx context.Context, name string) ([]driver.Waiter, error) {
	now, err := c.begin(ctx)
	if err != nil {
		return nil, err
	}
	s := c.s
	defer s.mu.Unlock()
	r := s.get(name, now)
	defer s.put(name, r, now)
	tickets, deadlines := r.room.Tickets()
	ws := make([]driver.Waiter, len(tickets))
	for i, t := range tickets {
		g := r.grants[t]
		ws[i] = driver.Waiter{Position: i, Ticket: t, Owner: g.owner, Heartbeat: deadlines[i].Sub(now), TTL: g.ttl}
	}
	return ws, nil
}
