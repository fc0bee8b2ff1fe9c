package node

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loadswarm/loadswarm/scenarios"
	"github.com/loadswarm/loadswarm/scheduler"
	"github.com/loadswarm/loadswarm/storage"
	"github.com/loadswarm/loadswarm/swarm"
)

// loadTest is one test as this node follows it: its share (a
// scheduler.Follower), its scheduling when this node leads it (a
// scheduler.Coordinator), every node's per-second results, and its state.
//
// Goroutines and what each owns:
//   - loop (loop.go) owns the follower, the coordinator and the run's
//     control: every plan, lease and stop goes through its inbox, and
//     ticks drive both state machines. It never blocks on another lock
//     while holding mu.
//   - reader reads the test's topic: plans and leases go to the inbox,
//     stats are recorded at once (stats.go).
//   - the run of this node's share (share.go) records and publishes each
//     second, and posts InRunEnded when it returns.
//   - API handlers read under mu.
//
// mu guards the fields below it; the loop copies what readers need (plan,
// leader, sharers) there after each step.
type loadTest struct {
	reg      *registry
	id       string
	ann      Announce // as signed: handed to nodes that join late
	body     AnnounceBody
	sc       *scenarios.Scenario
	topic    *swarm.Topic
	ctx      context.Context
	cancel   context.CancelFunc
	log      *slog.Logger
	admitted time.Time
	inbox    chan event

	// Owned by the loop goroutine.
	follower    *scheduler.Follower
	coord       *scheduler.Coordinator
	ctl         *scenarios.Control // the share's run, nil before it starts
	lastTick    time.Time
	quietUntil  time.Time // no scheduling until then (after a freeze)
	lastReady   time.Time // readiness last published
	noMajority  bool      // logged once
	steppedDown bool      // this node led the test and gave the lead up
	// observeCancel stops this node's observer of the system under test
	// (observe.go); nil when it does not observe.
	observeCancel context.CancelFunc

	committed    atomic.Uint64            // math.Float64bits of the follower's Committed: this test's hold on capacity
	following    atomic.Pointer[[32]byte] // the digest of the plan followed, for this node's stats
	late         bool                     // admitted from a member's list of running tests, not from the announcement
	askReady     atomic.Bool              // a new node answered: publish this node's answer again, so it learns it
	noRoomLogged atomic.Int64             // when "disk nearly full" was last logged (Unix ns)

	mu        sync.Mutex
	state     string
	reason    string
	ended     time.Time
	declined  string // why this node declined the test, if it did
	plan      *scheduler.Plan
	leader    string
	sharers   map[string]bool
	spans     map[string][2]int64 // each node's seconds with a share (first, last), across the plans followed
	paused    bool
	gaveUp    string
	ready     map[string]Ready           // each node's answer to the announcement, by peer id
	nodes     map[string]*nodeStatus     // by peer id
	results   map[string]*storage.Series // by peer id, this node's own included
	final     *FleetReport               // the report, kept once the test is retired
	isRetired bool
	runCancel context.CancelFunc   // cuts this node's run off
	logged    map[string]time.Time // refusals logged, by sender
	vouch     map[string][32]byte  // per node, the digest of the plan its latest results say it follows
	heard     map[string]time.Time // per node, when its latest results (or heartbeat) arrived
	lastPub   atomic.Int64         // when this node last published its stats (unix ns)
	// schedulers are the nodes whose plans this node followed: the only
	// ones whose observed values of the system under test it keeps.
	schedulers map[string]bool
	events     []TestEvent // for the dashboard's time axis, bounded by maxEvents
	// aborted is the abort threshold that stopped the test, if one did;
	// abortSeen is the last second the scheduler checked them through.
	aborted   string
	abortSeen int64
}

