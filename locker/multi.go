package locker

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/disgolock/disgo/internal/token"
	"github.com/disgolock/disgo/locker/driver"
)

// MultiLock is a hold on the locks of several keys at once, taken all or
// nothing by [Locker.LockAll], [Locker.LockAllWithRenewal] or
// [Locker.TryLockAll]. Its methods are safe for concurrent use.
//
// What it guarantees: while [MultiLock.Err] is nil, one owner holds every
// lock of the set, each with its own lease and fencing token (see
// [MultiLock.Locks]); a call that fails holds none of them when it
// returns; and callers that lock overlapping sets, given in any order,
// never deadlock, because every caller takes the locks in one global order
// (by lock name) and waits for at most one at a time.
//
// Atomic where the store can: on a backend that implements
// driver.MultiAcquirer, the first attempt at the set is one atomic step
// that takes every lock or none, when the store can do that for the set
// (always on the memory backend and on a standalone Redis; on Redis
// Cluster only when every name hashes to one slot, and for at most 128
// names). TryLockAll is then that one step: others never see part of the
// set taken. LockAll makes that attempt first and, when it finds a lock
// taken, waits as described next.
//
// What it does not: waiting is not one atomic step. While a call waits
// for a later name of its set, it already holds the earlier ones, so
// others see part of the set taken (they wait, or TryLock fails, as for
// any held lock), and a call that then fails releases what it took. The
// loss of one lock of the set (its lease lapsed, it was taken or force
// released) ends the whole MultiLock: [MultiLock.Done] closes, and the
// other locks stay held until [MultiLock.Release], which the holder should
// call at once.
type MultiLock[T any] struct {
	locks []*Lock[T]
	done  chan struct{}
	once  sync.Once
	mu    sync.Mutex
	err   error // the first component's end; nil while all are held
}

// TryLockAll makes a single attempt on each lock of keys, with a fixed
// lease: it holds them all, or, when one is taken, fails with
// [ErrNotObtained] holding none. See [MultiLock] for the guarantees and
// [Locker.LockAll] for the errors.
func (l *Locker[T]) TryLockAll(ctx context.Context, keys []T, lease time.Duration, opts ...CallOption) (*MultiLock[T], error) {
	return l.lockAll(ctx, "trylock all", keys, 0, lease, false, opts)
}

// LockAll takes the locks of every key, all or nothing, with one owner and
// a fixed lease, waiting up to wait in all (and while ctx is not done). It
// takes them in the order of their lock names, waiting for each as
// [Locker.Lock] does, with what is left of wait. If one cannot be taken in
// time, it releases those it took and fails as Lock would for that name
// ([ErrNotObtained], ctx's error, [ErrClosed], [ErrBackend]); a failed
// release of what it took is joined to that error. When a lock it took
// early ended while it waited for a later one (a fixed lease shorter than
// the wait), it releases the rest and fails with that lock's [ErrLost]
// error. keys must be non-empty
// and map to distinct lock names, or it fails with an [*ArgumentError]
// before the store is touched. A re-entry works per name as for Lock (pass
// [WithOwner]).
func (l *Locker[T]) LockAll(ctx context.Context, keys []T, wait, lease time.Duration, opts ...CallOption) (*MultiLock[T], error) {
	return l.lockAll(ctx, "lock all", keys, wait, lease, false, opts)
}

// LockAllWithRenewal is [Locker.LockAll] with every lease renewed until
// the MultiLock is released or one of its locks is lost.
func (l *Locker[T]) LockAllWithRenewal(ctx context.Context, keys []T, wait time.Duration, opts ...CallOption) (*MultiLock[T], error) {
	return l.lockAll(ctx, "lock all", keys, wait, l.cfg.RenewLease, true, opts)
}

