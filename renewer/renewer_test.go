package renewer_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/disgolock/disgo/locker/driver"
	"github.com/disgolock/disgo/renewer"
)

// The tests that depend on time run in a synctest bubble: the clock is
// fake, starts when the bubble does, and moves only when every goroutine of
// the bubble is blocked. A request is then received at the very instant the
// Renewer sends it, so a test can check when each one is sent, and no test
// sleeps for real.

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var errBoom = errors.New("store unreachable")

// patience bounds a wait for something that should happen, for the message
// "timed out waiting for X". In a bubble waiting costs nothing, and it must
// outlast every wait a test plans (the longest is an hour).
const patience = 24 * time.Hour

// request is one Extend or ExtendBatch call seen by a scripted store. The
// call blocks until the test answers it or its context is done.
type request struct {
	ctx   context.Context
	items []driver.Extension
	reply chan answer
}

type answer struct {
	items []driver.Extension // results, in the order asked
	err   error              // error of the whole call
}

func (q *request) names() []string {
	var ns []string
	for _, it := range q.items {
		ns = append(ns, it.Name)
	}
	return ns
}

// answerAll gives every item the same result.
func (q *request) answerAll(held bool, err error) {
	items := slices.Clone(q.items)
	for i := range items {
		items[i].Held, items[i].Err = held, err
	}
	q.reply <- answer{items: items}
}

// store is a scripted Extender: each call is handed to the test on reqs.
type store struct {
	reqs                  chan *request
	calls                 atomic.Int64
	inflight, maxInflight atomic.Int64
	// deaf: a call waits for its answer even after its context is done (a
	// store whose reply comes late), so that the test decides when the
	// Renewer sees the reply. Set it before the first call.
	deaf bool
}

func newStore() *store { return &store{reqs: make(chan *request)} }

func (s *store) do(ctx context.Context, items []driver.Extension) answer {
	s.calls.Add(1)
	n := s.inflight.Add(1)
	defer s.inflight.Add(-1)
	storeMax(&s.maxInflight, n)
	q := &request{ctx: ctx, items: items, reply: make(chan answer, 1)}
	if s.deaf {
		s.reqs <- q
		return <-q.reply
	}
	select {
	case s.reqs <- q:
	case <-ctx.Done():
		return answer{err: ctx.Err()}
	}
	select {
	case a := <-q.reply:
		return a
	case <-ctx.Done():
		return answer{err: ctx.Err()}
	}
}

// storeMax raises a to n if n is larger.
func storeMax(a *atomic.Int64, n int64) {
	for m := a.Load(); n > m && !a.CompareAndSwap(m, n); m = a.Load() {
	}
}

func (s *store) Extend(ctx context.Context, name, owner string, lease time.Duration) (bool, error) {
	a := s.do(ctx, []driver.Extension{{Name: name, Owner: owner, Lease: lease}})
	if a.err != nil {
		return false, a.err
	}
	return a.items[0].Held, a.items[0].Err
}

// batchStore is a store that is also a BatchExtender.
type batchStore struct{ *store }

func (s batchStore) ExtendBatch(ctx context.Context, batch []driver.Extension) error {
	a := s.do(ctx, slices.Clone(batch))
	if a.err != nil {
		return a.err
	}
	copy(batch, a.items)
	return nil
}

// events records the callbacks of one hold.
type events struct {
	renewed chan time.Time
	lost    chan error
}

func (ev *events) quiet(t *testing.T) {
	t.Helper()
	assert.Zero(t, len(ev.renewed), "unexpected OnRenewed")
	assert.Zero(t, len(ev.lost), "unexpected OnLost")
}

func newHold(name string, lease time.Duration, deadline time.Time) (driver.Hold, *events) {
	ev := &events{renewed: make(chan time.Time, 100), lost: make(chan error, 10)}
	return driver.Hold{
		Name: name, Owner: "owner-" + name, Lease: lease, Deadline: deadline,
		OnRenewed: func(d time.Time) { ev.renewed <- d },
		OnLost:    func(err error) { ev.lost <- err },
	}, ev
}

func recv[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(patience):
		t.Fatalf("timed out waiting for %s", what)
		var zero T
		return zero
	}
}

func next(t testing.TB, s *store) *request {
	t.Helper()
	return recv(t, s.reqs, "an extend request")
}

// nextAt returns the next request and checks, in a bubble, that it was sent
// at when: neither earlier nor later.
func nextAt(t testing.TB, s *store, when time.Time) *request {
	t.Helper()
	q := next(t, s)
	require.Equal(t, when, time.Now(), "when the request %v was sent", q.names())
	return q
}

