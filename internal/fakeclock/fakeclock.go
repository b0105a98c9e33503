// Package fakeclock is a manual clock for tests of time-driven code (it
// implements renewer.Clock). Time moves only when the test calls Advance,
// and WaitTimer lets the test wait until the code under test has armed a
// timer, so tests are deterministic and never sleep.
package fakeclock

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/disgolock/disgo/renewer"
)

// Clock is a manual clock. It is safe for concurrent use.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	armed   map[*timer]struct{} // timers waiting to fire
	changed chan struct{}       // closed and replaced when a timer is armed
}

// New returns a clock that reads now until it is advanced.
func New(now time.Time) *Clock {
	return &Clock{now: now, armed: make(map[*timer]struct{}), changed: make(chan struct{})}
}

// Now returns the clock's current time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// NewTimer returns a timer armed to fire when the clock reaches Now()+d.
func (c *Clock) NewTimer(d time.Duration) renewer.Timer {
	t := &timer{c: c, ch: make(chan time.Time, 1)}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.arm(t, d)
	return t
}

// Advance moves the clock forward by d and fires every timer due by then.
// A fired timer sends on its channel without blocking (it has a buffer of
// one). Stop and Reset leave a value already sent in the channel.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for t := range c.armed {
		if !t.when.After(c.now) {
			c.fire(t)
		}
	}
}

// Armed returns the fire times of the armed timers, earliest first.
func (c *Clock) Armed() []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var ts []time.Time
	for t := range c.armed {
		ts = append(ts, t.when)
	}
	slices.SortFunc(ts, time.Time.Compare)
	return ts
}

// WaitTimer waits until a timer is armed to fire exactly at when. It fails
// when ctx is done first, naming the timers that were armed.
func (c *Clock) WaitTimer(ctx context.Context, when time.Time) error {
	for {
		c.mu.Lock()
		for t := range c.armed {
			if t.when.Equal(when) {
				c.mu.Unlock()
				return nil
			}
		}
		changed := c.changed
		c.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("fakeclock: timed out waiting for a timer armed at %v (now %v, armed at %v): %w",
				when, c.Now(), c.Armed(), ctx.Err())
		}
	}
}

// arm (c.mu held) makes t fire at now+d, at once when d <= 0.
func (c *Clock) arm(t *timer, d time.Duration) {
	t.when = c.now.Add(d)
	if d <= 0 {
		c.fire(t)
		return
	}
	c.armed[t] = struct{}{}
	close(c.changed)
	c.changed = make(chan struct{})
}

// fire (c.mu held) disarms t and sends the current time on its channel.
func (c *Clock) fire(t *timer) {
	delete(c.armed, t)
	select {
	case t.ch <- c.now:
	default:
	}
}

// disarm (c.mu held) stops t, reporting whether it was armed. Like a
// time.Timer before Go 1.23, a value already sent stays in the channel:
// code under test must tolerate a stale wake-up, and a test that advances
// the clock while that code re-arms its timer cannot make it miss one.
func (c *Clock) disarm(t *timer) bool {
	_, ok := c.armed[t]
	delete(c.armed, t)
	return ok
}

type timer struct {
	c    *Clock
	ch   chan time.Time
	when time.Time // guarded by c.mu
}

func (t *timer) C() <-chan time.Time { return t.ch }

func (t *timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	return t.c.disarm(t)
}

func (t *timer) Reset(d time.Duration) bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := t.c.disarm(t)
	t.c.arm(t, d)
	return was
}
