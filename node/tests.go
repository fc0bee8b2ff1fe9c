package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/loadswarm/loadswarm/scenarios"
	"github.com/loadswarm/loadswarm/scheduler"
	"github.com/loadswarm/loadswarm/storage"
	"github.com/loadswarm/loadswarm/swarm"
)

// Test states.
const (
	StatePending = "pending" // announced, no plan yet
	StateRunning = "running" // a plan exists
	StateDone    = "done"    // every node that took part is done or gone
	StateFailed  = "failed"  // could not run (infeasible split, bad spec)
	StateStopped = "stopped" // stopped by a user
)

// tests runs this node's part of every test it knows: it follows plans,
// runs its share, renews nothing unless it schedules, and gathers every
// node's per-second results from the test's topic.
type tests struct {
	n     *Node
	self  string // peer id
	fleet *swarm.Topic
	cfg   scheduler.CoordinatorConfig

	mu    sync.Mutex
	byID  map[string]*testRun
	order []string // ids, oldest first
	// ready holds each node's answer to each test's announcement (it may
	// come before the announcement itself).
	ready map[string]map[string]Ready

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newTests(n *Node) *tests {
	return &tests{n: n, cfg: n.cfg.coordinatorConfig(), byID: map[string]*testRun{}, ready: map[string]map[string]Ready{}}
}

func (ts *tests) start(ctx context.Context) error {
	ts.self = ts.n.sw.PeerID()
	ts.ctx, ts.cancel = context.WithCancel(ctx)
	t, err := ts.n.sw.Topic(fleetTopic)
	if err != nil {
		return err
	}
	ts.fleet = t
	sub, err := t.Subscribe(swarm.TypeTestAnnounce, swarm.TypeTestStop, swarm.TypeTestReady)
	if err != nil {
		return err
	}
	ts.n.sw.Handle(planProtocol, ts.handlePlanFetch)
	ts.wg.Add(1)
	go func() {
		defer ts.wg.Done()
		defer sub.Cancel()
		for {
			msg, err := sub.Next(ts.ctx)
			if err != nil {
				return
			}
			ts.onFleetMessage(msg)
		}
	}()
	return nil
}

func (ts *tests) close() {
	if ts.cancel == nil {
		return
	}
	ts.mu.Lock()
	for _, r := range ts.byID {
		r.stopRun()
	}
	ts.mu.Unlock()
	ts.cancel()
	ts.wg.Wait()
	if ts.fleet != nil {
		ts.fleet.Close()
	}
}

// newID returns a short random test id.
func newID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// submit validates a test and announces it to the fleet. The returned
// error is the validation error, for the submitter.
func (ts *tests) submit(ctx context.Context, spec []byte, target string) (string, error) {
	if _, err := compileSpec(spec, target); err != nil {
		return "", err
	}
	a := Announce{ID: newID(), Spec: spec, Target: target, Submitter: ts.n.cfg.Name, Created: time.Now(), Seed: mrand.Uint64() | 1}
	// Known here at once, so the submitter can follow it straight away;
	// the announcement coming back over gossip is then a no-op.
	if err := ts.admit(a, ts.self); err != nil {
		return "", err
	}
	if err := swarm.Publish(ctx, ts.fleet, swarm.TypeTestAnnounce, wireVersion, a.ID, a); err != nil {
		if r := ts.get(a.ID); r != nil {
			r.stop("could not announce the test: "+err.Error(), true)
		}
		return "", fmt.Errorf("announce: %w", err)
	}
	return a.ID, nil
}

func compileSpec(spec []byte, target string) (*scenarios.Scenario, error) {
	if len(spec) > maxSpecOnWire {
		return nil, fmt.Errorf("test file is %d bytes, over the %d byte limit", len(spec), maxSpecOnWire)
	}
	s, err := scenarios.DecodeSpec(spec)
	if err != nil {
		return nil, err
	}
	if target != "" {
		s.Target = target
	}
	return scenarios.Compile(s)
}

func (ts *tests) onFleetMessage(msg swarm.Message) {
	switch msg.Type {
	case swarm.TypeTestAnnounce:
		var a Announce
		if err := msg.DecodeBody(&a); err != nil {
			ts.n.log.Warn("bad test announcement", "from", msg.Sender, "error", err)
			return
		}
		if err := ts.admit(a, msg.Sender); err != nil {
			ts.n.log.Warn("test refused", "test", a.ID, "from", msg.Sender, "error", err)
		}
	case swarm.TypeTestReady:
		var rd Ready
		if err := msg.DecodeBody(&rd); err != nil || rd.ID == "" || len(rd.ID) > 64 {
			ts.n.log.Warn("bad ready", "from", msg.Sender, "error", err)
			return
		}
		ts.mu.Lock()
		if ts.ready[rd.ID] == nil {
			if len(ts.ready) > 10_000 {
				clear(ts.ready) // bounded: answers to tests nobody announced
			}
			ts.ready[rd.ID] = map[string]Ready{}
		}
		ts.ready[rd.ID][msg.Sender] = rd
		ts.mu.Unlock()
	case swarm.TypeTestStop:
		var s Stop
		if err := msg.DecodeBody(&s); err != nil {
			ts.n.log.Warn("bad stop", "from", msg.Sender, "error", err)
			return
		}
		if r := ts.get(s.ID); r != nil {
			r.stop(s.Reason, s.Failed)
		}
	}
}

// admit starts following a test, and tells the fleet whether this node
// takes part (its operator's policy).
func (ts *tests) admit(a Announce, sender string) error {
	if a.ID == "" || len(a.ID) > 64 {
		return errors.New("announcement: bad test id")
	}
	sc, err := compileSpec(a.Spec, a.Target)
	if err != nil {
		return err
	}
	ts.mu.Lock()
	if _, ok := ts.byID[a.ID]; ok {
		ts.mu.Unlock()
		return nil
	}
	topic, err := ts.n.sw.Topic(fmt.Sprintf(testTopicFmt, a.ID))
	if err != nil {
		ts.mu.Unlock()
		return err
	}
	sub, err := topic.Subscribe(swarm.TypePlan, swarm.TypeLease, swarm.TypeStats)
	if err != nil {
		topic.Close()
		ts.mu.Unlock()
		return err
	}
	ctx, cancel := context.WithCancel(ts.ctx)
	r := &testRun{
		ts: ts, id: a.ID, ann: a, sc: sc, topic: topic, ctx: ctx, cancel: cancel,
		state: StatePending, results: map[string]*storage.Series{}, nodes: map[string]*nodeStatus{},
		log: ts.n.log.With("test", a.ID), admitted: time.Now(), sharers: map[string]bool{},
	}
	ts.byID[a.ID] = r
	ts.order = append(ts.order, a.ID)
	ts.mu.Unlock()
	r.log.Info("test announced", "name", sc.Name, "submitter", a.Submitter, "target", sc.Target.String())
	r.save()
	rd := Ready{ID: a.ID, Accept: true, Name: ts.n.cfg.Name}
	if err := ts.n.cfg.Policy.Check(sc, a.Submitter, sender); err != nil {
		rd.Accept, rd.Reason = false, err.Error()
		r.mu.Lock()
		r.declined = rd.Reason
		r.mu.Unlock()
		r.log.Info("declining the test", "reason", rd.Reason)
	}
	pctx, cancel := context.WithTimeout(ts.ctx, 2*time.Second)
	defer cancel()
	if err := swarm.Publish(pctx, ts.fleet, swarm.TypeTestReady, wireVersion, a.ID, rd); err != nil {
		r.log.Warn("could not publish readiness", "error", err)
	}

	ts.wg.Add(2)
	go func() {
		defer ts.wg.Done()
		defer sub.Cancel()
		for {
			msg, err := sub.Next(ctx)
			if err != nil {
				return
			}
			r.onMessage(msg)
		}
	}()
	go func() {
		defer ts.wg.Done()
		r.loop()
	}()
	return nil
}

func (ts *tests) get(id string) *testRun {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.byID[id]
}

func (ts *tests) list() []*testRun {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	out := make([]*testRun, 0, len(ts.order))
	for i := len(ts.order) - 1; i >= 0; i-- {
		out = append(out, ts.byID[ts.order[i]])
	}
	return out
}

// view is the fleet as the scheduler sees it: alive members by peer id.
func (ts *tests) view() map[string]scheduler.Member {
	out := map[string]scheduler.Member{}
	for _, m := range ts.n.sw.Members() {
		if m.State != swarm.StateAlive || m.PeerID == "" {
			continue
		}
		out[m.PeerID] = scheduler.Member{ID: m.PeerID, Info: scenarios.NodeInfo{
			Name: m.Name, Region: m.Meta.Region, Zone: m.Meta.Zone, Org: m.Meta.Org,
			Capacity: float64(m.Meta.CapacityPerSec), CPUs: m.Meta.CPUs, Tags: m.Meta.Tags,
		}}
	}
	return out
}

// schedulerFor is the alive member ranked first for a test.
func (ts *tests) schedulerFor(id string, alive map[string]scheduler.Member) string {
	ids := make([]string, 0, len(alive))
	for k := range alive {
		ids = append(ids, k)
	}
	if len(ids) == 0 {
		return ""
	}
	return scheduler.Rank(id, ids)[0]
}

func (ts *tests) handlePlanFetch(ctx context.Context, from string, req swarm.Envelope) (swarm.Envelope, error) {
	if req.Type != swarm.TypePlanFetch {
		return swarm.Envelope{}, fmt.Errorf("want a plan fetch, got %s", req.Type)
	}
	var f PlanFetch
	if err := req.DecodeBody(&f); err != nil {
		return swarm.Envelope{}, err
	}
	r := ts.get(f.TestID)
	if r == nil {
		return swarm.Envelope{}, fmt.Errorf("test %q: unknown here", f.TestID)
	}
	r.mu.Lock()
	p := r.plan
	r.mu.Unlock()
	if p == nil {
		return swarm.Envelope{}, fmt.Errorf("test %q: no plan yet", f.TestID)
	}
	return swarm.NewEnvelope(swarm.TypePlanResponse, wireVersion, f.TestID, p)
}

// nodeStatus is what this node knows of another node's part in a test.
type nodeStatus struct {
	Name      string
	Region    string
	Done      bool
	Stopped   string
	StartSkew time.Duration
	LastT     int64 // last second reported, -1 before any
}

// testRun is one test as this node follows it.
type testRun struct {
	ts     *tests
	id     string
	ann    Announce
	sc     *scenarios.Scenario
	topic  *swarm.Topic
	ctx    context.Context
	cancel context.CancelFunc
	log    interface {
		Info(string, ...any)
		Warn(string, ...any)
	}

	mu        sync.Mutex
	state     string
	reason    string
	plan      *scheduler.Plan
	coord     *scheduler.Coordinator
	ended     time.Time
	results   map[string]*storage.Series // by peer id, this node's own included
	nodes     map[string]*nodeStatus     // by peer id
	leaseEnd  time.Time                  // this node's share stops then unless renewed
	ownStop   string                     // why this node stopped its share early
	running   bool                       // this node's executor is running
	ctl       *scenarios.Control
	runCancel context.CancelFunc
	profile   scenarios.Profile // this node's current profile
	fetching  bool
	declined  string              // why this node declined the test, if it did
	admitted  time.Time           // when this node learned of the test
	final     *FleetReport        // the report, kept once the test is retired
	pending   *scheduler.Plan     // a plan from a node not (yet) ranked first here
	lastLease time.Time           // when the current scheduler last renewed a lease
	share     scheduler.PlanShare // this node's share in the plan followed
	paused    time.Time           // when this node paused its share for want of a lease (zero: not paused)
	sharers   map[string]bool     // every node that had a share in a plan followed here
}

func (r *testRun) node(id string) *nodeStatus {
	ns, ok := r.nodes[id]
	if !ok {
		ns = &nodeStatus{LastT: -1}
		r.nodes[id] = ns
	}
	return ns
}

// loop drives the test on this node: scheduling when it ranks first,
// watching its lease, and deciding when the test is over.
func (r *testRun) loop() {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case now := <-tick.C:
			if done := r.tick(now); done {
				r.retire()
				return
			}
		}
	}
}

