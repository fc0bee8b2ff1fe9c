package node

import (
	"log/slog"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/loadswarm/loadswarm/scenarios"
	"github.com/loadswarm/loadswarm/storage"
	"github.com/loadswarm/loadswarm/swarm"
)

// Prometheus metrics, served at GET /metrics on the API listener (through
// the API's guard, like every route: a Prometheus server that scrapes the
// API's address passes, a web page in the operator's browser does not).
//
// Label sets stay bounded over a node's life: labels are the test's id,
// its step names (from the scenario), this node's region and error
// classes, never anything per request; a test's series are deleted
// metricsGrace after this node's last share of it ends.
//
// What each series counts comes from where it is exact:
//   - arrivals, requests and errors from the executor's per-second buckets
//     (RunConfig.OnSecond): the same numbers as the test's results, a
//     second or so behind;
//   - the latency histogram from each finished request
//     (RunConfig.OnRequest), with the request's trace id as an exemplar
//     when its trace is sampled.

// latencyBuckets are the latency histogram's upper bounds, in seconds:
// 1 ms to 60 s, about three per decade (Prometheus and OTLP alike).
var latencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// metricsGrace is how long a test's series stay after this node's last
// share of it ended: long enough for a few scrapes (and OTLP exports) of
// the final values.
var metricsGrace = 2 * time.Minute

// metrics is the node's Prometheus registry and the per-test state that
// feeds it and the OTLP export. Its methods are safe for concurrent use,
// and those that the node's other parts call are safe on a nil *metrics.
type metrics struct {
	n        *Node
	registry *prometheus.Registry
	handler  http.Handler

	// Generator: labels test, region (+ step, + class).
	planned  *prometheus.CounterVec
	sent     *prometheus.CounterVec
	dropped  *prometheus.CounterVec
	missed   *prometheus.CounterVec
	requests *prometheus.CounterVec
	errors   *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	testInfo *prometheus.GaugeVec

	// Node.
	leasesSent     prometheus.Counter
	leasesReceived prometheus.Counter
	replans        prometheus.Counter

	// OTLP export.
	spansDropped  *prometheus.CounterVec // reason
	spansExported prometheus.Counter
	exportErrors  *prometheus.CounterVec // signal

	mu     sync.Mutex
	tests  map[string]*testMetrics // tests with a share on this node now or within metricsGrace
	otlp   *otlpExport             // nil: OTLP export off
	closed bool
	bg     sync.WaitGroup // background flushes and shutdowns of per-test OTLP state
}

// testMetrics is one test's metric state on this node.
type testMetrics struct {
	id     string
	runs   int         // this node's shares of it running now
	gen    uint64      // bumped by every share's start: an older expiry does nothing
	expiry *time.Timer // deletes the series metricsGrace after the last share ended
	shares map[*shareMetrics]struct{}
	steps  map[[2]string]*stepMetrics // by region and step: every share's, for the OTLP latency histograms
	otel   *testOTel                  // nil without OTLP
}

