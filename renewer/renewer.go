package renewer

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/disgolock/disgo/locker/driver"
)

// Defaults of [Options].
const (
	DefaultFraction       = 1.0 / 3
	DefaultRequestTimeout = 5 * time.Second
	DefaultMaxBatch       = 1000
	DefaultWorkers        = 8
	// The default RetryInterval is a tenth of the hold's lease, clamped to
	// [MinRetryInterval, MaxRetryInterval].
	MinRetryInterval = 10 * time.Millisecond
	MaxRetryInterval = time.Second
)

// MaxEarly bounds how much earlier than due a renewal may be sent so that
// it joins a batch going out anyway: renewals due within min(MaxEarly,
// Lease/30) of a batch join it. Holds taken at scattered times then renew
// in a few batches per MaxEarly rather than one request each, at the cost
// of a lease renewed up to that much early.
const MaxEarly = 100 * time.Millisecond

// MaxLease is the longest lease a hold may have: every deadline and
// renewal time computed from it stays far inside the range of time.Time
// and of float64 arithmetic on durations. (locker.MaxLease is shorter.)
const MaxLease = 100 * 365 * 24 * time.Hour

// Linger is how long the scheduler goroutine stays after the last hold is
// gone, so that holds kept one after another (an uncontended lock and
// unlock in a loop) do not start and end a goroutine each. The goroutine
// ends once no hold has been kept for Linger, at most about 2×Linger
// after the last one was dropped, and at once on [Renewer.Close].
const Linger = 100 * time.Millisecond

var (
	// ErrInvalidOption: [New] was given a nil Extender or an invalid
	// [Options] field.
	ErrInvalidOption = errors.New("renewer: invalid option")
	// ErrInvalidHold: [Renewer.Keep] was given a hold that cannot be renewed
	// (a lease that is not positive, or above MaxLease).
	ErrInvalidHold = errors.New("renewer: invalid hold")
	// ErrClosed: the Renewer was closed, so the hold is no longer renewed.
	ErrClosed = errors.New("renewer: closed")
)

// Options configure a [Renewer]. The zero value of every field means its
// default; negative values are rejected by [New].
type Options struct {
	// Fraction of the lease after which a renewal is sent, counted from the
	// start of the current lease (Deadline - Lease). It must satisfy
	// 0 < Fraction < 1. Default: DefaultFraction (a third).
	Fraction float64
	// RetryInterval is the pause after a transient failure before the next
	// attempt; a retry is never scheduled past the lease deadline.
	// Default: a tenth of each hold's lease, clamped to
	// [MinRetryInterval, MaxRetryInterval].
	RetryInterval time.Duration
	// RequestTimeout bounds each Extend or ExtendBatch call; a call is also
	// never allowed to run past the earliest lease deadline it carries.
	// Default: DefaultRequestTimeout (5s).
	RequestTimeout time.Duration
	// MaxBatch is the most items in one ExtendBatch call.
	// Default: DefaultMaxBatch (1000).
	MaxBatch int
	// Workers is the most requests in flight at once: concurrent Extend
	// calls, or concurrent ExtendBatch calls when the Extender is a
	// BatchExtender. Worker goroutines exist only while there is work.
	// Default: DefaultWorkers (8).
	Workers int
}

// Renewer renews the leases of kept holds until they are stopped, lost, or
// the Renewer is closed. It implements driver.Renewer. All its methods are
// safe for concurrent use.
//
// Callbacks (driver.Hold.OnRenewed, driver.Hold.OnLost) run on the Renewer's goroutines
// (OnLost also on the caller's goroutine in the cases Keep and Close
// document), never while the Renewer holds its own lock, so they may call
// any stop function, Keep and Len; they must not call [Renewer.Close],
// which waits for those goroutines. Callbacks of many holds run one after
// another, so they should be quick.
type Renewer struct {
	ext   Extender
	batch driver.BatchExtender // ext as a driver.BatchExtender, or nil
	opts  Options
	size  int // items per request: MaxBatch, or 1 without a driver.BatchExtender

	ctx    context.Context // cancelled by Close; parent of every request
	cancel context.CancelFunc
	wake   chan struct{} // tells the scheduler to look again (buffer of one)
	wg     sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	live    map[*entry]struct{} // kept holds: in the heap, ready, or in flight
	due     entryHeap           // holds waiting for their renewal time
	ready   []*entry            // holds due, waiting for a worker
	running bool                // the scheduler goroutine is alive
	armed   time.Time           // the sleeping scheduler looks again by then; zero: only when woken
	idle    bool                // the scheduler lingers: it looks again within Linger
	kept    bool                // Keep was called since the scheduler began to linger
	workers int                 // worker goroutines alive
}

