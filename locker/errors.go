package locker

import (
	"errors"
	"fmt"
	"strings"

	"github.com/disgolock/disgo/locker/driver"
)

// Sentinel errors. Match them with errors.Is; the facade wraps each exactly
// once in an [*Error] that names the operation and the lock.
var (
	// ErrNotObtained: the lock is held by another owner and was not
	// obtained within the wait time (or at once, for TryLock).
	ErrNotObtained = errors.New("lock not obtained")

	// ErrNotHeld: release or extend by an owner that does not hold the lock:
	// never held it, released it already, or its lease expired.
	ErrNotHeld = errors.New("lock not held")

	// ErrLost: a held lock was lost: its lease lapsed, renewal could not be
	// confirmed before the deadline, or the store no longer names this owner.
	// It is what [Lock.Err] reports after [Lock.Done] closes for a loss.
	ErrLost = errors.New("lock lost")

	// ErrReleased is what [Lock.Err] reports after the handle was released.
	ErrReleased = errors.New("lock released")

	// ErrBackend: the store failed or could not be reached. The driver's
	// own error is wrapped too and can be matched with errors.Is/As.
	ErrBackend = errors.New("lock store failed")

	// ErrInvalidArgument: bad input, rejected before the store is touched.
	// The concrete error is an [*ArgumentError].
	ErrInvalidArgument = errors.New("invalid argument")

	// ErrUnsupported: the backend lacks a capability the options ask for,
	// for example fair mode without a [Queue].
	ErrUnsupported = errors.New("unsupported by backend")

	// ErrClosed: the Locker was closed. Acquiring calls that were waiting
	// when [Locker.Close] was called return it at once, and later ones
	// fail with it.
	ErrClosed = errors.New("locker closed")

	// ErrFence: the store cannot issue a fencing token greater than the
	// last one of the name, because its record of the last token is not a
	// number or has reached the end of the int64 range. Nothing was
	// acquired. It comes wrapped in [ErrBackend]; an operator must repair
	// or delete the record (see the README's key layout). It is
	// driver.ErrFence, the error stores report it with.
	ErrFence = driver.ErrFence

	// ErrRevoked: an operator freed the lock with [Locker.ForceRelease]
	// (or disgo release --force). A handle that lost its lock so reports
	// an [ErrLost] error that also matches ErrRevoked. It is
	// driver.ErrRevoked.
	ErrRevoked = driver.ErrRevoked

	// ErrUpgrade: a write lock asked of a read-write lock (see [NewRW]) by
	// an owner that holds a read lock of the name and no write lock.
	// Upgrading is refused because two readers upgrading at once would
	// wait for each other for ever: release the read lock first, or take
	// the write lock first (a write holder may also take the read lock).
	// The call fails at once, without waiting, and nothing changed. It is
	// driver.ErrUpgrade.
	ErrUpgrade = driver.ErrUpgrade

	// ErrMismatch: a semaphore (see [NewSemaphore]) was asked with another
	// limit than the one its name was declared with by its current holders
	// or fair-queue waiters, or re-entered with another number of permits than the
	// owner holds. The call fails at once, without waiting, and nothing
	// changed. It is driver.ErrMismatch.
	ErrMismatch = driver.ErrMismatch
)

// conflict reports whether err is a refusal of the store that waiting
// cannot change.
func conflict(err error) bool {
	return errors.Is(err, ErrUpgrade) || errors.Is(err, ErrMismatch)
}

// ArgumentError describes bad input. errors.Is(err, ErrInvalidArgument)
// holds for every ArgumentError.
type ArgumentError struct {
	Arg    string // the argument or option, e.g. "lease", "Options.Namespace"
	Reason string // what is wrong with it
}

func (e *ArgumentError) Error() string { return fmt.Sprintf("invalid %s: %s", e.Arg, e.Reason) }

// Is reports ErrInvalidArgument as a match.
func (e *ArgumentError) Is(target error) bool { return target == ErrInvalidArgument }

func argError(arg, format string, a ...any) error {
	return &ArgumentError{Arg: arg, Reason: fmt.Sprintf(format, a...)}
}

// Error is the one wrapper the facade puts around every error it returns.
type Error struct {
	Op   string // "lock", "trylock", "release", "extend", "new", ...
	Name string // the lock name (namespace-qualified); empty for Locker-wide operations
	Err  error  // a sentinel of this package, possibly joined with a cause, or a context error
}

// Error returns the message on one line: "disgo: <op> "<name>": <cause>".
// A cause whose own message spans lines is joined with "; ".
func (e *Error) Error() string {
	msg := "<nil>"
	if e.Err != nil {
		msg = oneLine(e.Err.Error())
	}
	if e.Name == "" {
		return "disgo: " + e.Op + ": " + msg
	}
	return fmt.Sprintf("disgo: %s %q: %s", e.Op, e.Name, msg)
}

// oneLine joins the lines of a message with "; ".
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	var parts []string
	for _, p := range strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' }) {
		if p = strings.TrimSpace(p); p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, "; ")
}

// withCause returns sentinel with cause, on one line ("<sentinel>: <cause>"),
// both matchable with errors.Is.
func withCause(sentinel, cause error) error {
	if cause == nil {
		return sentinel
	}
	return fmt.Errorf("%w: %w", sentinel, cause)
}

func (e *Error) Unwrap() error { return e.Err }

// backendError marks a driver failure with ErrBackend while keeping the cause matchable.
// joinErrors is errors.Join on one line: the messages are separated by
// "; ", so that an error the facade returns keeps the one-line promise,
// and errors.Is and errors.As still see every one of them.
func joinErrors(errs ...error) error {
	var j joined
	for _, err := range errs {
		switch e := err.(type) {
		case nil:
		case joined:
			j = append(j, e...)
		default:
			j = append(j, err)
		}
	}
	switch len(j) {
	case 0:
		return nil
	case 1:
		return j[0]
	}
	return j
}

// joined is the error of joinErrors.
type joined []error

func (j joined) Error() string {
	var b strings.Builder
	for i, err := range j {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(oneLine(err.Error()))
	}
	return b.String()
}

func (j joined) Unwrap() []error { return j }

func backendError(cause error) error {
	if cause == nil || errors.Is(cause, ErrBackend) {
		return cause
	}
	return withCause(ErrBackend, cause)
}

var errNotHeldByStore = errors.New("the store no longer names this owner")
