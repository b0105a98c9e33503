package driver

import (
	"context"
	"errors"
	"time"
)

// ErrFence is the error a store returns, wrapped, when it cannot issue a
// fencing token greater than the last one of a name (the counter is at
// 2^63-1). The facade reports it as locker.ErrFence, the same value.
var ErrFence = errors.New("fencing token out of range")

// ErrRevoked is the error a store returns, wrapped, from Extend (or in an
// Extension's Err) when the owner does not hold the lock because an
// operator forced its holding out ([ForceReleaser]). A store that cannot
// tell reports "not held" instead. The renewer and the facade treat it as
// a loss at once, reported as locker.ErrRevoked, the same value.
var ErrRevoked = errors.New("lock revoked by a force release")

// ErrUpgrade is the error a write view of a read-write lock (see
// [RWLocker]) returns, wrapped, from Acquire or AcquireFair when the owner
// holds a read hold of the name and no write hold: a reader cannot upgrade,
// because two readers upgrading at once would wait for each other for
// ever. Nothing was changed. The facade reports it as locker.ErrUpgrade,
// the same value, at once and without waiting.
var ErrUpgrade = errors.New("a read hold cannot be upgraded to a write hold")

// ErrMismatch is the error a semaphore view (see [Semaphorer]) returns,
// wrapped, from Acquire or AcquireFair when the request's Limit differs
// from the limit the name was declared with, or when the owner holds the
// semaphore already with another number of Permits than the request asks.
// Nothing was changed. The facade reports it as locker.ErrMismatch, the
// same value, at once and without waiting.
var ErrMismatch = errors.New("the request does not match the semaphore's declared limit or the owner's holding")

// AcquireRequest is one acquisition attempt as the facade hands it to a
// driver. The facade has validated every field before a driver sees it.
type AcquireRequest struct {
	// Name is the namespace-qualified lock name: 1 to locker.MaxNameLen bytes.
	Name string
	// Owner identifies the holder. The same owner re-enters (reentrancy).
	Owner string
	// Ticket is unique per acquiring call. It makes the attempt idempotent:
	// a repeated attempt with the same owner and ticket does not count the
	// hold twice. In fair mode it is also the waiter's place in the queue.
	Ticket string
	// Lease is the lease to set, at least one millisecond. A re-entry never
	// shortens the remaining lease.
	Lease time.Duration
	// Permits is, for a semaphore (see [Semaphorer]), how many permits the
	// holding takes: 1 to Limit. Every other kind of lock ignores it.
	Permits int
	// Limit is, for a semaphore, the number of permits of the name as the
	// caller declares it: at least 1. The store records it while the name
	// has holders or fair-queue waiters, and answers a request that declares another
	// limit with an error matching [ErrMismatch]. Other kinds ignore it.
	Limit int
}

// AcquireResult is the outcome of one attempt.
type AcquireResult struct {
	// Acquired reports that Owner now holds the lock.
	Acquired bool
	// Fence is the fencing token of the holding, set when Acquired. A fresh
	// acquisition of a name gets a token greater than any earlier token of
	// that name; a re-entry keeps the token.
	//
	// When not Acquired, Fence is the newest token the store had issued for
	// the name when it answered: the holder's, or, when the lock is free,
	// the last one issued (a store may report a larger store-wide value;
	// 0 only when it never issued one). It must not be lower than the
	// token of any grant (see [Subscription].Granted) the store made before it answered:
	// the facade ignores a grant whose token is not newer than a "not
	// acquired" answer, because the store has said since that the ticket
	// does not hold the lock (the grant lapsed, for example while the
	// waiter's process was stopped).
	Fence int64
	// Count is the hold count after the attempt, set when Acquired.
	Count int
	// TTL is, when not Acquired, the remaining lease of the current holder,
	// or a negative value when the lock is free (fair mode: free, but
	// another waiter is ahead) or the remaining lease is unknown. A fair
	// store may leave it unknown for a waiter behind the head of the queue,
	// which is not next when the lease runs out.
	TTL time.Duration
	// Position is, in fair mode when not Acquired, the 0-based place of the
	// ticket in the queue; -1 when not queued.
	Position int
}

