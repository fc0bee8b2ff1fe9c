package report

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/loadswarm/loadswarm/scenarios"
	"github.com/loadswarm/loadswarm/storage"
)

// WriteText renders a report for people: the arrivals against the plan, a
// table by step, the groups kept (region, node), errors with an example
// each, thresholds, delivery and the status. sc orders the steps; nil
// sorts them.
func WriteText(w io.Writer, r *Report, sc *scenarios.Scenario) error {
	span := ""
	if r.From > 0 || r.To >= 0 {
		to := "the end"
		if r.To >= 0 {
			to = fmt.Sprint(r.To)
		}
		span = fmt.Sprintf(", seconds %d to %s", r.From, to)
	}
	id := ""
	if r.ID != "" {
		id = " (" + r.ID + ")"
	}
	fmt.Fprintf(w, "\n%s%s — %s, %.0fs%s\n", r.Name, id, r.Target, r.DurationSec, span)
	fmt.Fprintf(w, "arrivals: target %s/s, achieved %s/s (%d planned, %d started, %d dropped)\n\n",
		FormatRate(r.Rate.Target), FormatRate(r.Rate.Achieved), r.Planned, r.Arrivals, r.Dropped)
	if line := ConnLimitedLine(r.ConnLimited); line != "" {
		fmt.Fprintf(w, "%s\n\n", line)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "step\trequests\terrors\treq/s\tp50\tp90\tp95\tp99\tmax\t")
	row := func(name string, s storage.Summary) {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", name, s.Requests, s.Errors,
			FormatRate(s.Rate.Requests),
			FormatMs(s.Latency.P50), FormatMs(s.Latency.P90), FormatMs(s.Latency.P95), FormatMs(s.Latency.P99), FormatMs(s.Latency.Max))
	}
	for _, name := range r.StepNames(sc) {
		row(name, r.ByStep[name])
	}
	row("total", r.Summary)
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, g := range []struct {
		name string
		m    map[string]storage.Summary
	}{{"region", r.ByRegion}, {"node", r.ByNode}} {
		if err := writeGroup(w, g.name, g.m); err != nil {
			return err
		}
	}
	if len(r.ErrorsByClass) > 0 {
		fmt.Fprintln(w, "\nerrors:")
		classes := make([]string, 0, len(r.ErrorsByClass))
		for k := range r.ErrorsByClass {
			classes = append(classes, k)
		}
		sort.Strings(classes)
		for _, k := range classes {
			ex := ""
			if s := r.Samples[k]; len(s) > 0 {
				ex = "  e.g. " + s[0]
			}
			fmt.Fprintf(w, "  %-9s %d%s\n", k, r.ErrorsByClass[k], ex)
		}
	}
	writeObservation(w, r.Observe)
	if len(r.Thresholds) > 0 {
		fmt.Fprintln(w, "\nthresholds:")
		for _, t := range r.Thresholds {
			mark := "pass"
			if !t.Pass {
				mark = "FAIL"
			}
			extra := ""
			if t.Error != "" {
				extra = "  (" + t.Error + ")"
			}
			fmt.Fprintf(w, "  %s  %s%s\n", mark, t.Expr, extra)
		}
	}
	d := r.Delivery
	if !d.Complete || d.Undelivered > 0 || len(d.Why) > 0 {
		mark := "delivered"
		if !d.Complete {
			mark = "NOT DELIVERED"
		}
		fmt.Fprintf(w, "\ndelivery: %s: %.1f%% of the planned arrivals were sent or counted (%d of %d; at least %.0f%% needed)\n",
			mark, 100*d.Ratio, d.Counted, d.Planned, 100*d.MinDelivered)
		for _, why := range d.Why {
			fmt.Fprintf(w, "  %s\n", why)
		}
	}
	if len(r.FromReplicas) > 0 {
		fmt.Fprintf(w, "\nfrom replicas (the nodes did not answer): %s\n", strings.Join(r.FromReplicas, ", "))
	}
	if len(r.MissingNodes) > 0 {
		fmt.Fprintf(w, "\nMISSING (not in the numbers): %s\n", strings.Join(r.MissingNodes, ", "))
	}
	if r.Incomplete {
		fmt.Fprintf(w, "\nresults INCOMPLETE: %d second(s) of a node's share missing, %d node(s) missing\n", d.MissingSeconds, len(r.MissingNodes))
	}
	switch {
	case r.Failed != "":
		fmt.Fprintf(w, "\nstatus: %s (could not run: %s)\n", r.Status, r.Failed)
	case r.Aborted != "":
		fmt.Fprintf(w, "\nstatus: %s (aborted early: %s)\n", r.Status, r.Aborted)
	case r.Interrupted:
		fmt.Fprintf(w, "\nstatus: interrupted\n")
	default:
		fmt.Fprintf(w, "\nstatus: %s\n", r.Status)
	}
	return nil
}

