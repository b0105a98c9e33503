package fakeclock_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/internal/fakeclock"
)

var t0 = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

func fired(tm interface{ C() <-chan time.Time }) bool {
	select {
	case <-tm.C():
		return true
	default:
		return false
	}
}

func TestAdvanceFiresDueTimers(t *testing.T) {
	c := fakeclock.New(t0)
	a := c.NewTimer(time.Second)
	b := c.NewTimer(3 * time.Second)
	assert.Equal(t, []time.Time{t0.Add(time.Second), t0.Add(3 * time.Second)}, c.Armed())

	c.Advance(999 * time.Millisecond)
	assert.False(t, fired(a))
	c.Advance(time.Millisecond)
	assert.Equal(t, t0.Add(time.Second), c.Now())
	assert.True(t, fired(a))
	assert.False(t, fired(b))
	assert.Equal(t, []time.Time{t0.Add(3 * time.Second)}, c.Armed())

	assert.True(t, fired(c.NewTimer(0)), "a timer of zero fires at once")
}

func TestStopAndReset(t *testing.T) {
	c := fakeclock.New(t0)
	tm := c.NewTimer(time.Second)
	assert.True(t, tm.Stop())
	assert.False(t, tm.Stop())
	c.Advance(time.Second)
	assert.False(t, fired(tm), "a stopped timer does not fire")

	assert.False(t, tm.Reset(time.Second))
	c.Advance(time.Second)
	// Fired but not received: the value stays after Reset, as with a
	// time.Timer before Go 1.23.
	assert.False(t, tm.Reset(time.Second))
	assert.True(t, fired(tm))
	assert.False(t, fired(tm))
	assert.True(t, tm.Reset(2*time.Second))
	c.Advance(time.Second)
	assert.False(t, fired(tm), "Reset re-arms from the current time")
	c.Advance(time.Second)
	assert.True(t, fired(tm))
}

func TestWaitTimer(t *testing.T) {
	c := fakeclock.New(t0)
	done := make(chan error, 1)
	go func() { done <- c.WaitTimer(context.Background(), t0.Add(time.Minute)) }()
	c.NewTimer(time.Second) // not the awaited time
	c.NewTimer(time.Minute)
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for WaitTimer to return")
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := c.WaitTimer(ctx, t0.Add(time.Hour))
	require.ErrorIs(t, err, context.Canceled)
	assert.Contains(t, err.Error(), "timed out waiting for a timer")
}