// Backend holds the lock state of a store and changes it atomically, one
// round trip per call. It is the one interface every driver implements.
//
// A call that changed the store reports success: a store must not fail a
// call after it applied a change (for example when only the wake-up it
// publishes afterwards is refused); waiters re-check on their own anyway.
//
// All methods are safe for concurrent use. They do not retry: a failed
// call returns its error and the facade decides. On ctx cancellation a
// method returns promptly with an error wrapping ctx.Err(); the change may
// or may not have been applied, which the facade accounts for (tickets make
// Acquire idempotent, Release with a ticket undoes only that attempt).
type Backend interface {
	// Acquire takes the lock for req.Owner if it is free, or re-enters it
	// if req.Owner holds it, ignoring any fair queue (barging). When the
	// lock is held by another owner it returns Acquired == false and a nil
	// error: "taken" is a result, not an error.
	Acquire(ctx context.Context, req AcquireRequest) (AcquireResult, error)

	// Release undoes one acquisition by owner. With a non-empty ticket it
	// only acts if the latest acquisition of owner carried that ticket (used
	// to undo an attempt whose reply was lost). It returns held == false,
	// and changes nothing, when owner does not hold the lock (never held,
	// released already, lease expired). Otherwise remaining is the hold
	// count left; at zero the lock passes on: a store that grants directly
	// (see [Subscription].Granted) hands it to the head of the fair queue, otherwise it
	// is free and the next waiter is woken through the Notifier. A store
	// may skip the wake-up when no attempt found this holding taken: every
	// waiter makes such an attempt before it sleeps (after subscribing, see
	// [Notifier]), so nobody waits for a holding that no attempt saw.
	Release(ctx context.Context, name, owner, ticket string) (held bool, remaining int, err error)

	// Extend sets the remaining lease of a lock held by owner to lease. It
	// returns held == false, and changes nothing, when owner does not hold
	// the lock.
	Extend(ctx context.Context, name, owner string, lease time.Duration) (held bool, err error)
}

// Queue is the FIFO waiting room of fair mode (see package fairqueue for
// the semantics every implementation shares). A Backend that also
// implements Queue supports [Fair] mode.
//
// All methods are safe for concurrent use and do not retry. On ctx
// cancellation they return promptly with an error wrapping ctx.Err().
type Queue interface {
	// AcquireFair is Acquire in arrival order, in one atomic step: it first
	// evicts waiters whose heartbeat lapsed, then takes the lock if it is
	// free and req.Ticket is at the head of the queue (or the queue is
	// empty), or re-enters if req.Owner holds it. Otherwise it registers
	// req.Ticket at the tail (keeping its place if already queued), renews
	// its heartbeat deadline to now+waiterTTL by the store's clock, and
	// returns Acquired == false with the ticket's Position. If the lock is
	// free but another waiter is at the head, that waiter is woken.
	// A waiterTTL of zero makes a single attempt that honours the queue but
	// does not join it (Position -1, nobody woken): TryLock in fair mode.
	AcquireFair(ctx context.Context, req AcquireRequest, waiterTTL time.Duration) (AcquireResult, error)

	// Leave removes ticket from the queue of name at once. If that makes a
	// new head while the lock is free, the new head is woken. Leaving a
	// queue one is not in is not an error.
	Leave(ctx context.Context, name, ticket string) error
}

// Notifier delivers release wake-ups. A release (or a Leave that uncovers a
// new head) publishes either one ticket, the head of the fair queue (with
// the fencing token when the lock was granted to it, see [Subscription].Granted), or a
// broadcast to every waiter of the name. An implementation shares one
// subscription connection among all waiters and counts references per lock
// name, dropping the store subscription when nobody waits.
//
// Subscribe is safe for concurrent use. It returns once the subscription is
// active in the store, so that no release published after Subscribe returns
// can be missed; on ctx cancellation it returns an error wrapping ctx.Err()
// and holds nothing.
//
// SubscribeActive subscribes without a store round trip when the channel of
// name is subscribed and confirmed already (by other waiters of the
// process, or lingering after recent ones), and returns false, holding
// nothing, otherwise. It lets a waiter on a contended name subscribe before
// its first attempt at no cost. A Notifier that cannot tell returns false.
// It is safe for concurrent use and never blocks on the store.
type Notifier interface {
	Subscribe(ctx context.Context, name, ticket string) (Subscription, error)
	SubscribeActive(name, ticket string) (Subscription, bool)
}

