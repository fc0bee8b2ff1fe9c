package testnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Tracing in the shop. The gateway continues the W3C trace context of each
// request (traceparent, tracestate): a server span for the request, and
// under it a client span per call to a service, one per attempt when the
// gateway retries, so one trace shows which service was slow and where
// the time went (queue wait or work). Without a valid traceparent the
// gateway starts a trace of its own.
//
// Spans are exported only with TargetConfig.OTLPEndpoint; otherwise the
// tracer is a no-op. Whatever the tracing, the gateway counts the trace
// context requests arrive with (TraceParentStats).

// Span attributes of a service call.
const (
	AttrService   = "shop.service"       // catalog, cart or payments
	AttrAttempt   = "shop.attempt"       // 1 for the first try, 2 for the first retry, ...
	AttrQueueWait = "shop.queue_wait_ms" // time waiting for a free replica, ms (float)
	AttrOutcome   = "shop.outcome"       // an Outcome* value
)

// Outcomes of one call to a service (AttrOutcome).
const (
	OutcomeOK         = "ok"
	OutcomeFailed     = "failed"     // an injected failure
	OutcomeOverloaded = "overloaded" // the queue was full: refused at once
	OutcomeTimeout    = "timeout"    // no answer within the retry policy's timeout
	OutcomeShutdown   = "shutdown"   // the shop was closing
)

// TraceParent states: what the traceparent header of a request was.
const (
	TraceSampled   = "sampled"   // valid, with the sampled flag
	TraceUnsampled = "unsampled" // valid, without it
	TraceAbsent    = "absent"    // no traceparent header
	TraceInvalid   = "invalid"   // a traceparent header that does not parse
)

// Indices of the states in traceStates and Target.traceCount.
const (
	stSampled = iota
	stUnsampled
	stAbsent
	stInvalid
)

var traceStates = [...]string{stSampled: TraceSampled, stUnsampled: TraceUnsampled, stAbsent: TraceAbsent, stInvalid: TraceInvalid}

// TraceParentStats counts requests by the trace context they arrived with.
// Every request the gateway serves counts, except its own operational
// endpoints (GET /health, /stats, /metrics: readiness probes and scrapes
// carry no trace context), so that "traceparent on every request" reads
// Absent == 0 && Invalid == 0.
type TraceParentStats struct {
	Sampled   int64 `json:"sampled"`
	Unsampled int64 `json:"unsampled"`
	Absent    int64 `json:"absent"`
	Invalid   int64 `json:"invalid"`
}

// Total is the number of requests counted.
func (s TraceParentStats) Total() int64 { return s.Sampled + s.Unsampled + s.Absent + s.Invalid }

// tracerName is the instrumentation scope of the shop's spans.
const tracerName = "github.com/loadswarm/loadswarm/testnet"

// newTracing returns the shop's tracer and, when spans are exported, the
// provider to shut down on Close (nil otherwise).
func newTracing(cfg TargetConfig) (trace.Tracer, *sdktrace.TracerProvider, error) {
	if cfg.OTLPEndpoint == "" {
		return noop.NewTracerProvider().Tracer(tracerName), nil, nil
	}
	// grpc.NewClient underneath: no dial here, the first export connects.
	exp, err := otlptracegrpc.New(context.Background(),
		otlptracegrpc.WithEndpoint(cfg.OTLPEndpoint), otlptracegrpc.WithInsecure())
	if err != nil {
		return nil, nil, fmt.Errorf("target: otlp exporter: %w", err)
	}
	// Parent-based: a request's spans are recorded when its caller sampled
	// it (and when it comes without a trace). TraceAll records them all,
	// as a collector that samples on whole traces (tail sampling) needs.
	sampler := sdktrace.ParentBased(sdktrace.AlwaysSample())
	if cfg.TraceAll {
		sampler = sdktrace.AlwaysSample()
	}
	tp := sdktrace.NewTracerProvider(
		// The batcher's queue drops spans when full: export never blocks a
		// request. The SDK's default (2048 spans) overflows at a few
		// hundred requests a second with --trace-all (2-4 spans each), so
		// the queue holds a few seconds of that and batches are larger.
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second),
			sdktrace.WithMaxQueueSize(1<<16), sdktrace.WithMaxExportBatchSize(4096)),
		sdktrace.WithSampler(sampler),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "shop"))),
	)
	return tp.Tracer(tracerName), tp, nil
}

