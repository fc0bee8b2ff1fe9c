package node

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/credentials"

	"github.com/loadswarm/loadswarm/scenarios"
	"github.com/loadswarm/loadswarm/storage"
)

// OTLP export (Config.OTLPEndpoint): a client span for every request whose
// trace is sampled, and the tests' per-second results as OpenTelemetry
// metrics, both over OTLP/gRPC through the OpenTelemetry Go SDK's
// exporters (which read the standard OTEL_EXPORTER_OTLP_* variables:
// headers, certificates, compression, timeout).
//
// An endpoint that is down or slow costs a test nothing: a worker hands a
// span to a bounded queue without waiting (spanQueue) and records metrics
// in memory; exports run on their own goroutines with timeouts, and what
// could not go is counted in swarm_otlp_spans_dropped_total.
//
// Metrics are kept per test: each test with a share on this node gets its
// own MeterProvider (all of them share one exporter), shut down
// metricsGrace after the node's last share of it ended. The SDK keeps
// every attribute set of a cumulative metric for the provider's life and
// has no way to delete one, so one provider for the node's life would
// export every past test forever (and hit its cardinality limit); one per
// test exports a test's series from its start to a final export after its
// end, as the Prometheus series do.

// Why a span was not exported (swarm_otlp_spans_dropped_total's reason).
const (
	dropQueueFull    = "queue_full"
	dropExportFailed = "export_failed"
	dropShutdown     = "shutdown"
)

// Attributes of spans and metrics.
const (
	attrTestID = attribute.Key("loadswarm.test.id")
	attrStep   = attribute.Key("loadswarm.step")
	attrRegion = attribute.Key("loadswarm.region")
	attrNode   = attribute.Key("loadswarm.node")
	attrError  = attribute.Key("error.type")
	attrMethod = attribute.Key("http.request.method")
	attrStatus = attribute.Key("http.response.status_code")
)

// otlpScope is the instrumentation scope of the node's spans and metrics.
const otlpScope = "github.com/loadswarm/loadswarm/node"

// Span queue sizing: the queue holds a few seconds of a busy node's
// sampled requests (a span is about 1 KiB: a few MiB at most). Variables
// so that tests can shrink them.
var (
	spanQueueSize = 4096
	spanBatchSize = 512
)

const (
	spanFlushEvery    = time.Second
	otlpExportTimeout = 10 * time.Second
	// defaultOTLPInterval is how often a test's metrics are exported
	// unless Config.OTLPInterval or OTEL_METRIC_EXPORT_INTERVAL says.
	defaultOTLPInterval = 10 * time.Second
)

// otlpExport is the node's OTLP export: the tracer (with its queue and
// exporter) and the metric exporter that every test's meter shares.
type otlpExport struct {
	m        *metrics
	log      *slog.Logger
	endpoint string
	node     string
	res      *resource.Resource
	tp       *sdktrace.TracerProvider
	tracer   trace.Tracer
	queue    *spanQueue
	mexp     sdkmetric.Exporter
	interval time.Duration // 0: the SDK's (OTEL_METRIC_EXPORT_INTERVAL)
	ctx      context.Context
	cancel   context.CancelFunc // cuts every export in progress off (the node's close)
	lastLog  atomic.Int64       // when an export failure was last logged (Unix ns)
}

// otlpInsecure decides plaintext for the config: the flag when given; else
// the OTEL_EXPORTER_OTLP_*INSECURE variables when set (nil: the SDK reads
// them); else plaintext for a loopback endpoint (a local collector or
// agent) and TLS for any other.
func otlpInsecure(cfg Config, lookup func(string) (string, bool)) *bool {
	if cfg.OTLPInsecure != nil {
		v := *cfg.OTLPInsecure
		return &v
	}
	if otlpEnvInsecure(lookup) {
		return nil
	}
	v := isLoopbackHost(cfg.OTLPEndpoint)
	return &v
}

