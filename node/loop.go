package node

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/loadswarm/loadswarm/scheduler"
	"github.com/loadswarm/loadswarm/swarm"
)

// tickEvery is how often the loop ticks its state machines.
const tickEvery = 100 * time.Millisecond

// loop drives the test on this node: its inbox and its ticks feed the
// follower (this node's share) and, when this node leads the test, the
// coordinator. It alone touches them.
func (t *loadTest) loop() {
	tick := time.NewTicker(tickEvery)
	defer tick.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case ev := <-t.inbox:
			t.handle(time.Now(), ev)
		case <-tick.C:
			// The clock now, not the tick's: after a freeze the ticker
			// holds a stale tick, and a lease must be judged on real time.
			if over := t.tick(time.Now()); over {
				t.retire()
				return
			}
		}
	}
}

// fleetView is the fleet as this test sees it at one moment.
type fleetView struct {
	alive    map[string]scheduler.Member // alive members, by peer id
	accepted map[string]scheduler.Member // alive members that accepted the test (capacity: what they have free)
	declined map[string]string           // alive members that declined it, and why
	waiting  int                         // alive members that have not answered
	ranked   []string                    // accepted ids, best first; all alive ids when nobody accepted
}

func (t *loadTest) view(now time.Time) fleetView {
	v := fleetView{alive: t.reg.view(), accepted: map[string]scheduler.Member{}, declined: map[string]string{}}
	t.mu.Lock()
	for id, m := range v.alive {
		rd, ok := t.ready[id]
		switch {
		case !ok && (t.sharers[id] || t.plan != nil && t.plan.Scheduler == id):
			// Its answer was missed (this node joined the test's topic
			// late), but a node that schedules or has a share accepted.
			v.accepted[id] = m
		case !ok:
			v.waiting++
		case rd.Accept:
			if rd.Free > 0 && rd.Free < m.Info.Capacity {
				m.Info.Capacity = rd.Free
			}
			v.accepted[id] = m
		default:
			v.declined[id] = rd.Reason
		}
	}
	t.mu.Unlock()
	ids := make([]string, 0, len(v.accepted))
	for id := range v.accepted {
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		for id := range v.alive {
			ids = append(ids, id)
		}
	}
	v.ranked = scheduler.RankFor(t.id, t.ann.Signer, ids)
	return v
}

func (t *loadTest) followView(now time.Time, v fleetView) scheduler.FollowView {
	fv := scheduler.FollowView{Ranked: v.ranked, Free: t.reg.free(t.id, now), Following: map[[32]byte][]string{}}
	t.mu.Lock()
	for id, d := range t.vouch {
		fv.Following[d] = append(fv.Following[d], id)
	}
	t.mu.Unlock()
	return fv
}

// handle feeds one input to the follower and carries out what it asks.
func (t *loadTest) handle(now time.Time, ev event) {
	if ev.kind == scheduler.InStop && ev.failed && ev.from == t.reg.self {
		// This node's own refusal (its announcement could not go out).
		t.stop(ev.reason, true)
		return
	}
	v := t.view(now)
	acts := t.follower.Step(now, scheduler.Input{Kind: ev.kind, From: ev.from, Plan: ev.plan, Lease: ev.lease, Reason: ev.reason, View: t.followView(now, v)})
	t.apply(now, acts, ev)
	t.sync(now)
}

// tick advances the test; it reports whether the test is over here.
func (t *loadTest) tick(now time.Time) (over bool) {
	t.mu.Lock()
	ended := t.endedLocked()
	t.mu.Unlock()
	if ended {
		return true
	}
	v := t.view(now)
	t.apply(now, t.follower.Step(now, scheduler.Input{Kind: scheduler.InTick, View: t.followView(now, v)}), event{})
	t.lead(now, v)
	t.sync(now)
	t.beat(now)
	t.observeIfLeading(t.coord != nil)
	t.abortIfLeading(t.coord != nil)
	t.remindReady(now)
	t.mu.Lock()
	over = t.overLocked(now, v.alive)
	t.mu.Unlock()
	if over {
		t.finish(now)
	}
	return over
}

// beat publishes a heartbeat (stats without a second) when this node has
// published none for heartbeatEvery: every node that follows a test, with
// a share or not, tells the test's scheduler at least that often that it
// is there and which plan it follows (see scheduler.CoordinatorConfig's
// Contact), and a node that a plan lowered thereby says it has lowered.
func (t *loadTest) beat(now time.Time) {
	d := t.followedDigest()
	if d == nil || t.declined != "" || now.Sub(time.Unix(0, t.lastPub.Load())) < heartbeatEvery {
		return
	}
	t.lastPub.Store(now.UnixNano())
	t.publish(TypeStats, Stats{Name: t.reg.n.cfg.Name, Plan: d})
}

