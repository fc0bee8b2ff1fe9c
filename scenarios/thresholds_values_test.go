package scenarios

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/loadswarm/loadswarm/storage"
)

// withThresholds compiles a scenario with the rules (JSON is YAML).
func withThresholds(t *testing.T, rules ...any) *Scenario {
	t.Helper()
	b, err := json.Marshal(rules)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := Parse([]byte("name: t\ntarget: http://127.0.0.1:1\nduration: 10s\nload: {rate: 1}\nrequests: [{name: login}, {name: a}]\nthresholds: " + string(b) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// valuesEnv is a threshold environment with a step "login", a region
// "eu-west", an observed series "queue", a scale lag that happened and
// one that never did (+Inf), and a recovery.
func valuesEnv() map[string]any {
	s := storage.Summary{Requests: 1000, Errors: 12, ErrorRate: 0.012, Planned: 1000, Dropped: 5,
		Latency: storage.Latency{P50: 100, P95: 612.3, P99: 900}}
	login := storage.Summary{Requests: 500, Latency: storage.Latency{P95: 700, P99: 850.5}}
	eu := storage.Summary{Requests: 400, Latency: storage.Latency{P95: 250}}
	env := ThresholdEnvWith(s, map[string]storage.Summary{"login": login, "a": {}}, map[string]storage.Summary{"eu-west": eu})
	env["sut"] = map[string]map[string]any{"queue": {"max": 80.0, "last": 3.0}}
	env["scale_lag"] = map[string]any{"catalog_replicas": 12.0, "never": math.Inf(1)}
	env["recovery"] = map[string]any{"p95": 8.0, "p99": math.Inf(1)}
	return env
}

func TestThresholdValues(t *testing.T) {
	for _, tc := range []struct {
		rule   string
		pass   bool
		err    bool
		values map[string]float64
	}{
		{rule: "p95 < 500", values: map[string]float64{"p95": 612.3}},
		{rule: "error_rate < 0.05 && p99 < 1000", pass: true, values: map[string]float64{"error_rate": 0.012, "p99": 900}},
		{rule: "p95 < 700 && p95 > 1", pass: true, values: map[string]float64{"p95": 612.3}}, // each name once
		{rule: `steps["login"].p99 < 800`, values: map[string]float64{`steps["login"].p99`: 850.5}},
		{rule: `steps['login'].p95 < 800`, pass: true, values: map[string]float64{`steps['login'].p95`: 700}}, // as written
		{rule: `steps.login.p95 < 800`, pass: true, values: map[string]float64{`steps.login.p95`: 700}},
		{rule: `steps["login"]["p99"] < 900`, pass: true, values: map[string]float64{`steps["login"]["p99"]`: 850.5}},
		{rule: `steps[ "login" ].p99 < 900`, pass: true, values: map[string]float64{`steps[ "login" ].p99`: 850.5}},
		{rule: `regions["eu-west"].p95 < 300`, pass: true, values: map[string]float64{`regions["eu-west"].p95`: 250}},
		{rule: `scale_lag["catalog_replicas"] < 20`, pass: true, values: map[string]float64{`scale_lag["catalog_replicas"]`: 12}},
		{rule: `recovery["p95"] < 10`, pass: true, values: map[string]float64{`recovery["p95"]`: 8}},
		{rule: `sut["queue"].max < 100`, pass: true, values: map[string]float64{`sut["queue"].max`: 80}},
		// +Inf (a lag that never happened) is left out: JSON cannot carry it
		{rule: `scale_lag["never"] < 20`, values: nil},
		{rule: `recovery["p99"] < 10 || p50 < 1`, values: map[string]float64{"p50": 100}},
		// a region that sent nothing: the rule errs, what exists is kept
		{rule: `regions["ap-south"].p95 < 300 && p95 > 0`, err: true, values: map[string]float64{"p95": 612.3}},
		// a key computed at run time is not a name
		{rule: `all(["login"], {steps[#].requests > 0})`, pass: true, values: nil},
		{rule: `len(steps) == 2`, pass: true, values: nil},
		// a let's name is not the env's
		{rule: `let lim = 1000; p99 < lim`, pass: true, values: map[string]float64{"p99": 900}},
		// optional chaining
		{rule: `steps?.["login"]?.p95 < 800`, pass: true, values: map[string]float64{`steps?.["login"]?.p95`: 700}},
		{rule: "dropped <= 5 and requests >= 1000", pass: true, values: map[string]float64{"dropped": 5, "requests": 1000}},
	} {
		t.Run(tc.rule, func(t *testing.T) {
			sc := withThresholds(t, tc.rule)
			env := valuesEnv()
			res, pass := sc.Evaluate(env)
			if len(res) != 1 {
				t.Fatalf("%d results", len(res))
			}
			r := res[0]
			if r.Pass != tc.pass || pass != tc.pass || (r.Error != "") != tc.err {
				t.Fatalf("pass %v (all %v) error %q, want pass %v error %v", r.Pass, pass, r.Error, tc.pass, tc.err)
			}
			if !reflect.DeepEqual(r.Values, tc.values) {
				t.Fatalf("values %v, want %v", r.Values, tc.values)
			}
			if _, err := json.Marshal(r); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestThresholdNames(t *testing.T) {
	for _, tc := range []struct {
		rule string
		want []ThresholdName
	}{
		{"p95 < 500", []ThresholdName{{Text: "p95"}}},
		{`scale_lag["x"] < 1 && p95 < 2 && steps["a b"].p99 < 3`, []ThresholdName{
			{Text: `scale_lag["x"]`, Group: "scale_lag", Key: "x"},
			{Text: "p95"},
			{Text: `steps["a b"].p99`, Group: "steps", Key: "a b", Field: "p99"},
		}},
		{`regions["eu-west"].p95 < regions["eu-west"].p99`, []ThresholdName{
			{Text: `regions["eu-west"].p95`, Group: "regions", Key: "eu-west", Field: "p95"},
			{Text: `regions["eu-west"].p99`, Group: "regions", Key: "eu-west", Field: "p99"},
		}},
		{`sut["q"].max < 100 || recovery["p95"] < 1`, []ThresholdName{
			{Text: `sut["q"].max`, Group: "sut", Key: "q", Field: "max"},
			{Text: `recovery["p95"]`, Group: "recovery", Key: "p95"},
		}},
		{"é < 1 || p50 < 2", []ThresholdName{{Text: "p50"}}}, // offsets are runes
		{`"p95" == "p95"`, nil},
		{"steps", nil},
	} {
		got, err := ThresholdNames(tc.rule)
		if err != nil {
			t.Fatalf("%s: %v", tc.rule, err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Fatalf("%s: names %+v, want %+v", tc.rule, got, tc.want)
		}
	}
	if _, err := ThresholdNames("p95 <"); err == nil {
		t.Fatal("no error for a rule that does not parse")
	}
	sc := withThresholds(t, `steps["login"].p99 < 800`)
	if n := sc.Thresholds[0].Names(); len(n) != 1 || n[0].Field != "p99" {
		t.Fatalf("names on the threshold: %+v", n)
	}
}

func TestShouldAbortValues(t *testing.T) {
	sc := withThresholds(t, "p99 < 2000", map[string]any{"expr": `p95 < 500 && steps["login"].p95 < 1000`, "abort": true, "after": "2s"})
	env := valuesEnv()
	if _, stop := sc.ShouldAbort(env, time.Second); stop {
		t.Fatal("aborted before after")
	}
	r, stop := sc.ShouldAbort(env, 3*time.Second)
	if !stop || !r.Abort {
		t.Fatalf("no abort: %+v", r)
	}
	want := map[string]float64{"p95": 612.3, `steps["login"].p95`: 700}
	if !reflect.DeepEqual(r.Values, want) {
		t.Fatalf("values %v, want %v", r.Values, want)
	}
}

// TestThresholdValuesProperty: over random rules of every shape, every
// name in Values appears in the rule's text, every value is finite, and
// the result always encodes as JSON.
func TestThresholdValuesProperty(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 14))
	quote := func(s string) string {
		if rng.IntN(2) == 0 {
			return `"` + s + `"`
		}
		return `'` + s + `'`
	}
	keyed := func(group, key string) string {
		switch rng.IntN(3) {
		case 0:
			return group + "[" + quote(key) + "]"
		case 1:
			return group + "[ " + quote(key) + " ]"
		}
		return group + "?.[" + quote(key) + "]"
	}
	field := func(f string) string {
		if rng.IntN(3) == 0 {
			return "[" + quote(f) + "]"
		}
		return "." + f
	}
	term := func() string {
		switch rng.IntN(7) {
		case 0, 1:
			return thresholdVars[rng.IntN(len(thresholdVars))]
		case 2:
			return keyed("steps", []string{"login", "a", "gone"}[rng.IntN(3)]) + field([]string{"p95", "p99", "requests"}[rng.IntN(3)])
		case 3:
			return keyed("regions", []string{"eu-west", "us"}[rng.IntN(2)]) + field("p95")
		case 4:
			return keyed("sut", "queue") + field([]string{"max", "last"}[rng.IntN(2)])
		case 5:
			return keyed("scale_lag", []string{"catalog_replicas", "never"}[rng.IntN(2)])
		}
		return keyed("recovery", []string{"p95", "p99"}[rng.IntN(2)])
	}
	ops := []string{" < ", " <= ", " > ", " == ", " != "}
	joins := []string{" && ", " || ", " and ", " or "}
	for i := range 300 {
		var b strings.Builder
		n := 1 + rng.IntN(4)
		for j := range n {
			if j > 0 {
				b.WriteString(joins[rng.IntN(len(joins))])
			}
			right := fmt.Sprint(rng.IntN(1000))
			if rng.IntN(3) == 0 {
				right = term()
			}
			fmt.Fprintf(&b, "(%s%s%s)", term(), ops[rng.IntN(len(ops))], right)
		}
		rule := b.String()
		sc := withThresholds(t, rule)
		res, _ := sc.Evaluate(valuesEnv())
		r := res[0]
		for name, v := range r.Values {
			if !strings.Contains(rule, name) {
				t.Fatalf("rule %d %q: value %q = %v is not in the rule", i, rule, name, v)
			}
			if math.IsInf(v, 0) || math.IsNaN(v) {
				t.Fatalf("rule %q: %q = %v", rule, name, v)
			}
		}
		names := sc.Thresholds[0].Names()
		for _, nm := range names {
			if !strings.Contains(rule, nm.Text) {
				t.Fatalf("rule %q: name %q is not in the rule", rule, nm.Text)
			}
		}
		if len(r.Values) > len(names) {
			t.Fatalf("rule %q: %d values for %d names", rule, len(r.Values), len(names))
		}
		if _, err := json.Marshal(r); err != nil {
			t.Fatalf("rule %q: %v", rule, err)
		}
	}
}
