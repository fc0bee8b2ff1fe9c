package report

import (
	"bytes"
	"encoding/xml"
	"flag"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loadswarm/loadswarm/scenarios"
	"github.com/loadswarm/loadswarm/storage"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// parsed JUnit, to read back what WriteJUnit wrote.
type xSuites struct {
	XMLName  xml.Name `xml:"testsuites"`
	Name     string   `xml:"name,attr"`
	Tests    int      `xml:"tests,attr"`
	Failures int      `xml:"failures,attr"`
	Errors   int      `xml:"errors,attr"`
	Time     string   `xml:"time,attr"`
	Suites   []struct {
		Name     string `xml:"name,attr"`
		Tests    int    `xml:"tests,attr"`
		Failures int    `xml:"failures,attr"`
		Errors   int    `xml:"errors,attr"`
		Props    []struct {
			Name  string `xml:"name,attr"`
			Value string `xml:"value,attr"`
		} `xml:"properties>property"`
		Cases []xCase `xml:"testcase"`
	} `xml:"testsuite"`
}

type xCase struct {
	Name      string    `xml:"name,attr"`
	Classname string    `xml:"classname,attr"`
	Failure   *xProblem `xml:"failure"`
	Error     *xProblem `xml:"error"`
	SystemOut string    `xml:"system-out"`
}

type xProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Body    string `xml:",chardata"`
}

func junitOf(t *testing.T, r *Report) ([]byte, xSuites) {
	t.Helper()
	var b bytes.Buffer
	if err := WriteJUnit(&b, r); err != nil {
		t.Fatal(err)
	}
	var s xSuites
	if err := xml.Unmarshal(b.Bytes(), &s); err != nil {
		t.Fatalf("%v:\n%s", err, b.String())
	}
	return b.Bytes(), s
}

// findCase is the case of that name, and its suite's name.
func findCase(s xSuites, name string) (xCase, string, bool) {
	for _, su := range s.Suites {
		for _, c := range su.Cases {
			if c.Name == name {
				return c, su.Name, true
			}
		}
	}
	return xCase{}, "", false
}

// ciReports are reports of every kind for the JUnit and Markdown tests:
// passing; failing thresholds of every group, an abort, an unevaluable
// rule, a lost node, observed series with a scale lag and one that never
// moved, regions; a test that could not run.
func ciReports(t *testing.T) map[string]*Report {
	t.Helper()
	rng := rand.New(rand.NewPCG(14, 1))
	secs := func(from, to int64) []int64 {
		var out []int64
		for s := from; s <= to; s++ {
			out = append(out, s)
		}
		return out
	}
	out := map[string]*Report{}

	sc := scenario(t, "thresholds: ['p95 < 1000', 'steps[\"a\"].error_rate < 0.01', 'regions[\"eu\"].requests > 0']\n")
	r, err := Build(Input{ID: "t-pass", Scenario: sc, To: -1, ByRegion: true, Parts: []Part{
		part(t, "n1", "eu", nodeSeries(rng, secs(0, 9), 50), 1), part(t, "n2", "us", nodeSeries(rng, secs(0, 9), 50), 1)}})
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != StatusPassed {
		t.Fatalf("the passing report %s: %+v", r.Status, r.Thresholds)
	}
	out["passed"] = r

	spec := `name: checkout ramp
target: https://shop.example.test
load:
  stages:
    - {duration: 10s, rate: 50}
    - {duration: 10s, rate: 50, to: 100}
    - {duration: 10s, rate: 100}
requests: [{name: a}, {name: b}]
observe:
  sources:
    - {name: replicas, scrape: "http://127.0.0.1:1/metrics", select: shop_replicas}
    - {name: cpu, scrape: "http://127.0.0.1:1/metrics", select: shop_cpu}
thresholds:
  - 'p95 < 100'
  - 'error_rate < 0.5 && p99 < 2000'
  - {expr: 'steps["b"].error_rate < 0.1', abort: true}
  - 'regions["eu"].p95 < 1000'
  - 'regions["ap-south"].p95 < 300'
  - 'scale_lag["replicas"] < 5'
  - 'scale_lag["cpu"] < 60'
  - 'sut["replicas"].max >= 4'
  - 'p50 > 0 && steps["a"].p99 < 5000'
`
	sc, err = scenarios.Parse([]byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	obs := storage.NewObserved()
	for s := int64(0); s < 30; s++ {
		v := 2.0
		if s >= 17 {
			v = 4
		}
		obs.Add(&storage.ObservedSecond{T: s, Values: map[string]float64{"replicas": v, "cpu": 0.5}})
	}
	lost := part(t, "n2", "us", nodeSeries(rng, secs(0, 14), 40), 1)
	lost.Until = 29
	r, err = Build(Input{ID: "t-fail", Scenario: sc, To: -1, ByRegion: true, Observed: obs,
		Aborted: `steps["b"].error_rate < 0.1`, Notes: []string{"n2 gave up its share at 15s: overloaded"},
		Parts: []Part{part(t, "n1", "eu", nodeSeries(rng, secs(0, 29), 40), 1), lost}})
	if err != nil {
		t.Fatal(err)
	}
	out["failed"] = r

	r, err = Build(Input{ID: "t-norun", Scenario: scenario(t, "thresholds: ['p95 < 500']\n"), To: -1,
		Failed: "no nodes in region \"mars\"\nsecond line"})
	if err != nil {
		t.Fatal(err)
	}
	out["could not run"] = r
	return out
}

// xmllint validates JUnit against the schema in testdata; without
// xmllint the test skips and says why.
func xmllint(t *testing.T, name string, doc []byte) {
	t.Helper()
	bin, err := exec.LookPath("xmllint")
	if err != nil {
		t.Skipf("xmllint is not installed (Debian: apt-get install libxml2-utils), so the JUnit output is not validated against testdata/junit.xsd: %v", err)
	}
	f := filepath.Join(t.TempDir(), strings.ReplaceAll(name, " ", "_")+".xml")
	if err := os.WriteFile(f, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--noout", "--schema", filepath.Join("testdata", "junit.xsd"), f).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: not valid JUnit: %v\n%s\n%s", name, err, out, doc)
	}
}

