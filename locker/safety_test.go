package locker_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"

	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/mock/gomock"

	"github.com/disgolock/disgo/backend/memory"
	"github.com/disgolock/disgo/fairqueue"
	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/locker/driver"
)

// patience bounds what should happen promptly; generous for a loaded machine.
const patience = 10 * time.Second

func waitFor[V any](t *testing.T, ch <-chan V, what string) V {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(patience):
		t.Fatalf("timed out waiting for %s", what)
	}
	var zero V
	return zero
}

// A grant announced after the store said "not acquired" with a newer
// fence is stale (it lapsed while the waiter's process was stopped, and
// another owner took the lock): it must not become a success. Before the
// fix the waiter returned holding fence 11 while the store named the
// holder of fence 12.
func TestStaleGrantIsNotTaken(t *testing.T) { synctest.Test(t, testStaleGrantIsNotTaken) }

func testStaleGrantIsNotTaken(t *testing.T) {
	r := newRig(t)
	l := r.fair(t, locker.Options[string]{FallbackInterval: time.Hour})
	sub := &grantSub{fakeSub: newFakeSub()}
	r.n.EXPECT().Subscribe(gomock.Any(), "k", gomock.Any()).Return(sub, nil)
	third := make(chan struct{})
	var calls atomic.Int32
	r.q.EXPECT().AcquireFair(gomock.Any(), gomock.Any(), fairqueue.DefaultWaiterTTL).DoAndReturn(
		func(context.Context, driver.AcquireRequest, time.Duration) (driver.AcquireResult, error) {
			switch calls.Add(1) {
			case 1:
				return driver.AcquireResult{TTL: time.Hour, Position: 0, Fence: 10}, nil
			case 2: // after subscribing: the holder's lease is about to end
				return driver.AcquireResult{TTL: time.Millisecond, Position: 0, Fence: 10}, nil
			case 3: // the fallback re-check: another owner holds fence 12 now
				close(third)
				return driver.AcquireResult{TTL: time.Hour, Position: 0, Fence: 12}, nil
			default: // the attempt the wake-up triggers: a fresh holding
				return acquired(13, 1), nil
			}
		}).MinTimes(4)
	r.b.EXPECT().Release(gomock.Any(), "k", gomock.Any(), "").Return(true, 0, nil).AnyTimes()
	res := make(chan *locker.Lock[string], 1)
	go func() {
		// A lease no longer than WaiterTTL: the grant's lease is the whole lease.
		h, err := l.Lock(context.Background(), "k", locker.WaitForever, time.Second)
		assert.NoError(t, err)
		res <- h
	}()
	waitFor(t, third, "the fallback re-check")
	sub.grant(11) // the old grant's message, delivered late
	h := waitFor(t, res, "the waiter to acquire")
	require.NotNil(t, h)
	assert.Equal(t, int64(13), h.Fence(), "the stale grant of fence 11 was taken as a success")
	require.NoError(t, h.Release(context.Background()))
}

// The same grant message seen again after a "not acquired" answer that
// carried its own fence (the grant lapsed, nobody else took the lock) is
// stale too.
func TestDuplicatedGrantAfterItLapsedIsNotTaken(t *testing.T) {
	synctest.Test(t, testDuplicatedGrantAfterItLapsedIsNotTaken)
}

