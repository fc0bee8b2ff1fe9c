package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/loadswarm/loadswarm/node"
	"github.com/loadswarm/loadswarm/report"
	"github.com/loadswarm/loadswarm/scenarios"
	"github.com/loadswarm/loadswarm/scheduler"
	"github.com/loadswarm/loadswarm/storage"
)

// runTest submits a test and waits for its end on the submitting node.
func runTest(t *testing.T, nodes []*node.Node, via int, body []byte) (string, node.TestStatus) {
	t.Helper()
	c := node.NewClient(nodes[via].APIAddr(), nil)
	id, err := c.Submit(context.Background(), body, "")
	if err != nil {
		t.Fatal(err)
	}
	return id, waitOver(t, c, id, 40*time.Second)
}

// TestResultsFromANodeThatSentNothing: the query on a node that generated
// no load merges every node's stored results exactly.
func TestResultsFromANodeThatSentNothing(t *testing.T) {
	nodes := fleet(t, 4)
	ct := newCountingTarget(t)
	body := []byte(fmt.Sprintf(`name: q
target: %s
duration: 4s
load: {rate: 300}
requests: [{name: a, check: 'status == 200'}, {name: b, path: /b}]
distribution: {select: 'node.name != "n3"'}
thresholds: ['p99 < 5000']
`, ct.srv.URL))
	id, st := runTest(t, nodes, 0, body)
	if st.Report.Requests != 2400 {
		t.Fatalf("live report: %d requests", st.Report.Requests)
	}
	res, err := node.NewClient(nodes[3].APIAddr(), nil).Results(context.Background(), id, []string{"region", "node", "step"}, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	// The reference: every node's own stored seconds, merged here.
	ref := storage.NewSeries()
	var perNode int64
	for _, n := range nodes {
		s, err := n.Store().Series(id, n.Swarm().PeerID(), 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		perNode += storage.Summarize(s, nil).Requests
		if err := ref.Merge(s); err != nil {
			t.Fatal(err)
		}
	}
	want := storage.Summarize(ref, nil)
	if res.Requests != 2400 || res.Requests != perNode || res.Errors != 0 || res.Status != "passed" {
		t.Fatalf("results: %d requests (nodes' own: %d), errors %d, status %s", res.Requests, perNode, res.Errors, res.Status)
	}
	if res.Latency != want.Latency {
		t.Fatalf("merged latency %+v, reference %+v", res.Latency, want.Latency)
	}
	if len(res.MissingNodes) != 0 || len(res.FromReplicas) != 0 || res.Answered != 4 {
		t.Fatalf("missing %v, replicas %v, answered %d", res.MissingNodes, res.FromReplicas, res.Answered)
	}
	var byRegion, byStep int64
	for _, s := range res.ByRegion {
		byRegion += s.Requests
	}
	for _, s := range res.ByStep {
		byStep += s.Requests
	}
	if byRegion != res.Requests || byStep != res.Requests || len(res.ByNode) != 3 {
		t.Fatalf("by region %d, by step %d, %d nodes; total %d", byRegion, byStep, len(res.ByNode), res.Requests)
	}
	// Four seconds of arrivals, maybe a fifth with the last responses.
	if n := len(res.Series); n < 4 || n > 5 || res.Series[1].Achieved != 300 || res.Series[1].Target != 300 {
		t.Fatalf("series %+v", res.Series)
	}
	t.Logf("query moved %d bytes", res.BytesMoved)
}

// TestResultsOutliveANode: after a node is lost, its results come from the
// replicas; with the replicas lost too, the answer names it missing.
func TestResultsOutliveANode(t *testing.T) {
	nodes := fleet(t, 4)
	ct := newCountingTarget(t)
	id, st := runTest(t, nodes, 0, spec(ct.srv.URL, 200, 3))
	total := st.Report.Requests
	// The victim is n1; its replica holders are two of the other three
	// (the first two in the test's ranking); the last one queries.
	victim := nodes[1]
	var ids []string
	for _, n := range nodes {
		if n != victim {
			ids = append(ids, n.Swarm().PeerID())
		}
	}
	holders := scheduler.Rank(id, ids)[:2]
	var querier *node.Node
	for _, n := range nodes {
		if n != victim && n.Swarm().PeerID() != holders[0] && n.Swarm().PeerID() != holders[1] {
			querier = n
		}
	}
	victimName := victim.Swarm().Name()
	victim.Crash()
	c := node.NewClient(querier.APIAddr(), nil)
	res, err := c.Results(context.Background(), id, nil, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != total || len(res.MissingNodes) != 0 || len(res.FromReplicas) != 1 || res.FromReplicas[0] != victimName {
		t.Fatalf("after losing %s: %d of %d requests, missing %v, from replicas %v", victimName, res.Requests, total, res.MissingNodes, res.FromReplicas)
	}
	// Now lose the replicas too.
	for _, n := range nodes {
		for _, h := range holders {
			if n.Swarm().PeerID() == h {
				n.Crash()
			}
		}
	}
	res, err = c.Results(context.Background(), id, nil, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, m := range res.MissingNodes {
		found = found || m == victimName
	}
	if !found || res.Requests >= total {
		t.Fatalf("with no replica left: missing %v, %d of %d requests", res.MissingNodes, res.Requests, total)
	}
}

// TestOneReport: for the same stored data, the live report, `swarm
// results` and a --local report of the merged series give the same numbers,
// the same thresholds and the same region names.
func TestOneReport(t *testing.T) {
	nodes := fleet(t, 3)
	ct := newCountingTarget(t)
	body := []byte(fmt.Sprintf(`name: one
target: %s
duration: 3s
load: {rate: 150}
flow: weighted
requests: [{name: a, weight: 2}, {name: b, path: /b}]
thresholds: ['p99 < 5000', 'regions["r-n1"].requests > 0', 'steps["b"].requests > 0']
`, ct.srv.URL))
	id, st := runTest(t, nodes, 0, body)
	live := st.Report
	c := node.NewClient(nodes[1].APIAddr(), nil)
	res, err := c.Results(context.Background(), id, []string{"region", "node", "step"}, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	// --local on the same data: every node's stored seconds merged into
	// one series, as if one host had sent them all.
	all := storage.NewSeries()
	for _, n := range nodes {
		s, err := n.Store().Series(id, n.Swarm().PeerID(), 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		if err := all.Merge(s); err != nil {
			t.Fatal(err)
		}
	}
	sc, err := scenarios.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	local, err := report.Local(sc, all, false, "")
	if err != nil {
		t.Fatal(err)
	}
	same := func(what string, a, b any) {
		t.Helper()
		x, _ := json.Marshal(a)
		y, _ := json.Marshal(b)
		if string(x) != string(y) {
			t.Errorf("%s differs:\n%s\n%s", what, x, y)
		}
	}
	same("live vs results: summary", live.Summary, res.Summary)
	same("live vs results: by step", live.ByStep, res.ByStep)
	same("live vs results: by region", live.ByRegion, res.ByRegion)
	same("live vs results: by node", live.ByNode, res.ByNode)
	same("live vs results: thresholds", live.Thresholds, res.Thresholds)
	same("live vs results: delivery", live.Delivery, res.Delivery)
	same("live vs local: summary", live.Summary, local.Summary)
	same("live vs local: by step", live.ByStep, local.ByStep)
	same("live vs local: series", live.Series, local.Series)
	if live.Status != "passed" || res.Status != live.Status {
		t.Errorf("status: live %s, results %s (%+v)", live.Status, res.Status, live.Thresholds)
	}
	// --local has no regions: its region rule fails, the others agree.
	for i, th := range local.Thresholds {
		if strings.HasPrefix(th.Expr, "regions") {
			if th.Pass {
				t.Errorf("--local passed a region rule: %+v", th)
			}
			continue
		}
		same("live vs local: "+th.Expr, live.Thresholds[i], th)
	}
	if len(live.ByRegion) != 3 || live.Requests != 450 {
		t.Errorf("regions %v, %d requests", live.ByRegion, live.Requests)
	}
}

// TestHistory: GET /v1/tests?name= lists every stored run of a test with
// its key figures, newest first, before and after the runs are retired.
func TestHistory(t *testing.T) {
	nodes := fleet(t, 2)
	ct := newCountingTarget(t)
	first, _ := runTest(t, nodes, 0, spec(ct.srv.URL, 20, 1))
	second, _ := runTest(t, nodes, 1, spec(ct.srv.URL, 30, 1))
	c := node.NewClient(nodes[1].APIAddr(), nil)
	h, err := c.History(context.Background(), "fleet")
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 2 || h[0].ID != second || h[1].ID != first {
		t.Fatalf("history: %+v", h)
	}
	for i, want := range []int64{30, 20} {
		if f := h[i].Figures; f == nil || f.Requests != want || f.Status != "passed" || f.P95 <= 0 {
			t.Fatalf("run %d figures: %+v", i, f)
		}
	}
	if h, err := c.History(context.Background(), "no-such-test"); err != nil || len(h) != 0 {
		t.Fatalf("unknown name: %v %v", h, err)
	}
	if _, err := c.History(context.Background(), strings.Repeat("x", 200)); err == nil || !strings.Contains(err.Error(), "name") {
		t.Fatalf("long name: %v", err)
	}
}
