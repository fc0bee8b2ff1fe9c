package scheduler

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/loadswarm/loadswarm/scenarios"
)

// CoordinatorConfig tunes a test's scheduler.
type CoordinatorConfig struct {
	// LeaseTTL is how long a node keeps sending after its last lease.
	// Default 3s: three missed renewals.
	LeaseTTL time.Duration
	// LeaseEvery is how often leases are renewed. Default 1s.
	LeaseEvery time.Duration
	// Lead is how far ahead a plan is announced, so every node has it
	// before it applies. Default 2s.
	Lead time.Duration
	// Margin is added to a lost node's lease expiry before its share
	// moves, for delivery delays. Default 500ms.
	Margin time.Duration
	// Contact is how recently the scheduler must have heard from each
	// node it counts towards its majority (see View.Heard). A scheduler
	// cut off from the fleet still sees its members alive until its
	// failure detector declares them dead, one by one, which takes longer
	// the larger the fleet; it stops leasing Contact after it last heard
	// from a majority. Default 3s.
	Contact time.Duration
}

// DefaultCoordinatorConfig returns the defaults.
func DefaultCoordinatorConfig() CoordinatorConfig {
	return CoordinatorConfig{LeaseTTL: 3 * time.Second, LeaseEvery: time.Second, Lead: 2 * time.Second, Margin: 500 * time.Millisecond, Contact: 3 * time.Second}
}

// Validate reports every bad field.
func (c CoordinatorConfig) Validate() error {
	var errs []error
	if c.LeaseEvery <= 0 || c.LeaseTTL < 2*c.LeaseEvery {
		errs = append(errs, fmt.Errorf("lease: TTL %s must be at least twice the renewal period %s", c.LeaseTTL, c.LeaseEvery))
	}
	if c.Lead < 0 || c.Margin < 0 || c.Contact < 0 {
		errs = append(errs, errors.New("lead, margin and contact must be >= 0"))
	}
	return errors.Join(errs...)
}

// Test is what a scheduler needs to know of a test.
type Test struct {
	ID           string
	Profile      scenarios.Profile
	Distribution *scenarios.Distribution
	Seed         uint64
}

// View is the fleet as the scheduler's node sees it at one tick.
type View struct {
	Alive   map[string]Member // alive members by id, this node included
	Stopped map[string]string // nodes that reported they stopped, and why
	// Behind holds the nodes whose generator falls behind (they dropped
	// arrivals for several seconds in a row), with the rate they achieved.
	Behind map[string]float64
	// Following holds, per node, the digest of the plan it last reported
	// following (in its results): how a node whose share a plan lowers
	// tells the scheduler it has lowered it.
	Following map[string][32]byte
	// Heard holds when each node's results (or heartbeat) last arrived:
	// every node that follows a test reports at least once a second. Nil:
	// the view alone says who is there.
	Heard map[string]time.Time
}

// Output is what a tick asks the driver to send.
type Output struct {
	Plan  *Plan  // a new plan to publish, if any
	Lease *Lease // a lease to publish, if any
	// Note says what the scheduler did or could not do, for the log.
	Note string
}

// Coordinator is the scheduler of one test: a state machine the driver
// feeds with time and the fleet view (Tick), and whose outputs it
// publishes. It does no I/O and reads no clock. Not safe for concurrent
// use.
//
// Its rules keep the no-overshoot guarantee: a lost node's share moves only
// once that node's lease has run out (the last lease that named it, plus
// LeaseTTL and Margin), and only while the scheduler sees a majority of the
// test's nodes; without a majority it renews no lease at all, so every node,
// its own included, stops by itself.
type Coordinator struct {
	cfg  CoordinatorConfig
	test Test
	self string
	plan *Plan
	// nodes are the test's nodes, the majority's base: every member that
	// took part when it was planned (a share or not: a split may round a
	// small one to nothing) and every node that had a share since.
	nodes map[string]bool

	lastLeased map[string]time.Time // last lease naming the node
	lost       map[string]string    // nodes whose share is gone, and why
	moved      map[string]bool      // lost nodes whose share was reassigned
	lastLease  time.Time
	noMajority bool
	// regained is when the majority came back after a time without: the
	// coordinator listens two lease periods before it acts again, for the
	// plan of a node that took over meanwhile (its driver then steps
	// down) rather than competing with a plan of its own.
	regained time.Time
	// slow caps the capacity of nodes found falling behind, and when, so a
	// node is not rebalanced again before Cooldown.
	slow map[string]float64
	// lastRebalance is when load last moved off slow nodes.
	lastRebalance time.Time
	// considered holds every member a split has seen (given a share or
	// excluded): a member outside it joined the fleet, or accepted the
	// test, after the last split.
	considered map[string]bool
	lastJoin   time.Time // when the last split for joiners was made
	lastRefill time.Time // when a plan short of the rate was last split again
	// shared is when each node joined the test under this scheduler: it
	// is expected to be heard from Contact later.
	shared map[string]time.Time
	// issued holds the digests of the plans this scheduler made (the
	// latest few): a node counts towards its majority only if it follows
	// one of them.
	issued map[[32]byte]time.Time
	// unsure holds nodes that may still send more than their share in the
	// current plan (a plan lowered them, or this scheduler took the plan
	// over), until when at the latest: a raise waits for them to follow
	// the plan, or for that time.
	unsure map[string]time.Time
	// raise is a plan held back until every node whose share it lowers
	// has lowered it (see change).
	raise *heldRaise
}

