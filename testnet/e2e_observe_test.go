package testnet

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/loadswarm/loadswarm/node"
	"github.com/loadswarm/loadswarm/swarm/swarmtest"
	"github.com/loadswarm/loadswarm/testnet/otlptest"
	"github.com/loadswarm/loadswarm/testnet/promtest"
)

// lockedBuffer is a log sink the shop writes from several goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// shopUnderTest is the demo shop served on loopback by the test process,
// with its log, its spans (to a real OTLP receiver) and its counters.
type shopUnderTest struct {
	t    *Target
	srv  *httptest.Server
	log  *lockedBuffer
	otlp *otlptest.Receiver
}

func startShop(t *testing.T, scaleUpDelay time.Duration) *shopUnderTest {
	t.Helper()
	s := &shopUnderTest{log: &lockedBuffer{}, otlp: otlptest.Start(t)}
	cfg := DefaultTargetConfig()
	if err := cfg.Set("catalog.autoscale.delay=" + scaleUpDelay.String()); err != nil {
		t.Fatal(err)
	}
	cfg.OTLPEndpoint = s.otlp.Addr()
	cfg.TraceAll = true // every request's spans, as a tail-sampling pipeline keeps the slow ones
	cfg.Logger = slog.New(slog.NewTextHandler(s.log, nil))
	var err error
	if s.t, err = NewTarget(cfg); err != nil {
		t.Fatal(err)
	}
	s.srv = httptest.NewServer(s.t)
	t.Cleanup(func() { s.srv.Close(); s.t.Close() })
	return s
}

// scaled returns the catalog's first scale-up, as the shop logged it.
func (s *shopUnderTest) scaled() (ScaleEvent, bool) {
	sc := bufio.NewScanner(strings.NewReader(s.log.String()))
	for sc.Scan() {
		if e, ok := ParseScaleEvent(sc.Text()); ok && e.Service == "catalog" && e.To > e.From {
			return e, true
		}
	}
	return ScaleEvent{}, false
}

// observeSpec is Black Friday made short: 60/s, then x7.5 at 3 s for 14 s,
// on the catalog; the scheduler reads the catalog's replicas from the
// shop's /metrics (a path: relative to the target) and from a real
// Prometheus server's query API.
func observeSpec(target, prom string, maxLag int) string {
	return fmt.Sprintf(`name: black-friday-short
target: %s
defaults: {timeout: 5s}
load:
  max_in_flight: 2000
  stages:
    - {duration: 3s, rate: 60}
    - {duration: 14s, rate: 450}
requests: [{name: item, path: "/items/{{ randInt(1, 100) }}"}]
tracing: {sample: 0.2}
observe:
  sources:
    - {name: catalog_replicas, scrape: /metrics, select: 'shop_replicas{service="catalog"}'}
    - {name: catalog_queue, scrape: /metrics, select: 'shop_queue_length{service="catalog"}'}
    - {name: prom_replicas, prometheus: %s, query: 'sum(shop_replicas{service="catalog"})'}
thresholds:
  - 'scale_lag["catalog_replicas"] < %d'
`, target, prom, maxLag)
}

