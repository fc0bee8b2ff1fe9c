package testnet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
)

// Incoming trace contexts of the tests: W3C traceparent values.
const (
	sampledTP   = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	unsampledTP = "00-5bf92f3577b34da6a3ce929d0e0e4736-10f067aa0ba902b7-00"
	badTP       = "00-4bf92f3577b34da6a3ce929d0e0e4736-XYZ-01"
	zeroTP      = "00-00000000000000000000000000000000-00f067aa0ba902b7-01" // a zero trace id: invalid
)

// send makes one request to the shop over HTTP, with a traceparent
// (tracestate) unless empty, and returns its status and body.
func send(t *testing.T, method, url, traceparent, tracestate, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if traceparent != "" {
		req.Header.Set("traceparent", traceparent)
	}
	if tracestate != "" {
		req.Header.Set("tracestate", tracestate)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestTraceParentCounted: the shop counts the trace context requests
// arrive with, in Stats, /stats and /metrics; its own endpoints do not
// count. No tracer provider here: counting does not need one.
func TestTraceParentCounted(t *testing.T) {
	tg, err := NewTarget(TargetConfig{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(tg)
	defer srv.Close()
	defer tg.Close()
	if m := scrape(t, srv.URL); !strings.Contains(m, `shop_traceparent_total{state="absent"} 0`) {
		t.Errorf("states not shown from 0:\n%s", m)
	}
	for range 3 {
		send(t, "GET", srv.URL+"/items/1", sampledTP, "", "")
	}
	for range 2 {
		send(t, "GET", srv.URL+"/items", unsampledTP, "vendor=x", "")
	}
	send(t, "GET", srv.URL+"/", "", "", "")
	send(t, "GET", srv.URL+"/items", badTP, "", "")
	send(t, "GET", srv.URL+"/items", "", "", "")       // no header: absent
	send(t, "GET", srv.URL+"/nowhere", zeroTP, "", "") // counted too, though 404
	send(t, "GET", srv.URL+"/health", "", "", "")      // not counted
	want := TraceParentStats{Sampled: 3, Unsampled: 2, Absent: 2, Invalid: 2}
	if got := tg.Stats().TraceParent; got != want {
		t.Errorf("Stats().TraceParent = %+v, want %+v", got, want)
	}
	_, body := send(t, "GET", srv.URL+"/stats", "", "", "")
	var st Stats
	if err := json.Unmarshal([]byte(body), &st); err != nil || st.TraceParent != want {
		t.Errorf("/stats: %v %+v, want %+v", err, st.TraceParent, want)
	}
	if want.Total() != 9 {
		t.Errorf("total %d", want.Total())
	}
	m := scrape(t, srv.URL)
	for _, line := range []string{
		`shop_traceparent_total{state="sampled"} 3`, `shop_traceparent_total{state="unsampled"} 2`,
		`shop_traceparent_total{state="absent"} 2`, `shop_traceparent_total{state="invalid"} 2`,
	} {
		if !strings.Contains(m, line) {
			t.Errorf("metrics lack %s", line)
		}
	}
}

// otlpReceiver is a tiny OTLP/gRPC trace receiver: it keeps every span it
// is sent.
type otlpReceiver struct {
	ptraceotlp.UnimplementedGRPCServer
	addr  string
	mu    sync.Mutex
	spans []recvSpan
}

type recvSpan struct {
	TraceID, SpanID, Parent string // hex; Parent "" for a root
	Name                    string
	Kind                    ptrace.SpanKind
	TraceState              string
	Attrs                   map[string]any
}

func startOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &otlpReceiver{addr: ln.Addr().String()}
	srv := grpc.NewServer()
	ptraceotlp.RegisterGRPCServer(srv, r)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return r
}

func (r *otlpReceiver) Export(_ context.Context, req ptraceotlp.ExportRequest) (ptraceotlp.ExportResponse, error) {
	rss := req.Traces().ResourceSpans()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range rss.Len() {
		sss := rss.At(i).ScopeSpans()
		for j := range sss.Len() {
			spans := sss.At(j).Spans()
			for k := range spans.Len() {
				s := spans.At(k)
				rs := recvSpan{TraceID: s.TraceID().String(), SpanID: s.SpanID().String(), Name: s.Name(),
					Kind: s.Kind(), TraceState: s.TraceState().AsRaw(), Attrs: s.Attributes().AsRaw()}
				if !s.ParentSpanID().IsEmpty() {
					rs.Parent = s.ParentSpanID().String()
				}
				r.spans = append(r.spans, rs)
			}
		}
	}
	return ptraceotlp.NewExportResponse(), nil
}

// trace returns the spans of one trace: its server span (by name) and
// the others.
func (r *otlpReceiver) trace(traceID string) []recvSpan {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []recvSpan
	for _, s := range r.spans {
		if s.TraceID == traceID {
			out = append(out, s)
		}
	}
	return out
}

func tpParts(tp string) (traceID, spanID string) {
	p := strings.Split(tp, "-")
	return p[1], p[2]
}

// TestTraceExportOTLP: spans reach an OTLP receiver; the gateway span
// continues the incoming trace (same trace id, parent = the caller's span)
// and the service calls are its children, one per attempt.
func TestTraceExportOTLP(t *testing.T) {
	rcv := startOTLPReceiver(t)
	cfg := TargetConfig{OTLPEndpoint: rcv.addr,
		Payments: ServiceConfig{ErrorRate: 1},
		Retry:    RetryPolicy{Retries: 2}}
	tg, err := NewTarget(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(tg)
	defer srv.Close()

	code, body := send(t, "POST", srv.URL+"/login", "", "", "") // no traceparent: a root trace
	var login struct{ Token string }
	if code != 200 || json.Unmarshal([]byte(body), &login) != nil {
		t.Fatalf("login: %d %s", code, body)
	}
	send(t, "GET", srv.URL+"/items/3", sampledTP, "vendor=abc", "")
	const checkoutTP = "00-6bf92f3577b34da6a3ce929d0e0e4736-20f067aa0ba902b7-01"
	if code, _ := send(t, "POST", srv.URL+"/checkout", checkoutTP, "", login.Token); code != 503 {
		t.Errorf("checkout: %d, want 503 (payments fails)", code)
	}
	send(t, "GET", srv.URL+"/items", unsampledTP, "", "") // parent-based: not recorded
	send(t, "GET", srv.URL+"/health", sampledTP, "", "")  // not traced
	tg.Close()                                            // flushes the batch

	// GET /items/3: gateway span + one catalog call.
	traceID, parent := tpParts(sampledTP)
	spans := rcv.trace(traceID)
	if len(spans) != 2 {
		t.Fatalf("trace %s: %d spans, want 2: %+v", traceID, len(spans), spans)
	}
	gw, call := spans[0], spans[1]
	if call.Kind == ptrace.SpanKindServer {
		gw, call = call, gw
	}
	if gw.Name != "GET /items/{id}" || gw.Kind != ptrace.SpanKindServer || gw.Parent != parent {
		t.Errorf("gateway span %+v: want GET /items/{id}, server, parent %s", gw, parent)
	}
	if gw.TraceState != "vendor=abc" {
		t.Errorf("tracestate %q not carried on", gw.TraceState)
	}
	if gw.Attrs["http.response.status_code"] != int64(200) || gw.Attrs["shop.traceparent"] != "sampled" {
		t.Errorf("gateway attributes %v", gw.Attrs)
	}
	if call.Name != Catalog || call.Parent != gw.SpanID || call.Kind != ptrace.SpanKindClient {
		t.Errorf("catalog span %+v: want a child of %s", call, gw.SpanID)
	}
	if call.Attrs[AttrService] != Catalog || call.Attrs[AttrAttempt] != int64(1) ||
		call.Attrs[AttrOutcome] != OutcomeOK || call.Attrs[AttrQueueWait] == nil {
		t.Errorf("catalog attributes %v", call.Attrs)
	}

	// POST /checkout: cart once, payments 3 times (2 retries), all failed.
	traceID, parent = tpParts(checkoutTP)
	spans = rcv.trace(traceID)
	var gwID string
	attempts := map[string][]int64{}
	for _, s := range spans {
		if s.Kind == ptrace.SpanKindServer {
			gwID = s.SpanID
			if s.Parent != parent || s.Name != "POST /checkout" || s.Attrs["http.response.status_code"] != int64(503) {
				t.Errorf("checkout gateway span %+v", s)
			}
		}
	}
	for _, s := range spans {
		if s.Kind != ptrace.SpanKindClient {
			continue
		}
		if s.Parent != gwID {
			t.Errorf("span %s: parent %s, want the gateway's %s", s.Name, s.Parent, gwID)
		}
		attempts[s.Name] = append(attempts[s.Name], s.Attrs[AttrAttempt].(int64))
		if s.Name == Payments && s.Attrs[AttrOutcome] != OutcomeFailed {
			t.Errorf("payments outcome %v, want failed", s.Attrs[AttrOutcome])
		}
	}
	if fmt.Sprint(attempts) != "map[cart:[1] payments:[1 2 3]]" {
		t.Errorf("attempts %v, want cart once, payments 3 times", attempts)
	}

	// The unsampled request left no span; the login started a trace.
	if s := rcv.trace(strings.Split(unsampledTP, "-")[1]); len(s) != 0 {
		t.Errorf("unsampled request recorded: %+v", s)
	}
	rcv.mu.Lock()
	roots := 0
	for _, s := range rcv.spans {
		if s.Name == "POST /login" && s.Parent == "" {
			roots++
		}
	}
	total := len(rcv.spans)
	rcv.mu.Unlock()
	if roots != 1 || total != 2+5+2 {
		t.Errorf("%d login root spans (want 1), %d spans in all (want 9)", roots, total)
	}
}

// TestTraceAllRecordsUnsampled: with TraceAll, a request whose caller did
// not sample it is recorded anyway, in the caller's trace.
func TestTraceAllRecordsUnsampled(t *testing.T) {
	rcv := startOTLPReceiver(t)
	tg, err := NewTarget(TargetConfig{OTLPEndpoint: rcv.addr, TraceAll: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(tg)
	defer srv.Close()
	send(t, "GET", srv.URL+"/items", unsampledTP, "", "")
	tg.Close()
	traceID, parent := tpParts(unsampledTP)
	spans := rcv.trace(traceID)
	if len(spans) != 2 || spans[1].Parent != parent || spans[0].Parent != spans[1].SpanID { // the call ends, and is sent, first
		t.Fatalf("spans %+v: want gateway (parent %s) and catalog", spans, parent)
	}
	if st := tg.Stats().TraceParent; st.Unsampled != 1 || st.Total() != 1 {
		t.Errorf("counted %+v", st)
	}
}

func TestTraceConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  TargetConfig
		want string
	}{
		{TargetConfig{OTLPEndpoint: "http://collector:4317"}, "want host:port"},
		{TargetConfig{OTLPEndpoint: "collector"}, "want host:port"},
		{TargetConfig{TraceAll: true}, "needs an OTLP endpoint"},
		{TargetConfig{OTLPEndpoint: "collector:4317", TraceAll: true}, ""},
	} {
		err := tc.cfg.Validate()
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: error %v, want %q", tc.cfg, err, tc.want)
		}
	}
}

// tracedTarget is a target whose spans go to an in-memory exporter,
// synchronously (no goroutine: fine in a synctest bubble).
func tracedTarget(t *testing.T, cfg TargetConfig) (*Target, *tracetest.InMemoryExporter) {
	t.Helper()
	tg, err := NewTarget(cfg)
	if err != nil {
		t.Fatal(err)
	}
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	tg.tracer, tg.tp = tp.Tracer(tracerName), tp
	return tg, exp
}

func attrs(s tracetest.SpanStub) map[string]any {
	m := map[string]any{}
	for _, kv := range s.Attributes {
		m[string(kv.Key)] = kv.Value.AsInterface()
	}
	return m
}

// TestTraceQueueWaitAndTimeout: a call span says how long the request
// waited for a replica, and a timed-out attempt says so, its retry too.
func TestTraceQueueWaitAndTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// One replica, one at a time, 100ms each: the second of two
		// requests waits 100ms in the queue.
		tg, exp := tracedTarget(t, TargetConfig{Catalog: ServiceConfig{Latency: 100 * time.Millisecond, Capacity: 1, Queue: 5}})
		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() { get(t, tg, "GET", "/items", "") })
		}
		wg.Wait()
		var waits []float64
		for _, s := range exp.GetSpans() {
			if s.Name == Catalog {
				waits = append(waits, attrs(s)[AttrQueueWait].(float64))
			}
		}
		if fmt.Sprint(waits) != "[0 100]" {
			t.Errorf("queue waits %v ms, want [0 100]", waits)
		}
		tg.Close()

		// 1s of work, a 100ms timeout, one retry: two timed-out attempts.
		tg, exp = tracedTarget(t, TargetConfig{Catalog: ServiceConfig{Latency: time.Second},
			Retry: RetryPolicy{Retries: 1, Timeout: 100 * time.Millisecond}})
		if code, _ := get(t, tg, "GET", "/items", ""); code != 504 {
			t.Fatalf("code %d", code)
		}
		var got []string
		for _, s := range exp.GetSpans() {
			a := attrs(s)
			if s.Name == Catalog {
				got = append(got, fmt.Sprintf("%d:%s", a[AttrAttempt], a[AttrOutcome]))
				if s.EndTime.Sub(s.StartTime) != 100*time.Millisecond {
					t.Errorf("attempt span lasted %s, want the 100ms timeout", s.EndTime.Sub(s.StartTime))
				}
			}
		}
		if fmt.Sprint(got) != "[1:timeout 2:timeout]" {
			t.Errorf("attempts %v", got)
		}
		tg.Close()
	})
}