// retireAfter is how long a test that is over stays live in memory:
// stragglers' last seconds still come in, and followers read its status.
// After that its topic is left, its report is kept, and its per-second
// results are served from the store (swarm results).
var retireAfter = time.Minute

// retire waits retireAfter, then keeps the report and frees the rest.
func (r *testRun) retire() {
	select {
	case <-r.ctx.Done():
		return
	case <-time.After(retireAfter):
	}
	r.mu.Lock()
	if rep, err := r.reportLocked(); err == nil {
		r.final = rep
	}
	r.results = map[string]*storage.Series{}
	r.mu.Unlock()
	r.cancel() // ends the subscription
	r.topic.Close()
}

func (r *testRun) tick(now time.Time) (over bool) {
	ts := r.ts
	alive := ts.view()
	// The split uses only the nodes that accepted the test, and one of
	// them leads it (a member that never answered cannot stall it). When
	// nobody accepts, the first of all refuses it with the reasons.
	accepted, declined, waiting := ts.readiness(r.id, alive)
	sched := ts.schedulerFor(r.id, accepted)
	if len(accepted) == 0 {
		sched = ts.schedulerFor(r.id, alive)
	}

	r.mu.Lock()
	if r.state == StateDone || r.state == StateFailed || r.state == StateStopped {
		r.mu.Unlock()
		return true
	}
	if p := r.pending; p != nil && (p.Scheduler == sched || r.schedulerSilentLocked(now)) {
		r.mu.Unlock()
		r.applyPlan(p) // the view agrees now, or the old scheduler went silent
		r.mu.Lock()
	}
	// Become the scheduler, or stop being it.
	if sched == ts.self && r.coord == nil {
		c, err := scheduler.NewCoordinator(ts.cfg, ts.self, scheduler.Test{ID: r.id, Profile: r.sc.Profile, Distribution: r.sc.Distribution, Seed: r.ann.Seed})
		if err != nil {
			r.mu.Unlock()
			r.fail(err.Error())
			return true
		}
		if r.plan == nil && waiting > 0 && now.Sub(r.admitted) < readyWait {
			r.mu.Unlock()
			return false // give every node a moment to accept or decline
		}
		if r.plan == nil {
			p, err := c.Begin(now, scheduler.View{Alive: accepted})
			if err != nil && len(declined) > 0 {
				err = fmt.Errorf("%w; declined: %s", err, joinReasons(declined))
			}
			if err != nil {
				r.mu.Unlock()
				r.fail(err.Error())
				return true
			}
			p.LeaseTTL = ts.cfg.LeaseTTL
			for id, why := range declined {
				p.Excluded[id] = "declined: " + why
			}
			r.log.Info("scheduling the test", "nodes", len(p.Shares), "start", p.Start.Format(time.RFC3339Nano))
		} else {
			c.Resume(now, r.plan)
			r.log.Info("took over as the test's scheduler", "epoch", c.Plan().Epoch)
		}
		r.coord = c
		p := c.Plan()
		r.mu.Unlock()
		r.publish(swarm.TypePlan, p)
		r.mu.Lock()
	} else if sched != ts.self && r.coord != nil {
		r.log.Info("no longer ranked first: handing scheduling over", "to", sched)
		r.coord = nil
	}
	var out scheduler.Output
	if r.coord != nil {
		stopped := map[string]string{}
		for id, ns := range r.nodes {
			if ns.Stopped != "" {
				stopped[id] = ns.Stopped
			}
		}
		out = r.coord.Tick(now, scheduler.View{Alive: accepted, Stopped: stopped, Behind: r.behindLocked(now)})
		if out.Plan != nil {
			out.Plan.LeaseTTL = ts.cfg.LeaseTTL
		}
	}
	// This node's own lease.
	expired := r.running && r.ownStop == "" && r.paused.IsZero() && !r.leaseEnd.IsZero() && now.After(r.leaseEnd)
	ttl := r.ts.cfg.LeaseTTL
	if r.plan != nil && r.plan.LeaseTTL > 0 {
		ttl = r.plan.LeaseTTL
	}
	giveUp := r.running && r.ownStop == "" && !r.paused.IsZero() && now.Sub(r.paused) > 2*ttl
	if r.running && !r.paused.IsZero() && r.plan != nil && now.After(r.plan.Start.Add(r.sc.Profile.Duration())) {
		r.ctl.Hold(false) // the test is over: let the paused run end
	}
	over = r.overLocked(now, alive)
	r.mu.Unlock()

	if out.Note != "" {
		r.log.Info(out.Note)
	}
	if out.Plan != nil {
		r.publish(swarm.TypePlan, out.Plan)
	}
	if out.Lease != nil {
		r.publish(swarm.TypeLease, out.Lease)
	}
	if expired {
		r.pauseShare(now)
	}
	if giveUp {
		r.stopShare(now, "no lease for two lease periods")
	}
	if over {
		r.finish(now)
	}
	return over
}

