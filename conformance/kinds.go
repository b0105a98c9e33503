package conformance

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/locker/driver"
)

// Helpers of the RWLock and Semaphore groups: the lock kinds a Backend
// offers as views ([driver.RWLocker], [driver.Semaphorer]).

// rwClient is a client with the views of its read-write locks.
type rwClient struct {
	Client
	read, write driver.Backend
}

// rwClient makes a new client and returns its read-write lock views. It
// skips the test if the backend has no read-write locks (and, in Fair
// mode, if it has no Queue).
func (e *env) rwClient() rwClient {
	e.t.Helper()
	return e.rwViews(e.client())
}

// rwViews returns the read-write lock views of c, skipping the test if its
// backend has none.
func (e *env) rwViews(c Client) rwClient {
	e.t.Helper()
	rw, ok := c.Backend.(driver.RWLocker)
	if !ok {
		e.t.Skipf("conformance: %T does not implement driver.RWLocker, so read-write locks are untested", c.Backend)
	}
	r, w := rw.RWLocks()
	require.NotNil(e.t, r, "RWLocks returned no read view")
	require.NotNil(e.t, w, "RWLocks returned no write view")
	r2, w2 := rw.RWLocks()
	require.True(e.t, r == r2 && w == w2, "RWLocks must return the same views every time")
	return rwClient{Client: c, read: r, write: w}
}

// rwLocker makes an RWLocker on c in the env's namespace and mode, closed
// at cleanup.
func (e *env) rwLocker(c rwClient, o locker.Options[string]) *locker.RWLocker[string] {
	e.t.Helper()
	l, err := locker.NewRW(c.Backend, e.options(o))
	require.NoError(e.t, err, "locker.NewRW")
	e.t.Cleanup(func() {
		if err := l.Close(); err != nil && !errors.Is(err, locker.ErrClosed) {
			e.t.Errorf("RWLocker.Close: %v", err)
		}
	})
	return l
}

// semClient is a client with the view of its semaphores.
type semClient struct {
	Client
	sem driver.Backend
}

// semClient makes a new client and returns its semaphore view. It skips
// the test if the backend has no semaphores (and, in Fair mode, if it has
// no Queue).
func (e *env) semClient() semClient {
	e.t.Helper()
	return e.semViews(e.client())
}

// semViews returns the semaphore view of c, skipping the test if its
// backend has none.
func (e *env) semViews(c Client) semClient {
	e.t.Helper()
	s, ok := c.Backend.(driver.Semaphorer)
	if !ok {
		e.t.Skipf("conformance: %T does not implement driver.Semaphorer, so semaphores are untested", c.Backend)
	}
	v := s.Semaphores()
	require.NotNil(e.t, v, "Semaphores returned no view")
	require.True(e.t, v == s.Semaphores(), "Semaphores must return the same view every time")
	return semClient{Client: c, sem: v}
}

// semLocker makes a semaphore Locker of limit permits per key on c in the
// env's namespace and mode, closed at cleanup.
func (e *env) semLocker(c semClient, limit int, o locker.Options[string]) *locker.Locker[string] {
	e.t.Helper()
	l, err := locker.NewSemaphore(c.Backend, limit, e.options(o))
	require.NoError(e.t, err, "locker.NewSemaphore(limit %d)", limit)
	e.closeAtCleanup(l)
	return l
}

// viewState inspects name through view, if the view has an Inspector.
func (e *env) viewState(view driver.Backend, name string) (driver.State, bool) {
	e.t.Helper()
	i, ok := view.(driver.Inspector)
	if !ok {
		return driver.State{}, false
	}
	return e.state(i, name), true
}

// awaitQueued returns once the n-th waiter of name, whose client is c, is
// waiting on view: in Fair mode with an Inspector on the view, once the
// queue holds n tickets; in Barging mode with a Notifier that counts
// subscriptions, once c holds one; otherwise after a stagger.
func (e *env) awaitQueued(c Client, view driver.Backend, name string, n int) {
	e.t.Helper()
	i, inspectable := view.(driver.Inspector)
	switch {
	case e.mode == locker.Fair && inspectable:
		eventually(e.t, patience, fmt.Sprintf("waiter %d to register in the queue of %q", n, name), func() (bool, error) {
			st, err := i.Inspect(e.ctx, name)
			return st.Waiters == n, err
		})
	case e.mode == locker.Barging && c.Subscriptions != nil:
		eventually(e.t, patience, fmt.Sprintf("waiter %d of %q to subscribe", n, name), func() (bool, error) {
			return c.Subscriptions() > 0, nil
		})
	default:
		time.Sleep(stagger)
	}
}

