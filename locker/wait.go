package locker

import (
	"context"
	"time"

	"github.com/disgolock/disgo/fairqueue"
)

// cleanupTimeout bounds the store calls made while giving up (leaving the
// queue, undoing an attempt whose reply was lost), so that giving up stays
// prompt when the store is unreachable. What it cannot clean up, the
// store's own timeouts do: the waiter heartbeat and the lease.
const cleanupTimeout = 250 * time.Millisecond

// Retry backoff after a store error while waiting.
const (
	minBackoff = 10 * time.Millisecond
	maxBackoff = time.Second
)

// attempt is the state of one acquiring call across its attempts.
type attempt struct {
	backend   Backend
	queue     Queue         // nil in Barging mode
	timeout   time.Duration // per request
	waiterTTL time.Duration // fair: heartbeat deadline; 0 = do not join the queue
	req       AcquireRequest

	renew     bool          // the lease will be renewed
	queued    bool          // the ticket may be in the fair queue, or granted the lock
	uncertain bool          // the last attempt failed, so it may have succeeded in the store
	missed    time.Time     // start of the latest attempt the store answered "not acquired"
	lease     time.Duration // the lease the store set, as far as the caller knows
}

// try makes one attempt. The request is bounded by the request timeout and,
// when the call has a wait deadline, by that deadline plus a margin.
func (a *attempt) try(ctx context.Context, deadline time.Time) (time.Time, AcquireResult, error) {
	start := time.Now()
	timeout := a.timeout
	if !deadline.IsZero() {
		if rem := deadline.Sub(start) + 100*time.Millisecond; rem < timeout {
			timeout = rem
		}
	}
	rctx, cancel := bounded(ctx, start, timeout)
	defer cancel()
	var (
		res AcquireResult
		err error
	)
	if a.queue != nil {
		a.queued = a.queued || a.waiterTTL > 0
		res, err = a.queue.AcquireFair(rctx, a.req, a.waiterTTL)
	} else {
		res, err = a.backend.Acquire(rctx, a.req)
	}
	a.uncertain = err != nil
	if err == nil && !res.Acquired {
		a.missed = start
	}
	return start, res, err
}

// grant decides about a grant of the lock to this waiter's ticket (see
// Granter). The store set the lease min(lease, waiterTTL) at the release,
// which came after a.missed, so a.missed plus that lease is a deadline the
// store's own is not earlier than. The grant is taken as it is when that
// leaves at least half of it and the caller needs no longer lease (a
// renewed lease is lengthened by the renewer after a third of what is left,
// see renewer.Renewer.Keep); otherwise the
// waiter claims the grant with an attempt, which the store answers as an
// idempotent re-entry that sets the full lease.
func (a *attempt) grant(fence int64) (start time.Time, res AcquireResult, ok bool) {
	lease := min(a.req.Lease, a.waiterTTL)
	if a.missed.IsZero() || (!a.renew && lease < a.req.Lease) || time.Until(a.missed.Add(lease)) < lease/2 {
		return start, res, false
	}
	a.lease = lease
	return a.missed, AcquireResult{Acquired: true, Fence: fence, Count: 1, Position: -1}, true
}

// giveUp cleans up after a call that will not acquire: it leaves the
// queue, then undoes what its ticket may hold: an attempt whose outcome is
// unknown, or a grant made to the ticket before it left (after Leave no
// new grant can come).
func (a *attempt) giveUp() {
	if !a.queued && !a.uncertain {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(a.timeout, cleanupTimeout))
	defer cancel()
	if a.queued {
		_ = a.queue.Leave(ctx, a.req.Name, a.req.Ticket)
	}
	_, _, _ = a.backend.Release(ctx, a.req.Name, a.req.Owner, a.req.Ticket)
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
	return backendError(err)
}

// wait runs the attempts of one call: one at once, then, while wait and ctx
// allow, one after each wake-up addressed to this waiter and after each
// fallback re-check. It returns the start time of the acquiring request.
func (l *Locker[T]) wait(ctx context.Context, a *attempt, wait time.Duration) (time.Time, AcquireResult, error) {
	var deadline time.Time
	if wait > 0 && wait != WaitForever {
		deadline = time.Now().Add(wait)
	}
	// On a name this process waits on already, subscribe before the first
	// attempt: it costs no round trip, and spares the attempt after it.
	var sub Subscription
	if as, ok := l.notify.(ActiveSubscriber); ok && wait > 0 {
		sub, _ = as.SubscribeActive(a.req.Name, a.req.Ticket)
	}
	if sub != nil {
		defer sub.Close()
	}
	start, res, err := a.try(ctx, deadline)
	if err == nil && res.Acquired {
		return start, res, nil
	}
	if wait == 0 {
		a.giveUp()
		if err != nil {
			return start, res, failure(ctx, err)
		}
		return start, res, ErrNotObtained
	}

	limit := l.cfg.FallbackInterval
	if a.queue != nil {
		limit = min(limit, l.cfg.policy.Heartbeat())
	}
	retry := sub == nil
	if sub == nil && l.notify != nil {
		// Taken: subscribe, then attempt again, so that a release between
		// the first attempt and the subscription is not missed.
		sctx, cancel := bounded(ctx, time.Now(), l.cfg.RequestTimeout)
		s, serr := l.notify.Subscribe(sctx, a.req.Name, a.req.Ticket)
		cancel()
		if serr == nil {
			sub = s
			defer sub.Close()
		}
	}
	var (
		wake    <-chan struct{}
		granted Granter
	)
	if sub != nil {
		wake = sub.Wake()
		granted, _ = sub.(Granter)
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
		if retry && ctx.Err() == nil {
			start, res, err = a.try(ctx, deadline)
			if err == nil && res.Acquired {
				return start, res, nil
			}
		}
		retry = true
		sleep := fairqueue.Recheck(res.TTL, limit)
		if err != nil {
			backoff = min(max(2*backoff, minBackoff), maxBackoff)
			sleep = backoff
		} else {
			backoff = 0
		}
		timer.Reset(sleep)
		select {
		case <-wake:
			if granted == nil {
				break
			}
			if fence, ok := granted.Granted(); ok {
				if gstart, gres, ok := a.grant(fence); ok {
					return gstart, gres, nil
				}
			}
		case <-timer.C:
		case <-ctx.Done():
			a.giveUp()
			return start, res, ctx.Err()
		case <-expired:
			a.giveUp()
			if err != nil {
				return start, res, failure(ctx, err)
			}
			return start, res, ErrNotObtained
		}
		// Timer.Reset discards a stale tick (Go 1.23 timer semantics).
	}
}