// entry is the state of one kept hold. All fields but hold and before are
// guarded by Renewer.mu.
type entry struct {
	hold     driver.Hold
	before   time.Duration // renewal is due this long before the deadline
	retry    time.Duration
	deadline time.Time     // end of the last confirmed lease
	at       time.Time     // next renewal attempt
	early    time.Duration // how much earlier than at it may join a batch
	lastErr  error         // cause of the last failed attempt since the last success
	index    int           // position in Renewer.due; -1 when not there
	dropped  bool          // stopped, lost, or closed: never renewed nor called back again
}

// New returns a Renewer that extends leases through e, using its
// ExtendBatch when e is also a [driver.BatchExtender]. It starts no goroutine.
// It fails with an error wrapping [ErrInvalidOption] when e is nil or an
// option is invalid.
func New(e Extender, opts Options) (*Renewer, error) {
	if e == nil {
		return nil, fmt.Errorf("%w: nil Extender", ErrInvalidOption)
	}
	switch f := opts.Fraction; {
	case f == 0:
		opts.Fraction = DefaultFraction
	case !(f > 0 && f < 1): // also rejects NaN
		return nil, fmt.Errorf("%w: Fraction %v is not between 0 and 1", ErrInvalidOption, f)
	}
	if opts.RetryInterval < 0 {
		return nil, fmt.Errorf("%w: negative RetryInterval %v", ErrInvalidOption, opts.RetryInterval)
	}
	if opts.RequestTimeout < 0 {
		return nil, fmt.Errorf("%w: negative RequestTimeout %v", ErrInvalidOption, opts.RequestTimeout)
	}
	if opts.RequestTimeout == 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	if opts.MaxBatch < 0 {
		return nil, fmt.Errorf("%w: negative MaxBatch %d", ErrInvalidOption, opts.MaxBatch)
	}
	if opts.MaxBatch == 0 {
		opts.MaxBatch = DefaultMaxBatch
	}
	if opts.Workers < 0 {
		return nil, fmt.Errorf("%w: negative Workers %d", ErrInvalidOption, opts.Workers)
	}
	if opts.Workers == 0 {
		opts.Workers = DefaultWorkers
	}
	r := &Renewer{ext: e, opts: opts, size: 1, wake: make(chan struct{}, 1), live: make(map[*entry]struct{})}
	if b, ok := e.(driver.BatchExtender); ok {
		r.batch, r.size = b, opts.MaxBatch
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r, nil
}

// Keep starts renewing h and returns its stop function. It never blocks on
// the store. The first renewal is due at h.Deadline - h.Lease +
// Fraction*h.Lease; when that has passed but h.Deadline has not, it is due
// after Fraction of the time left to h.Deadline (a hold that starts with a
// lease shorter than h.Lease, such as a lock handed over by the store).
//
// stop is idempotent and cheap: it never waits for the store, so call it
// as the final release starts. Once stop returns, no renewal of h is
// started; a request already taken by a worker may still complete, but its
// result is discarded and no callback follows from it. Only a callback
// whose delivery had already begun may still run: stop does not wait for
// it, so that a callback may call stop.
//
// A hold with a non-positive Lease, or one above [MaxLease], is not kept:
// h.OnLost is called, before Keep returns, with an error wrapping
// [ErrInvalidHold]. Likewise after
// [Renewer.Close], with [ErrClosed].
func (r *Renewer) Keep(h driver.Hold) (stop func()) {
	nop := func() {}
	if h.Lease <= 0 || h.Lease > MaxLease {
		notifyLost(h, fmt.Errorf("%w: lease %v is not in (0, %v]", ErrInvalidHold, h.Lease, MaxLease))
		return nop
	}
	retry := r.opts.RetryInterval
	if retry == 0 {
		retry = min(max(h.Lease/10, MinRetryInterval), MaxRetryInterval)
	}
	e := &entry{
		hold:     h,
		before:   time.Duration((1 - r.opts.Fraction) * float64(h.Lease)),
		retry:    retry,
		deadline: h.Deadline,
		early:    min(MaxEarly, h.Lease/30),
		index:    -1,
	}
	e.at = e.deadline.Add(-e.before)
	if now := time.Now(); e.at.Before(now) && e.deadline.After(now) {
		// Less than the renewal margin is left (a lock handed over with a
		// lease shorter than Lease): renew after the same fraction of what
		// is left rather than at once, which would cost a request for
		// every hand-off, most of whose holds end before it.
		e.at = now.Add(time.Duration(r.opts.Fraction * float64(e.deadline.Sub(now))))
	}

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		notifyLost(h, ErrClosed)
		return nop
	}
	r.live[e] = struct{}{}
	r.kept = true
	if r.running {
		r.schedule(e)
	} else {
		heap.Push(&r.due, e)
		r.running, r.armed, r.idle = true, time.Time{}, false
		r.wg.Go(r.run)
	}
	r.mu.Unlock()
	return func() {
		r.mu.Lock()
		r.drop(e)
		r.mu.Unlock()
	}
}