func testDuplicatedGrantAfterItLapsedIsNotTaken(t *testing.T) {
	r := newRig(t)
	l := r.fair(t, locker.Options[string]{FallbackInterval: time.Hour, WaiterTTL: time.Second})
	sub := &grantSub{fakeSub: newFakeSub()}
	r.n.EXPECT().Subscribe(gomock.Any(), "k", gomock.Any()).Return(sub, nil)
	third := make(chan struct{})
	var calls atomic.Int32
	r.q.EXPECT().AcquireFair(gomock.Any(), gomock.Any(), time.Second).DoAndReturn(
		func(context.Context, driver.AcquireRequest, time.Duration) (driver.AcquireResult, error) {
			switch calls.Add(1) {
			case 1:
				return driver.AcquireResult{TTL: time.Hour, Position: 0, Fence: 10}, nil
			case 2:
				return driver.AcquireResult{TTL: time.Millisecond, Position: 0, Fence: 10}, nil
			case 3: // free, another head: the last fence issued is the lapsed grant's
				close(third)
				return driver.AcquireResult{TTL: -1, Position: 1, Fence: 11}, nil
			default:
				return acquired(14, 1), nil
			}
		}).MinTimes(4)
	r.b.EXPECT().Release(gomock.Any(), "k", gomock.Any(), "").Return(true, 0, nil).AnyTimes()
	res := make(chan *locker.Lock[string], 1)
	go func() {
		h, err := l.LockWithRenewal(context.Background(), "k", locker.WaitForever)
		assert.NoError(t, err)
		res <- h
	}()
	r.r.EXPECT().Keep(gomock.Any()).Return(func() {})
	waitFor(t, third, "the fallback re-check")
	sub.grant(11)
	h := waitFor(t, res, "the waiter to acquire")
	require.NotNil(t, h)
	assert.Equal(t, int64(14), h.Fence())
	require.NoError(t, h.Release(context.Background()))
}

// A waiter whose ctx is done before it takes a grant returns the ctx
// error, and gives the grant back by its ticket. The wake-up and the
// cancellation are both ready when the waiter looks, so its select may
// pick either; the call must fail either way.
func TestGrantAfterCancelIsGivenBack(t *testing.T) {
	for i := range 20 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			r := newRig(t)
			l := r.fair(t, locker.Options[string]{FallbackInterval: time.Hour})
			sub := &grantSub{fakeSub: newFakeSub()}
			r.n.EXPECT().Subscribe(gomock.Any(), "k", gomock.Any()).Return(sub, nil)
			ctx, cancel := context.WithCancel(context.Background())
			var ticket string
			var calls atomic.Int32
			r.q.EXPECT().AcquireFair(gomock.Any(), gomock.Any(), gomock.Any()).DoAndReturn(
				func(_ context.Context, req driver.AcquireRequest, _ time.Duration) (driver.AcquireResult, error) {
					ticket = req.Ticket
					if calls.Add(1) == 2 {
						// Both ready before the waiter selects.
						sub.grant(50)
						cancel()
					}
					return driver.AcquireResult{TTL: time.Hour, Position: 0, Fence: 40}, nil
				}).Times(2)
			r.q.EXPECT().Leave(gomock.Any(), "k", gomock.Any()).Return(nil)
			undone := make(chan string, 1)
			r.b.EXPECT().Release(gomock.Any(), "k", gomock.Any(), gomock.Any()).DoAndReturn(
				func(_ context.Context, _, _, tk string) (bool, int, error) {
					undone <- tk
					return true, 0, nil
				})
			h, err := l.Lock(ctx, "k", locker.WaitForever, time.Second) // a grant it could take as it is
			require.ErrorIs(t, err, context.Canceled)
			require.Nil(t, h)
			assert.Equal(t, ticket, waitFor(t, undone, "the grant to be given back"), "given back by its ticket")
		})
	}
}

// The same on the memory backend, many waiters at once: none of them may
// return a lock once its ctx is done, and the lock ends free.
func TestCancelledWaitersNeverReturnAGrant(t *testing.T) {
	store := memory.New()
	for round := range 10 {
		hl, err := locker.New(store.Client(), locker.Options[string]{})
		require.NoError(t, err)
		holder, err := hl.TryLock(context.Background(), "k", time.Minute)
		require.NoError(t, err)
		ctx, cancel := context.WithCancel(context.Background())
		const n = 100
		results := make(chan error, n)
		var ls []*locker.Locker[string]
		for range n {
			wl, err := locker.New(store.Client(), locker.Options[string]{})
			require.NoError(t, err)
			ls = append(ls, wl)
			go func() {
				h, err := wl.Lock(ctx, "k", locker.WaitForever, time.Second)
				if err == nil {
					err = fmt.Errorf("a cancelled waiter returned a held lock (fence %d)", h.Fence())
				}
				results <- err
			}()
		}
		// Cancel while some waiters are still between their attempts, so
		// that a wake-up and the cancellation are both ready when they look.
		require.Eventually(t, func() bool {
			st, err := store.Inspect(context.Background(), "k")
			return err == nil && st.Waiters >= n/2
		}, patience, time.Millisecond, "round %d: waiters to queue", round)
		cancel()
		require.NoError(t, holder.Release(context.Background()))
		for range n {
			err := waitFor(t, results, "a cancelled waiter to return")
			require.ErrorIs(t, err, context.Canceled, "round %d", round)
		}
		require.Eventually(t, func() bool {
			st, err := store.Inspect(context.Background(), "k")
			return err == nil && reflect.DeepEqual(st, driver.State{})
		}, patience, time.Millisecond, "round %d: every grant given back, the lock free", round)
		for _, wl := range ls {
			require.NoError(t, wl.Close())
		}
		require.NoError(t, hl.Close())
	}
}

