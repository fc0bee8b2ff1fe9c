package scenarios

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loadswarm/loadswarm/storage"
)

func mustParse(t *testing.T, y string) *Scenario {
	t.Helper()
	sc, err := Parse([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// countsAll is MaxLate for tests that count every arrival and are not
// about the lateness rule: on a starved machine (other test binaries on
// both cores) the pace loop can be over DefaultMaxLate late now and then,
// and those arrivals would be counted missed, not sent (clock_test.go
// tests that rule).
const countsAll = time.Minute

// arrivalLog records when the server saw each request.
type arrivalLog struct {
	mu    sync.Mutex
	times []time.Time
}

func (l *arrivalLog) add() {
	l.mu.Lock()
	l.times = append(l.times, time.Now())
	l.mu.Unlock()
}

func TestRunRateAccuracy(t *testing.T) {
	var log arrivalLog
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.add()
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	const rate, secs = 400, 4
	sc := mustParse(t, fmt.Sprintf("name: rate\ntarget: %s\nduration: %ds\nload: {rate: %d}\nrequests: [{name: a, check: 'status == 200'}]\n", srv.URL, secs, rate))
	var seconds []int64
	res, err := Run(context.Background(), RunConfig{Scenario: sc, MaxLate: countsAll, OnSecond: func(s *storage.Second) { seconds = append(seconds, s.T) }})
	if err != nil {
		t.Fatal(err)
	}
	sum := storage.Summarize(res.Series, nil)
	if sum.Requests != rate*secs || sum.Errors != 0 || sum.Dropped != 0 || sum.Arrivals != rate*secs || sum.Planned != rate*secs {
		t.Fatalf("summary %+v", sum)
	}
	if math.Abs(sum.Rate.Achieved-rate)/rate > 0.01 || sum.Rate.Target != rate {
		t.Fatalf("report says target %.1f/s achieved %.1f/s, want %d/s", sum.Rate.Target, sum.Rate.Achieved, rate)
	}
	// Achieved rate seen by the server: arrivals over the span between the
	// first and the last, within 1% of the target.
	n := len(log.times)
	span := log.times[n-1].Sub(log.times[0]).Seconds()
	if got := float64(n-1) / span; math.Abs(got-rate)/rate > 0.01 {
		t.Fatalf("server saw %.1f/s, want %d/s within 1%%", got, rate)
	}
	// Every second was handed over in order.
	for i, s := range seconds {
		if i > 0 && s <= seconds[i-1] {
			t.Fatalf("seconds out of order: %v", seconds)
		}
	}
	if len(seconds) < secs {
		t.Fatalf("OnSecond saw %d seconds, want >= %d", len(seconds), secs)
	}
}

// TestCoordinatedOmission: a server that stalls for 1s every 5s. Arrivals
// keep coming during the stall, so their latency (from the scheduled time)
// shows the stall in p99, though most requests are fast.
func TestCoordinatedOmission(t *testing.T) {
	start := time.Now()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if into := time.Since(start) % (5 * time.Second); into < time.Second {
			time.Sleep(time.Second - into)
		}
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	// Start a little after a stall so the run holds one whole stall.
	sc := mustParse(t, fmt.Sprintf("name: co\ntarget: %s\nduration: 5s\nload: {rate: 100, max_in_flight: 1000}\nrequests: [{name: a}]\n", srv.URL))
	res, err := Run(context.Background(), RunConfig{Scenario: sc, MaxLate: countsAll, Start: start.Add(2 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	sum := storage.Summarize(res.Series, nil)
	if sum.Requests != 500 || sum.Dropped != 0 {
		t.Fatalf("requests %d dropped %d", sum.Requests, sum.Dropped)
	}
	// 100 of 500 arrivals land in the stall, waiting 0..1s: p99 is near 1s,
	// the median stays fast.
	if sum.Latency.P99 < 800 || sum.Latency.P50 > 100 {
		t.Fatalf("p50 %.1fms p99 %.1fms: the stall does not show", sum.Latency.P50, sum.Latency.P99)
	}
	if sum.Latency.P90 < 50 {
		t.Fatalf("p90 %.1fms: 20%% of arrivals waited, p90 should show it", sum.Latency.P90)
	}
}

// TestMaxInFlightDrops: arrivals that find the cap reached are dropped and
// counted at once, not queued.
func TestMaxInFlightDrops(t *testing.T) {
	release := make(chan struct{})
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		served.Add(1)
	}))
	defer srv.Close()
	defer close(release)
	sc := mustParse(t, fmt.Sprintf("name: drop\ntarget: %s\nduration: 1s\nload: {rate: 50, max_in_flight: 5}\nrequests: [{name: a}]\n", srv.URL))
	ctx, cancel := context.WithCancel(context.Background())
	var dropped atomic.Int64
	done := make(chan *Result)
	go func() {
		r, _ := Run(ctx, RunConfig{Scenario: sc, MaxLate: countsAll, OnSecond: func(s *storage.Second) {
			dropped.Add(storage.SummarizeSecond(s).Dropped)
		}})
		done <- r
	}()
	deadline := time.Now().Add(5 * time.Second)
	for dropped.Load() < 45 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := dropped.Load(); got != 45 {
		t.Fatalf("dropped %d, want 45 (50 arrivals, 5 in flight)", got)
	}
	cancel()
	res := <-done
	if !res.Canceled {
		t.Fatal("run not marked canceled")
	}
	sum := storage.Summarize(res.Series, nil)
	if sum.Planned != 50 || sum.Arrivals != 5 || sum.Dropped != 45 || sum.Errors != 0 {
		t.Fatalf("summary: planned %d arrivals %d dropped %d errors %d", sum.Planned, sum.Arrivals, sum.Dropped, sum.Errors)
	}
}

func TestErrorClasses(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/500":
			w.WriteHeader(500)
		case "/404":
			w.WriteHeader(404)
		case "/slow":
			time.Sleep(300 * time.Millisecond)
		case "/reset":
			hj, _ := w.(http.Hijacker)
			c, _, _ := hj.Hijack()
			c.Close()
			return
		}
		w.Write([]byte(`{"ok":false}`))
	}))
	defer srv.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	sc := mustParse(t, fmt.Sprintf(`name: errs
target: %s
flow: weighted
duration: 1s
load: {rate: 40}
requests:
  - {name: s500, path: /500}
  - {name: s404, path: /404}
  - {name: slow, path: /slow, timeout: 50ms}
  - {name: reset, path: /reset}
  - {name: refused, url: '%s/x'}
  - {name: dns, url: 'http://no-such-host.invalid/x'}
  - {name: check, path: /ok, check: 'json.ok == true'}
  - {name: ok, path: /ok, check: 'status == 200'}
`, srv.URL, closedURL))
	res, err := Run(context.Background(), RunConfig{Scenario: sc, MaxLate: countsAll})
	if err != nil {
		t.Fatal(err)
	}
	by := storage.SummarizeBy(res.Series, func(d storage.Dim) string { return d.Step })
	want := map[string]string{"s500": ErrHTTP5xx, "s404": ErrHTTP4xx, "slow": ErrTimeout, "reset": ErrReset,
		"refused": ErrRefused, "dns": ErrDNS, "check": ErrCheck}
	for step, class := range want {
		s, ok := by[step]
		if !ok {
			continue // weighted: a step may not be picked in 40 arrivals (p ~ 0.5%)
		}
		if s.Errors != s.Requests || s.ErrorsByClass[class] != s.Requests {
			t.Errorf("step %s: %d requests, errors %v; want all %s", step, s.Requests, s.ErrorsByClass, class)
		}
		if len(res.Series.Samples[class]) == 0 {
			t.Errorf("no sample kept for %s", class)
		}
	}
	if s := by["ok"]; s.Errors != 0 {
		t.Errorf("ok step has errors: %v", s.ErrorsByClass)
	}
}

