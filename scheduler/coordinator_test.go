package scheduler

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/loadswarm/loadswarm/scenarios"
)

// trace drives a coordinator with a fake clock and records what it did, one
// line per event, so that a test reads as the story of a test run.
type trace struct {
	t      *testing.T
	c      *Coordinator
	now    time.Time
	alive  map[string]Member
	stop   map[string]string
	log    []string
	lease  string             // nodes of the last lease, to log changes only
	behind map[string]float64 // nodes reported falling behind
}

func newTrace(t *testing.T, self string, rate float64, nodes ...string) *trace {
	t.Helper()
	prof := scenarios.NewProfile([]scenarios.Segment{{Dur: time.Minute, From: rate, To: rate}})
	c, err := NewCoordinator(DefaultCoordinatorConfig(), self, Test{ID: "t1", Profile: prof, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	tr := &trace{t: t, c: c, now: time.Unix(1000, 0), alive: map[string]Member{}, stop: map[string]string{}}
	for _, n := range nodes {
		tr.join(n)
	}
	return tr
}

func (tr *trace) join(n string) {
	tr.alive[n] = Member{ID: n, Info: scenarios.NodeInfo{Name: n, Capacity: 100}}
}

func (tr *trace) view() View { return View{Alive: tr.alive, Stopped: tr.stop, Behind: tr.behind} }

// run ticks every 250ms for d and logs plans and lease changes.
func (tr *trace) run(d time.Duration) {
	end := tr.now.Add(d)
	for tr.now.Before(end) {
		tr.now = tr.now.Add(250 * time.Millisecond)
		out := tr.c.Tick(tr.now, tr.view())
		at := tr.now.Sub(time.Unix(1000, 0))
		if out.Plan != nil {
			tr.log = append(tr.log, fmt.Sprintf("%s plan epoch %d from %s: %s", at, out.Plan.Epoch, out.Plan.Effective, shares(out.Plan)))
		}
		if out.Lease != nil {
			if n := strings.Join(out.Lease.Nodes, ","); n != tr.lease {
				tr.log = append(tr.log, fmt.Sprintf("%s lease %s", at, n))
				tr.lease = n
			}
		}
		if out.Note != "" && out.Plan == nil {
			tr.log = append(tr.log, fmt.Sprintf("%s note: %s", at, strings.SplitN(out.Note, ":", 2)[0]))
		}
	}
}

func shares(p *Plan) string {
	var l []string
	for _, s := range p.Shares {
		l = append(l, fmt.Sprintf("%s=%g", s.Node, s.Segments[len(s.Segments)-1].To))
	}
	return strings.Join(l, " ")
}

func (tr *trace) expect(want ...string) {
	tr.t.Helper()
	if got := strings.Join(tr.log, "\n"); got != strings.Join(want, "\n") {
		tr.t.Fatalf("trace:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	tr.log = nil
}

func TestTraceNodeDies(t *testing.T) {
	tr := newTrace(t, "a", 150, "a", "b", "c")
	p, err := tr.c.Begin(tr.now, tr.view())
	if err != nil {
		t.Fatal(err)
	}
	if got := shares(p); got != "a=50 b=50 c=50" {
		t.Fatal(got)
	}
	tr.run(2 * time.Second)
	tr.expect("250ms lease a,b,c")
	// c crashes at 2s: its last lease was at 1.25s, so it stops by 4.25s;
	// its share moves after 4.75s, effective Lead later: 7s, which is 5s
	// into the test (it started at 2s).
	delete(tr.alive, "c")
	tr.run(5 * time.Second)
	tr.expect(
		"2.25s lease a,b",
		"5s plan epoch 2 from 5s: a=75 b=75",
	)
}

func TestTraceSchedulerDies(t *testing.T) {
	old := newTrace(t, "a", 150, "a", "b", "c")
	p, _ := old.c.Begin(old.now, old.view())
	// b takes over at 3s with the plan it holds; a is gone.
	tr := newTrace(t, "b", 150, "b", "c")
	tr.now = tr.now.Add(3 * time.Second)
	np := tr.c.Resume(tr.now, p)
	if np.Epoch != 2 || np.Scheduler != "b" || shares(np) != "a=50 b=50 c=50" {
		t.Fatalf("resumed plan: epoch %d scheduler %s %s", np.Epoch, np.Scheduler, shares(np))
	}
	tr.run(5 * time.Second)
	// a might hold a lease until 3s+TTL: its share moves after 6.5s,
	// effective at 8.75s, 6.75s into the test.
	tr.expect(
		"3.25s lease b,c",
		"6.75s plan epoch 3 from 6.75s: b=75 c=75",
	)
}

func TestTracePartition(t *testing.T) {
	tr := newTrace(t, "a", 150, "a", "b", "c")
	tr.c.Begin(tr.now, tr.view())
	tr.run(time.Second)
	tr.expect("250ms lease a,b,c")
	// a is cut off from b and c: it sees a minority and renews nothing, so
	// its own share stops too (b and c elect b, who moves a's share).
	delete(tr.alive, "b")
	delete(tr.alive, "c")
	tr.run(10 * time.Second)
	tr.expect("1.25s note: sees 1 of the test's 3 nodes")
	// Healed: without a majority a moved nothing, so b and c count again.
	// a listens two lease periods before it leases: b's takeover plan
	// (epoch 2) reaches its node meanwhile, whose driver then steps down.
	tr.join("b")
	tr.join("c")
	tr.lease = ""
	tr.run(3 * time.Second)
	tr.expect("11.25s note: sees 3 of the test's 3 nodes again", "13.25s lease a,b,c")
}

func TestTraceStoppedNodeAndJoin(t *testing.T) {
	tr := newTrace(t, "a", 150, "a", "b", "c")
	tr.c.Begin(tr.now, tr.view())
	tr.run(time.Second)
	tr.expect("250ms lease a,b,c")
	// d joins mid-test: at the next tick the rest of the test is split
	// over four nodes, from Lead ahead (1.25s + 2s, 1.25s into the test).
	tr.join("d")
	tr.run(2 * time.Second)
	tr.expect(
		"1.25s plan epoch 2 from 1.25s: a=38 b=38 c=37 d=37",
		"1.25s lease a,b,c,d",
	)
	// c reports at 3s that its lease ran out (a late lease): the last lease
	// that named it was at 2.25s, so its share moves after 5.75s, to a, b
	// and d.
	tr.stop["c"] = "lease expired"
	tr.run(5 * time.Second)
	tr.expect(
		"3.25s lease a,b,d",
		"6s plan epoch 3 from 6s: a=50 b=50 d=50",
	)
}

func TestTraceInfeasibleReplanKeepsRateLower(t *testing.T) {
	tr := newTrace(t, "a", 250, "a", "b", "c")
	tr.c.Begin(tr.now, tr.view())
	tr.run(time.Second)
	tr.expect("250ms lease a,b,c")
	// a and b can carry 200/s of the 250: they take all they can, and the
	// rate stays lower rather than overshooting anybody's capacity.
	delete(tr.alive, "c")
	tr.run(5 * time.Second)
	tr.expect(
		"1.25s lease a,b",
		"4s plan epoch 2 from 4s: a=100 b=100",
	)
}

func TestCoordinatorConfigValidate(t *testing.T) {
	for _, c := range []CoordinatorConfig{
		{LeaseTTL: time.Second, LeaseEvery: time.Second, Lead: time.Second},
		{LeaseTTL: 3 * time.Second, LeaseEvery: 0},
		{LeaseTTL: 3 * time.Second, LeaseEvery: time.Second, Lead: -1},
	} {
		if c.Validate() == nil {
			t.Errorf("accepted %+v", c)
		}
	}
	if err := DefaultCoordinatorConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestPlanValidate(t *testing.T) {
	good := Plan{TestID: "t", Epoch: 1, Scheduler: "a", Shares: []Share{{Node: "a", Segments: []scenarios.Segment{{Start: 0, Dur: 1e9, From: 1, To: 1}}}}}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Plan){
		"no epoch":       func(p *Plan) { p.Epoch = 0 },
		"gap":            func(p *Plan) { p.Shares[0].Segments[0].Start = 5 },
		"negative rate":  func(p *Plan) { p.Shares[0].Segments[0].From = -1 },
		"nan rate":       func(p *Plan) { p.Shares[0].Segments[0].To = nan() },
		"no node":        func(p *Plan) { p.Shares[0].Node = "" },
		"negative start": func(p *Plan) { p.Effective = -1 },
		"too long":       func(p *Plan) { p.Shares[0].Segments[0].Dur = 48 * time.Hour },
	} {
		p := good
		p.Shares = []Share{{Node: "a", Segments: append([]scenarios.Segment(nil), good.Shares[0].Segments...)}}
		mut(&p)
		if p.Validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func nan() float64 { z := 0.0; return z / z }

func TestTraceSlowNodeSheds(t *testing.T) {
	tr := newTrace(t, "a", 150, "a", "b", "c")
	tr.c.Begin(tr.now, tr.view())
	tr.run(time.Second)
	tr.expect("250ms lease a,b,c")
	// c only manages 20/s of its 50: its capacity is capped at 18, and
	// since weights follow capacity it now gets 150*18/218 = 12; a and b
	// take the rest, from Lead later.
	tr.behind = map[string]float64{"c": 20}
	tr.run(time.Second)
	tr.expect("1.25s plan epoch 2 from 1.25s: a=69 b=69 c=12")
	// Not again before the cooldown, even if it still lags.
	tr.run(5 * time.Second)
	tr.expect()
	// No headroom anywhere: the plan stays.
	tr.behind = map[string]float64{"a": 10, "b": 10, "c": 10}
	tr.run(10 * time.Second)
	tr.expect()
}

func TestTraceMajorityBackListensFirst(t *testing.T) {
	tr := newTrace(t, "a", 150, "a", "b", "c")
	tr.c.Begin(tr.now, tr.view())
	tr.run(time.Second)
	tr.expect("250ms lease a,b,c")
	// a loses b and c for a moment (a false suspicion, say): no leases.
	delete(tr.alive, "b")
	delete(tr.alive, "c")
	tr.run(500 * time.Millisecond)
	tr.expect("1.25s note: sees 1 of the test's 3 nodes")
	// They are back before their leases ran out: a listens two lease
	// periods (a node that took over would be heard by then), then leases
	// again; nothing was lost, nothing moves.
	tr.join("b")
	tr.join("c")
	tr.lease = ""
	tr.run(3 * time.Second)
	tr.expect(
		"1.75s note: sees 3 of the test's 3 nodes again",
		"3.75s lease a,b,c",
	)
}
