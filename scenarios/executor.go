package scenarios

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	mrand "math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/loadswarm/loadswarm/storage"
)

// MaxBodyRead bounds how much of a response body a check or extraction may
// read; the rest is counted and discarded.
const MaxBodyRead = 10 << 20

// RunConfig is one share of a scenario to run on this node.
type RunConfig struct {
	Scenario *Scenario
	// Profile is this node's share of the arrival rate. Default: the
	// scenario's whole profile.
	Profile *Profile
	// Start is when arrival 0's clock starts; a time in the future makes
	// the executor wait (so that nodes start together). Default: now.
	Start time.Time
	// Seed drives Poisson arrivals. Default: the scenario's seed, or a
	// random one when that is 0 too.
	Seed uint64
	// Transport sends the requests. Default: NewTransport from the
	// scenario's settings.
	Transport http.RoundTripper
	// OnSecond receives each second's results once the second is over, in
	// order, from one goroutine. It must not keep the Second.
	OnSecond func(*storage.Second)
	// Control, when set, lets the caller change the profile while the run
	// goes on (a new share from the scheduler, or a stop at lease expiry).
	Control *Control
	// OnStart, when set, is called with the time the arrival loop actually
	// began (Start, or later if the executor woke late): start skew.
	OnStart func(time.Time)
	// OnRequest, when set, sees every finished request (not those cut
	// off by the run's own stop), on the worker goroutine that sent it: it
	// must be quick, safe for concurrent use, and not keep the event.
	OnRequest func(*RequestEvent)
	// MaxLate is how late past its scheduled time an arrival may still be
	// sent. An arrival the pacer reaches later than that (the process was
	// frozen, the VM suspended, the pacer starved) is not sent: it is
	// counted as missed (Planned and Dropped, error class "missed") in the
	// second it was scheduled in. It bounds the burst after a wake-up to
	// MaxLate's worth of arrivals. Default: DefaultMaxLate; it must not be
	// negative.
	MaxLate time.Duration

	// Test hooks, unexported so that only this package's tests set them.
	// hookPace runs at the top of every pace loop iteration with the
	// number of the next arrival (a test blocks it to simulate a frozen
	// pacer); onLate sees how late each sent arrival was.
	hookPace func(next uint64)
	onLate   func(late time.Duration)
}

// DefaultMaxLate is RunConfig.MaxLate's default: 50 ms, the most that the
// no-overshoot guarantee allows. A target may get at most 105% of the
// planned rate in any second, and a pacer that wakes late sends MaxLate's
// worth of arrivals at once, so MaxLate may be at most 5% of a second.
//
// Measured with TestPaceLateness (four runs at 50/s each and their target
// in one process, on 2 cores): the pace loop is at most 15 ms late alone
// (under -race), and 17-23 ms with both cores kept busy by two CPU
// burners, so normal load misses nothing. Only a machine oversubscribed
// several times over (four burners, or other test suites at once) stalls
// it past 50 ms, and then by 50 ms to seconds: no limit that keeps the 5%
// promise would hide those, and counting the arrivals missed reports a
// starved generator where sending them late would burst.
const DefaultMaxLate = 50 * time.Millisecond

// Control changes a running executor's profile. A new profile must keep
// the past unchanged (build it with Profile.Splice): the pacer goes on
// counting arrivals where it was.
type Control struct {
	p        atomic.Pointer[Profile]
	held     atomic.Bool
	deadline atomic.Pointer[time.Time] // nil: none
	changed  chan struct{}
	inFlight atomic.Pointer[atomic.Int64] // the run's count, once it starts
}

// InFlight is the number of arrivals the run has outstanding (sent, not
// yet done), for metrics; 0 before the run starts.
func (c *Control) InFlight() int64 {
	if n := c.inFlight.Load(); n != nil {
		return n.Load()
	}
	return 0
}

// NewControl returns a control for one run.
func NewControl() *Control { return &Control{changed: make(chan struct{}, 1)} }

