package locker

import (
	"context"
	"errors"
	"github.com/disgolock/disgo/internal/token"
	"github.com/disgolock/disgo/locker/driver"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/disgolock/disgo/renewer"
)

// Locker hands out distributed locks on keys of type T. It is safe for
// concurrent use. Create one per store and namespace and share it: it owns
// the renewal scheduler and shares the store's subscriptions among all of
// its waiters.
type Locker[T any] struct {
	cfg     config[T]
	backend driver.Backend
	queue   driver.Queue // nil in Barging mode
	notify  driver.Notifier
	renew   driver.Renewer
	ownRenw *renewer.Renewer // the default renewer, closed by Close

	mu      sync.Mutex
	closed  atomic.Bool // set under mu; read without it on the way in
	holds   map[holdKey]*hold
	waiting sync.WaitGroup // acquiring calls in their wait loop; Add under mu while not closed

	closing context.Context // cancelled by Close: ends every wait
	shut    context.CancelFunc
	janitor janitor // give-up clean-ups the store could not take at once

	obs Observer     // Options.Observer; nil: nothing is observed
	log *slog.Logger // Options.Logger; nil: nothing is logged

	kind  kind       // what the backend's locks are: a mutex unless a view made by NewRW or NewSemaphore
	limit int        // a semaphore's permits per name
	peer  *Locker[T] // the other side of a read-write lock, whose holdings a force release ends too
}

// kind is the kind of lock a Locker hands out.
type kind uint8

const (
	kindMutex kind = iota
	kindRead
	kindWrite
	kindSemaphore
)

type holdKey struct{ name, owner string }

// hold is the local state of one (name, owner) holding, shared by every
// handle that re-entered it through this Locker.
type hold struct {
	key      holdKey
	fence    int64
	deadline time.Time
	first    *lockState              // a live handle, or nil (the usual single handle needs no map)
	more     map[*lockState]struct{} // the other live handles (re-entries); made when needed
	timer    *time.Timer             // fires at deadline while not renewed
	stop     func()                  // stops renewal; nil while not renewed
	gone     bool                    // lost or fully released: no longer in Locker.holds
}

// add (Locker.mu held) records a live handle of h.
func (h *hold) add(st *lockState) {
	if h.first == nil {
		h.first = st
		return
	}
	if h.more == nil {
		h.more = make(map[*lockState]struct{})
	}
	h.more[st] = struct{}{}
}

// remove (Locker.mu held) forgets a handle of h and reports whether h has
// live handles left.
func (h *hold) remove(st *lockState) (left bool) {
	if h.first == st {
		h.first = nil
	} else {
		delete(h.more, st)
	}
	return h.first != nil || len(h.more) > 0
}

// end (Locker.mu held) ends every live handle of h with err.
func (h *hold) end(err error) {
	if h.first != nil {
		h.first.end(err)
	}
	for st := range h.more {
		st.end(err)
	}
}

// heldLock is one allocation for a handle and, when the handle starts a
// holding, the holding's state: an uncontended lock and unlock allocate
// once for both. A re-entry leaves h unused.
type heldLock[T any] struct {
	lk Lock[T]
	h  hold
}

// nopStop marks a holding whose renewal is being started (see register).
func nopStop() {}

// New returns a Locker on backend b (a store adapter such as
// backend/goredis, backend/rueidis or backend/memory). Fair mode uses b's
// driver.Queue; wake-ups come from b's driver.Notifier unless
// Options.Notifier names another; the Renewer defaults to renewer.New(b).
// It fails with an [*ArgumentError] for a nil backend or invalid options,
// and with [ErrUnsupported] for Fair mode on a backend without a queue.
func New[T any](b driver.Backend, opts Options[T]) (*Locker[T], error) {
	if b == nil {
		return nil, &Error{Op: "new", Err: argError("backend", "nil")}
	}
	return newLocker(b, opts, kindMutex, 0)
}

func newLocker[T any](b driver.Backend, opts Options[T], k kind, limit int) (*Locker[T], error) {
	wrap := func(err error) error { return &Error{Op: "new", Err: err} }
	cfg, err := opts.resolve()
	if err != nil {
		return nil, wrap(err)
	}
	l := &Locker[T]{cfg: cfg, backend: b, notify: cfg.Notifier, renew: cfg.Renewer, holds: make(map[holdKey]*hold), kind: k, limit: limit}
	l.obs, l.log = cfg.Observer, cfg.Logger
	l.closing, l.shut = context.WithCancel(context.Background())
	l.janitor.init(b, cfg.RequestTimeout, l.closing)
	l.janitor.log = cfg.Logger
	if cfg.Mode == Fair {
		q, ok := b.(driver.Queue)
		if !ok {
			return nil, wrap(withCause(ErrUnsupported, errors.New("fair mode needs a backend that implements driver.Queue; set Options.Mode to Barging")))
		}
		l.queue = q
	}
	if l.notify == nil {
		l.notify, _ = b.(driver.Notifier)
	}
	if l.renew == nil {
		r, err := renewer.New(b, renewer.Options{RequestTimeout: cfg.RequestTimeout})
		if err != nil {
			return nil, wrap(err)
		}
		l.renew, l.ownRenw = r, r
	}
	return l, nil
}