func newMetrics(n *Node) *metrics {
	m := &metrics{n: n, registry: prometheus.NewRegistry(), tests: map[string]*testMetrics{}}
	tr := []string{"test", "region"}
	trs := []string{"test", "region", "step"}
	m.planned = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "swarm_arrivals_planned_total",
		Help: "Arrivals this node's share of the test planned (scheduled), sent or not."}, tr)
	m.sent = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "swarm_arrivals_sent_total",
		Help: "Arrivals this node started (sent at least their first request)."}, tr)
	m.dropped = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "swarm_arrivals_dropped_total",
		Help: "Arrivals not sent because the test's max_in_flight arrivals were outstanding."}, tr)
	m.missed = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "swarm_arrivals_missed_total",
		Help: "Arrivals not sent because the generator reached them more than max-late after their time (a stall)."}, tr)
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "swarm_requests_total",
		Help: "Requests completed (a response or an error), by step."}, trs)
	m.errors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "swarm_request_errors_total",
		Help: "Requests that failed, by step and error class (timeout, refused, http_5xx, check, ...)."}, append(trs, "class"))
	m.latency = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "swarm_request_duration_seconds",
		Help:    "Request latency from the arrival's scheduled send time to the end of the response (coordinated-omission corrected); exemplars carry the trace and span ids of sampled requests.",
		Buckets: latencyBuckets}, trs)
	m.testInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "swarm_test_info",
		Help: "1 for each test this node has (or just had) a share of, with the test's name."}, []string{"test", "name"})
	m.leasesSent = prometheus.NewCounter(prometheus.CounterOpts{Name: "swarm_leases_sent_total",
		Help: "Leases this node published as a test's scheduler."})
	m.leasesReceived = prometheus.NewCounter(prometheus.CounterOpts{Name: "swarm_leases_received_total",
		Help: "Leases this node received from other nodes scheduling its tests."})
	m.replans = prometheus.NewCounter(prometheus.CounterOpts{Name: "swarm_replans_total",
		Help: "New plans this node made for tests it schedules, after each test's first (a node lost, slow or back, a takeover)."})
	m.spansDropped = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "swarm_otlp_spans_dropped_total",
		Help: "Spans not exported: the queue was full (queue_full), the export failed or timed out (export_failed), or the node stopped first (shutdown)."}, []string{"reason"})
	m.spansExported = prometheus.NewCounter(prometheus.CounterOpts{Name: "swarm_otlp_spans_exported_total",
		Help: "Spans the OTLP endpoint accepted."})
	m.exportErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "swarm_otlp_export_errors_total",
		Help: "Failed OTLP exports, by signal (traces, metrics)."}, []string{"signal"})
	m.registry.MustRegister(
		m.planned, m.sent, m.dropped, m.missed, m.requests, m.errors, m.latency, m.testInfo,
		m.leasesSent, m.leasesReceived, m.replans, m.spansDropped, m.spansExported, m.exportErrors,
		&nodeCollector{m: m},
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewGoCollector(),
	)
	// The reasons exist from the start, so that a rate() over them works
	// before the first drop.
	for _, r := range []string{dropQueueFull, dropExportFailed, dropShutdown} {
		m.spansDropped.WithLabelValues(r)
	}
	m.exportErrors.WithLabelValues("traces")
	m.exportErrors.WithLabelValues("metrics")
	m.handler = promhttp.InstrumentMetricHandler(m.registry, promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{
		EnableOpenMetrics:   true, // exemplars are only in OpenMetrics (and protobuf)
		ErrorLog:            slog.NewLogLogger(n.log.Handler(), slog.LevelWarn),
		ErrorHandling:       promhttp.ContinueOnError,
		Registry:            m.registry,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
	return m
}

// Lease and replan counts: the scheduler's activity.

// leaseSent counts a lease this node published as a test's scheduler.
func (m *metrics) leaseSent() {
	if m != nil {
		m.leasesSent.Inc()
	}
}

// leaseReceived counts a lease received from another node.
func (m *metrics) leaseReceived() {
	if m != nil {
		m.leasesReceived.Inc()
	}
}

// replan counts a new plan this node made for a test it schedules, after
// the test's first.
func (m *metrics) replan() {
	if m != nil {
		m.replans.Inc()
	}
}

// startShare prepares the metrics of one run of this node's share of a
// test, before the run starts; the run calls end when it returns. The
// label children of every step are resolved here, once, so that the
// per-request path does no label lookup.
func (m *metrics) startShare(testID, testName, region string, sc *scenarios.Scenario) *shareMetrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.tests[testID]
	if t == nil {
		t = &testMetrics{id: testID, shares: map[*shareMetrics]struct{}{}, steps: map[[2]string]*stepMetrics{}}
		if m.otlp != nil && !m.closed {
			t.otel = m.otlp.newTestOTel(t)
		}
		m.tests[testID] = t
	}
	if t.expiry != nil {
		t.expiry.Stop()
		t.expiry = nil
	}
	t.runs++
	t.gen++
	m.testInfo.WithLabelValues(testID, testName).Set(1)
	s := &shareMetrics{
		m: m, t: t, test: testID, region: region,
		planned: m.planned.WithLabelValues(testID, region),
		sent:    m.sent.WithLabelValues(testID, region),
		dropped: m.dropped.WithLabelValues(testID, region),
		missed:  m.missed.WithLabelValues(testID, region),
		steps:   make(map[string]*stepMetrics, len(sc.Steps)),
		errs:    map[[2]string]prometheus.Counter{},
	}
	if t.otel != nil {
		s.otel = t.otel.forShare(s, m.n.cfg.Name)
		s.spans = t.otel.o
	}
	for _, st := range sc.Steps {
		sm := s.newStep(st.Name, st.Method)
		s.steps[st.Name] = sm
		if k := [2]string{region, st.Name}; t.steps[k] == nil {
			t.steps[k] = sm // shares with the same labels share the histogram
		}
		if len(sc.Steps) <= linearSteps {
			s.stepList = append(s.stepList, sm)
		}
	}
	t.shares[s] = struct{}{}
	return s
}

