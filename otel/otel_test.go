package disgootel_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/goleak"

	"github.com/disgolock/disgo/backend/memory"
	"github.com/disgolock/disgo/locker"
	"github.com/disgolock/disgo/locker/driver"
	disgootel "github.com/disgolock/disgo/otel"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// harness is an Observer recording into an in-memory reader and span
// recorder.
type harness struct {
	reader *sdkmetric.ManualReader
	spans  *tracetest.SpanRecorder
	obs    *disgootel.Observer
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{reader: sdkmetric.NewManualReader(), spans: tracetest.NewSpanRecorder()}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(h.reader))
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(h.spans))
	t.Cleanup(func() {
		_ = mp.Shutdown(context.Background())
		_ = tp.Shutdown(context.Background())
	})
	obs, err := disgootel.New(disgootel.Options{MeterProvider: mp, TracerProvider: tp})
	require.NoError(t, err)
	h.obs = obs
	return h
}

func (h *harness) locker(t *testing.T, b *memory.Client, opts locker.Options[string]) *locker.Locker[string] {
	t.Helper()
	opts.Observer = h.obs
	l, err := locker.New(b, opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// metrics collects every metric, by name.
func (h *harness) metrics(t *testing.T) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	require.NoError(t, h.reader.Collect(context.Background(), &rm))
	out := make(map[string]metricdata.Metrics)
	for _, sm := range rm.ScopeMetrics {
		assert.Equal(t, disgootel.ScopeName, sm.Scope.Name)
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

func attrString(s attribute.Set) string {
	var parts []string
	for _, kv := range s.ToSlice() {
		parts = append(parts, string(kv.Key)+"="+kv.Value.String())
	}
	return strings.Join(parts, ",")
}

// points returns the data points of m by their attributes ("k=v,..."):
// a sum's value, or a histogram's count.
func points(m metricdata.Metrics) map[string]int64 {
	out := make(map[string]int64)
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			out[attrString(p.Attributes)] += p.Value
		}
	case metricdata.Histogram[float64]:
		for _, p := range d.DataPoints {
			out[attrString(p.Attributes)] += int64(p.Count)
		}
	}
	return out
}

// eventually polls cond until it holds or a generous limit passes; the
// limit only bounds a failing test, nothing is timed.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for start := time.Now(); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Since(start) > 20*time.Second {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func waitDone(t *testing.T, lk *locker.Lock[string], what string) {
	t.Helper()
	select {
	case <-lk.Done():
	case <-time.After(20 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}

// waitQueued waits until name has n waiters in the store's fair queue.
func waitQueued(t *testing.T, s *memory.Store, name string, n int) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d waiter(s) on %s", n, name), func() bool {
		q, err := s.InspectQueue(context.Background(), name)
		return err == nil && len(q) == n
	})
}