// The common defer h.Release(ctx) with a ctx cancelled at the end of the
// request: the release still happens, renewal stops, and others get the
// lock at once.
func TestReleaseWithCancelledCtxStillReleases(t *testing.T) {
	store := memory.New()
	l, err := locker.New(store, locker.Options[string]{RenewLease: 100 * time.Millisecond})
	require.NoError(t, err)
	defer l.Close()
	ctx, cancel := context.WithCancel(context.Background())
	h, err := l.LockWithRenewal(ctx, "k", 0)
	require.NoError(t, err)
	cancel()
	require.NoError(t, h.Release(ctx), "the release is made under a deadline of its own")
	require.ErrorIs(t, h.Err(), locker.ErrReleased)
	other, err := l.TryLock(context.Background(), "k", time.Minute)
	require.NoError(t, err, "the lock is free at once")
	require.NoError(t, other.Release(context.Background()))
	require.ErrorIs(t, h.Release(ctx), locker.ErrNotHeld, "a second release")
}

// A release the store cannot take still stops renewal: five leases later
// the lock is free. (In a bubble: the leases run out on the fake clock.)
func TestFailedReleaseLeavesNothingRenewed(t *testing.T) {
	synctest.Test(t, testFailedReleaseLeavesNothingRenewed)
}

func testFailedReleaseLeavesNothingRenewed(t *testing.T) {
	store := memory.New()
	c := store.Client()
	l, err := locker.New(c, locker.Options[string]{RenewLease: 50 * time.Millisecond})
	require.NoError(t, err)
	defer l.Close()
	h, err := l.LockWithRenewal(context.Background(), "k", 0)
	require.NoError(t, err)
	// The release fails: its ctx ends during the call (a deadline already
	// lapsed when the store looks).
	ctx, cancel := context.WithTimeout(context.Background(), time.Nanosecond)
	defer cancel()
	time.Sleep(time.Millisecond)
	_ = h.Release(ctx) // detached from ctx: it releases; the point is what follows either way
	time.Sleep(5 * 50 * time.Millisecond)
	other, err := locker.New(store.Client(), locker.Options[string]{})
	require.NoError(t, err)
	defer other.Close()
	g, err := other.TryLock(context.Background(), "k", time.Minute)
	require.NoError(t, err, "the lock is still held and renewed after its release")
	require.NoError(t, g.Release(context.Background()))
}

// Renewal stops even when the store call of the final release fails.
func TestReleaseWithDoneCtxStopsRenewalWhenTheStoreFails(t *testing.T) {
	r := newRig(t)
	l := r.barging(t, locker.Options[string]{RequestTimeout: time.Second})
	r.b.EXPECT().Acquire(gomock.Any(), gomock.Any()).Return(acquired(4, 1), nil)
	stopped := make(chan struct{})
	r.r.EXPECT().Keep(gomock.Any()).Return(func() { close(stopped) })
	ctx, cancel := context.WithCancel(context.Background())
	h, err := l.LockWithRenewal(ctx, "k", 0)
	require.NoError(t, err)
	cancel()
	r.b.EXPECT().Release(gomock.Any(), "k", h.Owner(), "").DoAndReturn(
		func(got context.Context, _, _, _ string) (bool, int, error) {
			assert.NoError(t, got.Err(), "the release must not go out on the caller's cancelled ctx")
			d, ok := got.Deadline()
			assert.True(t, ok, "the detached release has a deadline of its own")
			assert.False(t, d.After(time.Now().Add(time.Second)))
			return false, 0, errStore
		})
	err = h.Release(ctx)
	require.ErrorIs(t, err, locker.ErrBackend)
	require.ErrorIs(t, err, errStore)
	require.NotErrorIs(t, err, context.Canceled)
	waitFor(t, stopped, "renewal to stop")
}