// Update replaces the profile; the executor picks it up at once, even
// while it waits for the next arrival.
func (c *Control) Update(p Profile) {
	c.p.Store(&p)
	c.signal()
}

// Hold keeps the run going when its profile runs out (a paused share that
// may get a new profile), until Hold(false).
func (c *Control) Hold(on bool) {
	c.held.Store(on)
	c.signal()
}

// SetDeadline stops the run from sending any arrival scheduled at or after
// t (a share's lease expiry), whatever else the caller is doing: the
// executor enforces it by itself, so a slow or frozen caller cannot make
// the share outlive its lease. Past the deadline the run waits, as when
// held, for a later deadline, a new profile, or the end of ctx; arrivals
// that fall more than MaxLate behind meanwhile are counted as missed in
// their own seconds, so a later deadline resumes the run without a burst,
// and a run whose profile ends while it waits returns (unless held). The
// zero time removes the deadline (the default).
func (c *Control) SetDeadline(t time.Time) {
	if t.IsZero() {
		c.deadline.Store(nil)
	} else {
		c.deadline.Store(&t)
	}
	c.signal()
}

// Deadline returns the current deadline, or the zero time when there is
// none.
func (c *Control) Deadline() time.Time {
	if d := c.deadline.Load(); d != nil {
		return *d
	}
	return time.Time{}
}

func (c *Control) signal() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

// Result is what a run produced.
type Result struct {
	Series   *storage.Series
	Start    time.Time
	Elapsed  time.Duration
	Canceled bool // the context ended the run before the profile did
}

// Run runs one share of a scenario: arrivals at the pacer's times, whatever
// the responses do. An arrival that finds MaxInFlight arrivals outstanding
// is dropped and counted, never delayed; one that the pacer reaches more
// than MaxLate after its time (a frozen process) is counted missed in its
// own second, never sent late in a burst; none scheduled at or after the
// Control's deadline is sent. Latency counts from the arrival's
// scheduled time (coordinated omission corrected); service time from the
// actual send. Run returns when the profile is over and in-flight requests
// have finished, or when ctx ends (in-flight requests are then cut off and
// not recorded).
func Run(ctx context.Context, cfg RunConfig) (*Result, error) {
	sc := cfg.Scenario
	if sc == nil {
		return nil, errors.New("run: no scenario")
	}
	prof := sc.Profile
	if cfg.Profile != nil {
		prof = *cfg.Profile
	}
	maxLate := cfg.MaxLate
	switch {
	case maxLate < 0:
		return nil, fmt.Errorf("run: max late %s: must be >= 0", maxLate)
	case maxLate == 0:
		maxLate = DefaultMaxLate
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = sc.Seed
	}
	if seed == 0 {
		seed = mrand.Uint64()
	}
	rt := cfg.Transport
	if rt == nil {
		t := NewTransport(TransportConfig{HTTP2: sc.HTTP2, Insecure: sc.Insecure, Timeout: sc.Timeout, MaxConns: sc.MaxInFlight})
		defer t.CloseIdleConnections()
		rt = t
	}
	if t, ok := rt.(*Transport); ok && sc.Steps[0].staticURL != nil {
		// Open what the first milliseconds need before they come: by the
		// start time, or for at most warmFor when the run starts now.
		n := int(math.Ceil(prof.RateAt(0) * warmAhead.Seconds()))
		deadline := cfg.Start
		if deadline.IsZero() {
			deadline = time.Now().Add(warmFor)
		}
		wctx, cancel := context.WithDeadline(ctx, deadline)
		t.Warm(wctx, sc.Steps[0].staticURL, max(n, 1))
		cancel()
	}
	start := cfg.Start
	if start.IsZero() {
		start = time.Now()
	}
	if err := sleepUntil(ctx, start); err != nil {
		return &Result{Series: storage.NewSeries(), Start: start, Canceled: true}, nil
	}
	if cfg.OnStart != nil {
		cfg.OnStart(time.Now())
	}
	reqCtx, cancelReqs := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelReqs()
	e := &executor{
		sc: sc, rt: rt, ctx: reqCtx,
		rec:      newRecorder(start),
		jobs:     make(chan arrival),
		maxLate:  maxLate,
		progress: make(chan struct{}, 1),
		hookPace: cfg.hookPace,
		onLate:   cfg.onLate,

		onRequest: cfg.OnRequest,
	}
	if t, ok := rt.(*Transport); ok && t.h2 == nil {
		e.h1 = t
	}
	e.weights = sc.cumulativeWeights()
	e.firstStep = sc.Steps[0].Name
	if cfg.Control != nil {
		cfg.Control.inFlight.Store(&e.inFlight)
	}

	flushDone := make(chan struct{})
	stopFlush := make(chan struct{})
	go func() {
		defer close(flushDone)
		e.flushLoop(stopFlush, cfg.OnSecond)
	}()

	canceled := e.pace(ctx, NewPacer(sc.Arrivals, prof, seed), start, cfg.Control)
	close(e.jobs)
	// Let in-flight arrivals finish: each request is bounded by its
	// timeout, so a flow is bounded by the sum over its steps.
	done := make(chan struct{})
	go func() { e.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		canceled = true
		cancelReqs()
		<-done
	}
	close(stopFlush)
	<-flushDone
	for _, s := range e.rec.flush(1 << 62) {
		if cfg.OnSecond != nil {
			cfg.OnSecond(s)
		}
	}
	return &Result{Series: e.rec.series, Start: start, Elapsed: time.Since(start), Canceled: canceled}, nil
}

