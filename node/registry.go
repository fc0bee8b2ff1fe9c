package node

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/loadswarm/loadswarm/scenarios"
	"github.com/loadswarm/loadswarm/scheduler"
	"github.com/loadswarm/loadswarm/storage"
	"github.com/loadswarm/loadswarm/swarm"
)

// Test states, as the API shows them.
const (
	StatePending = "pending" // announced, no plan yet
	StateRunning = "running" // a plan exists
	StateDone    = "done"    // every node that took part is done or gone
	StateFailed  = "failed"  // could not run (infeasible split, bad spec)
	StateStopped = "stopped" // stopped by its submitter or scheduler
)

// registry is every test this node knows. It admits announced tests (its
// operator's policy decides whether this node takes part), routes the fleet
// topic's messages to them, keeps the node's capacity across them, and
// hands the running ones to nodes that join late.
//
// Goroutines: one reads the fleet topic (onFleetMessage); each test runs
// its own (see loadTest); stream handlers run one per request. registry.mu
// guards byID, order and early only, and no other lock is taken while it is
// held: a loadTest's lock is always taken alone.
type registry struct {
	n     *Node
	self  string // this node's peer id
	fleet *swarm.Topic
	cfg   scheduler.CoordinatorConfig
	fcfg  scheduler.FollowerConfig

	mu       sync.Mutex
	byID     map[string]*loadTest
	order    []string                       // ids, oldest first
	early    earlyReady                     // readiness for tests not known here yet
	compiled map[string]*scenarios.Scenario // stored tests' scenarios, compiled once (a few)

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// deafToStats drops every stats message that arrives (tests: a
	// scheduler that no longer hears the fleet, though it still sees it).
	deafToStats atomic.Bool
}

func newRegistry(n *Node) *registry {
	fc := scheduler.DefaultFollowerConfig()
	cc := n.cfg.coordinatorConfig()
	fc.LeaseTTL = cc.LeaseTTL
	return &registry{n: n, cfg: cc, fcfg: fc, byID: map[string]*loadTest{}, early: newEarlyReady(8, 1024),
		compiled: map[string]*scenarios.Scenario{}}
}

func (r *registry) start(ctx context.Context) error {
	r.self = r.n.sw.PeerID()
	r.ctx, r.cancel = context.WithCancel(ctx)
	t, err := r.n.sw.Topic(fleetTopic)
	if err != nil {
		return err
	}
	r.fleet = t
	sub, err := t.Subscribe(TypeTestAnnounce, TypeTestStop, TypeTestReady)
	if err != nil {
		return err
	}
	r.n.sw.Handle(planProtocol, r.handlePlanFetch)
	r.n.sw.Handle(testsProtocol, r.handleTestsFetch)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		defer sub.Cancel()
		for {
			msg, err := sub.Next(r.ctx)
			if err != nil {
				return
			}
			r.onFleetMessage(msg)
		}
	}()
	return nil
}

func (r *registry) close() {
	if r.cancel == nil {
		return
	}
	for _, t := range r.list() {
		t.cancelRun()
	}
	r.cancel()
	r.wg.Wait()
	if r.fleet != nil {
		r.fleet.Close()
	}
}

// submit validates a test, signs it and announces it to the fleet. The
// returned error is the validation error, for the submitter.
func (r *registry) submit(ctx context.Context, run Run) (string, error) {
	spec := []byte(run.Spec)
	if _, err := compileSpec(spec, run.Target, run.Env, run.Secret); err != nil {
		return "", err
	}
	var seed [8]byte
	_, _ = rand.Read(seed[:])
	a, err := signAnnounce(r.n.sw, AnnounceBody{Spec: spec, Target: run.Target, Name: r.n.cfg.Name,
		Created: time.Now().UTC(), Seed: binary.BigEndian.Uint64(seed[:]) | 1, Env: run.Env, Secret: run.Secret})
	if err != nil {
		return "", err
	}
	// Known here at once, so the submitter can follow it straight away;
	// the announcement coming back over gossip is then a no-op.
	id, err := r.admit(a)
	if err != nil {
		return "", err
	}
	if err := swarm.Publish(ctx, r.fleet, TypeTestAnnounce, wireVersion, id, a); err != nil {
		if t := r.get(id); t != nil {
			t.post(event{kind: scheduler.InStop, from: r.self, reason: "could not announce the test: " + err.Error(), failed: true})
		}
		return "", fmt.Errorf("announce: %w", err)
	}
	return id, nil
}

