package locker_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/locker"
)

func TestLockAllHoldsEveryLockOrNone(t *testing.T) {
	ctx := context.Background()
	store, a, b := doLockers(t, locker.Options[string]{})
	m, err := a.TryLockAll(ctx, []string{"c", "a", "b"}, time.Minute)
	require.NoError(t, err)
	require.NoError(t, m.Err())
	var names []string
	for _, h := range m.Locks() {
		names = append(names, h.Name())
		assert.Equal(t, m.Locks()[0].Owner(), h.Owner(), "one owner for the set")
		assert.Positive(t, h.Fence())
	}
	assert.Equal(t, []string{"a", "b", "c"}, names, "taken in the order of their names")
	for _, k := range []string{"a", "b", "c"} {
		_, err := b.TryLock(ctx, k, time.Second)
		require.ErrorIs(t, err, locker.ErrNotObtained, "%s is held by the set", k)
	}
	require.NoError(t, m.Release(ctx))
	<-m.Done()
	require.ErrorIs(t, m.Err(), locker.ErrReleased)

	// One lock of the set is taken: the call fails and holds none.
	hb, err := b.TryLock(ctx, "b", time.Minute)
	require.NoError(t, err)
	_, err = a.TryLockAll(ctx, []string{"a", "b", "c"}, time.Minute)
	require.ErrorIs(t, err, locker.ErrNotObtained)
	_, err = a.LockAll(ctx, []string{"a", "b", "c"}, 30*time.Millisecond, time.Minute)
	require.ErrorIs(t, err, locker.ErrNotObtained)
	for _, k := range []string{"a", "c"} {
		st, err := store.Inspect(ctx, k)
		require.NoError(t, err)
		assert.Empty(t, st.Owner, "%s was released when the set failed", k)
	}
	require.NoError(t, hb.Release(ctx))
}

func TestLockAllOverlappingSetsInAnyOrderNeverDeadlock(t *testing.T) {
	for _, mode := range []locker.Mode{locker.Fair, locker.Barging} {
		t.Run(mode.String(), func(t *testing.T) {
			ctx := context.Background()
			_, a, b := doLockers(t, locker.Options[string]{Mode: mode})
			keys := []string{"k0", "k1", "k2", "k3"}
			var inUse [4]atomic.Int32
			var overlaps, done atomic.Int64
			var wg sync.WaitGroup
			for g := range 8 {
				l := a
				if g%2 == 1 {
					l = b
				}
				wg.Go(func() {
					r := rand.New(rand.NewPCG(uint64(g), 7))
					for range 25 {
						set := append([]string(nil), keys...)
						r.Shuffle(len(set), func(i, j int) { set[i], set[j] = set[j], set[i] })
						set = set[:2+r.IntN(3)]
						m, err := l.LockAll(ctx, set, patience, time.Minute)
						if !assert.NoError(t, err) {
							return
						}
						for _, k := range set {
							if inUse[k[1]-'0'].Add(1) != 1 {
								overlaps.Add(1)
							}
						}
						time.Sleep(time.Duration(r.IntN(300)) * time.Microsecond)
						for _, k := range set {
							inUse[k[1]-'0'].Add(-1)
						}
						assert.NoError(t, m.Release(ctx))
						done.Add(1)
					}
				})
			}
			wg.Wait()
			assert.Zero(t, overlaps.Load(), "two sets sharing a key were held at once")
			assert.Equal(t, int64(8*25), done.Load(), "every set was taken: no deadlock")
		})
	}
}

func TestLockAllEndsWhenOneLockIsLost(t *testing.T) {
	ctx := context.Background()
	store, a, b := doLockers(t, locker.Options[string]{RenewLease: 300 * time.Millisecond})
	m, err := a.LockAllWithRenewal(ctx, []string{"x", "y"}, time.Second)
	require.NoError(t, err)
	store.Wipe("y")
	waitFor(t, m.Done(), "the set to end once one lock was lost")
	require.ErrorIs(t, m.Err(), locker.ErrLost)
	assert.Contains(t, m.Err().Error(), `"y"`, "the error names the lock that was lost")
	err = m.Release(ctx)
	require.ErrorIs(t, err, locker.ErrNotHeld, "the lost lock cannot be released")
	h, err := b.TryLock(ctx, "x", time.Second)
	require.NoError(t, err, "the lock still held was released")
	require.NoError(t, h.Release(ctx))
}

func TestLockAllRejectsBadInputBeforeTheStore(t *testing.T) {
	ctx := context.Background()
	store, a, _ := doLockers(t, locker.Options[string]{})
	for what, keys := range map[string][]string{
		"no keys":         nil,
		"a duplicate":     {"a", "b", "a"},
		"an empty key":    {"a", ""},
		"a name too long": {"a", string(make([]byte, locker.MaxNameLen+1))},
	} {
		_, err := a.TryLockAll(ctx, keys, time.Minute)
		require.ErrorIs(t, err, locker.ErrInvalidArgument, what)
	}
	_, err := a.LockAll(ctx, []string{"a"}, -time.Second, time.Minute)
	require.ErrorIs(t, err, locker.ErrInvalidArgument, "negative wait")
	_, err = a.LockAll(ctx, []string{"a"}, time.Second, 0)
	require.ErrorIs(t, err, locker.ErrInvalidArgument, "zero lease")
	assert.Empty(t, store.Keys(""), "nothing was written")

	var m *locker.MultiLock[string]
	require.ErrorIs(t, m.Err(), locker.ErrNotHeld)
	require.ErrorIs(t, m.Release(ctx), locker.ErrNotHeld)
	<-m.Done()
}

func TestLockAllExtendAndDeadline(t *testing.T) {
	ctx := context.Background()
	_, a, _ := doLockers(t, locker.Options[string]{})
	m, err := a.TryLockAll(ctx, []string{"e1", "e2"}, time.Second)
	require.NoError(t, err)
	d0 := m.Deadline()
	require.NoError(t, m.Extend(ctx, time.Hour))
	require.True(t, m.Deadline().After(d0.Add(30*time.Minute)), fmt.Sprint(d0, m.Deadline()))
	require.NoError(t, m.Release(ctx))
}

// A lock taken early whose fixed lease ends while LockAll waits for a later
// one: the call fails with ErrLost and holds nothing, rather than returning
// a set that is not held.
func TestLockAllFailsWhenAnEarlyLockEndsDuringTheWait(t *testing.T) {
	ctx := context.Background()
	store, a, b := doLockers(t, locker.Options[string]{})
	_, err := b.TryLock(ctx, "z2", 150*time.Millisecond) // frees itself after a's lease of z1 ended
	require.NoError(t, err)
	_, err = a.LockAll(ctx, []string{"z2", "z1"}, 5*time.Second, 50*time.Millisecond)
	require.ErrorIs(t, err, locker.ErrLost)
	require.NotContains(t, err.Error(), "\n", "one line")
	for _, k := range []string{"z1", "z2"} {
		require.Eventually(t, func() bool {
			st, err := store.Inspect(ctx, k)
			return err == nil && st.Owner == ""
		}, patience, time.Millisecond, "%s is left to nobody", k)
	}
}
