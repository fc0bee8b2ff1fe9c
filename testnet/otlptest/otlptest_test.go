package otlptest_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/loadswarm/loadswarm/testnet/otlptest"
)

// TestReceiver sends a span and metrics through the SDK's OTLP/gRPC
// exporters and reads them back.
func TestReceiver(t *testing.T) {
	r := otlptest.Start(t)
	ctx := context.Background()
	res := resource.NewSchemaless(attribute.String("service.name", "probe"))

	texp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(r.Addr()), otlptracegrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(texp), sdktrace.WithResource(res))
	start := time.Now().Add(-time.Second).Truncate(time.Microsecond)
	_, sp := tp.Tracer("probe").Start(ctx, "GET /", trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(start),
		trace.WithAttributes(attribute.Int("http.response.status_code", 200), attribute.String("k", "v")))
	sp.End(trace.WithTimestamp(start.Add(time.Millisecond)))
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	spans := r.Spans()
	if len(spans) != 1 {
		t.Fatalf("%d spans", len(spans))
	}
	got := spans[0]
	sc := sp.SpanContext()
	if got.TraceID != [16]byte(sc.TraceID()) || got.SpanID != [8]byte(sc.SpanID()) || got.Name != "GET /" || got.Kind != "Client" ||
		!got.Start.Equal(start) || got.End.Sub(got.Start) != time.Millisecond || got.Attrs["http.response.status_code"] != int64(200) ||
		got.Attrs["k"] != "v" || got.Resource["service.name"] != "probe" || got.Scope != "probe" {
		t.Fatalf("span %+v", got)
	}

	mexp, err := otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithEndpoint(r.Addr()), otlpmetricgrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(mexp)), sdkmetric.WithResource(res))
	mt := mp.Meter("probe")
	c, _ := mt.Int64Counter("requests")
	h, _ := mt.Float64Histogram("latency", metric.WithUnit("s"), metric.WithExplicitBucketBoundaries(0.1, 1))
	g, _ := mt.Float64Gauge("temp")
	c.Add(ctx, 3, metric.WithAttributes(attribute.String("step", "a")))
	c.Add(ctx, 4, metric.WithAttributes(attribute.String("step", "b")))
	h.Record(ctx, 0.5, metric.WithAttributes(attribute.String("step", "a")))
	g.Record(ctx, 21.5)
	if err := mp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if names := r.MetricNames(); len(names) != 3 || names[0] != "latency" || names[1] != "requests" || names[2] != "temp" {
		t.Fatalf("metric names %v", names)
	}
	if p, ok := r.Latest("requests", map[string]any{"step": "b"}); !ok || p.Value != 4 || p.Type != "Sum" || p.Temporality != "Cumulative" || p.Resource["service.name"] != "probe" {
		t.Fatalf("requests{step=b}: %+v %v", p, ok)
	}
	if p, ok := r.Latest("latency", map[string]any{"step": "a"}); !ok || p.Count != 1 || p.Sum != 0.5 || len(p.Buckets) != 3 || p.Buckets[1] != 1 || p.Unit != "s" {
		t.Fatalf("latency: %+v %v", p, ok)
	}
	if p, ok := r.Latest("temp", nil); !ok || p.Value != 21.5 || p.Type != "Gauge" {
		t.Fatalf("temp: %+v %v", p, ok)
	}
	if tr, m := r.Requests(); tr != 1 || m != 1 {
		t.Fatalf("requests: %d traces, %d metrics", tr, m)
	}
}

// TestReceiverDelay: a slow receiver holds an export until its caller
// gives up.
func TestReceiverDelay(t *testing.T) {
	r := otlptest.Start(t)
	r.SetDelay(time.Hour)
	ctx := context.Background()
	texp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(r.Addr()), otlptracegrpc.WithInsecure(),
		otlptracegrpc.WithTimeout(200*time.Millisecond), otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}))
	if err != nil {
		t.Fatal(err)
	}
	defer texp.Shutdown(ctx)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(texp))
	start := time.Now()
	_, sp := tp.Tracer("probe").Start(ctx, "x")
	sp.End()
	if d := time.Since(start); d < 150*time.Millisecond || d > 5*time.Second {
		t.Fatalf("export took %s", d)
	}
	if n := len(r.Spans()); n != 0 {
		t.Fatalf("%d spans accepted", n)
	}
}
