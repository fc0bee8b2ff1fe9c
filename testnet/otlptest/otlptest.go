// Package otlptest is a real OTLP/gRPC receiver for tests: it serves the
// collector's trace and metric services (the pdata ptraceotlp and
// pmetricotlp gRPC servers, the same protocol a collector speaks) on
// 127.0.0.1, and keeps what arrives for the test to read.
//
// It stands alone (no package of this module below it), so that any
// package's tests may use it.
package otlptest

import (
	"context"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
)

// Span is one span as received.
type Span struct {
	TraceID       [16]byte
	SpanID        [8]byte
	ParentSpanID  [8]byte // zero for a root span
	Name          string
	Kind          string // "Client", "Server", ... (ptrace.SpanKind's String)
	Start, End    time.Time
	Status        string // "Unset", "Ok" or "Error"
	StatusMessage string
	Attrs         map[string]any // the span's attributes, as pcommon.Value.AsRaw gives them
	Resource      map[string]any
	Scope         string
}

// Point is one metric data point as received.
type Point struct {
	Metric      string
	Type        string // "Sum", "Gauge", "Histogram", ...
	Unit        string
	Temporality string // "Cumulative" or "Delta" for sums and histograms
	Attrs       map[string]any
	Resource    map[string]any
	Start, Time time.Time
	Value       float64 // a sum's or a gauge's value
	Count       uint64  // a histogram's count
	Sum         float64 // a histogram's sum
	Bounds      []float64
	Buckets     []uint64
	Exemplars   []Exemplar // a histogram's
}

// Exemplar is one exemplar of a data point.
type Exemplar struct {
	TraceID [16]byte
	SpanID  [8]byte
	Value   float64
	Time    time.Time
}

// Receiver is a running OTLP/gRPC receiver. Its accessors are safe for
// concurrent use.
type Receiver struct {
	addr string
	srv  *grpc.Server

	mu             sync.Mutex
	spans          []Span
	points         []Point
	traceRequests  int
	metricRequests int
	delay          time.Duration
}

// Start starts a receiver on 127.0.0.1:0; t.Cleanup stops it.
func Start(t testing.TB) *Receiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("otlptest: listen: %v", err)
	}
	r := &Receiver{addr: ln.Addr().String(), srv: grpc.NewServer()}
	ptraceotlp.RegisterGRPCServer(r.srv, &traceServer{r: r})
	pmetricotlp.RegisterGRPCServer(r.srv, &metricServer{r: r})
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = r.srv.Serve(ln)
	}()
	t.Cleanup(func() {
		r.srv.Stop()
		<-done
	})
	return r
}

// Addr is the receiver's host:port (an OTLP/gRPC endpoint, plaintext).
func (r *Receiver) Addr() string { return r.addr }

// SetDelay makes every export wait d (or until its caller gives up) before
// it is accepted: a slow collector.
func (r *Receiver) SetDelay(d time.Duration) {
	r.mu.Lock()
	r.delay = d
	r.mu.Unlock()
}

// Spans returns a copy of every span received, in order of arrival.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.spans)
}

// Points returns a copy of every metric data point received, in order of
// arrival (a cumulative metric appears once per export).
func (r *Receiver) Points() []Point {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.points)
}

// MetricNames returns the names of the metrics received, sorted, each once.
func (r *Receiver) MetricNames() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var names []string
	for _, p := range r.points {
		names = append(names, p.Metric)
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// Latest returns the last point received of the metric whose attributes
// include every one of attrs (compared with ==), and whether there is one.
func (r *Receiver) Latest(metric string, attrs map[string]any) (Point, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.points) - 1; i >= 0; i-- {
		p := r.points[i]
		if p.Metric == metric && matches(p.Attrs, attrs) {
			return p, true
		}
	}
	return Point{}, false
}

func matches(have, want map[string]any) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// Requests returns how many trace and metric export requests came.
func (r *Receiver) Requests() (traces, metrics int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.traceRequests, r.metricRequests
}

