// Package driver holds the contracts a lock store implements to plug into
// package locker: the interfaces, and the request and result types they
// exchange. Users of locks never need it; authors of backends do, together
// with package conformance, which proves an implementation correct.
//
// # Base interfaces
//
//   - [Backend]: atomic lock state (acquire, release, extend), one round
//     trip per call. Every store implements it.
//   - [Notifier], with its [Subscription]: release wake-ups, and the
//     direct hand-off of fair mode ([Subscription].Granted). A store
//     without one still works: waiters then re-check on a timer.
//   - [Renewer]: keeps the leases of auto-renewed locks alive. Package
//     renewer is the default; stores do not implement it.
//
// # Optional capabilities
//
// A Backend may implement more, found by type assertion as in
// database/sql/driver:
//
//   - [Queue]: the FIFO waiting room; needed for locker's Fair mode.
//   - [Inspector]: read-only inspection of a lock and its queue, for
//     tooling (the disgo command) and tests.
//   - [BatchExtender]: many renewals in one round trip; package renewer
//     uses it when present.
//   - [ForceReleaser]: an operator's release of a lock whoever holds it
//     (locker.Locker.ForceRelease, disgo release --force).
//   - [MultiAcquirer]: one atomic attempt at several locks, all or
//     nothing (locker.Locker.TryLockAll and LockAll use it when present).
//   - [RWLocker]: read-write locks (locker.NewRW), as two views of the
//     store that implement Backend.
//   - [Semaphorer]: counting semaphores (locker.NewSemaphore), as a view
//     of the store that implements Backend.
//
// A decorator that wraps a Backend must forward exactly these; everything
// else is in the base interfaces, so nothing disappears silently.
//
// # Rules every method follows
//
// Methods are safe for concurrent use. They never retry: a failed call
// returns its error, and the facade decides. On ctx cancellation they
// return promptly with an error wrapping ctx.Err(); the change may or may
// not have been applied, which the facade accounts for. A call that changed
// the store reports success: it must not fail after it wrote. "Not held"
// and "taken" are results, not errors.
package driver