// event is an input for the loop.
type event struct {
	kind   scheduler.InputKind
	from   string
	plan   *scheduler.Plan
	lease  *scheduler.Lease
	reason string
	failed bool // InStop: the test could not run
	// aborted is, for InStop, the abort threshold that stopped the test.
	aborted string
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

func newLoadTest(r *registry, id string, a Announce, body AnnounceBody, sc *scenarios.Scenario, declined string) (*loadTest, error) {
	f, err := scheduler.NewFollower(r.fcfg, scheduler.FollowedTest{ID: id, Profile: sc.Profile, Submitter: a.Signer, Self: r.self, Declined: declined})
	if err != nil {
		return nil, err
	}
	topic, err := r.n.sw.Topic(fmt.Sprintf(testTopicFmt, id))
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(r.ctx)
	return &loadTest{
		reg: r, id: id, ann: a, body: body, sc: sc, topic: topic, ctx: ctx, cancel: cancel,
		log: r.n.log.With("test", id), admitted: time.Now(), inbox: make(chan event, 256),
		follower: f, logged: map[string]time.Time{}, vouch: map[string][32]byte{}, heard: map[string]time.Time{}, schedulers: map[string]bool{},
		state: StatePending, declined: declined, sharers: map[string]bool{}, spans: map[string][2]int64{}, ready: map[string]Ready{},
		nodes: map[string]*nodeStatus{}, results: map[string]*storage.Series{}, abortSeen: -1,
	}, nil
}

// start subscribes to the test's topic and starts the loop.
func (t *loadTest) start() {
	sub, err := t.topic.Subscribe(TypePlan, TypeLease, TypeStats, TypeObserved)
	if err != nil {
		t.log.Warn("cannot follow the test's topic", "error", err)
		t.cancel()
		return
	}
	t.reg.wg.Add(2)
	go func() {
		defer t.reg.wg.Done()
		defer sub.Cancel()
		for {
			msg, err := sub.Next(t.ctx)
			if err != nil {
				return
			}
			t.onMessage(msg)
		}
	}()
	go func() {
		defer t.reg.wg.Done()
		t.loop()
	}()
}

// post hands an input to the loop. A plan or a lease read from the topic
// is dropped when the inbox is full (a flood, which the swarm's rate
// limits make rare: a lease comes again within a second, a missed plan is
// fetched) rather than block the reader; anything else (a stop, a fetched
// plan, the end of the run) waits for room.
func (t *loadTest) post(ev event) {
	if ev.kind == scheduler.InPlan || ev.kind == scheduler.InLease {
		select {
		case t.inbox <- ev:
		case <-t.ctx.Done():
		default:
			t.logRefusal(ev.from, "test inbox full: a plan or lease was dropped")
		}
		return
	}
	select {
	case t.inbox <- ev:
	case <-t.ctx.Done():
	}
}

func (t *loadTest) onMessage(msg swarm.Message) {
	switch msg.Type {
	case TypePlan:
		if msg.Local {
			return // the loop fed its own plan to its follower already
		}
		var p scheduler.Plan
		if err := msg.DecodeBody(&p); err != nil {
			t.logRefusal(msg.Sender, "bad plan: "+err.Error())
			return
		}
		t.post(event{kind: scheduler.InPlan, from: msg.Sender, plan: &p})
	case TypeLease:
		if msg.Local {
			return
		}
		t.mu.Lock()
		t.mu.Unlock()
		var l scheduler.Lease
		if err := msg.DecodeBody(&l); err != nil {
			t.logRefusal(msg.Sender, "bad lease: "+err.Error())
			return
		}
		t.reg.n.metrics.leaseReceived()
		t.post(event{kind: scheduler.InLease, from: msg.Sender, lease: &l})
	case TypeStats:
		if msg.Local {
			return // this node records its own results directly
		}
		var s Stats
		if err := msg.DecodeBody(&s); err != nil {
			t.logRefusal(msg.Sender, "bad stats: "+err.Error())
			return
		}
		t.onStats(msg.Sender, &s)
	case TypeObserved:
		if msg.Local {
			return // the observer stored its own
		}
		var o Observed
		if err := msg.DecodeBody(&o); err != nil {
			t.logRefusal(msg.Sender, "bad observed values: "+err.Error())
			return
		}
		t.onObserved(msg.Sender, &o)
	}
}

// logRefusal logs a refused message, at most once per sender every 10 s:
// a hostile member must not fill the log.
func (t *loadTest) logRefusal(from, why string) {
	t.mu.Lock()
	last, ok := t.logged[from]
	now := time.Now()
	if ok && now.Sub(last) < 10*time.Second {
		t.mu.Unlock()
		return
	}
	if len(t.logged) > 1024 {
		clear(t.logged)
	}
	t.logged[from] = now
	t.mu.Unlock()
	t.log.Warn("message refused", "from", from, "why", why)
}

func (t *loadTest) setReady(from string, rd Ready) {
	t.mu.Lock()
	_, known := t.ready[from]
	t.ready[from] = rd
	running := t.state == StateRunning
	t.mu.Unlock()
	if !known && running && from != t.reg.self {
		t.askReady.Store(true) // a node that joined late learns who takes part
	}
}

// publishReady tells the fleet whether this node takes part. Called from
// admit and then from the loop only.
func (t *loadTest) publishReady() {
	rd := Ready{ID: t.id, Accept: t.declined == "", Reason: t.declined, Name: t.reg.n.cfg.Name}
	if rd.Accept {
		rd.Free = t.reg.free(t.id, time.Now())
	}
	t.setReady(t.reg.self, rd)
	ctx, cancel := context.WithTimeout(t.ctx, 2*time.Second)
	defer cancel()
	if err := swarm.Publish(ctx, t.reg.fleet, TypeTestReady, wireVersion, t.id, rd); err != nil && t.ctx.Err() == nil {
		t.log.Warn("could not publish readiness", "error", err)
	}
}

func (t *loadTest) publish(typ swarm.Type, body any) {
	ctx, cancel := context.WithTimeout(t.ctx, 2*time.Second)
	defer cancel()
	if err := swarm.Publish(ctx, t.topic, typ, wireVersion, t.id, body); err != nil && t.ctx.Err() == nil {
		t.log.Warn("publish failed", "type", typ.String(), "error", err)
	}
}

func (t *loadTest) committedRate() float64 { return math.Float64frombits(t.committed.Load()) }

func (t *loadTest) currentState() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.state
}