// otlpEnvInsecure reports whether an OTEL_EXPORTER_OTLP_*INSECURE variable
// is set.
func otlpEnvInsecure(lookup func(string) (string, bool)) bool {
	for _, k := range []string{"OTEL_EXPORTER_OTLP_INSECURE", "OTEL_EXPORTER_OTLP_TRACES_INSECURE", "OTEL_EXPORTER_OTLP_METRICS_INSECURE"} {
		if _, ok := lookup(k); ok {
			return true
		}
	}
	return false
}

func isLoopbackHost(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	host = strings.Trim(strings.ToLower(host), "[]")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// startOTLP creates the exporters; they connect lazily, so an endpoint
// that is down does not stop the node.
func startOTLP(cfg Config, m *metrics, log *slog.Logger) (*otlpExport, error) {
	ctx, cancel := context.WithCancel(context.Background())
	o := &otlpExport{m: m, log: log, endpoint: cfg.OTLPEndpoint, node: cfg.Name, ctx: ctx, cancel: cancel, interval: cfg.OTLPInterval}
	if o.interval == 0 {
		if _, ok := os.LookupEnv("OTEL_METRIC_EXPORT_INTERVAL"); !ok {
			o.interval = defaultOTLPInterval
		}
	}
	topts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(cfg.OTLPEndpoint)}
	mopts := []otlpmetricgrpc.Option{otlpmetricgrpc.WithEndpoint(cfg.OTLPEndpoint)}
	switch ins := otlpInsecure(cfg, os.LookupEnv); {
	case ins == nil: // the OTEL_ variables decide
	case *ins:
		topts = append(topts, otlptracegrpc.WithInsecure())
		mopts = append(mopts, otlpmetricgrpc.WithInsecure())
	case otlpEnvInsecure(os.LookupEnv):
		// --otlp-insecure=false over OTEL_EXPORTER_OTLP_INSECURE: TLS with
		// the system's roots (the SDK's default otherwise, which also
		// reads OTEL_EXPORTER_OTLP_CERTIFICATE).
		creds := credentials.NewClientTLSFromCert(nil, "")
		topts = append(topts, otlptracegrpc.WithTLSCredentials(creds))
		mopts = append(mopts, otlpmetricgrpc.WithTLSCredentials(creds))
	}
	texp, err := otlptracegrpc.New(ctx, topts...)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("otlp traces: %w", err)
	}
	o.mexp, err = otlpmetricgrpc.New(ctx, mopts...)
	if err != nil {
		_ = texp.Shutdown(ctx)
		cancel()
		return nil, fmt.Errorf("otlp metrics: %w", err)
	}
	// Ours first, then OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME:
	// the later wins, so the operator's environment may rename.
	o.res, err = resource.New(ctx,
		resource.WithTelemetrySDK(),
		resource.WithAttributes(
			attribute.String("service.name", "loadswarm"),
			attribute.String("service.version", cfg.Version),
			attribute.String("service.instance.id", cfg.Name),
			attrNode.String(cfg.Name),
		),
		resource.WithFromEnv(),
	)
	if o.res == nil {
		o.res = resource.Default()
	}
	if err != nil {
		log.Warn("OTLP resource: some attributes were left out", "error", err)
	}
	o.queue = newSpanQueue(ctx, texp, spanQueueSize, spanBatchSize, spanFlushEvery, otlpExportTimeout)
	dropped := map[string]prometheus.Counter{}
	for _, r := range []string{dropQueueFull, dropExportFailed, dropShutdown} {
		dropped[r] = m.spansDropped.WithLabelValues(r)
	}
	o.queue.onDrop = func(reason string, k int) { dropped[reason].Add(float64(k)) }
	o.queue.onExport = func(k int) { m.spansExported.Add(float64(k)) }
	o.queue.onError = func(err error) { o.failed("traces", err) }
	o.queue.start()
	o.tp = sdktrace.NewTracerProvider(
		sdktrace.WithResource(o.res),
		sdktrace.WithSampler(sdktrace.AlwaysSample()), // only sampled requests become spans
		sdktrace.WithIDGenerator(requestIDs{}),
		sdktrace.WithSpanProcessor(o.queue),
	)
	o.tracer = o.tp.Tracer(otlpScope)
	interval := o.interval.String()
	if o.interval == 0 {
		interval = "OTEL_METRIC_EXPORT_INTERVAL"
	}
	log.Info("OTLP export on", "endpoint", cfg.OTLPEndpoint, "metric_interval", interval)
	return o, nil
}

