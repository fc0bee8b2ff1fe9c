package node_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loadswarm/loadswarm/node"
	"github.com/loadswarm/loadswarm/scenarios"
	"github.com/loadswarm/loadswarm/scheduler"
	"github.com/loadswarm/loadswarm/storage"
	"github.com/loadswarm/loadswarm/swarm"
	"github.com/loadswarm/loadswarm/swarm/swarmtest"
)

// The tests in this file play the cases of the issue "Trust no member": a
// member that holds the fleet key and speaks the fleet's protocol (built
// from the project's own swarm package) lies, and a web page calls the
// local API. Each counts at the target that nothing beyond the plan and
// the operators' policies reached it, and that an honest test beside the
// attack completes at its rate.

// rogue is a hostile fleet member: a bare swarm node with the fleet's wire
// registry, whose own rate limits it sets as it likes.
type rogue struct {
	t     *testing.T
	sw    *swarm.Swarm
	fleet *swarm.Topic
}

func newRogue(t *testing.T, nodes []*node.Node, edit func(types map[swarm.Type]swarm.TypeSpec)) *rogue {
	t.Helper()
	cfg := swarmtest.Config(t, 99)
	types := node.WireTypes()
	for k, v := range types {
		if v.RatePerSec > 0 {
			v.RatePerSec, v.Burst = 1e6, 1e6 // its own sender-side limits: none
			types[k] = v
		}
	}
	if edit != nil {
		edit(types)
	}
	cfg.Types = types
	cfg.Meta.CapacityPerSec = 1000
	sw := swarmtest.Start(t, cfg)
	if _, err := sw.Join([]string{nodes[0].Swarm().GossipAddr()}); err != nil {
		t.Fatal(err)
	}
	swarmtest.WaitFor(t, 10*time.Second, "the rogue is a member", func() (bool, string) {
		for _, n := range nodes {
			if n.Swarm().NumAlive() != len(nodes)+1 {
				return false, n.Swarm().Name()
			}
		}
		return true, ""
	})
	fleet, err := sw.Topic("fleet")
	if err != nil {
		t.Fatal(err)
	}
	return &rogue{t: t, sw: sw, fleet: fleet}
}

// say publishes on the fleet topic, or on a test's topic when id is set;
// refusals by its own swarm are the test's failure, those of the others
// are the point.
func (r *rogue) say(topic *swarm.Topic, typ swarm.Type, id string, body any) {
	r.t.Helper()
	if err := swarm.Publish(context.Background(), topic, typ, 1, id, body); err != nil {
		r.t.Fatalf("rogue publish: %v", err)
	}
}

func (r *rogue) testTopic(id string) *swarm.Topic {
	r.t.Helper()
	topic, err := r.sw.Topic("test/" + id)
	if err != nil {
		r.t.Fatal(err)
	}
	return topic
}

// atMost checks that no second at the target went over 105% of rate, and
// logs what it saw.
func atMost(t *testing.T, ct *countingTarget, rate float64, secs int) int {
	t.Helper()
	counts, _ := ct.snapshot()
	var total int
	var line []string
	for s, c := range counts {
		total += c
		if float64(c) > 1.05*rate+0.5 {
			t.Errorf("second %d: %d requests at the target, over 105%% of %g/s", s, c, rate)
		}
	}
	for s := int64(0); s < int64(secs)+3; s++ {
		line = append(line, fmt.Sprint(counts[s]))
	}
	t.Logf("requests per second at the target: %s (total %d)", strings.Join(line, " "), total)
	return total
}

// honest runs a test from n and checks it completed at its rate: every
// second within 5% at the target, and the report passed. Under the race
// detector, which slows every goroutine several times over, only that no
// second went over.
func honest(t *testing.T, n *node.Node, rate, secs int) {
	t.Helper()
	ct, c, id, _ := startCounted(t, n, spec, rate, secs)
	st := waitOver(t, c, id, time.Duration(secs)*time.Second+40*time.Second)
	counts, _ := ct.snapshot()
	for s := int64(0); s < int64(secs); s++ {
		if float64(counts[s]) > 1.05*float64(rate)+1 || !raceEnabled && math.Abs(float64(counts[s]-rate)) > 0.05*float64(rate)+1 {
			t.Errorf("honest test, second %d: %d requests, want %d ± 5%%", s, counts[s], rate)
		}
	}
	if !raceEnabled && (st.Report.Status != "passed" || st.Report.Requests != int64(rate*secs)) {
		t.Errorf("honest test: %s, %d requests of %d (%+v)", st.Report.Status, st.Report.Requests, rate*secs, st.Report.Delivery)
	}
}