// Len returns the number of holds currently kept.
func (r *Renewer) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.live)
}

// Close stops renewing every hold, cancels the requests in flight, and
// waits until all goroutines of r have exited. Then it calls OnLost with
// [ErrClosed] for each hold that was still kept (not stopped nor lost); it
// calls them on the caller's goroutine. Later Keep calls report ErrClosed.
// Close is idempotent. It must not be called from a callback.
func (r *Renewer) Close() {
	r.mu.Lock()
	var kept []driver.Hold
	if !r.closed {
		r.closed = true
		r.cancel()
		for e := range r.live {
			kept = append(kept, e.hold)
			r.drop(e)
		}
	}
	r.mu.Unlock()
	r.signal()
	r.wg.Wait()
	for _, h := range kept {
		notifyLost(h, ErrClosed)
	}
}

// run is the scheduler: it hands every hold that is due to the workers and
// sleeps until the next one is due or something changes. Once no hold is
// kept it lingers, and it exits when no hold was kept for Linger, or on
// Close.
//
// Keep and stop wake it only when it would otherwise look too late (see
// schedule and drop): a hold kept and stopped while the scheduler sleeps
// until a later time costs no goroutine switch.
func (r *Renewer) run() {
	var t *time.Timer
	defer func() {
		if t != nil {
			t.Stop()
		}
	}()
	var idleUntil time.Time // the end of the linger; zero while holds are kept
	for {
		r.mu.Lock()
		now := time.Now()
		var next time.Time // when to look again; zero: only when woken
		if len(r.live) == 0 {
			switch {
			case r.closed || (!r.kept && !idleUntil.IsZero() && !now.Before(idleUntil)):
				r.running = false
				r.mu.Unlock()
				return
			case r.kept || idleUntil.IsZero():
				idleUntil, r.kept = now.Add(Linger), false
			}
			next = idleUntil
		} else {
			idleUntil = time.Time{}
			n := len(r.ready)
			for len(r.due) > 0 && !r.due[0].at.After(now.Add(r.due[0].early)) {
				r.ready = append(r.ready, heap.Pop(&r.due).(*entry))
			}
			// Enough workers for what became ready, within the limit; workers
			// already running help too and exit when nothing is left.
			for need := (len(r.ready) - n + r.size - 1) / r.size; need > 0 && r.workers < r.opts.Workers; need-- {
				r.workers++
				r.wg.Go(r.work)
			}
			if len(r.due) > 0 {
				next = r.due[0].at
			}
		}
		var fire <-chan time.Time
		if !next.IsZero() {
			d := next.Sub(now)
			if t == nil {
				t = time.NewTimer(d)
			} else {
				t.Reset(d)
			}
			fire = t.C
		} else if t != nil {
			t.Stop()
		}
		r.armed, r.idle = next, !idleUntil.IsZero()
		r.mu.Unlock()
		select {
		case <-fire:
		case <-r.wake:
		}
	}
}

// work sends renewal requests for ready holds, up to r.size per request,
// until none is ready.
func (r *Renewer) work() {
	for {
		var calls []func()
		r.mu.Lock()
		sent := time.Now() // before the request is sent
		timeout := r.opts.RequestTimeout
		var batch []*entry
		for len(r.ready) > 0 && len(batch) < r.size {
			e := r.ready[0]
			r.ready[0] = nil
			r.ready = r.ready[1:]
			switch {
			case e.dropped:
			case !sent.Before(e.deadline):
				calls = append(calls, r.lose(e, deadlineError(e.lastErr)))
			default:
				batch = append(batch, e)
				timeout = min(timeout, e.deadline.Sub(sent))
			}
		}
		if len(r.ready) == 0 {
			r.ready = nil // let the backing array go
		}
		if len(batch) == 0 && len(calls) == 0 {
			r.workers--
			r.mu.Unlock()
			return
		}
		r.mu.Unlock()
		run(calls)
		if len(batch) > 0 {
			r.apply(batch, r.extend(batch, timeout), sent)
		}
	}
}