// Name returns the lock name of key: the namespace-qualified name the
// store sees (see [Options.Namespace] for how it is formed). It fails with
// an [*ArgumentError] when the key maps to an empty string or the name is
// longer than MaxNameLen.
func (l *Locker[T]) Name(key T) (string, error) {
	name, err := l.name(key)
	if err != nil {
		return "", &Error{Op: "name", Err: err}
	}
	return name, nil
}

func (l *Locker[T]) name(key T) (string, error) {
	k := l.cfg.key(key)
	if k == "" {
		return "", argError("key", "maps to an empty lock name")
	}
	var name string
	if l.cfg.ns != "" {
		name = l.cfg.ns + ":" + k
	} else {
		name = escapeName(k)
	}
	if len(name) > MaxNameLen {
		return "", argError("key", "lock name is %d bytes, longer than MaxNameLen (%d)", len(name), MaxNameLen)
	}
	return name, nil
}

// TryLock makes a single attempt to take the lock of key with a fixed
// lease (from [MinLease] to [MaxLease]): no waiting, no renewal. It fails
// with [ErrNotObtained] when another owner holds the lock (in fair mode
// also when others are queued), and otherwise as [Locker.Lock] does.
func (l *Locker[T]) TryLock(ctx context.Context, key T, lease time.Duration, opts ...CallOption) (*Lock[T], error) {
	return l.acquire(ctx, "trylock", key, 0, lease, false, opts)
}

// Lock waits up to wait (at most [MaxWait]), and while ctx is not done, to
// take the lock of key with a fixed lease (from [MinLease] to [MaxLease]),
// which is not renewed. A wait of zero makes a single attempt;
// [WaitForever] waits until ctx is done. The waiter wakes on the release of
// the lock and re-checks at least every FallbackInterval (and when the
// holder's lease ends).
//
// It fails with [ErrNotObtained] when the wait elapsed, with ctx's error
// when ctx is done, with [ErrClosed] when the Locker is closed while it
// waits, and with [ErrBackend] when the store failed on the last attempt.
// It never returns a held lock once ctx is done: an acquisition or a
// hand-off that arrives too late is given back by the call's ticket. Nor
// does it return one whose lease has already ended, as when this process
// stalled (a GC pause, SIGSTOP, a frozen VM) while the store's answer was
// on its way, or the lease is shorter than the store's round trip: that
// acquisition is given back too, and the call attempts again, with a new
// ticket at the end of the fair queue, while its wait lasts (at once, then
// after a backoff from 10 ms doubling to 1 s, so that a lease shorter than
// the round trip does not make it hammer the store). A wait of zero then
// fails with ErrNotObtained, as does a call whose giving back the store
// did not answer (it is retried in the background, as below).
//
// A call that gives up leaves the fair queue and undoes what its ticket may
// hold before it returns, within 250 ms; when the store does not answer in
// that time (an outage), the Locker keeps retrying that clean-up in the
// background until the store answers or its own timeouts (the waiter TTL
// and the lease) have ended what it would remove, so that an outage does
// not leave the lock granted to a caller that is gone.
func (l *Locker[T]) Lock(ctx context.Context, key T, wait, lease time.Duration, opts ...CallOption) (*Lock[T], error) {
	return l.acquire(ctx, "lock", key, wait, lease, false, opts)
}

// LockWithRenewal waits like [Locker.Lock], then keeps the lease
// (Options.RenewLease) alive until the lock is released or lost. A lost
// lock closes [Lock.Done] and sets [Lock.Err] to an [ErrLost] error. It
// fails as Lock does.
func (l *Locker[T]) LockWithRenewal(ctx context.Context, key T, wait time.Duration, opts ...CallOption) (*Lock[T], error) {
	return l.acquire(ctx, "lock", key, wait, l.cfg.RenewLease, true, opts)
}

