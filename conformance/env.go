package conformance

import (
	"context"
	"errors"
	"fmt"
	"github.com/disgolock/disgo/internal/token"
	"github.com/disgolock/disgo/locker/driver"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/locker"
)

// Timings of the suite. They are short so that the suite is quick, and
// every bound on "soon" is generous so that a loaded machine does not flake.
const (
	// patience bounds anything that should happen promptly.
	patience = 10 * time.Second
	// longLease is the fixed lease of holdings that must not expire during a subtest.
	longLease = time.Minute
	// shortLease is the fixed lease of holdings meant to expire.
	shortLease = 300 * time.Millisecond
	// renewLease is Options.RenewLease of the renewal tests.
	renewLease = time.Second
	// stagger separates waiters when the backend cannot show that one is waiting.
	stagger = 250 * time.Millisecond
	// budget bounds the context of every store call of a subtest.
	budget = 2 * time.Minute
	// pollEvery is the period of eventually.
	pollEvery = 5 * time.Millisecond
)

// env is the world of one subtest: its own namespace, context and mode.
type env struct {
	t    *testing.T
	h    Harness
	ns   string
	ctx  context.Context
	mode locker.Mode
	// pinned: mode is fixed; otherwise the first client picks Fair when
	// the backend has a Queue, else Barging.
	pinned bool
}

func newEnv(t *testing.T, h Harness, mode *locker.Mode) *env {
	ctx, cancel := context.WithTimeout(t.Context(), budget)
	t.Cleanup(cancel)
	e := &env{t: t, h: h, ns: "conformance-" + token.New(), ctx: ctx}
	if mode != nil {
		e.mode, e.pinned = *mode, true
	}
	return e
}

// client makes a new client. In Fair mode it skips the test if the backend
// has no Queue.
func (e *env) client() Client {
	e.t.Helper()
	c := e.h.NewClient(e.t)
	require.NotNil(e.t, c.Backend, "Harness.NewClient returned a Client without a Backend")
	_, hasQueue := c.Backend.(driver.Queue)
	if !e.pinned {
		e.mode, e.pinned = locker.Barging, true
		if hasQueue {
			e.mode = locker.Fair
		}
	}
	if e.mode == locker.Fair && !hasQueue {
		e.t.Skipf("conformance: %T does not implement driver.Queue, so fair mode is untested", c.Backend)
	}
	return c
}

// needFair skips the test unless the env is in Fair mode (c's backend has a Queue).
func (e *env) needFair(c Client) {
	e.t.Helper()
	if e.mode != locker.Fair {
		e.t.Skipf("conformance: %T does not implement driver.Queue, so FIFO fairness is untested", c.Backend)
	}
}

func (e *env) needKill(c Client) {
	e.t.Helper()
	if c.Kill == nil {
		e.t.Skip("conformance: Client.Kill is nil, so a client dying is untested")
	}
}

func (e *env) needStall(c Client) {
	e.t.Helper()
	if c.Stall == nil {
		e.t.Skip("conformance: Client.Stall is nil, so a stalled client (a process pause) is untested")
	}
}

// stall stalls c and returns its resume, which is also called at cleanup
// (so that a failing test leaves no client stalled); it may be called more
// than once, and fails the test if it does not return within patience.
func (e *env) stall(c Client) (resume func()) {
	e.t.Helper()
	r := c.Stall()
	var once sync.Once
	resume = func() {
		once.Do(func() {
			within(e.t, patience, "Client.Stall's resume to return", func() struct{} {
				r()
				return struct{}{}
			})
		})
	}
	e.t.Cleanup(resume)
	return resume
}

func (e *env) needWipe() {
	e.t.Helper()
	if e.h.Wipe == nil {
		e.t.Skip("conformance: Harness.Wipe is nil, so deleted and evicted lock records are untested")
	}
}

func (e *env) needKeys() {
	e.t.Helper()
	if e.h.Keys == nil {
		e.t.Skip("conformance: Harness.Keys is nil, so keys left in the store are unchecked")
	}
}

func (e *env) needNotifier(c Client) driver.Notifier {
	e.t.Helper()
	n, ok := c.Backend.(driver.Notifier)
	if !ok {
		e.t.Skipf("conformance: %T does not implement driver.Notifier, so release wake-ups and subscriptions are untested", c.Backend)
	}
	return n
}

// options returns o with the env's namespace and mode.
func (e *env) options(o locker.Options[string]) locker.Options[string] {
	o.Namespace = e.ns
	o.Mode = e.mode
	return o
}