// heartbeatEvery is the longest a node that follows a test goes without
// publishing its stats (the loop checks ten times as often).
const heartbeatEvery = time.Second

// apply carries out the follower's actions, in order.
func (t *loadTest) apply(now time.Time, acts []scheduler.Action, cause event) {
	for _, a := range acts {
		switch a.Kind {
		case scheduler.ActStart:
			t.startRun(a)
		case scheduler.ActUpdate:
			if t.ctl != nil {
				t.ctl.Update(a.Profile)
			}
		case scheduler.ActPause:
			if t.ctl != nil {
				t.ctl.Update(a.Profile)
			}
			t.log.Warn("lease expired: this node's share is paused until a lease comes")
		case scheduler.ActResume:
			if t.ctl != nil {
				t.ctl.Update(a.Profile)
			}
			t.log.Info("lease back: this node's share resumes")
		case scheduler.ActDeadline:
			if t.ctl != nil {
				t.ctl.SetDeadline(a.Deadline)
			}
		case scheduler.ActRelease:
			if t.ctl != nil {
				t.ctl.Hold(false)
			}
		case scheduler.ActGiveUp:
			t.giveUp(a.Reason)
		case scheduler.ActStop:
			if cause.aborted != "" {
				t.mu.Lock()
				t.aborted = cause.aborted
				t.mu.Unlock()
			}
			t.stop(a.Reason, cause.failed)
		case scheduler.ActFetch:
			t.reg.wg.Add(1)
			go func() {
				defer t.reg.wg.Done()
				t.fetchPlan(a.From)
			}()
		case scheduler.ActRefused:
			t.logRefusal(a.From, a.Reason)
		case scheduler.ActNote:
			t.log.Info(a.Reason)
		}
	}
	t.committed.Store(math.Float64bits(t.follower.Committed(now)))
}

// sync copies what readers need from the state machines.
func (t *loadTest) sync(now time.Time) {
	p := t.follower.Plan()
	t.mu.Lock()
	defer t.mu.Unlock()
	if p != nil && p != t.plan {
		d := p.Digest()
		t.following.Store(&d)
		t.vouchLocked(t.reg.self, d)
		t.planEventLocked(t.plan, p)
		t.plan = p
		t.schedulers[p.Scheduler] = true
		t.trackSpansLocked(p)
		if t.state == StatePending {
			t.state = StateRunning
		}
		for _, s := range p.Shares {
			ns := t.node(s.Node)
			if s.Region != "" {
				ns.Region = s.Region
			}
			t.sharers[s.Node] = true
		}
	}
	t.leader = t.follower.Leader()
	t.paused = t.follower.Paused()
	t.gaveUp = t.follower.GaveUp()
}

// lead drives this node's scheduling of the test. A node takes the lead
// when the test has no plan yet and it ranks first, or when the scheduler
// followed is gone (not in the view, or silent for a lease) and it ranks
// first among the rest, and then only while it sees a majority of the
// test's nodes. It steps down as soon as its follower follows somebody
// else. After a freeze it first reads what came meanwhile: another node may
// have taken over.
func (t *loadTest) lead(now time.Time, v fleetView) {
	self := t.reg.self
	if !t.lastTick.IsZero() && now.Sub(t.lastTick) > 10*tickEvery {
		t.quietUntil = now.Add(t.reg.cfg.LeaseEvery)
		t.log.Warn("this node was frozen: reading what came meanwhile before it schedules again", "gap", now.Sub(t.lastTick).Round(time.Millisecond).String())
	}
	t.lastTick = now
	if now.Before(t.quietUntil) {
		return
	}
	leader := t.follower.Leader()
	if t.coord != nil && leader != self {
		t.log.Info("another node leads the test now: stepping down", "leader", leader)
		t.coord = nil
		t.steppedDown = true
	}
	if t.coord == nil {
		t.takeLead(now, v, leader)
		return
	}
	t.mu.Lock()
	stopped := map[string]string{}
	for id, ns := range t.nodes {
		if ns.Stopped != "" {
			stopped[id] = ns.Stopped
		}
	}
	for id, why := range t.silentLocked(now) {
		stopped[id] = why
	}
	behind := t.behindLocked(now)
	following := make(map[string][32]byte, len(t.vouch))
	for id, d := range t.vouch {
		following[id] = d
	}
	heard := make(map[string]time.Time, len(t.heard))
	for id, at := range t.heard {
		heard[id] = at
	}
	t.mu.Unlock()
	if d := t.following.Load(); d != nil {
		following[self] = *d
	}
	out := t.coord.Tick(now, scheduler.View{Alive: v.accepted, Stopped: stopped, Behind: behind, Following: following, Heard: heard})
	if out.Note != "" {
		t.log.Info(out.Note)
	}
	if out.Plan != nil {
		t.reg.n.metrics.replan()
		t.announce(now, v, out.Plan)
	}
	if out.Lease != nil {
		l := *out.Lease
		l.Sent = l.Sent.Round(0) // as it travels: no monotonic reading
		t.handle(now, event{kind: scheduler.InLease, from: self, lease: &l})
		t.publish(TypeLease, &l)
		t.reg.n.metrics.leaseSent()
	}
}

