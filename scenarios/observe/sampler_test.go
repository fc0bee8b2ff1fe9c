package observe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

type tick struct {
	t    int64
	pts  []Point
	gaps []Gap
}

// collector gathers OnTick calls and checks they come from one goroutine
// at a time, in order of T.
type collector struct {
	t      *testing.T
	mu     sync.Mutex
	busy   bool
	ticks  []tick
	before func(n int) // called inside OnTick after recording tick n
}

func (c *collector) onTick(t int64, pts []Point, gaps []Gap) {
	c.mu.Lock()
	if c.busy {
		c.t.Error("OnTick called concurrently")
	}
	c.busy = true
	if n := len(c.ticks); n > 0 && c.ticks[n-1].t > t {
		c.t.Errorf("OnTick T went back: %d after %d", t, c.ticks[n-1].t)
	}
	c.ticks = append(c.ticks, tick{t, pts, gaps})
	n := len(c.ticks)
	c.mu.Unlock()
	if c.before != nil {
		c.before(n)
	}
	c.mu.Lock()
	c.busy = false
	c.mu.Unlock()
}

func (c *collector) get() []tick {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]tick(nil), c.ticks...)
}

func mustCompile(t *testing.T, s Spec) *Config {
	t.Helper()
	cfg, err := s.Compile()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func pointMap(pts []Point) map[string]float64 {
	m := make(map[string]float64, len(pts))
	for _, p := range pts {
		m[p.Series] = p.V
	}
	return m
}

func gapMap(gaps []Gap) map[string]string {
	m := make(map[string]string, len(gaps))
	for _, g := range gaps {
		if old, ok := m[g.Series]; ok {
			m[g.Series] = old + " | " + g.Reason
		} else {
			m[g.Series] = g.Reason
		}
	}
	return m
}

// metricsServer serves a real client_golang registry through promhttp.
type metricsServer struct {
	url      string
	replicas *prometheus.GaugeVec
	dotted   prometheus.Gauge
	hist     prometheus.Histogram
	summary  prometheus.Summary
	requests prometheus.Counter
}

func newMetricsServer(t *testing.T) *metricsServer {
	reg := prometheus.NewRegistry()
	m := &metricsServer{
		replicas: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "shop_replicas", Help: "Replicas."}, []string{"service"}),
		dotted:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "shop.dotted.gauge", Help: "A UTF-8 name."}),
		hist:     prometheus.NewHistogram(prometheus.HistogramOpts{Name: "req_seconds", Help: "Latency.", Buckets: []float64{0.1, 1}}),
		summary:  prometheus.NewSummary(prometheus.SummaryOpts{Name: "lat_seconds", Help: "Latency.", Objectives: map[float64]float64{0.5: 0.05}}),
		requests: prometheus.NewCounter(prometheus.CounterOpts{Name: "shop_requests_total", Help: "Requests."}),
	}
	reg.MustRegister(m.replicas, m.dotted, m.hist, m.summary, m.requests)
	m.replicas.WithLabelValues("catalog").Set(2)
	m.replicas.WithLabelValues("search").Set(3)
	m.dotted.Set(7)
	m.hist.Observe(0.05)
	m.hist.Observe(0.5)
	m.hist.Observe(5)
	m.summary.Observe(0.25)
	m.requests.Add(11)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	m.url = srv.URL + "/metrics"
	return m
}

// jumpClock is an injected Now that runs at real speed but jumps ahead by
// Every after each round, so multi-round tests run with a realistic Every
// (and its timeout) without waiting for it.
type jumpClock struct {
	mu   sync.Mutex
	skew time.Duration
}

func (c *jumpClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.skew)
}

func (c *jumpClock) jump(d time.Duration) {
	c.mu.Lock()
	c.skew += d
	c.mu.Unlock()
}