func TestSequenceFlowExtracts(t *testing.T) {
	var carts atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/login":
			fmt.Fprintf(w, `{"token":"t-%s"}`, r.Header.Get("X-User"))
		case "/cart":
			if r.Header.Get("Authorization") != "Bearer t-u"+r.URL.Query().Get("n") {
				w.WriteHeader(401)
				return
			}
			carts.Add(1)
			w.WriteHeader(201)
		}
	}))
	defer srv.Close()
	sc := mustParse(t, fmt.Sprintf(`name: flow
target: %s
duration: 1s
load: {rate: 20}
requests:
  - name: login
    method: POST
    path: /login
    headers: {X-User: 'u{{ arrival }}'}
    extract: {token: json.token}
  - name: cart
    method: POST
    path: '/cart?n={{ arrival }}'
    headers: {Authorization: 'Bearer {{ vars.token }}'}
    check: status == 201
`, srv.URL))
	res, err := Run(context.Background(), RunConfig{Scenario: sc, MaxLate: countsAll})
	if err != nil {
		t.Fatal(err)
	}
	sum := storage.Summarize(res.Series, nil)
	if carts.Load() != 20 || sum.Requests != 40 || sum.Errors != 0 {
		t.Fatalf("carts %d, requests %d, errors %d %v", carts.Load(), sum.Requests, sum.Errors, res.Series.Samples)
	}
}

