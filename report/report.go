package report

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/loadswarm/loadswarm/scenarios"
	"github.com/loadswarm/loadswarm/storage"
)

// Statuses of a report.
const (
	StatusPassed = "passed"
	StatusFailed = "failed"
)

// NoRegion is the region of a node that declares none.
const NoRegion = "(none)"

// DefaultMinDelivered is the share of a test's planned arrivals that must be
// sent or counted (dropped, missed) for the test to pass when its file sets
// no load.min_delivered: below it, the numbers describe a smaller test than
// the one asked for.
const DefaultMinDelivered = 0.95

// Part is one node's results over the seconds asked, merged down: Total is
// every second merged into one (T 0), dimensions kept, so the numbers by
// step, status and error class stay exact; Points has one second per
// Resolution seconds (T its first second), dimensions folded.
type Part struct {
	Node    string // peer id (or any stable key)
	Name    string // for people; "" shows Node
	Region  string // "" is NoRegion
	Total   *storage.Second
	Points  *storage.Series // nil: no series from this node
	Samples map[string][]string
	Replica bool // answered for by a replica: the node itself did not
	// Last is the last second the part holds (-1: none), and Until the
	// last second the node had a share in (-1: unknown). Seconds after
	// Last up to Until were planned on the node but nobody can supply
	// them (it died before it published them): they count as missing.
	Last, Until int64
}

// Input is everything a report is built from.
type Input struct {
	ID       string
	Scenario *scenarios.Scenario
	Parts    []Part
	// Missing names the nodes that took part but whose results nobody
	// could supply: they are not in the numbers.
	Missing []string
	// From and To bound the seconds reported (To < 0: to the end).
	From, To int64
	// Resolution is the seconds per point of the series; 0 means 1.
	Resolution int64
	// Notes say what the caller knows of shares that ended early (a node
	// that gave up, a share that moved), for the delivery's why.
	Notes []string
	// Interrupted: the test was stopped before its end. Failed: it could
	// not run, and why. Aborted: the abort threshold that stopped it.
	Interrupted bool
	Failed      string
	Aborted     string
	// ByRegion and ByNode keep those breakdowns in the report (thresholds
	// see the regions either way). ByStep is always kept.
	ByRegion, ByNode bool
	// Observed is what the test's observer read from the system under
	// test (observe:), nil when nothing.
	Observed *storage.Observed
	// Exemplars lists the trace ids of the slowest and failed requests per
	// point, step and region in the report (Report.Exemplars).
	Exemplars bool
}

// Report is a test's outcome. It is what `swarm run --json` and `swarm
// results --json` print; the embedded Summary's fields sit at the top level.
type Report struct {
	ID     string `json:"id,omitempty"`
	Name   string `json:"name"`
	Target string `json:"target"`
	Status string `json:"status"` // "passed" or "failed"
	storage.Summary
	ByStep     map[string]storage.Summary  `json:"by_step"`
	ByRegion   map[string]storage.Summary  `json:"by_region,omitempty"`
	ByNode     map[string]storage.Summary  `json:"by_node,omitempty"`
	Series     []Point                     `json:"series"`
	Thresholds []scenarios.ThresholdResult `json:"thresholds"`
	Samples    map[string][]string         `json:"error_samples,omitempty"`
	Delivery   Delivery                    `json:"delivery"`
	// MissingNodes took part, but neither they nor a replica answered:
	// their results are not in the numbers. FromReplicas answered through
	// a replica.
	MissingNodes []string `json:"missing_nodes"`
	FromReplicas []string `json:"from_replicas"`
	// Incomplete: some results are missing (MissingNodes, or
	// Delivery.MissingSeconds): the numbers cover less than what ran.
	Incomplete bool `json:"incomplete,omitempty"`
	// Aborted names the abort threshold that stopped the run, if one did.
	Aborted string `json:"aborted,omitempty"`
	// Interrupted is true when the run was stopped before its end.
	Interrupted bool   `json:"interrupted,omitempty"`
	Failed      string `json:"failed,omitempty"` // why the test could not run
	From        int64  `json:"from"`
	To          int64  `json:"to"` // -1: to the end, the responses after the last arrival included
	Resolution  int64  `json:"resolution_s"`
	// Observe is the system under test as observed, and the load changes,
	// scale lag and recovery timed against them.
	Observe *Observation `json:"observe"`
	// SeriesByRegion and SeriesByNode are the series of each region and
	// node (with Input.ByRegion, Input.ByNode): for charts.
	SeriesByRegion map[string][]Point `json:"series_by_region,omitempty"`
	SeriesByNode   map[string][]Point `json:"series_by_node,omitempty"`
	// Stages are the load profile's segments, for marking a time axis.
	Stages []Stage `json:"stages"`
	// Exemplars are traced requests to look up in a tracing backend: per
	// point of the series, step and region, the slowest successful and the
	// slowest failed ones (Input.Exemplars; omitted otherwise).
	Exemplars []ExemplarRow `json:"exemplars,omitempty"`
}