func TestJUnitValidatesAgainstSchema(t *testing.T) {
	reports := ciReports(t)
	reports["escapes"] = escapeReport()
	for name, r := range reports {
		doc, _ := junitOf(t, r)
		xmllint(t, name, doc)
	}
}

func TestJUnitReport(t *testing.T) {
	reports := ciReports(t)

	_, s := junitOf(t, reports["passed"])
	if s.Name != "loadswarm" || s.Failures != 0 || s.Errors != 0 || s.Tests != 4 || s.Time != "10.000" {
		t.Fatalf("passed: %+v", s)
	}
	var names []string
	for _, su := range s.Suites {
		names = append(names, su.Name)
	}
	if strings.Join(names, ",") != "fleet,step a,region eu" {
		t.Fatalf("suites %v", names)
	}
	if c, _, _ := findCase(s, "delivery"); c.Failure != nil || !strings.Contains(c.SystemOut, "delivered 100.0% of the planned arrivals (1000 of 1000") {
		t.Fatalf("delivery %+v", c)
	}
	if c, _, _ := findCase(s, "p95 < 1000"); c.Classname != "loadswarm.r.fleet" || !strings.HasPrefix(c.SystemOut, "p95 = ") {
		t.Fatalf("p95 case %+v", c)
	}

	r := reports["failed"]
	_, s = junitOf(t, r)
	want := map[string]struct{ suite, kind, msg string }{
		"p95 < 100":                        {"fleet", "failure", "p95 = "},
		"error_rate < 0.5 && p99 < 2000":   {"fleet", "pass", ""},
		`steps["b"].error_rate < 0.1`:      {"step b", "abort", `stopped the test; at the end steps["b"].error_rate = 1 (rule: steps["b"].error_rate < 0.1)`},
		`regions["eu"].p95 < 1000`:         {"region eu", "pass", ""},
		`regions["ap-south"].p95 < 300`:    {"region ap-south", "error", "could not be evaluated: "},
		`scale_lag["replicas"] < 5`:        {"system", "failure", `scale_lag["replicas"] = 7 (rule: scale_lag["replicas"] < 5)`},
		`scale_lag["cpu"] < 60`:            {"system", "failure", `scale_lag["cpu"] = never (rule: scale_lag["cpu"] < 60)`},
		`sut["replicas"].max >= 4`:         {"system", "pass", ""},
		`p50 > 0 && steps["a"].p99 < 5000`: {"fleet", "pass", ""},
		"delivery":                         {"fleet", "failure", "not delivered: delivered "},
	}
	total, failures, errors := 0, 0, 0
	for _, su := range s.Suites {
		total += len(su.Cases)
		for _, c := range su.Cases {
			w, ok := want[c.Name]
			if !ok {
				t.Errorf("unexpected case %q", c.Name)
				continue
			}
			if su.Name != w.suite || c.Classname != "loadswarm.checkout ramp."+w.suite {
				t.Errorf("%s: in suite %q (class %q), want %q", c.Name, su.Name, c.Classname, w.suite)
			}
			var p *xProblem
			switch w.kind {
			case "pass":
				if c.Failure != nil || c.Error != nil {
					t.Errorf("%s: fails: %+v %+v", c.Name, c.Failure, c.Error)
				}
				continue
			case "error":
				p = c.Error
				errors++
			default:
				p = c.Failure
				failures++
			}
			if p == nil {
				t.Errorf("%s: no %s", c.Name, w.kind)
				continue
			}
			if !strings.HasPrefix(p.Message, w.msg) {
				t.Errorf("%s: message %q, want it to start %q", c.Name, p.Message, w.msg)
			}
			if w.kind == "abort" && p.Type != "abort" || w.kind == "failure" && c.Name != "delivery" && p.Type != "threshold" {
				t.Errorf("%s: type %q", c.Name, p.Type)
			}
		}
	}
	if total != len(want) || s.Tests != total || s.Failures != failures || s.Errors != errors {
		t.Fatalf("%d cases (want %d), counts %d/%d/%d, want %d/%d/%d", total, len(want), s.Tests, s.Failures, s.Errors, total, failures, errors)
	}
	// The delivery names the ratio and why.
	c, _, _ := findCase(s, "delivery")
	for _, part := range []string{"%", "second(s) of results", "n2 gave up its share"} {
		if !strings.Contains(c.Failure.Message, part) || !strings.Contains(c.Failure.Body, part) {
			t.Errorf("delivery lacks %q: %+v", part, c.Failure)
		}
	}
	// A failing rule's body lists all its values.
	c, _, _ = findCase(s, "p95 < 100")
	if c.Failure.Body != "p95 = "+ciNumber(r.Latency.P95) {
		t.Errorf("body %q", c.Failure.Body)
	}
	props := map[string]string{}
	for _, p := range s.Suites[0].Props {
		props[p.Name] = p.Value
	}
	if props["id"] != "t-fail" || props["status"] != "failed" || props["aborted"] != `steps["b"].error_rate < 0.1` || props["incomplete"] != "true" {
		t.Errorf("properties %v", props)
	}

	_, s = junitOf(t, reports["could not run"])
	c, su, ok := findCase(s, "run")
	if !ok || su != "fleet" || c.Error == nil || c.Error.Message != "could not run: no nodes in region \"mars\"\nsecond line" || s.Errors != 1 {
		t.Fatalf("run case %+v in %q; %+v", c, su, s)
	}
	if _, _, ok := findCase(reportSuites(t, reports["passed"]), "run"); ok {
		t.Fatal("a run case in a test that ran")
	}
}

