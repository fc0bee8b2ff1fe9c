package testnet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// The shop's backend services, in the order they are reported.
const (
	Catalog  = "catalog"
	Cart     = "cart"
	Payments = "payments"
)

var serviceNames = []string{Catalog, Cart, Payments}

// TargetConfig shapes the demo target, a small shop: a gateway in front of
// three services (catalog, cart, payments). The zero value is a fast,
// healthy shop with unlimited capacity; DefaultTargetConfig is the
// realistic one that `swarm target` serves.
type TargetConfig struct {
	// Latency is added by the gateway to every response. Default 0.
	Latency time.Duration
	// Jitter adds a uniform random 0..Jitter on top. Default 0.
	Jitter time.Duration
	// ErrorRate is the fraction (0-1) of requests the gateway answers 503
	// itself. Default 0.
	ErrorRate float64
	// StallEvery and StallFor make the gateway freeze (like a long GC pause
	// or a failover) for StallFor at the start of every StallEvery: requests
	// arriving in the window wait until it ends. Default: never.
	StallEvery, StallFor time.Duration
	// Items is the catalog size. Default 0 means 100.
	Items int

	// Catalog serves GET /items and GET /items/{id}; Cart serves POST
	// /login, POST /cart and the first half of POST /checkout; Payments the
	// second half of POST /checkout.
	Catalog, Cart, Payments ServiceConfig
	// Retry is the gateway's policy for calls to the services.
	Retry RetryPolicy
	// Autoscale adds and removes the services' replicas.
	Autoscale AutoscaleConfig
	// Logger receives the autoscaler's decisions (see ScaleLogMsg).
	// Default: none.
	Logger *slog.Logger

	// OTLPEndpoint, host:port of an OTLP/gRPC receiver (plaintext, as a
	// local collector or Jaeger serves on 4317), turns on span export: a
	// server span per request under its incoming traceparent, and a span
	// per call to a service. Default "": no export, a no-op tracer.
	OTLPEndpoint string
	// TraceAll records and exports the spans of every request, whatever
	// its traceparent's sampled flag says (what a tail-sampling collector
	// needs). Default false: parent-based, the caller's flag decides, and
	// requests without a trace context are recorded. Needs OTLPEndpoint.
	TraceAll bool
}

// RetryPolicy is how the gateway calls a service. Retries are what turn a
// failing dependency into a retry storm: each attempt is one more request
// on a service that is already failing. The zero value: one attempt, no
// timeout.
type RetryPolicy struct {
	// Retries is how many times a failed call (error, overload, timeout) is
	// tried again. Default 0.
	Retries int
	// Backoff is the wait before the first retry; it doubles for each next
	// one. Default 0.
	Backoff time.Duration
	// Timeout is how long the gateway waits for one attempt. A timed-out
	// attempt keeps its place on the service (servers do not notice that a
	// caller gave up), so timeouts plus retries pile up work. Default 0:
	// no timeout.
	Timeout time.Duration
}

// DefaultTargetConfig is the shop that `swarm target` serves: about 300
// requests per second of catalog capacity at start (2 replicas × 2 in
// flight / ~12.5 ms), queueing beyond, and an autoscaler that takes 10 s to
// react, so that a ×10 spike from a few dozen requests per second shows the
// autoscaling lag. Gateway retries: 2, 50 ms backoff, 2 s timeout.
func DefaultTargetConfig() TargetConfig {
	return TargetConfig{
		Items:    100,
		Catalog:  ServiceConfig{Latency: 10 * time.Millisecond, Jitter: 5 * time.Millisecond, Capacity: 2, Queue: 50, Replicas: 2, MaxReplicas: 12},
		Cart:     ServiceConfig{Latency: 8 * time.Millisecond, Jitter: 4 * time.Millisecond, Capacity: 2, Queue: 50, Replicas: 2, MaxReplicas: 12},
		Payments: ServiceConfig{Latency: 30 * time.Millisecond, Jitter: 20 * time.Millisecond, Capacity: 8, Queue: 50, Replicas: 1, MaxReplicas: 6},
		Retry:    RetryPolicy{Retries: 2, Backoff: 50 * time.Millisecond, Timeout: 2 * time.Second},
		Autoscale: AutoscaleConfig{Enabled: true, Every: time.Second, UpAt: 0.8, DownAt: 0.3, Aim: 0.6,
			UpDelay: 10 * time.Second, DownDelay: 30 * time.Second},
	}
}