// overLocked: every node with a share is done or gone, or the test is well
// past its end.
func (r *testRun) overLocked(now time.Time, alive map[string]scheduler.Member) bool {
	if r.plan == nil {
		return false
	}
	if now.Before(r.plan.Start.Add(r.sc.Profile.Duration())) {
		return false
	}
	for id := range r.everShared() {
		ns := r.node(id)
		if _, ok := alive[id]; ok && !ns.Done {
			// A slow drain is bounded by the flow's timeouts.
			grace := r.sc.Timeout*time.Duration(len(r.sc.Steps)) + 5*time.Second
			return now.After(r.plan.Start.Add(r.sc.Profile.Duration() + grace))
		}
	}
	return true
}

// everShared is every node that had a share in a plan this node saw.
func (r *testRun) everShared() map[string]bool {
	return r.sharers
}

func (r *testRun) publish(t swarm.Type, body any) {
	ctx, cancel := context.WithTimeout(r.ctx, 2*time.Second)
	defer cancel()
	if err := swarm.Publish(ctx, r.topic, t, scheduler.WireVersion, r.id, body); err != nil && r.ctx.Err() == nil {
		r.log.Warn("publish failed", "type", t.String(), "error", err)
	}
}

func (r *testRun) onMessage(msg swarm.Message) {
	switch msg.Type {
	case swarm.TypePlan:
		var p scheduler.Plan
		if err := msg.DecodeBody(&p); err != nil {
			r.log.Warn("bad plan", "from", msg.Sender, "error", err)
			return
		}
		err := p.Validate()
		switch {
		case err != nil:
		case p.TestID != r.id:
			err = fmt.Errorf("plan for test %q on test %q's topic", p.TestID, r.id)
		case p.Scheduler != msg.Sender:
			err = fmt.Errorf("plan in the name of %s, signed by its sender", p.Scheduler)
		}
		if err != nil {
			r.log.Warn("plan refused", "from", msg.Sender, "error", err)
			return
		}
		r.applyPlan(&p)
	case swarm.TypeLease:
		var l scheduler.Lease
		if err := msg.DecodeBody(&l); err != nil || l.Scheduler != msg.Sender || l.TTL <= 0 || l.TTL > time.Minute {
			r.log.Warn("bad lease", "from", msg.Sender, "error", err)
			return
		}
		r.onLease(&l)
	case swarm.TypeStats:
		if msg.Local {
			return // this node records its own results directly
		}
		var s Stats
		if err := msg.DecodeBody(&s); err != nil {
			r.log.Warn("bad stats", "from", msg.Sender, "error", err)
			return
		}
		r.onStats(msg.Sender, &s)
	}
}