// heldRaise is the second step of a plan change that lowers some shares
// and raises others.
type heldRaise struct {
	plan  *Plan    // the change, published once nobody is waited for
	lower [32]byte // the digest of the first step, which only lowers
	// wait holds the nodes that may send more than the first step gives
	// them until they follow it: those it lowers (no deadline: until they
	// follow it, or are lost with their lease run out), and those still
	// unsure from an earlier plan (until their deadline).
	wait map[string]time.Time
	note string
}

// NewCoordinator makes self the scheduler of a test.
func NewCoordinator(cfg CoordinatorConfig, self string, t Test) (*Coordinator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Coordinator{cfg: cfg, test: t, self: self, nodes: map[string]bool{},
		lastLeased: map[string]time.Time{}, lost: map[string]string{}, moved: map[string]bool{}, slow: map[string]float64{},
		considered: map[string]bool{}, shared: map[string]time.Time{}, issued: map[[32]byte]time.Time{}, unsure: map[string]time.Time{}}, nil
}

// Plan returns the current plan (nil before Begin or Resume).
func (c *Coordinator) Plan() *Plan { return c.plan }

// NoMajority reports whether the last Tick found no majority of the test's
// nodes (and so renewed no lease).
func (c *Coordinator) NoMajority() bool { return c.noMajority }

// Begin makes the first plan: the test starts Lead from now. An infeasible
// split is an error (the test is refused with the reason).
func (c *Coordinator) Begin(now time.Time, v View) (*Plan, error) {
	sp, err := SplitRate(c.test.Profile, members(v, nil), c.test.Distribution, c.test.Seed)
	if err != nil {
		return nil, err
	}
	c.plan = &Plan{TestID: c.test.ID, Epoch: 1, Scheduler: c.self, Start: now.Add(c.cfg.Lead),
		Shares: sp.Shares, Excluded: sp.Excluded, Unit: sp.Unit, LeaseTTL: c.cfg.LeaseTTL}
	for _, s := range c.plan.Shares {
		c.nodes[s.Node] = true
		c.shared[s.Node] = now
	}
	for id := range v.Alive {
		c.nodes[id] = true
	}
	c.consider(v)
	c.issue(now, c.plan)
	return c.plan, nil
}

// Resume takes over a test from a scheduler that is gone: the plan every
// node holds continues under a new epoch. Every node may have been leased
// by the old scheduler just now, so their leases count from now.
func (c *Coordinator) Resume(now time.Time, p *Plan) *Plan {
	np := *p
	np.Epoch = p.Epoch + 1
	np.Scheduler = c.self
	np.LeaseTTL = c.cfg.LeaseTTL
	c.plan = &np
	for _, s := range np.Shares {
		c.nodes[s.Node] = true
		c.lastLeased[s.Node] = now
		c.considered[s.Node] = true
		c.shared[s.Node] = now
		// It may follow a plan of the old scheduler's that this one never
		// saw (a first step, say), with a higher share than here.
		c.unsure[s.Node] = now.Add(c.cfg.LeaseTTL + c.cfg.Margin)
	}
	if _, had := np.Share(p.Scheduler); had {
		// The old scheduler leased its own share for as long as it heard
		// from a majority, which may be Contact past its last word here.
		c.lastLeased[p.Scheduler] = now.Add(c.cfg.Contact)
	}
	for id, why := range np.Excluded {
		c.considered[id] = true
		if !strings.HasPrefix(why, "declined") && !strings.HasPrefix(why, "lost:") {
			c.nodes[id] = true
		}
	}
	c.issue(now, c.plan)
	return c.plan
}