// renewerGoroutines returns the stacks of the goroutines that run a
// Renewer's code. After synctest.Wait the answer is exact. (goleak.Find
// cannot tell that a goroutine still runs: it sleeps between its retries,
// and in a bubble a sleep moves the clock, which can end a linger.)
func renewerGoroutines() []string {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	var gs []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if strings.Contains(g, "disgo/renewer.(*Renewer).") {
			gs = append(gs, g)
		}
	}
	return gs
}

func newRenewer(t *testing.T, e renewer.Extender, opts renewer.Options) *renewer.Renewer {
	t.Helper()
	r, err := renewer.New(e, opts)
	require.NoError(t, err)
	t.Cleanup(r.Close)
	return r
}

func TestNewRejectsInvalidOptions(t *testing.T) {
	s := newStore()
	for _, tc := range []struct {
		name string
		e    renewer.Extender
		opts renewer.Options
	}{
		{"nil extender", nil, renewer.Options{}},
		{"negative fraction", s, renewer.Options{Fraction: -0.1}},
		{"fraction one", s, renewer.Options{Fraction: 1}},
		{"fraction above one", s, renewer.Options{Fraction: 1.5}},
		{"fraction NaN", s, renewer.Options{Fraction: math.NaN()}},
		{"negative retry interval", s, renewer.Options{RetryInterval: -time.Second}},
		{"negative request timeout", s, renewer.Options{RequestTimeout: -time.Second}},
		{"negative max batch", s, renewer.Options{MaxBatch: -1}},
		{"negative workers", s, renewer.Options{Workers: -1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := renewer.New(tc.e, tc.opts)
			require.ErrorIs(t, err, renewer.ErrInvalidOption)
			assert.Nil(t, r)
		})
	}
	for _, opts := range []renewer.Options{{}, {Fraction: 0.5, RetryInterval: time.Second, RequestTimeout: time.Second, MaxBatch: 1, Workers: 1}} {
		r, err := renewer.New(s, opts)
		require.NoError(t, err, "%+v", opts)
		r.Close()
	}
}

func TestKeepRejectsLeasesOutOfRange(t *testing.T) {
	r := newRenewer(t, newStore(), renewer.Options{})
	for _, lease := range []time.Duration{0, -time.Second, renewer.MaxLease + 1, 1<<63 - 1} {
		h, ev := newHold("a", lease, time.Now().Add(time.Second))
		stop := r.Keep(h)
		require.ErrorIs(t, recv(t, ev.lost, "OnLost"), renewer.ErrInvalidHold, "lease %v", lease)
		assert.Zero(t, r.Len())
		stop()
	}
}

func TestRenewsAtFraction(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fraction float64
		lease    time.Duration
		deadline time.Duration // from the start
		first    time.Duration // first renewal, from the start
		every    time.Duration
	}{
		{"default third", 0, 30 * time.Second, 30 * time.Second, 10 * time.Second, 10 * time.Second},
		{"half, lease started earlier", 0.5, 10 * time.Second, 8 * time.Second, 3 * time.Second, 5 * time.Second},
		{"short grant lease: a third of what is left", 0, 30 * time.Second, 3 * time.Second, time.Second, 10 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				t0 := time.Now()
				s := newStore()
				r := newRenewer(t, s, renewer.Options{Fraction: tc.fraction})
				deadline := t0.Add(tc.deadline)
				h, ev := newHold("a", tc.lease, deadline)
				stop := r.Keep(h)
				assert.Equal(t, 1, r.Len())

				due := t0.Add(tc.first)
				for i := range 3 {
					q := nextAt(t, s, due) // not before it is due
					require.Equal(t, []driver.Extension{{Name: "a", Owner: "owner-a", Lease: tc.lease}}, q.items)
					sent := time.Now()
					dl, ok := q.ctx.Deadline()
					require.True(t, ok, "the request has a timeout")
					assert.Equal(t, sent.Add(min(renewer.DefaultRequestTimeout, deadline.Sub(sent))), dl)
					time.Sleep(time.Millisecond) // the reply takes time; the new deadline counts from before the request
					q.answerAll(true, nil)
					deadline = sent.Add(tc.lease)
					assert.Equal(t, deadline, recv(t, ev.renewed, fmt.Sprintf("OnRenewed #%d", i)))
					due = sent.Add(tc.every)
				}
				q := nextAt(t, s, due)
				stop()
				stop() // idempotent
				assert.Zero(t, r.Len())
				q.answerAll(true, nil) // discarded: the hold was stopped
				synctest.Wait()
				ev.quiet(t)
			})
		})
	}
}