// Close returns the waiters at once with ErrClosed, and their queue
// entries leave the store.
func TestCloseReturnsWaitersAtOnce(t *testing.T) {
	for _, mode := range []locker.Mode{locker.Fair, locker.Barging} {
		t.Run(mode.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store := memory.New()
				hl, err := locker.New(store.Client(), locker.Options[string]{Mode: mode})
				require.NoError(t, err)
				defer hl.Close()
				holder, err := hl.TryLock(context.Background(), "k", time.Minute)
				require.NoError(t, err)
				wl, err := locker.New(store.Client(), locker.Options[string]{Mode: mode})
				require.NoError(t, err)
				const n = 10
				results := make(chan error, n)
				for range n {
					go func() {
						_, err := wl.Lock(context.Background(), "k", time.Hour, time.Minute)
						results <- err
					}()
				}
				synctest.Wait() // every waiter is blocked, waiting
				if mode == locker.Fair {
					st, err := store.Inspect(context.Background(), "k")
					require.NoError(t, err)
					require.Equal(t, n, st.Waiters)
				} else {
					require.Equal(t, 1, store.ActiveSubscriptions())
				}
				closed := make(chan error, 1)
				go func() { closed <- wl.Close() }()
				require.NoError(t, waitFor(t, closed, "Close to return"))
				// Close has waited for its waiting calls to leave the store: the
				// queue is empty as Close returns, and every call returns
				// ErrClosed (its goroutine may still be on its way out).
				st, err := store.Inspect(context.Background(), "k")
				require.NoError(t, err)
				assert.Zero(t, st.Waiters, "the closed Locker's waiters left the queue before Close returned")
				for range n {
					err := waitFor(t, results, "a waiter of the closed Locker to return")
					require.ErrorIs(t, err, locker.ErrClosed)
					require.NotErrorIs(t, err, locker.ErrNotObtained)
				}
				assert.Equal(t, holder.Owner(), st.Owner)
				require.NoError(t, holder.Release(context.Background()))
				st, err = store.Inspect(context.Background(), "k")
				require.NoError(t, err)
				assert.Equal(t, driver.State{}, st, "nothing was granted to a closed waiter")
			})
		})
	}
}

// hangClient's acquiring calls do not answer until their ctx ends.
type hangClient struct {
	*memory.Client
	entered chan struct{} // one value per acquiring call
}

func (c *hangClient) Acquire(ctx context.Context, _ driver.AcquireRequest) (driver.AcquireResult, error) {
	c.entered <- struct{}{}
	<-ctx.Done()
	return driver.AcquireResult{}, ctx.Err()
}

func (c *hangClient) AcquireFair(ctx context.Context, req driver.AcquireRequest, _ time.Duration) (driver.AcquireResult, error) {
	return c.Acquire(ctx, req)
}

// Close ends a waiting call whose first attempt the store has not answered
// yet at once, not when the request times out; the call fails with
// ErrClosed, makes no other store call, and the Observer hears of no store
// error. The plain Backend (no Notifier) goes from the first attempt
// straight to the next, with no Subscribe between.
func TestCloseEndsAFirstAttemptInFlight(t *testing.T) {
	for _, tc := range []struct {
		name  string
		mode  locker.Mode
		plain bool
	}{{"fair", locker.Fair, false}, {"barging", locker.Barging, false}, {"plain-backend", locker.Barging, true}} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store := memory.New()
				c := &hangClient{Client: store.Client(), entered: make(chan struct{}, 10)}
				var backend driver.Backend = c
				if tc.plain {
					backend = struct{ driver.Backend }{c} // no Queue, no Notifier
				}
				obs := &recorder{}
				l, err := locker.New[string](backend, locker.Options[string]{Mode: tc.mode, RequestTimeout: time.Hour, Observer: obs})
				require.NoError(t, err)
				start := time.Now()
				result := make(chan error, 1)
				go func() {
					_, err := l.Lock(context.Background(), "k", locker.WaitForever, time.Minute)
					result <- err
				}()
				<-c.entered
				require.NoError(t, l.Close())
				err = <-result
				require.ErrorIs(t, err, locker.ErrClosed)
				// The bubble's clock: it moves only while every goroutine waits.
				assert.Less(t, time.Since(start), time.Hour, "the call waited for the request timeout")
				synctest.Wait()
				assert.Len(t, c.entered, 0, "no attempt after the first")
				for _, e := range obs.allEvents() {
					assert.NotEqual(t, locker.EventStoreError, e.Kind, "Close reported as a store error: %+v", e)
				}
				st, err := store.Inspect(context.Background(), "k")
				require.NoError(t, err)
				assert.Equal(t, driver.State{}, st)
			})
		})
	}
}