// expire deletes a test's series once its grace is over, unless a share
// of it started meanwhile.
func (m *metrics) expire(id string, gen uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.tests[id]
	if t == nil || t.gen != gen || t.runs > 0 {
		return
	}
	delete(m.tests, id)
	// Under mu: a share that starts now resolves its children after the
	// deletion, never before it.
	match := prometheus.Labels{"test": id}
	for _, v := range []interface{ DeletePartialMatch(prometheus.Labels) int }{
		m.planned, m.sent, m.dropped, m.missed, m.requests, m.errors, m.latency, m.testInfo,
	} {
		v.DeletePartialMatch(match)
	}
	if t.otel != nil && !m.closed { // closed: close shut it down
		m.background(t.otel.shutdown)
	}
}

// background runs f (an OTLP flush or shutdown, bounded by its own
// timeout) off the caller's goroutine; close waits for it.
func (m *metrics) background(f func()) {
	m.bg.Add(1)
	go func() {
		defer m.bg.Done()
		f()
	}()
}

// close stops the pending expiries and shuts the OTLP export down within
// timeout: the per-test meters export their last values, the span queue
// its last spans.
func (m *metrics) close(timeout time.Duration) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	var tests []*testMetrics
	for _, t := range m.tests {
		if t.expiry != nil {
			t.expiry.Stop()
		}
		tests = append(tests, t)
	}
	o := m.otlp
	m.mu.Unlock()
	deadline := time.Now().Add(timeout)
	if o != nil {
		// Whatever is still exporting at the deadline (a flush begun
		// earlier included) is cut off.
		cut := time.AfterFunc(timeout, o.cancel)
		defer cut.Stop()
		defer o.cancel()
		for _, t := range tests {
			if t.otel != nil {
				m.background(func() { t.otel.shutdownBy(deadline) })
			}
		}
		m.background(func() { o.shutdownTraces(deadline) })
	}
	m.bg.Wait()
	if o != nil {
		o.shutdownMetrics(deadline)
	}
}

// shareMetrics is one run of this node's share of a test: the hooks of its
// scenarios.RunConfig.
type shareMetrics struct {
	m            *metrics
	t            *testMetrics
	test, region string

	planned, sent, dropped, missed prometheus.Counter
	// steps is read-only once the run starts: OnRequest reads it from
	// every worker goroutine. A scenario's few steps are found faster in
	// order than by hashing: the event's step name is the scenario's own
	// string, so each comparison is a length and a pointer.
	steps    map[string]*stepMetrics
	stepList []*stepMetrics // the same, in the scenario's order, when there are few
	// errs and extra are OnSecond's alone (one goroutine at a time).
	errs  map[[2]string]prometheus.Counter
	extra map[string]*stepMetrics // steps missing from the scenario: never expected

	inFlight atomic.Pointer[func() int64]
	otel     *shareOTel  // nil without OTLP
	spans    *otlpExport // nil without OTLP
	ended    atomic.Bool
}

// linearSteps is the most steps looked up by a scan rather than the map.
const linearSteps = 8

// exemplarEvery is how often a latency bucket takes a new exemplar: an
// exemplar costs a few microseconds and allocations (client_golang builds
// and checks it), and a bucket keeps only its latest, so more than one a
// second per bucket buys nothing a scrape would see.
const exemplarEvery = int64(time.Second)