func TestBatchesHoldsDueInTheSameTick(t *testing.T) {
	t.Run("one call", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			t0 := time.Now()
			s := newStore()
			r := newRenewer(t, batchStore{s}, renewer.Options{})
			var want []string
			evs := map[string]*events{}
			for i := range 50 {
				name := fmt.Sprint("lock-", i)
				h, ev := newHold(name, 30*time.Second, t0.Add(30*time.Second))
				r.Keep(h)
				want, evs[name] = append(want, name), ev
			}
			q := nextAt(t, s, t0.Add(10*time.Second))
			assert.ElementsMatch(t, want, q.names())
			items := slices.Clone(q.items)
			for i := range items {
				items[i].Held = i != 0
			}
			q.reply <- answer{items: items}
			require.ErrorIs(t, recv(t, evs[items[0].Name].lost, "OnLost of the item not held"), renewer.ErrNotHeld)
			for _, it := range items[1:] {
				assert.Equal(t, t0.Add(40*time.Second), recv(t, evs[it.Name].renewed, "OnRenewed"))
			}
			assert.Equal(t, 49, r.Len())
			assert.EqualValues(t, 1, s.calls.Load())
			q = nextAt(t, s, t0.Add(20*time.Second)) // the 49 renew together again
			assert.Len(t, q.items, 49)
			r.Close()
			assert.EqualValues(t, 2, s.calls.Load())
		})
	})

	t.Run("due a little later joins the batch", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			t0 := time.Now()
			s := newStore()
			r := newRenewer(t, batchStore{s}, renewer.Options{})
			// Leases of 30s taken 0, 40 and 90 ms apart join the first renewal
			// (due within renewer.MaxEarly); one taken 150 ms later does not.
			for i, off := range []time.Duration{0, 40 * time.Millisecond, 90 * time.Millisecond, 150 * time.Millisecond} {
				h, _ := newHold(fmt.Sprint("lock-", i), 30*time.Second, t0.Add(30*time.Second+off))
				r.Keep(h)
			}
			q := nextAt(t, s, t0.Add(10*time.Second))
			assert.ElementsMatch(t, []string{"lock-0", "lock-1", "lock-2"}, q.names())
			q.answerAll(true, nil)
			q = nextAt(t, s, t0.Add(10*time.Second+150*time.Millisecond))
			assert.Equal(t, []string{"lock-3"}, q.names())
			q.answerAll(true, nil)
			// A short lease is renewed at most Lease/30 early: 1ms for 30ms.
			now := time.Now()
			h, _ := newHold("short", 30*time.Millisecond, now.Add(30*time.Millisecond))
			r.Keep(h)
			h2, _ := newHold("short-later", 30*time.Millisecond, now.Add(32*time.Millisecond))
			r.Keep(h2)
			q = nextAt(t, s, now.Add(10*time.Millisecond))
			assert.Equal(t, []string{"short"}, q.names())
			q.answerAll(true, nil)
		})
	})

	t.Run("MaxBatch", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			t0 := time.Now()
			s := newStore()
			r := newRenewer(t, batchStore{s}, renewer.Options{MaxBatch: 2})
			for i := range 5 {
				h, _ := newHold(fmt.Sprint("lock-", i), 30*time.Second, t0.Add(30*time.Second))
				r.Keep(h)
			}
			var sizes []int
			var names []string
			for range 3 { // concurrent: none is answered before all arrived
				q := nextAt(t, s, t0.Add(10*time.Second))
				defer q.answerAll(true, nil)
				sizes, names = append(sizes, len(q.items)), append(names, q.names()...)
			}
			slices.Sort(sizes)
			assert.Equal(t, []int{1, 2, 2}, sizes)
			assert.ElementsMatch(t, []string{"lock-0", "lock-1", "lock-2", "lock-3", "lock-4"}, names)
		})
	})
}

