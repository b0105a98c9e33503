package locker_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/disgolock/disgo/backend/memory"
	"github.com/disgolock/disgo/locker"
)

// recorder is an Observer that writes down every call, one line each:
//
//	start <op> <name>
//	end <op> <name> <outcome> [fence] [pos=N] [wait] [handoff]
//	<event> <name> [cause]
type recorder struct {
	mu      sync.Mutex
	lines   []string
	results []locker.OpResult
	events  []locker.Event
}

type ctxKey struct{}

func (r *recorder) OpStart(ctx context.Context, op locker.Operation) context.Context {
	r.add(fmt.Sprintf("start %v %s", op.Op, op.Name))
	return context.WithValue(ctx, ctxKey{}, op.Op)
}

func (r *recorder) OpEnd(ctx context.Context, res locker.OpResult) {
	line := fmt.Sprintf("end %v %s %v", res.Op, res.Name, res.Outcome)
	if ctx.Value(ctxKey{}) != res.Op {
		line += " (not the context of OpStart)"
	}
	if res.Fence != 0 {
		line += " fenced"
	}
	if res.Position >= 0 {
		line += fmt.Sprintf(" pos=%d", res.Position)
	}
	if res.Wait > 0 {
		line += " waited"
	}
	if res.HandOff {
		line += " handoff"
	}
	r.mu.Lock()
	r.results = append(r.results, res)
	r.mu.Unlock()
	r.add(line)
}

func (r *recorder) Event(e locker.Event) {
	line := fmt.Sprintf("%v %s", e.Kind, e.Name)
	switch e.Kind {
	case locker.EventLost:
		line += " " + e.Cause.String()
	case locker.EventStoreError:
		line += " " + e.StoreOp
	}
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
	r.add(line)
}

func (r *recorder) add(line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, line)
}

func (r *recorder) allEvents() []locker.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]locker.Event(nil), r.events...)
}

func (r *recorder) allResults() []locker.OpResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]locker.OpResult(nil), r.results...)
}

// take returns the lines recorded since the last take.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.lines
	r.lines = nil
	return out
}

// waitFor waits until a recorded line equals line; the limit only bounds a
// failing test.
func (r *recorder) waitFor(t *testing.T, line string) {
	t.Helper()
	for start := time.Now(); ; time.Sleep(2 * time.Millisecond) {
		r.mu.Lock()
		for _, l := range r.lines {
			if l == line {
				r.mu.Unlock()
				return
			}
		}
		r.mu.Unlock()
		if time.Since(start) > 20*time.Second {
			t.Fatalf("no %q in %q", line, r.take())
		}
	}
}

func observed(t *testing.T, b locker.Options[string], store interface {
	Client() *memory.Client
}) (*locker.Locker[string], *recorder) {
	t.Helper()
	rec := &recorder{}
	b.Observer = rec
	l, err := locker.New(store.Client(), b)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l, rec
}

func TestObserverSeesOperationsAndHoldingsInOrder(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	l, rec := observed(t, locker.Options[string]{Mode: locker.Barging}, store)

	first, err := l.TryLock(ctx, "a", time.Minute)
	require.NoError(t, err)
	again, err := l.Lock(ctx, "a", time.Second, time.Minute, locker.WithOwner(first.Owner())) // a re-entry: no new holding
	require.NoError(t, err)
	_, err = l.TryLock(ctx, "a", time.Minute) // another owner
	require.ErrorIs(t, err, locker.ErrNotObtained)
	require.NoError(t, again.Extend(ctx, 2*time.Minute))
	require.NoError(t, again.Release(ctx)) // the holding goes on
	require.NoError(t, first.Release(ctx)) // the last handle: the holding ends
	assert.Equal(t, []string{
		"start trylock a", "held a", "end trylock a ok fenced",
		"start lock a", "end lock a ok fenced",
		"start trylock a", "end trylock a not_obtained",
		"start extend a", "end extend a ok fenced",
		"start release a", "end release a ok fenced",
		"start release a", "released a", "end release a ok fenced",
	}, rec.take())

	// Calls rejected before the store is touched are not observed.
	require.ErrorIs(t, first.Release(ctx), locker.ErrNotHeld)
	require.ErrorIs(t, first.Extend(ctx, time.Minute), locker.ErrNotHeld)
	_, err = l.TryLock(ctx, "a", 0)
	require.ErrorIs(t, err, locker.ErrInvalidArgument)
	done, cancel := context.WithCancel(ctx)
	cancel()
	_, err = l.Lock(done, "a", time.Second, time.Minute)
	require.ErrorIs(t, err, context.Canceled)
	assert.Empty(t, rec.take())

	// Every result carries the Locker's mode and a latency.
	for _, r := range rec.allResults() {
		assert.Equal(t, locker.Barging, r.Mode)
		assert.Positive(t, r.Latency, "%v", r.Op)
	}
}

