package node

import (
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/loadswarm/loadswarm/scenarios"
	"github.com/loadswarm/loadswarm/storage"
	"github.com/loadswarm/loadswarm/swarm/swarmtest"
)

// obsConfig is a one-host node config with shrunk timings (as the fleet
// tests use) whose tests may aim at loopback.
func obsConfig(t testing.TB, name string) Config {
	c := DefaultConfig()
	c.Name = name
	c.DataDir = t.TempDir()
	c.Bind = "127.0.0.1:0"
	c.API = "127.0.0.1:0"
	c.Profile = "local"
	c.Region = "r-" + name
	c.Version = "v-test"
	c.Policy.AllowTargets = []string{"127.0.0.0/8"}
	c.LeaseTTL = 1500 * time.Millisecond
	c.StartLead = time.Second
	return c
}

func startObsNode(t *testing.T, c Config) *Node {
	t.Helper()
	n, err := New(c, swarmtest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// tracedTarget answers 500 to every errEvery-th request and 200 to the
// rest, and keeps the trace context of each request's traceparent.
type tracedTarget struct {
	srv      *httptest.Server
	errEvery int
	mu       sync.Mutex
	n, fails int
	traces   map[scenarios.TraceContext]int // traceparent -> status sent
}

func newTracedTarget(t *testing.T, errEvery int) *tracedTarget {
	tt := &tracedTarget{errEvery: errEvery, traces: map[scenarios.TraceContext]int{}}
	tt.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tt.mu.Lock()
		tt.n++
		status := http.StatusOK
		if tt.errEvery > 0 && tt.n%tt.errEvery == 0 {
			status = http.StatusInternalServerError
			tt.fails++
		}
		if tc, ok := parseTP(r.Header.Get("Traceparent")); ok {
			tt.traces[tc] = status
		}
		tt.mu.Unlock()
		w.WriteHeader(status)
		io.WriteString(w, "ok")
	}))
	t.Cleanup(tt.srv.Close)
	return tt
}

func (tt *tracedTarget) counts() (n, fails int, traces map[scenarios.TraceContext]int) {
	tt.mu.Lock()
	defer tt.mu.Unlock()
	traces = make(map[scenarios.TraceContext]int, len(tt.traces))
	for k, v := range tt.traces {
		traces[k] = v
	}
	return tt.n, tt.fails, traces
}

// parseTP parses a version-00 traceparent.
func parseTP(s string) (scenarios.TraceContext, bool) {
	var tc scenarios.TraceContext
	f := strings.Split(s, "-")
	if len(f) != 4 || f[0] != "00" {
		return tc, false
	}
	tid, err1 := hex.DecodeString(f[1])
	sid, err2 := hex.DecodeString(f[2])
	if err1 != nil || err2 != nil || len(tid) != 16 || len(sid) != 8 {
		return tc, false
	}
	copy(tc.TraceID[:], tid)
	copy(tc.SpanID[:], sid)
	tc.Sampled = f[3] == "01"
	return tc, true
}

func obsSpec(target string, rate, secs int, sample float64) []byte {
	return fmt.Appendf(nil, "name: observed\ntarget: %s\nduration: %ds\nload: {rate: %d}\ntracing: {sample: %g}\nrequests: [{name: a}]\n", target, secs, rate, sample)
}

// runObserved submits a test and waits for its report.
func runObserved(t *testing.T, n *Node, spec []byte, timeout time.Duration) (string, TestStatus) {
	t.Helper()
	c := NewClient(n.APIAddr(), nil)
	id, err := c.Submit(context.Background(), spec, "")
	if err != nil {
		t.Fatal(err)
	}
	var st TestStatus
	swarmtest.WaitFor(t, timeout, "test "+id+" is over", func() (bool, string) {
		st, err = c.Test(context.Background(), id, 0, true)
		if err != nil {
			return false, err.Error()
		}
		return st.Report != nil, st.State
	})
	return id, st
}

