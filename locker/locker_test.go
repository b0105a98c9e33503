package locker_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.uber.org/mock/gomock"

	"github.com/disgolock/disgo/fairqueue"
	"github.com/disgolock/disgo/internal/lockermock"
	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/locker/driver"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Tests that wait for time to pass (a wait, a lease, a fallback re-check, a
// back-off) run their body in a synctest bubble, on a fake clock that moves
// only when every goroutine of the bubble is blocked: they never sleep for
// real. Tests on a real network cannot: the bubble cannot see I/O.

var errStore = errors.New("connection refused")

// fairBackend is a mock Backend that also implements Queue, as a fair
// store does.
type fairBackend struct {
	*lockermock.MockBackend
	*lockermock.MockQueue
}

type rig struct {
	ctrl *gomock.Controller
	b    *lockermock.MockBackend
	q    *lockermock.MockQueue
	n    *lockermock.MockNotifier
	r    *lockermock.MockRenewer
}

func newRig(t *testing.T) *rig {
	ctrl := gomock.NewController(t)
	r := &rig{
		ctrl: ctrl,
		b:    lockermock.NewMockBackend(ctrl),
		q:    lockermock.NewMockQueue(ctrl),
		n:    lockermock.NewMockNotifier(ctrl),
		r:    lockermock.NewMockRenewer(ctrl),
	}
	// No channel is subscribed already: waiters subscribe the long way,
	// which the tests expect explicitly.
	r.n.EXPECT().SubscribeActive(gomock.Any(), gomock.Any()).Return(nil, false).AnyTimes()
	return r
}

