//go:build linux

package faulttest

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// slot is a place of the workload that one worker fills at a time: a
// killed worker is replaced by a new process in the same slot.
type slot struct {
	mu sync.Mutex
	w  *worker
}

func (s *slot) get() *worker {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w
}

func (s *slot) set(w *worker) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.w = w
}

// loopSpec is the contended workload of one slot: lock, hold, release,
// pause, again.
type loopSpec struct {
	name  string
	wait  time.Duration
	lease func(i int) time.Duration // 0: LockWithRenewal
	hold  func(i int) time.Duration
	gap   time.Duration
	// keep, when set, keeps a hold past its hold time while it returns
	// true, until Done closes (bounded by keepMax).
	keep func(h holdRec) bool
	// kind, when set, says which kind of lock the i-th lock call takes;
	// nil is the mutex.
	kind func(i int) lockSpec
}

const (
	keepMax  = 10 * time.Second
	maxIters = 100000
)

// loopStats collects the outcomes of the loops of a workload.
type loopStats struct {
	mu       sync.Mutex
	acquired int
	failed   map[string]int // kinds of failed lock calls
	relFail  map[string]int // kinds of failed release calls
	waits    []time.Duration
	problems []string
}

func newLoopStats() *loopStats {
	return &loopStats{failed: map[string]int{}, relFail: map[string]int{}}
}

func (st *loopStats) problem(format string, a ...any) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.problems) < 50 {
		st.problems = append(st.problems, fmt.Sprintf(format, a...))
	}
}

// loop runs spec in slot s until ctx is done.
func (e *env) loop(ctx context.Context, s *slot, spec loopSpec, st *loopStats) {
	resultWait := spec.wait + 2*e.config("").RequestTimeout + patience
	for i := 0; i < maxIters && ctx.Err() == nil; i++ {
		w := s.get()
		if w == nil || w.dead() {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		var ls lockSpec
		if spec.kind != nil {
			ls = spec.kind(i)
		}
		c := w.lockAs(ls, spec.name, spec.wait, spec.lease(i))
		r, ok := c.wait(resultWait)
		if !ok {
			st.problem("%s: lock %s did not return within %v", w.name, c.cmd.Handle, resultWait)
			return
		}
		if has(r.Kinds, kindExited) {
			continue
		}
		st.mu.Lock()
		if r.OK {
			st.acquired++
			st.waits = append(st.waits, time.Duration(r.T-c.invoked()))
		} else {
			st.failed[strings.Join(r.Kinds, "+")]++
		}
		st.mu.Unlock()
		if !r.OK {
			time.Sleep(spec.gap)
			continue
		}
		time.Sleep(spec.hold(i))
		if spec.keep != nil {
			for deadline := time.Now().Add(keepMax); time.Now().Before(deadline); {
				h, _ := w.hold(r.Handle)
				if h.doneAt != 0 || !spec.keep(h) {
					break
				}
				time.Sleep(5 * time.Millisecond)
			}
		}
		rc := w.release(r.Handle)
		rr, ok := rc.wait(resultWait)
		if !ok {
			st.problem("%s: release %s did not return within %v", w.name, r.Handle, resultWait)
			return
		}
		if !rr.OK && !has(rr.Kinds, kindExited) {
			st.mu.Lock()
			st.relFail[strings.Join(rr.Kinds, "+")]++
			st.mu.Unlock()
		}
		time.Sleep(spec.gap)
	}
}

// runLoops runs spec in every slot for d (and until the calls in progress
// end), then returns.
func (e *env) runLoops(slots []*slot, spec loopSpec, st *loopStats, d time.Duration, during func(ctx context.Context)) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	for _, s := range slots {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.loop(ctx, s, spec, st)
		}()
	}
	if during != nil {
		during(ctx)
	}
	wg.Wait()
	for _, p := range st.problems {
		e.t.Error(p)
	}
}

// percentile returns the p-th percentile (0..100) of ds.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

func (st *loopStats) summary() string {
	st.mu.Lock()
	defer st.mu.Unlock()
	return fmt.Sprintf("%d acquisitions (wait p50 %v, p99 %v, max %v); failed locks %v; failed releases %v",
		st.acquired, percentile(st.waits, 50).Round(time.Millisecond), percentile(st.waits, 99).Round(time.Millisecond),
		percentile(st.waits, 100).Round(time.Millisecond), st.failed, st.relFail)
}
