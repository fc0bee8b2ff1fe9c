package node_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/loadswarm/loadswarm/node"
)

// sutTarget is a system under test with a replica count on /metrics that
// goes from 2 to 4 a set time after its first request.
type sutTarget struct {
	srv      *httptest.Server
	replicas prometheus.Gauge
	mu       sync.Mutex
	first    time.Time
	scaled   time.Time
}

func newSUTTarget(t *testing.T, scaleAfter time.Duration) *sutTarget {
	st := &sutTarget{}
	reg := prometheus.NewRegistry()
	st.replicas = prometheus.NewGauge(prometheus.GaugeOpts{Name: "shop_replicas", Help: "replicas"})
	st.replicas.Set(2)
	reg.MustRegister(st.replicas)
	metrics := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	st.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metrics" {
			metrics.ServeHTTP(w, r)
			return
		}
		st.mu.Lock()
		now := time.Now()
		if st.first.IsZero() {
			st.first = now
		}
		if st.scaled.IsZero() && now.Sub(st.first) >= scaleAfter {
			st.scaled = now
			st.replicas.Set(4)
		}
		st.mu.Unlock()
		w.Write([]byte("ok"))
	}))
	t.Cleanup(st.srv.Close)
	return st
}

// TestObserveSystemUnderTest: the test's scheduler reads the system under
// test's /metrics every second; every node of the test keeps the readings,
// so results from a node that did not schedule the test have the series,
// its scale lag from the rise in load, and thresholds on them.
func TestObserveSystemUnderTest(t *testing.T) {
	nodes := fleet(t, 3)
	sut := newSUTTarget(t, 4*time.Second)
	body := []byte(fmt.Sprintf(`name: observed
target: %s
load:
  stages:
    - {duration: 2s, rate: 20}
    - {duration: 6s, rate: 60}
requests: [{name: a}]
observe:
  sources:
    - {name: replicas, scrape: %s/metrics, select: shop_replicas}
    - {name: down, scrape: "http://127.0.0.1:1/metrics", select: x}
thresholds:
  - 'scale_lag["replicas"] < 6'
  - 'sut["replicas"].max == 4'
`, sut.srv.URL, sut.srv.URL))
	id, st := runTest(t, nodes, 0, body)
	if st.Report.Status != "passed" {
		t.Fatalf("live report %s: %+v", st.Report.Status, st.Report.Thresholds)
	}
	var other *node.Node
	for _, n := range nodes {
		if n.Swarm().PeerID() != st.Scheduler && n.Swarm().Name() != st.Scheduler {
			other = n
			break
		}
	}
	res, err := node.NewClient(other.APIAddr(), nil).Results(context.Background(), id, nil, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	o := res.Observe
	if o == nil || len(o.Series) != 2 {
		t.Fatalf("observation %+v", o)
	}
	byName := map[string]int{}
	for i, s := range o.Series {
		byName[s.Name] = i
	}
	rep := o.Series[byName["replicas"]]
	if rep.First != 2 || rep.Max != 4 || rep.Last != 4 || rep.Samples < 7 {
		t.Errorf("replicas %+v", rep)
	}
	down := o.Series[byName["down"]]
	if down.Samples != 0 || down.Gaps < 7 || len(down.GapReasons) == 0 {
		t.Errorf("a source that is down: %+v", down)
	}
	// The shop scaled 4 s after its first request (at the test's start);
	// the rise was at 2 s: a lag of about 2 s, read once a second.
	lag := o.ScaleLag["replicas"]
	if lag == nil || *lag < 1 || *lag > 4 {
		t.Errorf("scale lag %v, want about 2 s", lag)
	}
	for _, th := range res.Thresholds {
		if !th.Pass {
			t.Errorf("threshold %s failed: %s", th.Expr, th.Error)
		}
	}
}

// TestObserveSourceOutsidePolicy: an observe source is a target like any
// other: a node whose operator does not allow its address declines the test.
func TestObserveSourceOutsidePolicy(t *testing.T) {
	nodes := fleetWith(t, 2, "o", func(i int, c *node.Config) {
		if i == 1 {
			c.Policy.AllowTargets = []string{"127.0.0.1/32"}
		}
	})
	ct := newCountingTarget(t)
	body := []byte(fmt.Sprintf(`name: observed
target: %s
duration: 2s
load: {rate: 20}
requests: [{name: a}]
observe:
  sources: [{name: m, scrape: "http://127.0.0.2:9/metrics", select: m}]
`, ct.srv.URL))
	c := node.NewClient(nodes[0].APIAddr(), nil)
	id, err := c.Submit(context.Background(), body, "")
	if err != nil {
		t.Fatal(err)
	}
	st := waitOver(t, c, id, 30*time.Second)
	if why := st.Excluded["o1"]; !contains(why, "declined") || !contains(why, "observe source") {
		t.Fatalf("excluded: %v", st.Excluded)
	}
	// A source at the cloud metadata address: every node declines at
	// admission, before anything is dialed.
	meta := []byte(fmt.Sprintf(`name: metadata
target: %s
duration: 2s
load: {rate: 20}
requests: [{name: a}]
observe:
  sources: [{name: m, scrape: "http://169.254.169.254/latest/meta-data", select: m}]
`, ct.srv.URL))
	id, err = c.Submit(context.Background(), meta, "")
	if err != nil {
		t.Fatal(err)
	}
	waitRefused(t, c, id, "observe source")
}

// TestExemplarsInResults: every request carries a traceparent; results
// asked with exemplars list the slowest and failed requests per point and
// step, and each trace id is one the target saw.
func TestExemplarsInResults(t *testing.T) {
	nodes := fleet(t, 2)
	var mu sync.Mutex
	seen := map[string]bool{}
	var total, traced int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tp := r.Header.Get("traceparent")
		mu.Lock()
		total++
		if len(tp) == 55 {
			traced++
			seen[tp[3:35]] = true
		}
		mu.Unlock()
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	t.Cleanup(srv.Close)
	body := []byte(fmt.Sprintf(`name: traced
target: %s
duration: 3s
load: {rate: 40}
tracing: {sample: 0.5}
flow: weighted
requests: [{name: ok, path: /ok}, {name: bad, path: /fail}]
`, srv.URL))
	id, _ := runTest(t, nodes, 0, body)
	res, err := node.NewClient(nodes[1].APIAddr(), nil).ResultsWith(context.Background(), id, node.ResultsQuery{To: -1, Exemplars: true})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if traced != total || total != 120 {
		t.Errorf("%d of %d requests carried a traceparent, want all of 120", traced, total)
	}
	var failed, ok int
	for _, e := range res.Exemplars {
		if !seen[e.TraceID] {
			t.Errorf("exemplar %+v: trace id never seen at the target", e)
		}
		if e.Class != "" {
			failed++
		} else {
			ok++
		}
	}
	// 3 points, 2 regions (a node each), 2 steps: at most 2 per outcome.
	if failed == 0 || ok == 0 || len(res.Exemplars) > 3*2*2*2 {
		t.Errorf("exemplars: %d ok, %d failed: %+v", ok, failed, res.Exemplars)
	}
}
