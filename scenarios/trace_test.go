package scenarios

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/loadswarm/loadswarm/storage"
)

const tracingBody = "duration: 1s\nload: {rate: 1}\nrequests: [{name: a}]\n"

func TestTracingSpec(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       Tracing
	}{
		{"absent", "", Tracing{On: true, Sample: DefaultTraceSample}},
		{"null", "tracing:\n", Tracing{On: true, Sample: DefaultTraceSample}},
		{"true", "tracing: true\n", Tracing{On: true, Sample: DefaultTraceSample}},
		{"false", "tracing: false\n", Tracing{On: false, Sample: DefaultTraceSample}},
		{"sample", "tracing: {sample: 0.25}\n", Tracing{On: true, Sample: 0.25}},
		{"sample 0", "tracing: {sample: 0}\n", Tracing{On: true, Sample: 0}},
		{"sample 1", "tracing: {sample: 1}\n", Tracing{On: true, Sample: 1}},
		{"disabled", "tracing: {enabled: false}\n", Tracing{On: false, Sample: DefaultTraceSample}},
		{"both", "tracing:\n  enabled: true\n  sample: 0.5\n", Tracing{On: true, Sample: 0.5}},
		{"empty map", "tracing: {}\n", Tracing{On: true, Sample: DefaultTraceSample}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc, err := Parse([]byte(okHead + tracingBody + tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if sc.Tracing != tc.want {
				t.Fatalf("tracing %+v, want %+v", sc.Tracing, tc.want)
			}
			// Re-encoded as JSON or YAML, the spec means the same.
			j, err := json.Marshal(sc.Spec)
			if err != nil {
				t.Fatal(err)
			}
			y, err := yaml.Marshal(sc.Spec.Tracing)
			if err != nil {
				t.Fatal(err)
			}
			for what, data := range map[string][]byte{
				"json": j,
				"yaml": []byte(okHead + tracingBody + "tracing:\n  " + strings.ReplaceAll(strings.TrimSpace(string(y)), "\n", "\n  ") + "\n"),
			} {
				sc2, err := Parse(data)
				if err != nil {
					t.Fatalf("%s: %v\n%s", what, err, data)
				}
				if sc2.Tracing != tc.want {
					t.Fatalf("%s: tracing %+v, want %+v\n%s", what, sc2.Tracing, tc.want, data)
				}
			}
		})
	}
}

func TestTracingSpecErrors(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"over 1", "tracing: {sample: 1.5}\n", "tracing.sample: 1.5 is not a ratio 0..1"},
		{"negative", "tracing: {sample: -0.1}\n", "tracing.sample: -0.1 is not a ratio 0..1"},
		{"NaN", "tracing: {sample: .nan}\n", "tracing.sample: NaN is not a ratio 0..1"},
		{"infinite", "tracing: {sample: .inf}\n", "tracing.sample: +Inf is not a ratio 0..1"},
		{"string sample", "tracing: {sample: lots}\n", `tracing.sample: "lots" is not a number`},
		{"quoted number", "tracing: {sample: '0.5'}\n", `tracing.sample: "0.5" is not a number`},
		{"list sample", "tracing: {sample: [1]}\n", `tracing.sample: "" is not a number`},
		{"unknown key", "tracing: {rate: 0.5}\n", "tracing.rate is unknown (known: enabled, sample)"},
		{"string", "tracing: yes\n", `tracing: "yes" is not true, false or a map`},
		{"number", "tracing: 0.5\n", `tracing: "0.5" is not true, false or a map`},
		{"list", "tracing: [true]\n", "tracing: must be true, false or a map"},
		{"bad enabled", "tracing: {enabled: 'no'}\n", `tracing.enabled: "no" is not true or false`},
		{"set twice", "tracing: {sample: 0.1, sample: 0.2}\n", "sample"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(okHead + tracingBody + tc.yaml))
			if err == nil {
				t.Fatal("accepted a bad tracing field")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error lacks %q:\n%v", tc.want, err)
			}
		})
	}
	// Several problems come back together, the tracing one with its path.
	_, err := Parse([]byte(okHead + "duration: 1s\nload: {rate: -1}\nrequests: [{name: a}]\ntracing: {sample: 2}\n"))
	if err == nil || !strings.Contains(err.Error(), "load.rate") || !strings.Contains(err.Error(), "tracing.sample: 2 is not a ratio") {
		t.Fatalf("error: %v", err)
	}
	// A spec built in Go is checked the same way.
	bad := 1.5
	if _, err := Compile(&Spec{Name: "t", Target: "http://h", Duration: Duration(time.Second), Load: Load{Rate: 1},
		Requests: []StepSpec{{Name: "a"}}, Tracing: TracingSpec{Sample: &bad}}); err == nil || !strings.Contains(err.Error(), "tracing.sample") {
		t.Fatalf("Compile: %v", err)
	}
}