// applyPlan follows a plan with a higher epoch than the one held.
//
// Only the node this node ranks first for the test may lead it: a plan from
// another member is held back (kept as pending) until this node's view of
// the fleet agrees, which happens within a failure-detection delay after a
// takeover, and never for a member that merely claims the role.
func (r *testRun) applyPlan(p *scheduler.Plan) {
	accepted, _, _ := r.ts.readiness(r.id, r.ts.view())
	expected := r.ts.schedulerFor(r.id, accepted)
	participant := r.ts.accepted(r.id, p.Scheduler)
	r.mu.Lock()
	// Same epoch from another scheduler: two nodes took over at once (one
	// falsely suspected the other); the one ranked first here wins.
	collision := r.plan != nil && p.Epoch == r.plan.Epoch && p.Scheduler != r.plan.Scheduler && p.Scheduler == expected
	if r.plan != nil && p.Epoch <= r.plan.Epoch && !collision {
		r.mu.Unlock()
		return
	}
	if p.Scheduler != expected && !(participant && r.schedulerSilentLocked(time.Now())) {
		if r.pending == nil || p.Epoch > r.pending.Epoch {
			r.pending = p
		}
		r.mu.Unlock()
		return
	}
	if r.pending != nil && r.pending.Epoch <= p.Epoch {
		r.pending = nil
	}
	if r.state != StatePending && r.state != StateRunning {
		r.mu.Unlock()
		return
	}
	first := r.plan == nil
	r.plan = p
	r.lastLease = time.Now() // a new plan is contact from its scheduler
	r.state = StateRunning
	for _, s := range p.Shares {
		ns := r.node(s.Node)
		ns.Region = s.Region
		r.sharers[s.Node] = true
	}
	self := r.ts.self
	share, mine := p.Share(self)
	if mine && r.declined != "" {
		r.log.Warn("a plan gives this node a share of a test it declined: ignored", "epoch", p.Epoch)
		mine = false
	}
	now := time.Now()
	ttl := p.LeaseTTL
	if ttl <= 0 {
		ttl = r.ts.cfg.LeaseTTL
	}
	if mine && r.ownStop == "" && (first || r.leaseEnd.IsZero()) {
		// The first plan naming this node is its first lease. Later plans
		// renew nothing: only leases do, and a scheduler without a majority
		// sends none (its own takeover plan must not keep it going).
		r.leaseEnd = now.Add(ttl)
	}
	elapsed := now.Sub(p.Start)
	if mine {
		r.share = share
	}
	switch {
	case mine && r.running && !r.paused.IsZero():
		// Paused: the new share starts when a lease resumes the run.
	case mine && !r.running && r.ownStop == "":
		r.profile = share.Profile()
		if elapsed > 0 {
			// A late start (a plan that arrived after the start, or a share
			// given mid-test): arrivals already due must not come in a
			// burst to catch up.
			r.profile = scenarios.Profile{}.Splice(elapsed+50*time.Millisecond, r.profile)
		}
		r.startRunLocked(p, share)
	case mine && r.running:
		at := max(p.Effective, elapsed+50*time.Millisecond)
		r.profile = r.profile.Splice(at, share.Profile())
		r.ctl.Update(r.profile)
	case !mine && r.running:
		at := max(p.Effective, elapsed)
		r.profile = r.profile.Until(at)
		r.ctl.Update(r.profile)
		r.paused = time.Time{}
		r.ctl.Hold(false) // no share any more: the run ends
	}
	r.mu.Unlock()
	r.save()
}