// scrape GETs /metrics as Prometheus does (Host: the API's address, no
// Origin) and parses it; accept picks the format.
func scrape(t *testing.T, addr, accept string) map[string]*dto.MetricFamily {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+"/metrics", nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET /metrics: %s %s", resp.Status, b)
	}
	dec := expfmt.NewDecoder(resp.Body, expfmt.ResponseFormat(resp.Header))
	fams := map[string]*dto.MetricFamily{}
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("parse /metrics (%s): %v", resp.Header.Get("Content-Type"), err)
		}
		fams[mf.GetName()] = &mf
	}
	return fams
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	have := map[string]string{}
	for _, l := range m.GetLabel() {
		have[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// sum adds the values of the family's series that have the labels; ok is
// false when there is none.
func sum(fams map[string]*dto.MetricFamily, name string, labels map[string]string) (v float64, ok bool) {
	mf := fams[name]
	if mf == nil {
		return 0, false
	}
	for _, m := range mf.GetMetric() {
		if !hasLabels(m, labels) {
			continue
		}
		ok = true
		switch {
		case m.Counter != nil:
			v += m.GetCounter().GetValue()
		case m.Gauge != nil:
			v += m.GetGauge().GetValue()
		case m.Histogram != nil:
			v += float64(m.GetHistogram().GetSampleCount())
		case m.Untyped != nil:
			v += m.GetUntyped().GetValue()
		}
	}
	return v, ok
}

// Formats a scraper may ask for. The Go collector's go_memstats_alloc_bytes
// and go_memstats_alloc_bytes_total collide in OpenMetrics, whose strict
// parser in expfmt then refuses the page (Prometheus ingests both,
// client_golang issue 829), so the exemplars are read in protobuf, which
// carries them too, and OpenMetrics is checked as text.
const (
	openMetrics = "application/openmetrics-text; version=1.0.0; charset=utf-8"
	protoDelim  = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
)

func scrapeRaw(t *testing.T, addr, accept string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+"/metrics", nil)
	req.Header.Set("Accept", accept)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s %s", resp.Status, b)
	}
	return string(b)
}