func reportSuites(t *testing.T, r *Report) xSuites {
	_, s := junitOf(t, r)
	return s
}

func TestThresholdGroup(t *testing.T) {
	for _, tc := range []struct{ rule, group string }{
		{"p95 < 500", "fleet"},
		{"error_rate < 0.01", "fleet"},
		{`steps["login"].p99 < 800`, "step login"},
		{`steps.login.p99 < 800`, "step login"},
		{`regions["eu-west"].p95 < 300`, "region eu-west"},
		{`scale_lag["catalog_replicas"] < 20`, "system"},
		{`recovery["p95"] < 10`, "system"},
		{`sut["queue"].max < 100`, "system"},
		// several groups: the first named
		{`steps["a"].p95 < 1 && p95 < 2`, "step a"},
		{`p95 < 2 && steps["a"].p95 < 1`, "fleet"},
		{`sut["q"].max < 1 || regions["us"].p95 < 2`, "system"},
		{`(regions["us"].p95 < 2) && steps["a"].p95 < 1`, "region us"},
		// no name it can tell
		{`len(steps) > 0`, "fleet"},
		{`all(["a"], {steps[#].p95 < 1})`, "fleet"},
		{`p95 <`, "fleet"},
		{`steps["a b|<c>"].p95 < 1`, "step a b|<c>"},
	} {
		if g := ThresholdGroup(tc.rule); g != tc.group {
			t.Errorf("%s: group %q, want %q", tc.rule, g, tc.group)
		}
	}
}

