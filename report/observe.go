package report

import (
	"encoding/hex"
	"math"
	"sort"
	"time"

	"github.com/loadswarm/loadswarm/scenarios"
	"github.com/loadswarm/loadswarm/scenarios/observe"
	"github.com/loadswarm/loadswarm/storage"
)

// LoadChange is a point where the planned rate starts to move, up or down,
// and where that move ends: a stage boundary, a ramp, a spike's rise.
type LoadChange struct {
	T    float64 `json:"t"`    // seconds since the test's start
	From float64 `json:"from"` // arrivals/s when it starts
	To   float64 `json:"to"`   // arrivals/s when the move ends
	End  float64 `json:"end"`  // seconds since the start, when the move ends
}

// Up reports whether the change raises the rate.
func (c LoadChange) Up() bool { return c.To > c.From }

// LoadChanges finds the moves of a profile: runs of segments (and jumps
// between them) going the same way; a flat segment ends a run. The start
// of the test is not a change, but a ramp from it is.
func LoadChanges(p scenarios.Profile) []LoadChange {
	const eps = 1e-9
	sign := func(d float64) int {
		switch {
		case d > eps:
			return 1
		case d < -eps:
			return -1
		}
		return 0
	}
	var out []LoadChange
	cur, dir := -1, 0 // the run being extended, its direction
	step := func(at, from, to, end float64) {
		d := sign(to - from)
		if d == 0 {
			cur, dir = -1, 0
			return
		}
		if cur >= 0 && d == dir {
			out[cur].To, out[cur].End = to, end
			return
		}
		out = append(out, LoadChange{T: at, From: from, To: to, End: end})
		cur, dir = len(out)-1, d
	}
	segs := p.Segments()
	for i, s := range segs {
		at := s.Start.Seconds()
		if i > 0 {
			step(at, segs[i-1].To, s.From, at) // a jump between stages
		}
		step(at, s.From, s.To, (s.Start + s.Dur).Seconds())
	}
	return out
}

// MainChange is the largest rise of the rate (the earliest of equal ones):
// the change scale lag and recovery are timed from. ok is false for a
// profile that never rises.
func MainChange(changes []LoadChange) (LoadChange, bool) {
	best, ok := LoadChange{}, false
	for _, c := range changes {
		if c.Up() && (!ok || c.To-c.From > best.To-best.From+1e-9) {
			best, ok = c, true
		}
	}
	return best, ok
}

// SUTSeries is one observed series of the system under test, summed up.
type SUTSeries struct {
	Name    string  `json:"name"`
	First   float64 `json:"first"`
	Min     float64 `json:"min"`
	Max     float64 `json:"max"`
	Last    float64 `json:"last"`
	Samples int     `json:"samples"` // seconds with a value
	// Gaps are the seconds it could not be read, and a few reasons why.
	Gaps       int      `json:"gaps"`
	GapReasons []string `json:"gap_reasons,omitempty"`
	// Moved says, for each load change, when the series first moved after
	// it (seconds since the start; nil: it did not).
	Moved []*int64 `json:"moved"`
	// Values is the series second by second, for `swarm results` (CSV).
	Values map[int64]float64 `json:"values,omitempty"`
}

// Observation is what the report says of the system under test.
type Observation struct {
	Changes []LoadChange `json:"load_changes"`
	Series  []SUTSeries  `json:"series"`
	// ScaleLag is, per series, the seconds from the main change (the
	// largest rise) until the series first moved; nil when it never did.
	ScaleLag map[string]*float64 `json:"scale_lag"`
	// Recovery is, per latency quantile with a threshold (`p95 < 500`),
	// the seconds from the main change until that quantile came back
	// under its limit for the rest of the change's window (0: it never
	// went over; nil: it never came back).
	Recovery map[string]*float64 `json:"recovery"`
	// Limits are the latency limits recovery was timed against, in ms.
	Limits map[string]float64 `json:"recovery_limits_ms,omitempty"`
}

// maxGapReasons bounds the reasons a series lists.
const maxGapReasons = 3

// observation builds the observation from the observed series and the
// report's points (which must be built first).
func observation(sc *scenarios.Scenario, obs *storage.Observed, points []Point, res int64, dur int64) *Observation {
	o := &Observation{Changes: LoadChanges(sc.Profile), Series: []SUTSeries{}, ScaleLag: map[string]*float64{}, Recovery: map[string]*float64{}}
	if o.Changes == nil {
		o.Changes = []LoadChange{}
	}
	main, hasMain := MainChange(o.Changes)
	if obs != nil {
		for _, name := range obs.Names() {
			vals := obs.Values[name]
			s := SUTSeries{Name: name, Values: vals, Moved: make([]*int64, len(o.Changes))}
			if sum, ok := observe.Summarize(vals); ok {
				s.First, s.Min, s.Max, s.Last, s.Samples = sum.First, sum.Min, sum.Max, sum.Last, sum.N
			}
			gaps := obs.Gaps[name]
			s.Gaps = len(gaps)
			seen := map[string]bool{}
			for _, t := range sortedKeys(gaps) {
				if why := gaps[t]; !seen[why] && len(s.GapReasons) < maxGapReasons {
					seen[why] = true
					s.GapReasons = append(s.GapReasons, why)
				}
			}
			for i, c := range o.Changes {
				if t, ok := observe.FirstMove(vals, int64(math.Ceil(c.T))); ok {
					s.Moved[i] = &t
				}
			}
			if hasMain {
				var lag *float64
				if t, ok := observe.FirstMove(vals, int64(math.Ceil(main.T))); ok {
					v := math.Max(0, float64(t)-main.T)
					lag = &v
				}
				o.ScaleLag[name] = lag
			}
			o.Series = append(o.Series, s)
		}
	}
	o.Limits = sc.LatencyLimits()
	if hasMain {
		end := float64(dur)
		for _, c := range o.Changes {
			if c.Up() && c.T > main.T {
				end = c.T
				break
			}
		}
		for q, limit := range o.Limits {
			o.Recovery[q] = recovery(points, q, limit, main.T, end, res)
		}
	}
	return o
}

