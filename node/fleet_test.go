package node_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loadswarm/loadswarm/node"
	"github.com/loadswarm/loadswarm/storage"
	"github.com/loadswarm/loadswarm/swarm/swarmtest"
)

// countingTarget counts the requests it gets in each second after t0.
type countingTarget struct {
	mu     sync.Mutex
	t0     time.Time
	counts map[int64]int
	last   time.Time
	srv    *httptest.Server
}

func newCountingTarget(t testing.TB) *countingTarget {
	ct := &countingTarget{counts: map[int64]int{}}
	ct.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ct.mu.Lock()
		if !ct.t0.IsZero() {
			ct.counts[int64(time.Since(ct.t0)/time.Second)]++
		}
		ct.last = time.Now()
		ct.mu.Unlock()
		w.Write([]byte("ok"))
	}))
	t.Cleanup(ct.srv.Close)
	return ct
}

func (ct *countingTarget) setStart(t0 time.Time) {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	if ct.t0.IsZero() {
		ct.t0 = t0
	}
}

func (ct *countingTarget) snapshot() (map[int64]int, time.Time) {
	ct.mu.Lock()
	defer ct.mu.Unlock()
	out := map[int64]int{}
	for k, v := range ct.counts {
		out[k] = v
	}
	return out, ct.last
}

// fleet starts n nodes with short leases and lead times.
func fleet(t *testing.T, n int) []*node.Node { return fleetWith(t, n, "n", nil) }

// fleetWith is fleet with names prefix0.. and a hook to change node i's
// config before it starts.
func fleetWith(t testing.TB, n int, prefix string, configure func(i int, c *node.Config)) []*node.Node {
	t.Helper()
	var nodes []*node.Node
	for i := range n {
		c := localConfig(t, fmt.Sprintf("%s%d", prefix, i), t.TempDir())
		if i > 0 {
			c.Seeds = []string{nodes[0].Swarm().GossipAddr()}
		}
		c.LeaseTTL = 1500 * time.Millisecond
		c.StartLead = time.Second
		if configure != nil {
			configure(i, &c)
		}
		nodes = append(nodes, startNode(t, c))
	}
	waitConverged(t, nodes)
	return nodes
}

// waitConverged waits until every node sees every other alive.
func waitConverged(t testing.TB, nodes []*node.Node) {
	t.Helper()
	swarmtest.WaitFor(t, 10*time.Second, "fleet converges", func() (bool, string) {
		for _, nd := range nodes {
			if got := nd.Swarm().NumAlive(); got != len(nodes) {
				return false, fmt.Sprintf("%s sees %d", nd.Swarm().Name(), got)
			}
		}
		return true, ""
	})
}

func spec(target string, rate, secs int) []byte {
	return []byte(fmt.Sprintf("name: fleet\ntarget: %s\nduration: %ds\nload: {rate: %d}\nrequests: [{name: a, check: 'status == 200'}]\nthresholds: ['error_rate == 0']\n", target, secs, rate))
}

// waitStatus polls a node until the test is over.
func waitOver(t *testing.T, c *node.Client, id string, timeout time.Duration) node.TestStatus {
	t.Helper()
	var st node.TestStatus
	swarmtest.WaitFor(t, timeout, "test "+id+" is over", func() (bool, string) {
		var err error
		st, err = c.Test(context.Background(), id, 0, true)
		if err != nil {
			return false, err.Error()
		}
		return st.Report != nil, st.State
	})
	return st
}

func waitStart(t *testing.T, c *node.Client, id string) node.TestStatus {
	t.Helper()
	var st node.TestStatus
	swarmtest.WaitFor(t, 10*time.Second, "test "+id+" has a plan", func() (bool, string) {
		var err error
		st, err = c.Test(context.Background(), id, 0, false)
		if err != nil {
			return false, err.Error()
		}
		return st.Start != nil, st.State
	})
	return st
}

