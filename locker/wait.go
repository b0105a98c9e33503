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

	queued    bool // the ticket may be in the fair queue
	uncertain bool // the last attempt failed, so it may have succeeded in the store
}

// try makes one attempt. The request is bounded by the request timeout and,
// when the call has a wait deadline, by that deadline plus a margin.
func (a *attempt) try(ctx context.Context, deadline time.Time) (time.Time, AcquireResult, error) {
	timeout := a.timeout
	if !deadline.IsZero() {
		if rem := time.Until(deadline) + 100*time.Millisecond; rem < timeout {
			timeout = rem
		}
	}
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
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
	return start, res, err
}

// giveUp cleans up after a call that will not acquire: it leaves the queue
// and undoes an attempt whose outcome is unknown.
func (a *attempt) giveUp() {
	if !a.queued && !a.uncertain {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), min(a.timeout, cleanupTimeout))
	defer cancel()
	if a.uncertain {
		_, _, _ = a.backend.Release(ctx, a.req.Name, a.req.Owner, a.req.Ticket)
	}
	if a.queued {
		_ = a.queue.Leave(ctx, a.req.Name, a.req.Ticket)
	}
}

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

	// Taken: subscribe first, then attempt again, so that a release
	// between the first attempt and the subscription is not missed.
	limit := l.cfg.FallbackInterval
	if a.queue != nil {
		limit = min(limit, l.cfg.policy.Heartbeat())
	}
	var wake <-chan struct{}
	if l.notify != nil {
		sctx, cancel := context.WithTimeout(ctx, l.cfg.RequestTimeout)
		sub, serr := l.notify.Subscribe(sctx, a.req.Name, a.req.Ticket)
		cancel()
		if serr == nil {
			defer sub.Close()
			wake = sub.Wake()
		}
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
		if ctx.Err() == nil {
			start, res, err = a.try(ctx, deadline)
			if err == nil && res.Acquired {
				return start, res, nil
			}
		}
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
