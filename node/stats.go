package node

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/loadswarm/loadswarm/scenarios"
	"github.com/loadswarm/loadswarm/scheduler"
	"github.com/loadswarm/loadswarm/storage"
	"github.com/loadswarm/loadswarm/swarm"
)

// onStats takes another node's stats for a test (from the reader
// goroutine): live progress, and a replica when this node is one of the
// two that keep the sender's seconds.
func (t *loadTest) onStats(from string, s *Stats) {
	if t.reg.deafToStats.Load() {
		return
	}
	t.mu.Lock()
	shared := t.sharers[from]
	if len(s.Plan) == 32 {
		// Which plan the sender follows counts even before this node
		// knows the plan (it joined late): the follower weighs it only
		// for nodes the plan gives a share.
		t.vouchLocked(from, [32]byte(s.Plan))
	}
	t.mu.Unlock()
	heartbeat := len(s.Second) == 0 && !s.Done && s.Stopped == "" && len(s.Samples) == 0
	if !shared && heartbeat {
		return // a member without a share says it is there, and which plan it follows
	}
	if !shared {
		// Only nodes with a share report results: anything else would be
		// counted into the test's numbers.
		t.logRefusal(from, "stats from a node without a share in this test")
		return
	}
	if len(s.Name) > 256 || len(s.Region) > 256 || len(s.Stopped) > 4096 {
		t.logRefusal(from, "stats with an oversized field")
		return
	}
	var sec *storage.Second
	if len(s.Second) > 0 {
		var err error
		if sec, err = storage.DecodeSecond(s.Second); err != nil {
			t.logRefusal(from, "bad stats second: "+err.Error())
			return
		}
		if last := t.lastSecond(); sec.T < 0 || sec.T > last {
			t.logRefusal(from, fmt.Sprintf("stats for second %d, outside the test's 0..%d", sec.T, last))
			return
		}
	}
	t.mu.Lock()
	t.record(from, s, sec)
	t.mu.Unlock()
	for _, h := range replicaHolders(t.id, from, t.reg.view()) {
		if h != t.reg.self {
			continue
		}
		if sec != nil {
			t.keep(from, sec.T, s.Second) // the bytes as received: encoded once, by their origin
		}
		if len(s.Samples) > 0 {
			if err := t.reg.n.store.PutSamples(t.id, from, s.Samples); err != nil {
				t.log.Warn("could not store samples", "origin", from, "error", err)
			}
		}
	}
}

// vouchLocked notes that a node reports following a plan (by digest):
// its latest report only, one entry per sender (an authenticated peer), so
// neither the departed nor a liar can crowd out the others' reports.
func (t *loadTest) vouchLocked(from string, d [32]byte) {
	if _, known := t.vouch[from]; !known && len(t.vouch) >= maxVouchers {
		return
	}
	t.vouch[from] = d
	t.heard[from] = time.Now()
}

// maxVouchers bounds the nodes whose followed plan a test keeps.
const maxVouchers = 10_000

// lastSecond is the last second a node may report: the test's end plus
// the time its slowest flow may take to drain.
func (t *loadTest) lastSecond() int64 {
	drain := t.sc.Timeout*time.Duration(len(t.sc.Steps)) + 10*time.Second
	return int64((t.sc.Profile.Duration() + drain) / time.Second)
}

// record keeps a node's stats; the caller holds t.mu.
func (t *loadTest) record(from string, s *Stats, sec *storage.Second) {
	ns := t.node(from)
	if s.Name != "" {
		ns.Name = s.Name
	}
	if ns.Region == "" {
		ns.Region = s.Region // the plan's region wins when it names one
	}
	if s.StartSkew != 0 {
		ns.StartSkew = s.StartSkew
	}
	if s.Stopped != "" {
		if ns.Stopped == "" {
			t.eventLocked("stopped", fmt.Sprintf("%s stopped its share: %s", t.nameOfLocked(from), s.Stopped))
		}
		ns.Stopped = s.Stopped
	}
	if s.Done {
		ns.Done = true
	}
	res, ok := t.results[from]
	if !ok {
		res = storage.NewSeries()
		t.results[from] = res
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
			t.log.Warn("stats not merged", "from", from, "error", err)
			return
		}
		ns.LastT = max(ns.LastT, sec.T)
	}
}

