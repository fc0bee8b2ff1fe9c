package scenarios

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"
)

// BenchmarkTracing compares the cost of a request with tracing off and on
// (1% and 100% sampled). One worker sends b.N arrivals of a one-step flow
// back to back through worker.do, as a run does, so that the pacer's
// spacing does not hide the per-request cost:
//
//	loopback  to an in-process keep-alive httptest server on 127.0.0.1;
//	          cpu-ns/req is process CPU (user+sys) per request, the
//	          server's share included
//	fake      to an in-memory RoundTripper: the executor's own cost alone,
//	          where the tracing work is a larger share
//
// Run with: go test -run '^$' -bench Tracing ./scenarios/
func BenchmarkTracing(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	for _, target := range []string{"loopback", "fake"} {
		for _, mode := range []struct {
			name, tracing string
		}{
			{"off", "false"},
			{"on-1%", "{sample: 0.01}"},
			{"on-100%", "{sample: 1}"},
		} {
			b.Run(target+"/"+mode.name, func(b *testing.B) {
				sc, err := Parse(fmt.Appendf(nil, "name: bench\ntarget: %s\nduration: 1s\nload: {rate: 1}\ntracing: %s\nrequests: [{name: root, path: /, check: 'status == 200'}]\n",
					srv.URL, mode.tracing))
				if err != nil {
					b.Fatal(err)
				}
				var rt http.RoundTripper
				if target == "fake" {
					rt = okTransport{}
				} else {
					t := NewTransport(TransportConfig{MaxConns: 4})
					defer t.CloseIdleConnections()
					rt = t
				}
				benchWorker(b, sc, rt)
			})
		}
	}
}

// okTransport answers 200 with an empty body at once.
type okTransport struct{}

func (okTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Status: "200 OK", Body: http.NoBody, Header: http.Header{}, Request: r}, nil
}

func benchWorker(b *testing.B, sc *Scenario, rt http.RoundTripper) {
	e := &executor{sc: sc, rt: rt, ctx: context.Background(), rec: newRecorder(time.Now())}
	w := &worker{e: e}
	if sc.Tracing.On {
		w.ids = newIDGen()
	}
	w.run(arrival{scheduled: time.Now()}) // dial outside the measure
	b.ReportAllocs()
	var ru0, ru1 syscall.Rusage
	b.ResetTimer()
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru0); err != nil {
		b.Fatal(err)
	}
	for i := range b.N {
		w.run(arrival{n: uint64(i), scheduled: time.Now()})
	}
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru1); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	cpu := tvSeconds(ru1.Utime) - tvSeconds(ru0.Utime) + tvSeconds(ru1.Stime) - tvSeconds(ru0.Stime)
	b.ReportMetric(cpu*1e9/float64(b.N), "cpu-ns/req")
	var errs int64
	for _, s := range e.rec.flush(1 << 62) {
		for _, bk := range s.Buckets {
			errs += bk.Errors
		}
	}
	if errs > 0 {
		b.Fatalf("%d errors: %v", errs, e.rec.series.Samples)
	}
}

// BenchmarkTraceparentHeader is the header alone: ids drawn and the value
// built, in at most one allocation.
func BenchmarkTraceparentHeader(b *testing.B) {
	g := newIDGen()
	b.ReportAllocs()
	var h []string
	for b.Loop() {
		h = traceparentHeader(TraceContext{TraceID: g.traceID(), SpanID: g.spanID(), Sampled: g.sampled(0.01)})
	}
	if len(h[0]) != traceparentLen {
		b.Fatal(h)
	}
}
