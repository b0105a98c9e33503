package locker

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/disgolock/disgo/renewer"
)

// Observer receives what a [Locker] does, for metrics, traces or logs
// (package github.com/disgolock/disgo/otel bridges it to OpenTelemetry).
// Set it with [Options.Observer]; without one the Locker makes no call,
// reads no clock and allocates nothing for observation.
//
// Every method is called synchronously on the goroutine named in its
// documentation, never while the Locker holds its own lock, so a method
// may call the methods of a [*Lock] (but never [Locker.Close], which waits
// for the goroutines that call it). Every method must be quick and must
// not block: an Observer that blocks stalls the acquiring call, the
// renewal of every lock of the Locker, or its clean-ups. Implementations
// must be safe for concurrent use: the methods are called from many
// goroutines at once.
//
// Only operations that reach the store are observed: a call rejected
// before that (bad arguments, a ctx already done, a closed Locker, a
// handle released already) returns its error without any call.
//
// Embed [NopObserver] in an implementation to keep it compiling when
// methods are added to this interface.
type Observer interface {
	// OpStart is called on the caller's goroutine when an operation
	// (TryLock, Lock, LockWithRenewal, Release, Extend) begins, before its
	// first store call. It returns the context that the operation then
	// uses for its store calls and passes to OpEnd: ctx itself, or a
	// context derived from it (for example one that carries a span). A nil
	// return means ctx.
	OpStart(ctx context.Context, op Operation) context.Context

	// OpEnd is called on the caller's goroutine when the operation that
	// OpStart began returns, with the context OpStart returned. Events of
	// the operation ([EventHeld], [EventHandOff], [EventStoreError],
	// [EventReleased]) come between the two calls.
	OpEnd(ctx context.Context, r OpResult)

	// Event reports what happens to a holding, and store failures. It is
	// called on the goroutine that saw it: the acquiring, releasing or
	// extending caller's; the renewer's for [EventRenewed],
	// [EventRenewalFailed] and the loss that follows; a timer's for a
	// lease that expired; the goroutine of Locker.Close for the losses it
	// causes; the Locker's clean-up goroutine for store errors of the
	// clean-ups it retries. See [EventKind] for each kind.
	Event(e Event)
}

// NopObserver is an [Observer] that does nothing. Embed it to implement
// only the methods you need.
type NopObserver struct{}

// OpStart returns ctx.
func (NopObserver) OpStart(ctx context.Context, _ Operation) context.Context { return ctx }

// OpEnd does nothing.
func (NopObserver) OpEnd(context.Context, OpResult) {}

// Event does nothing.
func (NopObserver) Event(Event) {}

// Op names an observed operation.
type Op uint8

// The observed operations. String gives the names used in metrics and
// span names ("disgo.<op>").
const (
	OpTryLock         Op = iota + 1 // Locker.TryLock: "trylock"
	OpLock                          // Locker.Lock: "lock"
	OpLockWithRenewal               // Locker.LockWithRenewal: "lock_with_renewal"
	OpRelease                       // Lock.Release: "release"
	OpExtend                        // Lock.Extend: "extend"
)

func (o Op) String() string {
	switch o {
	case OpTryLock:
		return "trylock"
	case OpLock:
		return "lock"
	case OpLockWithRenewal:
		return "lock_with_renewal"
	case OpRelease:
		return "release"
	case OpExtend:
		return "extend"
	}
	return "unknown"
}

// Acquiring reports whether o is TryLock, Lock or LockWithRenewal.
func (o Op) Acquiring() bool { return o == OpTryLock || o == OpLock || o == OpLockWithRenewal }

// Operation is what [Observer.OpStart] is told about an operation.
type Operation struct {
	Op   Op
	Name string // the namespace-qualified lock name
	Mode Mode   // the Locker's mode
}

// Outcome classifies how an operation ended.
type Outcome uint8