func TestObserverOutcomes(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	l, rec := observed(t, locker.Options[string]{}, store)
	other, _ := observed(t, locker.Options[string]{}, store)

	held, err := other.TryLock(ctx, "b", time.Minute)
	require.NoError(t, err)

	// A wait that elapses, in the queue: not obtained, at position 0.
	_, err = l.Lock(ctx, "b", 20*time.Millisecond, time.Minute)
	require.ErrorIs(t, err, locker.ErrNotObtained)
	// A ctx that ends while waiting: canceled.
	cctx, cancel := context.WithCancel(ctx)
	errs := make(chan error, 1)
	go func() {
		_, err := l.Lock(cctx, "b", time.Minute, time.Minute)
		errs <- err
	}()
	waitQueued(t, store, "b", 1)
	cancel()
	require.ErrorIs(t, <-errs, context.Canceled)
	// The store no longer names the owner: Extend reports not_held and the loss.
	store.Wipe("b")
	require.ErrorIs(t, held.Extend(ctx, time.Minute), locker.ErrNotHeld)
	lines := rec.take()
	assert.Equal(t, []string{
		"start lock b", "end lock b not_obtained pos=0 waited",
		"start lock b", "end lock b canceled pos=0 waited",
	}, lines)
	var wait time.Duration
	for _, r := range rec.allResults() {
		wait = max(wait, r.Wait)
	}
	assert.Positive(t, wait)
	// A Locker closed while a call waits: closed.
	blocker, err := other.TryLock(ctx, "c", time.Minute)
	require.NoError(t, err)
	go func() {
		_, err := l.Lock(ctx, "c", locker.WaitForever, time.Minute)
		errs <- err
	}()
	rec.waitFor(t, "start lock c")
	waitQueued(t, store, "c", 1)
	require.NoError(t, l.Close())
	require.ErrorIs(t, <-errs, locker.ErrClosed)
	assert.Equal(t, []string{"start lock c", "end lock c closed pos=0 waited"}, rec.take())
	require.NoError(t, blocker.Release(ctx))
}

func waitQueued(t *testing.T, s *memory.Store, name string, n int) {
	t.Helper()
	for start := time.Now(); ; time.Sleep(2 * time.Millisecond) {
		q, err := s.InspectQueue(context.Background(), name)
		if err == nil && len(q) == n {
			return
		}
		if time.Since(start) > 20*time.Second {
			t.Fatalf("%s: queue %v (%v), want %d waiters", name, q, err, n)
		}
	}
}