func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

type arrival struct {
	n         uint64
	scheduled time.Time
}

type executor struct {
	sc        *Scenario
	rt        http.RoundTripper
	h1        *Transport      // rt, when it is our HTTP/1.1 transport: sent to without a context per request
	ctx       context.Context // requests' parent: outlives the pacer's ctx until the drain
	rec       *recorder
	jobs      chan arrival
	wg        sync.WaitGroup
	inFlight  atomic.Int64
	weights   []float64
	firstStep string
	maxLate   time.Duration

	// watermark is the pacer's progress: every arrival scheduled before
	// it (time since start, in ns) has been sent, dropped or counted
	// missed. The flush loop hands over only seconds wholly below it, so
	// that arrivals missed during a freeze land in their own seconds, not
	// in whatever second is still open when the pacer wakes. progress
	// wakes the flush loop when the watermark moves past a second it may
	// have held back.
	watermark atomic.Int64
	progress  chan struct{}
	markSec   int64 // the second of the last published watermark; the pacer's alone

	hookPace func(next uint64)
	onLate   func(late time.Duration)

	onRequest func(*RequestEvent)
}

// A run warms warmAhead's worth of connections at its starting rate (as
// many as a target answering in that time needs), for at most warmFor
// when it starts at once.
const (
	warmAhead = 20 * time.Millisecond
	warmFor   = time.Second
)

// deadlineTick is how often a pacer that waits at a deadline wakes to
// count the arrivals it has now missed, so that their seconds can be
// handed over while it waits.
const deadlineTick = 100 * time.Millisecond

