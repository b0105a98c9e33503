package redisstore_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/internal/redisstore"
	"github.com/disgolock/disgo/locker"
)

func TestSmokeKinds(t *testing.T) {
	forEachAdapter(t, func(t *testing.T, s *redisstore.Store) {
		ctx := ctxT(t)
		for _, mode := range []locker.Mode{locker.Fair, locker.Barging} {
			rw, err := locker.NewRW(s, locker.Options[string]{Mode: mode})
			require.NoError(t, err)
			var readers, writers atomic.Int32
			var wg sync.WaitGroup
			for i := range 6 {
				wg.Go(func() {
					for range 20 {
						if i%3 == 0 {
							l, err := rw.Write().Lock(ctx, "x", time.Second, 5*time.Second)
							require.NoError(t, err)
							require.Equal(t, int32(1), writers.Add(1))
							require.Zero(t, readers.Load())
							writers.Add(-1)
							require.NoError(t, l.Release(ctx))
						} else {
							l, err := rw.Read().Lock(ctx, "x", time.Second, 5*time.Second)
							require.NoError(t, err)
							readers.Add(1)
							require.Zero(t, writers.Load())
							readers.Add(-1)
							require.NoError(t, l.Release(ctx))
						}
					}
				})
			}
			wg.Wait()
			require.NoError(t, rw.Close())

			sem, err := locker.NewSemaphore(s, 3, locker.Options[string]{Mode: mode})
			require.NoError(t, err)
			var in atomic.Int32
			for i := range 6 {
				wg.Go(func() {
					for range 20 {
						p := 1 + i%2
						l, err := sem.Lock(ctx, "y", time.Second, 5*time.Second, locker.WithPermits(p))
						require.NoError(t, err)
						require.LessOrEqual(t, in.Add(int32(p)), int32(3))
						in.Add(-int32(p))
						require.NoError(t, l.Release(ctx))
					}
				})
			}
			wg.Wait()
			require.NoError(t, sem.Close())
		}
	})
}