// failed counts a failed export and logs it, at most once a minute (an
// endpoint that is down fails every export).
func (o *otlpExport) failed(signal string, err error) {
	o.m.exportErrors.WithLabelValues(signal).Inc()
	now := time.Now().UnixNano()
	last := o.lastLog.Load()
	if now-last >= int64(time.Minute) && o.lastLog.CompareAndSwap(last, now) {
		o.log.Warn("OTLP export failed (logged at most once a minute; swarm_otlp_export_errors_total counts them)",
			"signal", signal, "endpoint", o.endpoint, "error", err)
	}
}

// shutdownTraces exports the spans left and closes the trace exporter;
// what is still going at deadline is cut off.
func (o *otlpExport) shutdownTraces(deadline time.Time) {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := o.tp.Shutdown(ctx); err != nil {
		o.log.Debug("OTLP traces shutdown", "error", err)
	}
}

// shutdownMetrics closes the metric exporter, once every test's meter has
// made its last export.
func (o *otlpExport) shutdownMetrics(deadline time.Time) {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := o.mexp.Shutdown(ctx); err != nil {
		o.log.Debug("OTLP metrics shutdown", "error", err)
	}
}

// span exports one sampled request as a client span whose trace and span
// ids are the ones the request carried in its traceparent header, so that
// the server's spans are its children. The SDK gives a root span the ids
// of its IDGenerator, called with the context given to Start: requestIDs
// takes them from there (a documented extension point, unlike building a
// ReadOnlySpan by hand).
func (o *otlpExport) span(st *stepOTel, ev *scenarios.RequestEvent) {
	ctx := context.WithValue(context.Background(), requestIDsKey{}, ev.Trace)
	name := st.spanName
	if ev.Method != st.method {
		name = ev.Method + " " + st.step
	}
	start := ev.Sent
	if start.IsZero() {
		start = ev.End
	}
	// Every attribute at once: the SDK checks and copies them per call.
	attrs := make([]attribute.KeyValue, len(st.spanAttrs), len(st.spanAttrs)+3)
	copy(attrs, st.spanAttrs)
	attrs = append(attrs, attrMethod.String(ev.Method))
	if ev.Status != 0 {
		attrs = append(attrs, attrStatus.Int(ev.Status))
	}
	if ev.Class != "" {
		attrs = append(attrs, attrError.String(ev.Class))
	}
	_, sp := o.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(start),
		trace.WithAttributes(attrs...))
	if ev.Class != "" {
		sp.SetStatus(codes.Error, ev.Class)
	}
	sp.End(trace.WithTimestamp(ev.End))
}

type requestIDsKey struct{}

// requestIDs is the tracer's IDGenerator: a root span started with a
// context that carries a request's scenarios.TraceContext gets its ids.
type requestIDs struct{}

func (requestIDs) NewIDs(ctx context.Context) (trace.TraceID, trace.SpanID) {
	if tc, ok := ctx.Value(requestIDsKey{}).(scenarios.TraceContext); ok && !tc.IsZero() {
		return tc.TraceID, tc.SpanID
	}
	var tid trace.TraceID
	for !tid.IsValid() {
		binary.NativeEndian.PutUint64(tid[:8], rand.Uint64())
		binary.NativeEndian.PutUint64(tid[8:], rand.Uint64())
	}
	return tid, randomSpanID()
}

func (requestIDs) NewSpanID(context.Context, trace.TraceID) trace.SpanID { return randomSpanID() }