func TestFleetRunSplitsAndMerges(t *testing.T) {
	nodes := fleet(t, 4)
	ct := newCountingTarget(t)
	c := node.NewClient(nodes[3].APIAddr(), nil)
	id, err := c.Submit(context.Background(), spec(ct.srv.URL, 400, 5), "")
	if err != nil {
		t.Fatal(err)
	}
	st := waitStart(t, c, id)
	ct.setStart(*st.Start)
	st = waitOver(t, c, id, 30*time.Second)
	rep := st.Report
	if rep.Status != "passed" || rep.Requests != 2000 || rep.Errors != 0 || rep.Dropped != 0 {
		t.Fatalf("report: status %s requests %d errors %d dropped %d", rep.Status, rep.Requests, rep.Errors, rep.Dropped)
	}
	if len(rep.Nodes) != 4 {
		t.Fatalf("%d nodes in the report", len(rep.Nodes))
	}
	// The target saw the planned rate, second by second, within 2%.
	counts, _ := ct.snapshot()
	for s := int64(0); s < 5; s++ {
		if math.Abs(float64(counts[s])-400) > 8 {
			t.Errorf("second %d: target saw %d requests, want 400 ± 2%%", s, counts[s])
		}
	}
	// By region and by node add up to the total.
	var byRegion, byNode int64
	for _, s := range rep.ByRegion {
		byRegion += s.Requests
	}
	for _, s := range rep.ByNode {
		byNode += s.Requests
	}
	if len(rep.ByRegion) != 4 || byRegion != rep.Requests || byNode != rep.Requests {
		t.Fatalf("by region %d (%d regions), by node %d; total %d", byRegion, len(rep.ByRegion), byNode, rep.Requests)
	}
	// Every node sees the same merged report.
	other, err := node.NewClient(nodes[1].APIAddr(), nil).Test(context.Background(), id, 0, false)
	if err != nil || other.Report == nil || other.Report.Requests != 2000 {
		t.Fatalf("node 1's view: %+v %v", other.Report, err)
	}
	t.Logf("start skew %.1f ms, p99 %.2f ms", rep.StartSkewMs, rep.Latency.P99)
}

func TestFleetRefusesBadAndInfeasibleTests(t *testing.T) {
	nodes := fleet(t, 2)
	c := node.NewClient(nodes[0].APIAddr(), nil)
	// A bad file is refused at submit, with the field.
	_, err := c.Submit(context.Background(), []byte("name: x\ntarget: http://127.0.0.1:1\nduration: 1s\nload: {rate: -5}\nrequests: [{name: a}]\n"), "")
	if err == nil || !contains(err.Error(), "load.rate: must be > 0") {
		t.Fatalf("submit of a bad file: %v", err)
	}
	// More than the fleet can carry (2 x 1000/s): refused with the numbers.
	id, err := c.Submit(context.Background(), spec("http://127.0.0.1:1", 5000, 5), "")
	if err != nil {
		t.Fatal(err)
	}
	st := waitRefused(t, c, id, "need 5000/s")
	if !contains(st.Reason, "2000/s") {
		t.Fatalf("reason: %q", st.Reason)
	}
	// The nodes keep running.
	if _, err := c.Health(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func contains(s, sub string) bool {
	return len(sub) == 0 || (len(s) >= len(sub) && indexOf(s, sub) >= 0)
}

func indexOf(s, sub string) int {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return i
		}
	}
	return -1
}

// byName finds a node by name.
func byName(nodes []*node.Node, name string) *node.Node {
	for _, n := range nodes {
		if n.Swarm().Name() == name {
			return n
		}
	}
	return nil
}