// silentAfter is how long a node with a share may go without reporting a
// second before its scheduler takes it for lost: a member that takes a
// share and sends nothing (it froze without being declared dead, or it
// wastes its share on purpose) holds it only that long.
const silentAfter = 4 * time.Second

// silentLocked finds the nodes of the plan followed that should have
// reported seconds by now (their share runs at 1/s or more) and have not
// for silentAfter.
func (t *loadTest) silentLocked(now time.Time) map[string]string {
	p := t.plan
	if p == nil {
		return nil
	}
	elapsed := now.Sub(p.Start)
	if elapsed < silentAfter+time.Second {
		return nil
	}
	var out map[string]string
	for _, s := range p.Shares {
		ns := t.node(s.Node)
		if ns.Done || ns.Stopped != "" {
			continue
		}
		if s.Profile().RateAt(elapsed-silentAfter) < 1 {
			continue // a share this small may leave seconds empty
		}
		if last := ns.LastT; time.Duration(last+1)*time.Second < elapsed-silentAfter {
			if out == nil {
				out = map[string]string{}
			}
			out[s.Node] = fmt.Sprintf("no results for %s", silentAfter)
		}
	}
	return out
}

// takeLead makes this node the test's scheduler if it should be.
func (t *loadTest) takeLead(now time.Time, v fleetView, leader string) {
	self := t.reg.self
	plan := t.follower.Plan()
	switch {
	case plan == nil:
		if t.late {
			// The test runs somewhere already (this node learned it from
			// a member's list of running tests): it follows the plan that
			// the test's nodes follow, and never plans it afresh.
			return
		}
		first := len(v.ranked) > 0 && v.ranked[0] == self
		// If the first in rank never plans (it froze, or lies), the second
		// does after a while; followers accept a first plan from any member
		// that accepted the test after FirstPlanWait.
		second := len(v.ranked) > 1 && v.ranked[1] == self && now.Sub(t.admitted) > t.reg.fcfg.FirstPlanWait+2*time.Second
		if !first && !second {
			return
		}
		if v.waiting > 0 && now.Sub(t.admitted) < readyWait {
			return // give every node a moment to accept or decline
		}
	default:
		// Gone means gone from the fleet (or silent): not merely missing
		// from this node's list of who accepted, which misses the answers
		// sent before it subscribed.
		silent := t.follower.SilentFor(now) > t.reg.fcfg.LeaseTTL
		_, alive := v.alive[leader]
		if alive && (!silent || t.steppedDown) {
			// A node that gave the lead up takes it again only from a
			// leader that is gone from the view, not one that merely went
			// quiet for a moment (after a heal, its gossip takes a moment
			// to flow again): no flip-flop between two schedulers.
			return
		}
		rest := slices.DeleteFunc(slices.Clone(v.ranked), func(id string) bool { return id == leader })
		if len(rest) == 0 || rest[0] != self {
			return
		}
		if !scheduler.Majority(plan, v.accepted) {
			if !t.noMajority {
				t.log.Warn("the test's scheduler is gone, but this node sees no majority of the test's nodes: it does not take over")
			}
			t.noMajority = true
			return
		}
		t.noMajority = false
	}
	c, err := scheduler.NewCoordinator(t.reg.cfg, self, scheduler.Test{ID: t.id, Profile: t.sc.Profile, Distribution: t.sc.Distribution, Seed: t.body.Seed})
	if err != nil {
		t.fail(err.Error())
		return
	}
	var p *scheduler.Plan
	if plan == nil {
		p, err = c.Begin(now, scheduler.View{Alive: v.accepted})
		if err != nil {
			if len(v.declined) > 0 {
				err = fmt.Errorf("%w; declined: %s", err, joinReasons(v.declined))
			}
			t.fail(err.Error())
			return
		}
		for id, why := range v.declined {
			p.Excluded[id] = "declined: " + why
		}
		t.log.Info("scheduling the test", "nodes", len(p.Shares), "start", p.Start.Format(time.RFC3339Nano))
	} else {
		p = c.Resume(now, plan)
		t.reg.n.metrics.replan()
		t.log.Info("took over as the test's scheduler", "epoch", p.Epoch, "from", leader)
	}
	t.coord = c
	t.announce(now, v, p)
}