// compileSpec compiles a test file with its target and run parameters.
func compileSpec(spec []byte, target string, env map[string]string, secret []string) (*scenarios.Scenario, error) {
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
	s.Env = env
	s.Secret = append(s.Secret, secret...)
	return scenarios.Compile(s)
}

func (r *registry) onFleetMessage(msg swarm.Message) {
	log := r.n.log
	switch msg.Type {
	case TypeTestAnnounce:
		var a Announce
		if err := msg.DecodeBody(&a); err != nil {
			log.Warn("bad test announcement", "from", msg.Sender, "error", err)
			return
		}
		if id, err := r.admit(a); err != nil {
			log.Warn("test refused", "test", id, "from", msg.Sender, "error", err)
		}
	case TypeTestReady:
		var rd Ready
		if err := msg.DecodeBody(&rd); err != nil || rd.ID == "" || len(rd.ID) > 64 || len(rd.Reason) > 4096 || len(rd.Name) > 256 || !(rd.Free >= 0) {
			log.Warn("bad readiness", "from", msg.Sender, "error", err)
			return
		}
		if t := r.get(rd.ID); t != nil {
			t.setReady(msg.Sender, rd)
			return
		}
		r.mu.Lock()
		r.early.add(rd.ID, msg.Sender, rd)
		r.mu.Unlock()
	case TypeTestStop:
		var s Stop
		if err := msg.DecodeBody(&s); err != nil || len(s.Reason) > 4096 || len(s.Aborted) > 4096 {
			log.Warn("bad stop", "from", msg.Sender, "error", err)
			return
		}
		if t := r.get(s.ID); t != nil {
			t.post(event{kind: scheduler.InStop, from: msg.Sender, reason: s.Reason, failed: s.Failed, aborted: s.Aborted})
		}
	}
}

// admit starts following an announced test, and tells the fleet whether
// this node takes part. It returns the test's id (derived from what its
// submitter signed).
func (r *registry) admit(a Announce) (string, error) { return r.admitAs(a, false) }

// admitAs is admit; late marks a test learned from a member's list of
// running tests (catch-up): this node follows its plan and never plans it.
func (r *registry) admitAs(a Announce, late bool) (string, error) {
	id, body, err := a.open()
	if err != nil {
		return "", err
	}
	if r.get(id) != nil {
		return id, nil
	}
	sc, err := compileSpec(body.Spec, body.Target, body.Env, body.Secret)
	if err != nil {
		return id, err
	}
	declined := ""
	if err := r.n.cfg.Policy.Check(sc, a.Signer, r.nameOf); err != nil {
		declined = err.Error()
	} else if err := r.n.targets.CheckScenario(sc); err != nil {
		declined = err.Error()
	} else if free := r.free("", time.Now()); free < 1 {
		declined = fmt.Sprintf("no free capacity: this node's %d/s are taken by its other tests", r.n.cfg.CapacityPerSec)
	} else if err := r.n.store.Room(); err != nil {
		declined = err.Error()
	}
	t, err := newLoadTest(r, id, a, body, sc, declined)
	if err != nil {
		return id, err
	}
	t.late = late
	r.mu.Lock()
	if _, ok := r.byID[id]; ok {
		r.mu.Unlock()
		t.topic.Close()
		return id, nil
	}
	r.byID[id] = t
	r.order = append(r.order, id)
	early := r.early.take(id)
	r.forgetOldLocked()
	r.mu.Unlock()
	for from, rd := range early {
		t.setReady(from, rd)
	}
	t.log.Info("test announced", "name", sc.Name, "submitter", body.Name, "signer", a.Signer, "target", sc.Target.String())
	if declined != "" {
		t.log.Info("declining the test", "reason", declined)
	}
	t.save()
	t.publishReady()
	t.start()
	return id, nil
}