func TestConcurrentExtendWithoutBatch(t *testing.T) {
	t.Run("up to Workers at once", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			t0 := time.Now()
			s := newStore()
			r := newRenewer(t, s, renewer.Options{})
			var evs []*events
			for i := range renewer.DefaultWorkers {
				h, ev := newHold(fmt.Sprint("lock-", i), 30*time.Second, t0.Add(30*time.Second))
				r.Keep(h)
				evs = append(evs, ev)
			}
			var qs []*request
			for range renewer.DefaultWorkers { // all arrive before any is answered
				q := nextAt(t, s, t0.Add(10*time.Second))
				require.Len(t, q.items, 1)
				qs = append(qs, q)
			}
			for _, q := range qs {
				q.answerAll(true, nil)
			}
			for _, ev := range evs {
				assert.Equal(t, t0.Add(40*time.Second), recv(t, ev.renewed, "OnRenewed"))
			}
		})
	})

	t.Run("never more than Workers", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			t0 := time.Now()
			s := newStore()
			r := newRenewer(t, s, renewer.Options{Workers: 2})
			for i := range 7 {
				h, _ := newHold(fmt.Sprint("lock-", i), 30*time.Second, t0.Add(30*time.Second))
				r.Keep(h)
			}
			var names []string
			first := []*request{nextAt(t, s, t0.Add(10*time.Second)), nextAt(t, s, t0.Add(10*time.Second))} // two in flight at once
			for _, q := range first {
				names = append(names, q.names()...)
				q.answerAll(true, nil)
			}
			for range 5 {
				q := nextAt(t, s, t0.Add(10*time.Second))
				names = append(names, q.names()...)
				q.answerAll(true, nil)
			}
			synctest.Wait()
			assert.Len(t, names, 7)
			assert.EqualValues(t, 7, s.calls.Load())
			nextAt(t, s, t0.Add(20*time.Second)) // the next renewals, never answered
			synctest.Wait()
			r.Close()
			assert.EqualValues(t, 2, s.maxInflight.Load(), "two at once, never more")
		})
	})
}

func TestNotHeldIsLostAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		s := newStore()
		r := newRenewer(t, s, renewer.Options{})
		ignore := goleak.IgnoreCurrent()
		h, ev := newHold("a", 30*time.Second, t0.Add(30*time.Second))
		r.Keep(h)
		nextAt(t, s, t0.Add(10*time.Second)).answerAll(false, nil)
		require.ErrorIs(t, recv(t, ev.lost, "OnLost"), renewer.ErrNotHeld)
		assert.Zero(t, r.Len())
		// The scheduler lingers for Linger after the loss, then ends.
		time.Sleep(renewer.Linger - time.Nanosecond)
		synctest.Wait()
		require.NotEmpty(t, renewerGoroutines(), "the scheduler lingers")
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		goleak.VerifyNone(t, ignore) // the hold is dropped: nothing left to run
		ev.quiet(t)
		assert.EqualValues(t, 1, s.calls.Load())
	})
}

func TestRetriesTransientErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		s := newStore()
		r := newRenewer(t, batchStore{s}, renewer.Options{RetryInterval: time.Second})
		h, ev := newHold("a", 30*time.Second, t0.Add(30*time.Second))
		r.Keep(h)

		nextAt(t, s, t0.Add(10*time.Second)).answerAll(false, errBoom)     // item error
		nextAt(t, s, t0.Add(11*time.Second)).reply <- answer{err: errBoom} // whole-batch error
		nextAt(t, s, t0.Add(12*time.Second)).answerAll(true, nil)
		assert.Equal(t, t0.Add(42*time.Second), recv(t, ev.renewed, "OnRenewed"))
		nextAt(t, s, t0.Add(22*time.Second)) // back to the usual schedule
		ev.quiet(t)
	})
}

func TestRequestTimeout(t *testing.T) {
	t.Run("a timeout is transient", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			t0 := time.Now()
			s := newStore()
			r := newRenewer(t, s, renewer.Options{RetryInterval: time.Second, RequestTimeout: 50 * time.Millisecond})
			h, ev := newHold("a", 30*time.Second, t0.Add(30*time.Second))
			r.Keep(h)
			q := nextAt(t, s, t0.Add(10*time.Second)) // never answered
			dl, ok := q.ctx.Deadline()
			require.True(t, ok)
			assert.Equal(t, t0.Add(10*time.Second+50*time.Millisecond), dl)
			recv(t, q.ctx.Done(), "the request to time out")
			nextAt(t, s, t0.Add(11*time.Second+50*time.Millisecond)) // retried
			r.Close()
			require.ErrorIs(t, recv(t, ev.lost, "OnLost"), renewer.ErrClosed, "only Close ends it")
			ev.quiet(t)
		})
	})

	t.Run("never past the lease deadline", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			t0 := time.Now()
			s := newStore()
			r := newRenewer(t, s, renewer.Options{Fraction: 0.5})
			h, _ := newHold("a", 2*time.Second, t0.Add(2*time.Second))
			r.Keep(h)
			q := nextAt(t, s, t0.Add(time.Second))
			dl, ok := q.ctx.Deadline()
			require.True(t, ok)
			assert.Equal(t, t0.Add(2*time.Second), dl, "the lease ends in a second")
			q.answerAll(true, nil)
		})
	})
}

