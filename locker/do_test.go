package locker_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/mock/gomock"

	"github.com/disgolock/disgo/backend/memory"
	"github.com/disgolock/disgo/locker"
)

// doLockers returns two Lockers, as two processes, on one memory store.
func doLockers(t *testing.T, opts locker.Options[string]) (*memory.Store, *locker.Locker[string], *locker.Locker[string]) {
	t.Helper()
	store := memory.New()
	a, err := locker.New(store.Client(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })
	b, err := locker.New(store.Client(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = b.Close() })
	return store, a, b
}

func TestDoRunsUnderTheLockAndReleasesAfter(t *testing.T) {
	ctx := context.Background()
	_, a, b := doLockers(t, locker.Options[string]{})
	var handle *locker.Lock[string]
	err := a.Do(ctx, "k", time.Second, func(fctx context.Context, h *locker.Lock[string]) error {
		handle = h
		require.NoError(t, fctx.Err(), "fn's context is live while the lock is held")
		require.NoError(t, h.Err())
		assert.Positive(t, h.Fence())
		_, err := b.TryLock(ctx, "k", time.Second)
		require.ErrorIs(t, err, locker.ErrNotObtained, "another owner is refused while fn runs")
		return nil
	})
	require.NoError(t, err)
	require.ErrorIs(t, handle.Err(), locker.ErrReleased, "Do released the lock")
	h, err := b.TryLock(ctx, "k", time.Second)
	require.NoError(t, err, "free after Do")
	require.Greater(t, h.Fence(), handle.Fence())
	require.NoError(t, h.Release(ctx))
}

func TestDoReturnsFnsErrorAndStillReleases(t *testing.T) {
	ctx := context.Background()
	_, a, b := doLockers(t, locker.Options[string]{})
	errJob := errors.New("job failed")
	err := a.Do(ctx, "k", time.Second, func(context.Context, *locker.Lock[string]) error { return errJob })
	require.ErrorIs(t, err, errJob)
	require.Equal(t, errJob, err, "fn's error comes back as it is")
	h, err := b.TryLock(ctx, "k", time.Second)
	require.NoError(t, err, "released after a failed fn")
	require.NoError(t, h.Release(ctx))
}

func TestDoCancelsFnsContextWhenTheLockIsLost(t *testing.T) {
	synctest.Test(t, testDoCancelsFnsContextWhenTheLockIsLost)
}

func testDoCancelsFnsContextWhenTheLockIsLost(t *testing.T) {
	ctx := context.Background()
	store, a, _ := doLockers(t, locker.Options[string]{RenewLease: 300 * time.Millisecond})
	err := a.Do(ctx, "k", time.Second, func(fctx context.Context, h *locker.Lock[string]) error {
		store.Wipe(h.Name()) // an operator deletes the lock: the next renewal finds it gone
		select {
		case <-fctx.Done():
		case <-time.After(patience):
			t.Fatal("fn's context was not cancelled after the loss")
		}
		require.ErrorIs(t, context.Cause(fctx), locker.ErrLost, "the cause is the loss")
		require.ErrorIs(t, h.Err(), locker.ErrLost)
		return nil // fn ignores the loss: Do still reports it
	})
	require.ErrorIs(t, err, locker.ErrLost)
	require.NotErrorIs(t, err, locker.ErrNotHeld, "no release is attempted for a lost lock")
}

func TestDoJoinsFnsErrorWithTheLoss(t *testing.T) { synctest.Test(t, testDoJoinsFnsErrorWithTheLoss) }

func testDoJoinsFnsErrorWithTheLoss(t *testing.T) {
	ctx := context.Background()
	store, a, _ := doLockers(t, locker.Options[string]{RenewLease: 300 * time.Millisecond})
	errJob := errors.New("job stopped")
	err := a.Do(ctx, "k", time.Second, func(fctx context.Context, h *locker.Lock[string]) error {
		store.Wipe(h.Name())
		<-fctx.Done()
		return errJob
	})
	require.ErrorIs(t, err, errJob)
	require.ErrorIs(t, err, locker.ErrLost)
}