// Validate reports every bad field.
func (c TargetConfig) Validate() error {
	var errs []error
	if c.Latency < 0 || c.Jitter < 0 {
		errs = append(errs, errors.New("latency and jitter must be >= 0"))
	}
	if c.ErrorRate < 0 || c.ErrorRate > 1 {
		errs = append(errs, fmt.Errorf("error rate %g: must be 0..1", c.ErrorRate))
	}
	if c.StallFor < 0 || c.StallEvery < 0 || (c.StallFor > 0 && c.StallFor >= c.StallEvery) {
		errs = append(errs, errors.New("stall: need 0 < stall-for < stall-every"))
	}
	if c.Items < 0 || c.Items > 1_000_000 {
		errs = append(errs, errors.New("items must be 0..1000000"))
	}
	for _, name := range serviceNames {
		errs = append(errs, c.service(name).validate(name))
	}
	if c.Retry.Retries < 0 || c.Retry.Retries > 10 {
		errs = append(errs, fmt.Errorf("retries %d: must be 0..10", c.Retry.Retries))
	}
	if c.Retry.Backoff < 0 || c.Retry.Timeout < 0 {
		errs = append(errs, errors.New("retry backoff and timeout must be >= 0"))
	}
	errs = append(errs, c.Autoscale.validate())
	if err := validateOTLPEndpoint(c.OTLPEndpoint); err != nil {
		errs = append(errs, err)
	}
	if c.TraceAll && c.OTLPEndpoint == "" {
		errs = append(errs, errors.New("trace all: needs an OTLP endpoint"))
	}
	return errors.Join(errs...)
}

// service returns a pointer to the named service's config.
func (c *TargetConfig) service(name string) *ServiceConfig {
	switch name {
	case Catalog:
		return &c.Catalog
	case Cart:
		return &c.Cart
	case Payments:
		return &c.Payments
	}
	return nil
}

// Set changes one service field from text "SERVICE.FIELD=VALUE", as in
// `swarm target --set payments.error-rate=0.3`. Fields: latency, jitter
// (durations), error-rate (0-1), capacity, queue, replicas, max-replicas,
// autoscale.delay (the service's scale-up delay, a duration: how long its
// demand must stay high before the autoscaler adds replicas). SERVICE may
// be "all".
func (c *TargetConfig) Set(kv string) error {
	key, val, ok := strings.Cut(kv, "=")
	svc, field, ok2 := strings.Cut(key, ".")
	if !ok || !ok2 {
		return fmt.Errorf("--set %q: want SERVICE.FIELD=VALUE, e.g. payments.error-rate=0.3", kv)
	}
	names := []string{svc}
	if svc == "all" {
		names = serviceNames
	} else if c.service(svc) == nil {
		return fmt.Errorf("--set %q: no service %q (catalog, cart, payments or all)", kv, svc)
	}
	for _, name := range names {
		s := c.service(name)
		var err error
		switch field {
		case "latency":
			s.Latency, err = time.ParseDuration(val)
		case "jitter":
			s.Jitter, err = time.ParseDuration(val)
		case "error-rate":
			s.ErrorRate, err = strconv.ParseFloat(val, 64)
		case "capacity":
			s.Capacity, err = strconv.Atoi(val)
		case "queue":
			s.Queue, err = strconv.Atoi(val)
		case "replicas":
			s.Replicas, err = strconv.Atoi(val)
			s.MaxReplicas = max(s.MaxReplicas, s.Replicas)
		case "max-replicas":
			s.MaxReplicas, err = strconv.Atoi(val)
		case "autoscale.delay":
			s.ScaleUpDelay, err = time.ParseDuration(val)
			if err == nil && s.ScaleUpDelay <= 0 {
				err = errors.New("want a duration > 0")
			}
		default:
			return fmt.Errorf("--set %q: no field %q (latency, jitter, error-rate, capacity, queue, replicas, max-replicas, autoscale.delay)", kv, field)
		}
		if err != nil {
			return fmt.Errorf("--set %q: %v", kv, err)
		}
	}
	return nil
}