// validateOTLPEndpoint wants host:port.
func validateOTLPEndpoint(ep string) error {
	if ep == "" {
		return nil
	}
	if _, port, err := net.SplitHostPort(ep); err != nil || port == "" || strings.Contains(ep, "/") {
		return fmt.Errorf("otlp endpoint %q: want host:port, e.g. 127.0.0.1:4317", ep)
	}
	return nil
}

// opsPath reports whether path is one of the gateway's own operational
// endpoints, which are neither traced nor counted.
func opsPath(path string) bool {
	return path == "/health" || path == "/stats" || path == "/metrics"
}

// route is the route a path matches, for span names: "/items/{id}" rather
// than one name per item. "" for no route.
func route(path string) string {
	switch {
	case path == "/" || path == "/items" || path == "/login" || path == "/cart" || path == "/checkout":
		return path
	case strings.HasPrefix(path, "/items/"):
		return "/items/{id}"
	}
	return ""
}

// startRequest reads the request's trace context, counts it, and starts
// the gateway's server span under it (a root span without one). For the
// operational endpoints it returns the request's context and a nil span.
func (t *Target) startRequest(r *http.Request) (context.Context, trace.Span) {
	ctx := r.Context()
	if opsPath(r.URL.Path) {
		return ctx, nil
	}
	ctx = propagation.TraceContext{}.Extract(ctx, propagation.HeaderCarrier(r.Header))
	state := stSampled
	switch sc := trace.SpanContextFromContext(ctx); {
	case len(r.Header.Values("Traceparent")) == 0:
		state = stAbsent
	case !sc.IsValid():
		state = stInvalid
	case !sc.IsSampled():
		state = stUnsampled
	}
	t.traceCount[state].Add(1)
	t.traceTotal[state].Inc()

	name := r.Method
	if rt := route(r.URL.Path); rt != "" {
		name += " " + rt
	}
	ctx, span := t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer))
	if span.IsRecording() {
		span.SetAttributes(
			attribute.String("http.request.method", r.Method),
			attribute.String("url.path", r.URL.Path),
			attribute.String("shop.traceparent", traceStates[state]),
		)
		if rt := route(r.URL.Path); rt != "" {
			span.SetAttributes(attribute.String("http.route", rt))
		}
	}
	return ctx, span
}

// endRequest ends the gateway span with the response's status.
func endRequest(span trace.Span, code int) {
	if span == nil {
		return
	}
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("http.response.status_code", code))
		if code >= 500 {
			span.SetStatus(codes.Error, http.StatusText(code))
		}
	}
	span.End()
}

// startCall starts the span of one attempt on a service.
func (t *Target) startCall(ctx context.Context, name string, attempt int) trace.Span {
	_, span := t.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient))
	if span.IsRecording() {
		span.SetAttributes(attribute.String(AttrService, name), attribute.Int(AttrAttempt, attempt))
	}
	return span
}

// endCall ends an attempt's span: its outcome and queue wait.
func endCall(span trace.Span, outcome string, queueWait time.Duration, why string) {
	if span.IsRecording() {
		span.SetAttributes(attribute.String(AttrOutcome, outcome),
			attribute.Float64(AttrQueueWait, float64(queueWait)/float64(time.Millisecond)))
		if outcome != OutcomeOK {
			span.SetStatus(codes.Error, why)
		}
	}
	span.End()
}

// outcomeOf names the result of service.do.
func outcomeOf(err error) string {
	switch {
	case err == nil:
		return OutcomeOK
	case errors.Is(err, errOverloaded):
		return OutcomeOverloaded
	case errors.Is(err, errFailed):
		return OutcomeFailed
	}
	return OutcomeShutdown
}