func TestRunScrape(t *testing.T) {
	t.Parallel()
	ms := newMetricsServer(t)
	src := func(name, sel string) SourceSpec { return SourceSpec{Name: name, Scrape: ms.url, Select: sel} }
	cfg := mustCompile(t, Spec{Every: "1s", Sources: []SourceSpec{
		src("catalog", `shop_replicas{service="catalog"}`),
		src("all_replicas", `shop_replicas`),
		src("not_search", `shop_replicas{service!="search"}`),
		src("regex", `{__name__=~"shop_rep.*", service=~"cat.*|sea.*"}`),
		src("dotted", `{"shop.dotted.gauge"}`),
		src("requests", `shop_requests_total`),
		src("hist_count", `req_seconds_count`),
		src("hist_le1", `req_seconds_bucket{le="1"}`),
		src("hist_inf", `req_seconds_bucket{le="+Inf"}`),
		src("hist_bare", `req_seconds`),
		src("summary_sum", `lat_seconds_sum`),
		src("summary_q", `lat_seconds{quantile="0.5"}`),
		src("nothing", `shop_replicas{service="nope"}`),
	}})
	c := &collector{t: t}
	clock := &jumpClock{}
	c.before = func(n int) {
		// Change the gauge between rounds: round n+1 must see it.
		ms.replicas.WithLabelValues("catalog").Set(float64(10 * n))
		clock.jump(time.Second)
	}
	start := clock.now()
	err := Run(context.Background(), SamplerConfig{Config: cfg, Start: start, End: start.Add(2 * time.Second), OnTick: c.onTick, Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	ticks := c.get()
	if len(ticks) != 3 {
		t.Fatalf("got %d ticks, want 3 (rounds at 0, 1s, 2s)", len(ticks))
	}
	for i, tk := range ticks {
		if tk.t != int64(i) {
			t.Errorf("tick %d: T=%d, want %d", i, tk.t, i)
		}
		want := 2.0
		if i > 0 {
			want = float64(10 * i)
		}
		p := pointMap(tk.pts)
		if p["catalog"] != want {
			t.Errorf("tick %d: catalog=%v, want %v", i, p["catalog"], want)
		}
		if p["all_replicas"] != want+3 || p["not_search"] != want || p["regex"] != want+3 {
			t.Errorf("tick %d: sums wrong: %v", i, p)
		}
		for name, v := range map[string]float64{
			"dotted": 7, "requests": 11, "hist_count": 3, "hist_le1": 2, "hist_inf": 3,
			"summary_sum": 0.25, "summary_q": 0.25,
		} {
			if got, ok := p[name]; !ok || got != v {
				t.Errorf("tick %d: %s=%v (present %v), want %v", i, name, got, ok, v)
			}
		}
		g := gapMap(tk.gaps)
		if len(tk.gaps) != 2 || g["hist_bare"] != "no series matched select" || g["nothing"] != "no series matched select" {
			t.Errorf("tick %d: gaps %v", i, tk.gaps)
		}
		if len(tk.pts) != 11 {
			t.Errorf("tick %d: %d points, want 11: %v", i, len(tk.pts), tk.pts)
		}
		for _, pt := range tk.pts {
			if pt.T != tk.t {
				t.Errorf("point %v has T != tick T %d", pt, tk.t)
			}
		}
	}
}

// fakeProm serves /api/v1/query in the real Prometheus JSON shapes, keyed
// by the query text, and records the evaluation times it was asked for.
type fakeProm struct {
	url   string
	mu    sync.Mutex
	times []float64
}

func newFakeProm(t *testing.T) *fakeProm {
	f := &fakeProm{}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/v1/query", func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		ts, err := strconv.ParseFloat(r.Form.Get("time"), 64)
		if err != nil {
			http.Error(w, "bad time", http.StatusBadRequest)
			return
		}
		if r.Form.Get("timeout") == "" {
			http.Error(w, "no timeout", http.StatusBadRequest)
			return
		}
		f.mu.Lock()
		f.times = append(f.times, ts)
		f.mu.Unlock()
		tv := r.Form.Get("time")
		sample := func(labels map[string]string, v string) string {
			b, _ := json.Marshal(labels)
			return fmt.Sprintf(`{"metric":%s,"value":[%s,%q]}`, b, tv, v)
		}
		vector := func(samples ...string) string {
			return `{"status":"success","data":{"resultType":"vector","result":[` + strings.Join(samples, ",") + `]}}`
		}
		w.Header().Set("Content-Type", "application/json")
		switch q := r.Form.Get("query"); q {
		case "q_scalar":
			fmt.Fprintf(w, `{"status":"success","data":{"resultType":"scalar","result":[%s,"42"]}}`, tv)
		case "q_one":
			fmt.Fprint(w, vector(sample(map[string]string{"__name__": "up", "job": "a"}, "1.5")))
		case "q_three":
			// Warnings are ignored.
			fmt.Fprint(w, `{"status":"success","warnings":["careful"],"data":{"resultType":"vector","result":[`+
				sample(map[string]string{"__name__": "x", "pod": "c", "zone": "eu"}, "3")+","+
				sample(map[string]string{"__name__": "x", "pod": "a", "zone": "eu"}, "1")+","+
				sample(map[string]string{"__name__": "x", "pod": "b", "zone": "us", "my.label": "q\"t"}, "2")+`]}}`)
		case "q_empty":
			fmt.Fprint(w, vector())
		case "q_matrix":
			fmt.Fprintf(w, `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"a":"b"},"values":[[%s,"1"]]}]}}`, tv)
		case "q_string":
			fmt.Fprintf(w, `{"status":"success","data":{"resultType":"string","result":[%s,"hello"]}}`, tv)
		case "q_error":
			w.WriteHeader(http.StatusUnprocessableEntity)
			fmt.Fprint(w, `{"status":"error","errorType":"execution","error":"many-to-many matching not allowed"}`)
		case "q_nan":
			fmt.Fprintf(w, `{"status":"success","data":{"resultType":"scalar","result":[%s,"NaN"]}}`, tv)
		case "q_inf":
			fmt.Fprint(w, vector(
				sample(map[string]string{"k": "inf"}, "+Inf"),
				sample(map[string]string{"k": "ninf"}, "-Inf"),
				sample(map[string]string{"k": "ok"}, "4"),
			))
		case "q_many":
			var ss []string
			for i := range 25 {
				ss = append(ss, sample(map[string]string{"i": fmt.Sprintf("%02d", 24-i)}, strconv.Itoa(24-i)))
			}
			fmt.Fprint(w, vector(ss...))
		case "q_names":
			fmt.Fprint(w, vector(
				sample(map[string]string{"__name__": "b", "job": "j"}, "2"),
				sample(map[string]string{"__name__": "a", "job": "j"}, "1"),
			))
		case "q_hist":
			fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"histogram":[%s,{"count":"2","sum":"3","buckets":[[0,"0","1","2"]]}]}]}}`, tv)
		case "q_html":
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, "<html>not prometheus</html>")
		default:
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"status":"error","errorType":"bad_data","error":"unknown test query %q"}`, q)
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