// pace is the arrival loop: the only place that sleeps. It returns true if
// ctx ended it early.
//
// Each turn decides about one arrival from a fresh reading of the clock:
// more than maxLate overdue, it is skipped with every other such arrival
// (a frozen process wakes to a gap, never to a burst); at or past the
// control's deadline, it waits; not yet due, it sleeps until it is;
// otherwise it is sent.
func (e *executor) pace(ctx context.Context, p Pacer, start time.Time, ctl *Control) (canceled bool) {
	// Whatever ends the loop, no arrival is left unaccounted.
	defer e.publish(math.MaxInt64)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	maxInFlight := int64(e.sc.MaxInFlight)
	var changed chan struct{}
	var current *Profile
	if ctl != nil {
		changed = ctl.changed
	}
	for hits := uint64(0); ; {
		if ctl != nil {
			if np := ctl.p.Load(); np != nil && np != current {
				current = np
				p = withProfile(p, *np)
			}
		}
		if e.hookPace != nil {
			e.hookPace(hits)
		}
		now := time.Now()
		elapsed := now.Sub(start)
		wait, stop := p.Pace(elapsed, hits)
		if stop {
			e.publish(math.MaxInt64)
			if ctl == nil || !ctl.held.Load() {
				return false
			}
			select { // held: wait for a new profile or the release
			case <-ctx.Done():
				return true
			case <-changed:
				continue
			}
		}
		at := elapsed + wait // when arrival hits is scheduled, since start
		e.publish(at)
		if -wait > e.maxLate {
			hits = e.skip(p, elapsed, hits)
			continue
		}
		sleep := wait
		if ctl != nil {
			if d := ctl.deadline.Load(); d != nil && at >= d.Sub(start) {
				// Past the deadline: wait for a change, waking when this
				// arrival is missed so that it is counted.
				sleep = max(wait+e.maxLate+1, deadlineTick)
			}
		}
		if sleep > 0 {
			timer.Reset(sleep)
			select {
			case <-ctx.Done():
				timer.Stop()
				return true
			case <-changed:
				timer.Stop()
			case <-timer.C:
			}
			continue // decide again on a fresh clock reading
		}
		if ctx.Err() != nil {
			return true
		}
		hits++
		if e.onLate != nil {
			e.onLate(-wait)
		}
		sched := start.Add(at)
		if e.inFlight.Load() >= maxInFlight {
			e.rec.arrival(sched, now, e.firstStep, true)
			continue
		}
		e.rec.arrival(sched, now, e.firstStep, false)
		e.inFlight.Add(1)
		e.wg.Add(1)
		a := arrival{n: hits - 1, scheduled: sched}
		select {
		case e.jobs <- a: // an idle worker took it
		default:
			go e.worker(a) // none idle: at most MaxInFlight workers exist
		}
	}
}

// skip counts as missed every arrival from hits on that is more than
// maxLate overdue at elapsed, each in the second it was scheduled in, and
// returns the number of the first arrival that is not. A gap of any length
// costs one pacer step per arrival and one recorder call per second.
func (e *executor) skip(p Pacer, elapsed time.Duration, hits uint64) uint64 {
	sec, n := int64(-1), int64(0)
	for {
		wait, stop := p.Pace(elapsed, hits)
		if stop || -wait <= e.maxLate {
			break
		}
		if s := int64((elapsed + wait) / time.Second); s != sec {
			if n > 0 {
				e.rec.missed(sec, e.firstStep, n)
			}
			sec, n = s, 0
		}
		n++
		hits++
	}
	if n > 0 {
		e.rec.missed(sec, e.firstStep, n)
	}
	e.nudge()
	return hits
}

// publish moves the watermark to at (see executor.watermark), waking the
// flush loop when it enters a new second.
func (e *executor) publish(at time.Duration) {
	e.watermark.Store(int64(at))
	if s := int64(at / time.Second); s != e.markSec {
		e.markSec = s
		e.nudge()
	}
}

func (e *executor) nudge() {
	select {
	case e.progress <- struct{}{}:
	default:
	}
}

// worker runs arrivals until the job channel closes. Each worker owns its
// expression VM and environments, so nothing on this path is shared but the
// recorder.
func (e *executor) worker(a arrival) {
	w := &worker{e: e}
	if e.sc.Tracing.On {
		w.ids = newIDGen()
	}
	for {
		w.run(a)
		e.inFlight.Add(-1)
		e.wg.Done()
		var ok bool
		if a, ok = <-e.jobs; !ok {
			return
		}
	}
}

type worker struct {
	e    *executor
	m    vm.VM
	env  IterEnv
	renv ResponseEnv
	buf  []byte
	jar  *cookiejar.Jar // the current arrival's cookies; made at the first Set-Cookie

	// Tracing (when the scenario has it on): the worker's own id
	// generator, and the current arrival's trace id and sampled flag,
	// which all its steps share.
	ids     idGen
	trace   [16]byte
	sampled bool
	// connWait is how long the request in flight waited for a
	// connection because the transport's budget was spent.
	connWait time.Duration
	// deadline ends the step in flight, redirects included.
	deadline time.Time
	// ev is the request in flight, reused for every request: OnRequest
	// sees it, and its Trace is the request's trace context.
	ev RequestEvent
}