// Subscription is one waiter's interest in wake-ups of one lock name.
//
// Wake delivers a value for every wake-up addressed to the subscription's
// ticket and for every broadcast of its name; wake-ups are coalesced (the
// channel has a buffer of one). A Notifier that may have missed messages,
// for example after reconnecting, wakes every subscription.
//
// Granted reports a direct hand-off: when the store granted the lock to the
// subscription's ticket and said so, it returns the fencing token of the
// latest such grant and true (and Wake was signalled); otherwise 0 and
// false. It keeps returning the grant, so a grant message may be seen more
// than once, and late: the facade takes a grant only when its token is
// newer than every "not acquired" answer since (see [AcquireResult].Fence).
// A grant holds the lock for the waiter with hold count 1, its ticket as the
// latest acquisition, and a lease of min(lease, waiterTTL) from the moment
// of the release. A waiter that does not take a grant (it gave up) undoes
// it with a ticket-scoped Release after leaving the queue; a grant whose
// message is lost is claimed by the waiter's next attempt with its ticket,
// which the store answers as an idempotent re-entry. If giving up cannot
// reach the store, a grant left behind ends with its lease. A store that
// never grants directly returns 0 and false.
//
// All methods are safe for concurrent use. Close is idempotent; after
// Close, Wake is never signalled again.
type Subscription interface {
	Wake() <-chan struct{}
	Granted() (fence int64, ok bool)
	Close()
}

// Renewer keeps the leases of auto-renewed locks alive (the default is
// package renewer). Keep starts renewing h and returns a stop function; it
// must not block on the store. After stop returns, the renewer sends no
// further renewal of h and calls none of its callbacks. h.OnLost is called
// at most once, when renewal cannot be confirmed before the lease deadline
// or the store reports that the owner no longer holds the lock (or that it
// was revoked, [ErrRevoked]: a loss at once, not retried). Keep and
// stop are safe for concurrent use.
type Renewer interface {
	Keep(h Hold) (stop func())
}

// Inspector is an optional capability of a Backend: read-only inspection of
// a lock, for tests, tooling and dashboards. It is safe for concurrent use
// and changes nothing in the store.
type Inspector interface {
	// Inspect returns the state of name. A free lock with nobody waiting has
	// the zero State.
	Inspect(ctx context.Context, name string) (State, error)
	// InspectQueue returns the fair queue of name in order, head first,
	// including waiters whose heartbeat lapsed but who were not evicted yet
	// (their Heartbeat is negative). An empty queue is an empty slice.
	InspectQueue(ctx context.Context, name string) ([]Waiter, error)
}

// Waiter is one ticket in a fair queue, as [Inspector.InspectQueue] sees it.
type Waiter struct {
	Position int    // 0-based place in the queue; 0 is the head
	Ticket   string // the waiting call's ticket
	Owner    string // the waiter's owner token; empty if the store does not record it
	// Heartbeat is the time left until the waiter's heartbeat deadline, by
	// the store's clock; negative once it lapsed (the next operation on the
	// name evicts it).
	Heartbeat time.Duration
	// TTL is the heartbeat period the waiter asked for (its WaiterTTL), so
	// that TTL - Heartbeat is the age of its last heartbeat; 0 if unknown.
	TTL time.Duration
}

// BatchExtender is an optional capability of a Backend: extend many leases
// in one round trip (a pipeline). ExtendBatch sets Held and Err of every
// item. It returns a non-nil error only when the batch as a whole failed,
// in which case the items' fields are not meaningful. It must not retry.
// It is safe for concurrent use.
type BatchExtender interface {
	ExtendBatch(ctx context.Context, batch []Extension) error
}