// Stage is one segment of the load profile: the rate moves from From to To
// between Start and End (seconds since the test's start).
type Stage struct {
	Start float64 `json:"start"`
	End   float64 `json:"end"`
	From  float64 `json:"from"`
	To    float64 `json:"to"`
}

// Point is one point of the merged series (per second, or coarser).
type Point struct {
	T        int64   `json:"t"`
	Target   float64 `json:"target"`   // planned arrivals per second
	Achieved float64 `json:"achieved"` // started arrivals per second
	Requests float64 `json:"requests"` // requests completed per second
	P50      float64 `json:"p50_ms"`
	P95      float64 `json:"p95_ms"`
	P99      float64 `json:"p99_ms"`
	Errors   int64   `json:"errors"`
	Dropped  int64   `json:"dropped"`
}

// Delivery says whether the fleet delivered the test it was asked for: the
// arrivals the test planned against those the nodes sent or counted as
// not sent (dropped: no free worker; missed: late after a freeze, or no
// lease). What is neither was never sent and never counted: a node that
// died or gave up, results nobody can supply.
type Delivery struct {
	Planned        int64    `json:"planned"`         // the test's arrivals in the seconds reported
	Counted        int64    `json:"counted"`         // started + dropped, as the nodes reported
	Undelivered    int64    `json:"undelivered"`     // planned - counted, when positive
	Ratio          float64  `json:"ratio"`           // counted / planned (1 when nothing was planned)
	MissingSeconds int64    `json:"missing_seconds"` // seconds some node had a share in but nobody can supply
	Complete       bool     `json:"complete"`        // the test delivered at least MinDelivered of its plan
	MinDelivered   float64  `json:"min_delivered"`
	Why            []string `json:"why,omitempty"`
	missing        []string // nodes with missing seconds, and how many
}