// locker makes a Locker on c in the env's namespace and mode, closed at cleanup.
func (e *env) locker(c Client, o locker.Options[string]) *locker.Locker[string] {
	e.t.Helper()
	l, err := locker.New(c.Backend, e.options(o))
	require.NoError(e.t, err, "locker.New")
	e.closeAtCleanup(l)
	return l
}

func (e *env) closeAtCleanup(l *locker.Locker[string]) {
	e.t.Cleanup(func() {
		if err := l.Close(); err != nil && !errors.Is(err, locker.ErrClosed) {
			e.t.Errorf("Locker.Close: %v", err)
		}
	})
}

// name returns the lock name of key.
func (e *env) name(l *locker.Locker[string], key string) string {
	e.t.Helper()
	n, err := l.Name(key)
	require.NoError(e.t, err, "Locker.Name(%q)", key)
	return n
}

// acq is the outcome of an acquiring call made on another goroutine.
type acq struct {
	lock *locker.Lock[string]
	err  error
	at   time.Time // when the call returned
}

// acquiring runs an acquiring call on its own goroutine.
func acquiring(f func() (*locker.Lock[string], error)) <-chan acq {
	return start(func() acq {
		l, err := f()
		return acq{lock: l, err: err, at: time.Now()}
	})
}

// start runs f on its own goroutine; the channel delivers its result.
func start[V any](f func() V) <-chan V {
	ch := make(chan V, 1)
	go func() { ch <- f() }()
	return ch
}

// await returns the value ch delivers, failing t with "timed out waiting
// for <what>" if none arrives within d.
func await[V any](t testing.TB, d time.Duration, what string, ch <-chan V) V {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("timed out after %v waiting for %s", d, what)
	}
	var zero V
	return zero
}

// within runs f on its own goroutine and returns its result, failing t if
// f does not return within d.
func within[V any](t testing.TB, d time.Duration, what string, f func() V) V {
	t.Helper()
	return await(t, d, what, start(f))
}

// awaitClosed fails t unless ch is closed within d.
func awaitClosed(t testing.TB, d time.Duration, what string, ch <-chan struct{}) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ch:
	case <-timer.C:
		t.Fatalf("timed out after %v waiting for %s", d, what)
	}
}

// arrived reports whether ch delivered already (consuming what it delivered).
func arrived[V any](ch <-chan V) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// eventually polls cond until it holds, failing t with "timed out waiting
// for <what>" after d.
func eventually(t testing.TB, d time.Duration, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, err := cond()
		if ok && err == nil {
			return
		}
		if time.Now().After(deadline) {
			if err != nil {
				t.Fatalf("timed out after %v waiting for %s (last error: %v)", d, what, err)
			}
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(pollEvery)
	}
}

// tryLock takes key at once or fails the test.
func (e *env) tryLock(l *locker.Locker[string], key string, lease time.Duration, opts ...locker.CallOption) *locker.Lock[string] {
	e.t.Helper()
	r := within(e.t, patience, fmt.Sprintf("TryLock(%q)", key), func() acq {
		h, err := l.TryLock(e.ctx, key, lease, opts...)
		return acq{lock: h, err: err}
	})
	require.NoError(e.t, r.err, "TryLock(%q)", key)
	require.NotNil(e.t, r.lock, "TryLock(%q) returned no handle", key)
	return r.lock
}

// renewed takes key with renewal, waiting at most wait, or fails the test.
func (e *env) renewed(l *locker.Locker[string], key string, wait time.Duration, opts ...locker.CallOption) *locker.Lock[string] {
	e.t.Helper()
	r := within(e.t, wait+patience, fmt.Sprintf("LockWithRenewal(%q)", key), func() acq {
		h, err := l.LockWithRenewal(e.ctx, key, wait, opts...)
		return acq{lock: h, err: err}
	})
	require.NoError(e.t, r.err, "LockWithRenewal(%q)", key)
	require.NotNil(e.t, r.lock, "LockWithRenewal(%q) returned no handle", key)
	return r.lock
}

// lock takes key with a fixed lease, waiting at most wait, or fails the test.
func (e *env) lock(l *locker.Locker[string], key string, wait, lease time.Duration, opts ...locker.CallOption) *locker.Lock[string] {
	e.t.Helper()
	r := within(e.t, wait+patience, fmt.Sprintf("Lock(%q)", key), func() acq {
		h, err := l.Lock(e.ctx, key, wait, lease, opts...)
		return acq{lock: h, err: err}
	})
	require.NoError(e.t, r.err, "Lock(%q)", key)
	require.NotNil(e.t, r.lock, "Lock(%q) returned no handle", key)
	return r.lock
}

