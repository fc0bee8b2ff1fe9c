package node_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/loadswarm/loadswarm/node"
	"github.com/loadswarm/loadswarm/swarm/swarmtest"
)

// abortSpec is a 20 s test whose abort rule fails as soon as it may (after
// 3 s): no loopback request is answered in a microsecond.
func abortSpec(target string, rate, secs int) []byte {
	return []byte(fmt.Sprintf(`name: abort
target: %s
duration: %ds
load: {rate: %d}
requests: [{name: a}]
thresholds:
  - {expr: "p95 < 0.001", abort: true, after: 3s}
  - "error_rate == 0"
`, target, secs, rate))
}

// TestFleetAbort: the scheduler evaluates abort rules on the fleet's
// merged numbers and stops the test on every node within 2 s of the rule
// failing, counted at the target; the report names the rule, on every node
// and from the stores.
func TestFleetAbort(t *testing.T) {
	nodes := fleet(t, 3)
	ct, c, id, st := startCounted(t, nodes[1], abortSpec, 90, 20)
	for _, n := range nodes {
		nc := node.NewClient(n.APIAddr(), nil)
		swarmtest.WaitFor(t, 15*time.Second, "the test is stopped on "+n.Swarm().Name(), func() (bool, string) {
			st, err := nc.Test(context.Background(), id, 0, false)
			return err == nil && st.State == node.StateStopped, fmt.Sprint(st.State, err)
		})
	}
	time.Sleep(1500 * time.Millisecond) // wall-clock: what the target gets after the stop
	counts, last := ct.snapshot()
	// The rule may fail once 3 s are in; the whole fleet has reported
	// second 2 about 1 s later; 2 s after that nothing more is sent.
	if end := last.Sub(*st.Start); end > 6*time.Second {
		t.Errorf("the target got a request %s into the test; counts %v", end.Round(time.Millisecond), counts)
	}
	for sec, n := range counts {
		if sec >= 6 && n > 0 {
			t.Errorf("second %d: %d requests after the abort", sec, n)
		}
	}
	final := waitOver(t, c, id, 15*time.Second)
	if final.Report.Aborted != "p95 < 0.001" || final.Report.Status != "failed" {
		t.Fatalf("report: aborted %q, status %s, reason %q", final.Report.Aborted, final.Report.Status, final.Reason)
	}
	// From the stores, on another node: the same.
	res, err := node.NewClient(nodes[2].APIAddr(), nil).Results(context.Background(), id, nil, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	if res.Aborted != "p95 < 0.001" || res.Status != "failed" {
		t.Fatalf("results: aborted %q, status %s", res.Aborted, res.Status)
	}
	t.Logf("stopped: %s; last request %s into the test", final.Reason, last.Sub(*st.Start).Round(time.Millisecond))
}