// Target is the demo system under test: a tiny shop API. The gateway
// answers every route; most call a service behind it.
//
//	GET  /health            200 ok (gateway only)
//	GET  /items             {"items":[{"id":1,"name":"item-1","price":..}, ...]} (first 20; catalog)
//	GET  /items/{id}        one item, 404 if unknown (catalog)
//	POST /login             {"token":"..."} (cart: sessions)
//	POST /cart              201 with "Authorization: Bearer <token>", else 401 (cart)
//	POST /checkout          201 {"order":..} with a token (cart, then payments)
//	GET  /stats             {"requests":N,"retries":N,"services":{...},"traceparent":{...}}
//	GET  /metrics           Prometheus metrics
//
// A service that fails or is overloaded makes the route answer 503; one
// that does not answer within the retry policy's timeout, 504.
//
// The gateway continues incoming W3C trace context (see trace.go) and
// counts it: Stats().TraceParent and shop_traceparent_total.
type Target struct {
	cfg      TargetConfig
	start    time.Time
	requests atomic.Int64
	retries  atomic.Int64
	mu       sync.Mutex
	tokens   map[string]bool
	items    []byte // pre-encoded /items body
	services map[string]*service
	log      *slog.Logger

	reg         *prometheus.Registry
	reqTotal    *prometheus.CounterVec
	retryTotal  *prometheus.CounterVec
	scaleTotal  *prometheus.CounterVec
	gatewayTime prometheus.Histogram
	metrics     http.Handler

	tracer     trace.Tracer
	tp         *sdktrace.TracerProvider // nil without span export
	traceCount [len(traceStates)]atomic.Int64
	traceTotal [len(traceStates)]prometheus.Counter

	ctx    context.Context // work on services outlives the callers that gave up
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewTarget builds the shop and starts its autoscaler, if enabled; Close
// stops it.
func NewTarget(cfg TargetConfig) (*Target, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	if cfg.Items == 0 {
		cfg.Items = 100
	}
	t := &Target{cfg: cfg, start: time.Now(), tokens: map[string]bool{}, services: map[string]*service{}, log: cfg.Logger}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	for _, name := range serviceNames {
		t.services[name] = newService(name, *cfg.service(name))
	}
	type item struct {
		ID    int     `json:"id"`
		Name  string  `json:"name"`
		Price float64 `json:"price"`
	}
	var list []item
	for i := 1; i <= min(cfg.Items, 20); i++ {
		list = append(list, item{ID: i, Name: fmt.Sprintf("item-%d", i), Price: float64(i) * 1.5})
	}
	t.items, _ = json.Marshal(map[string]any{"items": list, "total": cfg.Items})
	var err error
	if t.tracer, t.tp, err = newTracing(cfg); err != nil {
		return nil, err
	}
	t.initMetrics()
	t.ctx, t.cancel = context.WithCancel(context.Background())
	if cfg.Autoscale.Enabled {
		t.wg.Add(1)
		go func() {
			defer t.wg.Done()
			t.autoscale(cfg.Autoscale.withDefaults())
		}()
	}
	return t, nil
}

// Close stops the autoscaler, cuts short the work in the services, and
// flushes the spans not yet exported (waiting up to 5s for the receiver).
func (t *Target) Close() {
	t.cancel()
	t.wg.Wait()
	if t.tp != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := t.tp.Shutdown(ctx); err != nil {
			t.log.Warn("target: flushing spans", "err", err)
		}
	}
}

// Requests is how many requests the gateway has served.
func (t *Target) Requests() int64 { return t.requests.Load() }

// Stats is a snapshot of the shop: GET /stats.
type Stats struct {
	Requests int64                   `json:"requests"`
	Retries  int64                   `json:"retries"`
	Services map[string]ServiceStats `json:"services"`
	// TraceParent counts requests by their incoming trace context.
	TraceParent TraceParentStats `json:"traceparent"`
}

// Stats returns a snapshot of the shop.
func (t *Target) Stats() Stats {
	st := Stats{Requests: t.requests.Load(), Retries: t.retries.Load(), Services: map[string]ServiceStats{}}
	st.TraceParent = TraceParentStats{
		Sampled:   t.traceCount[stSampled].Load(),
		Unsampled: t.traceCount[stUnsampled].Load(),
		Absent:    t.traceCount[stAbsent].Load(),
		Invalid:   t.traceCount[stInvalid].Load(),
	}
	for name, s := range t.services {
		st.Services[name] = s.stats()
	}
	return st
}

func (t *Target) autoscale(c AutoscaleConfig) {
	tick := time.NewTicker(c.Every)
	defer tick.Stop()
	states := map[string]scaleState{}
	for {
		select {
		case <-t.ctx.Done():
			return
		case now := <-tick.C:
			for _, name := range serviceNames {
				s := t.services[name]
				st := s.stats()
				sc := c
				if s.cfg.ScaleUpDelay > 0 {
					sc.UpDelay = s.cfg.ScaleUpDelay
				}
				want, next := sc.decide(now, st, states[name])
				states[name] = next
				if want == st.Replicas {
					continue
				}
				got := s.setReplicas(want)
				if got == st.Replicas {
					continue
				}
				dir := "up"
				if got < st.Replicas {
					dir = "down"
				}
				t.scaleTotal.WithLabelValues(name, dir).Inc()
				ev := ScaleEvent{Service: name, From: st.Replicas, To: got, At: time.Now()}
				t.log.Info(ScaleLogMsg, scaleLogArgs(ev, st)...)
			}
		}
	}
}

