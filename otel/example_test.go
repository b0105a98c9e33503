package disgootel_test

import (
	"context"
	"fmt"
	"sort"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/disgolock/disgo/backend/memory"
	"github.com/disgolock/disgo/locker"
	disgootel "github.com/disgolock/disgo/otel"
)

// Observe a Locker with OpenTelemetry. A program passes its own meter and
// tracer providers (with their exporters); this one reads the metrics and
// spans back from the SDK's in-memory reader and recorder.
func ExampleNew() {
	ctx := context.Background()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(ctx)
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(ctx)

	obs, err := disgootel.New(disgootel.Options{MeterProvider: mp, TracerProvider: tp})
	if err != nil {
		fmt.Println(err)
		return
	}
	l, err := locker.New(memory.New(), locker.Options[string]{Namespace: "app", Observer: obs})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer l.Close()

	lk, err := l.Lock(ctx, "report", time.Second, time.Minute)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := lk.Release(ctx); err != nil {
		fmt.Println(err)
		return
	}

	for _, s := range spans.Ended() {
		fmt.Println("span", s.Name())
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		fmt.Println(err)
		return
	}
	var names []string
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			names = append(names, m.Name)
		}
	}
	sort.Strings(names)
	fmt.Println("metrics", names)
	// Output:
	// span disgo.lock
	// span disgo.release
	// metrics [disgo.acquire.duration disgo.acquire.wait disgo.holds.active]
}
