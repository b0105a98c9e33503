package locker_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/backend/memory"
	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/locker/driver"
)

func TestForceReleaseRevokesARenewedHolderAndHandsOn(t *testing.T) {
	synctest.Test(t, testForceReleaseRevokesARenewedHolderAndHandsOn)
}

func testForceReleaseRevokesARenewedHolderAndHandsOn(t *testing.T) {
	ctx := context.Background()
	store, a, b := doLockers(t, locker.Options[string]{RenewLease: 300 * time.Millisecond})
	op, err := locker.New(store.Client(), locker.Options[string]{})
	require.NoError(t, err)
	defer op.Close()
	h, err := a.LockWithRenewal(ctx, "k", 0)
	require.NoError(t, err)
	got := make(chan *locker.Lock[string], 1)
	go func() {
		w, err := b.Lock(ctx, "k", patience, time.Minute)
		if err != nil {
			t.Error(err)
		}
		got <- w
	}()
	synctest.Wait() // the waiter is queued and waits
	st, err := store.Inspect(ctx, "k")
	require.NoError(t, err)
	require.Equal(t, 1, st.Waiters)
	require.NoError(t, op.ForceRelease(ctx, "k"))
	w := waitFor(t, got, "the waiter to get the force-released lock")
	require.NotNil(t, w)
	require.Greater(t, w.Fence(), h.Fence())
	waitFor(t, h.Done(), "the former holder to learn of it at its next renewal")
	require.ErrorIs(t, h.Err(), locker.ErrLost)
	require.ErrorIs(t, h.Err(), locker.ErrRevoked)
	require.NoError(t, w.Release(ctx))
	require.ErrorIs(t, op.ForceRelease(ctx, "k"), locker.ErrNotHeld, "a free lock")
}

func TestForceReleaseRefusesWhatItCannotDo(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	bare, err := locker.New(struct{ driver.Backend }{store.Client()}, locker.Options[string]{Mode: locker.Barging})
	require.NoError(t, err)
	defer bare.Close()
	require.ErrorIs(t, bare.ForceRelease(ctx, "k"), locker.ErrUnsupported)

	l, err := locker.New(store.Client(), locker.Options[string]{})
	require.NoError(t, err)
	//lint:ignore SA1012 a nil ctx is the bad input under test
	require.ErrorIs(t, l.ForceRelease(nil, "k"), locker.ErrInvalidArgument) //nolint:staticcheck
	require.ErrorIs(t, l.ForceRelease(ctx, ""), locker.ErrInvalidArgument)
	require.NoError(t, l.Close())
	require.ErrorIs(t, l.ForceRelease(ctx, "k"), locker.ErrClosed)
}

func TestExtendAfterAForceReleaseSaysRevoked(t *testing.T) {
	ctx := context.Background()
	_, a, b := doLockers(t, locker.Options[string]{})
	h, err := a.TryLock(ctx, "k", time.Minute)
	require.NoError(t, err)
	require.NoError(t, b.ForceRelease(ctx, "k"))
	err = h.Extend(ctx, time.Minute)
	require.ErrorIs(t, err, locker.ErrNotHeld)
	require.ErrorIs(t, err, locker.ErrRevoked)
	require.NotErrorIs(t, err, locker.ErrBackend, "a revoked holding is not a store failure")
	<-h.Done()
	require.ErrorIs(t, h.Err(), locker.ErrRevoked)
}