func (t *Target) gatewayDelay() {
	d := jittered(t.cfg.Latency, t.cfg.Jitter)
	if t.cfg.StallEvery > 0 {
		into := time.Since(t.start) % t.cfg.StallEvery
		if into < t.cfg.StallFor {
			d += t.cfg.StallFor - into
		}
	}
	if d > 0 {
		time.Sleep(d)
	}
}

// call runs one request on a service under the retry policy and returns
// the HTTP status to answer with: 0 on success, else 503 or 504. Each
// attempt is a span under ctx's.
func (t *Target) call(ctx context.Context, name string) (int, string) {
	s := t.services[name]
	p := t.cfg.Retry
	var code int
	var why string
	for attempt := 0; ; attempt++ {
		code, why = t.attempt(ctx, s, attempt+1, p.Timeout)
		t.reqTotal.WithLabelValues(name, statusLabel(code)).Inc()
		if code == 0 || attempt >= p.Retries {
			break
		}
		t.retries.Add(1)
		t.retryTotal.WithLabelValues(name).Inc()
		if p.Backoff > 0 {
			time.Sleep(p.Backoff << attempt)
		}
	}
	return code, why
}

func statusLabel(code int) string {
	if code == 0 {
		return "200"
	}
	return strconv.Itoa(code)
}

// attempt makes one call, number n of the request's calls to s, in a
// span of its own; with a timeout the work goes on in the service after
// the gateway gives up on it.
func (t *Target) attempt(ctx context.Context, s *service, n int, timeout time.Duration) (int, string) {
	span := t.startCall(ctx, s.name, n)
	var admitted func()
	began := time.Now()
	var waited atomic.Int64 // queue wait, ns; -1 until given a slot
	waited.Store(-1)
	if span.IsRecording() {
		admitted = func() { waited.Store(int64(time.Since(began))) }
	}
	result := func(err error) (int, string) {
		wait := time.Duration(max(waited.Load(), 0))
		if err == nil {
			endCall(span, OutcomeOK, wait, "")
			return 0, ""
		}
		why := s.name + ": " + err.Error() // failed, overloaded, or shutting down
		endCall(span, outcomeOf(err), wait, why)
		return http.StatusServiceUnavailable, why
	}
	if timeout <= 0 {
		return result(s.do(t.ctx, admitted))
	}
	done := make(chan error, 1)
	go func() { done <- s.do(t.ctx, admitted) }()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case err := <-done:
		return result(err)
	case <-timer.C:
		why := s.name + ": no answer within " + timeout.String()
		wait := time.Duration(waited.Load())
		if wait < 0 {
			wait = time.Since(began) // still queued when the gateway gave up
		}
		endCall(span, OutcomeTimeout, wait, why)
		return http.StatusGatewayTimeout, why
	}
}

// ServeHTTP implements http.Handler: the gateway.
func (t *Target) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/metrics" {
		t.metrics.ServeHTTP(w, r)
		return
	}
	began := time.Now()
	rec := &statusWriter{ResponseWriter: w, code: http.StatusOK}
	ctx, span := t.startRequest(r)
	t.serve(ctx, rec, r)
	endRequest(span, rec.code)
	t.gatewayTime.Observe(time.Since(began).Seconds())
	t.reqTotal.WithLabelValues("gateway", strconv.Itoa(rec.code)).Inc()
}