func (t *loadTest) retired() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.isRetired
}

// ended reports whether the test reached a final state; call with mu held.
func (t *loadTest) endedLocked() bool {
	return t.state == StateDone || t.state == StateFailed || t.state == StateStopped
}

// The outcomes of a test, one verb each: finish (it ran to its end), stop
// (its submitter or scheduler stopped it), fail (it could not run). retire
// frees its memory later. A share's own end is the follower's give-up.

// finish marks the test done: every node that took part is done or gone.
func (t *loadTest) finish(now time.Time) {
	t.mu.Lock()
	if t.state == StateRunning || t.state == StatePending {
		t.state = StateDone
		t.ended = now
	}
	t.mu.Unlock()
	t.save()
	t.log.Info("test over on this node's view")
}

// stop ends the test on this node: the run is cut off at once.
func (t *loadTest) stop(reason string, failed bool) {
	t.mu.Lock()
	if t.endedLocked() {
		t.mu.Unlock()
		return
	}
	t.state = StateStopped
	if failed {
		t.state = StateFailed
	}
	t.reason = reason
	t.ended = time.Now()
	state := t.state
	t.mu.Unlock()
	t.cancelRun()
	t.save()
	t.log.Info("test ended", "state", state, "reason", reason)
}

// fail refuses the test fleet-wide: this node, its scheduler, could not
// plan it.
func (t *loadTest) fail(reason string) {
	t.log.Warn("test cannot run", "reason", reason)
	ctx, cancel := context.WithTimeout(t.ctx, 2*time.Second)
	defer cancel()
	_ = swarm.Publish(ctx, t.reg.fleet, TypeTestStop, wireVersion, t.id, Stop{ID: t.id, Reason: reason, Failed: true})
	t.stop(reason, true)
}

// cancelRun cuts this node's run off (requests in flight are abandoned).
func (t *loadTest) cancelRun() {
	t.mu.Lock()
	cancel := t.runCancel
	t.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// retireAfter is how long a test that is over stays live in memory:
// stragglers' last seconds still come in, and followers read its status.
// After that its topic is left, its report is kept, and its per-second
// results are served from the store (swarm results).
var retireAfter = time.Minute

// retire waits retireAfter, then keeps the report and frees the rest.
func (t *loadTest) retire() {
	select {
	case <-t.ctx.Done():
		return
	case <-time.After(retireAfter):
	}
	t.mu.Lock()
	if rep, err := t.reportLocked(); err == nil {
		t.final = rep
	}
	t.results = map[string]*storage.Series{}
	t.isRetired = true
	t.mu.Unlock()
	t.save()   // with its figures, for the test's history
	t.cancel() // ends the subscription
	t.topic.Close()
}

func (t *loadTest) node(id string) *nodeStatus {
	ns, ok := t.nodes[id]
	if !ok {
		ns = &nodeStatus{LastT: -1}
		t.nodes[id] = ns
	}
	return ns
}