func (r *Receiver) wait(ctx context.Context) {
	r.mu.Lock()
	d := r.delay
	r.mu.Unlock()
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

type traceServer struct {
	ptraceotlp.UnimplementedGRPCServer
	r *Receiver
}

func (s *traceServer) Export(ctx context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	s.r.wait(ctx)
	if err := ctx.Err(); err != nil {
		return ptraceotlp.NewExportResponse(), err
	}
	var got []Span
	rss := req.Traces().ResourceSpans()
	for i := range rss.Len() {
		rs := rss.At(i)
		res := rs.Resource().Attributes().AsRaw()
		for j := range rs.ScopeSpans().Len() {
			ss := rs.ScopeSpans().At(j)
			for k := range ss.Spans().Len() {
				got = append(got, spanOf(ss.Spans().At(k), res, ss.Scope().Name()))
			}
		}
	}
	s.r.mu.Lock()
	s.r.traceRequests++
	s.r.spans = append(s.r.spans, got...)
	s.r.mu.Unlock()
	return ptraceotlp.NewExportResponse(), nil
}

func spanOf(sp ptrace.Span, res map[string]any, scope string) Span {
	return Span{
		TraceID: sp.TraceID(), SpanID: sp.SpanID(), ParentSpanID: sp.ParentSpanID(),
		Name: sp.Name(), Kind: sp.Kind().String(),
		Start: sp.StartTimestamp().AsTime(), End: sp.EndTimestamp().AsTime(),
		Status: sp.Status().Code().String(), StatusMessage: sp.Status().Message(),
		Attrs: sp.Attributes().AsRaw(), Resource: res, Scope: scope,
	}
}

type metricServer struct {
	pmetricotlp.UnimplementedGRPCServer
	r *Receiver
}

func (s *metricServer) Export(ctx context.Context, req pmetricotlp.ExportRequest) (pmetricotlp.ExportResponse, error) {
	s.r.wait(ctx)
	if err := ctx.Err(); err != nil {
		return pmetricotlp.NewExportResponse(), err
	}
	var got []Point
	rms := req.Metrics().ResourceMetrics()
	for i := range rms.Len() {
		rm := rms.At(i)
		res := rm.Resource().Attributes().AsRaw()
		for j := range rm.ScopeMetrics().Len() {
			sm := rm.ScopeMetrics().At(j)
			for k := range sm.Metrics().Len() {
				got = append(got, pointsOf(sm.Metrics().At(k), res)...)
			}
		}
	}
	s.r.mu.Lock()
	s.r.metricRequests++
	s.r.points = append(s.r.points, got...)
	s.r.mu.Unlock()
	return pmetricotlp.NewExportResponse(), nil
}

func pointsOf(m pmetric.Metric, res map[string]any) []Point {
	base := Point{Metric: m.Name(), Type: m.Type().String(), Unit: m.Unit(), Resource: res}
	var out []Point
	number := func(dps pmetric.NumberDataPointSlice, temporality string) {
		for i := range dps.Len() {
			dp := dps.At(i)
			p := base
			p.Temporality = temporality
			p.Attrs = dp.Attributes().AsRaw()
			p.Start, p.Time = dp.StartTimestamp().AsTime(), dp.Timestamp().AsTime()
			switch dp.ValueType() {
			case pmetric.NumberDataPointValueTypeInt:
				p.Value = float64(dp.IntValue())
			case pmetric.NumberDataPointValueTypeDouble:
				p.Value = dp.DoubleValue()
			}
			out = append(out, p)
		}
	}
	switch m.Type() {
	case pmetric.MetricTypeSum:
		number(m.Sum().DataPoints(), m.Sum().AggregationTemporality().String())
	case pmetric.MetricTypeGauge:
		number(m.Gauge().DataPoints(), "")
	case pmetric.MetricTypeHistogram:
		dps := m.Histogram().DataPoints()
		for i := range dps.Len() {
			dp := dps.At(i)
			p := base
			p.Temporality = m.Histogram().AggregationTemporality().String()
			p.Attrs = dp.Attributes().AsRaw()
			p.Start, p.Time = dp.StartTimestamp().AsTime(), dp.Timestamp().AsTime()
			p.Count, p.Sum = dp.Count(), dp.Sum()
			p.Bounds, p.Buckets = dp.ExplicitBounds().AsRaw(), dp.BucketCounts().AsRaw()
			for j := range dp.Exemplars().Len() {
				e := dp.Exemplars().At(j)
				p.Exemplars = append(p.Exemplars, Exemplar{TraceID: e.TraceID(), SpanID: e.SpanID(), Value: e.DoubleValue(), Time: e.Timestamp().AsTime()})
			}
			out = append(out, p)
		}
	default:
		p := base
		p.Attrs = map[string]any{}
		out = append(out, p)
	}
	return out
}