func (r *rig) barging(t *testing.T, opts locker.Options[string]) *locker.Locker[string] {
	t.Helper()
	opts.Mode = locker.Barging
	if opts.Notifier == nil {
		opts.Notifier = r.n
	}
	opts.Renewer = r.r
	l, err := locker.New(driver.Backend(r.b), opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func (r *rig) fair(t *testing.T, opts locker.Options[string]) *locker.Locker[string] {
	t.Helper()
	opts.Notifier = r.n
	opts.Renewer = r.r
	l, err := locker.New(driver.Backend(fairBackend{r.b, r.q}), opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func acquired(fence int64, count int) driver.AcquireResult {
	return driver.AcquireResult{Acquired: true, Fence: fence, Count: count, Position: -1}
}

func taken(ttl time.Duration) driver.AcquireResult {
	return driver.AcquireResult{TTL: ttl, Position: -1}
}

// fakeSub is a Subscription the test can wake.
type fakeSub struct {
	c      chan struct{}
	closed chan struct{}
	once   sync.Once
}

func newFakeSub() *fakeSub {
	return &fakeSub{c: make(chan struct{}, 1), closed: make(chan struct{})}
}
func (s *fakeSub) Wake() <-chan struct{} { return s.c }
func (s *fakeSub) Close()                { s.once.Do(func() { close(s.closed) }) }

// Granted reports no grant: a fakeSub is from a store that never grants.
func (s *fakeSub) Granted() (int64, bool) { return 0, false }

func TestNewRejectsBadInput(t *testing.T) {
	r := newRig(t)
	_, err := locker.New[string](nil, locker.Options[string]{})
	require.ErrorIs(t, err, locker.ErrInvalidArgument)
	var ae *locker.ArgumentError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, "backend", ae.Arg)

	for name, opts := range map[string]locker.Options[string]{
		"namespace brace": {Namespace: "a{b"},
		"mode":            {Mode: locker.Mode(7)},
		"renew lease":     {RenewLease: time.Millisecond},
		"waiter ttl":      {WaiterTTL: time.Millisecond},
		"negative":        {RequestTimeout: -time.Second},
	} {
		_, err := locker.New(driver.Backend(r.b), opts)
		assert.ErrorIs(t, err, locker.ErrInvalidArgument, name)
	}

	// Fair mode needs a Queue.
	_, err = locker.New(driver.Backend(r.b), locker.Options[string]{})
	require.ErrorIs(t, err, locker.ErrUnsupported)

	// A key type that is neither a string nor a Stringer needs Options.Key.
	_, err = locker.New(driver.Backend(r.b), locker.Options[int]{Mode: locker.Barging})
	require.ErrorIs(t, err, locker.ErrInvalidArgument)
}

type orderID int

func (o orderID) String() string { return "order-" + strings.Repeat("x", int(o)) }

func TestKeyMapping(t *testing.T) {
	r := newRig(t)
	ls, err := locker.New(driver.Backend(r.b), locker.Options[orderID]{Mode: locker.Barging, Namespace: "shop", Renewer: r.r})
	require.NoError(t, err)
	defer ls.Close()
	name, err := ls.Name(orderID(2))
	require.NoError(t, err)
	assert.Equal(t, "shop:order-xx", name)

	type tenant struct{ id int }
	lt, err := locker.New(driver.Backend(r.b), locker.Options[tenant]{
		Mode: locker.Barging, Renewer: r.r,
		Key: func(t tenant) string { return strings.Repeat("t", t.id) },
	})
	require.NoError(t, err)
	defer lt.Close()
	_, err = lt.Name(tenant{0})
	require.ErrorIs(t, err, locker.ErrInvalidArgument)
	_, err = lt.Name(tenant{locker.MaxNameLen + 1})
	require.ErrorIs(t, err, locker.ErrInvalidArgument)
}

func TestBadCallInputNeverReachesTheStore(t *testing.T) {
	r := newRig(t) // no EXPECT: any store call fails the test
	l := r.barging(t, locker.Options[string]{})
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()

	cases := map[string]func() error{
		"empty name": func() error { _, err := l.TryLock(ctx, "", time.Second); return err },
		"long name": func() error {
			_, err := l.TryLock(ctx, strings.Repeat("n", locker.MaxNameLen+1), time.Second)
			return err
		},
		"zero lease":    func() error { _, err := l.TryLock(ctx, "k", 0); return err },
		"sub-ms lease":  func() error { _, err := l.Lock(ctx, "k", time.Second, time.Microsecond); return err },
		"negative wait": func() error { _, err := l.Lock(ctx, "k", -time.Second, time.Second); return err },
		"empty owner":   func() error { _, err := l.TryLock(ctx, "k", time.Second, locker.WithOwner("")); return err },
		"long owner": func() error {
			_, err := l.TryLock(ctx, "k", time.Second, locker.WithOwner(strings.Repeat("o", 300)))
			return err
		},
		//lint:ignore SA1012 a nil ctx is the bad input under test
		"nil ctx":         func() error { _, err := l.TryLock(nil, "k", time.Second); return err },
		"renew empty key": func() error { _, err := l.LockWithRenewal(ctx, "", time.Second); return err },
	}
	for name, call := range cases {
		err := call()
		assert.ErrorIs(t, err, locker.ErrInvalidArgument, name)
		var le *locker.Error
		assert.ErrorAs(t, err, &le, name)
	}
	_, err := l.TryLock(cancelled, "k", time.Second)
	require.ErrorIs(t, err, context.Canceled)
	require.NotErrorIs(t, err, locker.ErrNotObtained)
}

func TestTryLockTakenIsNotObtained(t *testing.T) {
	r := newRig(t)
	l := r.barging(t, locker.Options[string]{})
	r.b.EXPECT().Acquire(gomock.Any(), gomock.Any()).Return(taken(time.Second), nil)
	_, err := l.TryLock(context.Background(), "k", time.Second)
	require.ErrorIs(t, err, locker.ErrNotObtained)
	var le *locker.Error
	require.ErrorAs(t, err, &le)
	assert.Equal(t, "trylock", le.Op)
	assert.Equal(t, "k", le.Name)
}

func TestTryLockStoreErrorUndoesTheAttempt(t *testing.T) {
	r := newRig(t)
	l := r.barging(t, locker.Options[string]{})
	var req driver.AcquireRequest
	r.b.EXPECT().Acquire(gomock.Any(), gomock.Any()).DoAndReturn(
		func(_ context.Context, q driver.AcquireRequest) (driver.AcquireResult, error) {
			req = q
			return driver.AcquireResult{}, errStore
		})
	// The reply was lost: the attempt may have succeeded, so exactly that
	// attempt (by its ticket) is undone.
	r.b.EXPECT().Release(gomock.Any(), "k", gomock.Any(), gomock.Any()).DoAndReturn(
		func(_ context.Context, name, owner, ticket string) (bool, int, error) {
			assert.Equal(t, req.Owner, owner)
			assert.Equal(t, req.Ticket, ticket)
			assert.NotEmpty(t, ticket)
			return false, 0, nil
		})
	_, err := l.TryLock(context.Background(), "k", time.Second)
	require.ErrorIs(t, err, locker.ErrBackend)
	require.ErrorIs(t, err, errStore)
	require.NotErrorIs(t, err, locker.ErrNotObtained)
}

func TestStoreErrorInTheMiddleOfWaitingIsRetried(t *testing.T) {
	synctest.Test(t, testStoreErrorInTheMiddleOfWaitingIsRetried)
}

func testStoreErrorInTheMiddleOfWaitingIsRetried(t *testing.T) {
	r := newRig(t)
	l := r.barging(t, locker.Options[string]{})
	sub := newFakeSub()
	r.n.EXPECT().Subscribe(gomock.Any(), "k", gomock.Any()).Return(sub, nil)
	gomock.InOrder(
		r.b.EXPECT().Acquire(gomock.Any(), gomock.Any()).Return(taken(time.Hour), nil),
		r.b.EXPECT().Acquire(gomock.Any(), gomock.Any()).Return(driver.AcquireResult{}, errStore),
		r.b.EXPECT().Acquire(gomock.Any(), gomock.Any()).Return(driver.AcquireResult{}, errStore),
		r.b.EXPECT().Acquire(gomock.Any(), gomock.Any()).Return(acquired(7, 1), nil),
	)
	h, err := l.Lock(context.Background(), "k", time.Minute, time.Minute)
	require.NoError(t, err)
	assert.Equal(t, int64(7), h.Fence())
	select {
	case <-sub.closed:
	default:
		t.Fatal("the subscription was not closed after acquiring")
	}
	r.b.EXPECT().Release(gomock.Any(), "k", h.Owner(), "").Return(true, 0, nil)
	require.NoError(t, h.Release(context.Background()))
}

func TestWaitElapsedWhileStoreFailsReportsBackend(t *testing.T) {
	synctest.Test(t, testWaitElapsedWhileStoreFailsReportsBackend)
}

func testWaitElapsedWhileStoreFailsReportsBackend(t *testing.T) {
	r := newRig(t)
	l := r.barging(t, locker.Options[string]{})
	r.n.EXPECT().Subscribe(gomock.Any(), "k", gomock.Any()).Return(newFakeSub(), nil)
	r.b.EXPECT().Acquire(gomock.Any(), gomock.Any()).Return(driver.AcquireResult{}, errStore).MinTimes(2)
	r.b.EXPECT().Release(gomock.Any(), "k", gomock.Any(), gomock.Not("")).Return(false, 0, nil)
	_, err := l.Lock(context.Background(), "k", 50*time.Millisecond, time.Second)
	require.ErrorIs(t, err, locker.ErrBackend)
	require.ErrorIs(t, err, errStore)
}

func TestFailedNotifierFallsBackToRechecks(t *testing.T) {
	synctest.Test(t, testFailedNotifierFallsBackToRechecks)
}

func testFailedNotifierFallsBackToRechecks(t *testing.T) {
	r := newRig(t)
	l := r.barging(t, locker.Options[string]{FallbackInterval: 80 * time.Millisecond})
	r.n.EXPECT().Subscribe(gomock.Any(), "k", gomock.Any()).Return(nil, errStore)
	gomock.InOrder(
		r.b.EXPECT().Acquire(gomock.Any(), gomock.Any()).Return(taken(time.Hour), nil).Times(3),
		r.b.EXPECT().Acquire(gomock.Any(), gomock.Any()).Return(acquired(1, 1), nil),
	)
	h, err := l.Lock(context.Background(), "k", time.Minute, time.Minute)
	require.NoError(t, err)
	r.b.EXPECT().Release(gomock.Any(), "k", h.Owner(), "").Return(true, 0, nil)
	require.NoError(t, h.Release(context.Background()))
}

func TestWakeUpTriggersAnAttempt(t *testing.T) {
	r := newRig(t)
	// A fallback far beyond the test's patience: only the wake-up can help.
	l := r.barging(t, locker.Options[string]{FallbackInterval: time.Hour})
	sub := newFakeSub()
	r.n.EXPECT().Subscribe(gomock.Any(), "k", gomock.Any()).Return(sub, nil)
	attempts := make(chan struct{}, 10)
	gomock.InOrder(
		r.b.EXPECT().Acquire(gomock.Any(), gomock.Any()).DoAndReturn(
			func(context.Context, driver.AcquireRequest) (driver.AcquireResult, error) {
				attempts <- struct{}{}
				return taken(time.Hour), nil
			}).Times(2),
		r.b.EXPECT().Acquire(gomock.Any(), gomock.Any()).Return(acquired(3, 1), nil),
	)
	res := make(chan error, 1)
	go func() {
		h, err := l.Lock(context.Background(), "k", locker.WaitForever, time.Minute)
		if err == nil {
			r.b.EXPECT().Release(gomock.Any(), "k", h.Owner(), "").Return(true, 0, nil)
			err = h.Release(context.Background())
		}
		res <- err
	}()
	for range 2 {
		select {
		case <-attempts:
		case <-time.After(10 * time.Second):
			t.Fatal("timed out waiting for the first two attempts")
		}
	}
	sub.c <- struct{}{}
	select {
	case err := <-res:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for the woken waiter to acquire")
	}
}

func TestCancelledWhileQueuedLeavesTheQueue(t *testing.T) {
	r := newRig(t)
	l := r.fair(t, locker.Options[string]{})
	r.n.EXPECT().Subscribe(gomock.Any(), "k", gomock.Any()).Return(newFakeSub(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	var ticket string
	calls := 0
	r.q.EXPECT().AcquireFair(gomock.Any(), gomock.Any(), fairqueue.DefaultWaiterTTL).DoAndReturn(
		func(_ context.Context, req driver.AcquireRequest, _ time.Duration) (driver.AcquireResult, error) {
			ticket = req.Ticket
			if calls++; calls == 2 {
				cancel() // the caller gives up while queued
			}
			return driver.AcquireResult{TTL: time.Hour, Position: 0}, nil
		}).Times(2)
	left := make(chan string, 1)
	gomock.InOrder(
		r.q.EXPECT().Leave(gomock.Any(), "k", gomock.Any()).DoAndReturn(func(_ context.Context, _, tk string) error {
			left <- tk
			return nil
		}),
		// After leaving, a grant made to the ticket before is undone.
		r.b.EXPECT().Release(gomock.Any(), "k", gomock.Any(), gomock.Any()).DoAndReturn(
			func(_ context.Context, _, _, tk string) (bool, int, error) {
				assert.Equal(t, ticket, tk)
				return false, 0, nil
			}),
	)
	_, err := l.Lock(ctx, "k", time.Minute, time.Second)
	require.ErrorIs(t, err, context.Canceled)
	require.NotErrorIs(t, err, locker.ErrNotObtained)
	select {
	case tk := <-left:
		assert.Equal(t, ticket, tk)
	default:
		t.Fatal("the cancelled waiter did not leave the queue")
	}
}

func TestFairTryLockDoesNotJoinTheQueue(t *testing.T) {
	r := newRig(t)
	l := r.fair(t, locker.Options[string]{})
	r.q.EXPECT().AcquireFair(gomock.Any(), gomock.Any(), time.Duration(0)).Return(driver.AcquireResult{TTL: -1, Position: -1}, nil)
	_, err := l.TryLock(context.Background(), "k", time.Second)
	require.ErrorIs(t, err, locker.ErrNotObtained)
}

func TestRenewalLossReachesTheHolder(t *testing.T) {
	r := newRig(t)
	l := r.barging(t, locker.Options[string]{})
	r.b.EXPECT().Acquire(gomock.Any(), gomock.Any()).Return(acquired(9, 1), nil)
	holds := make(chan driver.Hold, 1)
	stopped := make(chan struct{}, 1)
	r.r.EXPECT().Keep(gomock.Any()).DoAndReturn(func(h driver.Hold) func() {
		holds <- h
		return func() { stopped <- struct{}{} }
	})
	h, err := l.LockWithRenewal(context.Background(), "k", 0)
	require.NoError(t, err)
	hold := <-holds
	assert.Equal(t, "k", hold.Name)
	assert.Equal(t, h.Owner(), hold.Owner)
	assert.Equal(t, locker.DefaultRenewLease, hold.Lease)
	assert.Equal(t, h.Deadline(), hold.Deadline)

	later := hold.Deadline.Add(time.Second)
	hold.OnRenewed(later)
	assert.Equal(t, later, h.Deadline())
	require.NoError(t, h.Err())

	cause := errors.New("renewal timed out")
	hold.OnLost(cause)
	select {
	case <-h.Done():
	default:
		t.Fatal("Done was not closed on loss")
	}
	require.ErrorIs(t, h.Err(), locker.ErrLost)
	require.ErrorIs(t, h.Err(), cause)
	<-stopped

	r.b.EXPECT().Release(gomock.Any(), "k", h.Owner(), "").Return(false, 0, nil)
	require.ErrorIs(t, h.Release(context.Background()), locker.ErrNotHeld)
}

func TestFinalReleaseStopsRenewalBeforeTheRequest(t *testing.T) {
	r := newRig(t)
	l := r.barging(t, locker.Options[string]{})
	r.b.EXPECT().Acquire(gomock.Any(), gomock.Any()).Return(acquired(4, 1), nil)
	r.b.EXPECT().Acquire(gomock.Any(), gomock.Any()).Return(acquired(4, 2), nil)
	var stopCalls int
	r.r.EXPECT().Keep(gomock.Any()).Return(func() { stopCalls++ }).Times(1)
	h1, err := l.LockWithRenewal(context.Background(), "k", 0)
	require.NoError(t, err)
	h2, err := l.LockWithRenewal(context.Background(), "k", 0, locker.WithOwner(h1.Owner()))
	require.NoError(t, err)
	assert.Equal(t, h1.Fence(), h2.Fence())

	// The first of two releases keeps renewing.
	r.b.EXPECT().Release(gomock.Any(), "k", h1.Owner(), "").Return(true, 1, nil)
	require.NoError(t, h2.Release(context.Background()))
	assert.Equal(t, 0, stopCalls)
	require.ErrorIs(t, h2.Err(), locker.ErrReleased)
	require.NoError(t, h1.Err())

	// The last one stops renewal before it sends the release.
	r.b.EXPECT().Release(gomock.Any(), "k", h1.Owner(), "").DoAndReturn(
		func(context.Context, string, string, string) (bool, int, error) {
			assert.Equal(t, 1, stopCalls, "renewal still running when the final release was sent")
			return true, 0, nil
		})
	require.NoError(t, h1.Release(context.Background()))

	// Double release: a typed error, and the store is not asked again.
	require.ErrorIs(t, h1.Release(context.Background()), locker.ErrNotHeld)
}

func TestFailedFinalReleaseStillStopsRenewal(t *testing.T) {
	r := newRig(t)
	l := r.barging(t, locker.Options[string]{})
	r.b.EXPECT().Acquire(gomock.Any(), gomock.Any()).Return(acquired(4, 1), nil)
	stopped := false
	r.r.EXPECT().Keep(gomock.Any()).Return(func() { stopped = true })
	h, err := l.LockWithRenewal(context.Background(), "k", 0)
	require.NoError(t, err)
	r.b.EXPECT().Release(gomock.Any(), "k", h.Owner(), "").Return(false, 0, errStore)
	err = h.Release(context.Background())
	require.ErrorIs(t, err, locker.ErrBackend)
	assert.True(t, stopped, "a failed unlock must not leave the lock renewed forever")
}

func TestFixedLeaseEndsAtItsDeadline(t *testing.T) { synctest.Test(t, testFixedLeaseEndsAtItsDeadline) }

func testFixedLeaseEndsAtItsDeadline(t *testing.T) {
	r := newRig(t)
	l := r.barging(t, locker.Options[string]{})
	r.b.EXPECT().Acquire(gomock.Any(), gomock.Any()).Return(acquired(1, 1), nil)
	before := time.Now()
	h, err := l.TryLock(context.Background(), "k", 30*time.Millisecond)
	require.NoError(t, err)
	assert.False(t, h.Deadline().Before(before.Add(30*time.Millisecond)))
	assert.False(t, h.Deadline().After(time.Now().Add(30*time.Millisecond)))
	select {
	case <-h.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for Done after the fixed lease ended")
	}
	require.ErrorIs(t, h.Err(), locker.ErrLost)
	assert.False(t, time.Now().Before(h.Deadline()), "Done closed before the deadline")
}

func TestExtendNotHeldEndsTheHandle(t *testing.T) {
	r := newRig(t)
	l := r.barging(t, locker.Options[string]{})
	r.b.EXPECT().Acquire(gomock.Any(), gomock.Any()).Return(acquired(1, 1), nil)
	h, err := l.TryLock(context.Background(), "k", time.Minute)
	require.NoError(t, err)
	r.b.EXPECT().Extend(gomock.Any(), "k", h.Owner(), 2*time.Minute).Return(true, nil)
	d := h.Deadline()
	require.NoError(t, h.Extend(context.Background(), 2*time.Minute))
	assert.True(t, h.Deadline().After(d))
	require.ErrorIs(t, h.Extend(context.Background(), 0), locker.ErrInvalidArgument)
	r.b.EXPECT().Extend(gomock.Any(), "k", h.Owner(), time.Minute).Return(false, nil)
	require.ErrorIs(t, h.Extend(context.Background(), time.Minute), locker.ErrNotHeld)
	require.ErrorIs(t, h.Err(), locker.ErrLost)
}

func TestCloseEndsHoldsAndRefusesNewCalls(t *testing.T) {
	r := newRig(t)
	l := r.barging(t, locker.Options[string]{})
	r.b.EXPECT().Acquire(gomock.Any(), gomock.Any()).Return(acquired(1, 1), nil)
	stopped := make(chan struct{}, 1)
	r.r.EXPECT().Keep(gomock.Any()).Return(func() { stopped <- struct{}{} })
	h, err := l.LockWithRenewal(context.Background(), "k", 0)
	require.NoError(t, err)
	require.NoError(t, l.Close())
	<-stopped
	require.ErrorIs(t, h.Err(), locker.ErrLost)
	require.ErrorIs(t, h.Err(), locker.ErrClosed)
	_, err = l.TryLock(context.Background(), "k", time.Second)
	require.ErrorIs(t, err, locker.ErrClosed)
	require.NoError(t, l.Close(), "Close is idempotent")
}

func TestReentriesReportingOutOfOrderShareOneHolding(t *testing.T) {
	r := newRig(t)
	l := r.barging(t, locker.Options[string]{})
	owner := locker.NewOwner()
	// The second re-entry's reply is processed first: count 2, then count 1,
	// both of the same holding (same fence).
	gomock.InOrder(
		r.b.EXPECT().Acquire(gomock.Any(), gomock.Any()).Return(acquired(5, 2), nil),
		r.b.EXPECT().Acquire(gomock.Any(), gomock.Any()).Return(acquired(5, 1), nil),
	)
	h1, err := l.TryLock(context.Background(), "k", time.Minute, locker.WithOwner(owner))
	require.NoError(t, err)
	h2, err := l.TryLock(context.Background(), "k", time.Minute, locker.WithOwner(owner))
	require.NoError(t, err)
	require.NoError(t, h1.Err())
	require.NoError(t, h2.Err())

	// A new fencing token is a new holding: the old handles were lost.
	r.b.EXPECT().Acquire(gomock.Any(), gomock.Any()).Return(acquired(6, 1), nil)
	h3, err := l.TryLock(context.Background(), "k", time.Minute, locker.WithOwner(owner))
	require.NoError(t, err)
	require.ErrorIs(t, h1.Err(), locker.ErrLost)
	require.ErrorIs(t, h2.Err(), locker.ErrLost)
	require.NoError(t, h3.Err())
}

// grantSub is a fakeSub whose store hands locks over directly.
type grantSub struct {
	*fakeSub
	mu    sync.Mutex
	fence int64
}

func (s *grantSub) Granted() (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fence, s.fence > 0
}

func (s *grantSub) grant(fence int64) {
	s.mu.Lock()
	s.fence = fence
	s.mu.Unlock()
	s.c <- struct{}{}
}

func queued(pos int) driver.AcquireResult {
	return driver.AcquireResult{TTL: time.Hour, Position: pos}
}

func TestGrantIsTakenWithoutAnotherRoundTrip(t *testing.T) {
	r := newRig(t)
	l := r.fair(t, locker.Options[string]{FallbackInterval: time.Hour})
	sub := &grantSub{fakeSub: newFakeSub()}
	r.n.EXPECT().Subscribe(gomock.Any(), "k", gomock.Any()).Return(sub, nil)
	attempts := make(chan time.Time, 2)
	r.q.EXPECT().AcquireFair(gomock.Any(), gomock.Any(), fairqueue.DefaultWaiterTTL).DoAndReturn(
		func(context.Context, driver.AcquireRequest, time.Duration) (driver.AcquireResult, error) {
			attempts <- time.Now()
			return queued(0), nil
		}).Times(2) // the first attempt and the one after subscribing; no claim
	holds := make(chan driver.Hold, 1)
	r.r.EXPECT().Keep(gomock.Any()).DoAndReturn(func(h driver.Hold) func() {
		holds <- h
		return func() {}
	})
	res := make(chan *locker.Lock[string], 1)
	go func() {
		h, err := l.LockWithRenewal(context.Background(), "k", locker.WaitForever)
		assert.NoError(t, err)
		res <- h
	}()
	<-attempts
	last := <-attempts
	sub.grant(77)
	var h *locker.Lock[string]
	select {
	case h = <-res:
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for the granted waiter to return")
	}
	require.NotNil(t, h)
	assert.Equal(t, int64(77), h.Fence())
	hold := <-holds
	// The grant's lease is min(lease, WaiterTTL), counted from no later than
	// the last attempt the store answered before the release.
	assert.False(t, hold.Deadline.After(last.Add(fairqueue.DefaultWaiterTTL)))
	assert.Equal(t, locker.DefaultRenewLease, hold.Lease, "the renewer lengthens it to the full lease")
	r.b.EXPECT().Release(gomock.Any(), "k", h.Owner(), "").Return(true, 0, nil)
	require.NoError(t, h.Release(context.Background()))
}

func TestGrantShorterThanTheFixedLeaseIsClaimed(t *testing.T) {
	r := newRig(t)
	l := r.fair(t, locker.Options[string]{FallbackInterval: time.Hour, WaiterTTL: time.Second})
	sub := &grantSub{fakeSub: newFakeSub()}
	r.n.EXPECT().Subscribe(gomock.Any(), "k", gomock.Any()).Return(sub, nil)
	attempts := make(chan struct{}, 3)
	gomock.InOrder(
		r.q.EXPECT().AcquireFair(gomock.Any(), gomock.Any(), time.Second).DoAndReturn(
			func(context.Context, driver.AcquireRequest, time.Duration) (driver.AcquireResult, error) {
				attempts <- struct{}{}
				return queued(0), nil
			}).Times(2),
		// The claim: the store answers the ticket's attempt as a re-entry.
		r.q.EXPECT().AcquireFair(gomock.Any(), gomock.Any(), time.Second).Return(acquired(78, 1), nil),
	)
	res := make(chan *locker.Lock[string], 1)
	go func() {
		h, err := l.Lock(context.Background(), "k", locker.WaitForever, time.Minute)
		assert.NoError(t, err)
		res <- h
	}()
	<-attempts
	<-attempts
	sub.grant(78)
	select {
	case h := <-res:
		require.NotNil(t, h)
		assert.Equal(t, int64(78), h.Fence())
		assert.True(t, time.Until(h.Deadline()) > 30*time.Second, "the claim set the full lease")
		r.b.EXPECT().Release(gomock.Any(), "k", h.Owner(), "").Return(true, 0, nil)
		require.NoError(t, h.Release(context.Background()))
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for the granted waiter to claim")
	}
}

// deadlineOf reports the deadline of ctx, failing the test when it has none.
func deadlineOf(t *testing.T, ctx context.Context) time.Time {
	t.Helper()
	d, ok := ctx.Deadline()
	require.True(t, ok, "a store call without a deadline")
	return d
}

func TestEveryStoreCallIsBoundedByTheRequestTimeout(t *testing.T) {
	const timeout = time.Second
	for _, c := range []struct {
		name   string
		within time.Duration // the caller's deadline from now; 0: none
	}{
		{"no deadline", 0},
		{"later deadline", time.Hour},
		{"earlier deadline", timeout / 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t)
			l := r.barging(t, locker.Options[string]{RequestTimeout: timeout})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if c.within > 0 {
				var stop context.CancelFunc
				ctx, stop = context.WithTimeout(ctx, c.within)
				defer stop()
			}
			caller := c.within > 0 && c.within <= timeout // the caller's deadline is the bound
			var seen []time.Time
			check := func(got context.Context, before time.Time) {
				d := deadlineOf(t, got)
				seen = append(seen, d)
				assert.False(t, d.After(time.Now().Add(timeout)), "a store call may run longer than RequestTimeout")
				if want, ok := ctx.Deadline(); caller && ok {
					assert.Equal(t, want, d, "the caller's earlier deadline is the bound")
				} else {
					assert.False(t, d.Before(before.Add(timeout)), "the bound is shorter than RequestTimeout")
				}
			}
			var before time.Time
			r.b.EXPECT().Acquire(gomock.Any(), gomock.Any()).DoAndReturn(func(got context.Context, _ driver.AcquireRequest) (driver.AcquireResult, error) {
				check(got, before)
				return acquired(1, 1), nil
			})
			r.b.EXPECT().Extend(gomock.Any(), "k", gomock.Any(), time.Minute).DoAndReturn(func(got context.Context, _, _ string, _ time.Duration) (bool, error) {
				check(got, before)
				return true, nil
			})
			r.b.EXPECT().Release(gomock.Any(), "k", gomock.Any(), "").DoAndReturn(func(got context.Context, _, _, _ string) (bool, int, error) {
				check(got, before)
				return true, 0, nil
			})
			before = time.Now()
			h, err := l.TryLock(ctx, "k", time.Minute)
			require.NoError(t, err)
			before = time.Now()
			require.NoError(t, h.Extend(ctx, time.Minute))
			before = time.Now()
			require.NoError(t, h.Release(ctx))
			require.Len(t, seen, 3)
		})
	}
}

func TestDoneOfEveryHandleClosesWhenItEnds(t *testing.T) {
	r := newRig(t)
	l := r.barging(t, locker.Options[string]{})
	owner := locker.NewOwner()
	r.b.EXPECT().Acquire(gomock.Any(), gomock.Any()).Return(acquired(5, 1), nil)
	r.b.EXPECT().Acquire(gomock.Any(), gomock.Any()).Return(acquired(5, 2), nil)
	r.b.EXPECT().Acquire(gomock.Any(), gomock.Any()).Return(acquired(5, 3), nil)
	var hs []*locker.Lock[string]
	for range 3 {
		h, err := l.TryLock(context.Background(), "k", time.Minute, locker.WithOwner(owner))
		require.NoError(t, err)
		hs = append(hs, h)
	}
	isClosed := func(c <-chan struct{}) bool {
		select {
		case <-c:
			return true
		default:
			return false
		}
	}
	done0 := hs[0].Done() // asked for before the end
	assert.Equal(t, done0, hs[0].Done(), "Done returns one channel")
	assert.False(t, isClosed(done0))

	// Releasing one handle ends it alone, whether Done was asked for before
	// or after.
	r.b.EXPECT().Release(gomock.Any(), "k", owner, "").Return(true, 2, nil)
	require.NoError(t, hs[1].Release(context.Background()))
	assert.True(t, isClosed(hs[1].Done()))
	assert.Equal(t, hs[1].Done(), hs[1].Done(), "Done returns one channel")
	require.ErrorIs(t, hs[1].Err(), locker.ErrReleased)
	assert.False(t, isClosed(done0))
	assert.False(t, isClosed(hs[2].Done()))
	require.NoError(t, hs[0].Err())
	require.NoError(t, hs[2].Err())

	// A new holding of the owner ends every other handle of the old one.
	r.b.EXPECT().Acquire(gomock.Any(), gomock.Any()).Return(acquired(6, 1), nil)
	h3, err := l.TryLock(context.Background(), "k", time.Minute, locker.WithOwner(owner))
	require.NoError(t, err)
	assert.True(t, isClosed(done0))
	assert.True(t, isClosed(hs[2].Done()))
	require.ErrorIs(t, hs[0].Err(), locker.ErrLost)
	require.ErrorIs(t, hs[2].Err(), locker.ErrLost)
	assert.False(t, isClosed(h3.Done()))
	require.NoError(t, h3.Err())
}
