package locker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/disgolock/disgo/internal/token"
	"github.com/disgolock/disgo/locker/driver"
)

// cleanupTimeout bounds the store calls made at once while giving up
// (leaving the queue, undoing an attempt whose reply was lost), so that
// giving up stays prompt when the store is unreachable. What they could
// not clean up is retried in the background (see janitor) until the store
// answers or the store's own timeouts have ended it.
const cleanupTimeout = 250 * time.Millisecond

// Retry backoff after a store error while waiting.
const (
	minBackoff = 10 * time.Millisecond
	maxBackoff = time.Second
)

// attempt is the state of one acquiring call across its attempts.
type attempt struct {
	backend   driver.Backend
	queue     driver.Queue  // nil in Barging mode
	timeout   time.Duration // per request
	waiterTTL time.Duration // fair: heartbeat deadline; 0 = do not join the queue
	req       driver.AcquireRequest

	renew     bool          // the lease will be renewed
	queued    bool          // the ticket may be in the fair queue, or granted the lock
	uncertain bool          // the last attempt failed, so it may have succeeded in the store
	taken     bool          // an attempt or a grant gave the ticket the lock
	missed    time.Time     // start of the latest attempt the store answered "not acquired"
	seen      int64         // the newest fencing token a "not acquired" answer reported
	lease     time.Duration // the lease the store set, as far as the caller knows

	obs      Observer  // Options.Observer, told of store errors; may be nil
	position int       // the queue place the latest "not acquired" answer reported; -1: none
	waitFrom time.Time // start of the first attempt that did not acquire
	granted  bool      // a direct grant gave the ticket the lock
}

// try makes one attempt. The request is bounded by the request timeout and,
// when the call has a wait deadline, by that deadline plus a margin. When
// closing is not nil the request also ends when closing does (the first
// attempt of a waiting call, made before its wait context exists).
func (a *attempt) try(ctx, closing context.Context, deadline time.Time) (time.Time, driver.AcquireResult, error) {
	start := time.Now()
	timeout := a.timeout
	if !deadline.IsZero() {
		if rem := deadline.Sub(start) + 100*time.Millisecond; rem < timeout {
			timeout = rem
		}
	}
	var (
		rctx   context.Context
		cancel context.CancelFunc
	)
	if closing == nil {
		rctx, cancel = bounded(ctx, start, timeout)
	} else {
		rctx, cancel = context.WithDeadline(ctx, start.Add(timeout))
		defer context.AfterFunc(closing, cancel)()
	}
	defer cancel()
	var (
		res driver.AcquireResult
		err error
	)
	if a.queue != nil {
		a.queued = a.queued || a.waiterTTL > 0
		res, err = a.queue.AcquireFair(rctx, a.req, a.waiterTTL)
	} else {
		res, err = a.backend.Acquire(rctx, a.req)
	}
	a.uncertain = err != nil
	switch {
	case err != nil:
		if closing == nil || closing.Err() == nil { // not ended by Close
			storeError(a.obs, ctx, a.req.Name, "acquire", err)
		}
	case res.Acquired:
		a.taken = true
		a.lease = a.req.Lease
	default:
		a.missed = start
		a.seen = max(a.seen, res.Fence)
		a.position = res.Position
	}
	if !res.Acquired && a.waitFrom.IsZero() {
		a.waitFrom = start
	}
	return start, res, err
}

