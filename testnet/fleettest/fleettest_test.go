package fleettest_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/loadswarm/loadswarm/node"
	"github.com/loadswarm/loadswarm/swarm/swarmtest"
	"github.com/loadswarm/loadswarm/testnet"
	"github.com/loadswarm/loadswarm/testnet/fleettest"
)

// TestInProcessFleetRegions: an in-process fleet in two simulated regions
// runs a test, and the report by region shows their distance apart.
func TestInProcessFleetRegions(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a fleet")
	}
	tg, err := testnet.NewTarget(testnet.TargetConfig{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(tg)
	t.Cleanup(srv.Close)
	rtts := testnet.RTTTable{"eu-west": {Latency: 5 * time.Millisecond}, "us-east": {Latency: 45 * time.Millisecond}}
	f := fleettest.Start(t, 3, fleettest.Options{Regions: []string{"eu-west", "us-east"}, RTTs: rtts})

	c := f.Client(f.Nodes[0])
	spec := fmt.Sprintf("name: inproc\ntarget: %s\nduration: 3s\nload: {rate: 60}\nrequests: [{name: a, path: /items/1, check: 'status == 200'}]\nthresholds: ['error_rate == 0']\n", srv.URL)
	id, err := c.Submit(context.Background(), []byte(spec), "")
	if err != nil {
		t.Fatal(err)
	}
	var st node.TestStatus
	swarmtest.WaitFor(t, 30*time.Second, "test over", func() (bool, string) {
		st, err = c.Test(context.Background(), id, 0, false)
		if err != nil {
			return false, err.Error() // "not known" until the node admits its own announcement
		}
		return st.Report != nil, st.State
	})
	rep := st.Report
	eu, us := rep.ByRegion["eu-west"], rep.ByRegion["us-east"]
	if rep.Status != "passed" || rep.Requests != 180 || eu.Requests == 0 || us.Requests == 0 {
		t.Fatalf("report: %s, %d requests, by region %+v", rep.Status, rep.Requests, rep.ByRegion)
	}
	// 40ms apart: us-east's median must be at least half of that slower.
	if d := us.Latency.P50 - eu.Latency.P50; d < 20 {
		t.Fatalf("p50 eu-west %.1fms, us-east %.1fms: %.1fms apart, want >= 20ms", eu.Latency.P50, us.Latency.P50, d)
	}
	t.Logf("p50 eu-west %.1fms, us-east %.1fms", eu.Latency.P50, us.Latency.P50)

	f.Crash(2)
	f.WaitAlive(2, 10*time.Second)
	if f.Node(f.Regions[0]+"-0") != f.Nodes[0] {
		t.Fatal("Node by name")
	}
}