// Tick advances the scheduler to now.
func (c *Coordinator) Tick(now time.Time, v View) Output {
	var out Output
	if c.plan == nil {
		return out
	}
	// Who is gone? A node taken for gone that is back (a false suspicion)
	// before its share moved is not: its share never went to anyone else.
	for n, why := range c.lost {
		_, alive := v.Alive[n]
		_, stopped := v.Stopped[n]
		if alive && !stopped && !c.moved[n] && why == "not alive in the fleet" {
			delete(c.lost, n)
		}
	}
	for _, s := range c.plan.Shares {
		if _, gone := c.lost[s.Node]; gone {
			continue
		}
		if _, ok := v.Alive[s.Node]; !ok {
			c.lost[s.Node] = "not alive in the fleet"
		} else if why, ok := v.Stopped[s.Node]; ok {
			c.lost[s.Node] = "stopped: " + why
		}
	}
	// The base is the test's nodes (with a share or not) but those lost
	// whose share has gone from the plan: a node that died and was
	// replaced no longer stands between the survivors and their majority.
	alive, base := 0, 0
	for n := range c.nodes {
		_, gone := c.lost[n]
		if _, has := c.plan.Share(n); gone && !has {
			continue
		}
		base++
		if _, ok := v.Alive[n]; ok && !gone && c.inTouch(now, v, n) {
			alive++
		}
	}
	if alive*2 <= base {
		if !c.noMajority {
			out.Note = fmt.Sprintf("sees %d of the test's %d nodes: no majority, no leases (every share stops at its lease expiry)", alive, base)
		}
		c.noMajority = true
		return out
	}
	if c.noMajority {
		c.noMajority = false
		c.regained = now
		out.Note = fmt.Sprintf("sees %d of the test's %d nodes again: listening %s for a node that took over before leasing", alive, base, 2*c.cfg.LeaseEvery)
		return out
	}
	if now.Before(c.regained.Add(2 * c.cfg.LeaseEvery)) {
		return out
	}

	// Move the shares of lost nodes whose leases have run out.
	var ready []string
	for n := range c.lost {
		if c.moved[n] {
			continue
		}
		if _, had := c.plan.Share(n); !had {
			continue
		}
		if c.expired(now, n) {
			ready = append(ready, n)
		}
	}
	if len(ready) > 0 {
		sort.Strings(ready)
		p, note := c.replan(now, v, ready)
		out.Plan, out.Note = p, note
	} else if c.raise != nil {
		out.Plan, out.Note = c.raiseHeld(now, v)
	} else if p, note := c.rebalance(now, v); p != nil {
		out.Plan, out.Note = p, note
	} else if p, note := c.welcome(now, v); p != nil {
		out.Plan, out.Note = p, note
	} else if p, note := c.refill(now, v); p != nil {
		out.Plan, out.Note = p, note
	}

	if now.Sub(c.lastLease) >= c.cfg.LeaseEvery || out.Plan != nil {
		l := &Lease{TestID: c.test.ID, Epoch: c.plan.Epoch, Scheduler: c.self, TTL: c.cfg.LeaseTTL, Sent: now}
		for _, s := range c.plan.Shares {
			if _, gone := c.lost[s.Node]; !gone {
				l.Nodes = append(l.Nodes, s.Node)
				// Never earlier than what a takeover assumed of the old
				// scheduler's own lease.
				c.lastLeased[s.Node] = latest(c.lastLeased[s.Node], now)
			}
		}
		c.lastLease = now
		out.Lease = l
	}
	return out
}