func TestDefaultRetryInterval(t *testing.T) {
	for _, tc := range []struct{ lease, retry time.Duration }{
		{300 * time.Millisecond, 30 * time.Millisecond},
		{50 * time.Millisecond, renewer.MinRetryInterval},
		{time.Minute, renewer.MaxRetryInterval},
	} {
		t.Run(tc.lease.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				t0 := time.Now()
				s := newStore()
				r := newRenewer(t, s, renewer.Options{Fraction: 0.5})
				h, _ := newHold("a", tc.lease, t0.Add(tc.lease))
				r.Keep(h)
				nextAt(t, s, t0.Add(tc.lease/2)).answerAll(false, errBoom)
				nextAt(t, s, t0.Add(tc.lease/2+tc.retry))
			})
		})
	}
}

func TestTransientErrorsUntilDeadlineAreLost(t *testing.T) {
	t.Run("retries stop at the deadline", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			t0 := time.Now()
			s := newStore()
			r := newRenewer(t, s, renewer.Options{RetryInterval: 8 * time.Second})
			h, ev := newHold("a", 30*time.Second, t0.Add(30*time.Second))
			r.Keep(h)
			for _, at := range []time.Duration{10 * time.Second, 18 * time.Second, 26 * time.Second} {
				nextAt(t, s, t0.Add(at)).answerAll(false, errBoom)
			}
			err := recv(t, ev.lost, "OnLost")
			assert.Equal(t, t0.Add(30*time.Second), time.Now(), "lost at the deadline, not at 34s: never retried past it")
			require.ErrorIs(t, err, renewer.ErrDeadline)
			require.ErrorIs(t, err, errBoom, "the last cause is kept")
			assert.Zero(t, r.Len())
			r.Close()
			assert.EqualValues(t, 3, s.calls.Load(), "nothing is sent at the deadline")
			ev.quiet(t)
		})
	})

	t.Run("reply after the deadline", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			t0 := time.Now()
			s := newStore()
			s.deaf = true
			r := newRenewer(t, s, renewer.Options{})
			h, ev := newHold("a", 30*time.Second, t0.Add(30*time.Second))
			r.Keep(h)
			q := nextAt(t, s, t0.Add(10*time.Second))
			time.Sleep(20 * time.Second)
			q.answerAll(false, errBoom)
			err := recv(t, ev.lost, "OnLost")
			require.ErrorIs(t, err, renewer.ErrDeadline)
			require.ErrorIs(t, err, errBoom)
			r.Close()
			assert.EqualValues(t, 1, s.calls.Load())
		})
	})

	t.Run("kept after its deadline", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			s := newStore()
			r := newRenewer(t, s, renewer.Options{})
			h, ev := newHold("a", 30*time.Second, time.Now())
			r.Keep(h)
			require.ErrorIs(t, recv(t, ev.lost, "OnLost"), renewer.ErrDeadline)
			r.Close()
			assert.Zero(t, s.calls.Load())
		})
	})
}

