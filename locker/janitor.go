package locker

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/disgolock/disgo/locker/driver"
)

// maxCleanupHorizon caps how long the janitor keeps retrying one clean-up
// for a long lease; beyond it the lease itself ends what is left.
const maxCleanupHorizon = time.Minute

// cleanupHorizon is how long a clean-up of a is worth retrying: until the
// store's own timeouts have ended everything the ticket may hold. A queue
// place lasts up to waiterTTL after the last heartbeat, a grant made to
// it up to min(lease, waiterTTL) more, and an acquisition whose reply was
// lost up to the lease.
func cleanupHorizon(a *attempt) time.Duration {
	return a.waiterTTL + min(max(a.req.Lease, a.waiterTTL), maxCleanupHorizon)
}

// janitor retries, in the background, the give-up clean-ups that the
// store did not answer at once (an outage, a CLIENT PAUSE): leaving the
// queue and undoing what a ticket may hold. Without it a waiter that gave
// up during an outage would keep its place, and the first release after
// the outage could grant the lock to a caller that is gone, stalling the
// name for a grant lease. Both calls are idempotent, so repeating them is
// safe. One goroutine runs while there is work, and none otherwise.
type janitor struct {
	backend driver.Backend
	timeout time.Duration   // per request
	ctx     context.Context // cancelled by Locker.Close
	log     *slog.Logger    // Options.Logger; nil: nothing is logged

	mu      sync.Mutex
	pending []pendingCleanup
	running bool
	closed  bool
	wg      sync.WaitGroup
}

type pendingCleanup struct {
	a     attempt
	until time.Time
}

func (j *janitor) init(b driver.Backend, timeout time.Duration, ctx context.Context) {
	j.backend, j.timeout, j.ctx = b, timeout, ctx
}

// add queues a clean-up of a, retried until it succeeds or until.
func (j *janitor) add(a attempt, until time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return
	}
	j.pending = append(j.pending, pendingCleanup{a: a, until: until})
	if !j.running {
		j.running = true
		j.wg.Add(1)
		go j.run()
	}
}

func (j *janitor) run() {
	defer j.wg.Done()
	backoff := minBackoff
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-timer.C:
		case <-j.ctx.Done():
			j.mu.Lock()
			j.pending, j.running = nil, false
			j.mu.Unlock()
			return
		}
		j.mu.Lock()
		work := j.pending
		j.pending = nil
		j.mu.Unlock()

		var left []pendingCleanup
		for _, p := range work {
			if time.Now().After(p.until) {
				j.info("disgo: background clean-up abandoned: the store's timeouts have ended what it would remove", p.a.req.Name)
				continue // the store's timeouts have ended it
			}
			ctx, cancel := context.WithTimeout(j.ctx, j.timeout)
			done := p.a.cleanup(ctx)
			cancel()
			if done {
				j.info("disgo: background clean-up done", p.a.req.Name)
			} else if j.ctx.Err() == nil {
				left = append(left, p)
			}
		}

		j.mu.Lock()
		j.pending = append(left, j.pending...)
		if len(j.pending) == 0 || j.closed {
			j.pending, j.running = nil, false
			j.mu.Unlock()
			return
		}
		j.mu.Unlock()
		if len(left) == 0 {
			backoff = minBackoff // only new work: no store failure seen
		}
		timer.Reset(backoff)
		backoff = min(2*backoff, maxBackoff)
	}
}

func (j *janitor) info(msg, name string) {
	if j.log != nil {
		j.log.LogAttrs(context.Background(), slog.LevelInfo, msg, slog.String("lock", name))
	}
}

// close abandons the pending clean-ups and waits for the goroutine.
func (j *janitor) close() {
	j.mu.Lock()
	j.closed = true
	j.mu.Unlock()
	j.wg.Wait()
}