// TestJUnitMessages: the message of each kind of outcome, on reports made
// by hand.
func TestJUnitMessages(t *testing.T) {
	inf := func() map[string]*float64 { return map[string]*float64{"x": nil} }
	for _, tc := range []struct {
		name   string
		r      Report
		th     scenarios.ThresholdResult
		kind   string // failure, error, pass
		typ    string
		msg    string
		body   string
		stdout string
	}{
		{name: "one value", th: scenarios.ThresholdResult{Expr: "p95 < 500", Values: map[string]float64{"p95": 612.3}},
			kind: "failure", typ: "threshold", msg: "p95 = 612.3 (rule: p95 < 500)", body: "p95 = 612.3"},
		{name: "rounded", th: scenarios.ThresholdResult{Expr: "p95 < 500", Values: map[string]float64{"p95": 612.30000001}},
			kind: "failure", typ: "threshold", msg: "p95 = 612.3 (rule: p95 < 500)", body: "p95 = 612.3"},
		{name: "small", th: scenarios.ThresholdResult{Expr: "error_rate < 0.01", Values: map[string]float64{"error_rate": 0.0123456789}},
			kind: "failure", typ: "threshold", msg: "error_rate = 0.0123457 (rule: error_rate < 0.01)", body: "error_rate = 0.0123457"},
		{name: "values in the rule's order", th: scenarios.ThresholdResult{Expr: `p99 < 900 && steps["a"].p95 < 5`, Values: map[string]float64{"p99": 1000, `steps["a"].p95`: 7}},
			kind: "failure", typ: "threshold", msg: `p99 = 1000, steps["a"].p95 = 7 (rule: p99 < 900 && steps["a"].p95 < 5)`, body: "p99 = 1000\nsteps[\"a\"].p95 = 7"},
		{name: "a missing value", th: scenarios.ThresholdResult{Expr: `regions["x"].p95 < 1 && p95 < 1`, Values: map[string]float64{"p95": 3}, Error: "cannot fetch p95 from <nil>"},
			kind: "error", typ: "threshold", msg: `could not be evaluated: cannot fetch p95 from <nil> (rule: regions["x"].p95 < 1 && p95 < 1)`,
			body: "regions[\"x\"].p95 = no value\np95 = 3\nerror: cannot fetch p95 from <nil>"},
		{name: "never", r: Report{Observe: &Observation{ScaleLag: inf()}}, th: scenarios.ThresholdResult{Expr: `scale_lag["x"] < 5`},
			kind: "failure", typ: "threshold", msg: `scale_lag["x"] = never (rule: scale_lag["x"] < 5)`, body: `scale_lag["x"] = never`},
		{name: "no names", th: scenarios.ThresholdResult{Expr: `len(steps) > 5`},
			kind: "failure", typ: "threshold", msg: `(rule: len(steps) > 5)`},
		{name: "passes", th: scenarios.ThresholdResult{Expr: "p95 < 500", Pass: true, Values: map[string]float64{"p95": 12}},
			kind: "pass", stdout: "p95 = 12"},
		{name: "an abort rule that stopped the test", r: Report{Aborted: "p95 < 500"},
			th:   scenarios.ThresholdResult{Expr: "p95 < 500", Abort: true, Pass: true, Values: map[string]float64{"p95": 12}},
			kind: "failure", typ: "abort", msg: "stopped the test; at the end p95 = 12 (rule: p95 < 500)",
			body: "p95 = 12\nabort rule: the test stops as soon as it fails\nthis abort rule failed during the run and stopped the test (the values are at the end of the run)"},
		{name: "an abort rule that did not", r: Report{Aborted: "p99 < 1"},
			th:   scenarios.ThresholdResult{Expr: "p95 < 500", Abort: true, Pass: true, Values: map[string]float64{"p95": 12}},
			kind: "pass", stdout: "p95 = 12\nabort rule: the test stops as soon as it fails"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.r
			r.Name = "r"
			r.Delivery = Delivery{Complete: true, Ratio: 1}
			r.Thresholds = []scenarios.ThresholdResult{tc.th}
			_, s := junitOf(t, &r)
			c, _, ok := findCase(s, tc.th.Expr)
			if !ok {
				t.Fatalf("no case: %+v", s)
			}
			var p *xProblem
			switch tc.kind {
			case "pass":
				if c.Failure != nil || c.Error != nil || c.SystemOut != tc.stdout {
					t.Fatalf("%+v, want a pass with %q", c, tc.stdout)
				}
				return
			case "error":
				p = c.Error
			default:
				p = c.Failure
			}
			if p == nil {
				t.Fatalf("no %s: %+v", tc.kind, c)
			}
			if p.Message != tc.msg || p.Type != tc.typ || p.Body != tc.body {
				t.Fatalf("%s %q %q,\nwant %s %q %q", p.Type, p.Message, p.Body, tc.typ, tc.msg, tc.body)
			}
		})
	}

	// An abort rule that is not among the thresholds still says so.
	_, s := junitOf(t, &Report{Name: "r", Aborted: "p95 < 1", Delivery: Delivery{Complete: true}})
	if c, _, ok := findCase(s, "abort"); !ok || c.Failure == nil || c.Failure.Message != "stopped by the abort rule p95 < 1" {
		t.Fatalf("abort case %+v", c)
	}
	// Interrupted: an undelivered plan is not a failure.
	_, s = junitOf(t, &Report{Name: "r", Interrupted: true, Delivery: Delivery{Ratio: 0.5, Planned: 10, Counted: 5, MinDelivered: 0.95}})
	if c, _, _ := findCase(s, "delivery"); c.Failure != nil || !strings.Contains(c.SystemOut, "interrupted") {
		t.Fatalf("interrupted delivery %+v", c)
	}
	_, s = junitOf(t, &Report{Name: "r", Delivery: Delivery{Ratio: 0.5, Planned: 10, Counted: 5, MinDelivered: 0.95, Why: []string{"no results from c"}}})
	if c, _, _ := findCase(s, "delivery"); c.Failure == nil ||
		c.Failure.Message != "not delivered: delivered 50.0% of the planned arrivals (5 of 10; at least 95% needed): no results from c" {
		t.Fatalf("delivery %+v", c.Failure)
	}
}

