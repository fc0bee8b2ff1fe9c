package testnet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loadswarm/loadswarm/node"
	"github.com/loadswarm/loadswarm/swarm/swarmtest"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// swarmBinary builds bin/swarm once per test process, into a temporary
// directory that TestMain removes.
func swarmBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "swarm-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "swarm")
		began := time.Now()
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/loadswarm/loadswarm/cmd/swarm").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
		t.Logf("built %s in %s", binPath, time.Since(began).Round(time.Millisecond))
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// runSwarm runs the binary and returns its exit code and output.
func runSwarm(t *testing.T, bin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String(), errOut.String()
	case errors.As(err, &ee):
		return ee.ExitCode(), out.String(), errOut.String()
	}
	t.Fatalf("swarm %s: %v", strings.Join(args, " "), err)
	return 0, "", ""
}

// TestEndToEnd is the testnet as a user runs it: real processes of the
// real binary. 4 nodes in 2 regions and the demo target; a test from one
// node with thresholds; a node killed mid-test; the merged report by
// region, also from another node; and down leaves nothing behind.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds the binary and runs a 4-node testnet (~40s)")
	}
	bin := swarmBinary(t)
	dir := filepath.Join(t.TempDir(), "tn")
	began := time.Now()
	code, out, errOut := runSwarm(t, bin, "testnet", "up", "--dir", dir, "--nodes", "4", "--regions", "eu-west,us-east",
		"--latency", "eu-west=10ms±2ms,us-east=80ms±5ms", "--target-flags", "--set all.capacity=0 --no-autoscale")
	if code != 0 {
		t.Fatalf("up: exit %d\n%s\n%s", code, out, errOut)
	}
	t.Cleanup(func() { // whatever happened, stop it all
		if s, err := Load(dir); err == nil && s.Running() {
			_ = s.Down(context.Background(), DownOptions{})
		}
	})
	s, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("up in %s:\n%s", time.Since(began).Round(time.Millisecond), out)
	if len(s.Nodes) != 4 || s.Target == nil || s.Target.URL == "" {
		t.Fatalf("state: %d nodes, target %+v", len(s.Nodes), s.Target)
	}

	const rate, secs = 200, 20
	spec := filepath.Join(t.TempDir(), "e2e.yaml")
	yaml := fmt.Sprintf(`name: e2e
target: http://127.0.0.1:1
duration: %ds
load: {rate: %d, min_delivered: 0.85}
requests: [{name: item, path: "/items/{{ randInt(1, 100) }}", check: status == 200}]
thresholds: ["error_rate < 0.01", "p95 < 1000"]
`, secs, rate)
	if err := os.WriteFile(spec, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	submitter := s.Nodes[0]
	var runOut, runErr bytes.Buffer
	run := exec.Command(bin, "run", "--json", "--api", submitter.API, "--target", s.Target.URL, spec)
	run.Stdout, run.Stderr = &runOut, &runErr
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}

	// Find the test and its scheduler, then kill a node that neither
	// schedules nor was asked, 5 s into the test.
	c := node.NewClient(submitter.API, nil)
	var st node.TestStatus
	swarmtest.WaitFor(t, 15*time.Second, "the test has a plan", func() (bool, string) {
		tests, err := c.Tests(context.Background())
		if err != nil || len(tests) == 0 {
			return false, fmt.Sprint(err)
		}
		st, err = c.Test(context.Background(), tests[0].ID, 0, false)
		return err == nil && st.Start != nil, fmt.Sprint(st.State, err)
	})
	var victim, watcher *NodeProc
	for _, n := range s.Nodes[1:] {
		if n.Name != st.Scheduler && victim == nil {
			victim = n
		} else if watcher == nil {
			watcher = n
		}
	}
	time.Sleep(time.Until(st.Start.Add(5 * time.Second))) // a point in the test, not a condition
	if code, out, errOut := runSwarm(t, bin, "testnet", "kill", victim.Name, "--dir", dir); code != 0 {
		t.Fatalf("kill: %d %s %s", code, out, errOut)
	}
	killedAt := time.Since(*st.Start)
	t.Logf("test %s scheduled by %s; killed %s at %s", st.ID, st.Scheduler, victim.Name, killedAt.Round(time.Millisecond))

	err = run.Wait()
	var rep node.FleetReport
	switch {
	case err != nil:
		t.Fatalf("swarm run: %v (want exit 0)\nstdout:\n%s\nstderr:\n%s", err, runOut.String(), runErr.String())
	default:
		if err := json.Unmarshal(runOut.Bytes(), &rep); err != nil {
			t.Fatalf("report: %v\n%s", err, runOut.String())
		}
	}
	if rep.Status != "passed" {
		t.Fatalf("status %s: %+v %+v", rep.Status, rep.Thresholds, rep.Delivery)
	}
	// The victim's share between its death and the move was never sent:
	// the report says so (the test allows 15%).
	if d := rep.Delivery; d.Undelivered == 0 || !d.Complete || d.Ratio > 0.99 {
		t.Errorf("delivery after a kill: %+v", d)
	}

	// By region: both there, as far apart as their simulated distances
	// (80 - 10 = 70ms: at least half of it).
	eu, us := rep.ByRegion["eu-west"], rep.ByRegion["us-east"]
	if eu.Requests == 0 || us.Requests == 0 {
		t.Fatalf("by region: %+v", rep.ByRegion)
	}
	if d := us.Latency.P50 - eu.Latency.P50; d < 35 {
		t.Errorf("p50 eu-west %.1fms, us-east %.1fms: %.1fms apart, want >= 35ms", eu.Latency.P50, us.Latency.P50, d)
	}
	t.Logf("by region: eu-west %d requests p50 %.1fms p99 %.1fms; us-east %d requests p50 %.1fms p99 %.1fms",
		eu.Requests, eu.Latency.P50, eu.Latency.P99, us.Requests, us.Latency.P50, us.Latency.P99)

	// The rate held: overall, less only the victim's share while its lease
	// ran out (a quarter of the rate for ~5 s: ~6%); per second, back
	// within 5% of the rate 8 s after the kill.
	if rep.Rate.Achieved < 0.9*rep.Rate.Target {
		t.Errorf("achieved %.1f/s of %.1f/s", rep.Rate.Achieved, rep.Rate.Target)
	}
	wc := node.NewClient(watcher.API, nil)
	wst, err := wc.Test(context.Background(), st.ID, 0, false)
	if err != nil || wst.Report == nil {
		t.Fatalf("%s's view: %v", watcher.Name, err)
	}
	var line []string
	for _, sec := range wst.Seconds {
		line = append(line, fmt.Sprintf("%.0f", sec.Achieved))
		if sec.T >= int64(killedAt/time.Second)+8 && sec.T < secs-1 && math.Abs(sec.Achieved-rate) > 0.05*rate {
			t.Errorf("second %d: %.0f arrivals, want %d ± 5%% after recovery", sec.T, sec.Achieved, rate)
		}
		if sec.Achieved > 1.05*rate {
			t.Errorf("second %d: %.0f arrivals, over 105%% of %d/s", sec.T, sec.Achieved, rate)
		}
	}
	t.Logf("achieved %.1f/s of %.1f/s; arrivals per second: %s", rep.Rate.Achieved, rep.Rate.Target, strings.Join(line, " "))

	// Merged results from another node, by region, through the CLI.
	code, out, errOut = runSwarm(t, bin, "results", st.ID, "--by", "region", "--api", watcher.API)
	if code != 0 || !strings.Contains(out, "eu-west") || !strings.Contains(out, "us-east") {
		t.Errorf("results from %s: exit %d\n%s\n%s", watcher.Name, code, out, errOut)
	}
	if wr := wst.Report; wr.ByRegion["eu-west"].Requests != eu.Requests || wr.ByRegion["us-east"].Requests != us.Requests {
		t.Errorf("%s's merge differs: %+v", watcher.Name, wr.ByRegion)
	}

	// Restart the killed node: same identity, back in the fleet (restart
	// waits until every running node sees all of them alive).
	before, err := node.ReadAddrs(victim.DataDir) // left behind by the kill -9
	if err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := runSwarm(t, bin, "testnet", "restart", victim.Name, "--dir", dir); code != 0 {
		t.Fatalf("restart: %d %s %s", code, out, errOut)
	}
	after, err := node.ReadAddrs(victim.DataDir)
	if err != nil || after.PeerID != before.PeerID || after.Gossip != before.Gossip {
		t.Fatalf("restarted as %+v, was %+v (%v)", after, before, err)
	}
	// Pause and resume a node.
	if code, _, errOut := runSwarm(t, bin, "testnet", "pause", "2", "--dir", dir); code != 0 {
		t.Fatalf("pause: %s", errOut)
	}
	if s, _ := Load(dir); s.Nodes[1].State() != ProcPaused {
		t.Fatalf("node 2 is %s after pause", s.Nodes[1].State())
	}
	if code, _, errOut := runSwarm(t, bin, "testnet", "resume", "2", "--dir", dir); code != 0 {
		t.Fatalf("resume: %s", errOut)
	}

	// Down: no process and no port left.
	s, _ = Load(dir) // with the restarted node's pid
	downAt := time.Now()
	if code, out, errOut := runSwarm(t, bin, "testnet", "down", "--dir", dir); code != 0 {
		t.Fatalf("down: %d %s %s", code, out, errOut)
	}
	t.Logf("down in %s", time.Since(downAt).Round(time.Millisecond))
	for _, p := range s.Procs() {
		if st := p.State(); st != ProcGone {
			t.Errorf("%s (pid %d) is %s after down", p.Name, p.PID, st)
		}
	}
	if left := procsMentioning(dir); len(left) > 0 {
		t.Errorf("processes still running from %s: %v", dir, left)
	}
	s, _ = Load(dir) // with the API addresses it recorded
	for _, p := range s.Ports() {
		if !PortFree(p) {
			t.Errorf("port %s still in use after down", p)
		}
	}
	t.Logf("whole test: %s", time.Since(began).Round(time.Millisecond))
}

// procsMentioning lists live processes whose command line contains s.
func procsMentioning(s string) []string {
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(b, []byte(s)) {
			continue
		}
		stat, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			continue
		}
		out = append(out, e.Name()+": "+strings.ReplaceAll(string(b), "\x00", " "))
	}
	return out
}