// replan splits the rest of the test over the survivors (and members that
// joined since, if the rules select them), effective Lead from now.
func (c *Coordinator) replan(now time.Time, v View, lost []string) (*Plan, string) {
	for _, n := range lost {
		c.moved[n] = true
	}
	eff := now.Add(c.cfg.Lead).Sub(c.plan.Start)
	if eff < 0 {
		eff = 0
	}
	if eff >= c.test.Profile.Duration() {
		return nil, fmt.Sprintf("lost %v near the end of the test: nothing to move", lost)
	}
	rest, cands, sp, err := c.restSplit(eff, v)
	note := ""
	if errors.Is(err, ErrInfeasible) {
		// Take what the survivors can carry: under the target, never over
		// anybody's capacity.
		var capSum float64
		for _, m := range cands {
			capSum += m.Info.Capacity
		}
		sp, err = SplitRate(clamp(rest, capSum), cands, c.test.Distribution, c.test.Seed+c.plan.Epoch)
		note = fmt.Sprintf(" (only %s/s of capacity left: the rate stays lower)", fmtRate(capSum))
	}
	if err != nil {
		// Keep the survivors' shares: the rate dips, but never overshoots.
		np := *c.plan
		np.Epoch++
		np.Shares = nil
		for _, s := range c.plan.Shares {
			if _, gone := c.lost[s.Node]; !gone {
				np.Shares = append(np.Shares, s)
			}
		}
		np.Effective = eff
		return c.change(now, v, &np, fmt.Sprintf("lost %v; the others cannot carry their share (%v): the rate stays lower", lost, err))
	}
	excluded := sp.Excluded
	for n, why := range c.lost {
		excluded[n] = "lost: " + why
		if _, had := c.plan.Share(n); had {
			c.moved[n] = true // the new split leaves it out
		}
	}
	c.consider(v)
	return c.change(now, v, c.draft(eff, sp, excluded), fmt.Sprintf("moved the share of %v to %d nodes from %s into the test%s", lost, len(sp.Shares), eff.Round(time.Millisecond), note))
}

// joinCooldown spaces out splits for members that joined mid-test, so a
// fleet that grows node by node is not re-planned at every join.
const joinCooldown = 3 * time.Second

// welcome gives a share to members that joined the fleet, or accepted the
// test, after the last split: the rest of the test is split again over
// everybody from Lead ahead. Every node switches at the same offset into
// the test, so the fleet's total rate stays the test's rate.
func (c *Coordinator) welcome(now time.Time, v View) (*Plan, string) {
	var joined []string
	for id := range v.Alive {
		if _, stopped := v.Stopped[id]; !c.considered[id] && !stopped {
			if _, gone := c.lost[id]; !gone {
				joined = append(joined, id)
			}
		}
	}
	if len(joined) == 0 || now.Sub(c.lastJoin) < joinCooldown {
		return nil, ""
	}
	eff := now.Add(c.cfg.Lead).Sub(c.plan.Start)
	eff = max(eff, 0)
	if eff >= c.test.Profile.Duration() {
		return nil, ""
	}
	c.lastJoin = now
	_, _, sp, err := c.restSplit(eff, v)
	c.consider(v)
	if err != nil {
		return nil, ""
	}
	sort.Strings(joined)
	return c.change(now, v, c.draft(eff, sp, sp.Excluded), fmt.Sprintf("%v joined: the rest of the test is split over %d nodes from %s into the test", joined, len(sp.Shares), eff.Round(time.Millisecond)))
}

// refill splits the rest of the test again when the plan falls short of
// the test's rate and nothing else is under way: the scheduler that made a
// two-step change died between its steps (the one that took over holds the
// first, lower one), or a replan could not place a share then. Only as
// often as joins, since an infeasible split is simply tried again later.
func (c *Coordinator) refill(now time.Time, v View) (*Plan, string) {
	if now.Sub(c.lastRefill) < joinCooldown {
		return nil, ""
	}
	eff := max(now.Add(c.cfg.Lead).Sub(c.plan.Start), 0)
	if eff >= c.test.Profile.Duration() || !short(c.plan, c.test.Profile, eff) {
		return nil, ""
	}
	for n := range c.lost {
		if _, had := c.plan.Share(n); had && !c.moved[n] {
			return nil, "" // its replan comes first
		}
	}
	c.lastRefill = now
	_, _, sp, err := c.restSplit(eff, v)
	if err != nil {
		return nil, ""
	}
	c.consider(v)
	return c.change(now, v, c.draft(eff, sp, sp.Excluded), fmt.Sprintf("the plan fell short of the test's rate: the rest of the test is split again over %d nodes from %s into the test", len(sp.Shares), eff.Round(time.Millisecond)))
}

// consider marks every member of the view as seen by a split.
func (c *Coordinator) consider(v View) {
	for id := range v.Alive {
		c.considered[id] = true
	}
}

// clamp caps every rate of p at max. A segment crossing max is clamped at
// both ends, so it stays under both max and p.
func clamp(p scenarios.Profile, max float64) scenarios.Profile {
	segs := p.Segments()
	for i := range segs {
		segs[i].From = min(segs[i].From, max)
		segs[i].To = min(segs[i].To, max)
	}
	return scenarios.NewProfile(segs)
}