func (t *Target) serve(ctx context.Context, w http.ResponseWriter, r *http.Request) {
	t.requests.Add(1)
	t.gatewayDelay()
	if t.cfg.ErrorRate > 0 && rand.Float64() < t.cfg.ErrorRate {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	backend := func(name string) bool {
		code, why := t.call(ctx, name)
		if code != 0 {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			fmt.Fprintf(w, "{\"error\":%q}\n", why)
			return false
		}
		return true
	}
	w.Header().Set("Content-Type", "application/json")
	switch p := r.URL.Path; {
	case p == "/" || p == "/health":
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte("ok\n"))
	case p == "/items" && r.Method == http.MethodGet:
		if backend(Catalog) {
			_, _ = w.Write(t.items)
		}
	case strings.HasPrefix(p, "/items/") && r.Method == http.MethodGet:
		id, err := strconv.Atoi(strings.TrimPrefix(p, "/items/"))
		if err != nil || id < 1 || id > t.cfg.Items {
			http.Error(w, `{"error":"no such item"}`, http.StatusNotFound)
			return
		}
		if backend(Catalog) {
			fmt.Fprintf(w, `{"id":%d,"name":"item-%d","price":%.2f,"stock":%d}`, id, id, float64(id)*1.5, id%7)
		}
	case p == "/login" && r.Method == http.MethodPost:
		if !backend(Cart) {
			return
		}
		tok := strconv.FormatUint(rand.Uint64(), 36)
		t.mu.Lock()
		if len(t.tokens) > 100_000 {
			clear(t.tokens) // a demo: keep memory bounded over long runs
		}
		t.tokens[tok] = true
		t.mu.Unlock()
		fmt.Fprintf(w, `{"token":%q}`, tok)
	case (p == "/cart" || p == "/checkout") && r.Method == http.MethodPost:
		tok, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		t.mu.Lock()
		ok := t.tokens[tok]
		t.mu.Unlock()
		if !ok {
			http.Error(w, `{"error":"log in first"}`, http.StatusUnauthorized)
			return
		}
		if !backend(Cart) {
			return
		}
		if p == "/checkout" {
			if !backend(Payments) {
				return
			}
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, `{"order":%q}`, strconv.FormatUint(rand.Uint64(), 36))
			return
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"ok":true}`))
	case p == "/stats":
		b, _ := json.Marshal(t.Stats())
		_, _ = w.Write(b)
	default:
		http.Error(w, `{"error":"not found"}`, http.StatusNotFound)
	}
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

func (t *Target) initMetrics() {
	t.reg = prometheus.NewRegistry()
	t.reqTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shop_requests_total",
		Help: "Requests by service and HTTP status: the gateway's answers, and each attempt on a service (200, 503 failed or overloaded, 504 timed out).",
	}, []string{"service", "code"})
	t.retryTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shop_retries_total", Help: "Retries the gateway made, by service.",
	}, []string{"service"})
	t.scaleTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shop_scale_events_total", Help: "Autoscaler decisions, by service and direction (up, down).",
	}, []string{"service", "direction"})
	t.gatewayTime = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "shop_gateway_duration_seconds", Help: "Time the gateway took to answer.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	})
	traceTotal := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shop_traceparent_total",
		Help: "Requests by the W3C traceparent they came with: sampled, unsampled, absent, invalid (all but /health, /stats and /metrics).",
	}, []string{"state"})
	for i, state := range traceStates {
		t.traceTotal[i] = traceTotal.WithLabelValues(state) // every state shows, from 0
	}
	t.reg.MustRegister(t.reqTotal, t.retryTotal, t.scaleTotal, t.gatewayTime, traceTotal, shopCollector{t})
	t.metrics = promhttp.HandlerFor(t.reg, promhttp.HandlerOpts{})
}

var (
	descReplicas = prometheus.NewDesc("shop_replicas", "Replicas running, by service.", []string{"service"}, nil)
	descInFlight = prometheus.NewDesc("shop_in_flight", "Requests being worked on, by service.", []string{"service"}, nil)
	descQueue    = prometheus.NewDesc("shop_queue_length", "Requests waiting for a free replica, by service.", []string{"service"}, nil)
	descUtil     = prometheus.NewDesc("shop_utilization", "In-flight requests over capacity (replicas x capacity), 0-1, by service.", []string{"service"}, nil)
	descDemand   = prometheus.NewDesc("shop_demand", "In-flight plus queued requests over capacity, by service: above 1, short of replicas.", []string{"service"}, nil)
)

// shopCollector reads the services' gauges at scrape time, each service
// under its own lock, so a scrape sees consistent numbers.
type shopCollector struct{ t *Target }

var _ prometheus.Collector = shopCollector{}

func (c shopCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descReplicas, descInFlight, descQueue, descUtil, descDemand} {
		ch <- d
	}
}

func (c shopCollector) Collect(ch chan<- prometheus.Metric) {
	for _, name := range serviceNames {
		st := c.t.services[name].stats()
		ch <- prometheus.MustNewConstMetric(descReplicas, prometheus.GaugeValue, float64(st.Replicas), name)
		ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(st.InFlight), name)
		ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, float64(st.Queued), name)
		ch <- prometheus.MustNewConstMetric(descUtil, prometheus.GaugeValue, st.Utilization, name)
		ch <- prometheus.MustNewConstMetric(descDemand, prometheus.GaugeValue, st.Demand, name)
	}
}
