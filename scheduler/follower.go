package scheduler

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/loadswarm/loadswarm/scenarios"
)

// FollowerConfig tunes one node's side of a test.
type FollowerConfig struct {
	// LeaseTTL is the lease length assumed when a plan carries none.
	// Default 3s (the coordinator's default).
	LeaseTTL time.Duration
	// GiveUpAfter is how long a paused share waits for a lease before it
	// gives up for good, so that its scheduler moves it. Default: twice the
	// plan's lease TTL.
	GiveUpAfter time.Duration
	// MaxStartLead is how far ahead of its arrival a first plan may set the
	// test's start. Default 1m: a plan that starts later is refused.
	MaxStartLead time.Duration
	// ResumeLead is how far ahead of now a share starts when it begins late,
	// resumes, or changes mid-test, so that no arrival already due is sent
	// in a burst to catch up. Default 50ms.
	ResumeLead time.Duration
	// FirstPlanWait is how long the follower waits for a first plan from
	// the node it ranks first; after that, a first plan from any member
	// that accepted the test is followed (the first may have frozen, or
	// may never plan). Default 8s.
	FirstPlanWait time.Duration
}

// DefaultFollowerConfig returns the defaults.
func DefaultFollowerConfig() FollowerConfig {
	return FollowerConfig{LeaseTTL: 3 * time.Second, MaxStartLead: time.Minute, ResumeLead: 50 * time.Millisecond, FirstPlanWait: 8 * time.Second}
}

// Validate reports every bad field.
func (c FollowerConfig) Validate() error {
	var errs []error
	if c.LeaseTTL <= 0 || c.LeaseTTL > time.Minute {
		errs = append(errs, fmt.Errorf("follower: lease TTL %s must be in (0, 1m]", c.LeaseTTL))
	}
	if c.GiveUpAfter < 0 || c.MaxStartLead <= 0 || c.ResumeLead < 0 || c.FirstPlanWait <= 0 {
		errs = append(errs, errors.New("follower: give-up delay and resume lead must be >= 0, max start lead and first plan wait > 0"))
	}
	return errors.Join(errs...)
}

// FollowedTest is what a follower knows of its test: the test as its
// submitter signed it, and this node's part in it.
type FollowedTest struct {
	ID        string
	Profile   scenarios.Profile // the whole test's rate: no plan may exceed it
	Submitter string            // the peer id that signed the test: it may stop it
	Self      string            // this node's peer id
	// Declined says why this node declined the test; a declined node takes
	// no share whatever a plan says.
	Declined string
}

// InputKind says what happened.
type InputKind int

// What a follower is told.
const (
	InTick        InputKind = iota // time passed (the driver ticks ~10 times a second)
	InPlan                         // a plan arrived from From (on the topic, or fetched from From)
	InLease                        // a lease arrived from From
	InStop                         // From asks to stop the test ("" : this node's own operator)
	InRunEnded                     // this node's run of its share returned
	InFetchFailed                  // the plan fetch asked for by ActFetch failed
)

// FollowView is the fleet as the follower's node sees it at one step.
type FollowView struct {
	// Ranked is the test's members that accepted it and are alive in this
	// node's view, best first (see RankFor): Ranked[0] is who this node
	// expects to schedule the test.
	Ranked []string
	// Free is the rate this node can still give this test (its capacity
	// less the shares of its other tests), in arrivals per second.
	Free float64
	// Following holds, per plan digest, the nodes that report (in their
	// signed results) that they follow that plan. A node that joined a
	// test late follows, as its first plan, one that a majority of its
	// shareholders follow: it cannot tell otherwise which of two valid
	// plans is the test's.
	Following map[[32]byte][]string
}

// Input is one thing that happened, with the view at that moment.
type Input struct {
	Kind   InputKind
	From   string // the sender, proven by its signature
	Plan   *Plan  // InPlan
	Lease  *Lease // InLease
	Reason string // InStop
	View   FollowView
}