// checkRecovery reads the target's per-second counts: no second above 105%
// of the rate, and the seconds from recoverBy on (but the last) within 2%
// (50% under the race detector, whose slowness makes leases lapse for a
// moment).
func checkRecovery(t *testing.T, ct *countingTarget, rate, secs int, recoverBy int64) {
	t.Helper()
	tolerance := 0.02
	if raceEnabled {
		tolerance = 0.5
	}
	counts, _ := ct.snapshot()
	var line []string
	for s := int64(0); s < int64(secs); s++ {
		c := counts[s]
		line = append(line, fmt.Sprint(c))
		if float64(c) > 1.05*float64(rate) {
			t.Errorf("second %d: %d requests, over 105%% of %d/s", s, c, rate)
		}
		// A request sent on a second's edge may be counted in the next one
		// on a loaded machine: a single second may be off by twice the
		// tolerance if its neighbour makes up for it.
		if s >= recoverBy && s < int64(secs)-1 {
			off := func(n, secs int) bool { return math.Abs(float64(n-secs*rate)) > tolerance*float64(secs*rate) }
			evened := !off(c+counts[s-1], 2) || s+1 < int64(secs)-1 && !off(c+counts[s+1], 2)
			if off(c, 1) && (math.Abs(float64(c-rate)) > 2*tolerance*float64(rate) || !evened) {
				t.Errorf("second %d: %d requests (%d before, %d after), want %d ± %.0f%% after recovery", s, c, counts[s-1], counts[s+1], rate, 100*tolerance)
			}
		}
	}
	t.Logf("requests per second at the target: %v", line)
}

// TestFleetNodeDies: a node crashes mid-test; its share is back on the
// survivors within seconds, and no second overshoots.
func TestFleetNodeDies(t *testing.T) {
	nodes := fleet(t, 4)
	const rate, secs = 200, 14
	ct, c, id, st := startCounted(t, nodes[0], spec, rate, secs)
	// Crash a node that neither schedules nor was asked: the client's node
	// must stay up to follow the test.
	victim := pickVictim(t, nodes, st)
	time.Sleep(time.Until(st.Start.Add(3 * time.Second)))
	victim.Crash()
	crashedAt := time.Since(*st.Start)
	st = waitOver(t, c, id, 40*time.Second)
	// Death seen in ~1-2 s (local profile), lease 1.5 s + margin, lead 1 s:
	// back to the full rate within 10 s of the crash.
	checkRecovery(t, ct, rate, secs, int64(crashedAt/time.Second)+8)
	if st.Epoch < 2 {
		t.Fatalf("no re-plan after the crash (epoch %d)", st.Epoch)
	}
	// The re-plan is an event on the dashboard's time axis, after the crash.
	var replan *node.TestEvent
	for i, ev := range st.Events {
		if ev.Kind == "plan" && contains(ev.Text, "left "+victim.Swarm().Name()+" (") {
			replan = &st.Events[i]
		}
	}
	if replan == nil || replan.T < crashedAt.Seconds() {
		t.Fatalf("crash at %s; events: %+v", crashedAt, st.Events)
	}
	t.Logf("crash at %s; report: %d requests, achieved %.1f/s of %.1f/s", crashedAt.Round(time.Millisecond), st.Report.Requests, st.Report.Rate.Achieved, st.Report.Rate.Target)
}

// TestFleetSchedulerDies: the scheduler crashes mid-test; the next in rank
// takes over and the test completes.
func TestFleetSchedulerDies(t *testing.T) {
	nodes := fleet(t, 4)
	const rate, secs = 200, 14
	ct, _, id, st := startCounted(t, nodes[0], spec, rate, secs)
	sched := byName(nodes, st.Scheduler)
	var watcher *node.Node
	for _, n := range nodes {
		if n != sched {
			watcher = n
			break
		}
	}
	time.Sleep(time.Until(st.Start.Add(3 * time.Second)))
	sched.Crash()
	crashedAt := time.Since(*st.Start)
	wc := node.NewClient(watcher.APIAddr(), nil)
	st = waitOver(t, wc, id, 40*time.Second)
	if st.State != node.StateDone || st.Scheduler == sched.Swarm().Name() {
		t.Fatalf("state %s, scheduler %s (crashed: %s)", st.State, st.Scheduler, sched.Swarm().Name())
	}
	checkRecovery(t, ct, rate, secs, int64(crashedAt/time.Second)+8)
}