func TestObserverSeesLossesByCause(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	l, rec := observed(t, locker.Options[string]{Mode: locker.Barging, RenewLease: 600 * time.Millisecond}, store)

	// Extend finds the lock gone.
	ext, err := l.TryLock(ctx, "e", time.Minute)
	require.NoError(t, err)
	store.Wipe("e")
	require.ErrorIs(t, ext.Extend(ctx, time.Minute), locker.ErrNotHeld)
	assert.Equal(t, []string{
		"start trylock e", "held e", "end trylock e ok fenced",
		"start extend e", "lost e not_held", "end extend e not_held fenced",
	}, rec.take())

	// A fixed lease runs out.
	_, err = l.TryLock(ctx, "x", 10*time.Millisecond)
	require.NoError(t, err)
	rec.waitFor(t, "lost x expired")
	assert.Equal(t, []string{"start trylock x", "held x", "end trylock x ok fenced", "lost x expired"}, rec.take())

	// A renewed lease is renewed, then renewal fails.
	_, err = l.LockWithRenewal(ctx, "r", 0)
	require.NoError(t, err)
	rec.waitFor(t, "renewed r")
	store.Wipe("r")
	rec.waitFor(t, "lost r not_held")
	lines := rec.take()
	assert.Equal(t, []string{"start lock_with_renewal r", "held r", "end lock_with_renewal r ok fenced"}, lines[:3])
	tail := lines[3:]
	require.GreaterOrEqual(t, len(tail), 3, "%q", lines)
	assert.Equal(t, []string{"renewal_failed r", "lost r not_held"}, tail[len(tail)-2:])
	for _, line := range tail[:len(tail)-2] {
		assert.Equal(t, "renewed r", line)
	}

	// A force release through the same Locker.
	_, err = l.TryLock(ctx, "v", time.Minute)
	require.NoError(t, err)
	require.NoError(t, l.ForceRelease(ctx, "v"))
	assert.Equal(t, []string{"start trylock v", "held v", "end trylock v ok fenced", "lost v revoked"}, rec.take())

	// Close loses what is still held.
	_, err = l.TryLock(ctx, "c", time.Minute)
	require.NoError(t, err)
	require.NoError(t, l.Close())
	assert.Equal(t, []string{"start trylock c", "held c", "end trylock c ok fenced", "lost c closed"}, rec.take())

	// Every loss event carries the fence and the cause as an error.
	for _, e := range rec.allEvents() {
		if e.Kind == locker.EventLost {
			assert.NotZero(t, e.Fence)
			assert.Error(t, e.Err)
		}
	}
}

func TestObserverSeesAHandOff(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	l, rec := observed(t, locker.Options[string]{}, store)
	holder, err := l.TryLock(ctx, "h", time.Minute)
	require.NoError(t, err)
	got := make(chan *locker.Lock[string], 1)
	go func() {
		lk, err := l.LockWithRenewal(ctx, "h", 20*time.Second)
		assert.NoError(t, err)
		got <- lk
	}()
	waitQueued(t, store, "h", 1)
	rec.take()
	require.NoError(t, holder.Release(ctx))
	lk := <-got
	require.NotNil(t, lk)
	rec.waitFor(t, "end lock_with_renewal h ok fenced pos=0 waited handoff")
	lines := rec.take()
	// The release and the waiter's end interleave; the waiter's events
	// come in order: held, handoff, end.
	var waiter []string
	for _, line := range lines {
		if !strings.Contains(line, "release") {
			waiter = append(waiter, line)
		}
	}
	assert.Equal(t, []string{"held h", "handoff h", "end lock_with_renewal h ok fenced pos=0 waited handoff"}, waiter)
	assert.Contains(t, lines, "released h")
	require.NoError(t, lk.Release(ctx))
}

func TestObserverSeesStoreErrors(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	c := store.Client()
	rec := &recorder{}
	l, err := locker.New(c, locker.Options[string]{Mode: locker.Barging, Observer: rec})
	require.NoError(t, err)
	held, err := l.TryLock(ctx, "s", time.Minute)
	require.NoError(t, err)
	c.Kill()
	require.ErrorIs(t, held.Release(ctx), locker.ErrBackend)
	_, err = l.TryLock(ctx, "s", time.Minute)
	require.ErrorIs(t, err, locker.ErrBackend)
	lines := rec.take()
	require.Greater(t, len(lines), 10, "%q", lines)
	assert.Equal(t, []string{
		"start trylock s", "held s", "end trylock s ok fenced",
		"start release s", "store_error s release", "released s", "end release s store_error fenced",
		// The failed attempt may have taken the lock: the clean-up tries to
		// undo it, fails too, and is left to background retries, which
		// fail as well, before or after the call ends.
		"start trylock s", "store_error s acquire", "store_error s release",
	}, lines[:10])
	var ends int
	for _, line := range lines[10:] {
		if line == "end trylock s store_error" {
			ends++
		} else {
			assert.Equal(t, "store_error s release", line)
		}
	}
	assert.Equal(t, 1, ends, "%q", lines)
	for _, e := range rec.allEvents() {
		if e.Kind == locker.EventStoreError {
			assert.ErrorIs(t, e.Err, memory.ErrKilled)
		}
	}
	require.NoError(t, l.Close())
}