// ActionKind says what the driver must do.
type ActionKind int

// What a follower asks of its driver. The run of a share is held open until
// ActRelease: a share that is paused, or that a new plan takes away, may
// come back while the test lasts.
const (
	ActStart    ActionKind = iota + 1 // start the run: Profile from Plan.Start with Seed, not past Deadline
	ActUpdate                         // the run's profile is now Profile (the past unchanged)
	ActDeadline                       // the run sends no arrival at or after Deadline (the lease's end)
	ActPause                          // the lease ran out: Profile has no arrivals from now on
	ActResume                         // a lease came back: Profile takes the share up again from a moment ahead
	ActRelease                        // the test is over: let the run end once its profile is done
	ActGiveUp                         // the share ends for good (Reason): tell the test, so that it moves
	ActStop                           // the test is stopped (Reason, by From): end the run at once
	ActFetch                          // ask From for its current plan: a lease named an epoch not seen here
	ActRefused                        // a message was refused (Reason): log it
	ActNote                           // something worth a log line (Reason)
)

// Action is one thing to do.
type Action struct {
	Kind     ActionKind
	Profile  scenarios.Profile
	Plan     *Plan
	Seed     uint64
	Deadline time.Time
	From     string
	Reason   string
}

func (a Action) String() string {
	switch a.Kind {
	case ActStart:
		return fmt.Sprintf("start %s", profileString(a.Profile))
	case ActUpdate:
		return fmt.Sprintf("update %s", profileString(a.Profile))
	case ActDeadline:
		return "deadline"
	case ActPause:
		return fmt.Sprintf("pause %s", profileString(a.Profile))
	case ActResume:
		return fmt.Sprintf("resume %s", profileString(a.Profile))
	case ActRelease:
		return "release"
	case ActGiveUp:
		return "give up: " + a.Reason
	case ActStop:
		return "stop: " + a.Reason
	case ActFetch:
		return "fetch from " + a.From
	case ActRefused:
		return "refused: " + a.Reason
	case ActNote:
		return "note: " + a.Reason
	}
	return fmt.Sprintf("action(%d)", int(a.Kind))
}

// profileString prints a profile's rates segment by segment, compactly:
// "0-2s:0 2-10s:50".
func profileString(p scenarios.Profile) string {
	if p.Duration() == 0 {
		return "none"
	}
	var b []byte
	for i, s := range p.Segments() {
		if i > 0 {
			b = append(b, ' ')
		}
		rate := fmt.Sprintf("%g", s.From)
		if s.To != s.From {
			rate += fmt.Sprintf("..%g", s.To)
		}
		b = fmt.Appendf(b, "%s-%s:%s", s.Start, s.Start+s.Dur, rate)
	}
	return string(b)
}