func TestRunQuery(t *testing.T) {
	t.Parallel()
	fp := newFakeProm(t)
	var srcs []SourceSpec
	for _, q := range []string{"q_scalar", "q_one", "q_three", "q_empty", "q_matrix", "q_string", "q_error", "q_nan", "q_inf", "q_many", "q_names", "q_hist", "q_html"} {
		srcs = append(srcs, SourceSpec{Name: strings.TrimPrefix(q, "q_"), Prometheus: fp.url, Query: q})
	}
	cfg := mustCompile(t, Spec{Sources: srcs})
	c := &collector{t: t}
	start := time.Now()
	if err := Run(context.Background(), SamplerConfig{Config: cfg, Start: start, End: start, OnTick: c.onTick}); err != nil {
		t.Fatal(err)
	}
	ticks := c.get()
	if len(ticks) != 1 || ticks[0].t != 0 {
		t.Fatalf("ticks: %+v", ticks)
	}
	p, g := pointMap(ticks[0].pts), gapMap(ticks[0].gaps)
	t.Logf("points: %v", p)
	t.Logf("gaps: %v", g)

	wantPts := map[string]float64{
		"scalar":                   42,
		"one":                      1.5,
		`three{pod="a",zone="eu"}`: 1,
		`three{"my.label"="q\"t",pod="b",zone="us"}`: 2,
		`three{pod="c",zone="eu"}`:                   3,
		`inf{k="ok"}`:                                4,
		`names{__name__="a",job="j"}`:                1,
		`names{__name__="b",job="j"}`:                2,
	}
	for i := range 20 {
		wantPts[fmt.Sprintf(`many{i="%02d"}`, i)] = float64(i)
	}
	for k, v := range wantPts {
		if got, ok := p[k]; !ok || got != v {
			t.Errorf("point %s = %v (present %v), want %v", k, got, ok, v)
		}
	}
	if len(p) != len(wantPts) {
		t.Errorf("got %d points, want %d", len(p), len(wantPts))
	}
	wantGaps := map[string]string{
		"empty":         "query returned no series",
		"matrix":        "query returned a range vector (matrix)",
		"string":        "string",
		"error":         "execution: many-to-many matching not allowed",
		"nan":           "value is NaN",
		`inf{k="inf"}`:  "value is +Inf",
		`inf{k="ninf"}`: "value is -Inf",
		"many":          "query returned 25 series; kept the first 20 by labels",
		"hist":          "native histogram",
		"html":          "bad_response",
	}
	for k, w := range wantGaps {
		if !strings.Contains(g[k], w) {
			t.Errorf("gap %s = %q, want it to contain %q", k, g[k], w)
		}
	}
	if len(g) != len(wantGaps) {
		t.Errorf("got gaps for %d series, want %d: %v", len(g), len(wantGaps), g)
	}
	// Every query was evaluated at the round's scheduled time.
	fp.mu.Lock()
	defer fp.mu.Unlock()
	want := float64(start.UnixNano()) / 1e9
	for _, ts := range fp.times {
		if math.Abs(ts-want) > 1e-3 {
			t.Errorf("query time %f, want %f", ts, want)
		}
	}
}