// syncBuffer is a bytes.Buffer safe for the Locker's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) waitFor(t *testing.T, substr string) {
	t.Helper()
	for start := time.Now(); !strings.Contains(s.String(), substr); time.Sleep(2 * time.Millisecond) {
		if time.Since(start) > 20*time.Second {
			t.Fatalf("no %q in the log:\n%s", substr, s.String())
		}
	}
}

func TestLoggerReportsBackgroundEvents(t *testing.T) {
	ctx := context.Background()
	store := memory.New()
	var buf syncBuffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{
		Level:       slog.LevelDebug,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr { return dropTime(a) },
	}))
	c := store.Client()
	l, err := locker.New(c, locker.Options[string]{Mode: locker.Barging, RenewLease: 600 * time.Millisecond, Logger: log})
	require.NoError(t, err)

	// A renewal that fails: logged twice, at Warn.
	_, err = l.LockWithRenewal(ctx, "r", 0)
	require.NoError(t, err)
	store.Wipe("r")
	buf.waitFor(t, `msg="disgo: lock lost" lock=r`)
	out := buf.String()
	assert.Contains(t, out, `level=WARN msg="disgo: renewal failed" lock=r fence=`)
	assert.Regexp(t, `level=WARN msg="disgo: lock lost" lock=r fence=\d+ cause=not_held err=`, out)

	// A clean-up left to background retries: logged at Warn.
	c.Kill()
	_, err = l.TryLock(ctx, "k", time.Minute)
	require.ErrorIs(t, err, locker.ErrBackend)
	buf.waitFor(t, `level=WARN msg="disgo: clean-up of a call that gave up is left to background retries" lock=k`)

	// A loss caused by Close: logged at Debug only.
	l2, err := locker.New(store.Client(), locker.Options[string]{Mode: locker.Barging, Logger: log})
	require.NoError(t, err)
	_, err = l2.TryLock(ctx, "c", time.Minute)
	require.NoError(t, err)
	require.NoError(t, l2.Close())
	assert.Regexp(t, `level=DEBUG msg="disgo: lock lost" lock=c fence=\d+ cause=closed`, buf.String())
	require.NoError(t, l.Close())
	t.Logf("log:\n%s", buf.String())
}

func dropTime(a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}

func TestNoLoggerLogsNothing(t *testing.T) {
	// With no Logger the default slog logger must not hear of anything.
	var buf syncBuffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(prev) })
	store := memory.New()
	l, err := locker.New(store.Client(), locker.Options[string]{Mode: locker.Barging, RenewLease: 600 * time.Millisecond})
	require.NoError(t, err)
	lk, err := l.LockWithRenewal(context.Background(), "r", 0)
	require.NoError(t, err)
	store.Wipe("r")
	<-lk.Done()
	require.ErrorIs(t, lk.Err(), locker.ErrLost)
	require.NoError(t, l.Close())
	assert.Empty(t, buf.String())
}

// BenchmarkObserver measures the cost of an Observer on one uncontended
// TryLock+Release on the memory store: none (the default), and one that
// does nothing.
//
//	go test -run '^$' -bench Observer -benchmem ./locker/
func BenchmarkObserver(b *testing.B) {
	ctx := context.Background()
	for _, c := range []struct {
		name string
		obs  locker.Observer
	}{{"none", nil}, {"nop", locker.NopObserver{}}} {
		b.Run(c.name, func(b *testing.B) {
			l, err := locker.New(memory.New(), locker.Options[string]{Mode: locker.Barging, Observer: c.obs})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			b.ReportAllocs()
			for b.Loop() {
				h, err := l.TryLock(ctx, "bench", time.Minute)
				if err != nil {
					b.Fatal(err)
				}
				if err := h.Release(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