// extend sends one request for batch and returns one result per entry.
func (r *Renewer) extend(batch []*entry, timeout time.Duration) []driver.Extension {
	items := make([]driver.Extension, len(batch))
	for i, e := range batch {
		items[i] = driver.Extension{Name: e.hold.Name, Owner: e.hold.Owner, Lease: e.hold.Lease}
	}
	ctx, cancel := context.WithTimeout(r.ctx, timeout)
	defer cancel()
	if r.batch != nil {
		if err := r.batch.ExtendBatch(ctx, items); err != nil {
			for i := range items {
				items[i].Err = err
			}
		}
		return items
	}
	for i := range items {
		it := &items[i]
		it.Held, it.Err = r.ext.Extend(ctx, it.Name, it.Owner, it.Lease)
	}
	return items
}

// apply records the results of a request sent at sent, schedules what goes
// on, and then runs the callbacks.
func (r *Renewer) apply(batch []*entry, items []driver.Extension, sent time.Time) {
	var calls []func()
	r.mu.Lock()
	now := time.Now()
	for i, e := range batch {
		it := items[i]
		switch {
		case e.dropped: // stopped or closed while in flight: discard
		case errors.Is(it.Err, driver.ErrRevoked):
			// An operator forced the holding out: no retry can bring it back.
			calls = append(calls, r.lose(e, it.Err))
		case it.Err != nil:
			e.lastErr = it.Err
			if !now.Before(e.deadline) {
				calls = append(calls, r.lose(e, deadlineError(e.lastErr)))
				continue
			}
			e.at = now.Add(e.retry)
			if e.at.After(e.deadline) {
				e.at = e.deadline
			}
			r.schedule(e)
		case !it.Held:
			calls = append(calls, r.lose(e, ErrNotHeld))
		default:
			e.deadline, e.lastErr = sent.Add(e.hold.Lease), nil
			e.at = e.deadline.Add(-e.before)
			r.schedule(e)
			if f := e.hold.OnRenewed; f != nil {
				d := e.deadline
				calls = append(calls, func() { f(d) })
			}
		}
	}
	r.mu.Unlock()
	run(calls)
}

// schedule (r.mu held, scheduler running) puts e in the heap, waking the
// scheduler unless it is going to look by e's renewal time anyway.
func (r *Renewer) schedule(e *entry) {
	heap.Push(&r.due, e)
	if r.armed.IsZero() || r.armed.After(e.at) {
		r.signal()
	}
}

// drop (r.mu held) forgets e. It reports whether e was still kept. When
// that leaves no hold, the scheduler is woken to linger unless it lingers
// already.
func (r *Renewer) drop(e *entry) bool {
	if e.dropped {
		return false
	}
	e.dropped = true
	delete(r.live, e)
	if e.index >= 0 {
		heap.Remove(&r.due, e.index)
	}
	if len(r.live) == 0 && r.running && !r.idle {
		r.signal()
	}
	return true
}

// lose (r.mu held) drops e and returns the call of its OnLost.
func (r *Renewer) lose(e *entry, cause error) func() {
	r.drop(e)
	return func() { notifyLost(e.hold, cause) }
}

func (r *Renewer) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func notifyLost(h driver.Hold, cause error) {
	if h.OnLost != nil {
		h.OnLost(cause)
	}
}

func run(calls []func()) {
	for _, f := range calls {
		f()
	}
}

func deadlineError(cause error) error {
	if cause == nil {
		return ErrDeadline
	}
	return fmt.Errorf("%w; last error: %w", ErrDeadline, cause)
}

// entryHeap is a min-heap of entries by renewal time.
type entryHeap []*entry

func (h entryHeap) Len() int           { return len(h) }
func (h entryHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h entryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}

func (h *entryHeap) Push(x any) {
	e := x.(*entry)
	e.index = len(*h)
	*h = append(*h, e)
}

func (h *entryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.index = -1
	return e
}