// TestFleetStop: `swarm stop` on another node stops that node's share
// only (its share moves); on the submitter it halts every node within a
// second.
func TestFleetStop(t *testing.T) {
	nodes := fleet(t, 3)
	ct := newCountingTarget(t)
	c := node.NewClient(nodes[1].APIAddr(), nil)
	id, err := c.Submit(context.Background(), spec(ct.srv.URL, 100, 60), "")
	if err != nil {
		t.Fatal(err)
	}
	st := waitStart(t, c, id)
	ct.setStart(*st.Start)
	time.Sleep(time.Until(st.Start.Add(2 * time.Second)))
	st, _ = c.Test(context.Background(), id, 0, false) // who schedules it now
	other := nodes[2]
	if other.Swarm().Name() == st.Scheduler {
		other = nodes[0]
	}
	res, err := node.NewClient(other.APIAddr(), nil).Stop(context.Background(), id)
	if err != nil || res.Scope != node.StopNode || !contains(res.Note, "only the test's submitter") {
		t.Fatalf("stop on a node that neither submitted nor schedules the test: %+v %v", res, err)
	}
	if st, _ := c.Test(context.Background(), id, 0, false); st.State != node.StateRunning {
		t.Fatalf("the test is %s after another node's stop", st.State)
	}
	stopped := time.Now()
	if res, err := c.Stop(context.Background(), id); err != nil || res.Scope != node.StopFleet {
		t.Fatal(res, err)
	}
	st = waitOver(t, c, id, 10*time.Second)
	if st.State != node.StateStopped || !st.Report.Interrupted {
		t.Fatalf("state %s interrupted %v", st.State, st.Report.Interrupted)
	}
	// Let any straggler show, then check the last request's time.
	time.Sleep(1500 * time.Millisecond)
	_, last := ct.snapshot()
	if d := last.Sub(stopped); d > time.Second {
		t.Fatalf("requests went on %s after the stop", d)
	}
}

// TestFleetPolicyDecline: a node whose operator does not allow the target
// declines; the test runs on the others and the submitter sees why.
func TestFleetPolicyDecline(t *testing.T) {
	nodes := fleetWith(t, 3, "p", func(i int, c *node.Config) {
		if i == 2 {
			c.Policy.AllowTargets = []string{"*.staging.example.com"}
		}
	})
	ct := newCountingTarget(t)
	c := node.NewClient(nodes[0].APIAddr(), nil)
	id, err := c.Submit(context.Background(), spec(ct.srv.URL, 100, 2), "")
	if err != nil {
		t.Fatal(err)
	}
	st := waitOver(t, c, id, 30*time.Second)
	if st.Report.Requests != 200 || st.Report.Status != "passed" {
		t.Fatalf("report: %d requests, %s", st.Report.Requests, st.Report.Status)
	}
	if why := st.Excluded["p2"]; !contains(why, "declined") || !contains(why, "loopback address refused") {
		t.Fatalf("excluded: %v", st.Excluded)
	}
	for _, n := range st.Report.Nodes {
		if n.Name == "p2" {
			t.Fatalf("p2 took part: %+v", n)
		}
	}
	// The dashboard's time axis says so.
	if len(st.Events) == 0 || !contains(st.Events[0].Text, "without p2 (declined") {
		t.Fatalf("events: %+v", st.Events)
	}
	// Every node declining: the test fails with their reasons.
	st2 := localConfig(t, "solo", t.TempDir())
	st2.Policy.TrustSubmitters = []string{"somebody-else"}
	solo := startNode(t, st2)
	sc := node.NewClient(solo.APIAddr(), nil)
	id, err = sc.Submit(context.Background(), spec(ct.srv.URL, 10, 1), "")
	if err != nil {
		t.Fatal(err)
	}
	waitRefused(t, sc, id, "not trusted")
}