// handOff has holder hold name while waiter waits for it with
// LockWithRenewal, then releases it, so that the store grants it to the
// waiter directly. It returns the waiter's handle.
func handOff(t *testing.T, s *memory.Store, holder, waiter *locker.Locker[string], name string) *locker.Lock[string] {
	t.Helper()
	ctx := context.Background()
	first, err := holder.TryLock(ctx, name, time.Minute)
	require.NoError(t, err)
	got := make(chan *locker.Lock[string], 1)
	errs := make(chan error, 1)
	go func() {
		lk, err := waiter.LockWithRenewal(ctx, name, 20*time.Second)
		if err != nil {
			errs <- err
			return
		}
		got <- lk
	}()
	waitQueued(t, s, name, 1)
	require.NoError(t, first.Release(ctx))
	select {
	case lk := <-got:
		assert.Greater(t, lk.Fence(), first.Fence())
		return lk
	case err := <-errs:
		t.Fatalf("waiter: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("timed out waiting for the hand-off")
	}
	return nil
}

// waitLosses waits until the losses counter reaches n.
func waitLosses(t *testing.T, h *harness, n int64) {
	t.Helper()
	eventually(t, fmt.Sprintf("%d losses", n), func() bool {
		var sum int64
		for _, v := range points(h.metrics(t)[disgootel.MetricLosses]) {
			sum += v
		}
		return sum >= n
	})
}

// TestMetrics exercises every metric of the bridge against the memory
// store and checks the data points of each; the metric names and points
// are logged (go test -v -run TestMetrics ./...).
func TestMetrics(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	store := memory.New()
	a := h.locker(t, store.Client(), locker.Options[string]{RenewLease: 60 * time.Millisecond})
	b := h.locker(t, store.Client(), locker.Options[string]{RenewLease: 3 * time.Second}) // a grant lease of 3s: taken, not claimed
	c := h.locker(t, store.Client(), locker.Options[string]{Mode: locker.Barging})
	dc := store.Client()
	d := h.locker(t, dc, locker.Options[string]{Mode: locker.Barging})

	// acquire ok and not_obtained; a hand-off to b, whose lease is then renewed.
	held := handOff(t, store, a, b, "x")
	_, err := a.TryLock(ctx, "x", time.Minute)
	require.ErrorIs(t, err, locker.ErrNotObtained)
	eventually(t, "a confirmed renewal", func() bool {
		return points(h.metrics(t)[disgootel.MetricRenewals])["outcome=ok"] >= 1
	})
	// The store forgets b's lock: the next renewal fails and the lock is lost.
	store.Wipe("x")
	waitDone(t, held, "the loss of x")
	require.ErrorIs(t, held.Err(), locker.ErrLost)
	waitLosses(t, h, 1) // the Observer hears of a loss just after Done closes
	// A fixed lease that runs out.
	short, err := a.TryLock(ctx, "y", 20*time.Millisecond)
	require.NoError(t, err)
	waitDone(t, short, "the expiry of y")
	waitLosses(t, h, 2)
	// A lock held at collection time.
	kept, err := c.TryLock(ctx, "kept", time.Minute)
	require.NoError(t, err)
	// A store that fails.
	dc.Kill()
	_, err = d.TryLock(ctx, "z", time.Minute)
	require.ErrorIs(t, err, locker.ErrBackend)

	ms := h.metrics(t)
	want := map[string]map[string]int64{
		disgootel.MetricAcquireDuration: {
			"mode=fair,outcome=ok":             3, // a x, b x (hand-off), a y
			"mode=fair,outcome=not_obtained":   1,
			"mode=barging,outcome=ok":          1,
			"mode=barging,outcome=store_error": 1,
		},
		disgootel.MetricHoldsActive: {"": 1},
		disgootel.MetricLosses:      {"cause=not_held": 1, "cause=expired": 1},
		disgootel.MetricHandOffs:    {"": 1},
	}
	want[disgootel.MetricAcquireWait] = want[disgootel.MetricAcquireDuration]
	names := []string{
		disgootel.MetricAcquireDuration, disgootel.MetricAcquireWait, disgootel.MetricHoldsActive,
		disgootel.MetricRenewals, disgootel.MetricLosses, disgootel.MetricHandOffs, disgootel.MetricStoreErrors,
	}
	for _, name := range names {
		m, ok := ms[name]
		if !assert.True(t, ok, "metric %s not recorded", name) {
			continue
		}
		got := points(m)
		t.Logf("%-24s unit %-10q %v", name, m.Unit, got)
		switch name {
		case disgootel.MetricRenewals:
			assert.GreaterOrEqual(t, got["outcome=ok"], int64(1), name)
			assert.Equal(t, int64(1), got["outcome=failed"], name)
			continue
		case disgootel.MetricStoreErrors:
			// The failed attempt, then the clean-up of what it may have
			// taken, retried in the background while the client is dead.
			assert.Equal(t, int64(1), got["op=acquire"], name)
			assert.GreaterOrEqual(t, got["op=release"], int64(1), name)
			assert.Len(t, got, 2, name)
			continue
		}
		assert.Equal(t, want[name], got, name)
	}
	assert.Len(t, ms, len(names), "metrics other than the documented ones")
	assert.Equal(t, "s", ms[disgootel.MetricAcquireDuration].Unit)
	assert.Equal(t, "s", ms[disgootel.MetricAcquireWait].Unit)

	// The hand-off waited; the TryLocks did not.
	wait := ms[disgootel.MetricAcquireWait].Data.(metricdata.Histogram[float64])
	var waited float64
	for _, p := range wait.DataPoints {
		waited += p.Sum
	}
	assert.Greater(t, waited, 0.0, "no wait recorded for the hand-off")
	require.NoError(t, kept.Release(ctx))
	assert.Equal(t, map[string]int64{"": 0}, points(h.metrics(t)[disgootel.MetricHoldsActive]))
}

func spanAttrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	out := make(map[attribute.Key]attribute.Value)
	for _, kv := range s.Attributes() {
		out[kv.Key] = kv.Value
	}
	return out
}

