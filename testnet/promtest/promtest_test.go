package promtest_test

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/model"

	"github.com/loadswarm/loadswarm/testnet/promtest"
)

// TestPromScrapesCounter: a real Prometheus scrapes a client_golang
// endpoint and a query reads the counter back.
func TestPromScrapesCounter(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "promtest_things_total", Help: "Things."}, []string{"kind"})
	reg.MustRegister(c)
	c.WithLabelValues("a").Add(42)
	c.WithLabelValues("b").Add(8)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/custom/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	began := time.Now()
	p := promtest.Start(t, map[string]string{"app": ln.Addr().String()}, promtest.MetricsPath("/custom/metrics"))
	t.Logf("prometheus ready at %s in %s", p.URL(), p.StartupTime())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.WaitForTargetsUp(ctx); err != nil {
		t.Fatal(err)
	}
	t.Logf("target up %s after start", time.Since(began))

	var got model.Value
	for {
		got, err = p.Query(ctx, `sum(promtest_things_total{job="app"})`, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if vec, ok := got.(model.Vector); ok && len(vec) == 1 && vec[0].Value == 50 {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("query: %v, want 50", got)
		case <-time.After(200 * time.Millisecond):
		}
	}
	got, err = p.Query(ctx, `promtest_things_total{kind="a"}`, time.Now())
	if err != nil || !strings.Contains(got.String(), "=> 42") {
		t.Errorf("kind a: %v %v, want 42", got, err)
	}
}

// TestPromTargetDown: a target nobody serves is reported, not waited on
// forever.
func TestPromTargetDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	p := promtest.Start(t, map[string]string{"gone": addr})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err = p.WaitForTargetsUp(ctx)
	if err == nil || !strings.Contains(err.Error(), "0 of 1 targets up") {
		t.Fatalf("error %v", err)
	}
}
