package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/loadswarm/loadswarm/scenarios"
	"github.com/loadswarm/loadswarm/storage"
	"github.com/loadswarm/loadswarm/swarm/swarmtest"
	"github.com/loadswarm/loadswarm/testnet/otlptest"
)

// otlpMetrics is a node's metrics with OTLP export to endpoint, without a
// running node; closed with the test.
func otlpMetrics(t testing.TB, endpoint string) *metrics {
	cfg := obsConfig(t, "o")
	cfg.OTLPEndpoint = endpoint
	cfg.OTLPInterval = 100 * time.Millisecond
	m := newBareMetrics(t, cfg)
	o, err := startOTLP(cfg, m, m.n.log)
	if err != nil {
		t.Fatal(err)
	}
	m.otlp = o
	t.Cleanup(func() { m.close(2 * time.Second) })
	return m
}

// closedPort is an address nothing listens on.
func closedPort(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestOTLPShareHooks drives a share's hooks directly and reads what a real
// OTLP receiver got: one client span per sampled request with the
// request's own ids and the attributes, none for the others, and the
// per-second metrics with their attributes.
func TestOTLPShareHooks(t *testing.T) {
	r := otlptest.Start(t)
	m := otlpMetrics(t, r.Addr())
	s := m.startShare("t1", "bench", "eu", testScenario(t))
	t0 := time.Now().Add(-time.Second).Truncate(time.Millisecond)
	ok := scenarios.TraceContext{TraceID: [16]byte{1, 1}, SpanID: [8]byte{1, 2}, Sampled: true}
	bad := scenarios.TraceContext{TraceID: [16]byte{2, 2}, SpanID: [8]byte{2, 3}, Sampled: true}
	lost := scenarios.TraceContext{TraceID: [16]byte{3, 3}, SpanID: [8]byte{3, 4}, Sampled: true}
	evs := []scenarios.RequestEvent{
		{Step: "a", Method: "GET", Status: 200, Sent: t0, End: t0.Add(20 * time.Millisecond), Latency: 25 * time.Millisecond, Trace: ok},
		{Step: "b", Method: "POST", Status: 503, Class: scenarios.ErrHTTP5xx, Sent: t0, End: t0.Add(5 * time.Millisecond), Latency: 5 * time.Millisecond, Trace: bad},
		{Step: "a", Method: "GET", Class: scenarios.ErrTimeout, Sent: t0, End: t0.Add(time.Second), Latency: time.Second, Trace: lost},
		{Step: "a", Method: "GET", Status: 200, Sent: t0, End: t0.Add(time.Millisecond), Latency: time.Millisecond,
			Trace: scenarios.TraceContext{TraceID: [16]byte{4}, SpanID: [8]byte{4}}}, // not sampled
		{Step: "a", Method: "GET", Status: 200, Sent: t0, End: t0.Add(time.Millisecond), Latency: time.Millisecond}, // no trace
	}
	for i := range evs {
		s.OnRequest(&evs[i])
	}
	sec := storage.NewSecond(0)
	a := sec.Bucket(storage.Dim{Step: "a", Status: "2xx"})
	a.Planned, a.Arrivals, a.Requests = 5, 4, 3
	bb := sec.Bucket(storage.Dim{Step: "b", Status: "5xx", Error: scenarios.ErrHTTP5xx})
	bb.Requests, bb.Errors = 1, 1
	ms := sec.Bucket(storage.Dim{Step: "a", Error: scenarios.ErrMissed})
	ms.Planned, ms.Dropped = 2, 2
	s.OnSecond(sec)
	s.end() // flushes the test's meter

	swarmtest.WaitFor(t, 10*time.Second, "3 spans", func() (bool, string) {
		n := len(r.Spans())
		return n >= 3, fmt.Sprint(n)
	})
	time.Sleep(200 * time.Millisecond)
	spans := r.Spans()
	if len(spans) != 3 {
		t.Fatalf("%d spans, want 3 (sampled requests only)", len(spans))
	}
	byTrace := map[[16]byte]otlptest.Span{}
	for _, sp := range spans {
		byTrace[sp.TraceID] = sp
	}
	for i, c := range []struct {
		tc     scenarios.TraceContext
		name   string
		status string
		attrs  map[string]any
		absent []string
	}{
		{ok, "GET a", "Unset", map[string]any{"http.response.status_code": int64(200), "loadswarm.step": "a"}, []string{"error.type"}},
		{bad, "POST b", "Error", map[string]any{"http.response.status_code": int64(503), "error.type": "http_5xx", "loadswarm.step": "b", "http.request.method": "POST"}, nil},
		{lost, "GET a", "Error", map[string]any{"error.type": "timeout"}, []string{"http.response.status_code"}},
	} {
		sp, found := byTrace[c.tc.TraceID]
		if !found {
			t.Errorf("span %d: no span with trace id %s", i, c.tc.TraceIDString())
			continue
		}
		if sp.SpanID != c.tc.SpanID || sp.ParentSpanID != ([8]byte{}) {
			t.Errorf("span %d: span id %x parent %x, want %x and none", i, sp.SpanID, sp.ParentSpanID, c.tc.SpanID)
		}
		ev := evs[i]
		if sp.Name != c.name || sp.Kind != "Client" || sp.Status != c.status || !sp.Start.Equal(ev.Sent) || !sp.End.Equal(ev.End) {
			t.Errorf("span %d: %q kind %s status %s %v..%v", i, sp.Name, sp.Kind, sp.Status, sp.Start, sp.End)
		}
		want := map[string]any{"loadswarm.test.id": "t1", "loadswarm.region": "eu", "loadswarm.node": "o"}
		for k, v := range c.attrs {
			want[k] = v
		}
		for k, v := range want {
			if sp.Attrs[k] != v {
				t.Errorf("span %d: %s = %v (%T), want %v", i, k, sp.Attrs[k], sp.Attrs[k], v)
			}
		}
		for _, k := range c.absent {
			if _, ok := sp.Attrs[k]; ok {
				t.Errorf("span %d: has %s", i, k)
			}
		}
		if sp.Resource["service.name"] != "loadswarm" || sp.Resource["loadswarm.node"] != "o" {
			t.Errorf("span %d: resource %v", i, sp.Resource)
		}
	}

	base := map[string]any{"loadswarm.test.id": "t1", "loadswarm.region": "eu", "loadswarm.node": "o"}
	with := func(kv ...string) map[string]any {
		out := map[string]any{}
		for k, v := range base {
			out[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	for _, c := range []struct {
		metric string
		attrs  map[string]any
		want   float64
	}{
		{"loadswarm.arrivals.planned", base, 7},
		{"loadswarm.arrivals.sent", base, 4},
		{"loadswarm.arrivals.missed", base, 2},
		{"loadswarm.requests", with("loadswarm.step", "a"), 3},
		{"loadswarm.requests", with("loadswarm.step", "b"), 1},
		{"loadswarm.request.errors", with("loadswarm.step", "b", "error.type", "http_5xx"), 1},
	} {
		p, found := r.Latest(c.metric, c.attrs)
		if !found || p.Value != c.want || p.Type != "Sum" {
			t.Errorf("%s %v: %+v (found %v), want %v", c.metric, c.attrs, p, found, c.want)
		}
	}
	p, found := r.Latest("loadswarm.request.duration", with("loadswarm.step", "a"))
	if !found || p.Count != 4 || p.Unit != "s" || len(p.Bounds) != len(latencyBuckets) || p.Bounds[0] != 0.001 || len(p.Buckets) != len(latencyBuckets)+1 {
		t.Fatalf("latency histogram: %+v (found %v), want 4 requests of step a", p, found)
	}
	// 25ms, 1s, 1ms, 1ms: buckets le=1ms (2), le=25ms (1), le=1s (1).
	if p.Buckets[0] != 2 || p.Buckets[4] != 1 || p.Buckets[9] != 1 || p.Sum < 1.026 || p.Sum > 1.028 || p.Temporality != "Cumulative" {
		t.Errorf("latency buckets %v sum %v %s", p.Buckets, p.Sum, p.Temporality)
	}
	exemplars := map[[16]byte][8]byte{}
	for _, e := range p.Exemplars {
		exemplars[e.TraceID] = e.SpanID
	}
	if len(exemplars) != 2 || exemplars[ok.TraceID] != ok.SpanID || exemplars[lost.TraceID] != lost.SpanID {
		t.Errorf("latency exemplars %+v: want the sampled requests of step a", p.Exemplars)
	}
}

// blockingExporter takes every export until its context ends: an endpoint
// that does not answer.
type blockingExporter struct {
	calls    atomic.Int64
	shutdown atomic.Bool
}

func (e *blockingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	e.calls.Add(1)
	<-ctx.Done()
	return ctx.Err()
}

func (e *blockingExporter) Shutdown(ctx context.Context) error {
	e.shutdown.Store(true)
	return nil
}

// TestSpanQueueNeverBlocks: with an exporter that never returns, OnEnd
// still returns at once; the queue holds at most its size (plus the
// batch being exported), every other span is counted dropped, and
// Shutdown returns by its deadline.
func TestSpanQueueNeverBlocks(t *testing.T) {
	exp := &blockingExporter{}
	const size, batch, total = 16, 4, 10000
	q := newSpanQueue(context.Background(), exp, size, batch, 10*time.Millisecond, time.Hour)
	var dropped [3]atomic.Int64
	q.onDrop = func(reason string, n int) {
		switch reason {
		case dropQueueFull:
			dropped[0].Add(int64(n))
		case dropExportFailed:
			dropped[1].Add(int64(n))
		case dropShutdown:
			dropped[2].Add(int64(n))
		}
	}
	q.start()
	span := tracetest.SpanStub{Name: "x"}.Snapshot()
	start := time.Now()
	for range total {
		q.OnEnd(span)
	}
	took := time.Since(start)
	if took > 200*time.Millisecond {
		t.Errorf("%d OnEnd took %s", total, took)
	}
	if n := len(q.q); n > size {
		t.Errorf("queue holds %d, more than %d", n, size)
	}
	if full := dropped[0].Load(); full < total-size-batch {
		t.Errorf("%d dropped as queue_full, want at least %d", full, total-size-batch)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start = time.Now()
	if err := q.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Shutdown took %s with a 100ms deadline", took)
	}
	q.OnEnd(span)
	sum := dropped[0].Load() + dropped[1].Load() + dropped[2].Load()
	if sum != total+1 || !exp.shutdown.Load() {
		t.Errorf("dropped %d+%d+%d = %d of %d spans, exporter shut down %v", dropped[0].Load(), dropped[1].Load(), dropped[2].Load(), sum, total+1, exp.shutdown.Load())
	}
}

// TestOTLPExport runs a traced test on a node that exports to a real OTLP
// receiver: a span for every request, with the ids the target saw in its
// traceparent headers, and the test's metrics with their attributes.
func TestOTLPExport(t *testing.T) {
	r := otlptest.Start(t)
	c := obsConfig(t, "o0")
	c.OTLPEndpoint = r.Addr()
	c.OTLPInterval = 200 * time.Millisecond
	n := startObsNode(t, c)
	tt := newTracedTarget(t, 4)
	const rate, secs = 40, 3
	id, _ := runObserved(t, n, obsSpec(tt.srv.URL, rate, secs, 1), 30*time.Second)
	got, fails, traces := tt.counts()
	if got != rate*secs || len(traces) != got {
		t.Fatalf("target: %d requests, %d trace contexts", got, len(traces))
	}
	swarmtest.WaitFor(t, 15*time.Second, "a span per request", func() (bool, string) {
		k := len(r.Spans())
		return k >= got, fmt.Sprintf("%d of %d", k, got)
	})
	errs := 0
	for _, sp := range r.Spans() {
		status, ok := traces[scenarios.TraceContext{TraceID: sp.TraceID, SpanID: sp.SpanID, Sampled: true}]
		if !ok {
			t.Fatalf("span %x/%x: not a trace context the target saw", sp.TraceID, sp.SpanID)
		}
		if sp.Name != "GET a" || sp.Kind != "Client" || sp.Attrs["loadswarm.test.id"] != id || sp.Attrs["loadswarm.step"] != "a" ||
			sp.Attrs["loadswarm.region"] != "r-o0" || sp.Attrs["loadswarm.node"] != "o0" || sp.Attrs["http.response.status_code"] != int64(status) ||
			!sp.End.After(sp.Start) {
			t.Fatalf("span: %+v", sp)
		}
		if status >= 500 {
			errs++
			if sp.Status != "Error" || sp.Attrs["error.type"] != scenarios.ErrHTTP5xx {
				t.Fatalf("failed request's span: %+v", sp)
			}
		}
	}
	if errs != fails || len(r.Spans()) != got {
		t.Fatalf("%d spans, %d failed; the target saw %d requests, %d failed", len(r.Spans()), errs, got, fails)
	}
	attrs := map[string]any{"loadswarm.test.id": id, "loadswarm.region": "r-o0", "loadswarm.node": "o0", "loadswarm.step": "a"}
	swarmtest.WaitFor(t, 10*time.Second, "the test's metrics", func() (bool, string) {
		req, ok1 := r.Latest("loadswarm.requests", attrs)
		lat, ok2 := r.Latest("loadswarm.request.duration", attrs)
		e, ok3 := r.Latest("loadswarm.request.errors", map[string]any{"loadswarm.test.id": id, "error.type": scenarios.ErrHTTP5xx})
		pl, ok4 := r.Latest("loadswarm.arrivals.planned", map[string]any{"loadswarm.test.id": id, "loadswarm.node": "o0"})
		return ok1 && ok2 && ok3 && ok4 && req.Value == float64(got) && lat.Count == uint64(got) && e.Value == float64(fails) && pl.Value == rate*secs,
			fmt.Sprintf("requests %v, latency count %v, errors %v, planned %v; names %v", req.Value, lat.Count, e.Value, pl.Value, r.MetricNames())
	})
	// The receiver holds a batch before its answer reaches the exporter,
	// which counts the batch then.
	swarmtest.WaitFor(t, 10*time.Second, "every span counted exported", func() (bool, string) {
		v, _ := sum(scrape(t, n.APIAddr(), ""), "swarm_otlp_spans_exported_total", nil)
		return v == float64(got), fmt.Sprintf("swarm_otlp_spans_exported_total = %v, want %d", v, got)
	})
}

// TestOTLPEndpointDown: a node exporting to a port where nothing listens
// runs its share on time (every arrival sent, none dropped at the
// in-flight cap), the span queue stays within its bound with the rest
// counted dropped, and the node closes quickly.
func TestOTLPEndpointDown(t *testing.T) {
	defer func(q, b int) { spanQueueSize, spanBatchSize = q, b }(spanQueueSize, spanBatchSize)
	spanQueueSize, spanBatchSize = 64, 32
	c := obsConfig(t, "d0")
	c.OTLPEndpoint = closedPort(t)
	c.OTLPInterval = 100 * time.Millisecond
	n := startObsNode(t, c)
	tt := newTracedTarget(t, 0)
	const rate, secs = 100, 3
	_, st := runObserved(t, n, obsSpec(tt.srv.URL, rate, secs, 1), 30*time.Second)
	got, _, _ := tt.counts()
	rep := st.Report
	if got != rate*secs || rep.Requests != rate*secs || rep.Dropped != 0 || rep.Errors != 0 {
		t.Fatalf("target saw %d; report: %d requests, %d dropped, %d errors", got, rep.Requests, rep.Dropped, rep.Errors)
	}
	// On time: the report's latency says no worker waited on the export.
	if rep.Latency.P99 > 500 {
		t.Errorf("p99 latency %.1f ms", rep.Latency.P99)
	}
	fams := scrape(t, n.APIAddr(), "")
	dropped, _ := sum(fams, "swarm_otlp_spans_dropped_total", nil)
	exported, _ := sum(fams, "swarm_otlp_spans_exported_total", nil)
	if dropped < float64(got-spanQueueSize-spanBatchSize) || exported != 0 {
		t.Errorf("dropped %v, exported %v of %d spans (queue %d, batch %d)", dropped, exported, got, spanQueueSize, spanBatchSize)
	}
	n.metrics.mu.Lock()
	queued := len(n.metrics.otlp.queue.q)
	n.metrics.mu.Unlock()
	if queued > spanQueueSize {
		t.Errorf("%d spans queued", queued)
	}
	start := time.Now()
	if err := n.Close(); err != nil && !errors.Is(err, context.Canceled) {
		t.Logf("close: %v", err)
	}
	if took := time.Since(start); took > otlpCloseTimeout+3*time.Second {
		t.Errorf("close took %s", took)
	}
}

// BenchmarkOnRequestOTLP is BenchmarkOnRequest with OTLP export on: for
// a sampled request, a client span is built and queued. The endpoint is
// down, so that the exporter's goroutine (and a receiver in this process
// keeping every span) does not compete for the CPU: the spans are built
// all the same, and dropped at the full queue.
func BenchmarkOnRequestOTLP(b *testing.B) {
	m := otlpMetrics(b, closedPort(b))
	s := m.startShare("t1", "bench", "eu", testScenario(b))
	defer s.end()
	benchOnRequest(b, s)
}

// TestOTLPDeltaTemporality: with the delta preference, the latency
// histogram reports what came since its last export, like the counters.
func TestOTLPDeltaTemporality(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "delta")
	r := otlptest.Start(t)
	m := otlpMetrics(t, r.Addr())
	s := m.startShare("t1", "bench", "eu", testScenario(t))
	defer s.end()
	ev := scenarios.RequestEvent{Step: "a", Method: "GET", Status: 200, Latency: 2 * time.Millisecond}
	s.OnRequest(&ev)
	s.OnRequest(&ev)
	attrs := map[string]any{"loadswarm.test.id": "t1", "loadswarm.step": "a"}
	swarmtest.WaitFor(t, 5*time.Second, "2 requests exported", func() (bool, string) {
		p, ok := r.Latest("loadswarm.request.duration", attrs)
		return ok && p.Count == 2 && p.Temporality == "Delta", fmt.Sprintf("%+v", p)
	})
	s.OnRequest(&ev)
	swarmtest.WaitFor(t, 5*time.Second, "then 1", func() (bool, string) {
		p, ok := r.Latest("loadswarm.request.duration", attrs)
		return ok && p.Count == 1 && p.Buckets[1] == 1 && p.Temporality == "Delta", fmt.Sprintf("%+v", p)
	})
	// Nothing new: no point (an empty delta is not sent).
	time.Sleep(300 * time.Millisecond)
	if p, _ := r.Latest("loadswarm.request.duration", attrs); p.Count != 1 {
		t.Errorf("latest point %+v", p)
	}
}

// TestOTLPConfig: the OTLP settings from a file and the environment, their
// checks, and the choice of plaintext.
func TestOTLPConfig(t *testing.T) {
	c := obsConfig(t, "c")
	for _, ep := range []string{"http://localhost:4317", "localhost", "localhost:0", ":4317", "a:b"} {
		c.OTLPEndpoint = ep
		if err := c.Validate(); err == nil {
			t.Errorf("endpoint %q: valid", ep)
		}
	}
	c.OTLPEndpoint = "collector.example:4317"
	c.OTLPInterval = 50 * time.Millisecond
	if err := c.Validate(); err == nil {
		t.Error("interval 50ms: valid")
	}
	c.OTLPInterval = 0
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}

	env := map[string]string{"SWARM_OTLP_ENDPOINT": "10.0.0.9:4317", "SWARM_OTLP_INSECURE": "true", "SWARM_OTLP_INTERVAL": "5s"}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	c = DefaultConfig()
	if c.OTLPEndpoint != "" || c.OTLPInsecure != nil || c.OTLPInterval != 0 {
		t.Fatalf("defaults: %q %v %s", c.OTLPEndpoint, c.OTLPInsecure, c.OTLPInterval)
	}
	if err := c.ApplyEnv(lookup); err != nil {
		t.Fatal(err)
	}
	if c.OTLPEndpoint != "10.0.0.9:4317" || c.OTLPInsecure == nil || !*c.OTLPInsecure || c.OTLPInterval != 5*time.Second {
		t.Fatalf("from the environment: %q %v %s", c.OTLPEndpoint, c.OTLPInsecure, c.OTLPInterval)
	}
	cl := c.Clone()
	*cl.OTLPInsecure = false
	if !*c.OTLPInsecure {
		t.Fatal("Clone shares OTLPInsecure")
	}
	env["SWARM_OTLP_INSECURE"] = "maybe"
	if err := c.ApplyEnv(lookup); err == nil {
		t.Error("SWARM_OTLP_INSECURE=maybe accepted")
	}

	path := t.TempDir() + "/swarm.yaml"
	if err := os.WriteFile(path, []byte("otlp_endpoint: localhost:4317\notlp_insecure: false\notlp_interval: 2s\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c = DefaultConfig()
	if err := LoadConfigFile(path, &c); err != nil {
		t.Fatal(err)
	}
	if c.OTLPEndpoint != "localhost:4317" || c.OTLPInsecure == nil || *c.OTLPInsecure || c.OTLPInterval != 2*time.Second {
		t.Fatalf("from the file: %q %v %s", c.OTLPEndpoint, c.OTLPInsecure, c.OTLPInterval)
	}

	yes, no := true, false
	none := func(string) (string, bool) { return "", false }
	for _, tc := range []struct {
		endpoint string
		flag     *bool
		env      bool
		want     string // "plain", "tls" or "sdk" (the OTEL_ variables decide)
	}{
		{"localhost:4317", nil, false, "plain"},
		{"127.0.0.1:4317", nil, false, "plain"},
		{"[::1]:4317", nil, false, "plain"},
		{"otel.example:4317", nil, false, "tls"},
		{"10.1.2.3:4317", nil, false, "tls"},
		{"otel.example:4317", &yes, false, "plain"},
		{"localhost:4317", &no, false, "tls"},
		{"localhost:4317", nil, true, "sdk"},
		{"otel.example:4317", &yes, true, "plain"},
	} {
		cfg := Config{OTLPEndpoint: tc.endpoint, OTLPInsecure: tc.flag}
		lk := none
		if tc.env {
			lk = func(k string) (string, bool) { return "true", k == "OTEL_EXPORTER_OTLP_INSECURE" }
		}
		got := "sdk"
		if b := otlpInsecure(cfg, lk); b != nil {
			got = map[bool]string{true: "plain", false: "tls"}[*b]
		}
		if got != tc.want {
			t.Errorf("%s flag %v env %v: %s, want %s", tc.endpoint, tc.flag, tc.env, got, tc.want)
		}
	}
}
