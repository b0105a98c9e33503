package goredis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/internal/rediscore"
	"github.com/disgolock/disgo/internal/redistest"
	"github.com/disgolock/disgo/internal/storetest"
	"github.com/disgolock/disgo/internal/tcpproxy"
	"github.com/disgolock/disgo/locker"
)

// TestBatcherFaults runs the facade on a batching Store, 32 goroutines on 8
// names, while the connection to the server stalls and the server kills
// the client's connections. No two goroutines hold a name at once, and the
// fencing tokens of a name rise in the order of its holds; once the faults
// stop, every goroutine acquires again; after the last release no lock or
// queue key is left. Many of the calls end, by their wait or their request
// timeout, while their command is queued or in a pipeline.
func TestBatcherFaults(t *testing.T) {
	for _, mode := range []locker.Mode{locker.Fair, locker.Barging} {
		t.Run(fmt.Sprint(mode), func(t *testing.T) { batcherFaults(t, mode) })
	}
}

// section is the in-process record of one name's holds.
type section struct {
	mu     sync.Mutex
	holder int   // goroutine holding it, or -1
	fence  int64 // of the last hold
}

func batcherFaults(t *testing.T, mode locker.Mode) {
	const (
		workers = 32
		names   = 8
		faulty  = 4 * time.Second
	)
	srv := redistest.Start(t)
	proxy := tcpproxy.Start(t, srv.Addr)
	admin := newClient(t, srv)
	c := redis.NewClient(&redis.Options{Addr: proxy.Addr(), DialTimeout: 300 * time.Millisecond, ContextTimeoutEnabled: true, PoolSize: 8})
	t.Cleanup(func() { _ = c.Close() })
	var reqs storetest.Requests
	c.AddHook(counter{&reqs})
	s, err := New(c, Options{})
	require.NoError(t, err)
	lk, err := locker.New[string](s, locker.Options[string]{Mode: mode, RequestTimeout: 300 * time.Millisecond, WaiterTTL: time.Second})
	require.NoError(t, err)

	sections := make([]*section, names)
	for i := range sections {
		sections[i] = &section{holder: -1}
	}
	var healed atomic.Bool
	after := make([]atomic.Int64, workers) // acquisitions after the faults
	var total, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := rng.IntN(names)
				wait := time.Duration(20+rng.IntN(400)) * time.Millisecond
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(50+rng.IntN(1000))*time.Millisecond)
				l, err := lk.Lock(ctx, fmt.Sprint("n", i), wait, 2*time.Second)
				cancel()
				if err != nil {
					failed.Add(1)
					continue
				}
				sec := sections[i]
				sec.mu.Lock()
				assert.Equal(t, -1, sec.holder, "name n%d held by %d and %d at once", i, sec.holder, w)
				assert.Greater(t, l.Fence(), sec.fence, "fencing token of n%d did not rise", i)
				sec.holder, sec.fence = w, l.Fence()
				sec.mu.Unlock()
				time.Sleep(time.Millisecond)
				sec.mu.Lock()
				sec.holder = -1
				sec.mu.Unlock()
				total.Add(1)
				if healed.Load() {
					after[w].Add(1)
				}
				rctx, rcancel := context.WithTimeout(context.Background(), time.Second)
				_ = l.Release(rctx) // may fail in a fault: the lease ends it
				rcancel()
			}
		}()
	}

	// Faults: stalls of the connection, and killed connections.
	rng := rand.New(rand.NewPCG(7, 7))
	var stalls, kills int
	for end := time.Now().Add(faulty); time.Now().Before(end); {
		time.Sleep(time.Duration(50+rng.IntN(150)) * time.Millisecond)
		if rng.IntN(2) == 0 {
			resume := tcpproxy.Stall(proxy)
			time.Sleep(time.Duration(50+rng.IntN(350)) * time.Millisecond)
			resume()
			stalls++
		} else {
			_, err := admin.ClientKillByFilter(context.Background(), "TYPE", "normal", "SKIPME", "yes").Result()
			require.NoError(t, err)
			kills++
		}
	}
	healed.Store(true)
	eventually(t, "every goroutine acquiring after the faults", func() bool {
		for w := range after {
			if after[w].Load() == 0 {
				return false
			}
		}
		return true
	})
	close(stop)
	wg.Wait()
	require.NoError(t, lk.Close())
	require.NoError(t, s.Close())
	t.Logf("%d stalls, %d kills; %d holds, %d failed calls; %d pipelines", stalls, kills, total.Load(), failed.Load(), reqs.Batches.Load())
	assert.Positive(t, reqs.Batches.Load(), "no pipeline: batching never engaged")
	assert.Positive(t, failed.Load(), "no call failed: the faults did not bite")

	// Every hold was released, or its lease ends; every waiter left, or
	// its place expires.
	eventually(t, "no lock or queue key left", func() bool {
		for i := 0; i < names; i++ {
			k := rediscore.Layout{Prefix: "disgo"}.Keys(fmt.Sprint("n", i))
			n, err := admin.Exists(context.Background(), k[rediscore.KeyLock], k[rediscore.KeyQueue], k[rediscore.KeyWaiters]).Result()
			if err != nil || n > 0 {
				return false
			}
		}
		return true
	})
}