// TestRunAlignment starts the sampler 2.9 s into a test (injected clock):
// it must skip the rounds already past, run the current one at once, and
// stamp each round by its scheduled time, floored to the second.
func TestRunAlignment(t *testing.T) {
	t.Parallel()
	fp := newFakeProm(t)
	ms := newMetricsServer(t)
	cfg := mustCompile(t, Spec{Every: "500ms", Sources: []SourceSpec{
		{Name: "q", Prometheus: fp.url, Query: "q_scalar"},
		{Name: "s", Scrape: ms.url, Select: "shop_requests_total"},
	}})
	start := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	skew := time.Until(start.Add(2900 * time.Millisecond))
	now := func() time.Time { return time.Now().Add(skew) }
	c := &collector{t: t}
	if err := Run(context.Background(), SamplerConfig{Config: cfg, Start: start, End: start.Add(3600 * time.Millisecond), OnTick: c.onTick, Now: now}); err != nil {
		t.Fatal(err)
	}
	ticks := c.get()
	var ts []int64
	for _, tk := range ticks {
		ts = append(ts, tk.t)
		if len(tk.pts) != 2 || len(tk.gaps) != 0 {
			t.Errorf("T=%d: pts %v gaps %v", tk.t, tk.pts, tk.gaps)
		}
	}
	if fmt.Sprint(ts) != "[2 3 3]" { // rounds at 2.5 s (late), 3.0 s, 3.5 s
		t.Fatalf("T = %v, want [2 3 3]", ts)
	}
	fp.mu.Lock()
	defer fp.mu.Unlock()
	for i, want := range []float64{2.5, 3.0, 3.5} {
		got := fp.times[i] - float64(start.Unix())
		if math.Abs(got-want) > 1e-6 {
			t.Errorf("query %d evaluated at +%fs, want +%fs", i, got, want)
		}
	}
}

