// Package disgootel bridges disgo's [locker.Observer] hook to
// OpenTelemetry: [New] returns an Observer that records the metrics listed
// below and a span per operation. Set it as locker.Options.Observer.
//
// It is a module of its own (github.com/disgolock/disgo/otel), so that a
// program that uses disgo without OpenTelemetry does not get the
// OpenTelemetry modules in its build or its go.sum.
//
// # Metrics
//
// The names, units and attributes are stable:
//
//	disgo.acquire.duration  histogram, s       outcome, mode   whole TryLock/Lock/LockWithRenewal call
//	disgo.acquire.wait      histogram, s       outcome, mode   time spent waiting for the lock (0: no wait)
//	disgo.holds.active      up-down counter                    holdings now held through the Locker
//	disgo.renewals          counter            outcome         confirmed renewals (ok), renewals given up (failed)
//	disgo.losses            counter            cause           holdings lost: expired, not_held, deadline, superseded, revoked, closed, other
//	disgo.handoffs          counter                            locks taken by a direct grant of the store
//	disgo.lapsed            counter                            acquisitions given back: their lease ended before the answer was seen
//	disgo.store.errors      counter            op              failed store calls: acquire, release, extend, leave, subscribe
//
// outcome is one of ok, not_obtained, not_held, canceled, closed and
// store_error (see [locker.Outcome]); mode is fair or barging.
//
// # Traces
//
// Each TryLock, Lock, LockWithRenewal, Release and Extend that reaches the
// store is a span named disgo.<op> (disgo.trylock, disgo.lock,
// disgo.lock_with_renewal, disgo.release, disgo.extend), a child of the
// span in the caller's ctx, and the parent of the store client's spans.
// Its attributes are disgo.lock.name, disgo.lock.mode, disgo.outcome,
// disgo.fence (once known), disgo.queue.position (when the store reported
// one) and disgo.handoff (true when taken by a direct grant). A store
// failure sets the span's status to Error.
package disgootel

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"

	"github.com/disgolock/disgo/locker"
)

// ScopeName is the instrumentation scope of the meter and the tracer.
const ScopeName = "github.com/disgolock/disgo/otel"

// The metric names.
const (
	MetricAcquireDuration = "disgo.acquire.duration"
	MetricAcquireWait     = "disgo.acquire.wait"
	MetricHoldsActive     = "disgo.holds.active"
	MetricRenewals        = "disgo.renewals"
	MetricLosses          = "disgo.losses"
	MetricHandOffs        = "disgo.handoffs"
	MetricLapsed          = "disgo.lapsed"
	MetricStoreErrors     = "disgo.store.errors"
)

// The span attribute keys.
const (
	AttrLockName      = attribute.Key("disgo.lock.name")
	AttrLockMode      = attribute.Key("disgo.lock.mode")
	AttrOutcome       = attribute.Key("disgo.outcome")
	AttrFence         = attribute.Key("disgo.fence")
	AttrQueuePosition = attribute.Key("disgo.queue.position")
	AttrHandOff       = attribute.Key("disgo.handoff")
)

// DurationBuckets are the bucket boundaries, in seconds, of the two
// histograms: from half a millisecond (a round trip on a local store) to
// five minutes (a long wait).
var DurationBuckets = []float64{
	0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
	1, 2.5, 5, 10, 30, 60, 300,
}

// Options configures [New]. A zero field means its default.
type Options struct {
	// MeterProvider makes the meter. Default: otel.GetMeterProvider().
	MeterProvider metric.MeterProvider
	// TracerProvider makes the tracer. Default: otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
}

// Observer is a [locker.Observer] that records metrics and spans. Make one
// with [New]; one Observer may serve many Lockers. It is safe for
// concurrent use, and its methods never block on anything but the
// OpenTelemetry SDK's own instruments.
type Observer struct {
	tracer trace.Tracer

	duration metric.Float64Histogram
	wait     metric.Float64Histogram
	holds    metric.Int64UpDownCounter
	renewals metric.Int64Counter
	losses   metric.Int64Counter
	handoffs metric.Int64Counter
	lapsed   metric.Int64Counter
	errors   metric.Int64Counter

	// Attribute sets made once, so that recording allocates none.
	byOutcomeMode [nOutcomes][2]metric.MeasurementOption
	renewOK       metric.MeasurementOption
	renewFailed   metric.MeasurementOption
	byCause       [nCauses]metric.MeasurementOption
}

const (
	nOutcomes = int(locker.OutcomeStoreError) + 1
	nCauses   = int(locker.LossRevoked) + 1
)

var _ locker.Observer = (*Observer)(nil)