// TestMetricsEndpoint runs a traced test on one node and reads /metrics
// over the API listener: the counters match what the target counted, the
// latency histogram has the sampled requests' trace ids as exemplars, the
// node's own metrics are there, a browser is refused, and the test's
// series go once the grace is over.
func TestMetricsEndpoint(t *testing.T) {
	defer func(g time.Duration) { metricsGrace = g }(metricsGrace)
	metricsGrace = 3 * time.Second
	n := startObsNode(t, obsConfig(t, "m0"))
	tt := newTracedTarget(t, 4)
	const rate, secs = 40, 3
	id, st := runObserved(t, n, obsSpec(tt.srv.URL, rate, secs, 1), 30*time.Second)
	got, fails, traces := tt.counts()
	if got != rate*secs || st.Report.Requests != int64(got) {
		t.Fatalf("target got %d requests, report %d; want %d", got, st.Report.Requests, rate*secs)
	}

	fams := scrape(t, n.APIAddr(), "")
	test := map[string]string{"test": id, "region": "r-m0"}
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"swarm_requests_total", map[string]string{"test": id, "region": "r-m0", "step": "a"}, float64(got)},
		{"swarm_request_errors_total", map[string]string{"test": id, "step": "a", "class": scenarios.ErrHTTP5xx}, float64(fails)},
		{"swarm_arrivals_planned_total", test, rate * secs},
		{"swarm_arrivals_sent_total", test, rate * secs},
		{"swarm_members", map[string]string{"state": "alive"}, 1},
		{"swarm_members", map[string]string{"state": "dead"}, 0},
		{"swarm_test_info", map[string]string{"test": id, "name": "observed"}, 1},
	} {
		if v, ok := sum(fams, c.name, c.labels); !ok || v != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, v, ok, c.want)
		}
	}
	if fails == 0 {
		t.Fatal("the target failed no request")
	}
	if v, ok := sum(fams, "swarm_request_duration_seconds", map[string]string{"test": id, "step": "a"}); !ok || v != float64(got) {
		t.Errorf("latency histogram count %v (present %v), want %d: OnRequest must see every request", v, ok, got)
	}
	for _, name := range []string{"swarm_store_size_bytes", "swarm_tests_running", "swarm_shares_running",
		"process_cpu_seconds_total", "process_resident_memory_bytes", "go_goroutines", "swarm_otlp_spans_dropped_total"} {
		if _, ok := fams[name]; !ok {
			t.Errorf("%s missing", name)
		}
	}
	if v, _ := sum(fams, "swarm_store_size_bytes", nil); v <= 0 {
		t.Errorf("store size %v", v)
	}

	// Exemplars with the trace ids the target saw.
	om := scrape(t, n.APIAddr(), protoDelim)
	known := map[string]bool{}
	for tc := range traces {
		known[tc.TraceIDString()] = true
	}
	exemplars := 0
	for _, m := range om["swarm_request_duration_seconds"].GetMetric() {
		if !hasLabels(m, map[string]string{"test": id}) {
			continue
		}
		for _, b := range m.GetHistogram().GetBucket() {
			if e := b.GetExemplar(); e != nil {
				exemplars++
				var tid string
				for _, l := range e.GetLabel() {
					if l.GetName() == "trace_id" {
						tid = l.GetValue()
					}
				}
				if !known[tid] {
					t.Errorf("exemplar trace_id %q: not a trace the target saw", tid)
				}
				if e.GetValue() > b.GetUpperBound() {
					t.Errorf("exemplar %v in bucket le=%v", e.GetValue(), b.GetUpperBound())
				}
			}
		}
	}
	if exemplars == 0 {
		t.Error("no exemplar")
	}
	omExemplars := 0
	for _, line := range strings.Split(scrapeRaw(t, n.APIAddr(), openMetrics), "\n") {
		if strings.HasPrefix(line, "swarm_request_duration_seconds_bucket{") && strings.Contains(line, `test="`+id+`"`) {
			if _, ex, ok := strings.Cut(line, ` # {trace_id="`); ok && len(ex) >= 32 && known[ex[:32]] {
				omExemplars++
			}
		}
	}
	if omExemplars == 0 {
		t.Error("no exemplar on the OpenMetrics page")
	}

	// A browser is refused, whatever it reads.
	for _, h := range [][2]string{{"Origin", "http://evil.example"}, {"Sec-Fetch-Site", "cross-site"}, {"Host", "evil.example"}} {
		req, _ := http.NewRequest("GET", "http://"+n.APIAddr()+"/metrics", nil)
		if h[0] == "Host" {
			req.Host = h[1]
		} else {
			req.Header.Set(h[0], h[1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || strings.Contains(string(b), "swarm_") {
			t.Errorf("GET /metrics with %s: %s: %.80s", h[0], resp.Status, b)
		}
	}

	// The grace over, the test's series are gone; the node's stay.
	swarmtest.WaitFor(t, 10*time.Second, "the test's series are deleted", func() (bool, string) {
		fams := scrape(t, n.APIAddr(), "")
		for _, name := range []string{"swarm_requests_total", "swarm_request_duration_seconds", "swarm_arrivals_planned_total", "swarm_test_info", "swarm_request_errors_total"} {
			if _, ok := sum(fams, name, map[string]string{"test": id}); ok {
				return false, name + " still has the test"
			}
		}
		return true, ""
	})
	if v, ok := sum(scrape(t, n.APIAddr(), ""), "swarm_members", map[string]string{"state": "alive"}); !ok || v != 1 {
		t.Errorf("members alive %v", v)
	}
}

// newBareMetrics is a node's metrics without a running node: enough for
// the share hooks.
func newBareMetrics(t testing.TB, cfg Config) *metrics {
	n := &Node{cfg: cfg, log: swarmtest.Logger(t)}
	n.reg = newRegistry(n)
	return newMetrics(n)
}

func testScenario(t testing.TB) *scenarios.Scenario {
	sc, err := scenarios.Parse([]byte("name: bench\ntarget: http://127.0.0.1:1\nduration: 1s\nload: {rate: 1}\nrequests: [{name: a}, {name: b, method: POST}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func gather(t *testing.T, m *metrics) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := m.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// TestShareMetricsHooks drives the hooks as the executor does: OnSecond's
// buckets become counters by outcome and class, OnRequest the histogram
// (exemplars for sampled requests only), and the series outlive the share
// by the grace only.
func TestShareMetricsHooks(t *testing.T) {
	defer func(g time.Duration) { metricsGrace = g }(metricsGrace)
	metricsGrace = 200 * time.Millisecond
	m := newBareMetrics(t, obsConfig(t, "u"))
	s := m.startShare("t1", "bench", "eu", testScenario(t))
	sec := storage.NewSecond(0)
	b := sec.Bucket(storage.Dim{Step: "a", Status: "2xx"})
	b.Planned, b.Arrivals, b.Requests = 10, 9, 8
	e := sec.Bucket(storage.Dim{Step: "b", Status: "5xx", Error: scenarios.ErrHTTP5xx})
	e.Requests, e.Errors = 3, 3
	d := sec.Bucket(storage.Dim{Step: "a", Error: scenarios.ErrDropped})
	d.Planned, d.Dropped = 2, 2
	ms := sec.Bucket(storage.Dim{Step: "a", Error: scenarios.ErrMissed})
	ms.Planned, ms.Dropped = 5, 5
	s.OnSecond(sec)
	s.OnSecond(sec)
	tc := scenarios.TraceContext{TraceID: [16]byte{1, 2, 3}, SpanID: [8]byte{4}, Sampled: true}
	s.OnRequest(&scenarios.RequestEvent{Step: "a", Method: "GET", Status: 200, Latency: 3 * time.Millisecond, Trace: tc})
	s.OnRequest(&scenarios.RequestEvent{Step: "a", Method: "GET", Status: 200, Latency: 700 * time.Millisecond,
		Trace: scenarios.TraceContext{TraceID: [16]byte{9}, SpanID: [8]byte{9}}})
	s.OnRequest(&scenarios.RequestEvent{Step: "nope", Latency: time.Second})

	if _, ok := sum(gather(t, m), "swarm_arrivals_in_flight", nil); ok {
		t.Error("in flight reported without a source")
	}
	s.setInFlight(func() int64 { return 7 })

	fams := gather(t, m)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"swarm_arrivals_in_flight", map[string]string{"test": "t1", "region": "eu"}, 7},
		{"swarm_arrivals_planned_total", map[string]string{"test": "t1", "region": "eu"}, 34},
		{"swarm_arrivals_sent_total", nil, 18},
		{"swarm_arrivals_dropped_total", nil, 4},
		{"swarm_arrivals_missed_total", nil, 10},
		{"swarm_requests_total", map[string]string{"step": "a"}, 16},
		{"swarm_requests_total", map[string]string{"step": "b"}, 6},
		{"swarm_request_errors_total", map[string]string{"step": "b", "class": "http_5xx"}, 6},
		{"swarm_request_duration_seconds", map[string]string{"step": "a"}, 2},
		{"swarm_shares_running", nil, 1},
	} {
		if v, ok := sum(fams, c.name, c.labels); !ok || v != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, v, ok, c.want)
		}
	}
	var ex []string
	for _, mt := range fams["swarm_request_duration_seconds"].GetMetric() {
		for _, b := range mt.GetHistogram().GetBucket() {
			if e := b.GetExemplar(); e != nil {
				for _, l := range e.GetLabel() {
					if l.GetName() == "trace_id" {
						ex = append(ex, l.GetValue())
					}
				}
			}
		}
	}
	if len(ex) != 1 || ex[0] != tc.TraceIDString() {
		t.Errorf("exemplars %v, want only the sampled request's %s", ex, tc.TraceIDString())
	}

	// A second share of the same test keeps the series past the first's
	// end; the last one's end starts the grace.
	s2 := m.startShare("t1", "bench", "eu", testScenario(t))
	s.end()
	s.end() // idempotent
	time.Sleep(2 * metricsGrace)
	if _, ok := sum(gather(t, m), "swarm_requests_total", map[string]string{"test": "t1"}); !ok {
		t.Fatal("series deleted while a share runs")
	}
	s2.end()
	swarmtest.WaitFor(t, 5*time.Second, "series deleted", func() (bool, string) {
		fams := gather(t, m)
		for name := range fams {
			if _, ok := sum(fams, name, map[string]string{"test": "t1"}); ok && strings.HasPrefix(name, "swarm_") {
				return false, name
			}
		}
		return true, ""
	})
	m.mu.Lock()
	left := len(m.tests)
	m.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d tests still tracked", left)
	}
}