func (r *testRun) onLease(l *scheduler.Lease) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.plan == nil || l.Epoch > r.plan.Epoch {
		// A plan was missed (published before this node joined the topic):
		// ask the scheduler for it.
		if !r.fetching {
			r.fetching = true
			go r.fetchPlan(l.Scheduler)
		}
		return
	}
	if l.Epoch < r.plan.Epoch || l.Scheduler != r.plan.Scheduler {
		return
	}
	r.lastLease = time.Now()
	if l.Holds(r.ts.self) && r.ownStop == "" {
		r.leaseEnd = time.Now().Add(l.TTL)
		r.resumeLocked(time.Now())
	}
}

// schedulerSilentLocked: the current plan's scheduler has renewed no
// lease for half a lease TTL. A higher-epoch plan from another node that
// took part is then a takeover that this node's view of the fleet has not
// caught up with yet (failure detection lags by up to a second or two), and
// is followed: waiting for the view would let every lease run out at once.
func (r *testRun) schedulerSilentLocked(now time.Time) bool {
	if r.plan == nil {
		return false
	}
	ttl := r.plan.LeaseTTL
	if ttl <= 0 {
		ttl = r.ts.cfg.LeaseTTL
	}
	last := r.lastLease
	if last.IsZero() {
		last = r.admitted
	}
	return now.Sub(last) > ttl/2
}