// taken requires that a TryLock of key on l fails with ErrNotObtained.
func (e *env) taken(l *locker.Locker[string], key, why string) {
	e.t.Helper()
	r := within(e.t, patience, fmt.Sprintf("TryLock(%q)", key), func() acq {
		h, err := l.TryLock(e.ctx, key, longLease)
		return acq{lock: h, err: err}
	})
	if r.err == nil {
		e.t.Fatalf("TryLock(%q) by another owner succeeded, but %s", key, why)
	}
	requireNotObtained(e.t, r.err)
}

// release releases h or fails the test.
func (e *env) release(h *locker.Lock[string]) {
	e.t.Helper()
	err := within(e.t, patience, fmt.Sprintf("Release of %q", h.Name()), func() error { return h.Release(e.ctx) })
	require.NoError(e.t, err, "Release of %q", h.Name())
}

// releaseErr releases h and returns the error.
func (e *env) releaseErr(h *locker.Lock[string]) error {
	e.t.Helper()
	return within(e.t, patience, fmt.Sprintf("Release of %q", h.Name()), func() error { return h.Release(e.ctx) })
}

// requireErr requires err to be a *locker.Error matching target.
func requireErr(t testing.TB, err, target error) {
	t.Helper()
	require.ErrorIs(t, err, target)
	var le *locker.Error
	require.ErrorAs(t, err, &le, "the facade returns every error as a *locker.Error")
}

// requireNotObtained requires ErrNotObtained that is not a context error.
func requireNotObtained(t testing.TB, err error) {
	t.Helper()
	requireErr(t, err, locker.ErrNotObtained)
	require.NotErrorIs(t, err, context.Canceled)
	require.NotErrorIs(t, err, context.DeadlineExceeded)
}

// requireCtxErr requires the context error target, not ErrNotObtained.
func requireCtxErr(t testing.TB, err, target error) {
	t.Helper()
	requireErr(t, err, target)
	require.NotErrorIs(t, err, locker.ErrNotObtained, "a context error must be told apart from \"not obtained\"")
}

// inspector returns c's Inspector, if it has one.
func inspector(c Client) (driver.Inspector, bool) {
	i, ok := c.Backend.(driver.Inspector)
	return i, ok
}

// state inspects name or fails the test.
func (e *env) state(i driver.Inspector, name string) driver.State {
	e.t.Helper()
	type res struct {
		st  driver.State
		err error
	}
	r := within(e.t, patience, fmt.Sprintf("Inspect(%q)", name), func() res {
		st, err := i.Inspect(e.ctx, name)
		return res{st, err}
	})
	require.NoError(e.t, r.err, "Inspect(%q)", name)
	return r.st
}

// checkState compares the inspected state of name with the expected
// holder and count, when c can be inspected.
func (e *env) checkState(c Client, name, owner string, count int) {
	e.t.Helper()
	i, ok := inspector(c)
	if !ok {
		return
	}
	st := e.state(i, name)
	require.Equal(e.t, owner, st.Owner, "inspected owner of %q", name)
	require.Equal(e.t, count, st.Count, "inspected hold count of %q", name)
}

// checkWaiters compares the inspected queue length of name with n, when c
// can be inspected and the env is in Fair mode.
func (e *env) checkWaiters(c Client, name string, n int) {
	e.t.Helper()
	i, ok := inspector(c)
	if !ok || e.mode != locker.Fair {
		return
	}
	require.Equal(e.t, n, e.state(i, name).Waiters, "inspected waiters of %q", name)
}

// awaitWaiting returns once the n-th waiter of name, on client c, is
// waiting. In Fair mode with an Inspector it waits until the queue holds n
// tickets; in Barging mode with a Notifier that counts subscriptions, until
// c holds one; otherwise it sleeps a stagger.
func (e *env) awaitWaiting(c Client, name string, n int) {
	e.t.Helper()
	i, inspectable := inspector(c)
	counts := c.Subscriptions != nil
	switch {
	case e.mode == locker.Fair && inspectable:
		eventually(e.t, patience, fmt.Sprintf("waiter %d to register in the queue of %q", n, name), func() (bool, error) {
			st, err := i.Inspect(e.ctx, name)
			return st.Waiters == n, err
		})
	case e.mode == locker.Barging && counts:
		eventually(e.t, patience, fmt.Sprintf("waiter %d of %q to subscribe", n, name), func() (bool, error) {
			return c.Subscriptions() > 0, nil
		})
	default:
		time.Sleep(stagger)
	}
}