// The outcomes. String gives the names used as metric and span attributes.
const (
	OutcomeOK          Outcome = iota // "ok": acquired, released or extended
	OutcomeNotObtained                // "not_obtained": ErrNotObtained (taken, the wait elapsed)
	OutcomeNotHeld                    // "not_held": ErrNotHeld (Release, Extend)
	OutcomeCanceled                   // "canceled": the caller's ctx ended (cancelled or its deadline passed)
	OutcomeClosed                     // "closed": ErrClosed, the Locker was closed during the call
	OutcomeStoreError                 // "store_error": ErrBackend, the store failed or was unreachable
)

func (o Outcome) String() string {
	switch o {
	case OutcomeOK:
		return "ok"
	case OutcomeNotObtained:
		return "not_obtained"
	case OutcomeNotHeld:
		return "not_held"
	case OutcomeCanceled:
		return "canceled"
	case OutcomeClosed:
		return "closed"
	case OutcomeStoreError:
		return "store_error"
	}
	return "unknown"
}

// outcomeOf classifies the error an operation returns.
func outcomeOf(err error) Outcome {
	switch {
	case err == nil:
		return OutcomeOK
	case errors.Is(err, ErrNotObtained):
		return OutcomeNotObtained
	case errors.Is(err, ErrNotHeld):
		return OutcomeNotHeld
	case errors.Is(err, ErrClosed):
		return OutcomeClosed
	case errors.Is(err, ErrBackend): // before ctx errors: a store call may time out (RequestTimeout)
		return OutcomeStoreError
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return OutcomeCanceled
	}
	return OutcomeStoreError
}

// OpResult is what [Observer.OpEnd] is told about an operation.
type OpResult struct {
	Operation
	Outcome Outcome
	// Err is the error the operation returned (an [*Error]); nil when
	// Outcome is OutcomeOK.
	Err error
	// Fence is the fencing token of the holding: the one acquired, or the
	// one of the handle released or extended; 0 when nothing was acquired.
	Fence int64
	// Position is, for an acquiring call in fair mode, the 0-based place
	// in the queue that the store last reported to the call while it
	// waited; -1 when it reported none (Barging mode, a TryLock, or a lock
	// taken at the first attempt) and for Release and Extend.
	Position int
	// Wait is, for Lock and LockWithRenewal, how long the call waited for
	// the lock: from the start of its first attempt that found the lock
	// taken (or failed) until the call returned; 0 when the first attempt
	// settled the call, and for TryLock, Release and Extend.
	Wait time.Duration
	// Latency is how long the whole operation took, from OpStart to OpEnd.
	Latency time.Duration
	// HandOff reports that the lock was taken by a direct grant from the
	// store (fair mode; see [EventHandOff]).
	HandOff bool
}

// EventKind names an [Event].
type EventKind uint8

// The events. A holding is one (lock name, owner) acquisition, shared by
// the handles that re-entered it through one Locker: it starts with
// EventHeld and ends with exactly one EventReleased or EventLost, so that
// the holdings active now are the count of the first minus the others.
const (
	// EventHeld: a holding started (a fresh acquisition, not a
	// re-entry). Caller's goroutine, before OpEnd.
	EventHeld EventKind = iota + 1
	// EventReleased: the last handle of a holding was released. The
	// holding ends here whatever the store answers (a failed release
	// leaves a lease that ends on its own). Caller's goroutine, before
	// OpEnd.
	EventReleased
	// EventLost: a holding ended without being released; Cause says why
	// and Err is the cause as the Locker saw it. On the renewer's
	// goroutine (after EventRenewalFailed), a timer's (LossExpired), the
	// Extend caller's (LossNotHeld), Locker.Close's (LossClosed), the
	// ForceRelease caller's (LossRevoked) or an acquiring caller's
	// (LossSuperseded).
	EventLost
	// EventRenewed: a renewal of an auto-renewed lease was confirmed.
	// Renewer's goroutine.
	EventRenewed
	// EventRenewalFailed: renewal gave up on a holding (the store no
	// longer names the owner or reports it revoked, or no renewal could be
	// confirmed before the lease deadline); EventLost follows. Err is the renewer's error. The
	// renewer retries failed requests on its own before that; those
	// retries are not reported. Renewer's goroutine.
	EventRenewalFailed
	// EventHandOff: an acquiring call took the lock by a direct grant from
	// the store (a fair release handed it to this waiter, see
	// driver.Subscription.Granted) without an attempt of its own. Caller's
	// goroutine, after EventHeld and before OpEnd.
	EventHandOff
	// EventStoreError: a store call failed; StoreOp names it ("acquire",
	// "release", "extend", "leave", "subscribe") and Err is the store's
	// error. Calls the caller's own ctx ended are not reported. On the
	// goroutine of the operation, or on the Locker's clean-up goroutine
	// for the clean-ups it retries in the background.
	EventStoreError
	// EventLapsed: an acquisition was given back because its lease had
	// ended before the store's answer was seen (this process stalled, or
	// the lease is shorter than the round trip; see Locker.Lock); the call
	// attempts again unless its wait is over. Caller's goroutine, before
	// OpEnd.
	EventLapsed
)