// grant decides about a grant of the lock to this waiter's ticket, made
// by the store with fencing token fence and announced by a message (see
// Granter). It is taken without a round trip only when it is the store's
// latest word for the ticket and enough of its lease is left:
//
//   - Its fence must be newer than every fence a "not acquired" answer
//     reported (a.seen), which is at least the newest fence the store had
//     issued when it answered. So the grant was made after the store's
//     latest "not acquired" answer, which a grant that lapsed while this
//     process was stopped is not: the attempt that found the lock taken
//     after it reported the newer holder's fence. Such a stale grant, or a
//     duplicated message, is ignored.
//   - The store set the lease min(lease, waiterTTL) at the release, which
//     came after that answer and so after a.missed, the start of the
//     attempt it answered: a.missed plus that lease is a deadline the
//     store's own is not earlier than. The grant is taken when that leaves
//     at least half of it and the caller needs no longer lease (a renewed
//     lease is lengthened by the renewer after a third of what is left,
//     see renewer.Renewer.Keep).
//
// Otherwise the waiter claims the grant with an attempt, which the store
// answers as an idempotent re-entry that sets the full lease, or as "not
// acquired" when the grant has lapsed.
func (a *attempt) grant(fence int64) (start time.Time, res driver.AcquireResult, ok bool) {
	lease := min(a.req.Lease, a.waiterTTL)
	switch {
	case fence <= a.seen, a.missed.IsZero():
		return start, res, false
	case !a.renew && lease < a.req.Lease:
		return start, res, false
	case time.Until(a.missed.Add(lease)) < lease/2:
		return start, res, false
	}
	a.lease = lease
	a.taken, a.granted = true, true
	return a.missed, driver.AcquireResult{Acquired: true, Fence: fence, Count: 1, Position: -1}, true
}

// needsCleanup reports whether giving up has anything to undo in the store.
func (a *attempt) needsCleanup() bool { return a.queued || a.uncertain || a.taken }

// cleanup leaves the queue, then undoes what the ticket may hold: an
// attempt whose outcome is unknown, an acquisition that must not stand, or
// a grant made to the ticket before it left (after Leave no new grant can
// come). Both calls are idempotent, so a failed clean-up may be repeated.
// It reports whether the store answered both.
func (a *attempt) cleanup(ctx context.Context) bool {
	if a.queued && a.queue != nil {
		if err := a.queue.Leave(ctx, a.req.Name, a.req.Ticket); err != nil {
			cleanupError(a.obs, ctx, a.req.Name, "leave", err)
			return false
		}
	}
	_, _, err := a.backend.Release(ctx, a.req.Name, a.req.Owner, a.req.Ticket)
	if err != nil {
		cleanupError(a.obs, ctx, a.req.Name, "release", err)
	}
	return err == nil
}

// giveUp cleans up after a call that will not acquire, within
// cleanupTimeout; what the store did not answer in that time is handed to
// the janitor, which retries it in the background.
// It reports whether the store answered the clean-up (or none was
// needed).
func (l *Locker[T]) giveUp(a *attempt) bool {
	if !a.needsCleanup() {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(a.timeout, cleanupTimeout))
	done := a.cleanup(ctx)
	cancel()
	if !done {
		l.janitor.add(*a, time.Now().Add(cleanupHorizon(a)))
		if l.log != nil {
			l.log.LogAttrs(context.Background(), slog.LevelWarn, "disgo: clean-up of a call that gave up is left to background retries",
				slog.String("lock", a.req.Name), slog.Duration("for", cleanupHorizon(a)))
		}
	}
	return done
}

// bounded returns ctx bounded to end by now+timeout, where now is a
// reading of the clock taken before the call, and the function that
// releases what it made. A ctx whose deadline comes no later is returned
// as it is: a derived context would end at the same time, so its timer is
// saved.
func bounded(ctx context.Context, now time.Time, timeout time.Duration) (context.Context, context.CancelFunc) {
	end := now.Add(timeout)
	if d, ok := ctx.Deadline(); ok && !d.After(end) {
		return ctx, nopCancel
	}
	return context.WithDeadline(ctx, end)
}

func nopCancel() {}

// failure classifies the error of a call that gives up after a store error.
func failure(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	if conflict(err) {
		return err
	}
	return backendError(err)
}

// stopped is the error of a waiting call whose wctx ended: ErrClosed when
// the Locker was closed, otherwise the caller's ctx error.
func (l *Locker[T]) stopped(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return ErrClosed
}