func TestDoReleasesEvenWhenTheCallersContextIsDone(t *testing.T) {
	_, a, b := doLockers(t, locker.Options[string]{})
	ctx, cancel := context.WithCancel(context.Background())
	err := a.Do(ctx, "k", time.Second, func(fctx context.Context, _ *locker.Lock[string]) error {
		cancel() // the request ends while fn runs
		<-fctx.Done()
		require.ErrorIs(t, context.Cause(fctx), context.Canceled)
		return fctx.Err()
	})
	require.ErrorIs(t, err, context.Canceled)
	require.NotErrorIs(t, err, locker.ErrLost)
	require.NotErrorIs(t, err, locker.ErrBackend, "the release succeeded")
	h, err := b.TryLock(context.Background(), "k", time.Second)
	require.NoError(t, err, "released at once, not when the lease ended")
	require.NoError(t, h.Release(context.Background()))
}

func TestDoDoesNotCallFnWhenTheLockIsNotObtained(t *testing.T) {
	synctest.Test(t, testDoDoesNotCallFnWhenTheLockIsNotObtained)
}

func testDoDoesNotCallFnWhenTheLockIsNotObtained(t *testing.T) {
	ctx := context.Background()
	_, a, b := doLockers(t, locker.Options[string]{})
	h, err := b.TryLock(ctx, "k", time.Minute)
	require.NoError(t, err)
	called := false
	err = a.Do(ctx, "k", 20*time.Millisecond, func(context.Context, *locker.Lock[string]) error {
		called = true
		return nil
	})
	require.ErrorIs(t, err, locker.ErrNotObtained)
	require.False(t, called)
	require.NoError(t, h.Release(ctx))
}

func TestDoRejectsANilFnBeforeTheStore(t *testing.T) {
	store, a, _ := doLockers(t, locker.Options[string]{})
	err := a.Do(context.Background(), "k", time.Second, nil)
	require.ErrorIs(t, err, locker.ErrInvalidArgument)
	var ae *locker.ArgumentError
	require.ErrorAs(t, err, &ae)
	assert.Equal(t, "fn", ae.Arg)
	assert.Empty(t, store.Keys(""), "nothing was written")
}

func TestDoReleasesWhenFnPanics(t *testing.T) {
	ctx := context.Background()
	_, a, b := doLockers(t, locker.Options[string]{})
	func() {
		defer func() { require.Equal(t, "boom", recover()) }()
		_ = a.Do(ctx, "k", time.Second, func(context.Context, *locker.Lock[string]) error { panic("boom") })
	}()
	h, err := b.TryLock(ctx, "k", time.Second)
	require.NoError(t, err, "released although fn panicked")
	require.NoError(t, h.Release(ctx))
}

func TestDoLeavesAHandleFnReleasedAlone(t *testing.T) {
	ctx := context.Background()
	_, a, b := doLockers(t, locker.Options[string]{})
	err := a.Do(ctx, "k", time.Second, func(fctx context.Context, h *locker.Lock[string]) error {
		if err := h.Release(ctx); err != nil {
			return err
		}
		<-fctx.Done()
		require.ErrorIs(t, context.Cause(fctx), locker.ErrReleased)
		h2, err := b.TryLock(ctx, "k", time.Second)
		require.NoError(t, err)
		return h2.Release(ctx)
	})
	require.NoError(t, err, "no second release, no loss")
}

func TestDoReportsAFailedReleaseWithFnsError(t *testing.T) {
	r := newRig(t)
	l := r.barging(t, locker.Options[string]{})
	r.b.EXPECT().Acquire(gomock.Any(), gomock.Any()).Return(acquired(5, 1), nil)
	r.r.EXPECT().Keep(gomock.Any()).Return(func() {})
	errStore := errors.New("store down")
	r.b.EXPECT().Release(gomock.Any(), "k", gomock.Any(), "").Return(false, 0, errStore)
	errJob := errors.New("job failed")
	err := l.Do(context.Background(), "k", time.Second, func(context.Context, *locker.Lock[string]) error { return errJob })
	require.ErrorIs(t, err, errJob)
	require.ErrorIs(t, err, locker.ErrBackend)
	require.ErrorIs(t, err, errStore)
	require.NotContains(t, err.Error(), "\n", "a joined error keeps to one line")
}
