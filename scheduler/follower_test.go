package scheduler

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/loadswarm/loadswarm/scenarios"
)

// ftrace drives a follower (node "b") with a fake clock and records what it
// asked for, one line per action, so that a test reads as the story of one
// node's share. The test runs 100/s for 10s from t0+1s; plans split it
// between a, b and c unless a test says otherwise.
type ftrace struct {
	t    *testing.T
	f    *Follower
	t0   time.Time
	now  time.Time
	view FollowView
	log  []string
}

func newFtrace(t *testing.T) *ftrace {
	t.Helper()
	prof := scenarios.NewProfile([]scenarios.Segment{{Dur: 10 * time.Second, From: 100, To: 100}})
	cfg := DefaultFollowerConfig()
	f, err := NewFollower(cfg, FollowedTest{ID: "t1", Profile: prof, Submitter: "s", Self: "b"})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	return &ftrace{t: t, f: f, t0: t0, now: t0, view: FollowView{Ranked: []string{"a", "b", "c"}, Free: 1000}}
}

// start is the test's start in every plan: one second after t0.
func (tr *ftrace) start() time.Time { return tr.t0.Add(time.Second) }

// mkPlan makes a plan of epoch e by sched with constant rates from
// Effective eff; shares like "a=30 b=40 c=30".
func (tr *ftrace) mkPlan(e uint64, sched string, eff time.Duration, shares string) *Plan {
	p := &Plan{TestID: "t1", Epoch: e, Scheduler: sched, Start: tr.start(), Effective: eff, LeaseTTL: 3 * time.Second}
	for _, kv := range strings.Fields(shares) {
		var node string
		var rate float64
		name, val, _ := strings.Cut(kv, "=")
		node = name
		fmt.Sscan(val, &rate)
		segs := []scenarios.Segment{{Start: 0, Dur: 10 * time.Second, From: rate, To: rate}}
		if eff > 0 {
			segs = []scenarios.Segment{{Start: 0, Dur: eff}, {Start: eff, Dur: 10*time.Second - eff, From: rate, To: rate}}
		}
		p.Shares = append(p.Shares, Share{Node: node, Segments: segs, Seed: 7})
	}
	return p
}

// at moves the clock to t0+d.
func (tr *ftrace) at(d time.Duration) { tr.now = tr.t0.Add(d) }

func (tr *ftrace) step(in Input) {
	in.View = tr.view
	for _, a := range tr.f.Step(tr.now, in) {
		line := a.String()
		if a.Kind == ActDeadline {
			line = "deadline " + a.Deadline.Sub(tr.t0).String()
		}
		tr.log = append(tr.log, fmt.Sprintf("%s %s", tr.now.Sub(tr.t0), line))
	}
}

func (tr *ftrace) plan(from string, p *Plan) { tr.step(Input{Kind: InPlan, From: from, Plan: p}) }

// lease delivers now a lease that sched sent `ago` earlier (in its clock,
// which agrees with ours: the fake network takes no time).
func (tr *ftrace) lease(sched string, epoch uint64, ago time.Duration, nodes ...string) {
	l := &Lease{TestID: "t1", Epoch: epoch, Scheduler: sched, TTL: 3 * time.Second, Nodes: nodes, Sent: tr.now.Add(-ago)}
	tr.step(Input{Kind: InLease, From: sched, Lease: l})
}

// run ticks every 100ms until t0+d.
func (tr *ftrace) run(d time.Duration) {
	for end := tr.t0.Add(d); tr.now.Before(end); {
		tr.now = tr.now.Add(100 * time.Millisecond)
		tr.step(Input{Kind: InTick})
	}
}