// Bounds on leases and waits are checked before the store is touched.
func TestLeaseAndWaitBounds(t *testing.T) {
	r := newRig(t)
	l := r.barging(t, locker.Options[string]{})
	ctx := context.Background()
	for _, lease := range []time.Duration{locker.MaxLease + time.Millisecond, math.MaxInt64} {
		_, err := l.TryLock(ctx, "k", lease)
		require.ErrorIs(t, err, locker.ErrInvalidArgument, "lease %v", lease)
		_, err = l.Lock(ctx, "k", time.Second, lease)
		require.ErrorIs(t, err, locker.ErrInvalidArgument, "lease %v", lease)
	}
	_, err := l.Lock(ctx, "k", locker.MaxWait+time.Millisecond, time.Second)
	require.ErrorIs(t, err, locker.ErrInvalidArgument)
	for _, o := range []locker.Options[string]{
		{RenewLease: math.MaxInt64}, {RenewLease: locker.MaxLease + 1}, {WaiterTTL: math.MaxInt64},
		{FallbackInterval: math.MaxInt64}, {RequestTimeout: math.MaxInt64},
	} {
		_, err := locker.New(driver.Backend(r.b), o)
		require.ErrorIs(t, err, locker.ErrInvalidArgument, "%+v", o)
	}
	// The largest lease and wait work, on a store that takes them.
	ml, err := locker.New(memory.New(), locker.Options[string]{RenewLease: locker.MaxLease})
	require.NoError(t, err)
	defer ml.Close()
	h, err := ml.Lock(ctx, "k", locker.MaxWait, locker.MaxLease)
	require.NoError(t, err)
	require.NoError(t, h.Extend(ctx, locker.MaxLease))
	require.ErrorIs(t, h.Extend(ctx, locker.MaxLease+1), locker.ErrInvalidArgument)
	require.NoError(t, h.Release(ctx))
	h, err = ml.LockWithRenewal(ctx, "k", 0)
	require.NoError(t, err)
	require.NoError(t, h.Release(ctx))
}

// A nil handle (what a failed acquisition returns) and the zero Lock never
// panic: they report not held.
func TestNilAndZeroHandles(t *testing.T) {
	ctx := context.Background()
	for name, h := range map[string]*locker.Lock[string]{"nil": nil, "zero": new(locker.Lock[string])} {
		t.Run(name, func(t *testing.T) {
			require.ErrorIs(t, h.Release(ctx), locker.ErrNotHeld)
			require.ErrorIs(t, h.Extend(ctx, time.Second), locker.ErrNotHeld)
			require.ErrorIs(t, h.Err(), locker.ErrNotHeld)
			select {
			case <-h.Done():
			default:
				t.Fatal("Done of a handle that holds nothing is not closed")
			}
			assert.True(t, h.Deadline().IsZero())
			assert.Zero(t, h.Fence())
			assert.Empty(t, h.Name())
			assert.Empty(t, h.Owner())
			assert.Empty(t, h.Key())
		})
	}
	// As a failed TryLock returns it.
	l, err := locker.New(memory.New(), locker.Options[string]{})
	require.NoError(t, err)
	defer l.Close()
	h1, err := l.TryLock(ctx, "k", time.Minute)
	require.NoError(t, err)
	h2, err := l.TryLock(ctx, "k", time.Minute)
	require.ErrorIs(t, err, locker.ErrNotObtained)
	require.ErrorIs(t, h2.Release(ctx), locker.ErrNotHeld)
	require.NoError(t, h1.Release(ctx))
}