func randomSpanID() trace.SpanID {
	var sid trace.SpanID
	for !sid.IsValid() {
		binary.NativeEndian.PutUint64(sid[:], rand.Uint64())
	}
	return sid
}

// spanQueue is the tracer's span processor. The SDK's BatchSpanProcessor
// either blocks the span's End when its queue is full (WithBlocking) or
// drops the span without telling anyone but its own debug log; this one
// never blocks a worker (OnEnd is a non-blocking send into a bounded
// channel) and counts every span it drops, by reason, for /metrics. One
// goroutine takes spans off the channel, batches them (spanBatchSize, or
// whatever came within spanFlushEvery) and calls the exporter with a
// timeout; a batch that fails is dropped, not retried (the OTLP exporter
// retries within its timeout already): an endpoint that is down holds
// at most one batch and a full queue, and the rest is counted.
type spanQueue struct {
	exp     sdktrace.SpanExporter
	q       chan sdktrace.ReadOnlySpan
	batch   int
	every   time.Duration
	timeout time.Duration

	onDrop   func(reason string, n int)
	onExport func(n int)
	onError  func(error)

	ctx     context.Context    // exports' parent
	cancel  context.CancelFunc // cuts the export in progress off
	flushes chan chan struct{}
	stop    chan struct{}
	done    chan struct{}
	closed  atomic.Bool
}

func newSpanQueue(parent context.Context, exp sdktrace.SpanExporter, size, batch int, every, timeout time.Duration) *spanQueue {
	ctx, cancel := context.WithCancel(parent)
	return &spanQueue{
		exp: exp, q: make(chan sdktrace.ReadOnlySpan, size), batch: batch, every: every, timeout: timeout,
		onDrop: func(string, int) {}, onExport: func(int) {}, onError: func(error) {},
		ctx: ctx, cancel: cancel, flushes: make(chan chan struct{}), stop: make(chan struct{}), done: make(chan struct{}),
	}
}

func (p *spanQueue) start() { go p.run() }

// OnStart does nothing: only ended spans are exported.
func (p *spanQueue) OnStart(context.Context, sdktrace.ReadWriteSpan) {}

// OnEnd queues the span, or drops it (counted) when the queue is full.
func (p *spanQueue) OnEnd(s sdktrace.ReadOnlySpan) {
	if p.closed.Load() {
		p.onDrop(dropShutdown, 1)
		return
	}
	select {
	case p.q <- s:
	default:
		p.onDrop(dropQueueFull, 1)
	}
}

