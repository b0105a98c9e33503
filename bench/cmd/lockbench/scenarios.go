package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/disgolock/disgo/bench/internal/redisinfo"
	"github.com/disgolock/disgo/bench/internal/stats"
)

// Bounds that keep every loop finite whatever the durations.
const (
	maxOpsPerWorker = 10_000_000
	warmOps         = 20
	// unlockTimeout bounds one release.
	unlockTimeout = 10 * time.Second
)

// metrics is one round's figures of one implementation in one scenario.
type metrics = map[string]float64

// firstErr keeps the first error reported by any worker.
type firstErr struct {
	mu  sync.Mutex
	err error
}

func (f *firstErr) set(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
	}
}

func (f *firstErr) get() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// pair takes and releases the lock of key once.
func pair(ctx context.Context, inst Instance, key string) error {
	unlock, err := inst.Lock(ctx, key)
	if err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	if err := unlock(ctx); err != nil {
		return fmt.Errorf("unlock: %w", err)
	}
	return nil
}

// warm runs a few pairs on key, so that connections are open and scripts
// loaded before anything is measured.
func warm(ctx context.Context, inst Instance, key string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for range warmOps {
		if err := pair(ctx, inst, key); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	return nil
}

// info reads the server's counters.
func (b *bench) info(ctx context.Context) (redisinfo.Snapshot, error) {
	s, err := b.stats.Info(ctx, "all").Result()
	if err != nil {
		return redisinfo.Snapshot{}, fmt.Errorf("INFO: %w", err)
	}
	return redisinfo.Parse(s), nil
}

// requestMetrics adds the per-acquisition request figures of d to m and
// keeps d for the command breakdown of scenario sc.
func (b *bench) requestMetrics(m metrics, sc, impl string, d redisinfo.Delta, acq int64) {
	if acq == 0 {
		return
	}
	m["reads/acq"] = float64(d.Reads) / float64(acq)
	m["cmds/acq"] = float64(d.Commands) / float64(acq)
	t := b.calls[sc][impl]
	t.delta, t.acq = t.delta.Add(d), t.acq+acq
	b.calls[sc][impl] = t
}

// callTotal sums the request deltas and acquisitions of one implementation
// in one scenario over all rounds.
type callTotal struct {
	delta redisinfo.Delta
	acq   int64
}

// uncontended: one goroutine, lock+unlock pairs on one key.
func (b *bench) uncontended(ctx context.Context, impl Impl, key string) (metrics, error) {
	inst, err := impl.Open(b.addr, openOpts{})
	if err != nil {
		return nil, err
	}
	defer inst.Close()
	if err := warm(ctx, inst, key); err != nil {
		return nil, err
	}
	inScript, err := b.scripted(ctx, impl, key)
	if err != nil {
		return nil, fmt.Errorf("MONITOR calibration: %w", err)
	}
	before, err := b.info(ctx)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.duration+unlockTimeout)
	defer cancel()
	lat := make([]time.Duration, 0, 1<<15)
	start := time.Now()
	for len(lat) < maxOpsPerWorker && time.Since(start) < b.cfg.duration {
		t0 := time.Now()
		if err := pair(ctx, inst, key); err != nil {
			return nil, err
		}
		lat = append(lat, time.Since(t0))
	}
	elapsed := time.Since(start)
	after, err := b.info(ctx)
	if err != nil {
		return nil, err
	}
	n := int64(len(lat))
	m := metrics{
		"ops/s": float64(n) / elapsed.Seconds(),
		"p50":   float64(stats.Percentile(lat, 50)),
		"p99":   float64(stats.Percentile(lat, 99)),
	}
	d := redisinfo.Sub(after, before)
	if n > 0 {
		_, usec := d.TopLevel(inScript)
		m["usec/pair"] = usec * float64(time.Microsecond) / float64(n)
	}
	b.requestMetrics(m, "uncontended", impl.Name, d, n)
	return m, nil
}

