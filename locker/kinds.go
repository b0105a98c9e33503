package locker

import (
	"errors"
	"fmt"

	"github.com/disgolock/disgo/locker/driver"
)

// MaxPermits is the largest limit of a semaphore (see [NewSemaphore]).
const MaxPermits = 1 << 30

// RWLocker hands out read-write locks on keys of type T: many readers, or
// one writer, per key. Its two sides are Lockers with every method of a
// mutex Locker (TryLock, Lock, LockWithRenewal, Do, LockAll, ForceRelease):
// [RWLocker.Read] takes read locks and [RWLocker.Write] write locks. The
// read-write lock of a key is a lock of its own, apart from the key's mutex
// (from [New]) and semaphore. It is safe for concurrent use.
//
// The rules, beyond those of a mutex Locker:
//
//   - A read lock is held while no other owner holds the write lock; any
//     number of owners hold read locks together. A write lock is held while
//     no other owner holds any lock of the key.
//   - Reentrant per owner: an owner (see [WithOwner]) that holds a read
//     lock re-enters it, and one that holds the write lock re-enters that,
//     at once, whoever waits. A write holder may also take the read lock of
//     its key at once; releasing the write lock first then leaves it a
//     reader (a downgrade).
//   - An owner that holds a read lock and no write lock and asks for the
//     write lock fails at once with [ErrUpgrade]: two readers upgrading at
//     once would wait for each other for ever.
//   - Fair mode (the default) is one FIFO queue of readers and writers: a
//     waiting writer blocks the readers who come after it, so writers never
//     starve, and a run of readers at the head of the queue is admitted
//     together. Barging lets any reader in while no writer holds the lock,
//     which may starve writers.
//   - Each holding has its own lease, loss signal ([Lock.Done], [Lock.Err])
//     and fencing token, as a mutex holding has: a dead reader's share ends
//     with its lease. Read and write holdings draw their tokens from one
//     counter per key, so a write lock's token is greater than that of every
//     earlier holding of the key, read or write, and a read lock's token is
//     greater than that of every write lock released (or lost) before the
//     read lock was taken: a resource that remembers the greatest token it
//     has seen rejects a writer whose lock is older than a reader's, and the
//     other way round. Concurrent readers have distinct tokens, which do not
//     exclude one another.
//   - ForceRelease through either side frees the key's read-write lock
//     entirely: every read and write holding ends, and its holder's next
//     renewal reports [ErrRevoked].
type RWLocker[T any] struct {
	read, write *Locker[T]
}

// NewRW returns an RWLocker on backend b, with the options of [New]; both
// sides share them. It fails with an [*ArgumentError] for a nil backend or
// invalid options, and with [ErrUnsupported] when b has no read-write locks
// (driver.RWLocker) or, in Fair mode, when its views have no queue.
func NewRW[T any](b driver.Backend, opts Options[T]) (*RWLocker[T], error) {
	if b == nil {
		return nil, &Error{Op: "new", Err: argError("backend", "nil")}
	}
	rw, ok := b.(driver.RWLocker)
	if !ok {
		return nil, &Error{Op: "new", Err: withCause(ErrUnsupported, fmt.Errorf("the backend %T has no read-write locks (driver.RWLocker)", b))}
	}
	rb, wb := rw.RWLocks()
	if rb == nil || wb == nil {
		return nil, &Error{Op: "new", Err: withCause(ErrUnsupported, fmt.Errorf("the backend %T returned no read-write lock views", b))}
	}
	r, err := newLocker(rb, opts, kindRead, 0)
	if err != nil {
		return nil, err
	}
	w, err := newLocker(wb, opts, kindWrite, 0)
	if err != nil {
		r.Close()
		return nil, err
	}
	r.peer, w.peer = w, r
	return &RWLocker[T]{read: r, write: w}, nil
}

// Read returns the side of rw that takes read locks.
func (rw *RWLocker[T]) Read() *Locker[T] { return rw.read }

// Write returns the side of rw that takes write locks.
func (rw *RWLocker[T]) Write() *Locker[T] { return rw.write }

// Close closes both sides, as [Locker.Close] does. It is idempotent and
// always returns nil.
func (rw *RWLocker[T]) Close() error {
	return errors.Join(rw.read.Close(), rw.write.Close())
}

// NewSemaphore returns a Locker of counting semaphores on backend b: each
// key has limit permits (1 to [MaxPermits]), and each holding takes
// [WithPermits] of them (default 1). The semaphore of a key is a lock of
// its own, apart from the key's mutex and read-write lock. The options are
// those of [New]. Every method of a mutex Locker works, with these rules:
//
//   - A holding of k permits is taken while the permits of live holdings
//     plus k are at most limit: the permits in use never exceed it. Each
//     holding has its own lease, loss signal and fencing token (greater
//     than every earlier token of the key), and a holding whose lease ends
//     (a dead holder) gives its permits back.
//   - Every acquiring call is a holding of its own, unless it shares an
//     owner through [WithOwner]: a re-entry by an owner that holds the
//     semaphore counts the holding again and keeps its permits; asking
//     another number of permits fails at once with [ErrMismatch].
//   - All callers must declare one limit per key: while a key has holders
//     or fair-queue waiters, a call through a Locker with another limit
//     fails at once with [ErrMismatch]. A Barging waiter is not in the
//     store and records no limit: once the key is free, another limit may
//     be declared, and the waiter then fails with ErrMismatch at its next
//     attempt.
//   - Fair mode (the default) admits waiters in FIFO order, so a large
//     request is not starved by small ones: a waiter for 3 permits blocks
//     the waiters behind it until 3 are free. Barging lets any request in
//     that fits.
//   - ForceRelease frees every permit of the key: every holding ends, and
//     its holder's next renewal reports [ErrRevoked].
//
// It fails with an [*ArgumentError] for a nil backend, a limit out of
// range or invalid options, and with [ErrUnsupported] when b has no
// semaphores (driver.Semaphorer) or, in Fair mode, when its view has no
// queue.
func NewSemaphore[T any](b driver.Backend, limit int, opts Options[T]) (*Locker[T], error) {
	if b == nil {
		return nil, &Error{Op: "new", Err: argError("backend", "nil")}
	}
	if limit < 1 || limit > MaxPermits {
		return nil, &Error{Op: "new", Err: argError("limit", "%d is not from 1 to MaxPermits (%d)", limit, MaxPermits)}
	}
	s, ok := b.(driver.Semaphorer)
	if !ok {
		return nil, &Error{Op: "new", Err: withCause(ErrUnsupported, fmt.Errorf("the backend %T has no semaphores (driver.Semaphorer)", b))}
	}
	sb := s.Semaphores()
	if sb == nil {
		return nil, &Error{Op: "new", Err: withCause(ErrUnsupported, fmt.Errorf("the backend %T returned no semaphore view", b))}
	}
	return newLocker(sb, opts, kindSemaphore, limit)
}
