// Package locker is disgo's portable distributed lock: the [Locker] you
// acquire with, the [Lock] handle you hold, their [Options] and errors.
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
// The three ways to acquire cover every capability of DisGo's original API, each in one call:
//
//   - [Locker.TryLock]: a single attempt, no waiting, fixed lease, no renewal.
//   - [Locker.Lock]: wait up to a wait time (and ctx) with a fixed lease.
//   - [Locker.LockWithRenewal]: wait, then keep the lease alive until release.
//
// Each returns a [*Lock] handle that exposes the fencing token, the lease
// deadline and a loss signal ([Lock.Done], [Lock.Err]); [Lock.Release]
// undoes one acquisition.
//
// # Stores
//
// [New] takes a store: backend/goredis or backend/rueidis for Redis,
// backend/memory in one process. A store plugs in through the contracts of
// package locker/driver (Backend, Queue, Notifier, Renewer and the optional
// capabilities listed there); writing one is only for backend authors, who
// prove it with package conformance. Stores never retry: waiting, retry and
// backoff policy live here.
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
