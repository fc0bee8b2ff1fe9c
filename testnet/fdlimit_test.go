package testnet

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestFDBudget runs `swarm run --local` with a low open-files limit
// (ulimit -n 256) against a target that holds each request 800 ms, at a
// rate that needs ~320 connections: more than the process may open. The
// run must stay responsive (a live line every second), never fail a
// request for want of a descriptor, keep the target's connections within
// the budget, say "connection-limited" with the numbers, and exit by its
// thresholds.
func TestFDBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs a 4 s test")
	}
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh to set the limit with")
	}
	bin := swarmBinary(t)
	var open, peak atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(800 * time.Millisecond)
		w.Write([]byte("ok"))
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			n := open.Add(1)
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
		case http.StateClosed, http.StateHijacked:
			open.Add(-1)
		}
	}
	srv.Start()
	defer srv.Close()

	spec := filepath.Join(t.TempDir(), "fd.yaml")
	yaml := fmt.Sprintf(`name: fd-budget
target: %s
duration: 4s
load:
  rate: 400
  max_in_flight: 1000
requests:
  - name: hold
    path: /
thresholds:
  - error_rate < 0.01
`, srv.URL)
	if err := os.WriteFile(spec, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", `ulimit -n 256 && exec "$0" run --local --json "$1"`, bin, spec)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	began := time.Now()
	err := cmd.Run()
	if err != nil {
		t.Fatalf("swarm run: %v (took %s)\nstdout:\n%s\nstderr:\n%s", err, time.Since(began), out.String(), errOut.String())
	}
	t.Logf("took %s; the target saw at most %d connections at once\n%s", time.Since(began).Round(time.Millisecond), peak.Load(), errOut.String())
	var rep struct {
		Status   string           `json:"status"`
		Requests int64            `json:"requests"`
		Errors   int64            `json:"errors"`
		ByClass  map[string]int64 `json:"errors_by_class"`
		Conn     *struct {
			Waited int64   `json:"waited"`
			MeanMs float64 `json:"mean_wait_ms"`
		} `json:"connection_limited"`
	}
	if err := json.Unmarshal([]byte(out.String()), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, out.String())
	}
	if rep.Errors != 0 || strings.Contains(errOut.String()+out.String(), "too many open files") {
		t.Fatalf("%d errors %v: the budget did not hold", rep.Errors, rep.ByClass)
	}
	if p := peak.Load(); p > 256 {
		t.Errorf("the target saw %d connections at once: more than the process may open", p)
	}
	if rep.Conn == nil || rep.Conn.Waited == 0 || rep.Conn.MeanMs <= 0 {
		t.Fatalf("the report does not say the run was connection-limited: %+v\n%s", rep.Conn, out.String())
	}
	if !strings.Contains(errOut.String(), "connection-limited") {
		t.Errorf("the summary does not say connection-limited:\n%s", errOut.String())
	}
	if n := strings.Count(errOut.String(), "target "); n < 4 {
		t.Errorf("%d live lines for a 4 s run: it stopped reporting", n)
	}
	if rep.Status != "passed" || rep.Requests == 0 {
		t.Errorf("status %q with %d requests, want passed", rep.Status, rep.Requests)
	}
}