// Build merges the parts and makes the report. It is a pure function of in.
func Build(in Input) (*Report, error) {
	sc := in.Scenario
	if sc == nil {
		return nil, errors.New("report: no scenario")
	}
	res := max(in.Resolution, 1)
	dur := int64(math.Ceil(sc.Profile.Duration().Seconds()))
	last := in.To
	if last < 0 || last >= dur {
		last = dur - 1
	}
	from := max(in.From, 0)
	span := float64(max(last-from+1, 1))

	r := &Report{ID: in.ID, Name: sc.Name, Target: sc.Target.String(), From: from, To: in.To, Resolution: res,
		MissingNodes: append([]string{}, in.Missing...), FromReplicas: []string{}, Series: []Point{},
		Aborted: in.Aborted, Interrupted: in.Interrupted, Failed: in.Failed}
	sort.Strings(r.MissingNodes)

	// Merge: the whole fleet, each region, each node.
	parts := append([]Part(nil), in.Parts...)
	sort.Slice(parts, func(a, b int) bool { return parts[a].Node < parts[b].Node })
	total := storage.NewSeries()
	points := storage.NewSeries()
	regions := map[string]*storage.Series{}
	nodes := map[string]*storage.Series{}
	regionPoints := map[string]*storage.Series{}
	nodePoints := map[string]*storage.Series{}
	var missingSeconds int64
	for _, p := range parts {
		one := storage.NewSeries()
		if p.Total != nil {
			t := p.Total
			if t.T != 0 {
				t = &storage.Second{T: 0, Buckets: t.Buckets, Exemplars: t.Exemplars}
			}
			if err := one.Add(t); err != nil {
				return nil, fmt.Errorf("report: results of %s: %w", p.label(), err)
			}
		}
		for class, msgs := range p.Samples {
			for _, m := range msgs {
				one.AddSample(class, m)
			}
		}
		if err := total.Merge(one); err != nil {
			return nil, fmt.Errorf("report: merge %s: %w", p.label(), err)
		}
		if p.Points != nil {
			if err := points.Merge(p.Points); err != nil {
				return nil, fmt.Errorf("report: merge the series of %s: %w", p.label(), err)
			}
		}
		region := p.Region
		if region == "" {
			region = NoRegion
		}
		if regions[region] == nil {
			regions[region] = storage.NewSeries()
		}
		if err := regions[region].Merge(one); err != nil {
			return nil, fmt.Errorf("report: merge region %s: %w", region, err)
		}
		nodes[p.label()] = one
		if p.Points != nil && (in.ByRegion || in.ByNode) {
			if regionPoints[region] == nil {
				regionPoints[region] = storage.NewSeries()
			}
			if err := regionPoints[region].Merge(p.Points); err != nil {
				return nil, fmt.Errorf("report: merge the series of region %s: %w", region, err)
			}
			nodePoints[p.label()] = p.Points
		}
		if p.Replica {
			r.FromReplicas = append(r.FromReplicas, p.label())
		}
		if gap := min(p.Until, last) - max(p.Last, from-1); p.Until >= 0 && gap > 0 {
			missingSeconds += gap
			r.Delivery.missing = append(r.Delivery.missing, fmt.Sprintf("%s (%d)", p.label(), gap))
		}
	}
	sort.Strings(r.FromReplicas)

	// Totals span the seconds reported; the target is the test's plan, so
	// a missing share shows as a shortfall.
	fix := func(s storage.Summary) storage.Summary {
		s.DurationSec = span
		s.Rate = storage.Rate{Target: float64(s.Planned) / span, Achieved: float64(s.Arrivals) / span, Requests: float64(s.Requests) / span}
		return s
	}
	r.Summary = fix(storage.Summarize(total, nil))
	counted := r.Summary.Arrivals + r.Summary.Dropped
	planned := sc.Profile.Hits(time.Duration(last+1)*time.Second) - sc.Profile.Hits(time.Duration(from)*time.Second)
	r.Planned = int64(math.Round(planned))
	r.Rate.Target = planned / span
	r.ByStep = storage.SummarizeBy(total, func(d storage.Dim) string { return d.Step })
	for _, st := range sc.Steps {
		if _, ok := r.ByStep[st.Name]; !ok {
			r.ByStep[st.Name] = storage.Summary{}
		}
	}
	for k, v := range r.ByStep {
		r.ByStep[k] = fix(v)
	}
	byRegion := map[string]storage.Summary{}
	for k, v := range regions {
		byRegion[k] = fix(storage.Summarize(v, nil))
	}
	if in.ByRegion {
		r.ByRegion = byRegion
	}
	if in.ByNode {
		r.ByNode = map[string]storage.Summary{}
		for k, v := range nodes {
			r.ByNode[k] = fix(storage.Summarize(v, nil))
		}
	}
	r.Samples = total.Samples

	// Delivery.
	d := Delivery{Planned: r.Planned, Counted: counted, MissingSeconds: missingSeconds, MinDelivered: minDelivered(sc), Ratio: 1, missing: r.Delivery.missing}
	if r.Planned > 0 {
		d.Ratio = float64(counted) / float64(r.Planned)
	}
	d.Undelivered = max(r.Planned-counted, 0)
	slack := 0.0
	if sc.Arrivals == scenarios.ArrivalsPoisson {
		slack = 4 * math.Sqrt(float64(r.Planned)) // a Poisson run draws fewer than planned by chance
	}
	d.Complete = float64(counted)+slack >= d.MinDelivered*float64(r.Planned) && len(in.Missing) == 0
	if len(in.Missing) > 0 {
		d.Why = append(d.Why, fmt.Sprintf("no results from %s", strings.Join(r.MissingNodes, ", ")))
	}
	if missingSeconds > 0 {
		d.Why = append(d.Why, fmt.Sprintf("%d second(s) of results that nodes had a share in are missing: %s (they stopped before publishing them)", missingSeconds, strings.Join(d.missing, ", ")))
	}
	r.Incomplete = len(in.Missing) > 0 || missingSeconds > 0
	d.Why = append(d.Why, in.Notes...)
	r.Delivery = d

	// The series: the fleet's, and each region's and node's when asked.
	r.Series = seriesOf(sc, points, res, last)
	if in.ByRegion {
		r.SeriesByRegion = map[string][]Point{}
		for k, v := range regionPoints {
			r.SeriesByRegion[k] = noTarget(seriesOf(sc, v, res, last))
		}
	}
	if in.ByNode {
		r.SeriesByNode = map[string][]Point{}
		for k, v := range nodePoints {
			r.SeriesByNode[k] = noTarget(seriesOf(sc, v, res, last))
		}
	}
	r.Stages = []Stage{}
	for _, s := range sc.Profile.Segments() {
		r.Stages = append(r.Stages, Stage{Start: s.Start.Seconds(), End: (s.Start + s.Dur).Seconds(), From: s.From, To: s.To})
	}

	if in.Exemplars {
		r.Exemplars = exemplarRows(parts, from, last)
	}

	// The system under test, then thresholds on the fleet-wide numbers as
	// reported, with regions and what was observed.
	r.Observe = observation(sc, in.Observed, r.Series, res, dur)
	env := sc.WithEnv(thresholdEnv(r, byRegion))
	var pass bool
	r.Thresholds, pass = sc.Evaluate(env)
	if r.Thresholds == nil {
		r.Thresholds = []scenarios.ThresholdResult{}
	}

	r.Status = StatusPassed
	if !pass || in.Failed != "" || in.Aborted != "" || (!d.Complete && !in.Interrupted) {
		r.Status = StatusFailed
	}
	return r, nil
}

