package scenarios

import (
	"math"
	"sort"

	"github.com/loadswarm/loadswarm/storage"
)

// Report statuses.
const (
	StatusPassed = "passed"
	StatusFailed = "failed"
)

// Report is a test's outcome: the merged summary, the same per step, the
// thresholds and a few error samples. It is what `swarm run --json` prints;
// the embedded Summary's fields sit at the top level.
type Report struct {
	Name   string `json:"name"`
	Target string `json:"target"`
	Status string `json:"status"` // "passed" or "failed"
	storage.Summary
	ByStep     map[string]storage.Summary `json:"by_step"`
	Thresholds []ThresholdResult          `json:"thresholds"`
	Samples    map[string][]string        `json:"error_samples,omitempty"`
	// Aborted names the abort threshold that stopped the run, if one did.
	Aborted string `json:"aborted,omitempty"`
	// Interrupted is true when the run was stopped before its end.
	Interrupted bool `json:"interrupted,omitempty"`
}

// BuildReport summarizes a run's (merged) results and evaluates the
// thresholds on them: fleet-wide numbers, never per-node ones.
func BuildReport(sc *Scenario, s *storage.Series) Report {
	byStep := storage.SummarizeBy(s, func(d storage.Dim) string { return d.Step })
	// Steps that never ran still get a row, so thresholds and tables that
	// name them see zeros rather than nothing.
	for _, st := range sc.Steps {
		if _, ok := byStep[st.Name]; !ok {
			byStep[st.Name] = storage.Summary{}
		}
	}
	sum := storage.Summarize(s, nil)
	// The target is the test's plan, not the arrivals the pacer drew (a
	// Poisson run draws more or fewer than the rate), nor what the nodes
	// that answered planned.
	if d := sc.Profile.Duration().Seconds(); d > 0 {
		sum.Planned = int64(math.Round(sc.Profile.Total()))
		sum.Rate.Target = sc.Profile.Total() / d
	}
	results, pass := sc.Evaluate(ThresholdEnv(sum, byStep))
	r := Report{
		Name: sc.Name, Target: sc.Target.String(),
		Summary: sum, ByStep: byStep, Thresholds: results, Samples: s.Samples,
		Status: StatusPassed,
	}
	if results == nil {
		r.Thresholds = []ThresholdResult{}
	}
	if !pass {
		r.Status = StatusFailed
	}
	return r
}

// StepNames returns the report's steps in the scenario's order, then any
// others sorted.
func (r Report) StepNames(sc *Scenario) []string {
	var out []string
	seen := map[string]bool{}
	for _, st := range sc.Steps {
		out = append(out, st.Name)
		seen[st.Name] = true
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