// stepMetrics is a step's pre-resolved series.
type stepMetrics struct {
	name     string
	requests prometheus.Counter
	latency  prometheus.Observer
	exemplar prometheus.ExemplarObserver // latency's, for sampled requests
	// exemplarAt is when each latency bucket (and +Inf) last took an
	// exemplar, in Unix ns of the request's end.
	exemplarAt []atomic.Int64 // len(latencyBuckets)+1
	otel       *stepOTel      // nil without OTLP
}

func (s *shareMetrics) newStep(name, method string) *stepMetrics {
	obs := s.m.latency.WithLabelValues(s.test, s.region, name)
	st := &stepMetrics{name: name, requests: s.m.requests.WithLabelValues(s.test, s.region, name), latency: obs,
		exemplarAt: make([]atomic.Int64, len(latencyBuckets)+1)}
	st.exemplar, _ = obs.(prometheus.ExemplarObserver)
	if s.otel != nil {
		st.otel = s.otel.step(name, method)
	}
	return st
}

// setInFlight gives the share's in-flight count (arrivals outstanding) to
// swarm_arrivals_in_flight; nil removes it.
func (s *shareMetrics) setInFlight(f func() int64) {
	if f == nil {
		s.inFlight.Store(nil)
		return
	}
	s.inFlight.Store(&f)
}

// OnRequest is the run's RunConfig.OnRequest: on the worker goroutine of
// every finished request. It finds the step's series and observes the
// latency (which the OTLP export reads too: latencyProducer); only a
// request whose trace is sampled may cost more: an exemplar (at most one
// a second per bucket), and with OTLP on a span handed to the export
// queue (never a wait).
func (s *shareMetrics) OnRequest(ev *scenarios.RequestEvent) {
	st := s.step(ev.Step)
	if st == nil {
		return // not a step of the scenario: nothing to label it with
	}
	sec := ev.Latency.Seconds()
	sampled := ev.Trace.Sampled && !ev.Trace.IsZero()
	if sampled && st.takeExemplar(sec, ev.End) {
		st.exemplar.ObserveWithExemplar(sec, prometheus.Labels{"trace_id": ev.Trace.TraceIDString(), "span_id": ev.Trace.SpanIDString()})
	} else {
		st.latency.Observe(sec)
	}
	if sampled && st.otel != nil && s.spans != nil {
		s.spans.span(st.otel, ev)
	}
}

func (s *shareMetrics) step(name string) *stepMetrics {
	if s.stepList != nil {
		for _, st := range s.stepList {
			if st.name == name {
				return st
			}
		}
		return nil
	}
	return s.steps[name]
}

// takeExemplar reports whether a sampled request of latency sec, ended at
// end, is the exemplar of its bucket: the first in exemplarEvery.
func (st *stepMetrics) takeExemplar(sec float64, end time.Time) bool {
	if st.exemplar == nil {
		return false
	}
	i := sort.SearchFloat64s(latencyBuckets, sec) // the bucket le >= sec; len: +Inf
	if end.IsZero() {
		end = time.Now()
	}
	at := &st.exemplarAt[i]
	now, last := end.UnixNano(), at.Load()
	return now-last >= exemplarEvery && at.CompareAndSwap(last, now)
}

// OnSecond takes one second of the run's results (RunConfig.OnSecond's
// order: one goroutine at a time).
func (s *shareMetrics) OnSecond(sec *storage.Second) {
	for d, b := range sec.Buckets {
		if b == nil {
			continue
		}
		if b.Planned > 0 {
			s.planned.Add(float64(b.Planned))
		}
		if b.Arrivals > 0 {
			s.sent.Add(float64(b.Arrivals))
		}
		if b.Dropped > 0 {
			if d.Error == scenarios.ErrMissed {
				s.missed.Add(float64(b.Dropped))
			} else {
				s.dropped.Add(float64(b.Dropped))
			}
		}
		var st *stepMetrics
		if b.Requests > 0 {
			st = s.stepForSecond(d.Step)
			st.requests.Add(float64(b.Requests))
		}
		if b.Errors > 0 {
			k := [2]string{d.Step, d.Error}
			c := s.errs[k]
			if c == nil {
				c = s.m.errors.WithLabelValues(s.test, s.region, d.Step, d.Error)
				s.errs[k] = c
			}
			c.Add(float64(b.Errors))
		}
		if s.otel != nil {
			var so *stepOTel
			if st != nil {
				so = st.otel
			}
			s.otel.bucket(d, b, so)
		}
	}
}