// Follower is one node's side of one test: which plan it follows, whether
// its share may send (its lease), and when it pauses, resumes, gives up or
// stops. It is the other half of Coordinator and, like it, a state machine
// that does no I/O and reads no clock: the driver feeds it what happened
// (Step) and carries out the actions it returns. Not safe for concurrent
// use.
//
// Its rules keep the no-overshoot guarantee on this node, whatever any other
// member says:
//   - A plan is followed only if it fits the test as signed (at every
//     instant the shares add up to no more than the test's rate) and this
//     node's share fits what it has free; a plan that moves the test's
//     start is refused.
//   - The first plan must come from the node this one ranks first; later
//     ones from the scheduler followed, or, once that one is gone (not in
//     the view, or silent for half a lease), from another member that
//     accepted the test. A same-epoch plan from another scheduler (two
//     takeovers at once) wins only if its sender ranks before the one
//     followed.
//   - A scheduler that sends two different plans for one epoch is caught
//     lying: its plans and leases are refused from then on, and a share it
//     leads pauses at once.
//   - The share sends only while leased. A lease counts from when it was
//     sent, as far as this node can tell (the smallest delay seen from its
//     scheduler), not from when it was read: a node that was frozen does
//     not take the leases that queued up meanwhile for fresh ones.
//   - After a pause, a late start or a change, arrivals already due are
//     not made up: the share goes on from ResumeLead ahead.
//   - Only the test's submitter or its scheduler may stop it; this node's
//     own operator may end this node's share.
type Follower struct {
	cfg  FollowerConfig
	test FollowedTest

	plan        *Plan
	pending     map[string]*Plan // per scheduler: its latest plan not acceptable yet, kept until the view agrees
	lastContact time.Time        // the latest plan or lease of the scheduler followed, when it was sent
	seen        map[epochKey][32]byte
	liars       map[string]string        // schedulers caught equivocating, and how
	offset      map[string]time.Duration // per scheduler: the smallest (receipt - sent) of its leases
	sharers     map[string]bool          // every node with a share in a plan followed

	share    *Share            // this node's share in the plan followed; nil: none
	profile  scenarios.Profile // what the run follows
	started  bool              // ActStart was given
	running  bool              // started and not yet ended
	released bool              // ActRelease was given
	leaseEnd time.Time
	pausedAt time.Time // zero: not paused
	gaveUp   string
	stopped  string
	fetchAt  time.Time // when the last fetch was asked for (zero: none in flight)
	created  time.Time // the first step's time
}

type epochKey struct {
	scheduler string
	epoch     uint64
}

// NewFollower starts following a test on this node.
func NewFollower(cfg FollowerConfig, t FollowedTest) (*Follower, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if t.ID == "" || t.Self == "" {
		return nil, errors.New("follower: test id and self are required")
	}
	return &Follower{cfg: cfg, test: t, seen: map[epochKey][32]byte{}, liars: map[string]string{},
		offset: map[string]time.Duration{}, sharers: map[string]bool{}, pending: map[string]*Plan{}}, nil
}

// Plan is the plan followed (nil before the first).
func (f *Follower) Plan() *Plan { return f.plan }

// Leader is the scheduler of the plan followed ("" before the first).
func (f *Follower) Leader() string {
	if f.plan == nil {
		return ""
	}
	return f.plan.Scheduler
}

// Share is this node's share in the plan followed.
func (f *Follower) Share() (Share, bool) {
	if f.share == nil {
		return Share{}, false
	}
	return *f.share, true
}

// Running reports whether this node's run is live.
func (f *Follower) Running() bool { return f.running }

// Paused reports whether the share waits for a lease.
func (f *Follower) Paused() bool { return !f.pausedAt.IsZero() }

// GaveUp says why the share ended for good ("" while it goes on).
func (f *Follower) GaveUp() string { return f.gaveUp }

// Stopped says why the test was stopped ("" while it goes on).
func (f *Follower) Stopped() string { return f.stopped }

// LeaseEnd is when the share's lease runs out.
func (f *Follower) LeaseEnd() time.Time { return f.leaseEnd }

// SilentFor is how long the scheduler followed has sent nothing (as far as
// this node can tell when its last plan or lease was sent); 0 without a
// plan.
func (f *Follower) SilentFor(now time.Time) time.Duration {
	if f.plan == nil {
		return 0
	}
	return max(now.Sub(f.lastContact), 0)
}

// Liars are the schedulers caught sending two plans for one epoch.
func (f *Follower) Liars() map[string]string { return f.liars }

