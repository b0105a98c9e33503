package conformance

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/locker"
)

// multiAllOrNothing: LockAll holds every lock of its set, under one owner,
// or, when one is held by another process, fails holding none of them.
func multiAllOrNothing(e *env) {
	a, b := e.client(), e.client()
	la, lb := e.locker(a, locker.Options[string]{}), e.locker(b, locker.Options[string]{})
	set := []string{"multi-c", "multi-a", "multi-b"}
	m, err := within(e.t, patience, "TryLockAll", func() acqAll {
		m, err := la.TryLockAll(e.ctx, set, longLease)
		return acqAll{m, err}
	}).get()
	require.NoError(e.t, err, "TryLockAll of a free set")
	for _, h := range m.Locks() {
		require.Equal(e.t, m.Locks()[0].Owner(), h.Owner(), "one owner for the set")
		e.checkState(a, h.Name(), h.Owner(), 1)
	}
	for _, k := range set {
		e.taken(lb, k, "a MultiLock holds it")
	}
	require.NoError(e.t, within(e.t, patience, "MultiLock.Release", func() error { return m.Release(e.ctx) }))

	hb := e.tryLock(lb, "multi-b", longLease)
	_, err = within(e.t, patience, "LockAll", func() acqAll {
		m, err := la.LockAll(e.ctx, set, 300*time.Millisecond, longLease)
		return acqAll{m, err}
	}).get()
	requireNotObtained(e.t, err)
	for _, k := range []string{"multi-a", "multi-c"} {
		h := e.tryLock(lb, k, longLease) // free: the failed call gave it back
		e.release(h)
	}
	e.release(hb)
}

// acqAll is the outcome of a LockAll call.
type acqAll struct {
	m   *locker.MultiLock[string]
	err error
}

func (r acqAll) get() (*locker.MultiLock[string], error) { return r.m, r.err }

// multiNoDeadlock: processes lock overlapping sets given in random orders;
// every call gets its set, and no two sets that share a name are held at
// once.
func multiNoDeadlock(e *env) {
	const names, workers, rounds = 4, 6, 12
	var ls []*locker.Locker[string]
	for range 3 {
		ls = append(ls, e.locker(e.client(), locker.Options[string]{}))
	}
	var inUse [names]atomic.Int32
	var overlaps, got atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		l := ls[w%len(ls)]
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 11))
			for range rounds {
				perm := r.Perm(names)[:2+r.IntN(names-1)]
				set := make([]string, len(perm))
				for i, p := range perm {
					set[i] = fmt.Sprintf("multi-%d", p)
				}
				m, err := l.LockAll(e.ctx, set, 2*patience, longLease)
				if err != nil {
					errs <- err
					return
				}
				for _, p := range perm {
					if inUse[p].Add(1) != 1 {
						overlaps.Add(1)
					}
				}
				time.Sleep(time.Duration(r.IntN(2000)) * time.Microsecond)
				for _, p := range perm {
					inUse[p].Add(-1)
				}
				if err := m.Release(e.ctx); err != nil {
					errs <- err
					return
				}
				got.Add(1)
			}
		})
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	awaitClosed(e.t, 6*patience, "every worker to get all its sets (a deadlock would stall them)", finished)
	close(errs)
	for err := range errs {
		require.NoError(e.t, err, "LockAll")
	}
	require.Zero(e.t, overlaps.Load(), "two sets that share a name were held at once")
	require.Equal(e.t, int64(workers*rounds), got.Load())
}

// multiOneLossSignal: when one lock of a renewed set is lost, the whole
// MultiLock ends with ErrLost; Release then frees the rest and reports the
// lost one as not held.
func multiOneLossSignal(e *env) {
	e.needWipe()
	a, b := e.client(), e.client()
	la := e.locker(a, locker.Options[string]{RenewLease: renewLease})
	lb := e.locker(b, locker.Options[string]{})
	m, err := within(e.t, patience, "LockAllWithRenewal", func() acqAll {
		m, err := la.LockAllWithRenewal(e.ctx, []string{"multi-x", "multi-y"}, 0)
		return acqAll{m, err}
	}).get()
	require.NoError(e.t, err)
	e.wipe(e.name(la, "multi-y"))
	awaitClosed(e.t, renewLease+patience, "the MultiLock to end once one of its locks was lost", m.Done())
	require.ErrorIs(e.t, m.Err(), locker.ErrLost)
	err = within(e.t, patience, "MultiLock.Release", func() error { return m.Release(e.ctx) })
	require.ErrorIs(e.t, err, locker.ErrNotHeld, "the lost lock")
	h := e.tryLock(lb, "multi-x", longLease) // the other was released
	e.release(h)
}

// multiBadInput: an empty set, or two keys of one name, fail with an
// ArgumentError and write nothing.
func multiBadInput(e *env) {
	e.needKeys()
	l := e.locker(e.client(), locker.Options[string]{})
	for what, set := range map[string][]string{"an empty set": nil, "a duplicate key": {"multi-bad", "multi-bad"}} {
		_, err := l.TryLockAll(e.ctx, set, longLease)
		require.ErrorIs(e.t, err, locker.ErrInvalidArgument, what)
	}
	require.Empty(e.t, e.keys(), "bad input wrote to the store")
}