func TestRunFailingSources(t *testing.T) {
	t.Parallel()
	ms := newMetricsServer(t)
	fp := newFakeProm(t)

	// A closed port.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	downURL := "http://" + l.Addr().String() + "/metrics"
	l.Close()

	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	mux.HandleFunc("/garbage", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "this is not { the text format\n\x00\xff")
	})
	mux.HandleFunc("/500", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "boom", http.StatusInternalServerError)
	})
	mux.HandleFunc("/proto", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", `application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited`)
		w.Write([]byte{0x0a, 0x01})
	})
	bad := httptest.NewServer(mux)
	t.Cleanup(bad.Close)
	t.Cleanup(func() { close(release) }) // runs before bad.Close

	cfg := mustCompile(t, Spec{Every: "500ms", Sources: []SourceSpec{
		{Name: "good", Scrape: ms.url, Select: "shop_requests_total"},
		{Name: "down", Scrape: downURL, Select: "x"},
		{Name: "slow", Scrape: bad.URL + "/slow", Select: "x"},
		{Name: "garbage", Scrape: bad.URL + "/garbage", Select: "x"},
		{Name: "err500", Scrape: bad.URL + "/500", Select: "x"},
		{Name: "proto", Scrape: bad.URL + "/proto", Select: "x"},
		{Name: "query_down", Prometheus: "http://" + l.Addr().String(), Query: "x"},
		{Name: "goodquery", Prometheus: fp.url, Query: "q_scalar"},
	}})
	c := &collector{t: t}
	var tickAt []time.Duration
	start := time.Now()
	c.before = func(int) { tickAt = append(tickAt, time.Since(start)) }
	if err := Run(context.Background(), SamplerConfig{Config: cfg, Start: start, End: start.Add(500 * time.Millisecond), OnTick: c.onTick}); err != nil {
		t.Fatal(err)
	}
	ticks := c.get()
	if len(ticks) != 2 {
		t.Fatalf("got %d ticks, want 2", len(ticks))
	}
	for i, tk := range ticks {
		p, g := pointMap(tk.pts), gapMap(tk.gaps)
		if i == 0 {
			t.Logf("gaps: %q", g)
		}
		if len(p) != 2 || p["good"] != 11 || p["goodquery"] != 42 {
			t.Errorf("tick %d: points %v", i, p)
		}
		for name, want := range map[string]string{
			"down":       "connection refused",
			"query_down": "connection refused",
			"slow":       "timed out after 500ms",
			"garbage":    "bad text format: text format parsing error in line 1",
			"err500":     "HTTP 500 Internal Server Error",
			"proto":      "unsupported content type",
		} {
			if !strings.Contains(g[name], want) {
				t.Errorf("tick %d: gap %s = %q, want it to contain %q", i, name, g[name], want)
			}
		}
		if len(g) != 6 {
			t.Errorf("tick %d: %d gaps: %v", i, len(g), g)
		}
		for _, gp := range tk.gaps {
			if len(gp.Reason) > maxReason || !utf8.ValidString(gp.Reason) {
				t.Errorf("bad reason %q", gp.Reason)
			}
		}
	}
	// A round is bounded by its timeout: round 0 ends ~500 ms in, round 1
	// (scheduled at 500 ms, started a little late) ~1 s in. Generous slack
	// for loaded machines.
	if tickAt[0] > 1500*time.Millisecond || tickAt[1] > 2500*time.Millisecond {
		t.Errorf("rounds too slow: %v", tickAt)
	}
}