// stepForSecond is the step's series for OnSecond, which may resolve a
// step the scenario does not list (it cannot add it to steps, which
// workers read without a lock).
func (s *shareMetrics) stepForSecond(name string) *stepMetrics {
	if st := s.steps[name]; st != nil {
		return st
	}
	if s.extra == nil {
		s.extra = map[string]*stepMetrics{}
	}
	st := s.extra[name]
	if st == nil {
		st = s.newStep(name, "")
		s.extra[name] = st
	}
	return st
}

// end marks the run over. When it was the test's last share here, the
// OTLP meter exports now (in the background) and the test's series go
// after metricsGrace.
func (s *shareMetrics) end() {
	if !s.ended.CompareAndSwap(false, true) {
		return
	}
	m := s.m
	m.mu.Lock()
	defer m.mu.Unlock()
	t := s.t
	delete(t.shares, s)
	t.runs--
	if t.runs > 0 || m.closed {
		return
	}
	if t.otel != nil {
		m.background(t.otel.flush)
	}
	gen := t.gen
	t.expiry = time.AfterFunc(metricsGrace, func() { m.expire(t.id, gen) })
}

// nodeCollector reads the node's state at scrape time: members by state,
// tests running, shares running, the store's size, and the in-flight
// arrivals of the shares that report them.
type nodeCollector struct{ m *metrics }

var (
	descMembers = prometheus.NewDesc("swarm_members",
		"Fleet members as this node sees them, by state (alive, suspect, dead, left), itself included.", []string{"state"}, nil)
	descTestsRunning = prometheus.NewDesc("swarm_tests_running",
		"Tests running (with a plan, not over) as this node sees them.", nil, nil)
	descSharesRunning = prometheus.NewDesc("swarm_shares_running",
		"Shares of tests this node is generating now.", nil, nil)
	descStoreBytes = prometheus.NewDesc("swarm_store_size_bytes",
		"Disk space the results store takes (its files' blocks, as du counts them).", nil, nil)
	descInFlight = prometheus.NewDesc("swarm_arrivals_in_flight",
		"Arrivals this node has sent whose requests are not all done yet.", []string{"test", "region"}, nil)
)

func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descMembers
	ch <- descTestsRunning
	ch <- descSharesRunning
	ch <- descStoreBytes
	ch <- descInFlight
}

func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	m, n := c.m, c.m.n
	if sw := n.sw; sw != nil {
		counts := map[string]int{}
		for _, st := range []swarm.State{swarm.StateAlive, swarm.StateSuspect, swarm.StateDead, swarm.StateLeft} {
			counts[st.String()] = 0
		}
		for _, mb := range sw.Members() {
			counts[mb.State.String()]++
		}
		for st, k := range counts {
			ch <- prometheus.MustNewConstMetric(descMembers, prometheus.GaugeValue, float64(k), st)
		}
	}
	running := 0
	for _, t := range n.reg.list() {
		if t.currentState() == StateRunning {
			running++
		}
	}
	ch <- prometheus.MustNewConstMetric(descTestsRunning, prometheus.GaugeValue, float64(running))
	if st := n.store; st != nil {
		if used, err := st.Usage(); err == nil {
			ch <- prometheus.MustNewConstMetric(descStoreBytes, prometheus.GaugeValue, float64(used))
		}
	}
	type key struct{ test, region string }
	inFlight := map[key]int64{}
	shares := 0
	m.mu.Lock()
	for _, t := range m.tests {
		shares += t.runs
		for s := range t.shares {
			if f := s.inFlight.Load(); f != nil {
				inFlight[key{s.test, s.region}] += (*f)()
			}
		}
	}
	m.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descSharesRunning, prometheus.GaugeValue, float64(shares))
	for k, v := range inFlight {
		ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(v), k.test, k.region)
	}
}