func (tr *ftrace) expect(want ...string) {
	tr.t.Helper()
	if got := strings.Join(tr.log, "\n"); got != strings.Join(want, "\n") {
		tr.t.Fatalf("trace:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	tr.log = nil
}

func TestFollowLeaseExpiryPausesAndALeaseResumes(t *testing.T) {
	tr := newFtrace(t)
	tr.plan("a", tr.mkPlan(1, "a", 0, "a=30 b=40 c=30"))
	// The plan is the first lease: 3s from its receipt.
	tr.expect("0s start 0s-10s:40")
	tr.at(time.Second)
	tr.lease("a", 1, 0, "a", "b", "c")
	tr.expect("1s deadline 4s")
	// a goes quiet: at 4s the share pauses, from 3s into the test.
	tr.run(4500 * time.Millisecond)
	tr.expect("4s pause 0s-3s:40")
	// A lease at 5s resumes it 50ms ahead: the 2s missed are not made up.
	tr.at(5 * time.Second)
	tr.lease("a", 1, 0, "a", "b", "c")
	tr.expect(
		"5s deadline 8s",
		"5s resume 0s-3s:40 3s-4.05s:0 4.05s-10s:40",
	)
	if tr.f.Paused() {
		t.Fatal("still paused")
	}
}

func TestFollowGivesUpAfterTwoLeasePeriods(t *testing.T) {
	tr := newFtrace(t)
	tr.plan("a", tr.mkPlan(1, "a", 0, "a=30 b=40 c=30"))
	tr.expect("0s start 0s-10s:40")
	// No lease ever: paused at 3s, given up 6s later; a lease after that
	// changes nothing.
	tr.run(9500 * time.Millisecond)
	tr.expect("3s pause 0s-2s:40", "9.1s give up: no lease for 6s")
	tr.lease("a", 1, 0, "a", "b", "c")
	tr.expect()
	if tr.f.Committed(tr.now) != 0 {
		t.Fatal("a node that gave up still holds capacity")
	}
}

func TestFollowTakeoverFromANewerEpoch(t *testing.T) {
	tr := newFtrace(t)
	tr.plan("a", tr.mkPlan(1, "a", 0, "a=30 b=40 c=30"))
	tr.at(2 * time.Second)
	tr.lease("a", 1, 0, "a", "b", "c")
	tr.expect("0s start 0s-10s:40", "2s deadline 5s")
	// a dies; c, ranked next, takes over with the plan everyone holds.
	// While a is still in this node's view and not silent, c's plan waits.
	tr.at(2200 * time.Millisecond)
	tr.plan("c", tr.mkPlan(2, "c", 0, "a=30 b=40 c=30"))
	tr.expect()
	if tr.f.Leader() != "a" {
		t.Fatal("followed c while a was alive and leasing")
	}
	// Half a lease of silence from a: c's plan is followed at the next tick.
	tr.run(3600 * time.Millisecond)
	tr.expect("3.6s note: following c from epoch 2 (was a)")
	tr.lease("c", 2, 0, "b", "c")
	tr.expect("3.6s deadline 6.6s")
	// c moves a's share from 6s (5s into the test).
	tr.at(4 * time.Second)
	tr.plan("c", tr.mkPlan(3, "c", 5*time.Second, "b=50 c=50"))
	tr.expect("4s update 0s-5s:40 5s-10s:50")
}

func TestFollowSameEpochFromTwoSchedulers(t *testing.T) {
	tr := newFtrace(t)
	tr.view.Ranked = []string{"a", "c", "b", "d"}
	tr.plan("a", tr.mkPlan(1, "a", 0, "a=25 b=25 c=25 d=25"))
	tr.expect("0s start 0s-10s:25")
	// a is gone from the view; c and d both took over with epoch 2 (d
	// thought c was dead). d's came first; c ranks before d, so c wins,
	// and d's later epoch-2 plans are not followed.
	tr.view.Ranked = []string{"c", "b", "d"}
	tr.at(2 * time.Second)
	tr.plan("d", tr.mkPlan(2, "d", 0, "a=25 b=25 c=25 d=25"))
	tr.plan("c", tr.mkPlan(2, "c", 0, "a=25 b=25 c=25 d=25"))
	tr.plan("d", tr.mkPlan(2, "d", 0, "a=25 b=25 c=25 d=25"))
	tr.expect("2s note: following d from epoch 2 (was a)", "2s note: following c from epoch 2 (was d)")
	if tr.f.Leader() != "c" {
		t.Fatalf("leader %s, want c", tr.f.Leader())
	}
}

func TestFollowLatePlanStartsAheadWithoutBurst(t *testing.T) {
	tr := newFtrace(t)
	// The plan reaches this node 3s into the test (it joined the topic
	// late): the share starts 50ms ahead, nothing missed is made up.
	tr.at(4 * time.Second)
	tr.plan("a", tr.mkPlan(1, "a", 0, "a=30 b=40 c=30"))
	tr.expect("4s start 0s-3.05s:0 3.05s-10s:40")
}

func TestFollowHoldsAPlanFromANodeItDoesNotRankFirst(t *testing.T) {
	tr := newFtrace(t)
	// c plans first, but this node ranks a first: held back.
	tr.plan("c", tr.mkPlan(1, "c", 0, "a=30 b=40 c=30"))
	tr.run(500 * time.Millisecond)
	tr.expect()
	// A member that took no part cannot lead either.
	tr.plan("x", tr.mkPlan(1, "x", 0, "b=100"))
	tr.expect()
	// The view catches up (a died before it planned): c's plan is followed.
	tr.view.Ranked = []string{"c", "b"}
	tr.run(600 * time.Millisecond)
	tr.expect("600ms start 0s-10s:40")
}

func TestFollowStopDuringPause(t *testing.T) {
	tr := newFtrace(t)
	tr.plan("a", tr.mkPlan(1, "a", 0, "a=30 b=40 c=30"))
	tr.run(3500 * time.Millisecond)
	tr.expect("0s start 0s-10s:40", "3s pause 0s-2s:40")
	// Another member may not stop the test; the submitter may.
	tr.step(Input{Kind: InStop, From: "c", Reason: "I say so"})
	tr.step(Input{Kind: InStop, From: "s", Reason: "stopped by a user"})
	tr.expect(
		"3.5s refused: stop: only the test's submitter or its scheduler may stop it",
		"3.5s stop: stopped by a user",
	)
	tr.lease("a", 1, 0, "a", "b", "c")
	tr.run(4 * time.Second)
	tr.expect()
}

func TestFollowLocalStopGivesTheShareUp(t *testing.T) {
	tr := newFtrace(t)
	tr.plan("a", tr.mkPlan(1, "a", 0, "a=30 b=40 c=30"))
	tr.at(2 * time.Second)
	tr.step(Input{Kind: InStop, Reason: "stopped by this node's operator"})
	tr.expect("0s start 0s-10s:40", "2s update 0s-1s:40", "2s give up: stopped by this node's operator")
	if tr.f.Stopped() != "" {
		t.Fatal("a local stop stopped the whole test")
	}
}

// TestFollowClockJump: this node is frozen for 6s (SIGSTOP, a suspended VM).
// When it wakes, the leases that queued up meanwhile are read at once;
// they count from when they were sent, so they resume nothing; the first
// fresh lease does.
func TestFollowClockJump(t *testing.T) {
	tr := newFtrace(t)
	tr.plan("a", tr.mkPlan(1, "a", 0, "a=30 b=40 c=30"))
	tr.at(time.Second)
	tr.lease("a", 1, 0, "a", "b", "c")
	tr.expect("0s start 0s-10s:40", "1s deadline 4s")
	// Frozen from 1s to 7s: the next tick pauses at once.
	tr.at(7 * time.Second)
	tr.step(Input{Kind: InTick})
	tr.expect("7s pause 0s-6s:40")
	// The queued leases: sent at 2s and 3s they named this node (they ran
	// out at 5s and 6s); from 4s on, a had declared it dead.
	for ago := 5 * time.Second; ago >= time.Second; ago -= time.Second {
		if ago >= 4*time.Second {
			tr.lease("a", 1, ago, "a", "b", "c")
		} else {
			tr.lease("a", 1, ago, "a", "c")
		}
	}
	tr.expect()
	if !tr.f.Paused() {
		t.Fatal("a stale lease resumed the share")
	}
	// a moved this node's share from 6.5s: the run keeps nothing after the
	// pause.
	tr.plan("a", tr.mkPlan(2, "a", 5500*time.Millisecond, "a=50 c=50"))
	tr.expect("7s update 0s-6s:40")
	// Had a renewed the lease instead, it would resume 50ms ahead.
	tr2 := newFtrace(t)
	tr2.plan("a", tr2.mkPlan(1, "a", 0, "a=30 b=40 c=30"))
	tr2.at(7 * time.Second)
	tr2.step(Input{Kind: InTick})
	tr2.lease("a", 1, 0, "a", "b", "c")
	tr2.expect("0s start 0s-10s:40", "7s pause 0s-6s:40", "7s deadline 10s", "7s resume 0s-6s:40 6s-6.05s:0 6.05s-10s:40")
}

// TestFollowFrozenScheduler: this node leads the test (a plan of its own)
// and is frozen past failure detection; c took over. On waking, its own
// leadership is silent, so c's newer plan is followed.
func TestFollowFrozenScheduler(t *testing.T) {
	tr := newFtrace(t)
	tr.view.Ranked = []string{"b", "c", "a"}
	tr.plan("b", tr.mkPlan(1, "b", 0, "a=30 b=40 c=30"))
	tr.at(time.Second)
	tr.lease("b", 1, 0, "a", "b", "c")
	tr.expect("0s start 0s-10s:40", "1s deadline 4s")
	tr.at(7 * time.Second)
	tr.plan("c", tr.mkPlan(2, "c", 0, "a=30 b=40 c=30"))
	tr.plan("c", tr.mkPlan(3, "c", 4*time.Second, "a=50 c=50"))
	tr.expect(
		"7s note: following c from epoch 2 (was b)",
		"7s update 0s-6s:40",
	)
	if tr.f.Leader() != "c" {
		t.Fatalf("leader %s", tr.f.Leader())
	}
}

// TestFollowRefusesLies: what a member holding the fleet key can send, and
// what this node does with it.
func TestFollowRefusesLies(t *testing.T) {
	tr := newFtrace(t)
	// A plan over the test's rate (each node told 100/s of a 100/s test).
	tr.plan("a", tr.mkPlan(1, "a", 0, "a=100 b=100 c=100"))
	// A plan in another's name.
	tr.plan("c", tr.mkPlan(1, "a", 0, "a=30 b=40 c=30"))
	// A plan for the future.
	far := tr.mkPlan(1, "a", 0, "a=30 b=40 c=30")
	far.Start = tr.now.Add(time.Hour)
	tr.plan("a", far)
	tr.expect(
		"0s refused: plan: its shares add up to 200/s more than the test's rate at 0s into the test",
		"0s refused: plan: in the name of a, signed by c",
		"0s refused: plan: it starts the test 1h0m0s from now, over the 1m0s limit",
	)
	// The honest plan; then the same scheduler moving the start, then
	// telling something else for the same epoch: caught lying, paused at
	// once, never followed again.
	tr.plan("a", tr.mkPlan(1, "a", 0, "a=30 b=40 c=30"))
	moved := tr.mkPlan(2, "a", 0, "a=30 b=40 c=30")
	moved.Start = moved.Start.Add(time.Second)
	tr.plan("a", moved)
	tr.plan("a", tr.mkPlan(1, "a", 0, "a=10 b=80 c=10"))
	tr.lease("a", 1, 0, "a", "b", "c")
	tr.run(100 * time.Millisecond)
	tr.expect(
		"0s start 0s-10s:40",
		"0s refused: plan: it moves the test's start from 1970-01-01T00:16:41Z to 1970-01-01T00:16:42Z",
		"0s refused: plan: it sent two different plans for epoch 1",
		"0s deadline 0s",
		"100ms pause none",
	)
	// A lease of an hour.
	tr.step(Input{Kind: InLease, From: "c", Lease: &Lease{TestID: "t1", Epoch: 9, Scheduler: "c", TTL: time.Hour}})
	tr.expect("100ms refused: lease of 1h0m0s: must be in (0, 1m]")
}

func TestFollowShareOverFreeCapacity(t *testing.T) {
	tr := newFtrace(t)
	// Another test already holds 980 of this node's 1000/s.
	tr.view.Free = 20
	tr.plan("a", tr.mkPlan(1, "a", 0, "a=30 b=40 c=30"))
	tr.expect("0s give up: the plan gives this node 40/s but it has 20/s free")
}

func TestFollowDeclinedNodeNeverRuns(t *testing.T) {
	tr := newFtrace(t)
	tr.f.test.Declined = "target host not allowed"
	tr.plan("a", tr.mkPlan(1, "a", 0, "a=30 b=40 c=30"))
	tr.expect("0s note: the plan gives a share to this node, which declined the test: ignored")
}

func TestFollowFetchesAMissedPlan(t *testing.T) {
	tr := newFtrace(t)
	tr.lease("a", 3, 0, "a", "b")
	tr.lease("a", 3, 0, "a", "b") // one fetch at a time
	tr.expect("0s fetch from a")
	tr.step(Input{Kind: InFetchFailed})
	tr.lease("a", 3, 0, "a", "b")
	tr.expect("0s fetch from a")
}

func TestFollowReleasesTheRunAtTheEnd(t *testing.T) {
	tr := newFtrace(t)
	tr.plan("a", tr.mkPlan(1, "a", 0, "a=30 b=40 c=30"))
	for s := time.Second; s <= 11*time.Second; s += time.Second {
		tr.at(s)
		tr.lease("a", 1, 0, "a", "b", "c")
	}
	tr.log = nil
	tr.run(11200 * time.Millisecond)
	tr.expect("11.1s release")
	tr.step(Input{Kind: InRunEnded})
	if tr.f.Running() {
		t.Fatal("still running")
	}
}

// TestCheckPlanAgainstBruteForce: the sweep agrees with sampling the
// profiles on a fine grid, for random plans.
func TestCheckPlanAgainstBruteForce(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 500 {
		test := randomSegs(rng, 3)
		p := &Plan{TestID: "t", Epoch: 1, Scheduler: "a"}
		n := 1 + rng.IntN(4)
		for j := range n {
			share := randomSegs(rng, 3).Scale(1 / float64(n) * (0.8 + 0.4*rng.Float64()))
			p.Shares = append(p.Shares, Share{Node: fmt.Sprint(j), Segments: share.Segments()})
		}
		got := CheckPlan(p, test) == nil
		want := true
		for t := time.Duration(0); t < 12*time.Second; t += time.Millisecond {
			var sum float64
			for _, s := range p.Shares {
				sum += s.Profile().RateAt(t)
			}
			if sum > test.RateAt(t)+0.002 {
				want = false
				break
			}
		}
		// The grid can miss an excess narrower than a millisecond that the
		// sweep sees; never the other way round.
		if got && !want {
			t.Fatalf("case %d: sweep accepted a plan that exceeds the test", i)
		}
		if !got && want {
			if err := CheckPlan(p, test); !strings.Contains(err.Error(), "0.00") && !strings.Contains(err.Error(), "more than") {
				t.Fatalf("case %d: %v", i, err)
			}
		}
	}
}

func randomSegs(rng *rand.Rand, segs int) scenarios.Profile {
	var out []scenarios.Segment
	at := time.Duration(0)
	for range segs {
		d := time.Duration(1+rng.IntN(4000)) * time.Millisecond
		out = append(out, scenarios.Segment{Start: at, Dur: d, From: math.Round(rng.Float64() * 100), To: math.Round(rng.Float64() * 100)})
		at += d
	}
	return scenarios.NewProfile(out)
}

func TestCheckPlanAcceptsSplits(t *testing.T) {
	prof := scenarios.NewProfile([]scenarios.Segment{{Dur: 5 * time.Second, From: 10, To: 1000}, {Start: 5 * time.Second, Dur: 5 * time.Second, From: 333.3, To: 333.3}})
	var members []Member
	for i := range 7 {
		members = append(members, Member{ID: fmt.Sprint(i), Info: scenarios.NodeInfo{Capacity: 1000}})
	}
	sp, err := SplitRate(prof, members, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	p := &Plan{TestID: "t", Epoch: 1, Scheduler: "0", Shares: sp.Shares}
	if err := CheckPlan(p, prof); err != nil {
		t.Fatal(err)
	}
	// The rest of the test from 4s, as a replan splits it.
	rest := scenarios.Profile{}.Splice(4*time.Second, prof)
	sp, err = SplitRate(rest, members[:3], nil, 2)
	if err != nil {
		t.Fatal(err)
	}
	p = &Plan{TestID: "t", Epoch: 2, Scheduler: "0", Effective: 4 * time.Second, Shares: sp.Shares}
	if err := CheckPlan(p, prof); err != nil {
		t.Fatal(err)
	}
}

func TestRankForPutsTheSubmitterLast(t *testing.T) {
	ids := []string{"a", "b", "c", "d", "e"}
	for i := range 50 {
		id := fmt.Sprint("test-", i)
		r := RankFor(id, "c", ids)
		if r[len(r)-1] != "c" || len(r) != len(ids) {
			t.Fatalf("%s: %v", id, r)
		}
		plain := Rank(id, []string{"a", "b", "d", "e"})
		if strings.Join(r[:4], ",") != strings.Join(plain, ",") {
			t.Fatalf("%s: %v vs %v", id, r, plain)
		}
	}
	if r := RankFor("x", "c", []string{"c"}); len(r) != 1 || r[0] != "c" {
		t.Fatal(r)
	}
}

// TestFollowJoinsLate: a node that joins a running test knows nobody's
// readiness yet, so it ranks nobody; it follows the plan that a majority
// of the plan's shareholders report following, and nothing else.
func TestFollowJoinsLate(t *testing.T) {
	tr := newFtrace(t)
	tr.view.Ranked = []string{"b"}
	real := tr.mkPlan(3, "c", 0, "a=30 c=70")
	fake := tr.mkPlan(9, "x", 0, "b=99 x=1") // valid on its own: 100/s of a 100/s test
	tr.at(5 * time.Second)
	// The rogue x vouches for its own plan (b's results are b's own: x
	// cannot report for it); a alone for the real one.
	tr.view.Following = map[[32]byte][]string{fake.Digest(): {"x"}, real.Digest(): {"a"}}
	tr.plan("x", fake)
	tr.plan("c", real)
	tr.run(5100 * time.Millisecond)
	tr.expect()
	// c reports the real plan too: a majority of its shareholders.
	tr.view.Following[real.Digest()] = []string{"a", "c"}
	tr.run(5200 * time.Millisecond)
	tr.expect()
	if tr.f.Leader() != "c" {
		t.Fatalf("leader %q", tr.f.Leader())
	}
	// Its share comes with c's next plan, from c: followed at once.
	tr.plan("c", tr.mkPlan(4, "c", 6*time.Second, "a=25 b=25 c=50"))
	tr.expect("5.2s start 0s-4.25s:0 4.25s-6s:0 6s-10s:25")
}