// Close ends the Locker. Acquiring calls that are waiting return
// [ErrClosed] at once, after leaving the fair queue (each gives that
// clean-up at most 250 ms); Close returns once they have. Later
// acquisitions fail with ErrClosed. Close stops renewing every lock held
// through l, whose leases then end on their own; their handles report
// [ErrLost] wrapping ErrClosed. Release and Extend of existing handles
// still work. Clean-ups that are still being retried because the store was
// unreachable (see [Locker.Lock]) are abandoned: the store's own timeouts
// end what they would have removed. Close does not close the backend. It
// is idempotent and always returns nil.
func (l *Locker[T]) Close() error {
	l.mu.Lock()
	if l.closed.Load() {
		l.mu.Unlock()
		return nil
	}
	l.closed.Store(true)
	var lost []*hold
	for _, h := range l.holds {
		lost = append(lost, h)
	}
	l.mu.Unlock()
	l.shut()
	l.waiting.Wait()
	for _, h := range lost {
		l.lose(h, ErrClosed)
	}
	l.janitor.close()
	if l.ownRenw != nil {
		l.ownRenw.Close()
	}
	return nil
}

func (l *Locker[T]) validate(ctx context.Context, key T, wait, lease time.Duration, opts []CallOption) (name string, co callOptions, err error) {
	if ctx == nil {
		return "", co, argError("ctx", "nil")
	}
	if name, err = l.name(key); err != nil {
		return "", co, err
	}
	if lease < MinLease {
		return name, co, argError("lease", "%v is below the minimum %v", lease, MinLease)
	}
	if lease > MaxLease {
		return name, co, argError("lease", "%v is above the maximum %v (MaxLease)", lease, MaxLease)
	}
	if wait < 0 {
		return name, co, argError("wait", "negative (%v)", wait)
	}
	if wait > MaxWait && wait != WaitForever {
		return name, co, argError("wait", "%v is above the maximum %v (MaxWait); use WaitForever to wait until ctx is done", wait, MaxWait)
	}
	if len(opts) > 0 {
		var o callOptions // escapes to the options: declared here, it is allocated only when there are some
		for _, f := range opts {
			f(&o)
		}
		co = o
	}
	if co.owner == "" {
		if co.set {
			return name, co, argError("owner", "empty")
		}
		co.owner = NewOwner()
	}
	switch {
	case l.kind != kindSemaphore && co.psSet:
		return name, co, argError("permits", "WithPermits is for semaphores (NewSemaphore)")
	case l.kind != kindSemaphore:
	case !co.psSet:
		co.permits = 1
	case co.permits < 1:
		return name, co, argError("permits", "%d is below 1", co.permits)
	case co.permits > l.limit:
		return name, co, argError("permits", "%d is above the semaphore's limit %d", co.permits, l.limit)
	}
	if len(co.owner) > MaxOwnerLen {
		return name, co, argError("owner", "%d bytes, longer than MaxOwnerLen (%d)", len(co.owner), MaxOwnerLen)
	}
	if err := ctx.Err(); err != nil {
		return name, co, err
	}
	return name, co, nil
}

func (l *Locker[T]) acquire(ctx context.Context, op string, key T, wait, lease time.Duration, renew bool, opts []CallOption) (*Lock[T], error) {
	name, co, err := l.validate(ctx, key, wait, lease, opts)
	if err != nil {
		return nil, &Error{Op: op, Name: name, Err: err}
	}
	if l.closed.Load() {
		return nil, &Error{Op: op, Name: name, Err: ErrClosed}
	}
	a := attempt{
		backend: l.backend, queue: l.queue, timeout: l.cfg.RequestTimeout,
		req:   driver.AcquireRequest{Name: name, Owner: co.owner, Ticket: token.New(), Lease: lease, Permits: co.permits, Limit: l.limit},
		renew: renew, lease: lease, obs: l.obs, position: -1,
	}
	if wait > 0 {
		a.waiterTTL = l.cfg.policy.TTL()
	}
	var t0 time.Time
	if l.obs != nil {
		t0 = time.Now()
		ctx = l.opStart(ctx, opOf(op, renew), name)
	}
	until := waitEnd(wait)
	start, res, err := l.wait(ctx, &a, wait)
	for backoff := time.Duration(0); err == errLapsed || err == errLapsedPending; {
		again := err == errLapsed && wait != 0 && waitLeft(until) > backoff
		l.lapsed(name, again)
		if !again {
			err = errNotObtainedLapsed
			break
		}
		if err = l.pause(ctx, backoff); err != nil {
			break
		}
		backoff = min(max(2*backoff, minBackoff), maxBackoff)
		a = a.again()
		start, res, err = l.wait(ctx, &a, waitLeft(until))
	}
	var h *Lock[T]
	if err == nil {
		h, err = l.register(key, a.req, start, a.lease, res, renew)
	}
	if err != nil {
		err = &Error{Op: op, Name: name, Err: err}
	}
	if l.obs != nil {
		l.acquireEnd(ctx, opOf(op, renew), t0, &a, wait, h, err)
	}
	if err != nil {
		return nil, err
	}
	return h, nil
}