// nameOf is a member's name from membership ("" when unknown): the only
// way from a peer id to a name that nobody can forge in a message.
func (r *registry) nameOf(peerID string) string {
	if m, ok := r.n.sw.Member(peerID); ok && m.PeerID == peerID {
		return m.Name
	}
	return ""
}

// keepRetired bounds how many finished tests stay in memory; older ones
// are served from the store.
const keepRetired = 1000

// forgetOldLocked drops the oldest retired tests past keepRetired.
func (r *registry) forgetOldLocked() {
	if len(r.order) <= keepRetired {
		return
	}
	kept := r.order[:0]
	drop := len(r.order) - keepRetired
	for _, id := range r.order {
		t := r.byID[id]
		if drop > 0 && t.retired() {
			delete(r.byID, id)
			drop--
			continue
		}
		kept = append(kept, id)
	}
	r.order = kept
}

func (r *registry) get(id string) *loadTest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byID[id]
}

// list returns the tests, newest first.
func (r *registry) list() []*loadTest {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*loadTest, 0, len(r.order))
	for i := len(r.order) - 1; i >= 0; i-- {
		out = append(out, r.byID[r.order[i]])
	}
	return out
}

// free is the rate this node can still give a test: its capacity less what
// its other tests hold (each test's share from now on, at its peak).
func (r *registry) free(except string, now time.Time) float64 {
	f := float64(r.n.cfg.CapacityPerSec)
	for _, t := range r.list() {
		if t.id != except {
			f -= t.committedRate()
		}
	}
	return math.Max(f, 0)
}