// TestLeaseAndReplanCounters: the methods other parts call, nil-safe.
func TestLeaseAndReplanCounters(t *testing.T) {
	var none *metrics
	none.leaseSent()
	none.leaseReceived()
	none.replan()
	m := newBareMetrics(t, obsConfig(t, "u"))
	m.leaseSent()
	m.leaseSent()
	m.leaseReceived()
	m.replan()
	fams := gather(t, m)
	for name, want := range map[string]float64{"swarm_leases_sent_total": 2, "swarm_leases_received_total": 1, "swarm_replans_total": 1} {
		if v, ok := sum(fams, name, nil); !ok || v != want {
			t.Errorf("%s = %v, want %v", name, v, want)
		}
	}
}

// BenchmarkOnRequest is the per-request cost of the metrics hook, for a
// request whose trace is not sampled (most of them) and one whose trace
// is (an exemplar); the OTLP variants are in otlp_test.go.
func BenchmarkOnRequest(b *testing.B) {
	m := newBareMetrics(b, obsConfig(b, "bench"))
	s := m.startShare("t1", "bench", "eu", testScenario(b))
	defer s.end()
	benchOnRequest(b, s)
}

func benchOnRequest(b *testing.B, s *shareMetrics) {
	now := time.Now()
	ev := scenarios.RequestEvent{Step: "a", Method: "GET", Status: 200, Sent: now, End: now.Add(3 * time.Millisecond), Latency: 3 * time.Millisecond,
		Trace: scenarios.TraceContext{TraceID: [16]byte{1, 2, 3}, SpanID: [8]byte{4}}}
	b.Run("unsampled", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			s.OnRequest(&ev)
		}
	})
	b.Run("sampled", func(b *testing.B) {
		sev := ev
		sev.Trace.Sampled = true
		b.ReportAllocs()
		for b.Loop() {
			s.OnRequest(&sev)
		}
	})
	b.Run("sampled-exemplar", func(b *testing.B) {
		// The worst case: every request ends a second after the last,
		// so each one is its bucket's new exemplar.
		sev := ev
		sev.Trace.Sampled = true
		b.ReportAllocs()
		for b.Loop() {
			sev.End = sev.End.Add(time.Second)
			s.OnRequest(&sev)
		}
	})
	b.Run("unsampled-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			ev := ev
			for pb.Next() {
				s.OnRequest(&ev)
			}
		})
	})
}