func (r *testRun) fetchPlan(from string) {
	defer func() {
		r.mu.Lock()
		r.fetching = false
		r.mu.Unlock()
	}()
	req, err := swarm.NewEnvelope(swarm.TypePlanFetch, wireVersion, r.id, PlanFetch{TestID: r.id})
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(r.ctx, 3*time.Second)
	defer cancel()
	resp, err := r.ts.n.sw.Request(ctx, from, planProtocol, req)
	if err != nil {
		r.log.Warn("plan fetch failed", "from", from, "error", err)
		return
	}
	var p scheduler.Plan
	if err := resp.DecodeBody(&p); err != nil || p.Validate() != nil || p.TestID != r.id || p.Scheduler != from {
		r.log.Warn("bad plan from fetch", "from", from, "error", err)
		return
	}
	r.applyPlan(&p)
}

func (r *testRun) onStats(from string, s *Stats) {
	r.mu.Lock()
	shared := r.sharers[from]
	r.mu.Unlock()
	if !shared {
		// Only nodes with a share report results: anything else would be
		// counted into the test's numbers.
		r.log.Warn("stats refused: the sender has no share in this test", "from", from)
		return
	}
	var sec *storage.Second
	if len(s.Second) > 0 {
		var err error
		if sec, err = storage.DecodeSecond(s.Second); err != nil {
			r.log.Warn("bad stats second", "from", from, "error", err)
			return
		}
	}
	r.mu.Lock()
	r.record(from, s, sec)
	r.mu.Unlock()
	// The test's scheduler and the next in rank keep replicas, so that
	// results outlive a node that never comes back.
	for _, h := range replicaHolders(r.id, from, r.ts.view()) {
		if h != r.ts.self {
			continue
		}
		if sec != nil {
			r.keep(from, sec)
		}
		if len(s.Samples) > 0 {
			if err := r.ts.n.store.PutSamples(r.id, from, s.Samples); err != nil {
				r.log.Warn("could not store samples", "origin", from, "error", err)
			}
		}
	}
}

// record keeps a node's stats; the caller holds r.mu.
func (r *testRun) record(from string, s *Stats, sec *storage.Second) {
	ns := r.node(from)
	ns.Name, ns.Region = s.Name, s.Region
	if s.StartSkew != 0 {
		ns.StartSkew = s.StartSkew
	}
	if s.Stopped != "" {
		ns.Stopped = s.Stopped
	}
	if s.Done {
		ns.Done = true
	}
	res, ok := r.results[from]
	if !ok {
		res = storage.NewSeries()
		r.results[from] = res
	}
	for class, msgs := range s.Samples {
		for _, m := range msgs {
			res.AddSample(class, m)
		}
	}
	if sec != nil {
		if _, dup := res.Seconds[sec.T]; dup {
			return // a second counts once
		}
		if err := res.Add(sec); err != nil {
			r.log.Warn("stats not merged", "from", from, "error", err)
			return
		}
		ns.LastT = max(ns.LastT, sec.T)
	}
}

// startRunLocked starts this node's share.
func (r *testRun) startRunLocked(p *scheduler.Plan, share scheduler.PlanShare) {
	ctx, cancel := context.WithCancel(r.ctx)
	r.ctl = scenarios.NewControl()
	r.runCancel = cancel
	r.running = true
	prof := r.profile
	self := r.ts.self
	name, region := r.ts.n.cfg.Name, r.ts.n.cfg.Region
	r.node(self).Name = name
	tr := r.ts.n.transport(r.sc)
	cfg := scenarios.RunConfig{
		Scenario: r.sc, Profile: &prof, Start: p.Start, Seed: share.Seed, Control: r.ctl,
		OnSecond: func(sec *storage.Second) {
			b, err := storage.EncodeSecond(sec)
			if err != nil {
				r.log.Warn("encode second", "error", err)
				return
			}
			own := sec.Clone()
			r.keep(self, own)
			r.mu.Lock()
			r.record(self, &Stats{Name: name, Region: region}, own)
			r.mu.Unlock()
			r.publish(swarm.TypeStats, Stats{Name: name, Region: region, Second: b})
		},
	}
	r.ts.wg.Add(1)
	go func() {
		defer r.ts.wg.Done()
		if d := time.Until(p.Start); d < -time.Second {
			r.log.Warn("plan arrived after the test's start", "late", (-d).String())
		}
		var skew time.Duration
		cfg.OnStart = func(at time.Time) { skew = at.Sub(p.Start) }
		if tr != nil {
			cfg.Transport = tr
			defer tr.CloseIdleConnections()
		}
		res, err := scenarios.Run(ctx, cfg)
		r.mu.Lock()
		r.running = false
		why := r.ownStop
		r.mu.Unlock()
		if err != nil {
			r.log.Warn("share failed", "error", err)
			why = err.Error()
		}
		var samples map[string][]string
		if res != nil {
			samples = res.Series.Samples
		}
		final := Stats{Name: name, Region: region, Done: true, Stopped: why, Samples: samples, StartSkew: max(skew, 0)}
		if len(samples) > 0 {
			if err := r.ts.n.store.PutSamples(r.id, self, samples); err != nil {
				r.log.Warn("could not store samples", "error", err)
			}
		}
		r.mu.Lock()
		r.record(self, &final, nil)
		r.mu.Unlock()
		r.publish(swarm.TypeStats, final)
		r.log.Info("share finished", "stopped", why)
	}()
}

