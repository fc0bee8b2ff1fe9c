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
	follow map[string][32]byte
	heard  map[string]time.Time
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

func (tr *trace) view() View {
	return View{Alive: tr.alive, Stopped: tr.stop, Behind: tr.behind, Following: tr.follow, Heard: tr.heard}
}

// following makes nodes report that they follow the current plan.
func (tr *trace) following(nodes ...string) {
	if tr.follow == nil {
		tr.follow = map[string][32]byte{}
	}
	for _, n := range nodes {
		tr.follow[n] = tr.c.Plan().Digest()
	}
}

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
	tr.run(8 * time.Second)
	// a leased itself as long as it heard from a majority, up to Contact
	// after b last heard from it; so it may hold a lease until
	// 3s+Contact+TTL: its share moves after 9.5s, effective at 11.75s,
	// 9.75s into the test.
	tr.expect(
		"3.25s lease b,c",
		"9.75s plan epoch 3 from 9.75s: b=75 c=75",
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
	// d's share is new load, so it waits until a, b and c follow their
	// smaller shares: the first step only lowers; the second applies from
	// the same instant, since by then they follow the first.
	tr.join("d")
	tr.run(time.Second)
	tr.expect("1.25s plan epoch 2 from 1.25s: a=38 b=38 c=37")
	tr.following("a", "b", "c")
	tr.run(time.Second)
	tr.expect(
		"2.25s plan epoch 3 from 1.25s: a=38 b=38 c=37 d=37",
		"2.25s lease a,b,c,d",
	)
	// c reports at 3s that its lease ran out (a late lease): the last lease
	// that named it was at 2.25s, so its share moves after 5.75s, to a, b
	// and d.
	tr.stop["c"] = "lease expired"
	tr.run(5 * time.Second)
	tr.expect(
		"3.25s lease a,b,d",
		"6s plan epoch 4 from 6s: a=50 b=50 d=50",
	)
}

// TestTraceRaiseWaitsForTheLowered: the nodes a change lowers must show
// they lowered before anyone raises; one that never does (cut off, frozen
// without being declared dead) holds the raise back until it is lost and
// its lease has run out.
func TestTraceRaiseWaitsForTheLowered(t *testing.T) {
	tr := newTrace(t, "a", 150, "a", "b", "c")
	tr.c.Begin(tr.now, tr.view())
	tr.run(time.Second)
	tr.expect("250ms lease a,b,c")
	tr.join("d")
	tr.run(time.Second)
	tr.expect("1.25s plan epoch 2 from 1.25s: a=38 b=38 c=37")
	// a and b lowered, c says nothing: no raise, however long.
	tr.following("a", "b")
	tr.run(10 * time.Second)
	tr.expect()
	// A node reporting an older plan is not one that lowered.
	tr.follow["c"] = [32]byte{1}
	tr.run(time.Second)
	tr.expect()
	// c is declared dead at 13s: its last lease was at 12.25s, so after
	// 15.75s it has stopped for sure. Its share moves (with no lowering
	// left to wait for, the change goes in one step).
	delete(tr.alive, "c")
	tr.run(4 * time.Second)
	tr.expect(
		"13.25s lease a,b",
		"16s plan epoch 3 from 16s: a=50 b=50 d=50",
		"16s lease a,b,d",
	)
}