func endedSpans(h *harness) []sdktrace.ReadOnlySpan {
	spans := h.spans.Ended()
	sort.SliceStable(spans, func(i, j int) bool { return spans[i].StartTime().Before(spans[j].StartTime()) })
	return spans
}

// TestSpans checks the span of each operation and its attributes.
func TestSpans(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	store := memory.New()
	l := h.locker(t, store.Client(), locker.Options[string]{Namespace: "ns"})

	lk, err := l.Lock(ctx, "a", time.Second, time.Minute)
	require.NoError(t, err)
	require.NoError(t, lk.Extend(ctx, 2*time.Minute))
	require.NoError(t, lk.Release(ctx))
	require.ErrorIs(t, lk.Extend(ctx, time.Minute), locker.ErrNotHeld) // rejected before the store: no span
	require.ErrorIs(t, lk.Release(ctx), locker.ErrNotHeld)             // likewise
	try, err := l.TryLock(ctx, "b", time.Minute)
	require.NoError(t, err)
	_, err = l.TryLock(ctx, "b", time.Minute) // another owner: not obtained
	require.ErrorIs(t, err, locker.ErrNotObtained)
	// The store no longer names the owner: Extend fails with not_held.
	store.Wipe("ns:b")
	require.ErrorIs(t, try.Extend(ctx, time.Minute), locker.ErrNotHeld)

	spans := endedSpans(h)
	type want struct {
		name    string
		lock    string
		outcome string
		fence   bool
	}
	wants := []want{
		{"disgo.lock", "ns:a", "ok", true},
		{"disgo.extend", "ns:a", "ok", true},
		{"disgo.release", "ns:a", "ok", true},
		{"disgo.trylock", "ns:b", "ok", true},
		{"disgo.trylock", "ns:b", "not_obtained", false},
		{"disgo.extend", "ns:b", "not_held", true},
	}
	require.Len(t, spans, len(wants))
	for i, w := range wants {
		s := spans[i]
		at := spanAttrs(s)
		t.Logf("%-14s %v", s.Name(), s.Attributes())
		assert.Equal(t, w.name, s.Name(), "span %d", i)
		assert.Equal(t, w.lock, at[disgootel.AttrLockName].AsString(), "span %d", i)
		assert.Equal(t, "fair", at[disgootel.AttrLockMode].AsString(), "span %d", i)
		assert.Equal(t, w.outcome, at[disgootel.AttrOutcome].AsString(), "span %d", i)
		_, hasFence := at[disgootel.AttrFence]
		assert.Equal(t, w.fence, hasFence, "span %d: fence attribute", i)
		_, hasPos := at[disgootel.AttrQueuePosition]
		assert.False(t, hasPos, "span %d: nobody queued", i)
	}
	assert.Equal(t, lk.Fence(), spanAttrs(spans[0])[disgootel.AttrFence].AsInt64())
	assert.Equal(t, try.Fence(), spanAttrs(spans[3])[disgootel.AttrFence].AsInt64())
}

// TestSpanParent checks that an operation's span is a child of the span in
// the caller's ctx.
func TestSpanParent(t *testing.T) {
	h := newHarness(t)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(h.spans))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	ctx, parent := tp.Tracer("test").Start(context.Background(), "request")
	l := h.locker(t, memory.New().Client(), locker.Options[string]{Mode: locker.Barging})
	lk, err := l.TryLock(ctx, "a", time.Minute)
	require.NoError(t, err)
	require.NoError(t, lk.Release(ctx))
	parent.End()
	spans := endedSpans(h)
	require.Len(t, spans, 3)
	for _, s := range spans[1:] {
		assert.Equal(t, parent.SpanContext().SpanID(), s.Parent().SpanID(), s.Name())
		assert.Equal(t, "barging", spanAttrs(s)[disgootel.AttrLockMode].AsString())
	}
}

