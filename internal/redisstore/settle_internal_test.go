package redisstore

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

type settleKey struct{}

func TestSettleOfContextThatNeverEnds(t *testing.T) {
	ctx := context.WithValue(context.Background(), settleKey{}, 1)
	sctx, done := settle(ctx)
	defer done()
	require.Equal(t, ctx, sctx, "a context that never ends needs no grace")
}

func TestSettleEndsAGraceAfterItsParent(t *testing.T) {
	parent, cancel := context.WithCancel(context.WithValue(context.Background(), settleKey{}, "v"))
	sctx, done := settle(parent)
	defer done()
	require.Equal(t, "v", sctx.Value(settleKey{}), "values are the parent's")
	_, ok := sctx.Deadline()
	require.False(t, ok, "a parent without a deadline gives none")
	require.NoError(t, sctx.Err())

	ended := time.Now()
	cancel()
	<-sctx.Done()
	require.GreaterOrEqual(t, time.Since(ended), settleGrace, "Done must stay open for the grace after the parent ended")
	require.ErrorIs(t, sctx.Err(), context.Canceled)
}

func TestSettleDeadlineIsTheParentsPlusTheGrace(t *testing.T) {
	parent, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	d, _ := parent.Deadline()
	sctx, done := settle(parent)
	defer done()
	got, ok := sctx.Deadline()
	require.True(t, ok)
	require.Equal(t, d.Add(settleGrace), got)

	<-sctx.Done()
	require.False(t, time.Now().Before(got), "Done closed before its deadline")
	// The grace after the parent's end and the deadline end it at the same
	// time; either may report it.
	err := sctx.Err()
	require.True(t, errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled), "Err after Done: %v", err)
}

func TestSettleReleaseEndsItAtOnce(t *testing.T) {
	for _, parentEnded := range []bool{false, true} {
		parent, cancel := context.WithCancel(context.Background())
		sctx, done := settle(parent)
		if parentEnded {
			cancel()
		}
		done()
		select {
		case <-sctx.Done():
		default:
			t.Fatalf("parent ended %v: released, but Done is open", parentEnded)
		}
		require.ErrorIs(t, sctx.Err(), context.Canceled)
		cancel()
		done() // twice is harmless
		require.ErrorIs(t, sctx.Err(), context.Canceled)
	}
}

// A parent's end racing the release, and readers meanwhile, are safe under
// -race and leave the context ended with context.Canceled.
func TestSettleConcurrentEndAndRelease(t *testing.T) {
	var wg sync.WaitGroup
	ctxs := make([]context.Context, 200)
	for i := range ctxs {
		parent, cancel := context.WithCancel(context.Background())
		sctx, done := settle(parent)
		ctxs[i] = sctx
		wg.Add(3)
		go func() { defer wg.Done(); cancel() }()
		go func() { defer wg.Done(); done() }()
		go func() { defer wg.Done(); _ = sctx.Err(); _, _ = sctx.Deadline() }()
	}
	wg.Wait()
	for _, sctx := range ctxs {
		<-sctx.Done()
		require.ErrorIs(t, sctx.Err(), context.Canceled)
	}
}