// Case 1: a member writes a trusted node's name as the submitter of its
// own test. Trust goes by the key that signed it: every node declines.
func TestHostileForgedSubmitter(t *testing.T) {
	nodes := fleetWith(t, 3, "f", func(i int, c *node.Config) { c.Policy.TrustSubmitters = []string{"f0"} })
	r := newRogue(t, nodes, nil)
	ct := newCountingTarget(t)
	ct.setStart(time.Now())
	a, err := node.SignAnnounce(r.sw, node.AnnounceBody{Spec: spec(ct.srv.URL, 20, 3), Name: "f0", Created: time.Now(), Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	id := node.IDOf(a)
	c := node.NewClient(nodes[1].APIAddr(), nil)
	var st node.TestStatus
	swarmtest.WaitFor(t, 15*time.Second, "the forged test is refused", func() (bool, string) {
		r.say(r.fleet, node.TypeTestAnnounce, id, a) // again, until it is known: gossip may drop the first
		st, err = c.Test(context.Background(), id, 0, false)
		return err == nil && st.State == node.StateFailed, fmt.Sprint(st.State, err)
	})
	if !contains(st.Reason, "is not trusted") || st.Submitter != r.sw.Name() {
		t.Fatalf("reason %q, submitter %q (want the rogue's own name)", st.Reason, st.Submitter)
	}
	// The real f0 is trusted, beside the attack.
	honest(t, nodes[0], 50, 3)
	if n := atMost(t, ct, 0, 3); n != 0 {
		t.Fatalf("the forged test sent %d requests", n)
	}
}

// Case 2: a member that the test ranks first as its scheduler plans 100/s
// for 25 s on every node of a test that asked for 20/s for 4 s, leases for
// an hour, and claims plans in another's name. Every node checks each plan
// against the signed test and its own capacity: nothing it says is
// followed, and the next in rank schedules the test. The rogue declared
// the most capacity, so it gets most of the rate, and wastes it: what it
// can do is waste its own share, for silentAfter, and the report says the
// test was not delivered.
func TestHostileScheduler(t *testing.T) {
	nodes := fleetWith(t, 3, "s", func(i int, c *node.Config) {
		c.CapacityPerSec = 20
		c.Policy.MaxDuration = 15 * time.Second
	})
	r := newRogue(t, nodes, nil)
	ct := newCountingTarget(t)
	const rate, secs = 20, 12
	// The test's id derives from what n0 signs; try seeds until the rogue
	// ranks first among the members that will accept it (a 1 in 3 chance
	// per seed: the submitter ranks last).
	ids := []string{r.sw.PeerID()}
	for _, n := range nodes {
		ids = append(ids, n.Swarm().PeerID())
	}
	var a node.Announce
	var id string
	for seed := uint64(1); ; seed++ {
		var err error
		a, err = node.SignAnnounce(nodes[0].Swarm(), node.AnnounceBody{Spec: spec(ct.srv.URL, rate, secs), Name: "s0", Created: time.Now(), Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		id = node.IDOf(a)
		if scheduler.RankFor(id, nodes[0].Swarm().PeerID(), ids)[0] == r.sw.PeerID() {
			break
		}
	}
	topic := r.testTopic(id)
	if _, err := nodes[0].SubmitSigned(context.Background(), a); err != nil {
		t.Fatal(err)
	}
	// It accepts the test (again and again, as honest nodes do until there
	// is a plan), then lies for as long as the test lasts.
	lie := func(epoch uint64, sched string) {
		r.say(r.fleet, node.TypeTestReady, id, node.Ready{ID: id, Accept: true, Name: "rogue", Free: 1000})
		p := scheduler.Plan{TestID: id, Epoch: epoch, Scheduler: sched, Start: time.Now().Add(500 * time.Millisecond), LeaseTTL: time.Minute}
		for _, n := range nodes {
			p.Shares = append(p.Shares, scheduler.Share{Node: n.Swarm().PeerID(), Seed: 1,
				Segments: []scenarios.Segment{{Start: 0, Dur: 25 * time.Second, From: 100, To: 100}}})
		}
		r.say(topic, node.TypePlan, id, p)
		r.say(topic, node.TypeLease, id, scheduler.Lease{TestID: id, Epoch: epoch, Scheduler: r.sw.PeerID(), TTL: time.Minute,
			Nodes: p.Nodes(), Sent: time.Now()})
	}
	c := node.NewClient(nodes[0].APIAddr(), nil)
	var st node.TestStatus
	for epoch := uint64(1); ; epoch++ {
		lie(epoch, r.sw.PeerID())
		lie(epoch, nodes[1].Swarm().PeerID()) // in another's name
		var err error
		if st, err = c.Test(context.Background(), id, 0, false); err == nil && st.Start != nil {
			break
		}
		if epoch > 200 {
			t.Fatalf("no honest plan within 20 s: %+v", st)
		}
		time.Sleep(100 * time.Millisecond) // the rogue's pace, not a wait for a condition
	}
	ct.setStart(*st.Start)
	if st.Scheduler == r.sw.Name() {
		t.Fatalf("the rogue schedules the test")
	}
	for range 10 {
		lie(st.Epoch+1, r.sw.PeerID())
	}
	st = waitOver(t, c, id, 40*time.Second)
	total := atMost(t, ct, rate, secs)
	if total > rate*secs+1 || st.State != node.StateDone {
		t.Fatalf("%d requests for a test of %d, state %s", total, rate*secs, st.State)
	}
	// Silent, the rogue lost its share within silentAfter plus a lease:
	// the last seconds ran at the full rate on the honest nodes.
	counts, _ := ct.snapshot()
	if last := counts[secs-1]; math.Abs(float64(last-rate)) > 1 {
		t.Errorf("the last second had %d requests: the rogue's share did not move", last)
	}
	if st.Epoch < 2 || st.Report.Status != "failed" || st.Report.Delivery.Complete {
		t.Errorf("epoch %d, status %s, delivery %+v: the wasted share must show", st.Epoch, st.Report.Status, st.Report.Delivery)
	}
	t.Logf("scheduled by %s after the rogue's plans were refused; %d requests; delivery %.0f%%", st.Scheduler, total, 100*st.Report.Delivery.Ratio)
}

// Case 3: any member's stop message used to stop any test. Only the
// submitter or the scheduler may: the test completes at its rate.
func TestHostileStop(t *testing.T) {
	nodes := fleet(t, 3)
	r := newRogue(t, nodes, nil)
	const rate, secs = 40, 4
	ct, c, id, st := startCounted(t, nodes[0], spec, rate, secs)
	for range 20 {
		r.say(r.fleet, node.TypeTestStop, id, node.Stop{ID: id, Reason: "the rogue says so"})
	}
	st = waitOver(t, c, id, 30*time.Second)
	if st.State != node.StateDone || st.Report.Interrupted {
		t.Fatalf("state %s (%s)", st.State, st.Reason)
	}
	if total := atMost(t, ct, rate, secs); total != rate*secs {
		t.Fatalf("%d requests, want %d", total, rate*secs)
	}
}

// Case 4: 10,050 readiness answers to made-up tests used to wipe the
// readiness of running ones (leases lapsed, the test ended early with no
// reason). Answers to unknown tests are kept per sender, bounded; the
// sender is rate-limited on every node.
func TestHostileReadinessFlood(t *testing.T) {
	nodes := fleet(t, 3)
	r := newRogue(t, nodes, nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var b [8]byte
		for range 10_050 {
			_, _ = rand.Read(b[:])
			id := hex.EncodeToString(b[:])
			if err := swarm.Publish(context.Background(), r.fleet, node.TypeTestReady, 1, id, node.Ready{ID: id, Accept: true}); err != nil {
				return
			}
		}
	}()
	honest(t, nodes[0], 50, 5)
	<-done
}

// Case 5: three 60 MiB messages were accepted (each node went from 34 MB to
// 1.2 GB). Every gossip type has a size limit far below; a node refuses a
// bigger message from its length prefix.
func TestHostileHugeMessages(t *testing.T) {
	// The rogue shares this process and builds and signs 45 MiB as the
	// test starts: the nodes' pacers may stall tens of milliseconds on
	// it, which the default 50 ms would count as missed arrivals. Sent a
	// little late instead, every planned arrival must still reach the
	// target, and never one more.
	nodes := fleetWith(t, 3, "n", func(_ int, c *node.Config) { c.MaxLate = time.Second })
	r := newRogue(t, nodes, func(types map[swarm.Type]swarm.TypeSpec) {
		s := types[node.TypeStats]
		s.MaxBytes = 16 << 20 // as big as the swarm lets anyone declare
		types[node.TypeStats] = s
	})
	const rate, secs = 40, 4
	ct, c, id, _ := startCounted(t, nodes[0], spec, rate, secs)
	before := heapInUse()
	topic := r.testTopic(id)
	swarmtest.WaitFor(t, 5*time.Second, "the rogue in the test's topic", func() (bool, string) { return len(topic.Peers()) > 0, "" })
	for range 3 {
		r.say(topic, node.TypeStats, id, node.Stats{Name: "rogue", Samples: map[string][]string{"x": {strings.Repeat("x", 15<<20)}}})
	}
	st := waitOver(t, c, id, 30*time.Second)
	if total := atMost(t, ct, rate, secs); total > rate*secs || !raceEnabled && (total != rate*secs || st.Report.Status != "passed") {
		t.Fatalf("%d requests of %d, %s", total, rate*secs, st.Report.Status)
	}
	// Three nodes in this process: had they taken the messages, the heap
	// would hold 3 x 3 x 15 MiB.
	if grew := heapInUse() - before; grew > 64<<20 {
		t.Fatalf("heap grew by %d MiB", grew>>20)
	}
}

func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

// Case 6: a --capacity 50 node refused one 60/s test but ran two 50/s tests
// at once. Its capacity now holds across all its tests: the second one
// finds nothing free and is declined.
func TestHostileCapacityAcrossTests(t *testing.T) {
	nodes := fleetWith(t, 1, "c", func(i int, c *node.Config) { c.CapacityPerSec = 50 })
	const rate, secs = 50, 5
	ctA, c, idA, _ := startCounted(t, nodes[0], spec, rate, secs)
	ctB := newCountingTarget(t)
	ctB.setStart(time.Now())
	idB, err := c.Submit(context.Background(), spec(ctB.srv.URL, rate, 3), "")
	if err != nil {
		t.Fatal(err)
	}
	waitRefused(t, c, idB, "no free capacity")
	waitOver(t, c, idA, 30*time.Second)
	atMost(t, ctA, rate, secs)
	if n := atMost(t, ctB, 0, 3); n != 0 {
		t.Fatalf("the second test sent %d requests", n)
	}
}

// Case 7: a web page in the operator's browser posted a test (text/plain,
// a foreign Origin, a foreign Host) and it ran. The API refuses them, with
// curl as the page's stand-in.
func TestHostileWebPage(t *testing.T) {
	nodes := fleet(t, 1)
	ct := newCountingTarget(t)
	ct.setStart(time.Now())
	api := "http://" + nodes[0].APIAddr()
	body := string(spec(ct.srv.URL, 20, 2))
	for _, tc := range []struct {
		name    string
		headers []string
		want    string
	}{
		{"a form post (no preflight)", []string{"Content-Type: text/plain"}, "content-type"},
		{"a cross-site page", []string{"Content-Type: application/yaml", "Origin: http://evil.example"}, "origin"},
		{"DNS rebinding", []string{"Content-Type: application/yaml", "Host: evil.example:7070"}, "host"},
		{"a fetch from another site", []string{"Content-Type: application/yaml", "Sec-Fetch-Site: cross-site"}, "cross-site"},
	} {
		status, out := curl(t, "POST", api+"/v1/tests", body, tc.headers...)
		if status != http.StatusForbidden || !strings.Contains(out, tc.want) {
			t.Errorf("%s: %d %s", tc.name, status, out)
		}
		// The JSON submission (a run with parameters) is guarded the same way.
		headers := append([]string{}, tc.headers...)
		for i, h := range headers {
			if strings.HasPrefix(h, "Content-Type: application/yaml") {
				headers[i] = "Content-Type: application/json"
			}
		}
		status, out = curl(t, "POST", api+"/v1/runs", runJSON(body, `"env": {}`), headers...)
		if status != http.StatusForbidden || !strings.Contains(out, tc.want) {
			t.Errorf("%s, POST /v1/runs: %d %s", tc.name, status, out)
		}
	}
	// A read by a rebinding page is refused too.
	if status, _ := curl(t, "GET", api+"/v1/tests", "", "Host: evil.example"); status != http.StatusForbidden {
		t.Errorf("read with a foreign host: %d", status)
	}
	// And the fault injection is not served without --debug-api.
	c := localConfig(t, "nodebug", t.TempDir())
	c.DebugAPI = false
	plain := startNode(t, c)
	if status, _ := curl(t, "POST", "http://"+plain.APIAddr()+"/v1/debug/isolate", `{"isolated": true}`, "Content-Type: application/json"); status != http.StatusNotFound {
		t.Errorf("isolate without --debug-api: %d", status)
	}
	tests, err := node.NewClient(nodes[0].APIAddr(), nil).Tests(context.Background())
	if err != nil || len(tests) != 0 {
		t.Fatalf("tests: %v %v", tests, err)
	}
	if n := atMost(t, ct, 0, 2); n != 0 {
		t.Fatalf("%d requests", n)
	}
	// The CLI's own requests pass.
	status, out := curl(t, "POST", api+"/v1/tests", body, "Content-Type: application/yaml")
	if status != http.StatusCreated {
		t.Fatalf("a local program: %d %s", status, out)
	}
	// A page on another site cannot press the dashboard's stop button for
	// the operator: the DELETE is refused and the test goes on.
	id := strings.Split(strings.Split(out, `"id": "`)[1], `"`)[0]
	if status, out := curl(t, "DELETE", api+"/v1/tests/"+id, "", "Origin: http://evil.example"); status != http.StatusForbidden {
		t.Fatalf("a cross-site stop: %d %s", status, out)
	}
	if st, err := node.NewClient(nodes[0].APIAddr(), nil).Test(context.Background(), id, 0, false); err != nil || st.State == node.StateStopped {
		t.Fatalf("after a cross-site stop: %s %v", st.State, err)
	}
}

// curl sends a request with curl when it is installed (as a user would),
// else with net/http; it returns the status and the body.
func curl(t *testing.T, method, url, body string, headers ...string) (int, string) {
	t.Helper()
	if path, err := exec.LookPath("curl"); err == nil {
		args := []string{"-s", "-o", "-", "-w", "\n%{http_code}", "-X", method, url}
		for _, h := range headers {
			args = append(args, "-H", h)
		}
		if body != "" {
			args = append(args, "--data-binary", body)
		}
		out, err := exec.Command(path, args...).Output()
		if err != nil {
			t.Fatalf("curl: %v", err)
		}
		s := strings.TrimSpace(string(out))
		i := strings.LastIndexByte(s, '\n')
		var code int
		fmt.Sscan(s[i+1:], &code)
		return code, s[:max(i, 0)]
	}
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ": ")
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Case 9: a body template that doubles a string six times sent 64 MB per
// request. Bodies are bounded before they are built: the requests fail
// with the reason, nothing big reaches the target, memory stays put.
func TestHostileTemplate(t *testing.T) {
	nodes := fleet(t, 1)
	ct := newCountingTarget(t)
	big := strings.Repeat("x", 900<<10)
	doc := fmt.Sprintf("name: big\ntarget: %s\nduration: 2s\nload: {rate: 5}\nvars: {s: %s}\nrequests:\n  - name: a\n    method: POST\n    body: '{{ vars.s + vars.s + vars.s + vars.s + vars.s + vars.s + vars.s + vars.s }}'\n", ct.srv.URL, big)
	before := heapInUse()
	c := node.NewClient(nodes[0].APIAddr(), nil)
	id, err := c.Submit(context.Background(), []byte(doc), "")
	if err != nil {
		t.Fatal(err)
	}
	st := waitStart(t, c, id)
	ct.setStart(*st.Start)
	st = waitOver(t, c, id, 30*time.Second)
	if n := atMost(t, ct, 0, 2); n != 0 {
		t.Fatalf("%d requests reached the target", n)
	}
	if st.Report.ErrorsByClass["other"] != 10 || !strings.Contains(strings.Join(st.Report.Samples["other"], " "), "body limit") {
		t.Fatalf("errors %v, samples %v", st.Report.ErrorsByClass, st.Report.Samples)
	}
	if grew := heapInUse() - before; grew > 32<<20 {
		t.Fatalf("heap grew by %d MiB", grew>>20)
	}
}

// Case 11: a second node started with an existing name kept running,
// believed it saw the fleet, and was invisible. It refuses to start.
func TestHostileNameTaken(t *testing.T) {
	nodes := fleetWith(t, 2, "u", nil)
	c := localConfig(t, "u1", t.TempDir(), nodes[0].Swarm().GossipAddr())
	n, err := node.New(c, swarmtest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	err = n.Start(context.Background())
	if !errors.Is(err, swarm.ErrNameTaken) || !strings.Contains(err.Error(), "pick another --name") {
		t.Fatalf("start with a taken name: %v", err)
	}
	if m, ok := nodes[0].Swarm().Member("u1"); !ok || m.PeerID != nodes[1].Swarm().PeerID() {
		t.Fatalf("u1 is now %+v", m)
	}
	honest(t, nodes[0], 40, 2)
}

// Case 12: after a kill -9, swarm results counted fewer requests than the
// target did and said nothing. The seconds that the dead node had a share
// in but nobody can supply are counted, and the results say they are
// incomplete.
func TestHostileKillNamesTheGap(t *testing.T) {
	nodes := fleet(t, 3)
	const rate, secs = 90, 8
	ct, c, id, st := startCounted(t, nodes[0], spec, rate, secs)
	victim := pickVictim(t, nodes, st)
	time.Sleep(time.Until(st.Start.Add(2500 * time.Millisecond))) // a point in the test, not a condition
	victim.Crash()
	waitOver(t, c, id, 40*time.Second)
	var res node.Results
	swarmtest.WaitFor(t, 10*time.Second, "results", func() (bool, string) {
		var err error
		res, err = c.Results(context.Background(), id, nil, 0, -1)
		return err == nil, fmt.Sprint(err)
	})
	counts, _ := ct.snapshot()
	var atTarget int64
	for _, n := range counts {
		atTarget += int64(n)
	}
	d := res.Delivery
	t.Logf("target %d, results %d requests; delivery %+v; incomplete %v; from replicas %v", atTarget, res.Requests, d, res.Incomplete, res.FromReplicas)
	if d.MissingSeconds == 0 || !res.Incomplete || !strings.Contains(strings.Join(d.Why, " "), victim.Swarm().Name()) {
		t.Fatalf("the gap is not named: %+v", d)
	}
	if res.Requests > atTarget {
		t.Fatalf("results %d > target %d", res.Requests, atTarget)
	}
}

var _ = sync.Mutex{}

// Case 8: a test aimed at a node's own API reached POST /v1/debug/isolate
// and cut the node out of the fleet. A node refuses its own listeners at
// validation, and every fleet member's listeners (from membership) at each
// dial, even where loopback is allowed.
func TestHostileTargetsTheFleet(t *testing.T) {
	nodes := fleet(t, 3)
	victim := nodes[1]
	doc := fmt.Sprintf("name: at-the-fleet\ntarget: http://%s\nduration: 2s\nload: {rate: 10}\nflow: weighted\nrequests:\n  - {name: isolate, method: POST, path: /v1/debug/isolate, headers: {Content-Type: application/json}, body: '{\"isolated\": true}'}\n  - {name: gossip, url: 'http://%s/'}\n",
		victim.APIAddr(), victim.Swarm().GossipAddr())
	c := node.NewClient(nodes[0].APIAddr(), nil)
	id, err := c.Submit(context.Background(), []byte(doc), "")
	if err != nil {
		t.Fatal(err)
	}
	st := waitOver(t, c, id, 30*time.Second)
	h, err := node.NewClient(victim.APIAddr(), nil).Health(context.Background())
	if err != nil || h.Isolated || h.MembersAlive != 3 {
		t.Fatalf("the victim: %+v %v", h, err)
	}
	if why := st.Excluded[victim.Swarm().Name()]; !contains(why, "own") && !contains(why, "listener") {
		t.Errorf("the victim took part: excluded %v", st.Excluded)
	}
	rep := st.Report
	if rep.Requests == 0 || rep.ErrorsByClass["policy"] != rep.Requests || rep.StatusClasses["2xx"] != 0 {
		t.Fatalf("requests %d, errors %v, status %v, samples %v", rep.Requests, rep.ErrorsByClass, rep.StatusClasses, rep.Samples)
	}
	if s := strings.Join(rep.Samples["policy"], " "); !strings.Contains(s, "step isolate") || !strings.Contains(s, "step gossip") {
		t.Fatalf("samples %v", rep.Samples)
	}
	t.Logf("every request refused before a packet: %v", rep.Samples["policy"])
}

// Case 10: a disk that fills while running ended in a crash; there was no
// budget and no refusal. A node whose disk is nearly full (here: its floor
// set above what any disk has) declines new tests, with the reason.
func TestHostileDiskFull(t *testing.T) {
	nodes := fleetWith(t, 1, "d", func(i int, c *node.Config) { c.MinFreeDisk = "1000000GiB" })
	ct := newCountingTarget(t)
	ct.setStart(time.Now())
	c := node.NewClient(nodes[0].APIAddr(), nil)
	id, err := c.Submit(context.Background(), spec(ct.srv.URL, 10, 2), "")
	if err != nil {
		t.Fatal(err)
	}
	waitRefused(t, c, id, "disk nearly full")
	if n := atMost(t, ct, 0, 2); n != 0 {
		t.Fatalf("%d requests", n)
	}
	if _, err := c.Health(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// Case: a member that never scheduled the test publishes observed values
// of the system under test (replicas that never moved, a lag that would
// pass a threshold), and malformed ones. Every node refuses them: the
// results keep only what the test's scheduler read, and the node runs on.
func TestHostileObserved(t *testing.T) {
	nodes := fleet(t, 3)
	r := newRogue(t, nodes, nil)
	sut := newSUTTarget(t, time.Hour) // never scales
	body := []byte(fmt.Sprintf(`name: observed
target: %s
load:
  stages:
    - {duration: 1s, rate: 20}
    - {duration: 3s, rate: 60}
requests: [{name: a}]
observe:
  sources: [{name: replicas, scrape: %s/metrics, select: shop_replicas}]
thresholds: ['sut["replicas"].max < 3']
`, sut.srv.URL, sut.srv.URL))
	c := node.NewClient(nodes[0].APIAddr(), nil)
	id, err := c.Submit(context.Background(), body, "")
	if err != nil {
		t.Fatal(err)
	}
	waitStart(t, c, id)
	topic := r.testTopic(id)
	lie, err := storage.EncodeObserved([]*storage.ObservedSecond{{T: 1, Values: map[string]float64{"replicas": 40}}})
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		r.say(topic, node.TypeObserved, id, node.Observed{ID: id, Seconds: lie})
		r.say(topic, node.TypeObserved, id, node.Observed{ID: id, Seconds: []byte{0xff, 0x00}})
		r.say(topic, node.TypeObserved, id, node.Observed{ID: id, Seconds: []byte(strings.Repeat("x", 1000))})
	}
	st := waitOver(t, c, id, 30*time.Second)
	if st.Report.Status != "passed" {
		t.Errorf("status %s: %+v", st.Report.Status, st.Report.Thresholds)
	}
	for _, n := range nodes {
		res, err := node.NewClient(n.APIAddr(), nil).Results(context.Background(), id, nil, 0, -1)
		if err != nil {
			t.Fatalf("%s: %v", n.Swarm().Name(), err)
		}
		for _, s := range res.Observe.Series {
			if s.Max != 2 {
				t.Errorf("%s: series %s max %g: the rogue's values were kept", n.Swarm().Name(), s.Name, s.Max)
			}
		}
	}
	honest(t, nodes[1], 40, 2)
}
