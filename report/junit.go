package report

import (
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/loadswarm/loadswarm/scenarios"
)

// JUnit XML, for CI systems that show test results (Jenkins, GitLab,
// GitHub test reporters): a test is a <testsuites>, with a <testsuite> per
// group of thresholds and a <testcase> per threshold, plus the delivery and,
// when the test could not run, the run. The layout follows the common
// Ant/Jenkins dialect (report/testdata/junit.xsd).

// JUnit suite names: the fleet-wide numbers (and the test's own cases:
// delivery, run), one suite per step and per region a rule reads, and the
// system under test (sut, scale_lag, recovery).
const (
	junitFleet  = "fleet"
	junitSystem = "system"
)

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Time       string          `xml:"time,attr"`
	Properties *junitProps     `xml:"properties,omitempty"`
	Cases      []junitTestCase `xml:"testcase"`
}

type junitProps struct {
	Props []junitProp `xml:"property"`
}

type junitProp struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitTestCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Failure   *junitProblem `xml:"failure,omitempty"`
	Error     *junitProblem `xml:"error,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Body    string `xml:",chardata"`
}

// WriteJUnit writes the report as JUnit XML: a <testsuite> per group of
// thresholds ("fleet", "step NAME", "region NAME", "system"; a rule that
// reads several goes to the first it names), a <testcase> per threshold
// (a <failure> with the values it read when it failed, an <error> when it
// could not be evaluated), a "delivery" case in the fleet suite (failed
// when the test did not deliver its plan and was not interrupted), and a
// "run" case with an <error> when the test could not run. Times are the
// report's duration in seconds; the report has no start time to give.
func WriteJUnit(w io.Writer, r *Report) error {
	secs := fmt.Sprintf("%.3f", math.Max(0, ciFinite(r.DurationSec)))
	class := func(group string) string { return "loadswarm." + r.Name + "." + group }

	fleet := &junitSuite{Name: junitFleet}
	props := []junitProp{{"id", r.ID}, {"target", r.Target}, {"status", r.Status}}
	if r.Aborted != "" {
		props = append(props, junitProp{"aborted", r.Aborted})
	}
	if r.Interrupted {
		props = append(props, junitProp{"interrupted", "true"})
	}
	if r.Incomplete {
		props = append(props, junitProp{"incomplete", "true"})
	}
	fleet.Properties = &junitProps{Props: props}
	suites := []*junitSuite{fleet}
	byName := map[string]*junitSuite{junitFleet: fleet}

	abortMatched := false
	for _, t := range r.Thresholds {
		group := ThresholdGroup(t.Expr)
		s := byName[group]
		if s == nil {
			s = &junitSuite{Name: group}
			byName[group] = s
			suites = append(suites, s)
		}
		stopped := r.Aborted != "" && t.Abort && r.Aborted == t.Expr
		abortMatched = abortMatched || stopped
		s.Cases = append(s.Cases, thresholdCase(r, t, class(group), stopped))
	}
	if r.Aborted != "" && !abortMatched {
		fleet.Cases = append(fleet.Cases, junitTestCase{Name: "abort", Classname: class(junitFleet),
			Failure: &junitProblem{Type: "abort", Message: "stopped by the abort rule " + r.Aborted}})
	}
	fleet.Cases = append(fleet.Cases, deliveryCase(r, class(junitFleet)))
	if r.Failed != "" {
		fleet.Cases = append(fleet.Cases, junitTestCase{Name: "run", Classname: class(junitFleet),
			Error: &junitProblem{Type: "run", Message: "could not run: " + r.Failed, Body: r.Failed}})
	}

	out := junitSuites{Name: "loadswarm", Time: secs}
	for _, s := range suites {
		s.Time = secs
		s.Tests = len(s.Cases)
		for _, c := range s.Cases {
			if c.Failure != nil {
				s.Failures++
			}
			if c.Error != nil {
				s.Errors++
			}
		}
		out.Tests += s.Tests
		out.Failures += s.Failures
		out.Errors += s.Errors
		out.Suites = append(out.Suites, *s)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}

func thresholdCase(r *Report, t scenarios.ThresholdResult, class string, stopped bool) junitTestCase {
	c := junitTestCase{Name: t.Expr, Classname: class}
	values := ciValuesText(r, t)
	lines := ciValueLines(r, t)
	body := strings.Join(lines, "\n")
	if t.Abort {
		body = strings.TrimPrefix(body+"\nabort rule: the test stops as soon as it fails", "\n")
	}
	rule := "(rule: " + t.Expr + ")"
	switch {
	case t.Error != "":
		msg := "could not be evaluated: " + ciFirstLine(t.Error) + " " + rule
		if stopped {
			msg = "stopped the test; " + msg
		}
		c.Error = &junitProblem{Type: "threshold", Message: msg, Body: strings.TrimPrefix(body+"\nerror: "+t.Error, "\n")}
	case stopped:
		// It failed during the run; the values are those at its end, when
		// it may pass again.
		msg := "stopped the test"
		if values != "" {
			msg += "; at the end " + values
		}
		c.Failure = &junitProblem{Type: "abort", Message: msg + " " + rule,
			Body: strings.TrimPrefix(body+"\nthis abort rule failed during the run and stopped the test (the values are at the end of the run)", "\n")}
	case !t.Pass:
		msg := rule
		if values != "" {
			msg = values + " " + rule
		}
		c.Failure = &junitProblem{Type: "threshold", Message: msg, Body: body}
	default:
		c.SystemOut = body
	}
	return c
}

func deliveryCase(r *Report, class string) junitTestCase {
	d := r.Delivery
	c := junitTestCase{Name: "delivery", Classname: class}
	msg := ciDeliveryText(d)
	body := strings.Join(append([]string{msg}, d.Why...), "\n")
	switch {
	case !d.Complete && !r.Interrupted:
		if len(d.Why) > 0 {
			msg += ": " + strings.Join(d.Why, "; ")
		}
		c.Failure = &junitProblem{Type: "delivery", Message: "not delivered: " + msg, Body: body}
	case r.Interrupted:
		c.SystemOut = "interrupted before its end, so not all of the plan was due: " + body
	default:
		c.SystemOut = body
	}
	return c
}

// ciDeliveryText says how much of its plan a test delivered: "delivered
// 75.0% of the planned arrivals (750 of 1000; at least 95% needed)".
func ciDeliveryText(d Delivery) string {
	return fmt.Sprintf("delivered %.1f%% of the planned arrivals (%d of %d; at least %.0f%% needed)",
		100*ciFinite(d.Ratio), d.Counted, d.Planned, 100*ciFinite(d.MinDelivered))
}

// ThresholdGroup is the group a rule's results go in: "fleet" for the
// fleet-wide numbers (and rules that read no name), "step NAME" for
// steps["NAME"], "region NAME" for regions["NAME"], "system" for sut,
// scale_lag and recovery. A rule that reads several goes to the first
// it names.
func ThresholdGroup(rule string) string {
	names, err := scenarios.ThresholdNames(rule)
	if err != nil || len(names) == 0 {
		return junitFleet
	}
	switch n := names[0]; n.Group {
	case "steps":
		return "step " + n.Key
	case "regions":
		return "region " + n.Key
	case "sut", "scale_lag", "recovery":
		return junitSystem
	}
	return junitFleet
}

// ciValueLines are "name = value" for each name the rule reads, in
// the order it writes them: the value it read, "never" for a scale lag or
// recovery that never happened (+Inf), "no value" for a name it could not
// read.
func ciValueLines(r *Report, t scenarios.ThresholdResult) []string {
	names, _ := scenarios.ThresholdNames(t.Expr)
	var out []string
	seen := map[string]bool{}
	for _, n := range names {
		seen[n.Text] = true
		out = append(out, n.Text+" = "+ciValue(r, t, n))
	}
	// Values from elsewhere (a result made by hand): sorted, after.
	var rest []string
	for k := range t.Values {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	for _, k := range rest {
		out = append(out, k+" = "+ciNumber(t.Values[k]))
	}
	return out
}

// ciValuesText is the value lines on one line: "p95 = 612.3, p99 =
// 900".
func ciValuesText(r *Report, t scenarios.ThresholdResult) string {
	return strings.Join(ciValueLines(r, t), ", ")
}

func ciValue(r *Report, t scenarios.ThresholdResult, n scenarios.ThresholdName) string {
	if v, ok := t.Values[n.Text]; ok {
		return ciNumber(v)
	}
	if r != nil && r.Observe != nil {
		var m map[string]*float64
		switch n.Group {
		case "scale_lag":
			m = r.Observe.ScaleLag
		case "recovery":
			m = r.Observe.Recovery
		}
		if v, ok := m[n.Key]; ok && v == nil {
			return "never"
		}
	}
	return "no value"
}

// ciNumber shows a measured number: whole numbers as such, others to
// three decimals (six significant digits under 1).
func ciNumber(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return strconv.FormatFloat(v, 'f', -1, 64)
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return strconv.FormatInt(int64(v), 10)
	case math.Abs(v) >= 1:
		return strconv.FormatFloat(math.Round(v*1000)/1000, 'f', -1, 64)
	}
	p, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 6, 64), 64)
	return strconv.FormatFloat(p, 'f', -1, 64)
}

func ciFinite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}

// ciFirstLine is the first line of an expr error: the rest shows the rule
// with a caret under the spot.
func ciFirstLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(first)
}