// stopShare ends this node's share at once (lease expiry): no arrival after
// now; requests in flight finish.
func (r *testRun) stopShare(now time.Time, why string) {
	r.mu.Lock()
	if !r.running || r.ownStop != "" {
		r.mu.Unlock()
		return
	}
	r.ownStop = why
	r.profile = r.profile.Until(max(now.Sub(r.plan.Start), 0))
	r.ctl.Update(r.profile)
	r.ctl.Hold(false)
	name, region := r.ts.n.cfg.Name, r.ts.n.cfg.Region
	r.mu.Unlock()
	r.log.Warn("stopping this node's share", "why", why)
	r.publish(swarm.TypeStats, Stats{Name: name, Region: region, Stopped: why})
}

// pauseShare stops this node's arrivals at once when its lease runs out,
// but keeps the run (held) so that a lease from the test's scheduler, the
// same or one that took over, resumes it. A node paused for two lease
// periods gives up (stopShare) and says so, so that its share moves.
func (r *testRun) pauseShare(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.running || r.ownStop != "" || !r.paused.IsZero() {
		return
	}
	r.paused = now
	r.ctl.Hold(true)
	r.profile = r.profile.Until(max(now.Sub(r.plan.Start), 0))
	r.ctl.Update(r.profile)
	r.log.Warn("lease expired: this node's share is paused until a lease comes")
}

// resumeLocked takes the share up again after a pause, from a moment
// ahead: arrivals missed while paused are not made up.
func (r *testRun) resumeLocked(now time.Time) {
	if r.paused.IsZero() || !r.running || r.ownStop != "" {
		return
	}
	r.paused = time.Time{}
	if _, mine := r.plan.Share(r.ts.self); mine {
		r.profile = r.profile.Splice(max(now.Sub(r.plan.Start), 0)+50*time.Millisecond, r.share.Profile())
		r.ctl.Update(r.profile)
	}
	r.ctl.Hold(false)
	r.log.Info("lease back: this node's share resumes")
}

// stop ends the test on this node (a user's stop, or a failure).
func (r *testRun) stop(reason string, failed bool) {
	r.mu.Lock()
	if r.state == StateDone || r.state == StateFailed || r.state == StateStopped {
		r.mu.Unlock()
		return
	}
	r.state = StateStopped
	if failed {
		r.state = StateFailed
	}
	r.reason = reason
	r.ended = time.Now()
	r.mu.Unlock()
	r.stopRun()
	r.save()
	r.log.Info("test ended", "state", r.state, "reason", reason)
}