// TestTraceLostNodeWaitsForTheLastLease: two nodes lost a second apart;
// when the first one's lease has run out, the second may still be
// sending, so its share is not given away with the first one's.
func TestTraceLostNodeWaitsForTheLastLease(t *testing.T) {
	tr := newTrace(t, "a", 200, "a", "b", "c", "d", "e")
	tr.c.Begin(tr.now, tr.view())
	tr.run(time.Second)
	tr.expect("250ms lease a,b,c,d,e")
	delete(tr.alive, "d")
	tr.run(time.Second)
	delete(tr.alive, "e")
	tr.run(6 * time.Second)
	tr.expect(
		"1.25s lease a,b,c,e",
		"2.25s lease a,b,c",
		// d's lease (last at 0.25s) has run out after 3.75s, but e's (last
		// at 1.25s) not before 4.75s: the first step only drops d, the
		// second gives both shares to the survivors, from when the first
		// applies.
		"4s plan epoch 2 from 4s: a=40 b=40 c=40",
		"5s plan epoch 3 from 4s: a=67 b=67 c=66",
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
	// First c's share shrinks; a and b grow only once c follows that (a
	// node behind for a moment may be back at its full share by now).
	tr.behind = map[string]float64{"c": 20}
	tr.run(time.Second)
	tr.expect("1.25s plan epoch 2 from 1.25s: a=50 b=50 c=12")
	tr.following("c")
	tr.run(time.Second)
	tr.expect("2.25s plan epoch 3 from 1.25s: a=69 b=69 c=12")
	// Not again before the cooldown, even if it still lags.
	tr.run(5 * time.Second)
	tr.expect()
	// No headroom anywhere: the plan stays.
	tr.behind = map[string]float64{"a": 10, "b": 10, "c": 10}
	tr.run(10 * time.Second)
	tr.expect()
}

// TestTraceTakeoverBetweenSteps: the scheduler dies between the two steps
// of a change; the one that takes over holds the first, lower plan, and
// brings the plan back to the test's rate by itself.
func TestTraceTakeoverBetweenSteps(t *testing.T) {
	old := newTrace(t, "a", 150, "a", "b", "c")
	old.c.Begin(old.now, old.view())
	old.run(time.Second)
	old.behind = map[string]float64{"c": 20}
	old.run(time.Second)
	old.expect("250ms lease a,b,c", "1.25s plan epoch 2 from 1.25s: a=50 b=50 c=12")
	tr := newTrace(t, "b", 150, "b", "c")
	tr.now = old.now
	np := tr.c.Resume(tr.now, old.c.Plan())
	if shares(np) != "a=50 b=50 c=12" {
		t.Fatal(shares(np))
	}
	tr.run(8 * time.Second)
	tr.expect(
		"2.25s lease b,c",
		// a's lease may run until 2s+Contact+TTL (+ margin): its share
		// moves then; b and c raise, nobody lowers: one step.
		"8.75s plan epoch 4 from 8.75s: b=75 c=75",
	)
	// Had a only frozen for a moment (still in the view), the new
	// scheduler finds the plan short of the rate and splits it again.
	tr = newTrace(t, "b", 150, "a", "b", "c")
	tr.now = old.now
	tr.c.Resume(tr.now, old.c.Plan())
	tr.run(5 * time.Second)
	tr.expect(
		// Some node may follow a plan of a's that b never saw, with more
		// than b's plan gives it: the raise waits until they all follow b's
		// (none reports here) or their leases from a have run out.
		"2.25s plan epoch 4 from 2.25s: a=50 b=50 c=12",
		"2.25s lease a,b,c",
		"5.75s plan epoch 5 from 4.25s: a=50 b=50 c=50",
	)
}

// TestTraceCutOffWithIdleMembers: members without a share (capacity 0)
// count towards the majority only when heard from too, so they cannot keep
// a scheduler that hears nobody leading.
func TestTraceCutOffWithIdleMembers(t *testing.T) {
	tr := newTrace(t, "a", 150, "a", "b", "c")
	for _, n := range []string{"d", "e"} {
		tr.alive[n] = Member{ID: n, Info: scenarios.NodeInfo{Name: n, Capacity: 0}}
	}
	p, err := tr.c.Begin(tr.now, tr.view())
	if err != nil {
		t.Fatal(err)
	}
	if got := shares(p); got != "a=50 b=50 c=50" {
		t.Fatal(got)
	}
	tr.heard = map[string]time.Time{}
	tr.run(6 * time.Second)
	tr.expect("250ms lease a,b,c", "3.25s note: sees 1 of the test's 5 nodes")
}

// TestTraceMajorityFollowsThisScheduler: nodes heard from but following
// another scheduler (two took the lead across a partial partition) do not
// count towards this one's majority.
func TestTraceMajorityFollowsThisScheduler(t *testing.T) {
	tr := newTrace(t, "a", 150, "a", "b", "c")
	tr.c.Begin(tr.now, tr.view())
	tr.heard = map[string]time.Time{}
	tr.follow = map[string][32]byte{}
	for range 20 {
		for _, n := range []string{"a", "b", "c"} {
			tr.heard[n] = tr.now
		}
		tr.following("a", "b", "c")
		tr.run(250 * time.Millisecond)
	}
	tr.expect("250ms lease a,b,c")
	// b and c still report, but follow somebody else's plan.
	for range 20 {
		for _, n := range []string{"a", "b", "c"} {
			tr.heard[n] = tr.now
		}
		tr.follow["b"], tr.follow["c"] = [32]byte{9}, [32]byte{9}
		tr.run(250 * time.Millisecond)
	}
	tr.expect("5.25s note: sees 1 of the test's 3 nodes")
}

// TestTraceDeadNodeLeavesTheBase: once a dead node's share has moved, it
// no longer counts in the majority's base: of four nodes, one dead and
// replaced, two of the other three still lead.
func TestTraceDeadNodeLeavesTheBase(t *testing.T) {
	tr := newTrace(t, "a", 120, "a", "b", "c", "d")
	tr.c.Begin(tr.now, tr.view())
	tr.run(time.Second)
	delete(tr.alive, "d")
	tr.run(5 * time.Second)
	tr.expect("250ms lease a,b,c,d", "1.25s lease a,b,c", "4s plan epoch 2 from 4s: a=40 b=40 c=40")
	delete(tr.alive, "c")
	tr.run(5 * time.Second)
	tr.expect("7s lease a,b", "9.75s plan epoch 3 from 9.75s: a=60 b=60")
}

// TestTraceCutOffByContact: a scheduler cut off from the fleet still
// sees everybody alive until its failure detector says otherwise; it stops
// leasing once it has not heard from a majority for Contact.
func TestTraceCutOffByContact(t *testing.T) {
	tr := newTrace(t, "a", 150, "a", "b", "c")
	tr.c.Begin(tr.now, tr.view())
	heard := func() {
		tr.heard = map[string]time.Time{"a": tr.now, "b": tr.now, "c": tr.now}
		tr.following("a", "b", "c")
	}
	heard()
	for range 20 {
		tr.run(250 * time.Millisecond)
		heard()
	}
	tr.expect("250ms lease a,b,c")
	// From 5s on a hears nothing, though b and c stay in its view.
	tr.run(5 * time.Second)
	tr.expect("8.25s note: sees 1 of the test's 3 nodes")
	// Heard from again: it listens two lease periods, then leases.
	tr.lease = ""
	for range 12 {
		heard()
		tr.run(250 * time.Millisecond)
	}
	tr.expect("10.25s note: sees 3 of the test's 3 nodes again", "12.25s lease a,b,c")
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