// New returns an Observer recording through the providers of o. It fails
// only when the meter refuses to make an instrument.
func New(o Options) (*Observer, error) {
	mp, tp := o.MeterProvider, o.TracerProvider
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	m := mp.Meter(ScopeName)
	ob := &Observer{tracer: tp.Tracer(ScopeName)}
	var err error
	if ob.duration, err = m.Float64Histogram(MetricAcquireDuration, metric.WithUnit("s"),
		metric.WithDescription("Duration of TryLock, Lock and LockWithRenewal calls, by outcome and mode."),
		metric.WithExplicitBucketBoundaries(DurationBuckets...)); err != nil {
		return nil, err
	}
	if ob.wait, err = m.Float64Histogram(MetricAcquireWait, metric.WithUnit("s"),
		metric.WithDescription("Time acquiring calls spent waiting for the lock (0 when it was free or the call did not wait), by outcome and mode."),
		metric.WithExplicitBucketBoundaries(DurationBuckets...)); err != nil {
		return nil, err
	}
	if ob.holds, err = m.Int64UpDownCounter(MetricHoldsActive, metric.WithUnit("{hold}"),
		metric.WithDescription("Locks held now through the observed Lockers (re-entries count once).")); err != nil {
		return nil, err
	}
	if ob.renewals, err = m.Int64Counter(MetricRenewals, metric.WithUnit("{renewal}"),
		metric.WithDescription("Lease renewals: ok when confirmed, failed when renewal gave up and the lock was lost.")); err != nil {
		return nil, err
	}
	if ob.losses, err = m.Int64Counter(MetricLosses, metric.WithUnit("{loss}"),
		metric.WithDescription("Held locks lost without a release, by cause.")); err != nil {
		return nil, err
	}
	if ob.handoffs, err = m.Int64Counter(MetricHandOffs, metric.WithUnit("{handoff}"),
		metric.WithDescription("Locks taken by a direct grant of the store (fair hand-off).")); err != nil {
		return nil, err
	}
	if ob.lapsed, err = m.Int64Counter(MetricLapsed, metric.WithUnit("{acquisition}"),
		metric.WithDescription("Acquisitions given back because their lease ended before the store's answer was seen (a stalled process, or a lease shorter than the round trip).")); err != nil {
		return nil, err
	}
	if ob.errors, err = m.Int64Counter(MetricStoreErrors, metric.WithUnit("{error}"),
		metric.WithDescription("Failed store calls, by call.")); err != nil {
		return nil, err
	}
	for oc := range nOutcomes {
		for md, mode := range []locker.Mode{locker.Fair, locker.Barging} {
			ob.byOutcomeMode[oc][md] = metric.WithAttributeSet(attribute.NewSet(
				attribute.String("outcome", locker.Outcome(oc).String()),
				attribute.String("mode", mode.String())))
		}
	}
	ob.renewOK = metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", "ok")))
	ob.renewFailed = metric.WithAttributeSet(attribute.NewSet(attribute.String("outcome", "failed")))
	for c := range nCauses {
		ob.byCause[c] = metric.WithAttributeSet(attribute.NewSet(attribute.String("cause", locker.LossCause(c).String())))
	}
	return ob, nil
}

// OpStart starts the span of the operation; it implements [locker.Observer].
func (o *Observer) OpStart(ctx context.Context, op locker.Operation) context.Context {
	ctx, _ = o.tracer.Start(ctx, "disgo."+op.Op.String(), trace.WithAttributes(
		AttrLockName.String(op.Name),
		AttrLockMode.String(op.Mode.String()),
	))
	return ctx
}

// OpEnd records the acquire histograms and ends the span; it implements
// [locker.Observer].
func (o *Observer) OpEnd(ctx context.Context, r locker.OpResult) {
	if r.Op.Acquiring() {
		attrs := o.outcomeMode(r.Outcome, r.Mode)
		o.duration.Record(ctx, r.Latency.Seconds(), attrs)
		o.wait.Record(ctx, r.Wait.Seconds(), attrs)
	}
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.SetAttributes(AttrOutcome.String(r.Outcome.String()))
	if r.Fence != 0 {
		span.SetAttributes(AttrFence.Int64(r.Fence))
	}
	if r.Position >= 0 {
		span.SetAttributes(AttrQueuePosition.Int(r.Position))
	}
	if r.HandOff {
		span.SetAttributes(AttrHandOff.Bool(true))
	}
	if r.Outcome == locker.OutcomeStoreError && r.Err != nil {
		span.SetStatus(codes.Error, r.Err.Error())
	}
	span.End()
}

// Event counts holdings, renewals, losses, hand-offs and store errors; it
// implements [locker.Observer].
func (o *Observer) Event(e locker.Event) {
	ctx := context.Background()
	switch e.Kind {
	case locker.EventHeld:
		o.holds.Add(ctx, 1)
	case locker.EventReleased:
		o.holds.Add(ctx, -1)
	case locker.EventLost:
		o.holds.Add(ctx, -1)
		c := int(e.Cause)
		if c >= nCauses {
			c = int(locker.LossOther)
		}
		o.losses.Add(ctx, 1, o.byCause[c])
	case locker.EventRenewed:
		o.renewals.Add(ctx, 1, o.renewOK)
	case locker.EventRenewalFailed:
		o.renewals.Add(ctx, 1, o.renewFailed)
	case locker.EventHandOff:
		o.handoffs.Add(ctx, 1)
	case locker.EventLapsed:
		o.lapsed.Add(ctx, 1)
	case locker.EventStoreError:
		o.errors.Add(ctx, 1, metric.WithAttributes(attribute.String("op", e.StoreOp)))
	}
}

func (o *Observer) outcomeMode(oc locker.Outcome, m locker.Mode) metric.MeasurementOption {
	md := 0
	if m == locker.Barging {
		md = 1
	}
	if int(oc) >= nOutcomes {
		oc = locker.OutcomeStoreError
	}
	return o.byOutcomeMode[oc][md]
}