// Sharers lists every node that had a share in a plan followed, sorted.
func (f *Follower) Sharers() []string {
	out := make([]string, 0, len(f.sharers))
	for id := range f.sharers {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

// Committed is the highest rate this node's share may still reach from now
// on: what it holds of its capacity for this test.
func (f *Follower) Committed(now time.Time) float64 {
	if f.plan == nil || f.share == nil || f.gaveUp != "" || f.stopped != "" {
		return 0
	}
	from := max(now.Sub(f.plan.Start), 0)
	return peakFrom(f.share.Profile(), from)
}

// Step feeds the follower one input at now and returns what to do, in order.
func (f *Follower) Step(now time.Time, in Input) []Action {
	if f.created.IsZero() {
		f.created = now
	}
	var out []Action
	switch in.Kind {
	case InTick:
		out = f.tick(now, in.View)
	case InPlan:
		out = f.onPlan(now, in.From, in.Plan, in.View)
	case InLease:
		out = f.onLease(now, in.From, in.Lease)
	case InStop:
		out = f.onStop(now, in.From, in.Reason, in.View)
	case InRunEnded:
		f.running = false
	case InFetchFailed:
		f.fetchAt = time.Time{}
	}
	return out
}

func (f *Follower) ttl() time.Duration {
	if f.plan != nil && f.plan.LeaseTTL > 0 {
		return f.plan.LeaseTTL
	}
	return f.cfg.LeaseTTL
}

func (f *Follower) over() bool { return f.stopped != "" }

func (f *Follower) tick(now time.Time, v FollowView) []Action {
	if f.over() {
		return nil
	}
	var out []Action
	if p := f.bestPending(now, v); p != nil {
		out = append(out, f.adopt(now, p, v)...)
	}
	if f.share != nil && f.running && f.gaveUp == "" && f.pausedAt.IsZero() && !f.leaseEnd.IsZero() && !now.Before(f.leaseEnd) {
		f.pausedAt = now
		f.profile = f.profile.Until(max(now.Sub(f.plan.Start), 0))
		out = append(out, Action{Kind: ActPause, Profile: f.profile, Reason: "lease expired"})
	}
	if !f.pausedAt.IsZero() && f.gaveUp == "" {
		after := f.cfg.GiveUpAfter
		if after <= 0 {
			after = 2 * f.ttl()
		}
		if now.Sub(f.pausedAt) > after {
			f.gaveUp = fmt.Sprintf("no lease for %s", after)
			out = append(out, Action{Kind: ActGiveUp, Reason: f.gaveUp})
		}
	}
	if f.running && !f.released && f.plan != nil && !now.Before(f.plan.Start.Add(f.test.Profile.Duration())) {
		f.released = true
		out = append(out, Action{Kind: ActRelease})
	}
	return out
}

// onPlan checks a plan and follows it, holds it back, or refuses it.
func (f *Follower) onPlan(now time.Time, from string, p *Plan, v FollowView) []Action {
	if f.over() || p == nil {
		return nil
	}
	if err := f.check(now, from, p); err != nil {
		out := []Action{{Kind: ActRefused, From: from, Reason: "plan: " + err.Error()}}
		if _, lied := f.liars[from]; lied && from == f.Leader() && f.leaseEnd.After(now) {
			// The scheduler followed lied: the share stops sending now and
			// pauses; a scheduler that takes over may resume it.
			f.leaseEnd = now
			out = append(out, Action{Kind: ActDeadline, Deadline: now})
		}
		return out
	}
	if f.plan != nil && p.Scheduler == f.plan.Scheduler && p.Epoch == f.plan.Epoch {
		f.lastContact = latest(f.lastContact, now)
		return nil // the same plan again (fetched, or relayed)
	}
	if !f.acceptable(now, p, v) {
		f.hold(p)
		return nil
	}
	return f.adopt(now, p, v)
}

// hold keeps a plan that may become acceptable when the view catches up:
// the latest of each scheduler, a bounded few.
func (f *Follower) hold(p *Plan) {
	if f.plan != nil && p.Epoch < f.plan.Epoch {
		return
	}
	if cur, ok := f.pending[p.Scheduler]; ok && cur.Epoch >= p.Epoch {
		return
	}
	if _, ok := f.pending[p.Scheduler]; !ok && len(f.pending) >= 16 {
		var low string
		for s, q := range f.pending {
			if low == "" || q.Epoch < f.pending[low].Epoch {
				low = s
			}
		}
		if f.pending[low].Epoch > p.Epoch {
			return
		}
		delete(f.pending, low)
	}
	f.pending[p.Scheduler] = p
}

// bestPending is the held plan to follow now, if any: the highest epoch
// among the acceptable ones, ties to the sender ranked first.
func (f *Follower) bestPending(now time.Time, v FollowView) *Plan {
	var best *Plan
	for _, p := range f.pending {
		if !f.acceptable(now, p, v) {
			continue
		}
		if best == nil || p.Epoch > best.Epoch || p.Epoch == best.Epoch && rankOf(v, p.Scheduler) < rankOf(v, best.Scheduler) {
			best = p
		}
	}
	return best
}

func rankOf(v FollowView, id string) int {
	if i := slices.Index(v.Ranked, id); i >= 0 {
		return i
	}
	return math.MaxInt
}

// check refuses a plan that is malformed, forged, from a liar, or that
// does not fit the test as signed.
func (f *Follower) check(now time.Time, from string, p *Plan) error {
	if err := p.Validate(); err != nil {
		return err
	}
	if p.TestID != f.test.ID {
		return fmt.Errorf("for test %q, not %q", p.TestID, f.test.ID)
	}
	if p.Scheduler != from {
		return fmt.Errorf("in the name of %s, signed by %s", p.Scheduler, from)
	}
	if why, ok := f.liars[from]; ok {
		return fmt.Errorf("%s is no longer followed: %s", from, why)
	}
	if f.plan != nil && !p.Start.Equal(f.plan.Start) {
		return fmt.Errorf("it moves the test's start from %s to %s", f.plan.Start.Format(time.RFC3339Nano), p.Start.Format(time.RFC3339Nano))
	}
	if f.plan == nil && p.Start.After(now.Add(f.cfg.MaxStartLead)) {
		return fmt.Errorf("it starts the test %s from now, over the %s limit", p.Start.Sub(now).Round(time.Millisecond), f.cfg.MaxStartLead)
	}
	if err := CheckPlan(p, f.test.Profile); err != nil {
		return err
	}
	// Two valid plans for one epoch from one scheduler: it told different
	// nodes different things. Nothing it says is followed any more.
	d := p.Digest()
	k := epochKey{p.Scheduler, p.Epoch}
	if prev, ok := f.seen[k]; ok && prev != d {
		f.liars[from] = fmt.Sprintf("it sent two different plans for epoch %d", p.Epoch)
		delete(f.pending, from)
		return errors.New(f.liars[from])
	}
	f.remember(k, d)
	return nil
}

// remember keeps the digest of each (scheduler, epoch) seen, bounded: the
// oldest epochs go first.
func (f *Follower) remember(k epochKey, d [32]byte) {
	const most = 256
	f.seen[k] = d
	if len(f.seen) <= most {
		return
	}
	var oldest epochKey
	first := true
	for k := range f.seen {
		if first || k.epoch < oldest.epoch {
			oldest, first = k, false
		}
	}
	delete(f.seen, oldest)
}

// acceptable applies the leadership rules to a plan that passed check.
func (f *Follower) acceptable(now time.Time, p *Plan, v FollowView) bool {
	if _, lied := f.liars[p.Scheduler]; lied {
		return false
	}
	rank := slices.Index(v.Ranked, p.Scheduler)
	switch {
	case f.plan == nil:
		return rank == 0 || rank > 0 && now.Sub(f.created) > f.cfg.FirstPlanWait || vouched(p, v)
	case p.Epoch > f.plan.Epoch:
		if p.Scheduler == f.plan.Scheduler {
			return true
		}
		return rank >= 0 && f.leaderGone(now, v)
	case p.Epoch == f.plan.Epoch && p.Scheduler != f.plan.Scheduler:
		// Two nodes took over at once (one falsely suspected the other):
		// the one ranked first wins, everywhere.
		cur := slices.Index(v.Ranked, f.plan.Scheduler)
		return rank >= 0 && (cur < 0 || rank < cur)
	}
	return false
}

// vouched: a majority of the plan's shareholders report following it.
func vouched(p *Plan, v FollowView) bool {
	nodes := v.Following[p.Digest()]
	if len(nodes) == 0 {
		return false
	}
	n := 0
	for _, id := range nodes {
		if _, ok := p.Share(id); ok {
			n++
		}
	}
	return 2*n > len(p.Shares)
}

// leaderGone: the scheduler followed is not in the view, or has sent
// nothing for half a lease (failure detection lags by a second or two, and
// waiting for it would let every lease run out at once). A liar is gone.
func (f *Follower) leaderGone(now time.Time, v FollowView) bool {
	if _, lied := f.liars[f.plan.Scheduler]; lied {
		return true
	}
	return !slices.Contains(v.Ranked, f.plan.Scheduler) || now.Sub(f.lastContact) > f.ttl()/2
}

// adopt follows p from now.
func (f *Follower) adopt(now time.Time, p *Plan, v FollowView) []Action {
	var out []Action
	for s, q := range f.pending {
		if q.Epoch < p.Epoch || s == p.Scheduler {
			delete(f.pending, s)
		}
	}
	if old := f.Leader(); old != p.Scheduler {
		if old != "" {
			out = append(out, Action{Kind: ActNote, Reason: fmt.Sprintf("following %s from epoch %d (was %s)", p.Scheduler, p.Epoch, old)})
		}
		f.lastContact = now // contact with the new scheduler, not the old one's
	} else {
		f.lastContact = latest(f.lastContact, now)
	}
	f.plan = p
	for _, s := range p.Shares {
		f.sharers[s.Node] = true
	}
	sh, mine := p.Share(f.test.Self)
	if mine && f.test.Declined != "" {
		out = append(out, Action{Kind: ActNote, Reason: "the plan gives a share to this node, which declined the test: ignored"})
		mine = false
	}
	elapsed := now.Sub(p.Start)
	if mine && f.gaveUp == "" {
		if peak := peakFrom(sh.Profile(), max(p.Effective, elapsed)); peak > v.Free+rateSlack(peak) {
			f.gaveUp = fmt.Sprintf("the plan gives this node %s/s but it has %s/s free", fmtRate(peak), fmtRate(max(v.Free, 0)))
			f.share = nil
			f.profile = f.profile.Until(max(elapsed, 0))
			if f.running {
				out = append(out, Action{Kind: ActUpdate, Profile: f.profile})
			}
			return append(out, Action{Kind: ActGiveUp, Reason: f.gaveUp})
		}
	}
	if mine && f.gaveUp != "" {
		mine = false
	}
	if !mine {
		f.share = nil
		if f.running {
			at := max(p.Effective, elapsed)
			f.profile = f.profile.Until(max(at, 0))
			out = append(out, Action{Kind: ActUpdate, Profile: f.profile})
		}
		return out
	}
	prev := f.share
	f.share = &sh
	if f.leaseEnd.IsZero() {
		// The first plan naming this node is its first lease. Later plans
		// renew nothing: only leases do, and a scheduler without a
		// majority sends none (its own takeover plan must not keep it
		// going).
		ttl := p.LeaseTTL
		if ttl <= 0 {
			ttl = f.cfg.LeaseTTL
		}
		f.leaseEnd = now.Add(ttl)
	}
	switch {
	case !f.started:
		f.profile = sh.Profile()
		if elapsed > 0 {
			// A late start (a plan that came after the start, or a share
			// given mid-test): arrivals already due are not made up.
			f.profile = scenarios.Profile{}.Splice(elapsed+f.cfg.ResumeLead, f.profile)
		}
		f.started, f.running = true, true
		out = append(out, Action{Kind: ActStart, Plan: p, Profile: f.profile, Seed: sh.Seed, Deadline: f.leaseEnd})
	case !f.pausedAt.IsZero():
		// Paused: the new share starts when a lease resumes the run.
	case f.running && prev != nil && sameShare(*prev, sh):
		// A takeover keeps the shares: nothing changes for the run.
	case f.running:
		at := max(p.Effective, elapsed+f.cfg.ResumeLead)
		f.profile = f.profile.Splice(at, sh.Profile())
		out = append(out, Action{Kind: ActUpdate, Profile: f.profile})
	default:
		// The run is over (the test ended, or it failed): this node cannot
		// take the share, so it says so and the share moves.
		f.gaveUp = "this node's run of the test has ended"
		f.share = nil
		out = append(out, Action{Kind: ActGiveUp, Reason: f.gaveUp})
	}
	return out
}

// onLease renews this node's lease from its scheduler.
func (f *Follower) onLease(now time.Time, from string, l *Lease) []Action {
	if f.over() || l == nil {
		return nil
	}
	switch {
	case l.TestID != f.test.ID || l.Scheduler != from:
		return []Action{{Kind: ActRefused, From: from, Reason: fmt.Sprintf("lease for test %q in the name of %s", l.TestID, l.Scheduler)}}
	case l.TTL <= 0 || l.TTL > time.Minute:
		return []Action{{Kind: ActRefused, From: from, Reason: fmt.Sprintf("lease of %s: must be in (0, 1m]", l.TTL)}}
	}
	if _, lied := f.liars[from]; lied {
		return nil
	}
	if f.plan == nil || l.Epoch > f.plan.Epoch {
		// A plan was missed (published before this node joined the
		// topic, or this node joined the test late): ask for it, once at
		// a time.
		if f.fetchAt.IsZero() || now.Sub(f.fetchAt) > f.cfg.LeaseTTL {
			f.fetchAt = now
			return []Action{{Kind: ActFetch, From: from}}
		}
		return nil
	}
	if l.Epoch < f.plan.Epoch || from != f.plan.Scheduler {
		return nil
	}
	sent := f.sentAt(now, from, l.Sent)
	f.lastContact = latest(f.lastContact, sent)
	if !l.Holds(f.test.Self) || f.share == nil || f.gaveUp != "" {
		return nil
	}
	end := sent.Add(l.TTL)
	if !end.After(f.leaseEnd) || !end.After(now) {
		return nil // an older lease, or one that ran out already
	}
	f.leaseEnd = end
	out := []Action{{Kind: ActDeadline, Deadline: end}}
	if !f.pausedAt.IsZero() && now.Before(end) {
		f.pausedAt = time.Time{}
		at := max(now.Sub(f.plan.Start), 0) + f.cfg.ResumeLead
		f.profile = f.profile.Splice(at, f.share.Profile())
		out = append(out, Action{Kind: ActResume, Profile: f.profile})
	}
	return out
}

// sentAt is when a message from a scheduler was sent, in this node's
// clock: its send time moved by the smallest (receipt - sent) this node has
// seen from it (clock offset plus the quickest delivery). A message read
// late (this node was frozen, or it sat in a queue) thus counts from when
// it was sent; clocks of different hosts need not agree. A message without
// a send time counts from its receipt.
func (f *Follower) sentAt(now time.Time, from string, sent time.Time) time.Time {
	if sent.IsZero() {
		return now
	}
	d := now.Sub(sent)
	off, ok := f.offset[from]
	if !ok || d < off {
		if len(f.offset) >= 64 {
			clear(f.offset) // bounded: a test has a handful of schedulers
		}
		f.offset[from], off = d, d
	}
	return sent.Add(off)
}

// onStop ends the test if the sender may stop it.
func (f *Follower) onStop(now time.Time, from, reason string, v FollowView) []Action {
	if f.over() {
		return nil
	}
	if from == "" {
		// This node's operator ends this node's share; the test goes on
		// elsewhere, and the share moves.
		if f.gaveUp != "" {
			return nil
		}
		f.gaveUp = reason
		f.share = nil
		var out []Action
		if f.running && f.plan != nil {
			f.profile = f.profile.Until(max(now.Sub(f.plan.Start), 0))
			out = append(out, Action{Kind: ActUpdate, Profile: f.profile})
		}
		return append(out, Action{Kind: ActGiveUp, Reason: reason})
	}
	allowed := from == f.test.Submitter || from == f.Leader() || (f.plan == nil && len(v.Ranked) > 0 && from == v.Ranked[0])
	if !allowed {
		return []Action{{Kind: ActRefused, From: from, Reason: "stop: only the test's submitter or its scheduler may stop it"}}
	}
	f.stopped = reason
	f.share = nil
	return []Action{{Kind: ActStop, From: from, Reason: reason}}
}

// CheckPlan checks that a plan fits its test: from the plan's Effective
// offset on, its shares add up at every instant to no more than the test's
// rate (split rounding aside), and nothing is planned past the test's end.
// Profiles are piecewise linear, so a sweep over every breakpoint of every
// share checks the whole timeline exactly: between two breakpoints the
// difference is linear and peaks at an end.
func CheckPlan(p *Plan, test scenarios.Profile) error {
	type event struct {
		at     time.Duration
		dA, dS float64 // change of the sum's intercept and slope (per second)
	}
	var evs []event
	add := func(g scenarios.Segment, sign float64) {
		if g.Dur <= 0 {
			return
		}
		slope := (g.To - g.From) / g.Dur.Seconds()
		a := g.From - slope*g.Start.Seconds()
		evs = append(evs, event{at: g.Start, dA: sign * a, dS: sign * slope}, event{at: g.Start + g.Dur, dA: -sign * a, dS: -sign * slope})
	}
	for _, s := range p.Shares {
		for _, g := range s.Segments {
			add(scenarios.Segment{Start: time.Duration(g.Start), Dur: time.Duration(g.Dur), From: g.From, To: g.To}, 1)
		}
	}
	peak := 0.0
	for _, g := range test.Segments() {
		add(g, -1)
		peak = max(peak, g.From, g.To)
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].at < evs[j].at })
	slack := 0.0015 + 1e-9*peak*float64(len(p.Shares)+1)
	var a, s float64
	for i := 0; i < len(evs); {
		at := evs[i].at
		for ; i < len(evs) && evs[i].at == at; i++ {
			a += evs[i].dA
			s += evs[i].dS
		}
		if i == len(evs) {
			break
		}
		next := evs[i].at
		if next <= p.Effective {
			continue
		}
		from := max(at, p.Effective)
		for _, t := range []time.Duration{from, next} {
			if over := a + s*t.Seconds(); over > slack {
				return fmt.Errorf("its shares add up to %s/s more than the test's rate at %s into the test", fmtRate(over), t.Round(time.Millisecond))
			}
		}
	}
	return nil
}

// rateSlack is what the split's rounding may leave over a rate: its unit is
// 0.001/s at most, plus float error.
func rateSlack(rate float64) float64 { return 0.001 + 1e-9*math.Abs(rate) }

// peakFrom is a profile's highest rate from t on.
func peakFrom(p scenarios.Profile, t time.Duration) float64 {
	var m float64
	for _, g := range p.Segments() {
		end := g.Start + g.Dur
		if end <= t {
			continue
		}
		from := g.From
		if g.Start < t {
			from = p.RateAt(t)
		}
		m = max(m, from, g.To)
	}
	return m
}

// sameShare: the same rates over the same segments.
func sameShare(a, b Share) bool {
	return slices.Equal(a.Segments, b.Segments)
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