// thresholdEnv is what thresholds see of a report: its totals, steps and
// regions, and what was observed.
func thresholdEnv(r *Report, regions map[string]storage.Summary) map[string]any {
	env := scenarios.ThresholdEnvWith(r.Summary, r.ByStep, regions)
	if r.Observe != nil {
		r.Observe.thresholdVars(env)
	}
	return env
}

// ThresholdEnv is the env a report's thresholds were evaluated on, for
// rules evaluated again as a test runs (abort rules); the report must have
// been built with its regions (Input.ByRegion).
func (r *Report) ThresholdEnv(sc *scenarios.Scenario) map[string]any {
	return sc.WithEnv(thresholdEnv(r, r.ByRegion))
}

// seriesOf is the points of a merged series in time order; a point's
// target is the plan's whole-fleet target.
func seriesOf(sc *scenarios.Scenario, points *storage.Series, res, last int64) []Point {
	ts := make([]int64, 0, len(points.Seconds))
	for t := range points.Seconds {
		ts = append(ts, t)
	}
	sort.Slice(ts, func(a, b int) bool { return ts[a] < ts[b] })
	out := make([]Point, 0, len(ts))
	for _, t := range ts {
		sum := storage.SummarizeSecond(points.Seconds[t])
		w := float64(max(1, min(res, last-t+1)))
		pl := sc.Profile.Hits(time.Duration(t+int64(w))*time.Second) - sc.Profile.Hits(time.Duration(t)*time.Second)
		out = append(out, Point{T: t, Target: pl / w, Achieved: float64(sum.Arrivals) / w, Requests: float64(sum.Requests) / w,
			P50: sum.Latency.P50, P95: sum.Latency.P95, P99: sum.Latency.P99, Errors: sum.Errors, Dropped: sum.Dropped})
	}
	return out
}