// TestRunBodyLimit: a body over 16 MiB is cut off with a Gap, for a scrape
// and for a query. Every is 2s so the transfer itself (slow under -race)
// does not hit the round timeout first.
func TestRunBodyLimit(t *testing.T) {
	t.Parallel()
	ms := newMetricsServer(t)
	line := "# " + strings.Repeat("x", 61) + "\n" // 64 bytes
	bigText := []byte(strings.Repeat(line, (maxBody/len(line))+1) + "shop_replicas 1\n")
	bigJSON := []byte(`{"status":"success","data":{"resultType":"vector","result":[` + strings.Repeat(" ", maxBody) + `]}}`)
	mux := http.NewServeMux()
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) { w.Write(bigText) })
	mux.HandleFunc("/api/v1/query", func(w http.ResponseWriter, r *http.Request) { w.Write(bigJSON) })
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	// One source per round: a 16 MiB transfer competes for CPU with
	// whatever else runs, and each has only the 2 s round timeout.
	for _, src := range []SourceSpec{
		{Name: "big", Scrape: srv.URL + "/big", Select: "shop_replicas"},
		{Name: "bigquery", Prometheus: srv.URL, Query: "x"},
	} {
		cfg := mustCompile(t, Spec{Every: "2s", Sources: []SourceSpec{{Name: "good", Scrape: ms.url, Select: "shop_requests_total"}, src}})
		c := &collector{t: t}
		start := time.Now()
		if err := Run(context.Background(), SamplerConfig{Config: cfg, Start: start, End: start, OnTick: c.onTick}); err != nil {
			t.Fatal(err)
		}
		ticks := c.get()
		if len(ticks) != 1 {
			t.Fatalf("got %d ticks", len(ticks))
		}
		p, g := pointMap(ticks[0].pts), gapMap(ticks[0].gaps)
		if len(p) != 1 || p["good"] != 11 {
			t.Errorf("%s: points %v", src.Name, p)
		}
		if len(g) != 1 || g[src.Name] != "body over 16 MiB" {
			t.Errorf("%s: gaps %v (after %v)", src.Name, g, time.Since(start))
		}
	}
}

// TestLimitTransport checks the body limit at its boundary, with a small
// limit on a real connection.
func TestLimitTransport(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		w.Write([]byte(strings.Repeat("a", n)))
	}))
	t.Cleanup(srv.Close)
	c := &http.Client{Transport: limitTransport{base: http.DefaultTransport, max: 100}}
	for _, tc := range []struct {
		n    int
		fail bool
	}{{0, false}, {99, false}, {100, false}, {101, true}, {5000, true}} {
		resp, err := c.Get(fmt.Sprintf("%s/?n=%d", srv.URL, tc.n))
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if tc.fail {
			if !errors.Is(err, errBodyTooLarge) || len(b) > 100 {
				t.Errorf("n=%d: read %d bytes, err %v; want errBodyTooLarge", tc.n, len(b), err)
			}
		} else if err != nil || len(b) != tc.n {
			t.Errorf("n=%d: read %d bytes, err %v", tc.n, len(b), err)
		}
	}
}