// escapeReport has `<&"'` (and a control character, which XML cannot hold)
// in every place text reaches the XML.
func escapeReport() *Report {
	evil := `<a & "b" 'c'>` + "\x1b]0;x\x07"
	return &Report{ID: evil, Name: "n" + evil, Target: evil, Status: StatusFailed, Failed: evil, Aborted: evil,
		Delivery: Delivery{Why: []string{evil}, MinDelivered: 0.95},
		Thresholds: []scenarios.ThresholdResult{
			{Expr: `p95 < 500 || "<&\"'>" == "x"`, Values: map[string]float64{"p95": 612.3}},
			{Expr: `steps["<&\"'>"].p95 < 1`, Error: evil + "\n | caret\n | ^"},
			{Expr: `p95 < 1 ]]> <!--`, Values: map[string]float64{"p95": 3}},
		}}
}

func TestJUnitEscapes(t *testing.T) {
	r := escapeReport()
	doc, s := junitOf(t, r)
	for _, raw := range []string{`<a & `, `"b"`, `'c'`, `"<&`, "\x1b", "\x07"} {
		if bytes.Contains(doc, []byte(raw)) {
			t.Errorf("%q is not escaped:\n%s", raw, doc)
		}
	}
	for _, th := range r.Thresholds {
		if _, _, ok := findCase(s, th.Expr); !ok {
			t.Errorf("the rule %q does not read back", th.Expr)
		}
	}
	c, su, _ := findCase(s, `steps["<&\"'>"].p95 < 1`)
	if su != `step <&"'>` || c.Classname != "loadswarm.n"+`<a & "b" 'c'>`+"\uFFFD]0;x\uFFFD"+`.step <&"'>` {
		t.Errorf("suite %q class %q", su, c.Classname)
	}
	if c.Error == nil || c.Error.Message != `could not be evaluated: <a & "b" 'c'>`+"\uFFFD]0;x\uFFFD"+` (rule: steps["<&\"'>"].p95 < 1)` ||
		!strings.HasSuffix(c.Error.Body, "\n | caret\n | ^") {
		t.Errorf("error %+v", c.Error)
	}
	c, _, _ = findCase(s, `p95 < 500 || "<&\"'>" == "x"`)
	if c.Failure == nil || c.Failure.Message != `p95 = 612.3 (rule: p95 < 500 || "<&\"'>" == "x")` {
		t.Errorf("failure %+v", c.Failure)
	}
	xmllint(t, "escapes", doc)
}