// TestAutoscaleLogLine: each change is logged as a line ParseScaleEvent
// reads back, with the time it happened; a service's own scale-up delay
// (--set catalog.autoscale.delay=3s) replaces the autoscaler's.
func TestAutoscaleLogLine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		var mu sync.Mutex
		cfg := TargetConfig{
			Catalog:   ServiceConfig{Latency: time.Hour, Capacity: 1, Queue: 10, Replicas: 1, MaxReplicas: 8},
			Autoscale: AutoscaleConfig{Enabled: true, Every: 100 * time.Millisecond, UpDelay: 2 * time.Second, Aim: 0.75},
			Logger:    slog.New(slog.NewTextHandler(lockedWriter{&mu, &buf}, nil)),
		}
		if err := cfg.Set("catalog.autoscale.delay=3s"); err != nil {
			t.Fatal(err)
		}
		tg, err := NewTarget(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 3 {
			wg.Go(func() { get(t, tg, "GET", "/items", "") })
		}
		synctest.Wait()
		start := time.Now()
		for tg.Stats().Services[Catalog].Replicas == 1 {
			time.Sleep(100 * time.Millisecond)
		}
		tg.Close()
		wg.Wait()
		if took := time.Since(start); took < 3100*time.Millisecond {
			t.Errorf("scaled after %s, before the catalog's own 3s delay", took)
		}
		mu.Lock()
		log := buf.String()
		mu.Unlock()
		var events []ScaleEvent
		for line := range strings.SplitSeq(log, "\n") {
			if e, ok := ParseScaleEvent(line); ok {
				events = append(events, e)
				if !strings.Contains(line, " msg=scaled service=catalog from=1 to=4 at=") ||
					!strings.Contains(line, "direction=up") || !strings.Contains(line, "component=autoscaler") {
					t.Errorf("line %q", line)
				}
			}
		}
		if len(events) != 1 {
			t.Fatalf("%d scale events in log:\n%s", len(events), log)
		}
		// Demand first seen at the first tick (100ms), 3s (the catalog's
		// own delay, not the autoscaler's 2s) before scaling.
		e := events[0]
		at := start.Add(3100 * time.Millisecond)
		if e.Service != Catalog || e.From != 1 || e.To != 4 || !e.At.Equal(at.Truncate(time.Millisecond)) {
			t.Errorf("event %+v, want catalog 1 -> 4 at %s", e, at.UTC())
		}
	})
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestAutoscaleParseScaleEvent(t *testing.T) {
	for _, tc := range []struct {
		line string
		ok   bool
	}{
		{`time=2026-11-27T20:00:01.234+01:00 level=INFO msg=scaled service=catalog from=2 to=4 at=2026-11-27T19:00:01.234Z direction=up demand=1.20 queued=30 component=autoscaler`, true},
		{`msg="scaled" service=cart from=4 to=3 at=2026-11-27T19:00:01.234Z`, true},
		{`time=... level=INFO msg="target listening"`, false},
		{`msg=scaled service=cart from=x to=3 at=2026-11-27T19:00:01.234Z`, false},
	} {
		e, ok := ParseScaleEvent(tc.line)
		if ok != tc.ok {
			t.Errorf("%q: ok %v", tc.line, ok)
		}
		if ok && e.At.UTC().Format(time.RFC3339Nano) != "2026-11-27T19:00:01.234Z" {
			t.Errorf("%q: at %s", tc.line, e.At)
		}
	}
}

func TestAutoscaleDelaySet(t *testing.T) {
	c := DefaultTargetConfig()
	if err := c.Set("all.autoscale.delay=5s"); err != nil {
		t.Fatal(err)
	}
	if err := c.Set("catalog.autoscale.delay=30s"); err != nil {
		t.Fatal(err)
	}
	if c.Catalog.ScaleUpDelay != 30*time.Second || c.Cart.ScaleUpDelay != 5*time.Second || c.Payments.ScaleUpDelay != 5*time.Second {
		t.Errorf("delays %s %s %s", c.Catalog.ScaleUpDelay, c.Cart.ScaleUpDelay, c.Payments.ScaleUpDelay)
	}
	for _, bad := range []string{"catalog.autoscale.delay=0s", "catalog.autoscale.delay=soon", "catalog.autoscale.wait=1s"} {
		if err := c.Set(bad); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}