// Every (namespace, key) pair has a lock name of its own.
func TestNamespacesDoNotCollide(t *testing.T) {
	name := func(ns, key string) string {
		l, err := locker.New(memory.New(), locker.Options[string]{Namespace: ns})
		require.NoError(t, err)
		defer l.Close()
		n, err := l.Name(key)
		require.NoError(t, err)
		return n
	}
	pairs := [][2]string{
		{"a", "b:c"}, {"a:b", "c"}, {"", "a:b:c"}, {"", "a%3Ab:c"}, {"a%3Ab", "c"}, {"a%", "b"}, {"a", "%b"},
		{"", "x"}, {"x", ""}, {"", "%"}, {"%", "x"}, {"", "a:"}, {"a", ":"},
	}
	seen := map[string][2]string{}
	for _, p := range pairs {
		if p[1] == "" {
			continue
		}
		n := name(p[0], p[1])
		if prev, ok := seen[n]; ok {
			t.Fatalf("namespace %q key %q and namespace %q key %q share the lock name %q", prev[0], prev[1], p[0], p[1], n)
		}
		seen[n] = p
	}
	assert.Equal(t, "orders:42", name("orders", "42"), "the common case is unchanged")
	assert.Equal(t, "42", name("", "42"))
	// And they are different locks.
	store := memory.New()
	la, err := locker.New(store, locker.Options[string]{Namespace: "a"})
	require.NoError(t, err)
	defer la.Close()
	lab, err := locker.New(store, locker.Options[string]{Namespace: "a:b"})
	require.NoError(t, err)
	defer lab.Close()
	h1, err := la.TryLock(context.Background(), "b:c", time.Minute)
	require.NoError(t, err)
	h2, err := lab.TryLock(context.Background(), "c", time.Minute)
	require.NoError(t, err, "namespace a:b key c is not namespace a key b:c")
	require.NoError(t, h1.Release(context.Background()))
	require.NoError(t, h2.Release(context.Background()))
}

// Every error message is one line, whatever its causes; every cause still
// matches.
func TestErrorsAreOneLine(t *testing.T) {
	r := newRig(t)
	l := r.barging(t, locker.Options[string]{})
	r.b.EXPECT().Acquire(gomock.Any(), gomock.Any()).Return(acquired(9, 1), nil)
	holds := make(chan driver.Hold, 1)
	r.r.EXPECT().Keep(gomock.Any()).DoAndReturn(func(h driver.Hold) func() {
		holds <- h
		return func() {}
	})
	h, err := l.LockWithRenewal(context.Background(), "k", 0)
	require.NoError(t, err)
	cause := errors.New("renewer: the store no longer names this owner")
	(<-holds).OnLost(cause)
	lost := h.Err()
	require.ErrorIs(t, lost, locker.ErrLost)
	require.ErrorIs(t, lost, cause)
	assert.NotContains(t, lost.Error(), "\n")
	assert.Equal(t, `disgo: hold "k": lock lost: renewer: the store no longer names this owner`, lost.Error())

	multi := &locker.Error{Op: "lock", Name: "k", Err: errors.Join(locker.ErrBackend, errors.New("line one\nline two"))}
	assert.Equal(t, `disgo: lock "k": lock store failed; line one; line two`, multi.Error())
	require.ErrorIs(t, multi, locker.ErrBackend)

	_, err = locker.New[string](fairBackend2{r.b}, locker.Options[string]{})
	require.ErrorIs(t, err, locker.ErrUnsupported)
	assert.NotContains(t, err.Error(), "\n")
}

// fairBackend2 is a Backend without a Queue.
type fairBackend2 struct{ driver.Backend }

// A waiter that gives up while the store does not answer (an outage, a
// CLIENT PAUSE) keeps trying to leave the queue in the background, and
// succeeds once the store is back, so that the first release after the
// outage does not grant the lock to a caller that is gone.
func TestGiveUpCleanupIsRetriedUntilTheStoreAnswers(t *testing.T) {
	synctest.Test(t, testGiveUpCleanupIsRetriedUntilTheStoreAnswers)
}