// TestEndToEndObserve is issue 11's story on a testnet of node processes:
// the scheduler reads the shop's replicas while a rise in load makes it
// scale; the report's scale lag matches the shop's own log within 2 s;
// with the shop's scale-up delay at 30 s the scale_lag threshold fails
// (exit 99), at 5 s it passes. Every request carries a traceparent
// (counted at the shop), the sampled share matches the file's ratio, and
// the exemplars' trace ids are among the spans the shop exported. A real
// Prometheus scrapes the nodes' /metrics: its rate of requests agrees
// with the test's achieved rate within 2%.
func TestEndToEndObserve(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: a 2-node testnet of processes, a real Prometheus, two 17 s tests")
	}
	if promtest.Binary() == "" {
		t.Skip(promtest.SkipReason)
	}
	bin, s := upFleet(t, 2)
	fast := startShop(t, 5*time.Second)
	slow := startShop(t, 30*time.Second)
	hostOf := func(raw string) string {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		return u.Host
	}
	prom := promtest.Start(t, map[string]string{
		"shop": hostOf(fast.srv.URL), "node0": s.Nodes[0].API, "node1": s.Nodes[1].API,
	})
	wctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := prom.WaitForTargetsUp(wctx); err != nil {
		t.Fatal(err)
	}

	run := func(shop *shopUnderTest, maxLag int) (int, node.Results, string) {
		file := filepath.Join(t.TempDir(), "bf.yaml")
		if err := os.WriteFile(file, []byte(observeSpec(shop.srv.URL, prom.URL(), maxLag)), 0o644); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := runSwarm(t, bin, "run", "--api", s.Nodes[0].API, "--json", file)
		var rep struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.ID == "" {
			t.Fatalf("run: exit %d, no report: %v\n%s\n%s", code, err, out, errOut)
		}
		// The results from the other node, with exemplars, as a script
		// would read them.
		_, rout, rerr := runSwarm(t, bin, "results", rep.ID, "--api", s.Nodes[1].API, "--exemplars", "--json")
		var res node.Results
		if err := json.Unmarshal([]byte(rout), &res); err != nil {
			t.Fatalf("results: %v\n%s\n%s", err, rout, rerr)
		}
		return code, res, rep.ID
	}

	// The shop scales 5 s after the rise: the threshold (lag < 12 s) passes.
	code, res, id := run(fast, 12)
	if code != 0 {
		t.Errorf("scale-up delay 5 s: exit %d, want 0; thresholds %+v", code, res.Thresholds)
	}
	st, err := node.NewClient(s.Nodes[0].API, nil).Test(context.Background(), id, 0, false)
	if err != nil || st.Start == nil {
		t.Fatalf("test status: %v %+v", err, st)
	}
	ev, ok := fast.scaled()
	if !ok {
		t.Fatalf("the shop never scaled the catalog; its log:\n%s", fast.log.String())
	}
	lag := res.Observe.ScaleLag["catalog_replicas"]
	shopLag := ev.At.Sub(st.Start.Add(3 * time.Second)).Seconds()
	if lag == nil || math.Abs(*lag-shopLag) > 2 {
		t.Errorf("scale lag %v s in the report; the shop's log says %.1f s (scaled %d→%d at %s)", fmtLag(lag), shopLag, ev.From, ev.To, ev.At.Format(time.RFC3339Nano))
	}
	var replicas, promReplicas bool
	for _, ser := range res.Observe.Series {
		switch ser.Name {
		case "catalog_replicas":
			replicas = ser.First == 2 && ser.Max > 2
		case "prom_replicas":
			promReplicas = ser.Samples > 5 && ser.Max > 2
		}
	}
	if !replicas || !promReplicas {
		t.Errorf("observed series (from /metrics: %v, from Prometheus: %v): %+v", replicas, promReplicas, res.Observe.Series)
	}
	t.Logf("scale lag %s s (shop log %.1f s); recovery %v", fmtLag(lag), shopLag, res.Observe.Recovery)

	// Trace context, counted at the shop: on every request, sampled at 20%.
	tp := fast.t.Stats().TraceParent
	if tp.Absent != 0 || tp.Invalid != 0 || tp.Sampled+tp.Unsampled == 0 {
		t.Errorf("traceparent at the shop: %+v, want on every request", tp)
	}
	n := float64(tp.Sampled + tp.Unsampled)
	if share := float64(tp.Sampled) / n; math.Abs(share-0.2) > 4*math.Sqrt(0.2*0.8/n) {
		t.Errorf("sampled share %.3f of %.0f requests, want 0.2 within 4 sigma", share, n)
	}
	// Exemplars: each trace id is among the shop's exported spans (the
	// last of them leave the shop up to a batch later).
	if len(res.Exemplars) == 0 {
		t.Error("no exemplars in the results")
	}
	var traces map[string]bool
	missing := 0
	swarmtest.WaitFor(t, 15*time.Second, "every exemplar's trace among the shop's spans", func() (bool, string) {
		traces = map[string]bool{}
		for _, sp := range fast.otlp.Spans() {
			traces[hex.EncodeToString(sp.TraceID[:])] = true
		}
		missing = 0
		for _, e := range res.Exemplars {
			if !traces[e.TraceID] {
				missing++
			}
		}
		return missing == 0, fmt.Sprintf("%d of %d exemplar trace ids are not among the %d traces the shop exported", missing, len(res.Exemplars), len(traces))
	})

	// The real Prometheus: its rate of the nodes' request counters over
	// the last 10 s agrees with the test's request rate over those seconds
	// (requests, not arrivals: the backlog the shop drains after it scales
	// completes then).
	at := st.Start.Add(16 * time.Second)
	q := fmt.Sprintf(`sum(rate(swarm_requests_total{test="%s"}[10s]))`, id)
	v, err := prom.Query(context.Background(), q, at)
	if err != nil {
		t.Fatalf("prometheus: %v", err)
	}
	vec, ok := v.(model.Vector)
	if !ok || len(vec) != 1 {
		t.Fatalf("prometheus %s: %v", q, v)
	}
	var sum float64
	var secs int
	for _, p := range res.Series {
		if p.T >= 6 && p.T < 16 {
			sum += p.Requests
			secs++
		}
	}
	if secs != 10 {
		t.Fatalf("points 6..15: %d of them: %+v", secs, res.Series)
	}
	rate := sum / float64(secs)
	if got := float64(vec[0].Value); math.Abs(got-rate) > 0.02*rate {
		t.Errorf("prometheus rate %.1f/s, the test's request rate %.1f/s over the same seconds: over 2%% apart", got, rate)
	} else {
		t.Logf("prometheus rate %.1f/s, the test's request rate %.1f/s", got, rate)
	}

	// The same test against a shop that takes 30 s to scale: it does not
	// within the test, and the scale_lag threshold fails the run.
	code, res, _ = run(slow, 12)
	if code != 99 {
		t.Errorf("scale-up delay 30 s: exit %d, want 99 (a threshold failed); thresholds %+v", code, res.Thresholds)
	}
	if l := res.Observe.ScaleLag["catalog_replicas"]; l != nil {
		t.Errorf("the slow shop scaled within the test: lag %v", *l)
	}
}

func fmtLag(l *float64) string {
	if l == nil {
		return "never"
	}
	return fmt.Sprintf("%.1f", *l)
}