// recovery times how long after `from` the quantile q of the points stayed
// over limit (ms), within [from, end): the end of the last point over it.
func recovery(points []Point, q string, limit, from, end float64, res int64) *float64 {
	lastOver, lastT, any := math.Inf(-1), math.Inf(-1), false
	for _, p := range points {
		t := float64(p.T)
		if t+float64(res) <= from || t >= end {
			continue
		}
		any = true
		lastT = t
		if v := quantile(p, q); v > limit {
			lastOver = t
		}
	}
	switch {
	case !any || math.IsInf(lastOver, -1):
		zero := 0.0
		return &zero
	case lastOver == lastT:
		return nil // over the limit to the end of the window
	}
	v := math.Max(0, lastOver+float64(res)-from)
	return &v
}

func quantile(p Point, q string) float64 {
	switch q {
	case "p50":
		return p.P50
	case "p95":
		return p.P95
	case "p99":
		return p.P99
	}
	return 0
}

// thresholdVars adds the observation to a threshold environment:
// sut["name"].max, scale_lag["name"], recovery["p95"]. A lag or recovery
// that never happened is +Inf, so `scale_lag["x"] < 15` fails.
func (o *Observation) thresholdVars(env map[string]any) {
	sut := map[string]map[string]any{}
	for _, s := range o.Series {
		sut[s.Name] = map[string]any{"first": s.First, "min": s.Min, "max": s.Max, "last": s.Last,
			"samples": float64(s.Samples), "gaps": float64(s.Gaps)}
	}
	orInf := func(m map[string]*float64) map[string]any {
		out := make(map[string]any, len(m))
		for k, v := range m {
			if v == nil {
				out[k] = math.Inf(1)
			} else {
				out[k] = *v
			}
		}
		return out
	}
	env["sut"] = sut
	env["scale_lag"] = orInf(o.ScaleLag)
	env["recovery"] = orInf(o.Recovery)
}

func sortedKeys[V any](m map[int64]V) []int64 {
	out := make([]int64, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(a, b int) bool { return out[a] < out[b] })
	return out
}

// ExemplarRow is one traced request of the report's exemplars.
type ExemplarRow struct {
	T         int64   `json:"t"` // the point's first second
	Region    string  `json:"region"`
	Node      string  `json:"node"`
	Step      string  `json:"step"`
	TraceID   string  `json:"trace_id"`
	LatencyMs float64 `json:"latency_ms"`
	Status    int     `json:"status,omitempty"`
	Class     string  `json:"error,omitempty"`
	Sampled   bool    `json:"sampled"`
}

// exemplarRows picks, for each point, region and step, the
// storage.ExemplarsPerStep slowest successful and failed requests of the
// parts' points (each point keeps its own slowest already), naming the
// node that sent them.
func exemplarRows(parts []Part, from, last int64) []ExemplarRow {
	type group struct {
		t            int64
		region, step string
		failed       bool
	}
	groups := map[group][]ExemplarRow{}
	for _, p := range parts {
		if p.Points == nil {
			continue
		}
		region := p.Region
		if region == "" {
			region = NoRegion
		}
		for t, sec := range p.Points.Seconds {
			if t < from || t > last {
				continue
			}
			for _, e := range sec.Exemplars {
				g := group{t, region, e.Step, e.Failed()}
				groups[g] = append(groups[g], ExemplarRow{T: t, Region: region, Node: p.label(), Step: e.Step,
					TraceID: hex.EncodeToString(e.TraceID[:]), LatencyMs: float64(e.Latency) / float64(time.Millisecond),
					Status: e.Status, Class: e.Class, Sampled: e.Sampled})
			}
		}
	}
	var out []ExemplarRow
	for _, rows := range groups {
		sort.Slice(rows, func(a, b int) bool {
			if rows[a].LatencyMs != rows[b].LatencyMs {
				return rows[a].LatencyMs > rows[b].LatencyMs
			}
			return rows[a].TraceID < rows[b].TraceID
		})
		out = append(out, rows[:min(len(rows), storage.ExemplarsPerStep)]...)
	}
	sort.Slice(out, func(a, b int) bool {
		x, y := out[a], out[b]
		switch {
		case x.T != y.T:
			return x.T < y.T
		case x.Region != y.Region:
			return x.Region < y.Region
		case x.Step != y.Step:
			return x.Step < y.Step
		case (x.Class != "") != (y.Class != ""):
			return x.Class != ""
		case x.LatencyMs != y.LatencyMs:
			return x.LatencyMs > y.LatencyMs
		}
		return x.TraceID < y.TraceID
	})
	return out
}