// noTarget clears the targets of a region's or node's series: the plan
// gives the fleet's target, and each share's is in the test's plans.
func noTarget(ps []Point) []Point {
	for i := range ps {
		ps[i].Target = 0
	}
	return ps
}

func (p Part) label() string {
	if p.Name != "" {
		return p.Name
	}
	return p.Node
}

func minDelivered(sc *scenarios.Scenario) float64 {
	if sc.MinDelivered > 0 {
		return sc.MinDelivered
	}
	return DefaultMinDelivered
}

// Fold merges a node's series down before it travels: its total (every
// second into one, T 0, dimensions kept) and its points (a second per res
// seconds, T the first, dimensions folded).
func Fold(s *storage.Series, res int64) (total *storage.Second, points *storage.Series, err error) {
	res = max(res, 1)
	total = storage.NewSecond(0)
	points = storage.NewSeries()
	ts := make([]int64, 0, len(s.Seconds))
	for t := range s.Seconds {
		ts = append(ts, t)
	}
	sort.Slice(ts, func(a, b int) bool { return ts[a] < ts[b] })
	for _, t := range ts {
		sec := s.Seconds[t]
		if err := total.Merge(&storage.Second{T: 0, Buckets: sec.Buckets, Exemplars: slices.Clone(sec.Exemplars)}); err != nil {
			return nil, nil, err
		}
		// The point keeps the slowest and failed requests' trace ids of its
		// seconds (Second.Merge keeps the bound).
		folded := &storage.Second{T: t / res * res, Buckets: map[storage.Dim]*storage.Bucket{}, Exemplars: sec.Exemplars}
		for _, b := range sec.Buckets {
			one := &storage.Second{T: folded.T, Buckets: map[storage.Dim]*storage.Bucket{{}: {Counters: b.Counters, Latency: b.Latency}}}
			if err := folded.Merge(one); err != nil {
				return nil, nil, err
			}
		}
		if err := points.Add(folded); err != nil { // merges into the point's second
			return nil, nil, err
		}
	}
	return total, points, nil
}

// StepNames returns the report's steps in the scenario's order (when sc is
// known), then any others sorted.
func (r *Report) StepNames(sc *scenarios.Scenario) []string {
	var out []string
	seen := map[string]bool{}
	if sc != nil {
		for _, st := range sc.Steps {
			out = append(out, st.Name)
			seen[st.Name] = true
		}
	}
	var rest []string
	for k := range r.ByStep {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	return append(out, rest...)
}

// Local builds the report of a run on this host alone (swarm run --local):
// one part, the run's whole series.
func Local(sc *scenarios.Scenario, s *storage.Series, interrupted bool, aborted string) (*Report, error) {
	dur := int64(math.Ceil(sc.Profile.Duration().Seconds()))
	res := max(1, (dur+119)/120)
	total, points, err := Fold(s, res)
	if err != nil {
		return nil, err
	}
	return Build(Input{Scenario: sc, To: -1, Resolution: res, Interrupted: interrupted, Aborted: aborted,
		Parts: []Part{{Node: "local", Total: total, Points: points, Samples: s.Samples, Last: -1, Until: -1}}})
}