func (k EventKind) String() string {
	switch k {
	case EventHeld:
		return "held"
	case EventReleased:
		return "released"
	case EventLost:
		return "lost"
	case EventRenewed:
		return "renewed"
	case EventRenewalFailed:
		return "renewal_failed"
	case EventHandOff:
		return "handoff"
	case EventStoreError:
		return "store_error"
	case EventLapsed:
		return "lapsed"
	}
	return "unknown"
}

// LossCause says why a holding was lost ([EventLost]).
type LossCause uint8

// The causes of a loss. String gives the names used as the "cause" metric
// attribute.
const (
	LossOther      LossCause = iota // "other": a cause not listed here (a custom Renewer's)
	LossExpired                     // "expired": the fixed lease of a lock that is not renewed ran out
	LossNotHeld                     // "not_held": the store no longer names the owner (renewal or Extend found it gone)
	LossDeadline                    // "deadline": no renewal could be confirmed before the lease deadline (store unreachable)
	LossSuperseded                  // "superseded": the store reports a new holding of this owner (the old one lapsed)
	LossClosed                      // "closed": the Locker (or its renewer) was closed
	LossRevoked                     // "revoked": an operator forced it out ([Locker.ForceRelease], [ErrRevoked])
)

func (c LossCause) String() string {
	switch c {
	case LossExpired:
		return "expired"
	case LossNotHeld:
		return "not_held"
	case LossDeadline:
		return "deadline"
	case LossSuperseded:
		return "superseded"
	case LossClosed:
		return "closed"
	case LossRevoked:
		return "revoked"
	}
	return "other"
}

var (
	errLeaseExpired = errors.New("lease expired")
	errSuperseded   = errors.New("the store reports a new holding of this owner")
)

func lossCause(err error) LossCause {
	switch {
	case errors.Is(err, ErrRevoked):
		return LossRevoked
	case errors.Is(err, ErrClosed), errors.Is(err, renewer.ErrClosed):
		return LossClosed
	case errors.Is(err, errLeaseExpired):
		return LossExpired
	case errors.Is(err, errSuperseded):
		return LossSuperseded
	case errors.Is(err, errNotHeldByStore), errors.Is(err, renewer.ErrNotHeld):
		return LossNotHeld
	case errors.Is(err, renewer.ErrDeadline):
		return LossDeadline
	}
	return LossOther
}

// Event is what [Observer.Event] is told. Fields that do not apply to a
// kind are zero.
type Event struct {
	Kind  EventKind
	Name  string // the namespace-qualified lock name
	Fence int64  // the holding's fencing token; 0 for EventStoreError
	// Cause is, for EventLost, why the holding was lost.
	Cause LossCause
	// StoreOp is, for EventStoreError, the store call that failed.
	StoreOp string
	// Err is, for EventLost, EventRenewalFailed and EventStoreError, the
	// error behind the event.
	Err error
}

// The rest of this file is the Locker's side: every helper is called only
// when an Observer (or a Logger) is set, so that without one nothing is
// measured or allocated.

func opOf(op string, renew bool) Op {
	switch {
	case op == "trylock", op == "trylock all":
		return OpTryLock
	case renew:
		return OpLockWithRenewal
	}
	return OpLock
}

