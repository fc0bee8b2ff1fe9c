package testnet

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loadswarm/loadswarm/node"
	"github.com/loadswarm/loadswarm/swarm/swarmtest"
)

// TestEndToEndFleetAbort: an abort threshold stops a fleet run on every
// node, whoever follows it: `swarm run` exits 99 and names the rule; a run
// whose CLI is killed at once, or submitted with --detach, is aborted all
// the same. Counted at the
// target: nothing is sent 2 s after the rule could first fail and the
// fleet had reported it.
func TestEndToEndFleetAbort(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: a 3-node testnet of processes, two 3-4 s runs")
	}
	bin, s := upFleet(t, 3)
	ps := newPerSecond(t)
	spec := filepath.Join(t.TempDir(), "abort.yaml")
	if err := os.WriteFile(spec, []byte(fmt.Sprintf(`name: abort
target: %s
duration: 20s
load: {rate: 60}
requests: [{name: a}]
thresholds:
  - {expr: "p95 < 0.001", abort: true, after: 3s}
`, ps.srv.URL)), 0o644); err != nil {
		t.Fatal(err)
	}
	// Followed by the CLI: exit 99, the rule named.
	code, out, errOut := runSwarm(t, bin, "run", "--api", s.Nodes[0].API, spec)
	if code != 99 || !strings.Contains(out, `aborted early: p95 < 0.001`) {
		t.Fatalf("swarm run: exit %d\n%s\n%s", code, out, errOut)
	}

	// Submitted by a CLI that is killed at once.
	ps2 := newPerSecond(t)
	yaml, _ := os.ReadFile(spec)
	spec2 := filepath.Join(t.TempDir(), "abort2.yaml")
	if err := os.WriteFile(spec2, []byte(strings.Replace(string(yaml), ps.srv.URL, ps2.srv.URL, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	c := node.NewClient(s.Nodes[1].API, nil)
	before, err := c.Tests(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	run := exec.Command(bin, "run", "--api", s.Nodes[1].API, "-q", spec2)
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	var id string
	swarmtest.WaitFor(t, 10*time.Second, "the second test is submitted", func() (bool, string) {
		tests, err := c.Tests(context.Background())
		if err != nil || len(tests) <= len(before) {
			return false, fmt.Sprint(err)
		}
		id = tests[0].ID
		return true, ""
	})
	_ = run.Process.Kill()
	_ = run.Wait()
	var st node.TestStatus
	swarmtest.WaitFor(t, 10*time.Second, "the second test has a plan", func() (bool, string) {
		st, err = c.Test(context.Background(), id, 0, false)
		return err == nil && st.Start != nil, fmt.Sprint(err)
	})
	ps2.start(*st.Start)
	for _, n := range s.Nodes {
		nc := node.NewClient(n.API, nil)
		swarmtest.WaitFor(t, 15*time.Second, n.Name+" stopped the test", func() (bool, string) {
			st, err := nc.Test(context.Background(), id, 0, false)
			return err == nil && st.State == node.StateStopped, fmt.Sprint(st.State, err)
		})
	}
	time.Sleep(1500 * time.Millisecond) // wall-clock: what the target gets after the stop
	for sec, n := range ps2.snapshot() {
		if sec >= 6 && n > 0 {
			t.Errorf("second %d: %d requests after the abort", sec, n)
		}
	}
	code, out, errOut = runSwarm(t, bin, "results", id, "--api", s.Nodes[2].API)
	if code != 99 || !strings.Contains(out, `aborted early: p95 < 0.001`) {
		t.Fatalf("swarm results: exit %d\n%s\n%s", code, out, errOut)
	}

	// Submitted with --detach: nobody follows it, and it is aborted.
	code, out, errOut = runSwarm(t, bin, "run", "--detach", "--api", s.Nodes[2].API, spec)
	if code != 0 {
		t.Fatalf("swarm run --detach: exit %d\n%s", code, errOut)
	}
	detached := strings.TrimSpace(out)
	nc := node.NewClient(s.Nodes[0].API, nil)
	swarmtest.WaitFor(t, 20*time.Second, "the detached test is aborted", func() (bool, string) {
		st, err := nc.Test(context.Background(), detached, 0, false)
		return err == nil && st.State == node.StateStopped, fmt.Sprint(st.State, err)
	})
	if code, out, _ := runSwarm(t, bin, "results", detached, "--api", s.Nodes[1].API); code != 99 || !strings.Contains(out, "aborted early") {
		t.Fatalf("swarm results of the detached test: exit %d\n%s", code, out)
	}
}