var traceparentRE = regexp.MustCompile(`^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$`)

func TestTraceparentFormat(t *testing.T) {
	tc := TraceContext{Sampled: true}
	for i := range tc.TraceID {
		tc.TraceID[i] = byte(0xa0 + i)
	}
	for i := range tc.SpanID {
		tc.SpanID[i] = byte(i + 1)
	}
	h := traceparentHeader(tc)
	want := "00-a0a1a2a3a4a5a6a7a8a9aaabacadaeaf-0102030405060708-01"
	if len(h) != 1 || h[0] != want {
		t.Fatalf("header %q, want %q", h, want)
	}
	got, ok := parseTraceparent(want)
	if !ok || got != tc {
		t.Fatalf("parse: %+v %v", got, ok)
	}
	tc.Sampled = false
	if h := traceparentHeader(tc); h[0] != strings.TrimSuffix(want, "01")+"00" {
		t.Fatalf("unsampled header %q", h)
	}
	if n := testing.AllocsPerRun(100, func() { _ = traceparentHeader(tc) }); n > 1 {
		t.Fatalf("%v allocations per header, want at most 1", n)
	}

	for _, bad := range []string{
		"",
		"00-a0a1a2a3a4a5a6a7a8a9aaabacadaeaf-0102030405060708-0",           // short
		"00-a0a1a2a3a4a5a6a7a8a9aaabacadaeaf-0102030405060708-01-x",        // version 00 with more
		"00-A0A1A2A3A4A5A6A7A8A9AAABACADAEAF-0102030405060708-01",          // upper case
		"00-00000000000000000000000000000000-0102030405060708-01",          // zero trace id
		"00-a0a1a2a3a4a5a6a7a8a9aaabacadaeaf-0000000000000000-01",          // zero span id
		"ff-a0a1a2a3a4a5a6a7a8a9aaabacadaeaf-0102030405060708-01",          // version ff
		"00_a0a1a2a3a4a5a6a7a8a9aaabacadaeaf-0102030405060708-01",          // separator
		"00-a0a1a2a3a4a5a6a7a8a9aaabacadaeag-0102030405060708-01",          // not hex
		"01-a0a1a2a3a4a5a6a7a8a9aaabacadaeaf-0102030405060708-01x",         // later version, no dash
		" 00-a0a1a2a3a4a5a6a7a8a9aaabacadaeaf-0102030405060708-01",         // space
		"00-a0a1a2a3a4a5a6a7a8a9aaabacadaeaf-0102030405060708-0g",          // flags
		"00-a0a1a2a3a4a5a6a7a8a9aaabacadaeaf0-102030405060708-01",          // dash moved
		"00-a0a1a2a3a4a5a6a7a8a9aaabacadaeaf-0102030405060708-01" + "\x00", // trailing byte
	} {
		if tc, ok := parseTraceparent(bad); ok || !tc.IsZero() {
			t.Errorf("parsed %q: %+v", bad, tc)
		}
	}
	// A later version may add fields.
	if tc, ok := parseTraceparent("01-a0a1a2a3a4a5a6a7a8a9aaabacadaeaf-0102030405060708-03-what"); !ok || !tc.Sampled {
		t.Errorf("later version refused: %+v", tc)
	}
}