func (w *worker) run(a arrival) {
	sc := w.e.sc
	vars := sc.Vars
	if sc.hasExtract {
		vars = maps.Clone(sc.Vars)
	}
	w.env = IterEnv{Vars: vars, Env: sc.Env, Arrival: int64(a.n)}
	w.jar = nil // each arrival is a new visitor
	if sc.Tracing.On {
		// One trace per arrival: its steps are one user journey.
		w.trace = w.ids.traceID()
		w.sampled = w.ids.sampled(sc.Tracing.Sample)
	}
	if sc.Flow == FlowWeighted {
		i := sort.SearchFloat64s(w.e.weights, mrand.Float64()*w.e.weights[len(w.e.weights)-1])
		w.do(sc.Steps[min(i, len(sc.Steps)-1)], a.scheduled)
		return
	}
	intended := a.scheduled
	for i, st := range sc.Steps {
		end, ok := w.do(st, intended)
		if !ok {
			return // later steps may depend on this one's result
		}
		intended = end
		if d := st.Think.draw(); d > 0 && i < len(sc.Steps)-1 {
			// The user reads the page: no connection held, and the next
			// step's latency counts from when it is sent.
			t := time.NewTimer(d)
			select {
			case <-w.e.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			intended = time.Now()
		}
	}
}

// do sends one step. intended is when the request should have been sent:
// the arrival's scheduled time for the first step, the previous response
// for the next ones. It returns when the exchange ended and whether it
// succeeded. Every request that ends here, except those cut off by the
// run's own stop, is recorded and shown to RunConfig.OnRequest.
func (w *worker) do(st *Step, intended time.Time) (time.Time, bool) {
	rec := w.e.rec
	ev := &w.ev
	*ev = RequestEvent{Step: st.Name, Method: st.Method}
	if w.e.sc.Tracing.On {
		// A fresh span per request; request replaces it with the user's
		// own traceparent, if a header sets one.
		ev.Trace = TraceContext{TraceID: w.trace, SpanID: w.ids.spanID(), Sampled: w.sampled}
	}
	req, bytesOut, err := w.request(st)
	if err != nil {
		// Nothing was sent, so nothing carried a trace context: the
		// event has none (no exemplar, no trace in the sample), and no
		// send time of its own.
		now := time.Now()
		ev.Class, ev.Sent, ev.End, ev.Latency, ev.Trace = ErrOther, now, now, now.Sub(intended), TraceContext{}
		rec.done(now, storage.Dim{Step: st.Name, Error: ErrOther}, ev.Latency, 0, 0, 0, 0, 0, ev.Trace)
		w.sample(ErrOther, fmt.Sprintf("step %s: %v", st.Name, err))
		w.finish()
		return now, false
	}
	sent := time.Now()
	w.connWait, w.deadline = 0, sent.Add(st.Timeout)
	resp, req, bytesIn, err := w.roundTrip(st, req)
	var body []byte
	if err == nil {
		if st.needBody || st.needJSON {
			body, err = w.readBody(resp.Body)
			bytesIn += int64(len(body))
			n, _ := io.Copy(io.Discard, resp.Body)
			bytesIn += n
		} else {
			var n int64
			n, err = io.Copy(io.Discard, resp.Body)
			bytesIn += n
		}
		resp.Body.Close()
	}
	end := time.Now()
	ev.Sent, ev.End, ev.Latency, ev.BytesIn = sent, end, end.Sub(intended), bytesIn
	if err != nil {
		if w.e.ctx.Err() != nil {
			return end, false // cut off by our own stop: not a result
		}
		class := Classify(err)
		if resp != nil {
			ev.Status = resp.StatusCode // the body failed
		}
		ev.Class = class
		rec.done(end, storage.Dim{Step: st.Name, Error: class}, ev.Latency, end.Sub(sent)-w.connWait, w.connWait, bytesIn, bytesOut, ev.Status, ev.Trace)
		w.sample(class, fmt.Sprintf("step %s: %v", st.Name, err))
		w.finish()
		return end, false
	}
	ev.Status = resp.StatusCode
	d := storage.Dim{Step: st.Name, Status: StatusClass(resp.StatusCode)}
	switch {
	case resp.StatusCode >= 500:
		d.Error = ErrHTTP5xx
	case resp.StatusCode >= 400:
		d.Error = ErrHTTP4xx
	}
	if d.Error != "" {
		w.sample(d.Error, fmt.Sprintf("step %s: %s %s: %s", st.Name, req.Method, req.URL.Path, resp.Status))
	}
	if d.Error == "" && (len(st.Checks) > 0 || len(st.Extract) > 0) {
		if msg := w.inspect(st, resp, body, end.Sub(sent)); msg != "" {
			d.Error = ErrCheck
			w.sample(ErrCheck, fmt.Sprintf("step %s: %s", st.Name, msg))
		}
	}
	ev.Class = d.Error
	rec.done(end, d, ev.Latency, end.Sub(sent)-w.connWait, w.connWait, bytesIn, bytesOut, ev.Status, ev.Trace)
	w.finish()
	return end, d.Error == ""
}

// sample records an error sample of the request in flight; a traced
// request's ends with its trace id, to look it up.
func (w *worker) sample(class, msg string) {
	msg = w.e.sc.Redact(msg) // an error may quote a URL or a body with a secret in it
	if !w.ev.Trace.IsZero() {
		msg = storage.TracedSample(msg, w.ev.Trace.TraceID)
	}
	w.e.rec.sample(class, msg)
}

// finish hands the finished request's event to OnRequest.
func (w *worker) finish() {
	if f := w.e.onRequest; f != nil {
		f(&w.ev)
	}
}

func (w *worker) readBody(r io.Reader) ([]byte, error) {
	w.buf = w.buf[:0]
	lr := io.LimitReader(r, MaxBodyRead)
	for {
		if len(w.buf) == cap(w.buf) {
			w.buf = append(w.buf, 0)[:len(w.buf)]
		}
		n, err := lr.Read(w.buf[len(w.buf):cap(w.buf)])
		w.buf = w.buf[:len(w.buf)+n]
		if err == io.EOF {
			return w.buf, nil
		}
		if err != nil {
			return w.buf, err
		}
	}
}

// inspect runs checks and extractions; it returns why the step failed, or
// "".
func (w *worker) inspect(st *Step, resp *http.Response, body []byte, service time.Duration) string {
	w.renv = ResponseEnv{
		Status:   resp.StatusCode,
		Duration: float64(service) / float64(time.Millisecond),
		Vars:     w.env.Vars,
		Env:      w.env.Env,
		Arrival:  w.env.Arrival,
		budget:   newBudget(responseExprMax, "check value"),
	}
	if st.needHeaders {
		w.renv.Headers = flatHeaders(resp.Header)
	}
	if st.needBody {
		w.renv.Body = string(body)
	}
	if st.needJSON {
		var v any
		if json.Unmarshal(body, &v) == nil {
			w.renv.JSON = v
		}
	}
	for _, c := range st.Checks {
		v, err := w.m.Run(c.prog, &w.renv)
		if err != nil {
			return fmt.Sprintf("check %q: %v", c.Src, err)
		}
		if v != true {
			return fmt.Sprintf("check %q failed (status %d)", c.Src, resp.StatusCode)
		}
	}
	for _, x := range st.Extract {
		v, err := w.m.Run(x.prog, &w.renv)
		if err != nil {
			return fmt.Sprintf("extract %s = %q: %v", x.Name, x.Src, err)
		}
		if v == nil {
			return fmt.Sprintf("extract %s = %q: no value", x.Name, x.Src)
		}
		w.env.Vars[x.Name] = v
	}
	return ""
}

func flatHeaders(h http.Header) map[string]string {
	m := make(map[string]string, len(h))
	for k, v := range h {
		m[strings.ToLower(k)] = strings.Join(v, ", ")
	}
	return m
}

// request builds a step's request from its templates. It returns the body
// length for the bytes-out counter. Each template is bounded (URL, each
// header value, body) and so is the sum of the headers; a template that
// would go over fails the request before it builds the string.
func (w *worker) request(st *Step) (*http.Request, int64, error) {
	var u string
	if st.staticURL == nil {
		var err error
		if u, err = st.URL.Render(&w.m, &w.env); err != nil {
			return nil, 0, fmt.Errorf("url template: %w", err)
		}
	}
	var body io.Reader
	var n int64
	if st.Body != nil {
		b, err := st.Body.Render(&w.m, &w.env)
		if err != nil {
			return nil, 0, fmt.Errorf("body template: %w", err)
		}
		body, n = strings.NewReader(b), int64(len(b))
	}
	var req *http.Request
	if st.staticURL != nil {
		// The URL is shared read-only: the transport never changes it.
		req = &http.Request{Method: st.Method, URL: st.staticURL, Host: st.staticURL.Host,
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Header: make(http.Header, 2)}
		if body != nil {
			b := body.(*strings.Reader)
			req.Body, req.ContentLength = io.NopCloser(b), b.Size()
			snapshot := *b
			req.GetBody = func() (io.ReadCloser, error) { r := snapshot; return io.NopCloser(&r), nil }
		}
	} else {
		var err error
		if req, err = http.NewRequest(st.Method, u, body); err != nil {
			return nil, 0, err
		}
	}
	headerBytes := 0
	for _, hs := range []map[string]*Template{w.e.sc.Headers, st.Headers} {
		for k, t := range hs {
			v, err := t.Render(&w.m, &w.env)
			if err != nil {
				return nil, 0, fmt.Errorf("header %s template: %w", k, err)
			}
			if headerBytes += len(k) + len(v); headerBytes > MaxHeaderBytes {
				return nil, 0, fmt.Errorf("headers: %w", &limitError{limit: MaxHeaderBytes, what: "header"})
			}
			if k == "Host" {
				req.Host = v
				continue
			}
			req.Header[k] = []string{v}
		}
	}
	if w.e.sc.Tracing.On {
		// The user's own traceparent goes unchanged, and so does any
		// tracestate (we never add one).
		if v, ok := req.Header[headerTraceparent]; ok {
			w.ev.Trace, _ = parseTraceparent(v[0])
		} else {
			req.Header[headerTraceparent] = traceparentHeader(w.ev.Trace)
		}
	}
	return req, n, nil
}

func (sc *Scenario) cumulativeWeights() []float64 {
	c := make([]float64, len(sc.Steps))
	var sum float64
	for i, st := range sc.Steps {
		sum += st.Weight
		c[i] = sum
	}
	return c
}

// flushLoop hands each finished second to onSecond, a little after the
// second ends so that requests completing at its edge are in, and never
// before the pacer has accounted every arrival scheduled in it (the
// watermark): a pacer that wakes from a freeze first counts what it
// missed, then the seconds go.
func (e *executor) flushLoop(stop <-chan struct{}, onSecond func(*storage.Second)) {
	const lag = 20 * time.Millisecond
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		done := time.Since(e.rec.start) - lag // seconds wholly before this are over
		upTo := min(done, time.Duration(e.watermark.Load())) / time.Second
		for _, s := range e.rec.flush(int64(upTo)) {
			if onSecond != nil {
				onSecond(s)
			}
		}
		next := max(done/time.Second+1, 1)
		timer.Reset(time.Until(e.rec.start.Add(next*time.Second + lag)))
		select {
		case <-stop:
			return
		case <-timer.C:
		case <-e.progress:
		}
	}
}