func TestStopRacesInFlightExtend(t *testing.T) {
	t.Run("in flight", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			t0 := time.Now()
			s := newStore()
			r := newRenewer(t, batchStore{s}, renewer.Options{})
			ha, evA := newHold("a", 30*time.Second, t0.Add(30*time.Second))
			hb, evB := newHold("b", 30*time.Second, t0.Add(30*time.Second))
			stopA := r.Keep(ha)
			r.Keep(hb)
			q := nextAt(t, s, t0.Add(10*time.Second))
			assert.ElementsMatch(t, []string{"a", "b"}, q.names())
			stopA()
			assert.Equal(t, 1, r.Len())
			q.answerAll(true, nil)
			assert.Equal(t, t0.Add(40*time.Second), recv(t, evB.renewed, "OnRenewed of b"))

			q = nextAt(t, s, t0.Add(20*time.Second))
			assert.Equal(t, []string{"b"}, q.names(), "a stopped hold is not renewed again")
			q.answerAll(false, nil)
			require.ErrorIs(t, recv(t, evB.lost, "OnLost of b"), renewer.ErrNotHeld)
			r.Close()
			assert.EqualValues(t, 2, s.calls.Load())
			evA.quiet(t)
		})
	})

	t.Run("in flight with an error", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			t0 := time.Now()
			s := newStore()
			s.deaf = true
			r := newRenewer(t, s, renewer.Options{})
			h, ev := newHold("a", 30*time.Second, t0.Add(30*time.Second))
			stop := r.Keep(h)
			q := nextAt(t, s, t0.Add(10*time.Second))
			stop()
			time.Sleep(time.Hour) // past the deadline: still no OnLost
			q.answerAll(false, errBoom)
			r.Close()
			assert.EqualValues(t, 1, s.calls.Load())
			ev.quiet(t)
		})
	})

	t.Run("due but not sent", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			t0 := time.Now()
			s := newStore()
			r := newRenewer(t, s, renewer.Options{Workers: 1})
			ha, evA := newHold("a", 30*time.Second, t0.Add(30*time.Second))
			hb, evB := newHold("b", 30*time.Second, t0.Add(30*time.Second))
			stops := map[string]func(){"a": r.Keep(ha), "b": r.Keep(hb)}
			evs := map[string]*events{"a": evA, "b": evB}
			q := nextAt(t, s, t0.Add(10*time.Second)) // the only worker is busy with this one; the other waits
			sent := q.names()[0]
			other := map[string]string{"a": "b", "b": "a"}[sent]
			stops[other]()
			q.answerAll(true, nil)
			recv(t, evs[sent].renewed, "OnRenewed")
			r.Close()
			assert.EqualValues(t, 1, s.calls.Load(), "the stopped hold was never sent")
			evs[other].quiet(t)
		})
	})
}

// instantStore answers every Extend at once, held, and counts calls.
type instantStore struct{ calls atomic.Int64 }

func (s *instantStore) Extend(context.Context, string, string, time.Duration) (bool, error) {
	s.calls.Add(1)
	return true, nil
}

// TestStopRacesRenewals stops holds renewed back to back: after stop
// returns at most the one request already in flight is sent and at most
// one callback already being delivered runs. (In the bubble the
// goroutines still run in parallel; only the clock is fake.)
func TestStopRacesRenewals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		for i := range 30 {
			s := &instantStore{}
			r, err := renewer.New(s, renewer.Options{Fraction: 0.001})
			require.NoError(t, err)
			var renewed atomic.Int64
			tick := make(chan struct{}, 1)
			stop := r.Keep(driver.Hold{
				Name: "a", Owner: "o", Lease: time.Second, Deadline: time.Now().Add(time.Second),
				OnRenewed: func(time.Time) {
					renewed.Add(1)
					select {
					case tick <- struct{}{}:
					default:
					}
				},
			})
			for renewed.Load() < int64(3+i%5) {
				recv(t, tick, "OnRenewed")
			}
			stop()
			calls, cbs := s.calls.Load(), renewed.Load()
			r.Close()
			assert.LessOrEqual(t, s.calls.Load(), calls+1, "requests sent after stop")
			assert.LessOrEqual(t, renewed.Load(), cbs+1, "callbacks after stop")
			assert.Zero(t, r.Len())
		}
	})
}

func TestCallbacksMayCallTheRenewer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		t0 := time.Now()
		s := newStore()
		r := newRenewer(t, batchStore{s}, renewer.Options{})
		var stopA, stopB func()
		lenInCallback := make(chan int, 10)
		bLost := make(chan error, 1)
		stopA = r.Keep(driver.Hold{
			Name: "a", Owner: "o", Lease: 30 * time.Second, Deadline: t0.Add(30 * time.Second),
			OnRenewed: func(time.Time) {
				stopA() // itself
				stopB() // another hold
				lenInCallback <- r.Len()
			},
		})
		stopB = r.Keep(driver.Hold{
			Name: "b", Owner: "o", Lease: 30 * time.Second, Deadline: t0.Add(40 * time.Second),
			OnLost: func(err error) { bLost <- err },
		})
		hc, evC := newHold("c", 30*time.Second, t0.Add(30*time.Second))
		hc.OnLost = func(error) {
			// Keep from a callback, then stop it at once.
			h, _ := newHold("d", 30*time.Second, t0.Add(30*time.Second))
			r.Keep(h)()
			evC.lost <- nil
		}
		r.Keep(hc)
		q := nextAt(t, s, t0.Add(10*time.Second))
		assert.ElementsMatch(t, []string{"a", "c"}, q.names())
		q.reply <- answer{items: []driver.Extension{
			{Name: q.items[0].Name, Held: q.items[0].Name == "a"},
			{Name: q.items[1].Name, Held: q.items[1].Name == "a"},
		}}
		recv(t, evC.lost, "OnLost of c")
		assert.Equal(t, 0, recv(t, lenInCallback, "OnRenewed of a"))
		r.Close()
		assert.Empty(t, bLost, "b was stopped, not lost")
	})
}

func TestClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ignore := goleak.IgnoreCurrent()
		t0 := time.Now()
		s := newStore()
		r, err := renewer.New(s, renewer.Options{})
		require.NoError(t, err)
		ha, evA := newHold("a", 30*time.Second, t0.Add(30*time.Second))
		hb, evB := newHold("b", 30*time.Second, t0.Add(50*time.Second))
		hc, evC := newHold("c", 30*time.Second, t0.Add(50*time.Second))
		r.Keep(ha)
		r.Keep(hb)
		r.Keep(hc)()                              // stopped: not told about Close
		q := nextAt(t, s, t0.Add(10*time.Second)) // a is in flight and never answered

		r.Close() // cancels the request and waits for every goroutine
		require.Error(t, q.ctx.Err(), "the request in flight was cancelled")
		require.ErrorIs(t, recv(t, evA.lost, "OnLost of a"), renewer.ErrClosed)
		require.ErrorIs(t, recv(t, evB.lost, "OnLost of b"), renewer.ErrClosed)
		evA.quiet(t)
		evB.quiet(t)
		evC.quiet(t)
		assert.Zero(t, r.Len())

		hd, evD := newHold("d", 30*time.Second, t0.Add(50*time.Second))
		stop := r.Keep(hd)
		require.ErrorIs(t, recv(t, evD.lost, "OnLost of d"), renewer.ErrClosed)
		stop()
		r.Close() // idempotent
		time.Sleep(time.Hour)
		assert.EqualValues(t, 1, s.calls.Load())
		synctest.Wait()
		goleak.VerifyNone(t, ignore)
	})
}

func TestSchedulerStartsLazilyLingersAndExits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ignore := goleak.IgnoreCurrent()
		s := newStore()
		r, err := renewer.New(s, renewer.Options{})
		require.NoError(t, err)
		goleak.VerifyNone(t, ignore) // New starts nothing

		for round := range 2 { // the scheduler exits and starts again
			start := time.Now()
			h, ev := newHold("a", 30*time.Second, start.Add(30*time.Second))
			stop := r.Keep(h)
			synctest.Wait()
			require.NotEmpty(t, renewerGoroutines(), "round %d: a goroutine runs while a hold is kept", round)
			nextAt(t, s, start.Add(10*time.Second)).answerAll(true, nil)
			recv(t, ev.renewed, "OnRenewed")
			stop()

			// No hold is left: the scheduler lingers, and a hold kept and
			// stopped meanwhile makes it linger once more.
			synctest.Wait()
			require.NotEmpty(t, renewerGoroutines(), "round %d: the scheduler lingers", round)
			h2, ev2 := newHold("b", 30*time.Second, time.Now().Add(30*time.Second))
			r.Keep(h2)()
			time.Sleep(2*renewer.Linger - time.Nanosecond)
			synctest.Wait()
			require.NotEmpty(t, renewerGoroutines(), "round %d: the scheduler lingers after a hold was kept", round)
			time.Sleep(time.Nanosecond)
			synctest.Wait()
			goleak.VerifyNone(t, ignore) // without Close, two Lingers after the drop
			ev.quiet(t)
			ev2.quiet(t)
		}

		h, _ := newHold("a", 30*time.Second, time.Now().Add(30*time.Second))
		r.Keep(h)()
		synctest.Wait()
		require.NotEmpty(t, renewerGoroutines(), "the scheduler lingers")
		closing := time.Now()
		r.Close() // ends a lingering scheduler at once
		assert.Equal(t, closing, time.Now(), "Close waited for the linger")
		goleak.VerifyNone(t, ignore)
		assert.EqualValues(t, 2, s.calls.Load())
	})
}

// memStore is an in-memory store with real expiry.
type memStore struct {
	mu      sync.Mutex
	owner   map[string]string
	expires map[string]time.Time
}

func (m *memStore) set(name, owner string, lease time.Duration) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.owner[name], m.expires[name] = owner, time.Now().Add(lease)
	return m.expires[name]
}