func (r *testRun) stopRun() {
	r.mu.Lock()
	cancel := r.runCancel
	r.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// fail refuses the test fleet-wide: the scheduler could not plan it.
func (r *testRun) fail(reason string) {
	r.log.Warn("test cannot run", "reason", reason)
	ctx, cancel := context.WithTimeout(r.ts.ctx, 2*time.Second)
	defer cancel()
	_ = swarm.Publish(ctx, r.ts.fleet, swarm.TypeTestStop, wireVersion, r.id, Stop{ID: r.id, Reason: reason, Failed: true})
	r.stop(reason, true)
}

func (r *testRun) finish(now time.Time) {
	r.mu.Lock()
	if r.state == StateRunning {
		r.state = StateDone
		r.ended = now
	}
	r.mu.Unlock()
	r.save()
	r.log.Info("test over on this node's view")
}

// merged returns the fleet-wide series: every node's results merged.
func (r *testRun) mergedLocked() (*storage.Series, error) {
	out := storage.NewSeries()
	ids := make([]string, 0, len(r.results))
	for id := range r.results {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if err := out.Merge(r.results[id]); err != nil {
			return nil, fmt.Errorf("merge results of %s: %w", id, err)
		}
	}
	return out, nil
}

// stopTest stops a test on every node: the stop goes out on the fleet
// topic, and this node, a subscriber too, stops on receipt.
func (ts *tests) stopTest(ctx context.Context, id, reason string) error {
	if err := swarm.Publish(ctx, ts.fleet, swarm.TypeTestStop, wireVersion, id, Stop{ID: id, Reason: reason}); err != nil {
		return fmt.Errorf("stop %s: %w", id, err)
	}
	return nil
}

// recordLocked is the test as the store keeps it.
func (r *testRun) recordLocked() storage.TestRecord {
	rec := storage.TestRecord{ID: r.id, Name: r.sc.Name, Spec: r.ann.Spec, Target: r.ann.Target,
		Submitter: r.ann.Submitter, State: r.state, Created: r.ann.Created, Ended: r.ended, Reason: r.reason}
	if r.plan != nil {
		rec.Started = r.plan.Start
		rec.Epoch = r.plan.Epoch
		if b, err := cbor.Marshal(r.plan); err == nil && len(b) <= storage.MaxPlanBytes {
			rec.Plan = b
		}
	}
	for id := range r.everShared() {
		rec.Nodes = append(rec.Nodes, id)
	}
	sort.Strings(rec.Nodes)
	return rec
}

// save writes the test's record; call it without r.mu held.
func (r *testRun) save() {
	r.mu.Lock()
	rec := r.recordLocked()
	r.mu.Unlock()
	if err := r.ts.n.store.PutTest(rec); err != nil {
		r.log.Warn("could not store the test record", "error", err)
	}
}

// keep stores a second of origin's results (this node's own, or a replica).
func (r *testRun) keep(origin string, sec *storage.Second) {
	if err := r.ts.n.store.PutSecond(r.id, origin, sec); err != nil {
		r.log.Warn("could not store a second", "origin", origin, "t", sec.T, "error", err)
	}
}

// namesAndRegions maps a test's node ids to their names and regions.
func (ts *tests) namesAndRegions(id string) (names, regions map[string]string) {
	names, regions = map[string]string{}, map[string]string{}
	r := ts.get(id)
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for nid, ns := range r.nodes {
		names[nid] = r.nameOfLocked(nid)
		regions[nid] = ns.Region
	}
	return
}

// accepted reports whether a node accepted a test (it takes part).
func (ts *tests) accepted(id, node string) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	rd, ok := ts.ready[id][node]
	return ok && rd.Accept
}

// readyWait bounds how long a scheduler waits for every node to accept or
// decline a test before it plans with those that answered.
const readyWait = 3 * time.Second

// readiness splits the alive members by their answer to a test: those
// that accepted it, those that declined it (and why), and how many have
// not answered yet. A member that does not answer takes no part.
func (ts *tests) readiness(id string, alive map[string]scheduler.Member) (accepted map[string]scheduler.Member, declined map[string]string, waiting int) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	accepted, declined = map[string]scheduler.Member{}, map[string]string{}
	answers := ts.ready[id]
	for pid, m := range alive {
		rd, ok := answers[pid]
		switch {
		case !ok:
			waiting++
		case rd.Accept:
			accepted[pid] = m
		default:
			declined[pid] = rd.Reason
		}
	}
	return accepted, declined, waiting
}

func joinReasons(m map[string]string) string {
	var l []string
	for _, v := range m {
		l = append(l, v)
	}
	sort.Strings(l)
	return strings.Join(l, "; ")
}

// behindWindow is how many seconds in a row a node must drop arrivals to
// count as falling behind.
const behindWindow = 3

// behindLocked finds the nodes whose last behindWindow reported seconds
// all dropped arrivals (their generator cannot keep up: CPU-bound, or
// max_in_flight too small for the target's latency), with the arrival
// rate they did achieve.
func (r *testRun) behindLocked(now time.Time) map[string]float64 {
	if r.plan == nil {
		return nil
	}
	recent := int64(now.Sub(r.plan.Start)/time.Second) - behindWindow - 2
	var out map[string]float64
	for id, res := range r.results {
		ns := r.node(id)
		if ns.Done || ns.Stopped != "" || ns.LastT < recent {
			continue
		}
		var arrivals int64
		behind := true
		for t := ns.LastT - behindWindow + 1; t <= ns.LastT && behind; t++ {
			sec, ok := res.Seconds[t]
			if !ok {
				behind = false
				break
			}
			sum := storage.SummarizeSecond(sec)
			behind = sum.Dropped > 0
			arrivals += sum.Arrivals
		}
		if behind && ns.LastT >= behindWindow-1 {
			if out == nil {
				out = map[string]float64{}
			}
			out[id] = float64(arrivals) / behindWindow
		}
	}
	return out
}