// TestFleetSlowNodeSheds: a node that cannot keep up (here: a far, slow
// link with few requests in flight) drops arrivals; the scheduler moves its
// load to nodes with headroom and the target gets the planned rate again.
func TestFleetSlowNodeSheds(t *testing.T) {
	nodes := fleetWith(t, 3, "s", func(i int, c *node.Config) {
		if i == 2 {
			c.SimLatency = 300 * time.Millisecond
		}
	})
	ct := newCountingTarget(t)
	const rate, secs = 150, 14
	c := node.NewClient(nodes[0].APIAddr(), nil)
	body := fmt.Sprintf("name: slow\ntarget: %s\nduration: %ds\nload: {rate: %d, max_in_flight: 5}\nrequests: [{name: a}]\n", ct.srv.URL, secs, rate)
	id, err := c.Submit(context.Background(), []byte(body), "")
	if err != nil {
		t.Fatal(err)
	}
	st := waitStart(t, c, id)
	ct.setStart(*st.Start)
	st = waitOver(t, c, id, 40*time.Second)
	counts, _ := ct.snapshot()
	var line []int
	for s := int64(0); s < secs; s++ {
		line = append(line, counts[s])
	}
	t.Logf("requests per second at the target: %v", line)
	if len(st.Report.ByNode) != 3 {
		t.Fatalf("the slow node took no part: %d nodes in the report", len(st.Report.ByNode))
	}
	if st.Epoch < 2 {
		t.Fatalf("no rebalance (epoch %d)", st.Epoch)
	}
	for s := int64(9); s < secs-1; s++ {
		// Under the race detector a stalled pacer misses arrivals (a dip);
		// a second over the plan fails either way.
		if float64(counts[s]) > 1.05*rate || !raceEnabled && math.Abs(float64(counts[s]-rate)) > 0.05*rate {
			t.Errorf("second %d: %d requests, want %d ± 5%% after the rebalance", s, counts[s], rate)
		}
	}
}

// TestSubmitThenFollowAtOnce: the submitting node knows the test as soon
// as the submit returns (no wait for its own announcement over gossip).
func TestSubmitThenFollowAtOnce(t *testing.T) {
	nodes := fleet(t, 1)
	ct := newCountingTarget(t)
	c := node.NewClient(nodes[0].APIAddr(), nil)
	for range 5 {
		id, err := c.Submit(context.Background(), spec(ct.srv.URL, 10, 1), "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Test(context.Background(), id, 0, false); err != nil {
			t.Fatalf("right after submit: %v", err)
		}
	}
}

// TestRetiredTestKeepsItsReport: once a finished test is retired from
// memory, its status still has the report and its results come from the
// stores.
func TestRetiredTestKeepsItsReport(t *testing.T) {
	defer node.SetRetireAfter(100 * time.Millisecond)()
	nodes := fleet(t, 2)
	ct := newCountingTarget(t)
	c := node.NewClient(nodes[0].APIAddr(), nil)
	id, st := runTest(t, nodes, 0, spec(ct.srv.URL, 50, 2))
	swarmtest.WaitFor(t, 5*time.Second, "retired", func() (bool, string) {
		s, err := c.Test(context.Background(), id, 0, false)
		return err == nil && len(s.Seconds) == 0 && s.Report != nil, fmt.Sprint(len(s.Seconds), err)
	})
	s, _ := c.Test(context.Background(), id, 0, false)
	if s.Report.Requests != st.Report.Requests {
		t.Fatalf("retired report: %d requests, was %d", s.Report.Requests, st.Report.Requests)
	}
	res, err := c.Results(context.Background(), id, nil, 0, -1)
	if err != nil || res.Requests != st.Report.Requests {
		t.Fatalf("results after retirement: %v, %d", err, res.Requests)
	}
}