func (m *memStore) Extend(_ context.Context, name, owner string, lease time.Duration) (bool, error) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.owner[name] != owner || !now.Before(m.expires[name]) {
		return false, nil
	}
	m.expires[name] = now.Add(lease)
	return true, nil
}

// TestEndToEndOnAStoreWithExpiry keeps a lease alive on a store whose
// leases expire by the clock, until another owner takes it.
func TestEndToEndOnAStoreWithExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &memStore{owner: map[string]string{}, expires: map[string]time.Time{}}
		r := newRenewer(t, m, renewer.Options{})
		const lease = 900 * time.Millisecond
		start := time.Now()
		h, ev := newHold("a", lease, m.set("a", "owner-a", lease))
		r.Keep(h)
		prev := start.Add(lease)
		for i := range 2 {
			d := recv(t, ev.renewed, fmt.Sprintf("renewal #%d", i))
			assert.True(t, d.After(prev), "each renewal moves the deadline forward")
			prev = d
		}
		assert.Zero(t, len(ev.lost), "the lease never lapsed")
		m.set("a", "thief", lease) // another owner takes it
		require.ErrorIs(t, recv(t, ev.lost, "OnLost"), renewer.ErrNotHeld)
		assert.Zero(t, r.Len())
	})
}

// countingBatch answers every batch at once and records the goroutine
// count seen during the calls.
type countingBatch struct {
	instantStore
	maxGoroutines atomic.Int64
}

func (c *countingBatch) ExtendBatch(_ context.Context, batch []driver.Extension) error {
	c.calls.Add(1)
	storeMax(&c.maxGoroutines, int64(runtime.NumGoroutine()))
	for i := range batch {
		batch[i].Held = true
	}
	return nil
}

// BenchmarkKeep10000 keeps 10 000 holds, renews them all in one tick
// through a BatchExtender, and stops them. It reports the goroutines the
// Renewer ran at the peak, which stay O(1): the scheduler plus at most
// Workers.
//
// It runs on the system clock (synctest has no benchmarks): the holds of a
// round share one deadline, so they are due together, Lease/3 after the
// round began, which leaves time to keep them all. Each round therefore
// lasts at least Lease/3 (100ms), and ns/op includes that wait.
func BenchmarkKeep10000(b *testing.B) {
	const (
		n     = 10000
		lease = 300 * time.Millisecond
	)
	st := &countingBatch{}
	r, err := renewer.New(st, renewer.Options{})
	require.NoError(b, err)
	defer r.Close()
	base := int64(runtime.NumGoroutine())
	var renewed atomic.Int64
	all := make(chan struct{}, 1)
	onRenewed := func(time.Time) {
		if renewed.Add(1)%n == 0 {
			all <- struct{}{}
		}
	}
	stops := make([]func(), n)
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprint("lock-", i)
	}
	ticks := 0
	for b.Loop() {
		deadline := time.Now().Add(lease)
		for i := range stops {
			stops[i] = r.Keep(driver.Hold{Name: names[i], Owner: "o", Lease: lease, Deadline: deadline, OnRenewed: onRenewed})
		}
		select {
		case <-all:
		case <-time.After(10 * time.Second):
			b.Fatal("timed out waiting for every hold to be renewed")
		}
		for _, stop := range stops {
			stop()
		}
		ticks++
	}
	extra := st.maxGoroutines.Load() - base
	if extra > renewer.DefaultWorkers+1 {
		b.Fatalf("%d goroutines ran for %d holds; want at most %d", extra, n, renewer.DefaultWorkers+1)
	}
	b.ReportMetric(float64(extra), "goroutines")
	b.ReportMetric(float64(st.calls.Load())/float64(ticks), "batches/tick")
}

// BenchmarkKeepStop keeps one hold and stops it, as an uncontended
// lock+unlock does, with a round trip to another goroutine after Keep and
// after stop, standing for the store requests that park the caller and
// let the scheduler run.
func BenchmarkKeepStop(b *testing.B) {
	r, err := renewer.New(&instantStore{}, renewer.Options{})
	require.NoError(b, err)
	defer r.Close()
	ping, pong := make(chan struct{}), make(chan struct{})
	go func() {
		for range ping {
			pong <- struct{}{}
		}
	}()
	defer close(ping)
	roundTrip := func() {
		ping <- struct{}{}
		<-pong
	}
	b.ReportAllocs()
	for b.Loop() {
		stop := r.Keep(driver.Hold{Name: "a", Owner: "o", Lease: 30 * time.Second, Deadline: time.Now().Add(30 * time.Second)})
		roundTrip()
		stop()
		roundTrip()
	}
}