// view is the fleet as this node sees it: alive members by peer id.
func (r *registry) view() map[string]scheduler.Member {
	out := map[string]scheduler.Member{}
	for _, m := range r.n.sw.Members() {
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

// Stop scopes, as the API reports them.
const (
	StopFleet = "fleet" // the test stops on every node
	StopNode  = "node"  // only this node's share stops; the test goes on elsewhere
)

// stop stops a test on behalf of this node's operator: on every node when
// this node submitted the test or schedules it (others accept a stop from
// those two only), else this node's share alone, which then moves to the
// others.
func (r *registry) stop(ctx context.Context, t *loadTest, reason string) (scope string, err error) {
	t.mu.Lock()
	leader := t.leader
	t.mu.Unlock()
	if r.self != t.ann.Signer && r.self != leader {
		t.post(event{kind: scheduler.InStop, reason: reason})
		return StopNode, nil
	}
	if err := swarm.Publish(ctx, r.fleet, TypeTestStop, wireVersion, t.id, Stop{ID: t.id, Reason: reason}); err != nil {
		return "", fmt.Errorf("stop %s: %w", t.id, err)
	}
	t.post(event{kind: scheduler.InStop, from: r.self, reason: reason})
	return StopFleet, nil
}

// abort stops a test on every node because an abort threshold failed on
// the fleet's numbers; only its scheduler calls it.
func (r *registry) abort(ctx context.Context, t *loadTest, rule, reason string) error {
	if err := swarm.Publish(ctx, r.fleet, TypeTestStop, wireVersion, t.id, Stop{ID: t.id, Reason: reason, Aborted: rule}); err != nil {
		return fmt.Errorf("abort %s: %w", t.id, err)
	}
	t.post(event{kind: scheduler.InStop, from: r.self, reason: reason, aborted: rule})
	return nil
}

func (r *registry) handlePlanFetch(ctx context.Context, from string, req swarm.Envelope) (swarm.Envelope, error) {
	if req.Type != TypePlanFetch {
		return swarm.Envelope{}, fmt.Errorf("want a plan fetch, got %s", req.Type)
	}
	var f PlanFetch
	if err := req.DecodeBody(&f); err != nil {
		return swarm.Envelope{}, err
	}
	t := r.get(f.TestID)
	if t == nil {
		return swarm.Envelope{}, fmt.Errorf("test %q: unknown here", f.TestID)
	}
	t.mu.Lock()
	p := t.plan
	t.mu.Unlock()
	if p == nil {
		return swarm.Envelope{}, fmt.Errorf("test %q: no plan yet", f.TestID)
	}
	return swarm.NewEnvelope(TypePlanResponse, wireVersion, f.TestID, p)
}

// handleTestsFetch answers a node that joined late with the tests that run
// now, as their submitters signed them.
func (r *registry) handleTestsFetch(ctx context.Context, from string, req swarm.Envelope) (swarm.Envelope, error) {
	if req.Type != TypeTestsFetch {
		return swarm.Envelope{}, fmt.Errorf("want a tests fetch, got %s", req.Type)
	}
	var out TestsList
	for _, t := range r.list() {
		if len(out.Tests) == maxCatchUp {
			break
		}
		if st := t.currentState(); st == StatePending || st == StateRunning {
			out.Tests = append(out.Tests, t.ann)
		}
	}
	return swarm.NewEnvelope(TypeTestsList, wireVersion, "", out)
}

// catchUp asks members for the tests that run now, and admits them as if
// announced: a node that joins, or comes back, mid-test can take a share at
// the next split. Right after a join the transport to the others may not be
// up yet, so it tries again a few times until one member has answered.
func (r *registry) catchUp(ctx context.Context) {
	req, err := swarm.NewEnvelope(TypeTestsFetch, wireVersion, "", TestsFetch{})
	if err != nil {
		return
	}
	wait := 500 * time.Millisecond
	for attempt := 0; attempt < 5; attempt++ {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait *= 2
		var peers []string
		for id := range r.view() {
			if id != r.self {
				peers = append(peers, id)
			}
		}
		mrand.Shuffle(len(peers), func(i, j int) { peers[i], peers[j] = peers[j], peers[i] })
		answered := 0
		for _, p := range peers[:min(3, len(peers))] {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			resp, err := r.n.sw.Request(cctx, p, testsProtocol, req)
			cancel()
			if err != nil {
				r.n.log.Debug("catch-up: a member did not answer", "peer", p, "error", err)
				continue
			}
			var l TestsList
			if err := resp.DecodeBody(&l); err != nil || len(l.Tests) > maxCatchUp {
				r.n.log.Warn("catch-up: bad answer", "peer", p, "error", err)
				continue
			}
			answered++
			for _, a := range l.Tests {
				if id, err := r.admitAs(a, true); err != nil {
					r.n.log.Warn("catch-up: test refused", "test", id, "from", p, "error", err)
				}
			}
		}
		if answered > 0 || len(peers) == 0 {
			return
		}
	}
}

// readyWait bounds how long a scheduler waits for every node to accept or
// decline a test before it plans with those that answered.
const readyWait = 3 * time.Second

// earlyReady keeps readiness answers to tests not known here yet (an
// answer may overtake its announcement), bounded per sender and in all: a
// member that floods answers to made-up tests fills its own slots, never
// evicts another's, and never touches the answers of tests known here.
type earlyReady struct {
	perSender, most int
	byTest          map[string]map[string]Ready
	count           map[string]int // answers held per sender
	order           []earlyKey     // oldest first, for eviction
}

type earlyKey struct{ test, from string }

func newEarlyReady(perSender, most int) earlyReady {
	return earlyReady{perSender: perSender, most: most, byTest: map[string]map[string]Ready{}, count: map[string]int{}}
}

func (e *earlyReady) add(test, from string, rd Ready) {
	if _, ok := e.byTest[test][from]; ok {
		e.byTest[test][from] = rd
		return
	}
	if e.count[from] >= e.perSender {
		e.evict(func(k earlyKey) bool { return k.from == from }) // its own oldest
	}
	if len(e.order) >= e.most {
		// Full: the sender with the most answers loses its oldest.
		top := ""
		for s, c := range e.count {
			if top == "" || c > e.count[top] {
				top = s
			}
		}
		e.evict(func(k earlyKey) bool { return k.from == top })
	}
	if e.byTest[test] == nil {
		e.byTest[test] = map[string]Ready{}
	}
	e.byTest[test][from] = rd
	e.count[from]++
	e.order = append(e.order, earlyKey{test, from})
}

func (e *earlyReady) evict(match func(earlyKey) bool) {
	for i, k := range e.order {
		if match(k) {
			e.order = append(e.order[:i], e.order[i+1:]...)
			e.drop(k)
			return
		}
	}
}

func (e *earlyReady) drop(k earlyKey) {
	delete(e.byTest[k.test], k.from)
	if len(e.byTest[k.test]) == 0 {
		delete(e.byTest, k.test)
	}
	if e.count[k.from]--; e.count[k.from] <= 0 {
		delete(e.count, k.from)
	}
}

// take removes and returns the answers held for a test.
func (e *earlyReady) take(test string) map[string]Ready {
	got := e.byTest[test]
	if got == nil {
		return nil
	}
	kept := e.order[:0]
	for _, k := range e.order {
		if k.test == test {
			if e.count[k.from]--; e.count[k.from] <= 0 {
				delete(e.count, k.from)
			}
			continue
		}
		kept = append(kept, k)
	}
	e.order = kept
	delete(e.byTest, test)
	return got
}

func joinReasons(m map[string]string) string {
	var l []string
	for _, v := range m {
		l = append(l, v)
	}
	sort.Strings(l)
	return strings.Join(l, "; ")
}

// scenarioOf is a stored test's compiled scenario: the one in memory when
// the test is, else compiled from its record once and kept (a few).
func (r *registry) scenarioOf(rec storage.TestRecord) (*scenarios.Scenario, error) {
	if t := r.get(rec.ID); t != nil {
		return t.sc, nil
	}
	r.mu.Lock()
	sc, ok := r.compiled[rec.ID]
	r.mu.Unlock()
	if ok {
		return sc, nil
	}
	// The record keeps the parameters with the secrets' values hidden:
	// enough to compile the test again for its report.
	var x recordExtra
	if len(rec.Extra) > 0 {
		_ = (swarm.Envelope{Type: TypeStats, Body: rec.Extra}).DecodeBody(&x)
	}
	sc, err := compileSpec(rec.Spec, rec.Target, x.Env, x.Secret)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	if len(r.compiled) >= 64 {
		clear(r.compiled)
	}
	r.compiled[rec.ID] = sc
	r.mu.Unlock()
	return sc, nil
}

// recordExtraOf is what this node knows of a test's nodes: from the test in
// memory, else from its record (what its plans said), with membership
// filling in what neither knows.
func (r *registry) recordExtraOf(id string, rec storage.TestRecord) recordExtra {
	var x recordExtra
	if t := r.get(id); t != nil && !t.retired() {
		t.mu.Lock()
		x = t.extraLocked()
		t.mu.Unlock()
	} else if len(rec.Extra) > 0 {
		if err := (swarm.Envelope{Type: TypeStats, Body: rec.Extra}).DecodeBody(&x); err != nil {
			r.n.log.Warn("test record: unreadable extra", "test", id, "error", err)
		}
	}
	if x.Names == nil {
		x.Names = map[string]string{}
	}
	if x.Regions == nil {
		x.Regions = map[string]string{}
	}
	if len(rec.Plan) > 0 {
		if p, err := decodePlan(rec.Plan); err == nil {
			for _, s := range p.Shares {
				if x.Regions[s.Node] == "" {
					x.Regions[s.Node] = s.Region
				}
			}
		}
	}
	for _, nid := range rec.Nodes {
		if m, ok := r.n.sw.Member(nid); ok {
			if x.Names[nid] == "" {
				x.Names[nid] = m.Name
			}
			if x.Regions[nid] == "" {
				x.Regions[nid] = m.Meta.Region
			}
		}
	}
	return x
}
