package scenarios

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/expr-lang/expr/vm"

	"github.com/loadswarm/loadswarm/storage"
)

const okHead = "name: t\ntarget: http://127.0.0.1:8080\n"

func TestParseExamples(t *testing.T) {
	files, _ := filepath.Glob("../examples/*.yaml")
	if len(files) < 4 {
		t.Fatalf("want at least 4 examples, found %d", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if _, err := ParseFile(f); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestParseJSON(t *testing.T) {
	sc, err := Parse([]byte(`{"name":"j","target":"https://example.test","duration":"5s","load":{"rate":3},"requests":[{"name":"a","path":"/x"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if sc.Profile.Total() != 15 || sc.Steps[0].URL.String() != "https://example.test/x" {
		t.Fatalf("got total %v url %s", sc.Profile.Total(), sc.Steps[0].URL)
	}
}

func TestDefaults(t *testing.T) {
	sc, err := Parse([]byte(okHead + "duration: 2s\nload: {rate: 1}\nrequests: [{name: a}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if sc.Timeout != DefaultTimeout || sc.MaxInFlight != DefaultMaxInFlight || sc.Arrivals != ArrivalsUniform ||
		sc.Flow != FlowSequence || sc.Steps[0].Method != "GET" || sc.HTTP2 {
		t.Fatalf("defaults not applied: %+v", sc)
	}
}

// TestValidationErrors: each bad value is refused with its path and reason,
// and several problems come back together.
func TestValidationErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want []string
	}{
		{"empty", "", []string{"scenario is empty"}},
		{"not yaml", "name: [", []string{"invalid scenario"}},
		{"unknown field", okHead + "durration: 1s\n", []string{"durration", "unknown"}},
		{"unknown stage field", okHead + "load:\n  stages:\n    - {duration: 1s, rat: 5}\nrequests: [{name: a}]\n", []string{"rat", "unknown"}},
		{"missing everything", "labels: {a: b}\n", []string{"name: required", "target: required", "load: required", "requests: required"}},
		{"bad target", "name: t\ntarget: ftp://x\nduration: 1s\nload: {rate: 1}\nrequests: [{name: a}]\n", []string{"target: scheme \"ftp\""}},
		{"negative rate and bad duration", okHead + "load:\n  stages:\n    - {duration: 1s, rate: 1}\n    - {duration: 1s, rate: 2}\n    - {duration: 0s, rate: -1}\nrequests: [{name: a}]\n",
			[]string{"load.stages[2].duration: required", "load.stages[2].rate: must be >= 0"}},
		{"duration without unit", okHead + "duration: 30\nload: {rate: 1}\nrequests: [{name: a}]\n", []string{"bad duration \"30\""}},
		{"rate and stages", okHead + "duration: 1s\nload: {rate: 1, stages: [{duration: 1s, rate: 1}]}\nrequests: [{name: a}]\n", []string{"load: set either"}},
		{"spike too long", okHead + "load: {stages: [{duration: 5s, rate: 1, to: 9, shape: spike, at: 4s, hold: 2s}]}\nrequests: [{name: a}]\n", []string{"load.stages[0]: at+rise+hold+fall"}},
		{"burst for >= every", okHead + "load: {stages: [{duration: 5s, rate: 1, to: 9, shape: burst, every: 1s, for: 1s}]}\nrequests: [{name: a}]\n", []string{"load.stages[0].for: must be > 0 and shorter than every"}},
		{"bad shape", okHead + "load: {stages: [{duration: 5s, rate: 1, shape: zigzag}]}\nrequests: [{name: a}]\n", []string{"load.stages[0].shape: \"zigzag\""}},
		{"ramp options on constant", okHead + "load: {stages: [{duration: 5s, rate: 1, every: 1s}]}\nrequests: [{name: a}]\n", []string{"load.stages[0].every: only for shape"}},
		{"nothing to send", okHead + "load: {stages: [{duration: 1s, rate: 0}]}\nrequests: [{name: a}]\n", []string{"nothing to send"}},
		{"bad arrivals and in flight", okHead + "duration: 1s\nload: {rate: 1, arrivals: burstyy, max_in_flight: -3}\nrequests: [{name: a}]\n",
			[]string{"load.arrivals: \"burstyy\"", "load.max_in_flight: must be > 0"}},
		{"duplicate step names", okHead + "duration: 1s\nload: {rate: 1}\nrequests: [{name: a}, {name: a}]\n", []string{"requests[1].name: \"a\" is used"}},
		{"bad step", okHead + "duration: 1s\nload: {rate: 1}\nrequests: [{name: 'a b', method: 'G T', path: x, timeout: -1s}]\n",
			[]string{"requests[0].name", "requests[0].method", "requests[0].path: \"x\" must start with /", "requests[0].timeout: must be > 0"}},
		{"path and url", okHead + "duration: 1s\nload: {rate: 1}\nrequests: [{name: a, path: /x, url: 'http://h/'}]\n", []string{"requests[0]: set path or url, not both"}},
		{"check does not compile", okHead + "duration: 1s\nload: {rate: 1}\nrequests: [{name: a, check: 'status ==='}]\n", []string{"requests[0].check[0]"}},
		{"check not bool", okHead + "duration: 1s\nload: {rate: 1}\nrequests: [{name: a, check: 'status + 1'}]\n", []string{"requests[0].check[0]", "bool"}},
		{"unknown name in check", okHead + "duration: 1s\nload: {rate: 1}\nrequests: [{name: a, check: 'stauts == 200'}]\n", []string{"requests[0].check[0]", "stauts"}},
		{"bad template", okHead + "duration: 1s\nload: {rate: 1}\nrequests: [{name: a, path: '/x/{{ randInt(1) }}'}]\n", []string{"requests[0].path", "randInt"}},
		{"unclosed template", okHead + "duration: 1s\nload: {rate: 1}\nrequests: [{name: a, path: '/x/{{ 1'}]\n", []string{"requests[0].path", "without"}},
		{"bad header", okHead + "duration: 1s\nload: {rate: 1}\nrequests: [{name: a, headers: {'a b': x}}]\n", []string{"requests[0].headers.a b: not a valid header name"}},
		{"weight without weighted flow", okHead + "duration: 1s\nload: {rate: 1}\nrequests: [{name: a, weight: 2}]\n", []string{"requests[0].weight: only for flow: weighted"}},
		{"weights all zero", okHead + "duration: 1s\nflow: weighted\nload: {rate: 1}\nrequests: [{name: a, weight: 0}]\n", []string{"weights add up to 0"}},
		{"bad flow", okHead + "duration: 1s\nflow: random\nload: {rate: 1}\nrequests: [{name: a}]\n", []string{"flow: \"random\""}},
		{"bad extract", okHead + "duration: 1s\nload: {rate: 1}\nrequests: [{name: a, extract: {'1x': json.a, y: 'json.'}}]\n", []string{"requests[0].extract.1x", "requests[0].extract.y"}},
		{"bad threshold", okHead + "duration: 1s\nload: {rate: 1}\nrequests: [{name: a}]\nthresholds: ['p95 <', 'p42 < 1', 'p95 + 1', {expr: 'p95 < 1', after: -1s}]\n",
			[]string{"thresholds[0]", "thresholds[1]", "p42", "thresholds[2]", "thresholds[3].after: must be >= 0"}},
		{"bad distribution", okHead + "duration: 1s\nload: {rate: 1}\nrequests: [{name: a}]\ndistribution: {select: 'node.regon == \"x\"', weight: 'node.region', regions: {eu: 0.5, us: 0.6}}\n",
			[]string{"distribution.select", "regon", "distribution.weight", "distribution.regions: shares add up to 1.1"}},
		{"bad http version", okHead + "duration: 1s\ndefaults: {http: '3'}\nload: {rate: 1}\nrequests: [{name: a}]\n", []string{"defaults.http: \"3\""}},
		{"expression too long", okHead + "duration: 1s\nload: {rate: 1}\nrequests: [{name: a, check: '" + strings.Repeat("1 == 1 && ", 500) + "true'}]\n", []string{"requests[0].check[0]", "limit"}},
		{"too big", strings.Repeat("#", MaxSpecBytes+1), []string{"over the"}},
		{"two documents", okHead + "---\nname: u\n", []string{"more than one YAML document"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatal("accepted a bad scenario")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestExprNodeLimit(t *testing.T) {
	// Short source, huge AST: the node cap refuses it.
	src := "1" + strings.Repeat("+1", MaxExprNodes)
	if len(src) > MaxExprLen {
		src = src[:MaxExprLen-1]
	}
	if _, err := compileExpr(src, IterEnv{}); err == nil {
		t.Fatal("compiled an expression over the node limit")
	}
	// No callable methods leak into the environments: expr can call any
	// exported method of an env type, so they must have none.
	for _, env := range []any{IterEnv{}, &IterEnv{}, ResponseEnv{}, &ResponseEnv{}, DistEnv{}, NodeInfo{}} {
		if n := reflect.TypeOf(env).NumMethod(); n != 0 {
			t.Errorf("%T has %d methods callable from expressions", env, n)
		}
	}
	// Only our functions are callable; unknown ones do not compile.
	if _, err := compileExpr(`exec("ls")`, IterEnv{}); err == nil {
		t.Fatal("an unknown function compiled")
	}
}

func TestTemplates(t *testing.T) {
	var m vm.VM
	env := &IterEnv{Vars: map[string]any{"id": 7, "name": "bob", "list": []any{"x"}}, Arrival: 3}
	for _, tc := range []struct{ src, want string }{
		{"/plain", "/plain"},
		{"", ""},
		{"/items/{{ vars.id }}", "/items/7"},
		{"{{vars.name}}-{{ arrival }}", "bob-3"},
		{"{{ vars.id * 2 }}/{{ upper(vars.name) }}", "14/BOB"},
		{"{{ randItem(vars.list) }}", "x"},
		{"{{ vars.missing }}", ""},
		{"{{ len(uuid()) }}", "36"},
		{"{{ len(randString(5)) }}", "5"},
	} {
		tpl, err := ParseTemplate(tc.src)
		if err != nil {
			t.Fatalf("%q: %v", tc.src, err)
		}
		got, err := tpl.Render(&m, env)
		if err != nil || got != tc.want {
			t.Errorf("Render(%q) = %q, %v; want %q", tc.src, got, err, tc.want)
		}
	}
	for i := 0; i < 200; i++ {
		tpl, _ := ParseTemplate("{{ randInt(3, 5) }}")
		got, _ := tpl.Render(&m, env)
		if got != "3" && got != "4" && got != "5" {
			t.Fatalf("randInt(3,5) = %s", got)
		}
	}
	// A runtime fault is an error, not a panic.
	tpl, _ := ParseTemplate("{{ randItem(vars.nothing) }}")
	if _, err := tpl.Render(&m, env); err == nil {
		t.Fatal("randItem of nothing rendered")
	}
}

func TestChecksAndExtract(t *testing.T) {
	sc, err := Parse([]byte(okHead + `duration: 1s
load: {rate: 1}
requests:
  - name: a
    check: ['status == 200', 'json.ok == true', 'headers["x-id"] == "9"', 'duration < 1000', 'body contains "ok"']
    extract: {id: json.id, n: 'int(headers["x-id"]) + 1'}
`))
	if err != nil {
		t.Fatal(err)
	}
	st := sc.Steps[0]
	if !st.needBody || !st.needJSON {
		t.Fatalf("needBody=%v needJSON=%v, want both", st.needBody, st.needJSON)
	}
	var m vm.VM
	env := &ResponseEnv{Status: 200, Headers: map[string]string{"x-id": "9"}, Body: `{"ok":true,"id":5}`,
		JSON: map[string]any{"ok": true, "id": 5.0}, Duration: 12}
	for _, c := range st.Checks {
		if v, err := m.Run(c.prog, env); err != nil || v != true {
			t.Errorf("check %q = %v, %v", c.Src, v, err)
		}
	}
	env.Status = 500
	if v, _ := m.Run(st.Checks[0].prog, env); v != false {
		t.Error("status check passed on 500")
	}
	got := map[string]any{}
	for _, x := range st.Extract {
		v, err := m.Run(x.prog, env)
		if err != nil {
			t.Fatal(err)
		}
		got[x.Name] = v
	}
	if got["id"] != 5.0 || got["n"] != 10 {
		t.Fatalf("extracted %v", got)
	}
	// A step that reads neither body nor json does not buffer the body.
	sc2, _ := Parse([]byte(okHead + "duration: 1s\nload: {rate: 1}\nrequests: [{name: a, check: 'status == 200'}]\n"))
	if sc2.Steps[0].needBody || sc2.Steps[0].needJSON {
		t.Fatal("a status-only check buffers the body")
	}
}

func TestDistributionRules(t *testing.T) {
	sc, err := Parse([]byte(okHead + `duration: 1s
load: {rate: 1}
requests: [{name: a}]
distribution:
  select: 'node.region != "ap-south" && node.tags["tier"] != "spot"'
  weight: 'node.capacity * (node.cpus > 4 ? 2 : 1)'
  regions: {eu-west: 0.6, us-east: 0.4}
`))
	if err != nil {
		t.Fatal(err)
	}
	d := sc.Distribution
	for _, tc := range []struct {
		n      NodeInfo
		sel    bool
		weight float64
	}{
		{NodeInfo{Name: "a", Region: "eu-west", Capacity: 100, CPUs: 8}, true, 200},
		{NodeInfo{Name: "b", Region: "ap-south", Capacity: 100, CPUs: 2}, false, 100},
		{NodeInfo{Name: "c", Region: "us-east", Capacity: 50, CPUs: 2, Tags: map[string]string{"tier": "spot"}}, false, 50},
	} {
		sel, err := d.Select(tc.n)
		if err != nil || sel != tc.sel {
			t.Errorf("Select(%s) = %v, %v; want %v", tc.n.Name, sel, err, tc.sel)
		}
		w, err := d.Weight(tc.n)
		if err != nil || w != tc.weight {
			t.Errorf("Weight(%s) = %v, %v; want %v", tc.n.Name, w, err, tc.weight)
		}
	}
}

func TestParseFileErrors(t *testing.T) {
	if _, err := ParseFile(filepath.Join(t.TempDir(), "nope.yaml")); err == nil {
		t.Fatal("missing file accepted")
	}
	p := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(p, []byte(okHead), 0o644)
	_, err := ParseFile(p)
	if err == nil || !strings.Contains(err.Error(), "bad.yaml") {
		t.Fatalf("error should name the file: %v", err)
	}
}

func TestDurationRoundTrip(t *testing.T) {
	b, _ := Duration(1500 * time.Millisecond).MarshalText()
	if string(b) != "1.5s" {
		t.Fatal(string(b))
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("../examples/*.yaml")
	for _, p := range files {
		b, _ := os.ReadFile(p)
		f.Add(b)
	}
	f.Add([]byte(okHead + "load: {stages: [{duration: 1s, rate: 1, to: 5, shape: burst, every: 100ms, for: 50ms}]}\nrequests: [{name: a}]"))
	f.Add([]byte("&a [*a, *a, *a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		sc, err := Parse(data)
		if err != nil {
			return
		}
		// Whatever parses must have a usable profile.
		if sc.Profile.Total() < 1 || sc.Profile.Duration() <= 0 || len(sc.Steps) == 0 {
			t.Fatalf("accepted an unusable scenario: total %v, duration %s", sc.Profile.Total(), sc.Profile.Duration())
		}
	})
}

func TestRegionThresholds(t *testing.T) {
	sc, err := Parse([]byte(okHead + "duration: 1s\nload: {rate: 1}\nrequests: [{name: a}]\nthresholds: ['regions[\"ap-south\"].p95 < 300', 'regions[\"eu-west\"].requests > 0']\n"))
	if err != nil {
		t.Fatal(err)
	}
	var fast, slow storage.Summary
	fast.Requests, fast.Latency.P95 = 10, 20
	slow.Requests, slow.Latency.P95 = 10, 400
	res, pass := sc.Evaluate(ThresholdEnvWith(fast, nil, map[string]storage.Summary{"eu-west": fast, "ap-south": slow}))
	if pass || res[0].Pass || !res[1].Pass {
		t.Fatalf("slow region passed: %+v", res)
	}
	// A region that sent nothing fails with a reason rather than passing.
	res, pass = sc.Evaluate(ThresholdEnvWith(fast, nil, nil))
	if pass || res[0].Pass {
		t.Fatalf("missing region passed: %+v", res)
	}
}
