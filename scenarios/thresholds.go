package scenarios

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"

	"github.com/loadswarm/loadswarm/storage"
)

// Threshold is a compiled pass/fail rule over a run's merged summary.
type Threshold struct {
	Src   string
	Abort bool
	After time.Duration
	prog  *vm.Program
	names []ThresholdName
}

// Names lists the names the rule reads, in the order it writes them (see
// ThresholdNames).
func (t *Threshold) Names() []ThresholdName { return t.names }

// ThresholdResult is one rule's outcome.
type ThresholdResult struct {
	Expr  string `json:"expr"`
	Pass  bool   `json:"pass"`
	Abort bool   `json:"abort,omitempty"`
	Error string `json:"error,omitempty"` // why the rule could not be evaluated (counts as a failure)
	// Values holds what the rule read when it was evaluated: for each name
	// it reads, keyed by the name as the rule writes it (`p95`,
	// `steps["login"].p99`, `scale_lag["replicas"]`), its number. A name
	// that was missing, not a number, or not finite (a scale lag that
	// never happened is +Inf) is left out.
	Values map[string]float64 `json:"values,omitempty"`
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
	m["env"] = map[string]string{} // the run's parameters: p95 < float(env.P95_BUDGET)
	return m
}

// WithEnv adds the run's parameters to a threshold env, as env.KEY.
func (sc *Scenario) WithEnv(m map[string]any) map[string]any {
	env := sc.Env
	if env == nil {
		env = map[string]string{}
	}
	m["env"] = env
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
		names, _ := ThresholdNames(t.Expr) // it compiled, so it parses
		sc.Thresholds = append(sc.Thresholds, &Threshold{Src: t.Expr, Abort: t.Abort, After: t.After.D(), prog: p, names: names})
	}
}

// Evaluate runs every threshold over env (from ThresholdEnv). A rule that
// cannot be evaluated (say, a step that sent nothing) fails with the reason.
func (sc *Scenario) Evaluate(env map[string]any) (results []ThresholdResult, pass bool) {
	pass = true
	for _, t := range sc.Thresholds {
		r := ThresholdResult{Expr: t.Src, Abort: t.Abort, Values: thresholdValues(t.names, env)}
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
			r := ThresholdResult{Expr: t.Src, Abort: true, Values: thresholdValues(t.names, env)}
			if err != nil {
				r.Error = err.Error()
			}
			return r, true
		}
	}
	return ThresholdResult{}, false
}

// ThresholdName is one number a threshold reads.
type ThresholdName struct {
	// Text is the name as the rule writes it: `p95`, `steps["login"].p99`
	// (or `steps.login.p99`, if written so).
	Text string `json:"text"`
	// Group is "" for a fleet-wide name (`p95`), else the map it reads:
	// "steps", "regions", "sut", "scale_lag" or "recovery".
	Group string `json:"group,omitempty"`
	// Key is the step, region, observed series or quantile read ("login");
	// Field the number read of a step, region or series ("p99"), "" for
	// scale_lag and recovery.
	Key   string `json:"key,omitempty"`
	Field string `json:"field,omitempty"`
}

// Threshold groups: the maps of a threshold environment that hold numbers
// by name. The first three hold a map of numbers per key, the others a
// number per key.
var thresholdGroups = map[string]bool{"steps": true, "regions": true, "sut": true, "scale_lag": false, "recovery": false}

// ThresholdNames lists the numbers a rule reads, each once, in the order it
// first writes them: the fleet-wide names (`p95`), and the members of the
// groups read with constant keys (`steps["login"].p99`,
// `regions["eu-west"].p95`, `sut["queue"].max`, `scale_lag["replicas"]`,
// `recovery["p95"]`). What a rule reads through computed keys (`steps[x]`)
// is not listed. It fails only when src does not parse.
func ThresholdNames(src string) ([]ThresholdName, error) {
	tree, err := parser.Parse(src)
	if err != nil {
		msg, _, _ := strings.Cut(err.Error(), "\n")
		return nil, fmt.Errorf("%s", msg)
	}
	c := &nameCollector{src: []rune(src), fleet: map[string]bool{}, local: map[string]bool{}}
	for _, k := range thresholdVars {
		c.fleet[k] = true
	}
	ast.Walk(&tree.Node, c)
	sort.SliceStable(c.found, func(a, b int) bool { return c.found[a].at < c.found[b].at })
	var out []ThresholdName
	seen := map[string]bool{}
	for _, f := range c.found {
		if c.local[f.root] || seen[f.Text] {
			continue
		}
		seen[f.Text] = true
		out = append(out, f.ThresholdName)
	}
	return out, nil
}

type foundName struct {
	ThresholdName
	at   int    // the rune offset of its start
	root string // the identifier it starts with
}

type nameCollector struct {
	src   []rune
	fleet map[string]bool
	local map[string]bool // names a `let` declares: they hide the env's
	found []foundName
}