func TestRunLifecycle(t *testing.T) {
	t.Parallel()
	ms := newMetricsServer(t)
	cfg := mustCompile(t, Spec{Every: "250ms", Sources: []SourceSpec{{Name: "s", Scrape: ms.url, Select: "shop_requests_total"}}})
	noop := func(int64, []Point, []Gap) {}

	t.Run("invalid", func(t *testing.T) {
		u, _ := url.Parse(ms.url)
		for name, sc := range map[string]SamplerConfig{
			"nil config": {OnTick: noop},
			"nil OnTick": {Config: cfg},
			"fast":       {Config: &Config{Every: 10 * time.Millisecond, Sources: cfg.Sources}, OnTick: noop},
			"no sources": {Config: &Config{Every: time.Second}, OnTick: noop},
			"bad kind":   {Config: &Config{Every: time.Second, Sources: []Source{{Name: "a", Kind: "nope", URL: u}}}, OnTick: noop},
			"bad select": {Config: &Config{Every: time.Second, Sources: []Source{{Name: "a", Kind: KindScrape, URL: u, Select: "a{"}}}, OnTick: noop},
			"no URL":     {Config: &Config{Every: time.Second, Sources: []Source{{Name: "a", Kind: KindQuery, Query: "a"}}}, OnTick: noop},
			"bad scheme": {Config: &Config{Every: time.Second, Sources: []Source{{Name: "a", Kind: KindQuery, URL: &url.URL{Scheme: "file", Host: "x"}, Query: "a"}}}, OnTick: noop},
		} {
			if err := Run(context.Background(), sc); err == nil {
				t.Errorf("%s: Run succeeded", name)
			}
		}
	})

	t.Run("hand-built config", func(t *testing.T) {
		u, _ := url.Parse(ms.url)
		hand := &Config{Every: time.Second, Sources: []Source{{Name: "s", Kind: KindScrape, URL: u, Select: "shop_requests_total"}}}
		c := &collector{t: t}
		start := time.Now()
		if err := Run(context.Background(), SamplerConfig{Config: hand, Start: start, End: start, OnTick: c.onTick}); err != nil {
			t.Fatal(err)
		}
		if tk := c.get(); len(tk) != 1 || pointMap(tk[0].pts)["s"] != 11 {
			t.Fatalf("ticks %+v", tk)
		}
	})

	t.Run("cancel", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		c := &collector{t: t}
		c.before = func(n int) {
			if n == 2 {
				cancel()
			}
		}
		done := make(chan error, 1)
		go func() { done <- Run(ctx, SamplerConfig{Config: cfg, OnTick: c.onTick}) }() // no End
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Run = %v, want context.Canceled", err)
			}
		case <-time.After(3 * time.Second):
			t.Fatal("Run did not stop after cancel")
		}
		if n := len(c.get()); n != 2 {
			t.Fatalf("%d ticks after cancel at the 2nd", n)
		}
	})

	t.Run("already canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := Run(ctx, SamplerConfig{Config: cfg, OnTick: noop}); !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v", err)
		}
	})

	t.Run("end in the past", func(t *testing.T) {
		c := &collector{t: t}
		now := time.Now()
		if err := Run(context.Background(), SamplerConfig{Config: cfg, Start: now.Add(-time.Hour), End: now.Add(-time.Minute), OnTick: c.onTick}); err != nil {
			t.Fatal(err)
		}
		if n := len(c.get()); n != 0 {
			t.Fatalf("%d ticks after End", n)
		}
	})

	t.Run("start in the future, returns at End", func(t *testing.T) {
		c := &collector{t: t}
		start := time.Now().Add(100 * time.Millisecond)
		end := start.Add(300 * time.Millisecond)
		var first time.Time
		c.before = func(n int) {
			if n == 1 {
				first = time.Now()
			}
		}
		if err := Run(context.Background(), SamplerConfig{Config: cfg, Start: start, End: end, OnTick: c.onTick}); err != nil {
			t.Fatal(err)
		}
		if time.Now().Before(end) {
			t.Error("Run returned before End")
		}
		if first.Before(start) {
			t.Errorf("first round before Start")
		}
		var ts []int64
		for _, tk := range c.get() {
			ts = append(ts, tk.t)
		}
		if fmt.Sprint(ts) != "[0 0]" { // rounds at 0 and 250 ms
			t.Fatalf("T = %v", ts)
		}
	})
}

func TestClip(t *testing.T) {
	for _, s := range []string{
		"", "short", strings.Repeat("é", 300), strings.Repeat("a", 199) + "€€", "bad \xff\xfe utf8\nnewline\ttab",
		strings.Repeat("\xff", 500),
	} {
		got := clip(s, maxReason)
		if len(got) > maxReason || !utf8.ValidString(got) || strings.ContainsAny(got, "\n\t\r") {
			t.Errorf("clip(%q) = %q", s, got)
		}
		if len(s) <= maxReason && utf8.ValidString(s) && !strings.ContainsAny(s, "\n\t") && got != s {
			t.Errorf("clip changed a short string: %q -> %q", s, got)
		}
	}
}