// checkWaitersOn compares the inspected queue length of name on view with
// n, when the view can be inspected and the env is in Fair mode.
func (e *env) checkWaitersOn(view driver.Backend, name string, n int) {
	e.t.Helper()
	if e.mode != locker.Fair {
		return
	}
	if st, ok := e.viewState(view, name); ok {
		require.Equal(e.t, n, st.Waiters, "inspected waiters of %q", name)
	}
}

// holding is the inspected holding of owner (write or not) in st.
func holdingOf(st driver.State, owner string, write bool) (driver.Holding, bool) {
	for _, h := range st.Holders {
		if h.Owner == owner && h.Write == write {
			return h, true
		}
	}
	return driver.Holding{}, false
}

// needViewForceRelease skips the test unless view has a force release.
func (e *env) needViewForceRelease(view driver.Backend) {
	e.t.Helper()
	if _, ok := view.(driver.ForceReleaser); !ok {
		e.t.Skipf("conformance: %T does not implement driver.ForceReleaser, so force release is untested", view)
	}
}

// rejected requires that call fails at once (within patience, although
// it may wait for ever) with an error matching target, not ErrNotObtained.
func (e *env) rejected(what string, target error, call func() (*locker.Lock[string], error)) {
	e.t.Helper()
	r := within(e.t, patience, what+" to fail at once", func() acq {
		h, err := call()
		return acq{lock: h, err: err}
	})
	if r.err == nil {
		_ = r.lock.Release(e.ctx)
		e.t.Fatalf("%s succeeded; want an error matching %v", what, target)
	}
	requireErr(e.t, r.err, target)
	require.NotErrorIs(e.t, r.err, locker.ErrNotObtained, "%s: a refusal is not \"not obtained\"", what)
}

// fenceLog records the fencing tokens of holdings as a hammer sees them.
type fenceLog struct {
	mu   sync.Mutex
	seen map[int64]bool
	max  int64 // the greatest token recorded
}

// add records f and reports the greatest token recorded before, and
// whether f was recorded already.
func (f *fenceLog) add(fence int64) (prevMax int64, dup bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seen == nil {
		f.seen = make(map[int64]bool)
	}
	prevMax, dup = f.max, f.seen[fence]
	f.seen[fence] = true
	f.max = max(f.max, fence)
	return prevMax, dup
}

// driverAcquire makes one Acquire on view, bounded by patience.
func (e *env) driverAcquire(view driver.Backend, req driver.AcquireRequest) (driver.AcquireResult, error) {
	e.t.Helper()
	type reply struct {
		res driver.AcquireResult
		err error
	}
	r := within(e.t, patience, "Backend.Acquire", func() reply {
		res, err := view.Acquire(e.ctx, req)
		return reply{res, err}
	})
	return r.res, r.err
}

// driverRelease makes one Release on view, bounded by patience.
func (e *env) driverRelease(view driver.Backend, name, owner, ticket string) (held bool, remaining int) {
	e.t.Helper()
	type reply struct {
		held bool
		n    int
		err  error
	}
	r := within(e.t, patience, "Backend.Release", func() reply {
		held, n, err := view.Release(e.ctx, name, owner, ticket)
		return reply{held, n, err}
	})
	require.NoError(e.t, r.err, "Backend.Release(%q, ticket %q)", owner, ticket)
	return r.held, r.n
}

// driverExtend makes one Extend on view, bounded by patience.
func (e *env) driverExtend(view driver.Backend, name, owner string, lease time.Duration) (bool, error) {
	e.t.Helper()
	type reply struct {
		held bool
		err  error
	}
	r := within(e.t, patience, "Backend.Extend", func() reply {
		held, err := view.Extend(e.ctx, name, owner, lease)
		return reply{held, err}
	})
	return r.held, r.err
}

// loopUntil runs f on its own goroutine over and over until stop is
// closed or f fails, and returns a channel delivering the first error (or
// nil) once it stopped.
func loopUntil(stop <-chan struct{}, f func() error) <-chan error {
	return start(func() error {
		for {
			select {
			case <-stop:
				return nil
			default:
			}
			if err := f(); err != nil {
				return err
			}
		}
	})
}

// queuedOrDone polls the queue of name until a waiter of owner is in it
// (true) or done is closed (false): a call may acquire before it queues,
// and a store may not record the owners of its waiters.
func (e *env) queuedOrDone(i driver.Inspector, name, owner string, done <-chan struct{}) bool {
	e.t.Helper()
	deadline := time.Now().Add(patience)
	for {
		select {
		case <-done:
			return false
		default:
		}
		q, err := i.InspectQueue(e.ctx, name)
		require.NoError(e.t, err, "InspectQueue(%q)", name)
		for _, x := range q {
			if x.Owner == owner {
				return true
			}
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out after %v waiting for the call of owner %q to queue or acquire", patience, owner)
		}
		time.Sleep(pollEvery)
	}
}