func (l *Locker[T]) lockAll(ctx context.Context, op string, keys []T, wait, lease time.Duration, renew bool, opts []CallOption) (*MultiLock[T], error) {
	if len(keys) == 0 {
		return nil, &Error{Op: op, Err: argError("keys", "empty")}
	}
	type item struct {
		key  T
		name string
	}
	items := make([]item, len(keys))
	// The first key settles the owner (drawing one if opts name none);
	// every other key is checked for that owner, with the other options
	// (a semaphore's permits) kept.
	owner := opts
	permits := 0
	for i, k := range keys {
		name, co, err := l.validate(ctx, k, wait, lease, owner)
		if err != nil {
			return nil, &Error{Op: op, Name: name, Err: err}
		}
		if i == 0 {
			owner = append(slices.Clip(opts), WithOwner(co.owner))
			permits = co.permits
		}
		items[i] = item{k, name}
	}
	slices.SortFunc(items, func(a, b item) int {
		switch {
		case a.name < b.name:
			return -1
		case a.name > b.name:
			return 1
		}
		return 0
	})
	for i := 1; i < len(items); i++ {
		if items[i].name == items[i-1].name {
			return nil, &Error{Op: op, Name: items[i].name, Err: argError("keys", "two keys map to the lock name %q", items[i].name)}
		}
	}
	if l.closed.Load() {
		return nil, &Error{Op: op, Name: items[0].name, Err: ErrClosed}
	}
	deadline := waitEnd(wait)
	if ma, ok := l.backend.(driver.MultiAcquirer); ok && len(items) > 1 {
		names := make([]string, len(items))
		ks := make([]T, len(items))
		for i, it := range items {
			names[i], ks[i] = it.name, it.key
		}
		m, done, err := l.lockAtOnce(ctx, op, ma, ks, names, owner, permits, wait, lease, renew)
		if done {
			return m, err
		}
	}
	m := &MultiLock[T]{done: make(chan struct{})}
	for _, it := range items {
		h, err := l.acquire(ctx, op, it.key, waitLeft(deadline), lease, renew, owner)
		if err != nil {
			for i := len(m.locks) - 1; i >= 0; i-- {
				if rerr := m.locks[i].Release(context.WithoutCancel(ctx)); rerr != nil {
					err = joinErrors(err, rerr)
				}
			}
			return nil, err
		}
		m.locks = append(m.locks, h)
	}
	// With a fixed lease shorter than the wait, a lock taken early may have
	// ended while a later one was awaited: then the set is not held. Its
	// expiry timer may not have run yet (this process stalled): a lease
	// that ended is a loss too.
	for i, h := range m.locks {
		if h.Err() == nil && !time.Now().Before(h.Deadline()) {
			l.lose(h.h, errLeaseExpired)
		}
		if lost := h.Err(); lost != nil {
			err := lost
			for j := len(m.locks) - 1; j >= 0; j-- {
				if j == i {
					continue
				}
				if rerr := m.locks[j].Release(context.WithoutCancel(ctx)); rerr != nil {
					err = joinErrors(err, rerr)
				}
			}
			return nil, err
		}
	}
	for _, h := range m.locks {
		go m.watch(h)
	}
	return m, nil
}

// lockAtOnce makes the one atomic attempt of driver.MultiAcquirer at the
// locks of names (sorted, distinct; ks their keys), as the owner that
// ownerOpt names, each taking permits (a semaphore's; 0 otherwise). done
// reports that the call is decided: the set is held (m), or it failed
// (err). Otherwise the caller goes on name by name: the
// store cannot take this set at once, or found a lock taken while the call
// may wait, or failed while the call may retry; nothing is held then.
func (l *Locker[T]) lockAtOnce(ctx context.Context, op string, ma driver.MultiAcquirer, ks []T, names []string, ownerOpt []CallOption, permits int, wait, lease time.Duration, renew bool) (m *MultiLock[T], done bool, err error) {
	var co callOptions
	for _, f := range ownerOpt {
		f(&co)
	}
	reqs := make([]driver.AcquireRequest, len(names))
	for i, name := range names {
		reqs[i] = driver.AcquireRequest{Name: name, Owner: co.owner, Ticket: token.New(), Lease: lease, Permits: permits, Limit: l.limit}
	}
	start := time.Now()
	rctx, cancel := bounded(ctx, start, l.cfg.RequestTimeout)
	res, ok, err := ma.AcquireAll(rctx, reqs, l.queue != nil)
	cancel()
	if !ok {
		return nil, false, nil
	}
	undoAll := func() (done bool) {
		done = true
		for _, r := range reqs {
			done = l.undo(r) && done
		}
		return done
	}
	if err != nil {
		storeError(l.obs, ctx, names[0], "acquire all", err)
		undoAll() // the outcome is unknown: undo each attempt by its ticket
		if wait == 0 || ctx.Err() != nil {
			return nil, true, &Error{Op: op, Name: names[0], Err: failure(ctx, err)}
		}
		return nil, false, nil
	}
	if len(res) != len(reqs) || !res[0].Acquired {
		if wait == 0 {
			name := names[0]
			for i, r := range res {
				if i < len(names) && !r.Acquired && (r.Fence != 0 || r.TTL != 0) {
					name = names[i]
					break
				}
			}
			return nil, true, &Error{Op: op, Name: name, Err: ErrNotObtained}
		}
		return nil, false, nil
	}
	if cerr := ctx.Err(); cerr != nil {
		undoAll()
		return nil, true, &Error{Op: op, Name: names[0], Err: cerr}
	}
	if !time.Now().Before(start.Add(lease)) {
		// The leases ended before the answer was seen (see won): the set
		// is given back, and taken name by name while the wait lasts, unless
		// the store did not answer giving it back (see errLapsedPending).
		again := undoAll() && wait != 0
		l.lapsed(names[0], again)
		if !again {
			return nil, true, &Error{Op: op, Name: names[0], Err: errNotObtainedLapsed}
		}
		return nil, false, nil
	}
	m = &MultiLock[T]{done: make(chan struct{})}
	for i := range reqs {
		h, rerr := l.register(ks[i], reqs[i], start, lease, res[i], renew)
		if rerr != nil {
			err = &Error{Op: op, Name: names[i], Err: rerr}
			for _, r := range reqs[i+1:] { // register undid reqs[i]
				l.undo(r)
			}
			for j := len(m.locks) - 1; j >= 0; j-- {
				if xerr := m.locks[j].Release(context.WithoutCancel(ctx)); xerr != nil {
					err = joinErrors(err, xerr)
				}
			}
			return nil, true, err
		}
		m.locks = append(m.locks, h)
	}
	for _, h := range m.locks {
		go m.watch(h)
	}
	return m, true, nil
}