func TestIDGen(t *testing.T) {
	g, h := newIDGen(), newIDGen()
	seen := map[[16]byte]bool{}
	for range 10000 {
		id := g.traceID()
		if seen[id] || id == [16]byte{} {
			t.Fatalf("trace id %x repeated or zero", id)
		}
		seen[id] = true
		if g.spanID() == [8]byte{} {
			t.Fatal("zero span id")
		}
	}
	if g.traceID() == h.traceID() {
		t.Fatal("two workers draw the same ids")
	}
	if g.sampled(0) || !g.sampled(1) {
		t.Fatal("ratio 0 or 1 not honoured")
	}
}

// seenRequest is what the test server saw of one request.
type seenRequest struct {
	path, query string
	traceparent string
	tracestate  []string
	nParent     int // traceparent headers sent
}

// traceServer records the trace headers of every request.
type traceServer struct {
	*httptest.Server
	mu   sync.Mutex
	seen []seenRequest
}

func newTraceServer(t *testing.T) *traceServer {
	ts := &traceServer{}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ts.mu.Lock()
		ts.seen = append(ts.seen, seenRequest{path: r.URL.Path, query: r.URL.RawQuery, traceparent: r.Header.Get("traceparent"),
			tracestate: r.Header.Values("tracestate"), nParent: len(r.Header.Values("traceparent"))})
		ts.mu.Unlock()
		switch r.URL.Path {
		case "/500":
			w.WriteHeader(500)
		}
		w.Write([]byte(`{"ok":false}`))
	}))
	t.Cleanup(ts.Close)
	return ts
}

func (ts *traceServer) requests() []seenRequest {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]seenRequest(nil), ts.seen...)
}

// traceRun runs sc and returns the events and exemplars it produced.
type traceRun struct {
	mu        sync.Mutex
	events    []RequestEvent
	exemplars []storage.Exemplar
	res       *Result
}

