// Package locker is disgo's portable distributed lock: the facade [Locker]
// and the four small contracts it is composed from.
//
// # The facade
//
// A [Locker] hands out locks on keys of type T. T is the key type of your
// domain: Locker[string] for plain names, or Locker[OrderID] with a key
// function ([Options.Key]) that maps an order id to a lock name. Making T the
// key type means the compiler stops you from locking a tenant id with the
// order locker, and the mapping to store keys lives in one place instead of
// at every call site. All locks of one Locker share its [Options.Namespace].
//
// The three ways to acquire cover every capability of the seed API in one call:
//
//   - [Locker.TryLock]: a single attempt, no waiting, fixed lease, no renewal.
//   - [Locker.Lock]: wait up to a wait time (and ctx) with a fixed lease.
//   - [Locker.LockWithRenewal]: wait, then keep the lease alive until release.
//
// Each returns a [*Lock] handle that exposes the fencing token, the lease
// deadline and a loss signal ([Lock.Done], [Lock.Err]); [Lock.Release]
// undoes one acquisition.
//
// # The contracts
//
// A store plugs in through [Backend] (atomic lock state), [Queue] (the FIFO
// waiting room for fair mode), [Notifier] (release wake-ups) and [Renewer]
// (keeping leases alive; the default is package renewer). Drivers never
// retry: waiting, retry and backoff policy live in the facade. Optional
// capabilities are separate interfaces found by type assertion, as in
// database/sql/driver: [Inspector] for inspection, and renewer.BatchExtender
// for pipelined renewal.
//
// # Errors
//
// Every error returned by the facade is an [*Error] carrying the operation
// and the lock name, wrapping one of the sentinels ([ErrNotObtained],
// [ErrNotHeld], [ErrLost], [ErrBackend], [ErrInvalidArgument],
// [ErrUnsupported], [ErrClosed]) or a context error, all matchable with
// errors.Is. Bad input is rejected with an [*ArgumentError] before anything
// touches the store.
package locker