// TestHandOff checks a fair hand-off: the handoffs counter, and the
// waiter's span with its queue position and the hand-off attribute.
func TestHandOff(t *testing.T) {
	h := newHarness(t)
	store := memory.New()
	a := h.locker(t, store.Client(), locker.Options[string]{})
	b := h.locker(t, store.Client(), locker.Options[string]{})
	lk := handOff(t, store, a, b, "h")
	require.NoError(t, lk.Release(context.Background()))

	assert.Equal(t, map[string]int64{"": 1}, points(h.metrics(t)[disgootel.MetricHandOffs]))
	var found bool
	for _, s := range endedSpans(h) {
		if s.Name() != "disgo.lock_with_renewal" {
			continue
		}
		found = true
		at := spanAttrs(s)
		assert.Equal(t, "ok", at[disgootel.AttrOutcome].AsString())
		assert.True(t, at[disgootel.AttrHandOff].AsBool(), "disgo.handoff")
		assert.Equal(t, int64(0), at[disgootel.AttrQueuePosition].AsInt64(), "the waiter was at the head")
		assert.Equal(t, lk.Fence(), at[disgootel.AttrFence].AsInt64())
	}
	assert.True(t, found, "no span of the waiter")
}

// TestLoss checks losses by cause and the renewal failure that comes
// before a loss of an auto-renewed lock.
func TestLoss(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	store := memory.New()
	l := h.locker(t, store.Client(), locker.Options[string]{Mode: locker.Barging, RenewLease: 600 * time.Millisecond})

	renewed, err := l.LockWithRenewal(ctx, "r", 0)
	require.NoError(t, err)
	store.Wipe("r")
	waitDone(t, renewed, "the loss of r")
	waitLosses(t, h, 1)
	fixed, err := l.TryLock(ctx, "f", 10*time.Millisecond)
	require.NoError(t, err)
	waitDone(t, fixed, "the expiry of f")
	waitLosses(t, h, 2)
	// An operator forces a renewed lock out: its next renewal learns of it.
	revoked, err := l.LockWithRenewal(ctx, "v", 0)
	require.NoError(t, err)
	op := h.locker(t, store.Client(), locker.Options[string]{Mode: locker.Barging})
	require.NoError(t, op.ForceRelease(ctx, "v"))
	waitDone(t, revoked, "the revocation of v")
	require.ErrorIs(t, revoked.Err(), locker.ErrRevoked)
	waitLosses(t, h, 3)
	open, err := l.TryLock(ctx, "c", time.Minute)
	require.NoError(t, err)
	require.NoError(t, l.Close())
	waitDone(t, open, "the loss of c at Close")

	ms := h.metrics(t)
	assert.Equal(t, map[string]int64{"cause=not_held": 1, "cause=expired": 1, "cause=revoked": 1, "cause=closed": 1}, points(ms[disgootel.MetricLosses]))
	assert.Equal(t, int64(2), points(ms[disgootel.MetricRenewals])["outcome=failed"])
	assert.Equal(t, map[string]int64{"": 0}, points(ms[disgootel.MetricHoldsActive]))
}

// slowClient is a memory client whose first acquisition is answered after
// a delay longer than the lease, as when the process stalls.
type slowClient struct {
	*memory.Client
	delay time.Duration
	once  bool
}

func (c *slowClient) Acquire(ctx context.Context, req driver.AcquireRequest) (driver.AcquireResult, error) {
	res, err := c.Client.Acquire(ctx, req)
	if !c.once {
		c.once = true
		time.Sleep(c.delay)
	}
	return res, err
}

// TestLapsed checks the lapsed counter: a TryLock whose answer came after
// its lease ended fails with ErrNotObtained, and is counted once.
func TestLapsed(t *testing.T) {
	h := newHarness(t)
	store := memory.New()
	l, err := locker.New[string](&slowClient{Client: store.Client(), delay: 30 * time.Millisecond},
		locker.Options[string]{Mode: locker.Barging, Observer: h.obs})
	require.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })

	_, err = l.TryLock(context.Background(), "s", 10*time.Millisecond)
	require.ErrorIs(t, err, locker.ErrNotObtained)
	m := h.metrics(t)
	assert.Equal(t, map[string]int64{"": 1}, points(m[disgootel.MetricLapsed]))
	assert.Equal(t, map[string]int64{"mode=barging,outcome=not_obtained": 1}, points(m[disgootel.MetricAcquireDuration]))
}