// recorder collects results into per-second buckets. Its lock is held for
// a map lookup and a histogram increment only, so the pacer is never held
// up for long; callbacks run outside it.
type recorder struct {
	start  time.Time
	mu     sync.Mutex
	open   map[int64]*storage.Second
	floor  int64 // seconds below floor have been flushed
	series *storage.Series
}

func newRecorder(start time.Time) *recorder {
	return &recorder{start: start, open: map[int64]*storage.Second{}, series: storage.NewSeries()}
}

// secondLocked returns the open second i; an event in a second already
// flushed goes to the oldest open one rather than being lost.
func (r *recorder) secondLocked(i int64) *storage.Second {
	i = max(i, r.floor)
	s, ok := r.open[i]
	if !ok {
		s = storage.NewSecond(i)
		r.open[i] = s
	}
	return s
}

// index is the second that t falls in.
func (r *recorder) index(t time.Time) int64 { return int64(t.Sub(r.start) / time.Second) }

// arrival counts one arrival: planned in the second it was scheduled in,
// started (or dropped at the in-flight cap) as of now.
func (r *recorder) arrival(sched, now time.Time, step string, dropped bool) {
	r.mu.Lock()
	ps, ns := r.index(sched), r.index(now)
	if dropped {
		b := r.secondLocked(ps).Bucket(storage.Dim{Step: step, Error: ErrDropped})
		b.Planned++
		b.Dropped++
	} else if ps == ns {
		b := r.secondLocked(ns).Bucket(storage.Dim{Step: step})
		b.Planned++
		b.Arrivals++
	} else {
		r.secondLocked(ps).Bucket(storage.Dim{Step: step}).Planned++
		r.secondLocked(ns).Bucket(storage.Dim{Step: step}).Arrivals++
	}
	r.mu.Unlock()
}