// ForceFlush exports what is queued now.
func (p *spanQueue) ForceFlush(ctx context.Context) error {
	if p.closed.Load() {
		return nil
	}
	ack := make(chan struct{})
	select {
	case p.flushes <- ack:
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ack:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Shutdown exports what is queued and closes the exporter; at ctx's end,
// the export in progress is cut off and what is left is dropped
// (counted).
func (p *spanQueue) Shutdown(ctx context.Context) error {
	if !p.closed.CompareAndSwap(false, true) {
		return nil
	}
	stopCut := context.AfterFunc(ctx, p.cancel)
	defer stopCut()
	close(p.stop)
	<-p.done // bounded: the exports in progress end with ctx
	if n := len(p.q); n > 0 {
		p.onDrop(dropShutdown, n)
	}
	return p.exp.Shutdown(ctx)
}

func (p *spanQueue) run() {
	defer close(p.done)
	buf := make([]sdktrace.ReadOnlySpan, 0, p.batch)
	tick := time.NewTicker(p.every)
	defer tick.Stop()
	export := func() {
		if len(buf) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(p.ctx, p.timeout)
		err := p.exp.ExportSpans(ctx, buf)
		cancel()
		if err != nil {
			p.onDrop(dropExportFailed, len(buf))
			p.onError(err)
		} else {
			p.onExport(len(buf))
		}
		clear(buf)
		buf = buf[:0]
	}
	// drain exports everything queued now, in batches.
	drain := func() {
		for {
			select {
			case s := <-p.q:
				buf = append(buf, s)
				if len(buf) >= p.batch {
					export()
				}
			default:
				export()
				return
			}
		}
	}
	for {
		select {
		case s := <-p.q:
			buf = append(buf, s)
			if len(buf) >= p.batch {
				export()
			}
		case <-tick.C:
			export()
		case ack := <-p.flushes:
			drain()
			close(ack)
		case <-p.stop:
			if p.ctx.Err() == nil {
				drain()
			} else if len(buf) > 0 {
				p.onDrop(dropShutdown, len(buf)) // cut off: no time to export
			}
			return
		}
	}
}

// sharedMetricExporter lets every test's MeterProvider use the node's one
// metric exporter (one gRPC connection; the OTLP exporter is safe for
// concurrent use). A provider's shutdown leaves it open: the node closes
// it last. Failures are counted and logged here, rate-limited, instead of
// going to the SDK's global error handler, which would print every one.
type sharedMetricExporter struct {
	o *otlpExport
}

func (e sharedMetricExporter) Temporality(k sdkmetric.InstrumentKind) metricdata.Temporality {
	return e.o.mexp.Temporality(k)
}

func (e sharedMetricExporter) Aggregation(k sdkmetric.InstrumentKind) sdkmetric.Aggregation {
	return e.o.mexp.Aggregation(k)
}

func (e sharedMetricExporter) Export(ctx context.Context, rm *metricdata.ResourceMetrics) error {
	ctx, cancel := context.WithTimeout(ctx, otlpExportTimeout)
	defer cancel()
	stop := context.AfterFunc(e.o.ctx, cancel) // the node's close cuts it off
	defer stop()
	if err := e.o.mexp.Export(ctx, rm); err != nil {
		e.o.failed("metrics", err)
	}
	return nil
}

func (sharedMetricExporter) ForceFlush(context.Context) error { return nil }
func (sharedMetricExporter) Shutdown(context.Context) error   { return nil }

// testOTel is one test's meter: its own MeterProvider and instruments.
type testOTel struct {
	o        *otlpExport
	mp       *sdkmetric.MeterProvider
	planned  metric.Int64Counter
	sent     metric.Int64Counter
	dropped  metric.Int64Counter
	missed   metric.Int64Counter
	requests metric.Int64Counter
	errors   metric.Int64Counter
}

func (o *otlpExport) newTestOTel(tm *testMetrics) *testOTel {
	ropts := []sdkmetric.PeriodicReaderOption{sdkmetric.WithProducer(&latencyProducer{o: o, t: tm, node: o.node})}
	if o.interval > 0 {
		ropts = append(ropts, sdkmetric.WithInterval(o.interval))
	}
	mp := sdkmetric.NewMeterProvider(
		sdkmetric.WithResource(o.res),
		sdkmetric.WithReader(sdkmetric.NewPeriodicReader(sharedMetricExporter{o}, ropts...)),
	)
	mt := mp.Meter(otlpScope)
	t := &testOTel{o: o, mp: mp}
	counter := func(name, unit, desc string) metric.Int64Counter {
		c, err := mt.Int64Counter(name, metric.WithUnit(unit), metric.WithDescription(desc))
		if err != nil {
			o.log.Warn("OTLP instrument", "name", name, "error", err)
		}
		return c // a no-op one on error
	}
	t.planned = counter("loadswarm.arrivals.planned", "{arrival}", "Arrivals this node's share planned (scheduled), sent or not.")
	t.sent = counter("loadswarm.arrivals.sent", "{arrival}", "Arrivals this node started (sent at least their first request).")
	t.dropped = counter("loadswarm.arrivals.dropped", "{arrival}", "Arrivals not sent: max_in_flight arrivals were outstanding.")
	t.missed = counter("loadswarm.arrivals.missed", "{arrival}", "Arrivals not sent: the generator reached them more than max-late after their time.")
	t.requests = counter("loadswarm.requests", "{request}", "Requests completed (a response or an error).")
	t.errors = counter("loadswarm.request.errors", "{request}", "Requests that failed, by error.type (the error class).")
	return t
}

// flush exports the test's values now (its last share here ended).
func (t *testOTel) flush() {
	ctx, cancel := context.WithTimeout(t.o.ctx, otlpExportTimeout)
	defer cancel()
	_ = t.mp.ForceFlush(ctx)
}

// shutdown exports the test's last values and stops its meter.
func (t *testOTel) shutdown() { t.shutdownBy(time.Now().Add(otlpExportTimeout)) }

func (t *testOTel) shutdownBy(deadline time.Time) {
	ctx, cancel := context.WithDeadline(t.o.ctx, deadline)
	defer cancel()
	_ = t.mp.Shutdown(ctx)
}

// shareOTel is one share's attribute sets, resolved once.
type shareOTel struct {
	t        *testOTel
	base     []attribute.KeyValue // test, region, node
	arrivals []metric.AddOption
	errs     map[[2]string][]metric.AddOption // OnSecond's alone
}

func (t *testOTel) forShare(s *shareMetrics, node string) *shareOTel {
	base := []attribute.KeyValue{attrTestID.String(s.test), attrRegion.String(s.region), attrNode.String(node)}
	return &shareOTel{
		t: t, base: base,
		arrivals: []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(base...))},
		errs:     map[[2]string][]metric.AddOption{},
	}
}