// opStart begins an observed operation (l.obs set) and returns its context.
func (l *Locker[T]) opStart(ctx context.Context, op Op, name string) context.Context {
	if c := l.obs.OpStart(ctx, Operation{Op: op, Name: name, Mode: l.cfg.Mode}); c != nil {
		return c
	}
	return ctx
}

// opEnd ends an observed operation (l.obs set) begun at t0.
func (l *Locker[T]) opEnd(ctx context.Context, op Op, name string, t0 time.Time, fence int64, err error) {
	l.obs.OpEnd(ctx, OpResult{
		Operation: Operation{Op: op, Name: name, Mode: l.cfg.Mode},
		Outcome:   outcomeOf(err), Err: err, Fence: fence, Position: -1,
		Latency: time.Since(t0),
	})
}

// acquireEnd ends an observed acquiring call (l.obs set) begun at t0.
func (l *Locker[T]) acquireEnd(ctx context.Context, op Op, t0 time.Time, a *attempt, wait time.Duration, lk *Lock[T], err error) {
	end := time.Now()
	r := OpResult{
		Operation: Operation{Op: op, Name: a.req.Name, Mode: l.cfg.Mode},
		Outcome:   outcomeOf(err), Err: err, Position: a.position,
		Latency: end.Sub(t0),
	}
	if wait > 0 && !a.waitFrom.IsZero() {
		r.Wait = end.Sub(a.waitFrom)
	}
	if lk != nil {
		r.Fence, r.HandOff = lk.fence, a.granted
		if a.granted {
			l.obs.Event(Event{Kind: EventHandOff, Name: a.req.Name, Fence: lk.fence})
		}
	}
	l.obs.OpEnd(ctx, r)
}

// storeError reports a failed store call, unless ctx, the caller's own,
// ended it.
func storeError(obs Observer, ctx context.Context, name, op string, err error) {
	if obs != nil && ctx.Err() == nil {
		obs.Event(Event{Kind: EventStoreError, Name: name, StoreOp: op, Err: err})
	}
}

// cleanupError reports a failed clean-up call, unless Locker.Close
// cancelled ctx: running out of its time is a store failure.
func cleanupError(obs Observer, ctx context.Context, name, op string, err error) {
	if obs != nil && !errors.Is(ctx.Err(), context.Canceled) {
		obs.Event(Event{Kind: EventStoreError, Name: name, StoreOp: op, Err: err})
	}
}

// lost reports the loss of h (not under l.mu).
func (l *Locker[T]) lost(h *hold, cause error, byRenewal bool) {
	lc := lossCause(cause)
	if l.obs != nil {
		if byRenewal {
			l.obs.Event(Event{Kind: EventRenewalFailed, Name: h.key.name, Fence: h.fence, Err: cause})
		}
		l.obs.Event(Event{Kind: EventLost, Name: h.key.name, Fence: h.fence, Cause: lc, Err: cause})
	}
	if l.log != nil {
		level := slog.LevelWarn
		if lc == LossClosed {
			level = slog.LevelDebug // the user closed the Locker: expected
		}
		if byRenewal {
			l.log.LogAttrs(context.Background(), level, "disgo: renewal failed",
				slog.String("lock", h.key.name), slog.Int64("fence", h.fence), slog.Any("err", cause))
		}
		l.log.LogAttrs(context.Background(), level, "disgo: lock lost",
			slog.String("lock", h.key.name), slog.Int64("fence", h.fence),
			slog.String("cause", lc.String()), slog.Any("err", cause))
	}
}

// lapsed reports (EventLapsed) and logs an acquisition given back because
// its lease had ended before its answer was seen (see won); again tells
// whether the call attempts once more.
func (l *Locker[T]) lapsed(name string, again bool) {
	if l.obs != nil {
		l.obs.Event(Event{Kind: EventLapsed, Name: name})
	}
	if l.log != nil {
		l.log.LogAttrs(context.Background(), slog.LevelWarn, "disgo: an acquisition's lease ended before its answer was seen (the process stalled, or the answer was delayed); it was given back",
			slog.String("lock", name), slog.Bool("attempting again", again))
	}
}