func TestHTTP2(t *testing.T) {
	var proto atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(r.Proto)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	sc := mustParse(t, fmt.Sprintf("name: h2\ntarget: %s\nduration: 1s\ndefaults: {http: '2', insecure_skip_verify: true}\nload: {rate: 5}\nrequests: [{name: a}]\n", srv.URL))
	res, err := Run(context.Background(), RunConfig{Scenario: sc, MaxLate: countsAll})
	if err != nil {
		t.Fatal(err)
	}
	if sum := storage.Summarize(res.Series, nil); sum.Errors != 0 || proto.Load() != "HTTP/2.0" {
		t.Fatalf("errors %v, proto %v", sum.ErrorsByClass, proto.Load())
	}
	// Without skipping verification, the self-signed certificate is a TLS error.
	sc = mustParse(t, fmt.Sprintf("name: tls\ntarget: %s\nduration: 1s\nload: {rate: 3}\nrequests: [{name: a}]\n", srv.URL))
	res, _ = Run(context.Background(), RunConfig{Scenario: sc, MaxLate: countsAll})
	if sum := storage.Summarize(res.Series, nil); sum.ErrorsByClass[ErrTLS] != 3 {
		t.Fatalf("want 3 tls errors, got %v", sum.ErrorsByClass)
	}
}

// TestControlUpdate: a running executor takes a new profile mid-run without
// a jump in arrivals: first a higher rate from 1s, then a stop at 2s.
func TestControlUpdate(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { n.Add(1) }))
	defer srv.Close()
	sc := mustParse(t, fmt.Sprintf("name: ctl\ntarget: %s\nduration: 10s\nload: {rate: 50}\nrequests: [{name: a}]\n", srv.URL))
	ctl := NewControl()
	start := time.Now().Add(200 * time.Millisecond)
	done := make(chan *Result)
	go func() {
		r, _ := Run(context.Background(), RunConfig{Scenario: sc, MaxLate: countsAll, Start: start, Control: ctl})
		done <- r
	}()
	// Announced ahead of time, as the scheduler does: 150/s from 1s.
	faster := NewProfile([]Segment{{Dur: 10 * time.Second, From: 150, To: 150}})
	p := sc.Profile.Splice(time.Second, faster)
	ctl.Update(p)
	time.Sleep(time.Until(start.Add(1500 * time.Millisecond)))
	ctl.Update(p.Until(2 * time.Second))
	select {
	case r := <-done:
		sum := storage.Summarize(r.Series, nil)
		// 50 in the first second, 150 in the second, then nothing.
		if sum.Arrivals != 200 || n.Load() != 200 {
			t.Fatalf("arrivals %d (missed or dropped %d), server saw %d; want 200", sum.Arrivals, sum.Dropped, n.Load())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run did not stop at the new end")
	}
}

func TestLatencyDial(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	sc := mustParse(t, fmt.Sprintf("name: far\ntarget: %s\nduration: 1s\nload: {rate: 10}\nrequests: [{name: a}]\n", srv.URL))
	tr := NewTransport(TransportConfig{Dial: LatencyDial(nil, 40*time.Millisecond, 10*time.Millisecond)})
	defer tr.CloseIdleConnections()
	res, err := Run(context.Background(), RunConfig{Scenario: sc, Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	sum := storage.Summarize(res.Series, nil)
	// Every request pays 40-50 ms; new connections pay it twice.
	if sum.Errors != 0 || sum.Latency.Min < 40 || sum.Latency.P50 > 150 {
		t.Fatalf("errors %d, min %.1fms p50 %.1fms: want the simulated 40-50 ms", sum.Errors, sum.Latency.Min, sum.Latency.P50)
	}
}

// TestControlHold: a held run outlives the end of its profile and takes a
// new one (a share paused, then resumed); released, it ends.
func TestControlHold(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { n.Add(1) }))
	defer srv.Close()
	sc := mustParse(t, fmt.Sprintf("name: hold\ntarget: %s\nduration: 10s\nload: {rate: 100}\nrequests: [{name: a}]\n", srv.URL))
	ctl := NewControl()
	ctl.Hold(true)
	start := time.Now()
	// Paused from the start: nothing until 500ms.
	ctl.Update(sc.Profile.Until(0))
	done := make(chan *Result)
	go func() {
		r, _ := Run(context.Background(), RunConfig{Scenario: sc, MaxLate: countsAll, Start: start, Control: ctl})
		done <- r
	}()
	time.Sleep(300 * time.Millisecond)
	select {
	case <-done:
		t.Fatal("a held run ended with its profile")
	default:
	}
	// Resumed for half a second at 100/s: 50 arrivals.
	ctl.Update(Profile{}.Splice(500*time.Millisecond, sc.Profile).Until(time.Second))
	ctl.Hold(false)
	select {
	case r := <-done:
		if got := storage.Summarize(r.Series, nil).Arrivals; got != 50 {
			t.Fatalf("%d arrivals, want 50", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("released run did not end")
	}
}
