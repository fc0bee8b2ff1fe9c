package scenarios

import (
	"fmt"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/loadswarm/loadswarm/storage"
)

// Threshold is a compiled pass/fail rule over a run's merged summary.
type Threshold struct {
	Src   string
	Abort bool
	After time.Duration
	prog  *vm.Program
}

// ThresholdResult is one rule's outcome.
type ThresholdResult struct {
	Expr  string `json:"expr"`
	Pass  bool   `json:"pass"`
	Abort bool   `json:"abort,omitempty"`
	Error string `json:"error,omitempty"` // why the rule could not be evaluated (counts as a failure)
}

// thresholdVars are the names a threshold can use, all numbers: latencies
// in milliseconds, rates per second, ratios 0-1. `steps["name"]` holds the
// same names for one step, and `regions["eu-west"]` for one region of a
// fleet run (a rule over a region that sent nothing fails with the reason).
var thresholdVars = []string{
	"requests", "errors", "dropped", "arrivals", "planned",
	"error_rate", "drop_rate", "rate", "target_rate", "request_rate",
	"p50", "p90", "p95", "p99", "max", "min", "mean",
	"service_p50", "service_p90", "service_p95", "service_p99", "service_max",
	"bytes_in", "bytes_out", "duration",
}

func thresholdEnvExample() map[string]any {
	m := make(map[string]any, len(thresholdVars)+1)
	for _, k := range thresholdVars {
		m[k] = 0.0
	}
	m["steps"] = map[string]map[string]any{}
	m["regions"] = map[string]map[string]any{}
	// Filled by the report from observe: and the load's changes.
	m["sut"] = map[string]map[string]any{}
	m["scale_lag"] = map[string]any{}
	m["recovery"] = map[string]any{}
	return m
}

// ThresholdEnv turns a summary into the variables thresholds see.
func ThresholdEnv(s storage.Summary, steps map[string]storage.Summary) map[string]any {
	return ThresholdEnvWith(s, steps, nil)
}

// ThresholdEnvWith adds the fleet's regions: `regions["eu-west"].p95`.
func ThresholdEnvWith(s storage.Summary, steps, regions map[string]storage.Summary) map[string]any {
	m := summaryVars(s)
	group := func(g map[string]storage.Summary) map[string]map[string]any {
		out := make(map[string]map[string]any, len(g))
		for k, v := range g {
			out[k] = summaryVars(v)
		}
		return out
	}
	m["steps"] = group(steps)
	m["regions"] = group(regions)
	return m
}

func summaryVars(s storage.Summary) map[string]any {
	dropRate := 0.0
	if s.Planned > 0 {
		dropRate = float64(s.Dropped) / float64(s.Planned)
	}
	return map[string]any{
		"requests": float64(s.Requests), "errors": float64(s.Errors),
		"dropped": float64(s.Dropped), "arrivals": float64(s.Arrivals), "planned": float64(s.Planned),
		"error_rate": s.ErrorRate, "drop_rate": dropRate,
		"rate": s.Rate.Achieved, "target_rate": s.Rate.Target, "request_rate": s.Rate.Requests,
		"p50": s.Latency.P50, "p90": s.Latency.P90, "p95": s.Latency.P95, "p99": s.Latency.P99,
		"max": s.Latency.Max, "min": s.Latency.Min, "mean": s.Latency.Mean,
		"service_p50": s.Service.P50, "service_p90": s.Service.P90, "service_p95": s.Service.P95,
		"service_p99": s.Service.P99, "service_max": s.Service.Max,
		"bytes_in": float64(s.BytesIn), "bytes_out": float64(s.BytesOut), "duration": s.DurationSec,
	}
}

func (sc *Scenario) compileThresholds(errs *problems, spec *Spec) {
	if len(spec.Thresholds) > 100 {
		errs.add("thresholds", "%d rules, over the limit of 100", len(spec.Thresholds))
		return
	}
	env := thresholdEnvExample()
	for i, t := range spec.Thresholds {
		path := fmt.Sprintf("thresholds[%d]", i)
		if t.After < 0 {
			errs.add(path+".after", "must be >= 0")
		}
		p, err := compileExpr(t.Expr, env, expr.AsBool())
		if err != nil {
			errs.add(path, "%q: %v (names: %v, steps[\"name\"].p95, regions[\"eu-west\"].p95, sut[\"name\"].max, scale_lag[\"name\"], recovery[\"p95\"], ...)", t.Expr, err, thresholdVars)
			continue
		}
		sc.Thresholds = append(sc.Thresholds, &Threshold{Src: t.Expr, Abort: t.Abort, After: t.After.D(), prog: p})
	}
}

// Evaluate runs every threshold over env (from ThresholdEnv). A rule that
// cannot be evaluated (say, a step that sent nothing) fails with the reason.
func (sc *Scenario) Evaluate(env map[string]any) (results []ThresholdResult, pass bool) {
	pass = true
	for _, t := range sc.Thresholds {
		r := ThresholdResult{Expr: t.Src, Abort: t.Abort}
		v, err := expr.Run(t.prog, env)
		switch {
		case err != nil:
			r.Error = err.Error()
		default:
			r.Pass, _ = v.(bool)
		}
		pass = pass && r.Pass
		results = append(results, r)
	}
	return results, pass
}

// ShouldAbort reports the first abort rule that fails once its After has
// passed, for a run elapsed into the test.
func (sc *Scenario) ShouldAbort(env map[string]any, elapsed time.Duration) (ThresholdResult, bool) {
	for _, t := range sc.Thresholds {
		if !t.Abort || elapsed < t.After {
			continue
		}
		v, err := expr.Run(t.prog, env)
		if err != nil || v != true {
			r := ThresholdResult{Expr: t.Src, Abort: true}
			if err != nil {
				r.Error = err.Error()
			}
			return r, true
		}
	}
	return ThresholdResult{}, false
}