func writeGroup(w io.Writer, name string, m map[string]storage.Summary) error {
	if len(m) == 0 {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "%s\trequests\terrors\tachieved/s\tp50\tp95\tp99\t\n", name)
	for _, k := range keys {
		s := m[k]
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\t%s\t%s\t\n", k, s.Requests, s.Errors, FormatRate(s.Rate.Achieved),
			FormatMs(s.Latency.P50), FormatMs(s.Latency.P95), FormatMs(s.Latency.P99))
	}
	return tw.Flush()
}

// FormatMs shows a latency in milliseconds with sensible precision.
func FormatMs(ms float64) string {
	switch {
	case ms == 0:
		return "-"
	case ms < 10:
		return fmt.Sprintf("%.2fms", ms)
	case ms < 1000:
		return fmt.Sprintf("%.1fms", ms)
	default:
		return fmt.Sprintf("%.2fs", ms/1000)
	}
}

// FormatRate shows a rate without needless decimals.
func FormatRate(r float64) string {
	if r >= 100 || r == float64(int64(r)) {
		return fmt.Sprintf("%.0f", r)
	}
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", r), "0"), ".")
}

// writeObservation prints the system under test as observed, and the
// story in numbers: how far each series moved, how long after the main
// rise, and when latency came back under its threshold.
func writeObservation(w io.Writer, o *Observation) {
	if o == nil || (len(o.Series) == 0 && len(o.Recovery) == 0) {
		return
	}
	main, hasMain := MainChange(o.Changes)
	if len(o.Series) > 0 {
		fmt.Fprintln(w, "\nsystem under test (observe):")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "series\tfirst\tmin\tmax\tlast\tmoved after rise\tgaps\t")
		for _, s := range o.Series {
			lag := "-"
			if l, ok := o.ScaleLag[s.Name]; ok {
				lag = "never moved"
				if l != nil {
					lag = fmt.Sprintf("%.0fs", *l)
				}
			}
			gaps := fmt.Sprint(s.Gaps)
			if len(s.GapReasons) > 0 {
				gaps += " (" + strings.Join(s.GapReasons, "; ") + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", s.Name, formatValue(s.First), formatValue(s.Min),
				formatValue(s.Max), formatValue(s.Last), lag, gaps)
		}
		_ = tw.Flush()
	}
	if !hasMain {
		return
	}
	var story []string
	for _, s := range storySeries(o) {
		story = append(story, fmt.Sprintf("%s %s → %s, scale lag %.0f s", s.Name, formatValue(s.First), formatValue(s.Max), *o.ScaleLag[s.Name]))
	}
	for _, q := range []string{"p50", "p95", "p99"} {
		limit, ok := o.Limits[q]
		if !ok {
			continue
		}
		switch rec := o.Recovery[q]; {
		case rec == nil:
			story = append(story, fmt.Sprintf("%s not back under %s by the end", q, FormatMs(limit)))
		case *rec == 0:
			story = append(story, fmt.Sprintf("%s stayed under %s", q, FormatMs(limit)))
		default:
			story = append(story, fmt.Sprintf("%s back under %s after %.0f s", q, FormatMs(limit), *rec))
		}
	}
	if len(story) > 0 {
		fmt.Fprintf(w, "\nafter the rise from %s/s to %s/s at %.0fs: %s\n", FormatRate(main.From), FormatRate(main.To), main.T, strings.Join(story, "; "))
	}
}

// formatValue shows an observed value without needless decimals.
func formatValue(v float64) string {
	if v == float64(int64(v)) && v < 1e15 && v > -1e15 {
		return fmt.Sprintf("%d", int64(v))
	}
	return fmt.Sprintf("%.3g", v)
}

// storySeries picks the series the story tells of: those that moved after
// the rise, capacity first (a name with "replica"), at most three.
func storySeries(o *Observation) []SUTSeries {
	var capacity, other []SUTSeries
	for _, s := range o.Series {
		if o.ScaleLag[s.Name] == nil || s.Samples == 0 {
			continue
		}
		if strings.Contains(strings.ToLower(s.Name), "replica") {
			capacity = append(capacity, s)
		} else {
			other = append(other, s)
		}
	}
	all := append(capacity, other...)
	return all[:min(len(all), 3)]
}

// ConnLimitedLine says how a test was held back by its connections, or ""
// when it was not.
func ConnLimitedLine(c *storage.ConnLimited) string {
	if c == nil || c.Waited == 0 {
		return ""
	}
	return fmt.Sprintf("connection-limited: %d requests (%.1f%%) waited for a free connection, %s on average "+
		"(their latency includes it): a node's connection budget, max_in_flight or its open-files limit, was spent; "+
		"raise `ulimit -n`, or add nodes", c.Waited, 100*c.Share, FormatMs(c.MeanWaitMs))
}