func (c *nameCollector) Visit(n *ast.Node) {
	switch x := (*n).(type) {
	case *ast.VariableDeclaratorNode:
		c.local[x.Name] = true
	case *ast.IdentifierNode:
		if c.fleet[x.Value] {
			loc := x.Location()
			c.found = append(c.found, foundName{ThresholdName: ThresholdName{Text: c.text(loc.From, loc.To, x.Value)}, at: loc.From, root: x.Value})
		}
	case *ast.MemberNode:
		// group[key] (scale_lag, recovery) or group[key].field (steps,
		// regions, sut): the pattern fixes the depth, so a part of a
		// longer chain never matches as well.
		key, ok := memberKey(x)
		if !ok {
			return
		}
		if id, ok := unchain(x.Node).(*ast.IdentifierNode); ok {
			if nested, known := thresholdGroups[id.Value]; known && !nested {
				c.add(id, x, ThresholdName{Group: id.Value, Key: key}, fmt.Sprintf("%s[%q]", id.Value, key))
			}
			return
		}
		inner, ok := unchain(x.Node).(*ast.MemberNode)
		if !ok {
			return
		}
		group, ok := memberKey(inner)
		if !ok {
			return
		}
		if id, ok := unchain(inner.Node).(*ast.IdentifierNode); ok && thresholdGroups[id.Value] {
			c.add(id, x, ThresholdName{Group: id.Value, Key: group, Field: key}, fmt.Sprintf("%s[%q].%s", id.Value, group, key))
		}
	}
}

// add records a name from the root identifier to the end of member m, as
// written; canonical is its text should the source not give it.
func (c *nameCollector) add(root *ast.IdentifierNode, m *ast.MemberNode, name ThresholdName, canonical string) {
	from := root.Location().From
	prop := m.Property.Location()
	to := prop.To
	if m.Location() != prop { // written m[...]: take the closing bracket in
		to = -1
		for i := prop.To; i >= 0 && i < len(c.src); i++ {
			if c.src[i] == ']' {
				to = i + 1
				break
			}
			if c.src[i] != ' ' && c.src[i] != '\t' && c.src[i] != '\n' && c.src[i] != '\r' {
				break
			}
		}
	}
	name.Text = c.text(from, to, canonical)
	c.found = append(c.found, foundName{ThresholdName: name, at: from, root: root.Value})
}

// text is the source from rune from to to, or fallback when that is not a
// plausible span.
func (c *nameCollector) text(from, to int, fallback string) string {
	if from < 0 || to <= from || to > len(c.src) {
		return fallback
	}
	return string(c.src[from:to])
}

// memberKey is the constant string a member access reads: the "b" of
// a.b or a["b"].
func memberKey(m *ast.MemberNode) (string, bool) {
	if m.Method {
		return "", false
	}
	s, ok := m.Property.(*ast.StringNode)
	if !ok {
		return "", false
	}
	return s.Value, true
}

func unchain(n ast.Node) ast.Node {
	for {
		c, ok := n.(*ast.ChainNode)
		if !ok {
			return n
		}
		n = c.Node
	}
}

// thresholdValues looks the names up in env: the finite numbers, by the
// names' text; nil when there are none.
func thresholdValues(names []ThresholdName, env map[string]any) map[string]float64 {
	var out map[string]float64
	for _, n := range names {
		path := []string{n.Text}
		switch {
		case n.Group == "":
		case n.Field == "":
			path = []string{n.Group, n.Key}
		default:
			path = []string{n.Group, n.Key, n.Field}
		}
		v, ok := lookupNumber(env, path)
		if !ok || math.IsInf(v, 0) || math.IsNaN(v) {
			continue
		}
		if out == nil {
			out = make(map[string]float64, len(names))
		}
		out[n.Text] = v
	}
	return out
}

// lookupNumber follows path through nested maps with string keys.
func lookupNumber(env map[string]any, path []string) (float64, bool) {
	var cur any = env
	for _, k := range path {
		switch m := cur.(type) {
		case map[string]any:
			v, ok := m[k]
			if !ok {
				return 0, false
			}
			cur = v
		case map[string]map[string]any:
			v, ok := m[k]
			if !ok {
				return 0, false
			}
			cur = v
		default:
			rv := reflect.ValueOf(cur)
			if rv.Kind() != reflect.Map || rv.Type().Key().Kind() != reflect.String {
				return 0, false
			}
			v := rv.MapIndex(reflect.ValueOf(k).Convert(rv.Type().Key()))
			if !v.IsValid() {
				return 0, false
			}
			cur = v.Interface()
		}
	}
	switch v := reflect.ValueOf(cur); v.Kind() {
	case reflect.Float32, reflect.Float64:
		return v.Float(), true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return float64(v.Int()), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return float64(v.Uint()), true
	}
	return 0, false
}