// keep stores a second of origin's results, as encoded by origin (this
// node's own, or a replica).
func (t *loadTest) keep(origin string, sec int64, b []byte) {
	err := t.reg.n.store.PutSecondBytes(t.id, origin, sec, b)
	switch {
	case err == nil:
	case errors.Is(err, storage.ErrNoRoom):
		// The disk is nearly full: the store refuses before it fills
		// (no crash); say so once in a while, not every second.
		if last := t.noRoomLogged.Load(); time.Since(time.Unix(0, last)) > 30*time.Second {
			t.noRoomLogged.Store(time.Now().UnixNano())
			t.log.Error("results not stored: disk nearly full", "error", err)
		}
	default:
		t.log.Warn("could not store a second", "origin", origin, "t", sec, "error", err)
	}
}

// replicaHolders are the nodes that keep replicas of origin's seconds: the
// first two in the test's ranking of the alive members, origin aside (the
// scheduler and the next in line).
func replicaHolders(testID, origin string, alive map[string]scheduler.Member) []string {
	ids := make([]string, 0, len(alive))
	for id := range alive {
		if id != origin {
			ids = append(ids, id)
		}
	}
	r := scheduler.Rank(testID, ids)
	return r[:min(2, len(r))]
}

// behindWindow is how many seconds in a row a node must drop arrivals to
// count as falling behind.
const behindWindow = 3