// announce follows this node's own plan at once (before it comes back over
// gossip) and publishes it.
func (t *loadTest) announce(now time.Time, v fleetView, p *scheduler.Plan) {
	w, err := onWire(p)
	if err != nil {
		t.log.Warn("cannot encode the plan", "error", err)
		return
	}
	t.handle(now, event{kind: scheduler.InPlan, from: t.reg.self, plan: w})
	t.publish(TypePlan, w)
}

// remindReady publishes this node's answer to the test again while it
// matters: every half second until there is a plan (an answer published
// before the fleet topic's mesh reached every node is lost; so is an
// announcement, which its submitter publishes again too), then every few
// seconds while it accepted the test but has no share and the plan does
// not say why (an answer given after the split: a node that joined late).
func (t *loadTest) remindReady(now time.Time) {
	if t.askReady.Load() && now.Sub(t.lastReady) >= time.Second {
		t.askReady.Store(false)
		t.lastReady = now
		t.publishReady()
		return
	}
	p := t.follower.Plan()
	if p == nil {
		if now.Sub(t.lastReady) >= 500*time.Millisecond {
			t.lastReady = now
			if t.ann.Signer == t.reg.self {
				ctx, cancel := context.WithTimeout(t.ctx, 2*time.Second)
				if err := swarm.Publish(ctx, t.reg.fleet, TypeTestAnnounce, wireVersion, t.id, t.ann); err != nil && t.ctx.Err() == nil {
					t.log.Warn("could not announce the test again", "error", err)
				}
				cancel()
			}
			t.publishReady()
		}
		return
	}
	if t.declined != "" || now.Sub(t.lastReady) < 3*time.Second || now.After(p.Start.Add(t.sc.Profile.Duration())) {
		return
	}
	if _, mine := p.Share(t.reg.self); mine || t.follower.GaveUp() != "" {
		return
	}
	if _, excluded := p.Excluded[t.reg.self]; excluded {
		return
	}
	t.lastReady = now
	t.publishReady()
}

// overLocked: every node with a share is done or gone, or the test is well
// past its end.
func (t *loadTest) overLocked(now time.Time, alive map[string]scheduler.Member) bool {
	if t.plan == nil {
		return false
	}
	end := t.plan.Start.Add(t.sc.Profile.Duration())
	if now.Before(end) {
		return false
	}
	for id := range t.sharers {
		ns := t.node(id)
		if _, ok := alive[id]; ok && !ns.Done {
			// A slow drain is bounded by the flow's timeouts.
			grace := t.sc.Timeout*time.Duration(len(t.sc.Steps)) + 5*time.Second
			return now.After(end.Add(grace))
		}
	}
	return true
}

// fetchPlan asks a scheduler for its current plan (a lease named an epoch
// this node has not seen) and hands the answer to the loop.
func (t *loadTest) fetchPlan(from string) {
	fail := func(err error) {
		t.log.Warn("plan fetch failed", "from", from, "error", err)
		t.post(event{kind: scheduler.InFetchFailed, from: from})
	}
	req, err := swarm.NewEnvelope(TypePlanFetch, wireVersion, t.id, PlanFetch{TestID: t.id})
	if err != nil {
		fail(err)
		return
	}
	resp, err := t.reg.n.sw.Request(t.ctx, from, planProtocol, req)
	if err != nil {
		fail(err)
		return
	}
	var p scheduler.Plan
	if err := resp.DecodeBody(&p); err != nil {
		fail(err)
		return
	}
	t.post(event{kind: scheduler.InPlan, from: from, plan: &p})
}