// missed counts n arrivals of second sec that were not sent because the
// pacer reached them too late.
func (r *recorder) missed(sec int64, step string, n int64) {
	r.mu.Lock()
	b := r.secondLocked(sec).Bucket(storage.Dim{Step: step, Error: ErrMissed})
	b.Planned += n
	b.Dropped += n
	r.mu.Unlock()
}

// done records one finished request; a traced one (tc not zero) is offered
// as an exemplar of its second.
func (r *recorder) done(now time.Time, d storage.Dim, latency, service, connWait time.Duration, in, out int64, status int, tc TraceContext) {
	r.mu.Lock()
	s := r.secondLocked(r.index(now))
	if !tc.IsZero() {
		s.AddExemplar(storage.Exemplar{Step: d.Step, TraceID: tc.TraceID, Latency: latency, Status: status, Class: d.Error, Sampled: tc.Sampled})
	}
	b := s.Bucket(d)
	b.Requests++
	if d.Error != "" {
		b.Errors++
	}
	b.BytesIn += in
	b.BytesOut += out
	if connWait > 0 {
		b.ConnWaits++
		b.ConnWaitNs += int64(connWait)
	}
	if b.Latency == nil {
		b.Latency, b.Service = storage.NewHistogram(), storage.NewHistogram()
	}
	b.Latency.Record(latency)
	b.Service.Record(service)
	r.mu.Unlock()
}

func (r *recorder) sample(class, msg string) {
	r.mu.Lock()
	r.series.AddSample(class, msg)
	r.mu.Unlock()
}

// flush removes and returns the open seconds below upTo, in order.
func (r *recorder) flush(upTo int64) []*storage.Second {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*storage.Second
	for i, s := range r.open {
		if i < upTo {
			out = append(out, s)
			delete(r.open, i)
		}
	}
	if upTo > r.floor {
		r.floor = upTo
	}
	sort.Slice(out, func(a, b int) bool { return out[a].T < out[b].T })
	for _, s := range out {
		// Seconds are distinct, so Add only stores; the error cannot
		// happen but is not dropped silently either.
		if err := r.series.Add(s); err != nil {
			r.series.AddSample("internal", err.Error())
		}
	}
	return out
}