// register records a fresh or re-entered holding and starts its renewal or
// its expiry timer.
func (l *Locker[T]) register(key T, req driver.AcquireRequest, start time.Time, lease time.Duration, res driver.AcquireResult, renew bool) (*Lock[T], error) {
	k := holdKey{req.Name, req.Owner}
	deadline := start.Add(lease)
	hl := &heldLock[T]{lk: Lock[T]{l: l, key: key, name: req.Name, owner: req.Owner, fence: res.Fence}}
	lk := &hl.lk

	l.mu.Lock()
	if l.closed.Load() {
		l.mu.Unlock()
		l.undo(req)
		return nil, ErrClosed
	}
	h := l.holds[k]
	var stale *hold
	if h != nil && h.fence != res.Fence {
		// The store started a new holding (a new fencing token): the one we
		// knew was lost. The same token is the same holding, whatever the
		// order in which concurrent re-entries report back.
		stale, h = h, nil
	}
	if h == nil {
		h = &hl.h
		h.key, h.fence = k, res.Fence
		l.holds[k] = h
	}
	lk.h = h
	h.add(&lk.st)
	if deadline.After(h.deadline) {
		h.deadline = deadline
	}
	var startRenew bool
	if renew && h.stop == nil {
		startRenew = true
		h.stop = nopStop // placeholder until Keep returns; set below
	}
	if h.stop == nil {
		l.armTimer(h)
	} else if h.timer != nil {
		h.timer.Stop()
		h.timer = nil
	}
	hd := h.deadline
	l.mu.Unlock()

	if stale != nil {
		l.lose(stale, errSuperseded)
	}
	if l.obs != nil && h == &hl.h {
		l.obs.Event(Event{Kind: EventHeld, Name: req.Name, Fence: res.Fence})
	}
	if startRenew {
		stop := l.renew.Keep(driver.Hold{
			Name: req.Name, Owner: req.Owner, Lease: req.Lease, Deadline: hd,
			OnRenewed: func(d time.Time) { l.renewed(h, d) },
			OnLost:    func(cause error) { l.loseBy(h, cause, true) },
		})
		l.mu.Lock()
		if h.gone {
			l.mu.Unlock()
			stop()
		} else {
			h.stop = stop
			l.mu.Unlock()
		}
	}
	return lk, nil
}

// armTimer (l.mu held) makes a holding that is not renewed end at its deadline.
func (l *Locker[T]) armTimer(h *hold) {
	if h.timer != nil {
		h.timer.Stop()
	}
	h.timer = time.AfterFunc(time.Until(h.deadline), func() { l.expire(h) })
}

func (l *Locker[T]) expire(h *hold) {
	l.mu.Lock()
	late := h.gone || h.stop != nil || time.Now().Before(h.deadline)
	l.mu.Unlock()
	if !late {
		l.lose(h, errLeaseExpired)
	}
}

func (l *Locker[T]) renewed(h *hold, d time.Time) {
	l.mu.Lock()
	gone := h.gone
	if !gone && d.After(h.deadline) {
		h.deadline = d
	}
	l.mu.Unlock()
	if l.obs != nil && !gone {
		l.obs.Event(Event{Kind: EventRenewed, Name: h.key.name, Fence: h.fence})
	}
}

// lose ends a holding: every live handle's Done closes with ErrLost
// wrapping cause, renewal stops, and the holding is forgotten.
func (l *Locker[T]) lose(h *hold, cause error) { l.loseBy(h, cause, false) }

// loseBy is lose, told whether the renewer gave up (byRenewal), for the
// Observer and the Logger.
func (l *Locker[T]) loseBy(h *hold, cause error, byRenewal bool) {
	l.mu.Lock()
	if h.gone {
		l.mu.Unlock()
		return
	}
	stop := l.forget(h)
	h.end(&Error{Op: "hold", Name: h.key.name, Err: withCause(ErrLost, cause)})
	l.mu.Unlock()
	if stop != nil {
		stop()
	}
	if l.obs != nil || l.log != nil {
		l.lost(h, cause, byRenewal)
	}
}

// forget (l.mu held) removes h from the Locker and returns its renewal stop.
func (l *Locker[T]) forget(h *hold) func() {
	h.gone = true
	if l.holds[h.key] == h {
		delete(l.holds, h.key)
	}
	if h.timer != nil {
		h.timer.Stop()
		h.timer = nil
	}
	stop := h.stop
	h.stop = nil
	return stop
}

// undo best-effort releases the acquisition made by req.Ticket: an attempt
// whose reply was lost, or one that must not stand. The ticket makes it
// undo nothing else. It uses its own context, as the caller's may be done.
// It reports whether the store answered.
func (l *Locker[T]) undo(req driver.AcquireRequest) bool {
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.RequestTimeout)
	defer cancel()
	_, _, err := l.backend.Release(ctx, req.Name, req.Owner, req.Ticket)
	return err == nil
}