// TestMarkdownGolden compares the summaries with testdata/summary_*.md;
// go test -run TestMarkdownGolden -update rewrites them.
func TestMarkdownGolden(t *testing.T) {
	for name, r := range ciReports(t) {
		var b bytes.Buffer
		if err := WriteMarkdown(&b, r); err != nil {
			t.Fatal(err)
		}
		file := filepath.Join("testdata", "summary_"+strings.ReplaceAll(name, " ", "_")+".md")
		if *update {
			if err := os.WriteFile(file, b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("%v (go test -run TestMarkdownGolden -update writes it)", err)
		}
		if !bytes.Equal(b.Bytes(), want) {
			t.Errorf("%s differs from %s (go test -run TestMarkdownGolden -update rewrites it):\n%s", name, file, b.String())
		}
	}
}

// mdCells splits a table row into its cells at the `|` not escaped.
func mdCells(row string) []string {
	row = strings.TrimSpace(row)
	row = strings.TrimPrefix(row, "|")
	var cells []string
	var cur strings.Builder
	for i := 0; i < len(row); i++ {
		switch {
		case row[i] == '\\' && i+1 < len(row):
			cur.WriteByte(row[i])
			cur.WriteByte(row[i+1])
			i++
		case row[i] == '|':
			cells = append(cells, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(row[i])
		}
	}
	if strings.TrimSpace(cur.String()) != "" {
		cells = append(cells, cur.String())
	}
	return cells
}

// TestMarkdownTables: names with `|`, line breaks and Markdown in them
// keep every table row to its header's cells, and every table line
// is a row.
func TestMarkdownTables(t *testing.T) {
	evil := "a|b\nc | d\r\n`e` *f* <g>|"
	st := storage.Summary{Requests: 3, Latency: storage.Latency{P50: 1, P95: 2, P99: 3}}
	one := 1.0
	r := &Report{Name: "n|" + evil, ID: "x|`y`", Target: "http://h/|", Status: StatusFailed,
		ByStep:   map[string]storage.Summary{evil: st, "ok": st},
		ByRegion: map[string]storage.Summary{evil: st},
		Observe:  &Observation{ScaleLag: map[string]*float64{evil: &one, "never": nil}},
		Failed:   evil, Aborted: evil,
		Delivery:   Delivery{Why: []string{evil}, MinDelivered: 0.95},
		Thresholds: []scenarios.ThresholdResult{{Expr: "p95 < 1 ||\n p99 < 2", Values: map[string]float64{"p95": 2, "p99": 3}}}}
	var b bytes.Buffer
	if err := WriteMarkdown(&b, r); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(b.String(), "\n")
	tables := 0
	for i := 0; i < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "|") {
			continue
		}
		tables++
		header := len(mdCells(lines[i]))
		if i+1 >= len(lines) || len(mdCells(lines[i+1])) != header {
			t.Fatalf("table without its delimiter row at line %d:\n%s", i, b.String())
		}
		rows := 0
		for i += 2; i < len(lines) && lines[i] != ""; i++ {
			if n := len(mdCells(lines[i])); !strings.HasPrefix(lines[i], "|") || n != header {
				t.Fatalf("row %q has %d cells, the header %d:\n%s", lines[i], n, header, b.String())
			}
			rows++
		}
		if rows == 0 {
			t.Fatalf("an empty table:\n%s", b.String())
		}
	}
	if tables != 4 { // totals, steps, regions, scale lag
		t.Fatalf("%d tables:\n%s", tables, b.String())
	}
	if !strings.Contains(b.String(), `a\|b<br>c \| d<br>\`+"`e\\` \\*f\\* \\<g\\>\\|") {
		t.Errorf("the step's name is not escaped as expected:\n%s", b.String())
	}
	// Outside tables a line break never starts a new Markdown line.
	for _, l := range lines {
		if strings.HasPrefix(l, " p99") || strings.HasPrefix(l, "c | d") {
			t.Errorf("a line break got through: %q", l)
		}
	}
}

func TestMarkdownContent(t *testing.T) {
	reports := ciReports(t)
	var b bytes.Buffer
	if err := WriteMarkdown(&b, reports["passed"]); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"## ✅ passed: r (`t-pass`) against `http://127.0.0.1:1`", "| a |", "| eu |", "- ✅ PASS `p95 < 1000`: `p95` = "} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("passed summary lacks %q:\n%s", s, b.String())
		}
	}
	b.Reset()
	if err := WriteMarkdown(&b, reports["failed"]); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"## ❌ failed: checkout ramp (`t-fail`)", "❌ FAIL `p95 < 100`", "(abort rule; **stopped the test**)",
		"`scale_lag[\"cpu\"]` = never", "**Aborted** by the threshold", "**Not delivered**", "**Incomplete**", "| replicas | 7 s |", "| cpu | never moved |",
		"could not be evaluated"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("failed summary lacks %q:\n%s", s, b.String())
		}
	}
}