func members(v View, exclude map[string]bool) []Member {
	out := make([]Member, 0, len(v.Alive))
	for id, m := range v.Alive {
		if exclude[id] {
			continue
		}
		if _, stopped := v.Stopped[id]; stopped {
			continue
		}
		out = append(out, m)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].ID < out[b].ID })
	return out
}

// rebalanceCooldown spaces out moves of load off slow nodes, so that a
// node's new share shows in its results before it is judged again.
const rebalanceCooldown = 10 * time.Second

// rebalance moves load off nodes whose generator falls behind: their
// capacity is capped at 90% of what they achieved, and the rest of the
// test is split again. It does nothing when no other node has room (the
// rate would just stay where it is). The others' shares grow only once the
// slow nodes follow their smaller ones (see change): a node that was
// behind for a moment, a late start say, may be sending its full share
// again by the time the plan is made.
func (c *Coordinator) rebalance(now time.Time, v View) (*Plan, string) {
	if len(v.Behind) == 0 || now.Sub(c.lastRebalance) < rebalanceCooldown {
		return nil, ""
	}
	var slow []string
	for id, achieved := range v.Behind {
		if _, ok := c.plan.Share(id); !ok {
			continue
		}
		if _, gone := c.lost[id]; gone {
			continue
		}
		c.slow[id] = max(0.9*achieved, 0)
		slow = append(slow, id)
	}
	if len(slow) == 0 {
		return nil, ""
	}
	sort.Strings(slow)
	eff := now.Add(c.cfg.Lead).Sub(c.plan.Start)
	if eff >= c.test.Profile.Duration() {
		return nil, ""
	}
	_, _, sp, err := c.restSplit(eff, v)
	if err != nil {
		// No headroom elsewhere: keep the plan.
		return nil, ""
	}
	c.lastRebalance = now
	c.consider(v)
	return c.change(now, v, c.draft(eff, sp, sp.Excluded), fmt.Sprintf("moved load off %v (falling behind) from %s into the test", slow, eff.Round(time.Millisecond)))
}

// restSplit splits the test from eff on over the alive members that are
// not lost, with the capacity of slow nodes capped.
func (c *Coordinator) restSplit(eff time.Duration, v View) (rest scenarios.Profile, cands []Member, sp *Split, err error) {
	rest = scenarios.Profile{}.Splice(eff, c.test.Profile)
	exclude := map[string]bool{}
	for n := range c.lost {
		exclude[n] = true
	}
	cands = members(v, exclude)
	for i, m := range cands {
		if r, ok := c.slow[m.ID]; ok {
			cands[i].Info.Capacity = min(m.Info.Capacity, r)
		}
	}
	sp, err = SplitRate(rest, cands, c.test.Distribution, c.test.Seed+c.plan.Epoch)
	return rest, cands, sp, err
}

// draft is a split as a plan from eff, not yet numbered.
func (c *Coordinator) draft(eff time.Duration, sp *Split, excluded map[string]string) *Plan {
	return &Plan{TestID: c.test.ID, Scheduler: c.self, Start: c.plan.Start,
		Effective: eff, Shares: sp.Shares, Excluded: excluded, Unit: sp.Unit, LeaseTTL: c.plan.LeaseTTL}
}

// next makes p the next epoch's plan; nodes new to the test count as
// leased from now, and nodes it lowers are unsure until they follow it.
func (c *Coordinator) next(now time.Time, p *Plan) *Plan {
	p.Epoch = c.plan.Epoch + 1
	p.Scheduler, p.Start, p.LeaseTTL = c.self, c.plan.Start, c.plan.LeaseTTL
	for _, s := range c.plan.Shares {
		nb, _ := p.Share(s.Node)
		if below(nb.Segments, s.Segments, p.Effective) {
			c.unsure[s.Node] = now.Add(c.cfg.LeaseTTL + c.cfg.Margin)
		}
	}
	c.plan = p
	c.issue(now, p)
	for _, s := range p.Shares {
		if !c.nodes[s.Node] {
			c.nodes[s.Node] = true
			c.lastLeased[s.Node] = now
		}
		if _, ok := c.shared[s.Node]; !ok {
			c.shared[s.Node] = now
		}
	}
	return p
}

// inTouch: n counts towards the majority. Once it was in the test under
// this scheduler for Contact, it must have been heard from within Contact
// (every node that follows a test reports at least once a second), and
// follow one of this scheduler's plans: a node that follows another
// scheduler (two took the lead across a partial partition) counts for
// that one only.
func (c *Coordinator) inTouch(now time.Time, v View, n string) bool {
	if v.Heard == nil || n == c.self {
		return true
	}
	since, ok := c.shared[n]
	if !ok {
		c.shared[n] = now
		return true
	}
	if now.Sub(since) < c.cfg.Contact {
		return true
	}
	d, ok := v.Following[n]
	return now.Sub(v.Heard[n]) <= c.cfg.Contact && ok && !c.issued[d].IsZero()
}

