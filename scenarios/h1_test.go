package scenarios

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// connCounter counts a test server's open connections and the most at
// once.
type connCounter struct {
	open, peak atomic.Int64
}

func (c *connCounter) hook(_ net.Conn, s http.ConnState) {
	switch s {
	case http.StateNew:
		n := c.open.Add(1)
		for {
			p := c.peak.Load()
			if n <= p || c.peak.CompareAndSwap(p, n) {
				break
			}
		}
	case http.StateClosed, http.StateHijacked:
		c.open.Add(-1)
	}
}

func get(t *testing.T, tr *Transport, ctx context.Context, url string) (string, time.Duration, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, wait, err := tr.RoundTripWait(req)
	if err != nil {
		return "", wait, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), wait, err
}

// The budget bounds the connections: requests beyond it wait for one to
// come free, say how long, and all complete.
func TestTransportBudget(t *testing.T) {
	release := make(chan struct{})
	var cc connCounter
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = cc.hook
	srv.Start()
	defer srv.Close()
	tr := NewTransport(TransportConfig{MaxConns: 4})
	defer tr.CloseIdleConnections()

	const n = 12
	var wg sync.WaitGroup
	waits := make(chan time.Duration, n)
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			body, wait, err := get(t, tr, context.Background(), srv.URL)
			if err == nil && body != "ok" {
				err = fmt.Errorf("body %q", body)
			}
			errs <- err
			waits <- wait
		})
	}
	// Wait until every request is either at the server or waiting.
	waitFor(t, func() bool { return tr.Stats().Limited == n-4 && cc.open.Load() == 4 })
	close(release)
	wg.Wait()
	close(errs)
	close(waits)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	waited := 0
	for w := range waits {
		if w > 0 {
			waited++
		}
	}
	if waited != n-4 {
		t.Errorf("%d requests report a wait, want %d", waited, n-4)
	}
	if p := cc.peak.Load(); p != 4 {
		t.Errorf("the server saw %d connections at once, want the budget, 4", p)
	}
	if s := tr.Stats(); s.Peak != 4 || s.Budget != 4 {
		t.Errorf("stats %+v, want peak 4 of budget 4", s)
	}
}

// Dials are paced: never more than MaxDials at once.
func TestTransportPacesDials(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * time.Millisecond)
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	var dialing, peak atomic.Int64
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		n := dialing.Add(1)
		defer dialing.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		time.Sleep(5 * time.Millisecond) // a distant target
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}
	tr := NewTransport(TransportConfig{MaxConns: 100, MaxDials: 3, Dial: dial})
	defer tr.CloseIdleConnections()
	var wg sync.WaitGroup
	for range 40 {
		wg.Go(func() {
			if _, _, err := get(t, tr, context.Background(), srv.URL); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if p := peak.Load(); p > 3 {
		t.Errorf("%d dials at once, want at most 3", p)
	}
	if p := tr.Stats().Peak; p >= 40 {
		t.Errorf("%d connections for 40 requests: dials were not shared with freed connections", p)
	}
}

// A kept-alive connection the server closed while idle is replaced
// without the request failing.
func TestTransportStaleConnection(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	tr := NewTransport(TransportConfig{})
	defer tr.CloseIdleConnections()
	for i := range 3 {
		if body, _, err := get(t, tr, context.Background(), srv.URL); err != nil || body != "ok" {
			t.Fatalf("request %d: %q, %v", i, body, err)
		}
		srv.CloseClientConnections()
	}
}

// Bodies of every framing are read whole, and the connection is reused
// only when the response allows.
func TestTransportFraming(t *testing.T) {
	var cc connCounter
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/chunked":
			io.WriteString(w, "a")
			w.(http.Flusher).Flush()
			io.WriteString(w, strings.Repeat("b", 5000))
		case "/close":
			w.Header().Set("Connection", "close")
			io.WriteString(w, "bye")
		case "/big":
			w.Header().Set("Content-Length", "20000")
			io.WriteString(w, strings.Repeat("c", 20000))
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	srv.Config.ConnState = cc.hook
	srv.Start()
	defer srv.Close()
	tr := NewTransport(TransportConfig{})
	defer tr.CloseIdleConnections()
	for _, tc := range []struct {
		path string
		want int
	}{{"/chunked", 5001}, {"/big", 20000}, {"/empty", 0}, {"/chunked", 5001}} {
		body, _, err := get(t, tr, context.Background(), srv.URL+tc.path)
		if err != nil || len(body) != tc.want {
			t.Fatalf("%s: %d bytes, %v; want %d", tc.path, len(body), err, tc.want)
		}
	}
	if p := cc.peak.Load(); p != 1 {
		t.Errorf("%d connections for sequential kept-alive requests, want 1", p)
	}
	if body, _, err := get(t, tr, context.Background(), srv.URL+"/close"); err != nil || body != "bye" {
		t.Fatalf("/close: %q, %v", body, err)
	}
	waitFor(t, func() bool { return cc.open.Load() == 0 }) // closed, as asked
}

// A request ends at its deadline (a timeout) or when its context ends,
// whether it waits for a connection or for the response.
func TestTransportDeadlineAndCancel(t *testing.T) {
	hang := make(chan struct{})
	defer close(hang)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	tr := NewTransport(TransportConfig{MaxConns: 1})
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)

	start := time.Now()
	_, _, err := tr.Do(context.Background(), time.Now().Add(100*time.Millisecond), req)
	if Classify(err) != ErrTimeout {
		t.Fatalf("hung response: %v (class %q), want a timeout", err, Classify(err))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the timeout took %s", d)
	}
	// The budget is one connection: hold it, and the next request waits
	// for it until its own deadline.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { _, _, err := tr.Do(ctx, time.Time{}, req); done <- err }()
	waitFor(t, func() bool { tr.mu.Lock(); defer tr.mu.Unlock(); return tr.open == 1 && tr.dialing == 0 })
	_, wait, err := tr.Do(context.Background(), time.Now().Add(100*time.Millisecond), req)
	if Classify(err) != ErrTimeout || wait <= 0 {
		t.Fatalf("waiting for the budget: %v, wait %s; want a timeout after a wait", err, wait)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) && Classify(err) != ErrTimeout {
		t.Fatalf("canceled request: %v", err)
	}
	waitFor(t, func() bool { tr.mu.Lock(); defer tr.mu.Unlock(); return tr.open == 0 })
}

func TestTransportBadRequests(t *testing.T) {
	tr := NewTransport(TransportConfig{})
	for _, u := range []string{"ftp://example.test/", "http:///nohost"} {
		req, err := http.NewRequest(http.MethodGet, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tr.RoundTrip(req); err == nil {
			t.Errorf("%s: no error", u)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// HTTP/2 goes through net/http's transport; a client with a timeout (its
// requests carry a deadline) reads whole bodies, through RoundTrip and
// through Do.
func TestTransportHTTP2(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", r.Proto, strings.Repeat("x", 100_000))
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	tr := NewTransport(TransportConfig{HTTP2: true, Insecure: true})
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	resp, err := client.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || !strings.HasPrefix(string(b), "HTTP/2.0 ") || len(b) != 100_009 {
		t.Fatalf("RoundTrip: %d bytes %.12q, %v", len(b), b, err)
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	resp, _, err = tr.Do(context.Background(), time.Now().Add(5*time.Second), req)
	if err != nil {
		t.Fatal(err)
	}
	b, err = io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || len(b) != 100_009 {
		t.Fatalf("Do: %d bytes, %v", len(b), err)
	}
}