// behindLocked finds the nodes whose last behindWindow reported seconds
// all dropped arrivals (their generator cannot keep up: CPU-bound, or
// max_in_flight too small for the target's latency), with the arrival
// rate they did achieve.
func (t *loadTest) behindLocked(now time.Time) map[string]float64 {
	if t.plan == nil {
		return nil
	}
	recent := int64(now.Sub(t.plan.Start)/time.Second) - behindWindow - 2
	var out map[string]float64
	for id, res := range t.results {
		ns := t.node(id)
		if ns.Done || ns.Stopped != "" || ns.LastT < recent {
			continue
		}
		var arrivals int64
		behind := true
		for s := ns.LastT - behindWindow + 1; s <= ns.LastT && behind; s++ {
			sec, ok := res.Seconds[s]
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

// recordLocked is the test as the store keeps it.
func (t *loadTest) recordLocked() storage.TestRecord {
	rec := storage.TestRecord{ID: t.id, Name: t.sc.Name, Spec: t.body.Spec, Target: t.body.Target,
		Submitter: t.body.Name, State: t.state, Created: t.body.Created, Ended: t.ended, Reason: t.reason}
	if t.plan != nil {
		rec.Started = t.plan.Start
		rec.Epoch = t.plan.Epoch
		if b, err := encodePlan(t.plan); err == nil && len(b) <= storage.MaxPlanBytes {
			rec.Plan = b
		}
	}
	for id := range t.sharers {
		rec.Nodes = append(rec.Nodes, id)
	}
	sort.Strings(rec.Nodes)
	if b, err := swarm.EncodeBody(t.extraLocked()); err == nil && len(b) <= storage.MaxPlanBytes {
		rec.Extra = b
	}
	return rec
}

// recordExtra is what a node keeps with a test's record beyond storage's
// fields: each node's name and region as the test saw them, and the
// seconds it had a share in (first, last), so that a query knows what a
// node that is gone should have reported.
type recordExtra struct {
	Names   map[string]string   `cbor:"1,keyasint,omitempty"`
	Regions map[string]string   `cbor:"2,keyasint,omitempty"`
	Spans   map[string][2]int64 `cbor:"3,keyasint,omitempty"`
	// Done are the nodes whose run ended and said so: everything they had
	// was published, so nothing of theirs can be missing.
	Done map[string]bool `cbor:"4,keyasint,omitempty"`
	// Aborted is the abort threshold that stopped the test, if one did.
	Aborted string `cbor:"5,keyasint,omitempty"`
	// Env is the run's parameters with the secrets' values hidden, and
	// Secret their names: never a secret's value.
	Env    map[string]string `cbor:"6,keyasint,omitempty"`
	Secret []string          `cbor:"7,keyasint,omitempty"`
	// Figures are the key numbers of the test once it is over, for its
	// history (swarm tests --name).
	Figures *Figures `cbor:"8,keyasint,omitempty"`
}

// Figures are a finished test's key numbers, as this node's merged report
// had them when it retired the test (swarm results gives the exact ones).
type Figures struct {
	Status    string  `cbor:"1,keyasint" json:"status"`
	Requests  int64   `cbor:"2,keyasint" json:"requests"`
	ErrorRate float64 `cbor:"3,keyasint" json:"error_rate"`
	Achieved  float64 `cbor:"4,keyasint" json:"rate_achieved"`
	Target    float64 `cbor:"5,keyasint" json:"rate_target"`
	P50       float64 `cbor:"6,keyasint" json:"p50_ms"`
	P95       float64 `cbor:"7,keyasint" json:"p95_ms"`
	P99       float64 `cbor:"8,keyasint" json:"p99_ms"`
}

func figuresOf(r *FleetReport) *Figures {
	return &Figures{Status: r.Status, Requests: r.Requests, ErrorRate: r.ErrorRate, Achieved: r.Rate.Achieved,
		Target: r.Rate.Target, P50: r.Latency.P50, P95: r.Latency.P95, P99: r.Latency.P99}
}

func (t *loadTest) extraLocked() recordExtra {
	x := recordExtra{Names: map[string]string{}, Regions: map[string]string{}, Spans: map[string][2]int64{}, Done: map[string]bool{}, Aborted: t.aborted,
		Env: t.sc.PublicEnv(), Secret: t.sc.SecretNames}
	if t.final != nil {
		x.Figures = figuresOf(t.final)
	}
	for id := range t.sharers {
		x.Names[id] = t.nameOfLocked(id)
		if ns, ok := t.nodes[id]; ok {
			if ns.Region != "" {
				x.Regions[id] = ns.Region
			}
			if ns.Done {
				x.Done[id] = true
			}
		}
	}
	for id, sp := range t.spans {
		x.Spans[id] = sp
	}
	return x
}

// trackSpansLocked updates each node's span of seconds with a share when
// a new plan is followed: from the plan's Effective offset on, a node's
// share is the new plan's; a node without one stops there.
func (t *loadTest) trackSpansLocked(p *scheduler.Plan) {
	effLast := int64(math.Ceil(p.Effective.Seconds())) - 1 // the last second before Effective
	in := map[string]bool{}
	for _, s := range p.Shares {
		first, last, ok := shareSeconds(s.Profile(), p.Effective)
		if !ok {
			continue
		}
		in[s.Node] = true
		sp, had := t.spans[s.Node]
		if !had {
			t.spans[s.Node] = [2]int64{first, last}
			continue
		}
		t.spans[s.Node] = [2]int64{min(sp[0], first), max(min(sp[1], effLast), last)}
	}
	for id, sp := range t.spans {
		if !in[id] && sp[1] > effLast {
			t.spans[id] = [2]int64{sp[0], max(effLast, sp[0]-1)}
		}
	}
}

// shareSeconds is the first and last second of a profile with a positive
// rate from `from` on.
func shareSeconds(p scenarios.Profile, from time.Duration) (first, last int64, ok bool) {
	for _, g := range p.Segments() {
		end := g.Start + g.Dur
		if end <= from || (g.From <= 0 && g.To <= 0) {
			continue
		}
		a := max(g.Start, from)
		if !ok {
			first, ok = int64(a/time.Second), true
		}
		last = int64(math.Ceil(end.Seconds())) - 1
	}
	return first, last, ok
}

// save writes the test's record; call it without t.mu held.
func (t *loadTest) save() {
	t.mu.Lock()
	rec := t.recordLocked()
	t.mu.Unlock()
	if err := t.reg.n.store.PutTest(rec); err != nil {
		t.log.Warn("could not store the test record", "error", err)
	}
}