func runTraced(t *testing.T, sc *Scenario) *traceRun {
	t.Helper()
	tr := &traceRun{}
	res, err := Run(context.Background(), RunConfig{Scenario: sc, MaxLate: countsAll,
		OnRequest: func(ev *RequestEvent) {
			tr.mu.Lock()
			tr.events = append(tr.events, *ev)
			tr.mu.Unlock()
		},
		OnSecond: func(s *storage.Second) {
			tr.exemplars = append(tr.exemplars, s.Exemplars...)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	tr.res = res
	return tr
}

func traceIDOf(t *testing.T, tp string) string {
	t.Helper()
	if !traceparentRE.MatchString(tp) {
		t.Fatalf("traceparent %q is not valid", tp)
	}
	return tp[3:35]
}

// TestTracingSequence: a 2-step flow with every trace sampled: every
// request carries a valid traceparent; the steps of one arrival share a
// trace id, arrivals do not; span ids are all distinct; OnRequest sees each
// request once, with the context the server saw; exemplars name traces the
// server saw.
func TestTracingSequence(t *testing.T) {
	ts := newTraceServer(t)
	const arrivals = 200
	sc := mustParse(t, fmt.Sprintf(`name: seq
target: %s
duration: 1s
load: {rate: %d}
tracing: {sample: 1.0}
requests:
  - {name: a, path: '/a?n={{ arrival }}'}
  - {name: b, path: '/b?n={{ arrival }}', check: 'status == 200'}
`, ts.URL, arrivals))
	tr := runTraced(t, sc)
	seen := ts.requests()
	if len(seen) != 2*arrivals {
		t.Fatalf("server saw %d requests, want %d", len(seen), 2*arrivals)
	}
	byArrival := map[string]map[string]string{} // n -> path -> trace id
	spans := map[string]bool{}
	traces := map[string]bool{}
	for _, r := range seen {
		if r.nParent != 1 || !strings.HasSuffix(r.traceparent, "-01") {
			t.Fatalf("request %s?%s: %d traceparent headers, %q", r.path, r.query, r.nParent, r.traceparent)
		}
		if len(r.tracestate) != 0 {
			t.Fatalf("tracestate added: %q", r.tracestate)
		}
		id := traceIDOf(t, r.traceparent)
		if byArrival[r.query] == nil {
			byArrival[r.query] = map[string]string{}
		}
		byArrival[r.query][r.path] = id
		span := r.traceparent[36:52]
		if spans[span] {
			t.Fatalf("span id %s sent twice", span)
		}
		spans[span] = true
		traces[id] = true
	}
	if len(byArrival) != arrivals || len(traces) != arrivals {
		t.Fatalf("%d arrivals, %d trace ids; want %d of each", len(byArrival), len(traces), arrivals)
	}
	for n, m := range byArrival {
		if m["/a"] == "" || m["/a"] != m["/b"] {
			t.Fatalf("arrival %s: steps have trace ids %v", n, m)
		}
	}

	if len(tr.events) != 2*arrivals {
		t.Fatalf("OnRequest saw %d requests, want %d", len(tr.events), 2*arrivals)
	}
	sent := map[string]bool{}
	for _, r := range seen {
		sent[r.traceparent] = true
	}
	for _, ev := range tr.events {
		if (ev.Step != "a" && ev.Step != "b") || ev.Method != "GET" || ev.Status != 200 || ev.Class != "" ||
			ev.BytesIn != int64(len(`{"ok":false}`)) || ev.Sent.IsZero() || ev.End.Before(ev.Sent) || ev.Latency < ev.End.Sub(ev.Sent) {
			t.Fatalf("event %+v", ev)
		}
		if tp := traceparentHeader(ev.Trace)[0]; !sent[tp] {
			t.Fatalf("event's trace context %s was not sent", tp)
		}
	}

	if len(tr.exemplars) == 0 {
		t.Fatal("no exemplars")
	}
	for _, e := range tr.exemplars {
		if !traces[hex.EncodeToString(e.TraceID[:])] || (e.Step != "a" && e.Step != "b") || e.Status != 200 || e.Class != "" || !e.Sampled || e.Latency <= 0 {
			t.Fatalf("exemplar %+v", e)
		}
	}
	for T, sec := range tr.res.Series.Seconds {
		if n := len(sec.Exemplars); n > 2*2 { // 2 steps, successes only
			t.Fatalf("second %d keeps %d exemplars", T, n)
		}
	}
}

// TestTracingSampleRatio: with sample 0.3 over 2000 arrivals, the sampled
// share is within 4 sigma of 0.3, and every request still carries a valid
// traceparent with its own trace id.
func TestTracingSampleRatio(t *testing.T) {
	ts := newTraceServer(t)
	const p = 0.3
	sc := mustParse(t, fmt.Sprintf("name: ratio\ntarget: %s\nduration: 2s\nload: {rate: 1000}\ntracing: {sample: %v}\nrequests: [{name: a}]\n", ts.URL, p))
	tr := runTraced(t, sc)
	seen := ts.requests()
	if len(seen) < 1900 {
		t.Fatalf("server saw %d requests, want about 2000", len(seen))
	}
	ids := map[string]bool{}
	sampled := 0
	for _, r := range seen {
		id := traceIDOf(t, r.traceparent)
		if ids[id] {
			t.Fatalf("trace id %s used by two arrivals", id)
		}
		ids[id] = true
		if strings.HasSuffix(r.traceparent, "-01") {
			sampled++
		}
	}
	n := float64(len(seen))
	if sigma := math.Sqrt(n * p * (1 - p)); math.Abs(float64(sampled)-n*p) > 4*sigma {
		t.Fatalf("%d of %.0f sampled, want %.0f ± %.0f", sampled, n, n*p, 4*sigma)
	}
	evSampled := 0
	for _, ev := range tr.events {
		if ev.Trace.Sampled {
			evSampled++
		}
	}
	if len(tr.events) != len(seen) || evSampled != sampled {
		t.Fatalf("events: %d, %d sampled; server: %d, %d sampled", len(tr.events), evSampled, len(seen), sampled)
	}
}

// TestTracingOff: no traceparent, zero trace contexts, no exemplars.
func TestTracingOff(t *testing.T) {
	ts := newTraceServer(t)
	sc := mustParse(t, fmt.Sprintf("name: off\ntarget: %s\nduration: 1s\nload: {rate: 50}\ntracing: false\nrequests: [{name: a}, {name: b, path: /500}]\n", ts.URL))
	tr := runTraced(t, sc)
	seen := ts.requests()
	if len(seen) != 100 {
		t.Fatalf("server saw %d requests", len(seen))
	}
	for _, r := range seen {
		if r.nParent != 0 {
			t.Fatalf("traceparent %q sent with tracing off", r.traceparent)
		}
	}
	for _, ev := range tr.events {
		if !ev.Trace.IsZero() {
			t.Fatalf("event has a trace context: %+v", ev)
		}
	}
	if len(tr.events) != 100 || len(tr.exemplars) != 0 {
		t.Fatalf("%d events, %d exemplars", len(tr.events), len(tr.exemplars))
	}
	for _, m := range tr.res.Series.Samples[ErrHTTP5xx] {
		if strings.Contains(m, "trace=") {
			t.Fatalf("sample with a trace: %q", m)
		}
	}
}

// TestUserTraceparent: a traceparent the user sets is sent unchanged, and
// so is tracestate; the event's context is parsed from it when valid, zero
// otherwise; other steps get ours.
func TestUserTraceparent(t *testing.T) {
	ts := newTraceServer(t)
	const user = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	sc := mustParse(t, fmt.Sprintf(`name: user
target: %s
duration: 1s
load: {rate: 20}
defaults: {headers: {tracestate: 'congo=t61rcWkgMzE'}}
requests:
  - {name: mine, path: /mine, headers: {traceparent: '%s'}}
  - {name: bad, path: /bad, headers: {TraceParent: 'not-a-traceparent'}}
  - {name: ours, path: /ours}
`, ts.URL, user))
	tr := runTraced(t, sc)
	seen := ts.requests()
	if len(seen) != 60 {
		t.Fatalf("server saw %d requests", len(seen))
	}
	for _, r := range seen {
		if len(r.tracestate) != 1 || r.tracestate[0] != "congo=t61rcWkgMzE" || r.nParent != 1 {
			t.Fatalf("%s: tracestate %q, %d traceparent", r.path, r.tracestate, r.nParent)
		}
		switch r.path {
		case "/mine":
			if r.traceparent != user {
				t.Fatalf("user traceparent changed to %q", r.traceparent)
			}
		case "/bad":
			if r.traceparent != "not-a-traceparent" {
				t.Fatalf("user traceparent changed to %q", r.traceparent)
			}
		default:
			traceIDOf(t, r.traceparent)
		}
	}
	want, _ := parseTraceparent(user)
	for _, ev := range tr.events {
		switch ev.Step {
		case "mine":
			if ev.Trace != want {
				t.Fatalf("event of the user's traceparent: %+v", ev.Trace)
			}
		case "bad":
			if !ev.Trace.IsZero() {
				t.Fatalf("event of a bad traceparent: %+v", ev.Trace)
			}
		default:
			if ev.Trace.IsZero() {
				t.Fatal("our step has no trace context")
			}
		}
	}
	for _, e := range tr.exemplars {
		if e.Step == "bad" {
			t.Fatalf("exemplar without a valid trace context: %+v", e)
		}
	}
}

// TestOnRequestOutcomes: OnRequest sees every finished request once, with
// its step, status and class, and traced error samples end with a trace id
// the server saw (or, for a request never sent, none).
func TestOnRequestOutcomes(t *testing.T) {
	ts := newTraceServer(t)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	sc := mustParse(t, fmt.Sprintf(`name: outcomes
target: %s
flow: weighted
duration: 1s
load: {rate: 150}
vars: {s: toolong}
tracing: {sample: 1}
requests:
  - {name: ok, path: /ok}
  - {name: s500, path: /500}
  - {name: check, path: /check, check: 'json.ok == true'}
  - {name: refused, url: '%s/x'}
  - {name: template, path: /t, method: POST, body: '{{ vars.s }}', max_body: 4}
`, ts.URL, closedURL))
	tr := runTraced(t, sc)
	want := map[string]struct {
		status int
		class  string
	}{
		"ok": {200, ""}, "s500": {500, ErrHTTP5xx}, "check": {200, ErrCheck},
		"refused": {0, ErrRefused}, "template": {0, ErrOther},
	}
	count := map[string]int64{}
	for _, ev := range tr.events {
		w, ok := want[ev.Step]
		if !ok || ev.Status != w.status || ev.Class != w.class {
			t.Fatalf("event %+v, want %+v", ev, w)
		}
		if (ev.Step == "template") != ev.Trace.IsZero() {
			t.Fatalf("event %s: trace context %+v", ev.Step, ev.Trace)
		}
		count[ev.Step]++
	}
	by := storage.SummarizeBy(tr.res.Series, func(d storage.Dim) string { return d.Step })
	for step := range want {
		if count[step] == 0 || count[step] != by[step].Requests {
			t.Errorf("step %s: %d events, %d requests recorded", step, count[step], by[step].Requests)
		}
	}

	seenIDs := map[string]bool{}
	for _, r := range ts.requests() {
		seenIDs[traceIDOf(t, r.traceparent)] = true
	}
	suffix := regexp.MustCompile(` trace=([0-9a-f]{32})$`)
	for class, msgs := range tr.res.Series.Samples {
		for _, m := range msgs {
			sm := suffix.FindStringSubmatch(m)
			switch class {
			case ErrOther:
				if sm != nil {
					t.Errorf("sample of a request never sent has a trace: %q", m)
				}
			case ErrRefused:
				if sm == nil {
					t.Errorf("sample without a trace: %q", m)
				}
			default:
				if sm == nil || !seenIDs[sm[1]] {
					t.Errorf("sample without a trace the server saw: %q", m)
				}
			}
		}
	}
	failed := map[string]bool{}
	for _, e := range tr.exemplars {
		if e.Failed() {
			failed[e.Step] = true
			if w := want[e.Step]; e.Class != w.class || e.Status != w.status {
				t.Errorf("exemplar %+v", e)
			}
		}
		if e.Step == "template" {
			t.Errorf("exemplar of a request never sent: %+v", e)
		}
	}
	for _, step := range []string{"s500", "check", "refused"} {
		if !failed[step] {
			t.Errorf("no failed exemplar of %s", step)
		}
	}
}

// TestOnRequestNotForCutOff: requests cut off by the run's own stop are not
// results, and OnRequest does not see them.
func TestOnRequestNotForCutOff(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 1000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
	}))
	defer srv.Close()
	defer close(release)
	sc := mustParse(t, fmt.Sprintf("name: cut\ntarget: %s\nduration: 10s\nload: {rate: 20}\nrequests: [{name: hang, path: /hang}]\n", srv.URL))
	ctx, cancel := context.WithCancel(context.Background())
	var events sync.Map
	done := make(chan *Result)
	go func() {
		r, _ := Run(ctx, RunConfig{Scenario: sc, MaxLate: countsAll, OnRequest: func(ev *RequestEvent) { events.Store(ev.Trace, true) }})
		done <- r
	}()
	timeout := time.After(10 * time.Second)
	for range 5 {
		select {
		case <-arrived:
		case <-timeout:
			t.Fatal("the server saw too few requests")
		}
	}
	cancel()
	res := <-done
	n := 0
	events.Range(func(any, any) bool { n++; return true })
	if sum := storage.Summarize(res.Series, nil); n != 0 || sum.Requests != 0 {
		t.Fatalf("%d events, %d requests recorded; want none", n, sum.Requests)
	}
}

// FuzzTraceparent: parsing never panics, and a version-00 value that
// parses is what the executor would write for its context.
func FuzzTraceparent(f *testing.F) {
	f.Add("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	f.Add("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00-x")
	f.Add("00-00000000000000000000000000000000-b7ad6b7169203331-01")
	f.Fuzz(func(t *testing.T, s string) {
		tc, ok := parseTraceparent(s)
		if !ok {
			if !tc.IsZero() {
				t.Fatalf("refused %q but returned %+v", s, tc)
			}
			return
		}
		if tc.IsZero() || tc.SpanID == [8]byte{} {
			t.Fatalf("parsed %q to a zero id", s)
		}
		if s[:2] == "00" && s[53] == '0' && (s[54] == '0' || s[54] == '1') && traceparentHeader(tc)[0] != s {
			t.Fatalf("%q formats back as %q", s, traceparentHeader(tc)[0])
		}
	})
}