// Extension is one item of a batch.
type Extension struct {
	Name  string
	Owner string
	Lease time.Duration
	Held  bool  // result: the owner still holds the lock and its lease was set
	Err   error // result: this item failed
}

// ForceReleaser is an optional capability of a Backend: an operator's
// release of a lock whoever holds it. ForceRelease ends the holding of
// name at once, whatever its owner and hold count, and passes the lock on
// as the final release of a holding does (to the head of the fair queue,
// or waking every waiter). It returns held == false, changing nothing,
// when the lock was free. The former holder's next Extend fails with an
// error matching [ErrRevoked] for at least the rest of its former lease.
// It is safe for concurrent use and does not retry.
type ForceReleaser interface {
	ForceRelease(ctx context.Context, name string) (held bool, err error)
}

// MultiAcquirer is an optional capability of a Backend: one atomic attempt
// at several locks, all or nothing.
type MultiAcquirer interface {
	// AcquireAll makes one attempt at every request in one atomic step.
	// The requests have distinct names and one Owner; the facade has
	// validated them. With fair false, each name is taken as Acquire takes
	// it (free, or a re-entry by the owner); with fair true, as AcquireFair
	// with a waiterTTL of zero does (free with nobody queued, or a
	// re-entry), and no request joins a queue.
	//
	// Either every request is acquired, with res[i] as Acquire would
	// report it (a fresh token per fresh holding, the count after a
	// re-entry), or none is and nothing held changed: then res[i] of a name
	// that could not be taken is its "not acquired" result (Fence the newest
	// token of the name), and of the others the zero value.
	//
	// ok is false, and nothing was sent, when the store cannot take this set
	// in one atomic step (on Redis Cluster: names on more than one hash
	// slot, or too many names for one script); the caller then acquires the
	// names one by one. On ctx cancellation it returns an error wrapping
	// ctx.Err(), and the attempt may or may not have been applied, which
	// the caller undoes with each request's ticket (see Backend.Release).
	// It is safe for concurrent use and does not retry.
	AcquireAll(ctx context.Context, reqs []AcquireRequest, fair bool) (res []AcquireResult, ok bool, err error)
}

// RWLocker is an optional capability of a Backend: read-write locks. The
// read-write lock of a name is a lock of its own, apart from the name's
// mutex (the Backend itself) and semaphore. RWLocks returns two Backends on
// the same store and the same locks: read takes and releases read holds,
// write write holds. It is safe for concurrent use and returns the same
// values every time.
//
// Each view implements Backend with the rules below, and Queue, Notifier,
// Inspector, BatchExtender and ForceReleaser when the store has them for
// its mutexes (Queue and Notifier are then required: fair read-write locks
// need them). Owner, Ticket, Lease and the fencing rules of Backend, Queue
// and Subscription hold for each hold as for a mutex, per (name, view,
// owner): the read hold and the write hold of one owner are two holdings,
// counted, leased, renewed, released and granted apart.
//
//   - Read: the owner holds a read hold when no other owner holds the write
//     hold. Any number of owners hold read holds together. A write holder
//     may take a read hold of its own name at once, whatever waits.
//   - Write: the owner holds the write hold when no other owner holds any
//     hold of the name. An owner that holds a read hold and no write hold
//     gets an error matching [ErrUpgrade], and nothing changes.
//   - A re-entry (the owner holds the view's hold already) counts the
//     holding again, in fair mode too, whatever waits.
//   - Fair mode (Queue) orders readers and writers in one FIFO queue. A
//     fresh hold is taken only by the head of the queue (or with an empty
//     queue), so a waiting writer blocks the readers who came after it.
//     Whenever holds end or waiters leave, the store grants holds to the
//     head of the queue, and on to the next waiters as long as they can
//     hold together (a run of readers is admitted at once), each told as a
//     Subscription grant.
//   - Fences: every fresh hold, read or write, gets a fencing token from
//     one counter per name, greater than every token issued for the name
//     before. So a write hold's token is greater than that of every hold
//     before it, and a read hold's token is greater than that of every write
//     hold that ended before the read hold began. The "not acquired" Fence
//     is the newest token of the name.
//   - ForceRelease on either view ends every hold of the name, read and
//     write, and passes the lock on; each former holder's Extend then fails
//     with [ErrRevoked].
//   - Inspect reports the write holder (if any) as State.Owner, Count,
//     Fence and TTL, and every holding in State.Holders.
type RWLocker interface {
	RWLocks() (read, write Backend)
}