// parallel: cfg.parallel goroutines of one instance, each on its own key.
func (b *bench) parallel(ctx context.Context, impl Impl, key string) (metrics, error) {
	inst, err := impl.Open(b.addr, openOpts{})
	if err != nil {
		return nil, err
	}
	defer inst.Close()
	keys := make([]string, b.cfg.parallel)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s:%d", key, i)
		if err := warm(ctx, inst, keys[i]); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, b.cfg.duration+unlockTimeout)
	defer cancel()
	lats := make([][]time.Duration, len(keys))
	var fail firstErr
	var wg sync.WaitGroup
	start := time.Now()
	for i, k := range keys {
		wg.Go(func() {
			lat := make([]time.Duration, 0, 1<<12)
			for len(lat) < maxOpsPerWorker && time.Since(start) < b.cfg.duration && fail.get() == nil {
				t0 := time.Now()
				if err := pair(ctx, inst, k); err != nil {
					fail.set(err)
					break
				}
				lat = append(lat, time.Since(t0))
			}
			lats[i] = lat
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := fail.get(); err != nil {
		return nil, err
	}
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	return metrics{
		"ops/s": float64(len(all)) / elapsed.Seconds(),
		"p50":   float64(stats.Percentile(all, 50)),
		"p99":   float64(stats.Percentile(all, 99)),
	}, nil
}

// contended: cfg.contenders processes (one instance each) loop lock,
// critical section, unlock on one key. The critical section checks that no
// one else is in it.
func (b *bench) contended(ctx context.Context, impl Impl, key string) (metrics, error) {
	insts := make([]Instance, b.cfg.contenders)
	for i := range insts {
		inst, err := impl.Open(b.addr, openOpts{})
		if err != nil {
			return nil, err
		}
		defer inst.Close()
		insts[i] = inst
		if err := warm(ctx, inst, key); err != nil {
			return nil, err
		}
	}
	before, err := b.info(ctx)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	end := start.Add(b.cfg.duration)
	lockCtx, cancel := context.WithDeadline(ctx, end)
	defer cancel()
	unlockCtx, cancelUnlock := context.WithDeadline(ctx, end.Add(unlockTimeout))
	defer cancelUnlock()

	var (
		inCS, overlaps atomic.Int64
		maxWait        atomic.Int64 // including waits cut short by the end
		fail           firstErr
		wg             sync.WaitGroup
		waits          = make([][]time.Duration, len(insts))
		counts         = make([]int64, len(insts))
	)
	for i, inst := range insts {
		wg.Go(func() {
			var w []time.Duration
			for len(w) < maxOpsPerWorker && time.Now().Before(end) && fail.get() == nil {
				t0 := time.Now()
				unlock, err := inst.Lock(lockCtx, key)
				wait := time.Since(t0)
				maxAtomic(&maxWait, int64(wait))
				if err != nil {
					if lockCtx.Err() == nil {
						fail.set(fmt.Errorf("lock: %w", err))
					}
					break
				}
				if inCS.Add(1) > 1 {
					overlaps.Add(1)
				}
				inCS.Add(-1)
				if err := unlock(unlockCtx); err != nil {
					fail.set(fmt.Errorf("unlock: %w", err))
					break
				}
				w = append(w, wait)
			}
			waits[i], counts[i] = w, int64(len(w))
		})
	}
	wg.Wait()
	elapsed := min(time.Since(start), b.cfg.duration)
	if err := fail.get(); err != nil {
		return nil, err
	}
	after, err := b.info(ctx)
	if err != nil {
		return nil, err
	}
	var all []time.Duration
	var gaveUp int64
	for i, inst := range insts {
		all = append(all, waits[i]...)
		if g, ok := inst.(gaveUpCounter); ok {
			gaveUp += g.GaveUp()
		}
	}
	lo, hi := stats.MinMax(counts)
	m := metrics{
		"acq/s":    float64(len(all)) / elapsed.Seconds(),
		"p50":      float64(stats.Percentile(all, 50)),
		"p99":      float64(stats.Percentile(all, 99)),
		"max":      float64(maxWait.Load()),
		"jain":     stats.Jain(counts),
		"min":      float64(lo),
		"maxacq":   float64(hi),
		"overlaps": float64(overlaps.Load()),
		"gaveup":   float64(gaveUp),
	}
	b.requestMetrics(m, "contended", impl.Name, redisinfo.Sub(after, before), int64(len(all)))
	return m, nil
}

func maxAtomic(a *atomic.Int64, v int64) {
	for {
		cur := a.Load()
		if v <= cur || a.CompareAndSwap(cur, v) {
			return
		}
	}
}

// handoffResult is what a run of hand-offs measured.
type handoffResult struct {
	lat      []time.Duration // release started → waiter holds
	slow     int64           // hand-offs longer than cfg.lostAfter
	failed   int64           // waits that ended without the lock
	overlaps int64
}

// handoffs passes the lock of key between two processes, at most n times
// and until limit has passed: the waiter starts waiting, the holder waits
// cfg.settle, then releases; the time from just before the release to the
// waiter holding is one sample. Then the roles swap. The holder's pause is
// drawn from [cfg.settle, 2·cfg.settle), so that a waiter that polls at a
// fixed period does not fall into step with the releases.
func (b *bench) handoffs(ctx context.Context, impl Impl, key string, n int, limit time.Duration) (handoffResult, error) {
	var r handoffResult
	var insts [2]Instance
	for i := range insts {
		inst, err := impl.Open(b.addr, openOpts{})
		if err != nil {
			return r, err
		}
		defer inst.Close()
		insts[i] = inst
		if err := warm(ctx, inst, key); err != nil {
			return r, err
		}
	}
	var inCS, overlaps atomic.Int64
	lock := func(i int) (Unlock, error) { // an unmeasured acquisition
		lctx, cancel := context.WithTimeout(ctx, b.cfg.waitTimeout)
		defer cancel()
		u, err := insts[i].Lock(lctx, key)
		if err == nil {
			inCS.Add(1)
		}
		return u, err
	}
	holder := 0
	unlock, err := lock(holder)
	if err != nil {
		return r, fmt.Errorf("lock: %w", err)
	}
	type acquired struct {
		unlock Unlock
		at     time.Time
		err    error
	}
	deadline := time.Now().Add(limit)
	for i := 0; i < n && time.Now().Before(deadline) && ctx.Err() == nil; i++ {
		w := 1 - holder
		got := make(chan acquired, 1)
		wctx, cancel := context.WithTimeout(ctx, b.cfg.waitTimeout)
		go func() {
			u, err := insts[w].Lock(wctx, key)
			at := time.Now()
			if err == nil && inCS.Add(1) > 1 {
				overlaps.Add(1)
			}
			got <- acquired{u, at, err}
		}()
		time.Sleep(b.cfg.settle + rand.N(b.cfg.settle+1))
		inCS.Add(-1)
		t0 := time.Now()
		uerr := unlock(ctx)
		g := <-got
		cancel()
		if uerr != nil {
			if g.err == nil {
				_ = g.unlock(ctx)
			}
			return r, fmt.Errorf("unlock: %w", uerr)
		}
		holder = w
		if g.err != nil {
			r.failed++
			if unlock, err = lock(holder); err != nil {
				return r, fmt.Errorf("lock: %w", err)
			}
			continue
		}
		d := g.at.Sub(t0)
		r.lat = append(r.lat, d)
		if d > b.cfg.lostAfter {
			r.slow++
		}
		unlock = g.unlock
	}
	inCS.Add(-1)
	r.overlaps = overlaps.Load()
	return r, unlock(ctx)
}

// renewal holds cfg.held auto-renewed locks at once in one process and
// reports the goroutines and connections they cost and the Redis requests
// per second their renewal makes.
func (b *bench) renewal(ctx context.Context, impl Impl, key string) (metrics, error) {
	runtime.GC()
	time.Sleep(200 * time.Millisecond) // let goroutines of earlier runs end
	g0 := runtime.NumGoroutine()
	s0, err := b.info(ctx)
	if err != nil {
		return nil, err
	}
	inst, err := impl.Open(b.addr, openOpts{renewLease: b.cfg.renewLease})
	if err != nil {
		return nil, err
	}
	defer inst.Close()

	unlocks := make([]Unlock, b.cfg.held)
	var next atomic.Int64
	var fail firstErr
	var wg sync.WaitGroup
	lctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	for range b.cfg.parallel {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(unlocks)) && fail.get() == nil; i = next.Add(1) - 1 {
				u, err := inst.Lock(lctx, fmt.Sprintf("%s:%d", key, i))
				if err != nil {
					fail.set(fmt.Errorf("lock: %w", err))
					return
				}
				unlocks[i] = u
			}
		})
	}
	wg.Wait()
	defer releaseAll(unlocks, b.cfg.parallel) // on an early return
	if err := fail.get(); err != nil {
		return nil, err
	}
	time.Sleep(200 * time.Millisecond) // let acquisition goroutines end
	g1 := runtime.NumGoroutine()
	s1, err := b.info(ctx)
	if err != nil {
		return nil, err
	}
	holdStart := time.Now()
	select {
	case <-time.After(b.cfg.hold):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s2, err := b.info(ctx)
	if err != nil {
		return nil, err
	}
	held := time.Since(holdStart).Seconds()
	lost := releaseAll(unlocks, b.cfg.parallel)
	d := redisinfo.Sub(s2, s1)
	return metrics{
		"goroutines": float64(g1 - g0),
		"conns":      float64(s1.Clients - s0.Clients),
		"reads/s":    float64(d.Reads) / held,
		"cmds/s":     float64(d.Commands) / held,
		"lost":       float64(lost),
	}, nil
}

// releaseAll releases every non-nil unlock with the given parallelism,
// clears the slice, and returns how many releases failed.
func releaseAll(unlocks []Unlock, parallel int) int64 {
	var failed, next atomic.Int64
	var wg sync.WaitGroup
	for range parallel {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(len(unlocks)); i = next.Add(1) - 1 {
				if unlocks[i] == nil {
					continue
				}
				ctx, cancel := context.WithTimeout(context.Background(), unlockTimeout)
				if err := unlocks[i](ctx); err != nil {
					failed.Add(1)
				}
				cancel()
				unlocks[i] = nil
			}
		})
	}
	wg.Wait()
	return failed.Load()
}