// issue notes a plan this scheduler made, keeping the latest few.
func (c *Coordinator) issue(now time.Time, p *Plan) {
	const keep = 16
	if len(c.issued) >= keep {
		var old [32]byte
		first := true
		for d, at := range c.issued {
			if first || at.Before(c.issued[old]) {
				old, first = d, false
			}
		}
		delete(c.issued, old)
	}
	c.issued[p.Digest()] = now
}

// expired: n is lost and its last lease has run out, with the margin.
func (c *Coordinator) expired(now time.Time, n string) bool {
	_, gone := c.lost[n]
	return gone && now.After(c.lastLeased[n].Add(c.cfg.LeaseTTL+c.cfg.Margin))
}

// change moves the test from the current plan to b. Shares that go down
// and shares that go up cannot switch at one instant: a node that misses
// the plan, or reads it late, or whose scheduler was cut off from it,
// keeps its old, higher share while the others already send their new
// ones, and the fleet goes over the test's rate. So a change that both
// raises a share and lowers one that may still be sent goes in two steps:
// first a plan that only lowers (each node's share is the lower of its old
// and its new one), then, once every node it lowers reports following it
// (or is lost with its lease run out), b itself. A scheduler cut off from
// the fleet hears nobody, so it never takes the second step.
func (c *Coordinator) change(now time.Time, v View, b *Plan, note string) (*Plan, string) {
	c.raise = nil
	a := c.plan
	wait := map[string]time.Time{}
	raises := false
	for _, s := range b.Shares {
		old, _ := a.Share(s.Node)
		raises = raises || below(old.Segments, s.Segments, b.Effective)
	}
	cur := a.Digest()
	for n, until := range c.unsure {
		if now.After(until) || v.Following[n] == cur {
			delete(c.unsure, n)
		} else if !c.expired(now, n) {
			wait[n] = until
		}
	}
	for _, s := range a.Shares {
		if c.expired(now, s.Node) {
			continue
		}
		nb, _ := b.Share(s.Node)
		if below(nb.Segments, s.Segments, b.Effective) {
			wait[s.Node] = time.Time{}
		}
	}
	if !raises || len(wait) == 0 {
		return c.next(now, b), note
	}
	first := c.next(now, lowerStep(a, b))
	c.raise = &heldRaise{plan: b, lower: first.Digest(), wait: wait, note: note}
	return first, fmt.Sprintf("%s; first %v lower their shares (or follow this plan), the others raise theirs once they follow that", note, sortedKeys(wait))
}

func sortedKeys(m map[string]time.Time) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// raiseHeld takes the second step of a change once every node it waits
// for follows the first (or is lost, its lease run out).
func (c *Coordinator) raiseHeld(now time.Time, v View) (*Plan, string) {
	r := c.raise
	for n, until := range r.wait {
		if d, ok := v.Following[n]; !(ok && d == r.lower) && !c.expired(now, n) && (until.IsZero() || !now.After(until)) {
			return nil, ""
		}
	}
	c.raise = nil
	// The lowered shares apply from r.plan.Effective, and the nodes that
	// lower follow them: the raise may apply from then too, with a moment
	// to reach the nodes that raise (one that reads it late starts late).
	eff := max(r.plan.Effective, now.Add(c.cfg.Margin).Sub(c.plan.Start))
	if eff >= c.test.Profile.Duration() {
		return nil, ""
	}
	p := *r.plan
	p.Effective = eff
	return c.next(now, &p), r.note + fmt.Sprintf(" (raised from %s, once %v followed the first step)", eff.Round(time.Millisecond), sortedKeys(r.wait))
}

// lowerStep is the first step from a to b: from b.Effective each node
// sends the lower of its two shares (nothing, for a node in only one).
func lowerStep(a, b *Plan) *Plan {
	p := *b
	p.Shares = nil
	for _, s := range a.Shares {
		nb, ok := b.Share(s.Node)
		if !ok {
			continue
		}
		segs := minSegments(s.Segments, nb.Segments, b.Effective)
		if len(segs) == 0 {
			continue
		}
		s.Segments = segs
		p.Shares = append(p.Shares, s)
	}
	return &p
}