// TestFleetPartitionedNodeStopsByItself: a node cut off from the fleet (its
// gossip and libp2p traffic dropped, its process and its link to the target
// intact) stops its share by itself when its lease runs out; the others take
// its share after that, and no second goes over the planned rate.
func TestFleetPartitionedNodeStopsByItself(t *testing.T) {
	nodes := fleet(t, 4)
	const rate, secs = 200, 14
	ct, c, id, st := startCounted(t, nodes[0], spec, rate, secs)
	victim := pickVictim(t, nodes, st)
	time.Sleep(time.Until(st.Start.Add(3 * time.Second)))
	victim.Isolate(true)
	cutAt := time.Since(*st.Start)
	st = waitOver(t, c, id, 40*time.Second)
	checkRecovery(t, ct, rate, secs, int64(cutAt/time.Second)+8)
	// The victim's own results: it stopped a lease (1.5 s) and a failure
	// detection after the cut, not at the end of the test.
	own, err := victim.Store().Series(id, victim.Swarm().PeerID(), 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	var last int64 = -1
	for t, sec := range own.Seconds {
		if storage.SummarizeSecond(sec).Arrivals > 0 && t > last {
			last = t
		}
	}
	if stop := time.Duration(last+1) * time.Second; stop > cutAt+5*time.Second || last < 0 {
		t.Fatalf("cut at %s, the victim sent until second %d", cutAt.Round(time.Millisecond), last)
	}
	t.Logf("cut at %s; the victim's last arrivals in second %d", cutAt.Round(time.Millisecond), last)
}

func TestIsolateEndpoint(t *testing.T) {
	nodes := fleet(t, 2)
	base := "http://" + nodes[0].APIAddr() + "/v1/debug/isolate"
	for _, body := range []string{"", "nope", `{"isolated": "yes"}`, `{"isolated": true, "x": 1}`} {
		resp, err := http.Post(base, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("body %q: %s, want 400", body, resp.Status)
		}
	}
	c := node.NewClient(nodes[0].APIAddr(), nil)
	if err := c.Isolate(context.Background(), true); err != nil {
		t.Fatal(err)
	}
	swarmtest.WaitFor(t, 10*time.Second, "isolated", func() (bool, string) {
		h, err := c.Health(context.Background())
		return err == nil && h.Isolated && nodes[1].Swarm().NumAlive() == 1, fmt.Sprint(err)
	})
	if err := c.Isolate(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	waitConverged(t, nodes)
}

// pickVictim is a node with a share in the test that neither schedules it
// nor was asked to run it (nodes[0]).
func pickVictim(t *testing.T, nodes []*node.Node, st node.TestStatus) *node.Node {
	t.Helper()
	shared := map[string]bool{}
	for _, ns := range st.NodeStates {
		shared[ns.PeerID] = true
	}
	for _, n := range nodes[1:] {
		if n.Swarm().Name() != st.Scheduler && shared[n.Swarm().PeerID()] {
			return n
		}
	}
	t.Fatalf("no node with a share besides the scheduler %s and the submitter: %+v", st.Scheduler, st.NodeStates)
	return nil
}

// TestAPIBadInput: every bad value a user can send the API is refused with
// the field and the reason, and the node keeps running.
const envSpec = "name: e\ntarget: http://127.0.0.1:1\nduration: 1s\nload: {rate: 1}\nrequests: [{name: a, headers: {X-T: '{{ env.TOKEN }}'}}]\n"

// runJSON is a POST /v1/runs body: the spec and more fields.
func runJSON(spec, more string) string {
	b, _ := json.Marshal(spec)
	return `{"spec": ` + string(b) + `, ` + more + `}`
}

func TestAPIBadInput(t *testing.T) {
	nodes := fleet(t, 1)
	ct := newCountingTarget(t)
	c := node.NewClient(nodes[0].APIAddr(), nil)
	id, _ := runTest(t, nodes, 0, spec(ct.srv.URL, 10, 1))
	base := "http://" + nodes[0].APIAddr()
	for _, tc := range []struct {
		method, path, body string
		status             int
		want               string
	}{
		{"POST", "/v1/tests", "", 400, "empty"},
		{"PUT", "/v1/tests", "", 405, ""},
		{"POST", "/v1/tests", "name: [", 400, "invalid scenario"},
		{"POST", "/v1/tests", strings.Repeat("#", 2<<20), 400, "limit"},
		{"POST", "/v1/tests?target=ftp://x", string(spec("http://127.0.0.1:1", 1, 1)), 400, "target: scheme"},
		{"GET", "/v1/tests/nope", "", 404, "not known"},
		{"GET", "/v1/tests/" + id + "?since=-3", "", 400, "since"},
		{"GET", "/v1/tests/" + id + "?since=x", "", 400, "since"},
		{"GET", "/v1/tests/" + id + "/results?by=color", "", 400, "by="},
		{"GET", "/v1/tests/" + id + "/results?from=-1", "", 400, "from="},
		{"GET", "/v1/tests/" + id + "/results?to=abc", "", 400, "to="},
		{"GET", "/v1/tests/" + id + "/results?exemplars=maybe", "", 400, "exemplars="},
		{"GET", "/v1/tests/" + id + "/results?exemplars=1", "", 200, "\"observe\""},
		{"POST", "/v1/tests", "name: o\ntarget: http://127.0.0.1:1\nduration: 1s\nload: {rate: 1}\nrequests: [{name: a}]\nobserve: {sources: [{name: q, prometheus: 'http://127.0.0.1:9', query: 'sum(('}]}\n", 400, "observe.sources[0].query"},
		{"POST", "/v1/tests", "name: o\ntarget: http://127.0.0.1:1\nduration: 1s\nload: {rate: 1}\nrequests: [{name: a}]\ntracing: {sample: 2}\n", 400, "tracing.sample"},
		{"GET", "/v1/tests/" + id + "/results?from=50", "", 404, "past the test's last second"},
		{"GET", "/v1/tests/nope/results", "", 404, "not known"},
		{"DELETE", "/v1/tests/nope", "", 404, "not known"},
		{"GET", "/v1/tests/" + id + "?report=yes", "", 400, "report="},
		{"GET", "/v1/stream?test=nope", "", 404, "not known"},
		// A run with parameters (JSON, as swarm run sends it).
		{"POST", "/v1/runs", `{"spec": 3}`, 400, "body:"},
		{"POST", "/v1/runs", `{"spec": "x", "colour": 1}`, 400, "unknown field"},
		{"POST", "/v1/runs", runJSON(envSpec, `"env": {}`), 400, "env.TOKEN"},
		{"POST", "/v1/runs", runJSON(envSpec, `"env": {"TOKEN": "ab"}, "secret": ["TOKEN"]`), 400, "at least 4"},
		{"POST", "/v1/runs", runJSON(envSpec, `"env": {"TOKEN": "abcd"}, "secret": ["OTHER"]`), 400, "secret[0]: OTHER is not given"},
		{"POST", "/v1/runs", runJSON(envSpec, `"env": {"TOKEN": "abcd", "9": "x"}`), 400, "env.9"},
	} {
		req, _ := http.NewRequest(tc.method, base+tc.path, strings.NewReader(tc.body))
		if tc.method != "GET" && tc.method != "DELETE" {
			req.Header.Set("Content-Type", "application/yaml")
			if strings.HasPrefix(tc.path, "/v1/runs") {
				req.Header.Set("Content-Type", "application/json")
			}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b := new(strings.Builder)
		_, _ = io.Copy(b, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || !strings.Contains(b.String(), tc.want) {
			t.Errorf("%s %s: %s %q; want %d with %q", tc.method, tc.path[:min(len(tc.path), 60)], resp.Status, b.String(), tc.status, tc.want)
		}
	}
	if _, err := c.Health(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// startCounted submits a test against a counting target through n and
// waits for its plan; the target counts per second from the test's start.
func startCounted(t *testing.T, n *node.Node, mk func(string, int, int) []byte, rate, secs int) (*countingTarget, *node.Client, string, node.TestStatus) {
	t.Helper()
	ct := newCountingTarget(t)
	c := node.NewClient(n.APIAddr(), nil)
	id, err := c.Submit(context.Background(), mk(ct.srv.URL, rate, secs), "")
	if err != nil {
		t.Fatal(err)
	}
	st := waitStart(t, c, id)
	ct.setStart(*st.Start)
	return ct, c, id, st
}

// waitTakeover waits until a node other than sched leads test id at a
// later epoch than from, as a third node (neither sched nor the
// submitter, nodes[0]) sees it, and returns a client of that node.
func waitTakeover(t *testing.T, nodes []*node.Node, sched *node.Node, id string, from uint64) *node.Client {
	t.Helper()
	var watcher *node.Node
	for _, n := range nodes {
		if n != sched && n != nodes[0] {
			watcher = n
			break
		}
	}
	wc := node.NewClient(watcher.APIAddr(), nil)
	swarmtest.WaitFor(t, 10*time.Second, "another node leads", func() (bool, string) {
		s, err := wc.Test(context.Background(), id, 0, false)
		return err == nil && s.Scheduler != sched.Swarm().Name() && s.Epoch > from, s.Scheduler
	})
	return wc
}

// TestFleetSchedulerIsolated: the scheduler is cut off from the fleet's
// gossip and libp2p (its process and its link to the target intact). It
// sees no majority, so it renews no lease and its own share stops at lease
// expiry; the next in rank takes over and moves its share. Healed, it does
// not take scheduling back. No second goes over 105%, and the test ends at
// its rate.
func TestFleetSchedulerIsolated(t *testing.T) {
	nodes := fleet(t, 4)
	const rate, secs = 200, 16
	ct, _, id, st := startCounted(t, nodes[0], spec, rate, secs)
	sched := byName(nodes, st.Scheduler)
	time.Sleep(time.Until(st.Start.Add(3 * time.Second))) // a point in the test, not a condition
	sched.Isolate(true)
	cutAt := time.Since(*st.Start)
	wc := waitTakeover(t, nodes, sched, id, st.Epoch)
	// The cut-off node, which still answers its own API, has found itself
	// in a minority: its share paused at lease expiry.
	sc := node.NewClient(sched.APIAddr(), nil)
	swarmtest.WaitFor(t, 10*time.Second, "the cut-off scheduler pauses", func() (bool, string) {
		s, err := sc.Test(context.Background(), id, 0, false)
		return err == nil && (s.Paused || s.GaveUp != ""), fmt.Sprint(s.Paused, s.GaveUp, err)
	})
	sched.Isolate(false)
	st = waitOver(t, wc, id, 40*time.Second)
	checkRecovery(t, ct, rate, secs, int64(cutAt/time.Second)+8)
	if st.Scheduler == sched.Swarm().Name() {
		t.Fatalf("the isolated scheduler leads again after the heal (epoch %d)", st.Epoch)
	}
	t.Logf("cut at %s; led by %s from epoch %d; delivery %.1f%%", cutAt.Round(time.Millisecond), st.Scheduler, st.Epoch, 100*st.Report.Delivery.Ratio)
}

// TestFleetDeafScheduler: the scheduler still sees every member alive
// (its failure detector says nothing) but hears none of their results, as
// when its links to the fleet fail one way. It stops leasing (Contact after
// it last heard a majority; failing that, once it takes the others for
// silent), the next in rank takes over, and no second goes over the rate.
// A liveness check: the Contact rule itself is pinned by the coordinator's
// traces (TestTraceCutOffByContact and after), which fail without it.
func TestFleetDeafScheduler(t *testing.T) {
	nodes := fleet(t, 4)
	const rate, secs = 200, 16
	ct, _, id, st := startCounted(t, nodes[0], spec, rate, secs)
	sched := byName(nodes, st.Scheduler)
	time.Sleep(time.Until(st.Start.Add(3 * time.Second))) // a point in the test, not a condition
	sched.DeafToStats(true)
	deafAt := time.Since(*st.Start)
	wc := waitTakeover(t, nodes, sched, id, st.Epoch)
	final := waitOver(t, wc, id, 40*time.Second)
	checkRecovery(t, ct, rate, secs, int64(deafAt/time.Second)+8)
	if final.Scheduler == sched.Swarm().Name() {
		t.Fatalf("the deaf scheduler leads again (epoch %d)", final.Epoch)
	}
	t.Logf("deaf at %s; led by %s from epoch %d; delivery %.1f%%", deafAt.Round(time.Millisecond), final.Scheduler, final.Epoch, 100*final.Report.Delivery.Ratio)
}

// waitRefused waits until a test has failed (it could not run), and checks
// that its reason says why.
func waitRefused(t *testing.T, c *node.Client, id, why string) node.TestStatus {
	t.Helper()
	var st node.TestStatus
	swarmtest.WaitFor(t, 15*time.Second, "test "+id+" refused", func() (bool, string) {
		var err error
		st, err = c.Test(context.Background(), id, 0, false)
		return err == nil && st.State == node.StateFailed, fmt.Sprint(st.State, err)
	})
	if !contains(st.Reason, why) {
		t.Fatalf("reason %q, want %q", st.Reason, why)
	}
	return st
}