// Semaphorer is an optional capability of a Backend: counting semaphores.
// The semaphore of a name is a lock of its own, apart from the name's mutex
// and read-write lock. Semaphores returns a Backend on the same store whose
// holdings take AcquireRequest.Permits of the name's AcquireRequest.Limit
// permits. It is safe for concurrent use and returns the same value every
// time.
//
// The view implements Backend with the rules below, and Queue, Notifier,
// Inspector, BatchExtender and ForceReleaser when the store has them for
// its mutexes. Owner, Ticket, Lease and the fencing rules hold per (name,
// owner) as for a mutex.
//
//   - A fresh holding of k permits is taken when the permits held by live
//     holdings plus k are at most Limit; a holding whose lease ended gives
//     its permits back. The permits in use never exceed Limit.
//   - A request whose Limit differs from the name's recorded limit gets an
//     error matching [ErrMismatch], and nothing changes. The limit is
//     recorded while the name has holders or fair-queue waiters (a
//     barging attempt that found the name full records nothing).
//   - A re-entry by an owner that holds the semaphore counts the holding
//     again and keeps its permits; asking another number of permits gets
//     an error matching [ErrMismatch].
//   - Fair mode orders waiters FIFO: a fresh holding is taken only by the
//     head of the queue (or with an empty queue), so a large request is not
//     starved by small ones. Whenever permits come back or waiters leave,
//     the store grants holdings to the head of the queue and on as long as
//     the permits suffice, each told as a Subscription grant.
//   - Every fresh holding gets a fencing token greater than every token
//     issued for the name before.
//   - ForceRelease ends every holding of the name and passes the permits
//     on; each former holder's Extend then fails with [ErrRevoked].
//   - Inspect reports State.Limit, State.Used and every holding in
//     State.Holders; State.Owner is empty.
type Semaphorer interface {
	Semaphores() Backend
}

// Hold is one auto-renewed lease handed to [Renewer.Keep].
type Hold struct {
	Name  string
	Owner string
	// Lease is the length every renewal sets.
	Lease time.Duration
	// Deadline is when the current lease ends, by the local monotonic clock,
	// measured from before the acquiring request was sent.
	Deadline time.Time
	// OnRenewed, if not nil, is called after each confirmed renewal with the
	// new deadline (taken before the renewal request was sent).
	OnRenewed func(deadline time.Time)
	// OnLost is called at most once, when the lease is lost: with an error
	// saying why (for package renewer: renewer.ErrNotHeld when the store no
	// longer names the owner, the store's error matching [ErrRevoked] when
	// an operator forced the holding out, renewer.ErrDeadline when no
	// renewal could be confirmed before the deadline, renewer.ErrClosed,
	// renewer.ErrInvalidHold).
	OnLost func(cause error)
}

// State is a snapshot of one lock.
type State struct {
	Owner   string        // holder's owner token; empty when free
	Count   int           // hold count
	Fence   int64         // fencing token of the current holding
	TTL     time.Duration // remaining lease; 0 when free
	Waiters int           // tickets in the fair queue

	// Holders lists every live holding of a read-write lock or semaphore
	// (see [RWLocker], [Semaphorer]), in no set order; nil for a mutex,
	// whose one holding is Owner.
	Holders []Holding
	// Limit is a semaphore's recorded limit (0 when none is recorded), and
	// Used the permits its live holdings take. Both are 0 for other kinds.
	Limit, Used int
}

// Holding is one holding of a read-write lock or semaphore, as
// [Inspector.Inspect] sees it.
type Holding struct {
	Owner   string        // the holder's owner token
	Write   bool          // a write hold of a read-write lock
	Count   int           // hold count
	Permits int           // a semaphore holding's permits; 0 otherwise
	Fence   int64         // fencing token of the holding
	TTL     time.Duration // remaining lease
}