func testGiveUpCleanupIsRetriedUntilTheStoreAnswers(t *testing.T) {
	r := newRig(t)
	l := r.fair(t, locker.Options[string]{FallbackInterval: time.Hour})
	r.n.EXPECT().Subscribe(gomock.Any(), "k", gomock.Any()).Return(newFakeSub(), nil)
	r.q.EXPECT().AcquireFair(gomock.Any(), gomock.Any(), gomock.Any()).Return(queued(0), nil).Times(2)
	var down atomic.Bool
	down.Store(true)
	var leaves, releases atomic.Int32
	r.q.EXPECT().Leave(gomock.Any(), "k", gomock.Any()).DoAndReturn(func(ctx context.Context, _, _ string) error {
		leaves.Add(1)
		if down.Load() {
			<-ctx.Done() // the store does not answer
			return ctx.Err()
		}
		return nil
	}).MinTimes(2)
	cleaned := make(chan string, 1)
	r.b.EXPECT().Release(gomock.Any(), "k", gomock.Any(), gomock.Any()).DoAndReturn(
		func(_ context.Context, _, _, tk string) (bool, int, error) {
			releases.Add(1)
			cleaned <- tk
			return false, 0, nil
		})
	start := time.Now()
	_, err := l.Lock(context.Background(), "k", 50*time.Millisecond, time.Minute)
	require.ErrorIs(t, err, locker.ErrNotObtained)
	// On the bubble's clock: the call does not wait a RequestTimeout for the store.
	assert.Less(t, time.Since(start), locker.DefaultRequestTimeout, "giving up waited for the store")
	time.Sleep(100 * time.Millisecond)
	synctest.Wait()
	assert.Zero(t, releases.Load(), "nothing is undone before the ticket left the queue")
	down.Store(false) // the store is back
	tk := waitFor(t, cleaned, "the clean-up to be retried once the store is back")
	assert.NotEmpty(t, tk)
	assert.GreaterOrEqual(t, leaves.Load(), int32(2))
}

// Close abandons a clean-up the store never answers, promptly.
func TestCloseAbandonsPendingCleanups(t *testing.T) {
	synctest.Test(t, testCloseAbandonsPendingCleanups)
}

func testCloseAbandonsPendingCleanups(t *testing.T) {
	r := newRig(t)
	l := r.fair(t, locker.Options[string]{FallbackInterval: time.Hour, RequestTimeout: time.Minute})
	r.n.EXPECT().Subscribe(gomock.Any(), "k", gomock.Any()).Return(newFakeSub(), nil)
	r.q.EXPECT().AcquireFair(gomock.Any(), gomock.Any(), gomock.Any()).Return(queued(0), nil).Times(2)
	r.q.EXPECT().Leave(gomock.Any(), "k", gomock.Any()).DoAndReturn(func(ctx context.Context, _, _ string) error {
		<-ctx.Done()
		return ctx.Err()
	}).MinTimes(1)
	_, err := l.Lock(context.Background(), "k", 20*time.Millisecond, time.Minute)
	require.ErrorIs(t, err, locker.ErrNotObtained)
	closing := time.Now()
	done := make(chan error, 1)
	go func() { done <- l.Close() }()
	require.NoError(t, waitFor(t, done, "Close with a clean-up pending"))
	assert.Equal(t, closing, time.Now(), "Close waited for the clean-up")
}

// The namespace may contain the separator; what the store sees is still
// one-to-one, and Name documents it.
func TestNameEscapesTheSeparator(t *testing.T) {
	l, err := locker.New(memory.New(), locker.Options[string]{Namespace: "a:b%"})
	require.NoError(t, err)
	defer l.Close()
	n, err := l.Name("c:d")
	require.NoError(t, err)
	assert.Equal(t, "a%3Ab%25:c:d", n)
	bare, err := locker.New(memory.New(), locker.Options[string]{})
	require.NoError(t, err)
	defer bare.Close()
	n, err = bare.Name("c:d%")
	require.NoError(t, err)
	assert.Equal(t, "c%3Ad%25", n)
	assert.False(t, strings.Contains(n, ":"))
}