// stepOTel is one step's attribute sets, span name and span attributes.
type stepOTel struct {
	t         *testOTel
	step      string
	method    string
	spanName  string
	spanAttrs []attribute.KeyValue
	set       attribute.Set // test, region, node, step
	add       []metric.AddOption
}

func (s *shareOTel) step(name, method string) *stepOTel {
	attrs := append(append([]attribute.KeyValue(nil), s.base...), attrStep.String(name))
	set := attribute.NewSet(attrs...)
	return &stepOTel{
		t: s.t, step: name, method: method, spanName: method + " " + name, spanAttrs: attrs,
		set: set, add: []metric.AddOption{metric.WithAttributeSet(set)},
	}
}

// latencyProducer hands a test's latency histograms to its meter at each
// collection. They are the Prometheus histograms that OnRequest observes
// anyway (same buckets), read as they stand: recording each request
// through the SDK's histogram too would cost some 400 ns a request (it
// normalizes the attribute set on every call), six times the rest of
// OnRequest. The exemplars go along, with their trace and span ids.
// With delta temporality (OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE)
// it reports what changed since its last collection.
type latencyProducer struct {
	o    *otlpExport
	t    *testMetrics
	node string

	mu   sync.Mutex
	last map[*stepMetrics]histSnap // delta temporality: the previous collection
}

type histSnap struct {
	at     time.Time
	count  uint64
	sum    float64
	counts []uint64
}