// wait runs the attempts of one call: one at once, then, while wait and ctx
// allow, one after each wake-up addressed to this waiter and after each
// fallback re-check. It returns the start time of the acquiring request.
//
// A call never returns a held lock once its ctx is done or the Locker is
// closed: an acquisition or grant that comes too late is undone by its
// ticket and the call returns the ctx error (or ErrClosed).
func (l *Locker[T]) wait(ctx context.Context, a *attempt, wait time.Duration) (time.Time, driver.AcquireResult, error) {
	var deadline time.Time
	if wait > 0 && wait != WaitForever {
		deadline = time.Now().Add(wait)
	}
	if wait == 0 {
		start, res, err := a.try(ctx, nil, deadline)
		if err == nil && res.Acquired {
			return l.won(ctx, ctx, a, start, res)
		}
		l.giveUp(a)
		if err != nil {
			return start, res, failure(ctx, err)
		}
		return start, res, ErrNotObtained
	}

	// A waiting call ends with ctx, or at once when the Locker is closed,
	// which waits for it.
	l.mu.Lock()
	if l.closed.Load() {
		l.mu.Unlock()
		return time.Time{}, driver.AcquireResult{}, ErrClosed
	}
	l.waiting.Add(1)
	l.mu.Unlock()
	defer l.waiting.Done()

	// On a name this process waits on already, subscribe before the first
	// attempt: it costs no round trip, and spares the attempt after it.
	var sub driver.Subscription
	if l.notify != nil {
		sub, _ = l.notify.SubscribeActive(a.req.Name, a.req.Ticket)
	}
	if sub != nil {
		defer sub.Close()
	}
	// The first attempt ends with ctx or the Locker's closing on its own
	// request context: most calls end with it, and the wait context below
	// is made only for the calls that wait.
	start, res, err := a.try(ctx, l.closing, deadline)
	if err == nil && res.Acquired {
		return l.won(ctx, ctx, a, start, res)
	}
	if err != nil && conflict(err) {
		l.giveUp(a)
		return start, res, failure(ctx, err)
	}
	if l.closing.Err() != nil {
		// Closed during the first attempt: no store call after it.
		l.giveUp(a)
		return start, res, l.stopped(ctx)
	}
	wctx, cancelWait := context.WithCancel(ctx)
	defer cancelWait()
	defer context.AfterFunc(l.closing, cancelWait)()

	limit := l.cfg.FallbackInterval
	if a.queue != nil {
		limit = min(limit, l.cfg.policy.Heartbeat())
	}
	retry := sub == nil
	if sub == nil && l.notify != nil {
		// Taken: subscribe, then attempt again, so that a release between
		// the first attempt and the subscription is not missed.
		sctx, cancel := bounded(wctx, time.Now(), l.cfg.RequestTimeout)
		s, serr := l.notify.Subscribe(sctx, a.req.Name, a.req.Ticket)
		cancel()
		if serr == nil {
			sub = s
			defer sub.Close()
		} else {
			storeError(l.obs, wctx, a.req.Name, "subscribe", serr)
		}
	}
	var wake <-chan struct{}
	if sub != nil {
		wake = sub.Wake()
	}
	if wake == nil {
		// No wake-ups: re-check more often, still far from a busy poll.
		limit = max(min(limit, l.cfg.FallbackInterval/8), time.Millisecond)
	}
	var expired <-chan time.Time
	if !deadline.IsZero() {
		t := time.NewTimer(time.Until(deadline))
		defer t.Stop()
		expired = t.C
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	backoff := time.Duration(0)
	for {
		// The closing is checked too: wctx learns of it asynchronously.
		if retry && wctx.Err() == nil && l.closing.Err() == nil {
			start, res, err = a.try(wctx, nil, deadline)
			if err == nil && res.Acquired {
				return l.won(ctx, wctx, a, start, res)
			}
			if err != nil && conflict(err) {
				l.giveUp(a)
				return start, res, failure(ctx, err)
			}
		}
		retry = true
		sleep := recheck(res.TTL, limit)
		if err != nil {
			backoff = min(max(2*backoff, minBackoff), maxBackoff)
			sleep = backoff
		} else {
			backoff = 0
		}
		timer.Reset(sleep)
		select {
		case <-wake:
			if fence, ok := sub.Granted(); ok {
				if gstart, gres, ok := a.grant(fence); ok {
					return l.won(ctx, wctx, a, gstart, gres)
				}
			}
		case <-timer.C:
		case <-wctx.Done():
			l.giveUp(a)
			return start, res, l.stopped(ctx)
		case <-expired:
			l.giveUp(a)
			if err != nil {
				return start, res, failure(ctx, err)
			}
			return start, res, ErrNotObtained
		}
		// Timer.Reset discards a stale tick (Go 1.23 timer semantics).
	}
}

var (
	// errLapsed is wait's report of an acquisition whose lease ended
	// before its answer was seen, given back; acquire attempts again with
	// a new ticket.
	errLapsed = errors.New("the acquisition's lease ended before its answer was seen")
	// errLapsedPending is errLapsed when the store did not answer the give
	// back, which is left to the janitor: no new attempt is made while the
	// old ticket may still hold, or a new one would re-enter its holding
	// and outlive the user's release.
	errLapsedPending = errors.New("the acquisition's lease ended before its answer was seen; giving it back is pending")
	// errNotObtainedLapsed is the error of a call whose last acquisition
	// lapsed and that makes no other.
	errNotObtainedLapsed = fmt.Errorf("%w: its lease ended before the store's answer was seen (this process stalled, or the lease is shorter than the round trip)", ErrNotObtained)
)

// waitEnd returns when a wait that begins now ends: the zero time for
// WaitForever; now for a wait of zero.
func waitEnd(wait time.Duration) time.Time {
	if wait == WaitForever {
		return time.Time{}
	}
	return time.Now().Add(wait)
}

// waitLeft returns what is left of a wait that ends at end (see waitEnd):
// WaitForever for the zero time, and never less than zero.
func waitLeft(end time.Time) time.Duration {
	if end.IsZero() {
		return WaitForever
	}
	return max(time.Until(end), 0)
}

// pause waits d (none when d is 0) before the next attempt of a call
// whose acquisition lapsed. It returns ctx's error, or ErrClosed once the
// Locker is closing, if they come first.
func (l *Locker[T]) pause(ctx context.Context, d time.Duration) error {
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		case <-l.closing.Done():
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if l.closing.Err() != nil {
		return ErrClosed
	}
	return nil
}

// won settles an attempt or grant that gave the ticket the lock with a
// lease that began no earlier than start. It stands, unless:
//
//   - wctx ended or the Locker is closing (the caller is gone, or Close
//     was called): it is given back and the call fails with ctx's error or
//     ErrClosed;
//   - its lease has already run out: this process stalled (SIGSTOP, a GC
//     pause, a frozen VM) or the answer was delayed past the lease, so the
//     store may have given the lock to another owner meanwhile. It is
//     given back by the ticket, which releases only what the ticket still
//     holds, and wait returns errLapsed (errLapsedPending when the store
//     did not answer that). A handle whose lease ended before the call
//     returned would protect nothing.
func (l *Locker[T]) won(ctx, wctx context.Context, a *attempt, start time.Time, res driver.AcquireResult) (time.Time, driver.AcquireResult, error) {
	switch {
	case wctx.Err() != nil, l.closing.Err() != nil:
		l.giveUp(a)
		return start, res, l.stopped(ctx)
	case !time.Now().Before(start.Add(a.lease)):
		if a.waitFrom.IsZero() {
			a.waitFrom = start
		}
		if !l.giveUp(a) {
			return start, res, errLapsedPending
		}
		return start, res, errLapsed
	}
	return start, res, nil
}

// again returns a fresh attempt of a's request after an acquisition that
// lapsed (see won): a new ticket, so that a clean-up of the old one still
// retried in the background (see janitor) cannot undo what the new one
// takes, and a new place at the end of the fair queue, since the old one
// was given up. The time it has waited counts from a's first attempt.
func (a *attempt) again() attempt {
	b := attempt{
		backend: a.backend, queue: a.queue, timeout: a.timeout, waiterTTL: a.waiterTTL,
		req: a.req, renew: a.renew, lease: a.req.Lease, obs: a.obs, position: -1, waitFrom: a.waitFrom,
	}
	b.req.Ticket = token.New()
	return b
}

// recheck returns how long a waiter sleeps before its fallback re-check
// when no wake-up arrives: never longer than the holder's remaining lease
// (plus a millisecond, so the key has expired when it looks), nor than
// limit (the fallback interval, or the heartbeat in fair mode). A negative
// holderTTL (lock free but not ours, or unknown) is ignored. The result is
// at least a millisecond, so that a waiter never spins.
func recheck(holderTTL, limit time.Duration) time.Duration {
	d := limit
	if holderTTL >= 0 && holderTTL+time.Millisecond < d {
		d = holderTTL + time.Millisecond
	}
	if d < time.Millisecond {
		d = time.Millisecond
	}
	return d
}
