package locker_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/backend/memory"
	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/locker/driver"
)

// countingClient counts the acquiring calls that reach a memory client,
// and can make AcquireAll apply its step and then fail (a lost reply).
type countingClient struct {
	*memory.Client
	one, all atomic.Int32
	lostAll  atomic.Bool
}

func (c *countingClient) Acquire(ctx context.Context, req driver.AcquireRequest) (driver.AcquireResult, error) {
	c.one.Add(1)
	return c.Client.Acquire(ctx, req)
}

func (c *countingClient) AcquireFair(ctx context.Context, req driver.AcquireRequest, ttl time.Duration) (driver.AcquireResult, error) {
	c.one.Add(1)
	return c.Client.AcquireFair(ctx, req, ttl)
}

func (c *countingClient) AcquireAll(ctx context.Context, reqs []driver.AcquireRequest, fair bool) ([]driver.AcquireResult, bool, error) {
	c.all.Add(1)
	res, ok, err := c.Client.AcquireAll(ctx, reqs, fair)
	if c.lostAll.Load() {
		return nil, true, errors.New("reply lost")
	}
	return res, ok, err
}

func TestTryLockAllIsOneAtomicStep(t *testing.T) {
	for _, mode := range []locker.Mode{locker.Fair, locker.Barging} {
		t.Run(mode.String(), func(t *testing.T) {
			ctx := context.Background()
			store := memory.New()
			cc := &countingClient{Client: store.Client()}
			a, err := locker.New[string](cc, locker.Options[string]{Mode: mode})
			require.NoError(t, err)
			t.Cleanup(func() { _ = a.Close() })
			b, err := locker.New[string](store.Client(), locker.Options[string]{Mode: mode})
			require.NoError(t, err)
			t.Cleanup(func() { _ = b.Close() })

			m, err := a.TryLockAll(ctx, []string{"x", "y", "z"}, time.Minute)
			require.NoError(t, err)
			assert.Equal(t, int32(1), cc.all.Load(), "one AcquireAll")
			assert.Equal(t, int32(0), cc.one.Load(), "no attempt name by name")
			for _, h := range m.Locks() {
				st, err := store.Inspect(ctx, h.Name())
				require.NoError(t, err)
				assert.Equal(t, h.Owner(), st.Owner)
				assert.Equal(t, h.Fence(), st.Fence)
			}
			require.NoError(t, m.Release(ctx))

			// One name taken: one step, nothing held, no attempt name by name.
			hy, err := b.TryLock(ctx, "y", time.Minute)
			require.NoError(t, err)
			_, err = a.TryLockAll(ctx, []string{"x", "y", "z"}, time.Minute)
			require.ErrorIs(t, err, locker.ErrNotObtained)
			assert.Equal(t, int32(2), cc.all.Load())
			assert.Equal(t, int32(0), cc.one.Load())
			for _, n := range []string{"x", "z"} {
				st, err := store.Inspect(ctx, n)
				require.NoError(t, err)
				assert.Empty(t, st.Owner, "%s is held after a failed atomic step", n)
			}

			// LockAll: the step finds y taken, then waits name by name.
			time.AfterFunc(100*time.Millisecond, func() { _ = hy.Release(context.Background()) })
			m, err = a.LockAll(ctx, []string{"x", "y", "z"}, 5*time.Second, time.Minute)
			require.NoError(t, err)
			assert.Equal(t, int32(3), cc.all.Load())
			assert.Positive(t, cc.one.Load(), "LockAll waited name by name")
			require.NoError(t, m.Release(ctx))
		})
	}
}

func TestTryLockAllUndoesALostAtomicStep(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	cc := &countingClient{Client: store.Client()}
	cc.lostAll.Store(true)
	a, err := locker.New[string](cc, locker.Options[string]{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })
	_, err = a.TryLockAll(ctx, []string{"x", "y"}, time.Minute)
	require.ErrorIs(t, err, locker.ErrBackend)
	for _, n := range []string{"x", "y"} {
		st, err := store.Inspect(ctx, n)
		require.NoError(t, err)
		assert.Empty(t, st.Owner, "%s is still held after the lost step was undone", n)
	}
}

// orderedOnly hides driver.MultiAcquirer: the set is taken name by name.
type orderedOnly struct {
	driver.Backend
	driver.Queue
	driver.Notifier
}

func TestTryLockAllWithoutAtomicStep(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	c := store.Client()
	a, err := locker.New[string](orderedOnly{c, c, c}, locker.Options[string]{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = a.Close() })
	hy, err := store.Acquire(ctx, driver.AcquireRequest{Name: "y", Owner: "other", Ticket: "t1", Lease: time.Minute})
	require.NoError(t, err)
	require.True(t, hy.Acquired)
	_, err = a.TryLockAll(ctx, []string{"x", "y", "z"}, time.Minute)
	require.ErrorIs(t, err, locker.ErrNotObtained)
	st, err := store.Inspect(ctx, "x")
	require.NoError(t, err)
	assert.Empty(t, st.Owner, "x was given back")
	_, _, err = store.Release(ctx, "y", "other", "")
	require.NoError(t, err)
	m, err := a.TryLockAll(ctx, []string{"x", "y", "z"}, time.Minute)
	require.NoError(t, err)
	assert.Len(t, m.Locks(), 3)
	require.NoError(t, m.Release(ctx))
}