// watch ends m when h ends.
func (m *MultiLock[T]) watch(h *Lock[T]) {
	<-h.Done()
	m.once.Do(func() {
		m.mu.Lock()
		m.err = h.Err()
		m.mu.Unlock()
		close(m.done)
	})
}

// Locks returns the handles of the set, one per key, in the order they
// were taken (by lock name), each with its name and fencing token. Pass
// each token to the resource its name protects. Releasing one of them
// ends the MultiLock.
func (m *MultiLock[T]) Locks() []*Lock[T] {
	if m == nil {
		return nil
	}
	return slices.Clone(m.locks)
}

// Done is closed when the first lock of the set ends: released by
// [MultiLock.Release], or lost. Err tells which. A nil MultiLock's Done
// is closed.
func (m *MultiLock[T]) Done() <-chan struct{} {
	if m == nil {
		return closedChan
	}
	return m.done
}

// Err returns nil while every lock of the set is held; after Done is
// closed, the error of the lock that ended first: matching [ErrReleased]
// after a release, or [ErrLost] (with its cause, and the lock's name in
// the message). A nil MultiLock returns [ErrNotHeld].
func (m *MultiLock[T]) Err() error {
	if m == nil {
		return ErrNotHeld
	}
	m.mu.Lock()
	err := m.err
	m.mu.Unlock()
	if err != nil {
		return err
	}
	// A lock may have ended before its watcher ran.
	for _, h := range m.locks {
		if err := h.Err(); err != nil {
			return err
		}
	}
	return nil
}

// Deadline returns the earliest lease deadline of the set (see
// [Lock.Deadline]).
func (m *MultiLock[T]) Deadline() time.Time {
	var d time.Time
	if m == nil {
		return d
	}
	for _, h := range m.locks {
		if hd := h.Deadline(); d.IsZero() || hd.Before(d) {
			d = hd
		}
	}
	return d
}

// Release releases every lock of the set, in the reverse order of their
// acquisition, each as [Lock.Release] does (bounded by ctx and
// RequestTimeout, and still sent, detached, when ctx is done). It returns
// nil when each was released, and otherwise their errors joined: one
// matching [ErrNotHeld] for a lock that was lost or released before. A
// nil MultiLock fails with ErrNotHeld.
func (m *MultiLock[T]) Release(ctx context.Context) error {
	if m == nil {
		return &Error{Op: "release", Err: ErrNotHeld}
	}
	var err error
	for i := len(m.locks) - 1; i >= 0; i-- {
		if rerr := m.locks[i].Release(ctx); rerr != nil {
			err = joinErrors(err, rerr)
		}
	}
	return err
}

// Extend sets the remaining lease of every lock of the set to lease, as
// [Lock.Extend] does, for sets taken with a fixed lease. It returns their
// errors joined, nil when each was extended.
func (m *MultiLock[T]) Extend(ctx context.Context, lease time.Duration) error {
	if m == nil {
		return &Error{Op: "extend", Err: ErrNotHeld}
	}
	var err error
	for _, h := range m.locks {
		if xerr := h.Extend(ctx, lease); xerr != nil {
			err = joinErrors(err, xerr)
		}
	}
	return err
}
