package scenarios

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/loadswarm/loadswarm/storage"
)

// BenchmarkExecutor measures the executor's hot path: a constant-rate
// scenario far above what the machine can send, with the in-flight cap
// bounding it (as `make bench` runs `swarm run --local`), against an
// in-process keep-alive httptest server. b.N is the number of planned
// arrivals; arrivals past the cap are dropped and counted, as the open
// model says, so ns/op is the pacer's spacing rather than a request's cost.
// The metrics that matter:
//
//	cpu-s/10k-req  process CPU (user+sys, getrusage) per 10,000 completed
//	               requests; it includes the in-process server's share
//	               (compare with `make bench`, which runs them apart)
//	req/s          completed requests per second of wall time
//	drop-%         arrivals dropped at the cap
//	allocs/req     heap allocations per completed request (server's included)
//	B/req          heap bytes allocated per completed request (ditto)
//
// Run with: go test -run '^$' -bench Executor ./scenarios/
// Profile:  go test -run '^$' -bench Executor/check -cpuprofile cpu.prof ./scenarios/
func BenchmarkExecutor(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("ok"))
	}))
	defer srv.Close()
	for _, bc := range []struct {
		name, step string
	}{
		// A check on: what a real test does, and what the acceptance
		// number is about ("with the histograms and checks on").
		{"check", `{name: root, path: /, check: 'status == 200'}`},
		// No check: the bare request and recording path.
		{"nocheck", `{name: root, path: /}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			benchExecutor(b, srv.URL, bc.step)
		})
	}
}

func benchExecutor(b *testing.B, url, step string) {
	const (
		rate     = 100_000 // arrivals per second: far above what 2 cores can send
		inFlight = 64      // the connection count make bench gives every tool
	)
	// b.N arrivals at the rate: the stage lasts b.N/rate seconds.
	d := time.Duration(float64(b.N) / rate * float64(time.Second))
	d = max(d, time.Millisecond)
	sc, err := Parse(fmt.Appendf(nil,
		"name: bench\ntarget: %s\nload:\n  max_in_flight: %d\n  stages: [{duration: %s, rate: %d}]\nrequests: [%s]\n",
		url, inFlight, d, rate, step))
	if err != nil {
		b.Fatal(err)
	}
	// The transport of the run is the default one (NewTransport), built and
	// closed by Run itself, so dials are part of the cost as in a real run.
	var ru0, ru1 syscall.Rusage
	var ms0, ms1 runtime.MemStats
	b.ResetTimer()
	runtime.ReadMemStats(&ms0)
	t0 := time.Now()
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru0); err != nil {
		b.Fatal(err)
	}
	res, err := Run(context.Background(), RunConfig{Scenario: sc})
	if err != nil {
		b.Fatal(err)
	}
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru1); err != nil {
		b.Fatal(err)
	}
	wall := time.Since(t0)
	b.StopTimer()
	runtime.ReadMemStats(&ms1)

	sum := storage.Summarize(res.Series, nil)
	if sum.Errors > 0 {
		b.Fatalf("%d errors: %v", sum.Errors, res.Series.Samples)
	}
	if sum.Requests == 0 {
		b.Fatal("no request completed")
	}
	cpu := tvSeconds(ru1.Utime) - tvSeconds(ru0.Utime) + tvSeconds(ru1.Stime) - tvSeconds(ru0.Stime)
	b.ReportMetric(cpu/float64(sum.Requests)*10_000, "cpu-s/10k-req")
	b.ReportMetric(float64(sum.Requests)/wall.Seconds(), "req/s")
	// Per completed request, not per arrival (-benchmem's B/op is per
	// arrival, dropped ones included); the server's allocations are in.
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(sum.Requests), "allocs/req")
	b.ReportMetric(float64(ms1.TotalAlloc-ms0.TotalAlloc)/float64(sum.Requests), "B/req")
	if sum.Planned > 0 {
		b.ReportMetric(100*float64(sum.Dropped)/float64(sum.Planned), "drop-%")
	}
}

func tvSeconds(tv syscall.Timeval) float64 {
	return float64(tv.Sec) + float64(tv.Usec)/1e6
}