func (p *latencyProducer) Produce(context.Context) ([]metricdata.ScopeMetrics, error) {
	m := p.o.m
	m.mu.Lock()
	steps := make([]*stepMetrics, 0, len(p.t.steps))
	for _, st := range p.t.steps {
		if st.otel != nil {
			steps = append(steps, st)
		}
	}
	m.mu.Unlock()
	if len(steps) == 0 {
		return nil, nil
	}
	temporality := p.o.mexp.Temporality(sdkmetric.InstrumentKindHistogram)
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	dps := make([]metricdata.HistogramDataPoint[float64], 0, len(steps))
	for _, st := range steps {
		pm, ok := st.latency.(prometheus.Metric)
		if !ok {
			continue
		}
		var d dto.Metric
		if err := pm.Write(&d); err != nil || d.Histogram == nil {
			continue
		}
		h := d.GetHistogram()
		cur := histSnap{at: now, count: h.GetSampleCount(), sum: h.GetSampleSum(), counts: make([]uint64, len(latencyBuckets)+1)}
		var below uint64
		var exemplars []metricdata.Exemplar[float64]
		for i, b := range h.GetBucket() {
			if i < len(latencyBuckets) {
				cur.counts[i] = b.GetCumulativeCount() - below
				below = b.GetCumulativeCount()
			}
			if e := exemplarOf(b.GetExemplar()); e != nil {
				exemplars = append(exemplars, *e)
			}
		}
		cur.counts[len(latencyBuckets)] = cur.count - below
		start := h.GetCreatedTimestamp().AsTime()
		if h.CreatedTimestamp == nil {
			start = now
		}
		dp := metricdata.HistogramDataPoint[float64]{
			Attributes: st.otel.set, StartTime: start, Time: now,
			Count: cur.count, Sum: cur.sum, Bounds: latencyBuckets, BucketCounts: slices.Clone(cur.counts),
		}
		if temporality == metricdata.DeltaTemporality {
			if p.last == nil {
				p.last = map[*stepMetrics]histSnap{}
			}
			if prev, ok := p.last[st]; ok {
				dp.StartTime = prev.at
				dp.Count -= prev.count
				dp.Sum -= prev.sum
				for i := range dp.BucketCounts {
					dp.BucketCounts[i] -= prev.counts[i]
				}
			}
			p.last[st] = cur
			if dp.Count == 0 {
				continue // as the SDK does: a delta point only for what changed
			}
			exemplars = slices.DeleteFunc(exemplars, func(e metricdata.Exemplar[float64]) bool { return !e.Time.After(dp.StartTime) })
		}
		dp.Exemplars = exemplars
		dps = append(dps, dp)
	}
	if len(dps) == 0 {
		return nil, nil
	}
	return []metricdata.ScopeMetrics{{
		Scope: instrumentation.Scope{Name: otlpScope},
		Metrics: []metricdata.Metrics{{
			Name: "loadswarm.request.duration", Unit: "s",
			Description: "Request latency from the arrival's scheduled send time to the end of the response (coordinated-omission corrected).",
			Data:        metricdata.Histogram[float64]{DataPoints: dps, Temporality: temporality},
		}},
	}}, nil
}

// exemplarOf converts a Prometheus exemplar (labels trace_id and span_id,
// as OnRequest sets them) to an OTLP one.
func exemplarOf(e *dto.Exemplar) *metricdata.Exemplar[float64] {
	if e == nil {
		return nil
	}
	out := &metricdata.Exemplar[float64]{Value: e.GetValue(), Time: e.GetTimestamp().AsTime()}
	for _, l := range e.GetLabel() {
		switch l.GetName() {
		case "trace_id":
			b, err := hex.DecodeString(l.GetValue())
			if err == nil && len(b) == 16 {
				out.TraceID = b
			}
		case "span_id":
			b, err := hex.DecodeString(l.GetValue())
			if err == nil && len(b) == 8 {
				out.SpanID = b
			}
		}
	}
	return out
}

// bucket adds one second's bucket; st is the bucket's step.
func (s *shareOTel) bucket(d storage.Dim, b *storage.Bucket, st *stepOTel) {
	ctx := context.Background()
	t := s.t
	if b.Planned > 0 {
		t.planned.Add(ctx, b.Planned, s.arrivals...)
	}
	if b.Arrivals > 0 {
		t.sent.Add(ctx, b.Arrivals, s.arrivals...)
	}
	if b.Dropped > 0 {
		if d.Error == scenarios.ErrMissed {
			t.missed.Add(ctx, b.Dropped, s.arrivals...)
		} else {
			t.dropped.Add(ctx, b.Dropped, s.arrivals...)
		}
	}
	if b.Requests > 0 && st != nil {
		t.requests.Add(ctx, b.Requests, st.add...)
	}
	if b.Errors > 0 {
		k := [2]string{d.Step, d.Error}
		opts := s.errs[k]
		if opts == nil {
			attrs := append(append([]attribute.KeyValue(nil), s.base...), attrStep.String(d.Step), attrError.String(d.Error))
			opts = []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(attrs...))}
			s.errs[k] = opts
		}
		t.errors.Add(ctx, b.Errors, opts...)
	}
}
