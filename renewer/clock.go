package renewer

import "time"

// Clock is the source of time of a [Renewer]. The default reads the system
// clock; tests inject a manual clock. Implementations must be safe for
// concurrent use.
type Clock interface {
	Now() time.Time
	// NewTimer returns an armed timer that sends the time on C() once d has
	// passed (at once when d <= 0).
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer, like [time.Timer]. Stop disarms it and Reset
// re-arms it to fire after d; both report whether it was armed. The
// Renewer tolerates a stale value on C() after Stop or Reset (it only
// re-reads the time), so implementations need not drain C().
type Timer interface {
	C() <-chan time.Time
	Stop() bool
	Reset(d time.Duration) bool
}

// systemClock is the default Clock: the system's monotonic clock.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) NewTimer(d time.Duration) Timer { return systemTimer{time.NewTimer(d)} }

type systemTimer struct{ t *time.Timer }

func (t systemTimer) C() <-chan time.Time        { return t.t.C }
func (t systemTimer) Stop() bool                 { return t.t.Stop() }
func (t systemTimer) Reset(d time.Duration) bool { return t.t.Reset(d) }
