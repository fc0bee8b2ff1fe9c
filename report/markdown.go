package report

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/loadswarm/loadswarm/storage"
)

// WriteMarkdown writes a short summary of the report in GitHub-flavoured
// Markdown, for a CI job's summary page ($GITHUB_STEP_SUMMARY): a title with
// the status, the test's name, id and target; the totals; a row per step,
// and per region when the report keeps them; the thresholds with the
// values they read; notes when the test was aborted, interrupted, could
// not run or is incomplete; and the observed scale lag. Text from the test
// (names, rules, reasons) is escaped, so it cannot break a table or the
// layout.
func WriteMarkdown(w io.Writer, r *Report) error {
	b := &strings.Builder{}
	mark := "✅"
	if r.Status != StatusPassed {
		mark = "❌"
	}
	title := mdText(r.Name)
	if r.ID != "" {
		title += " (" + mdCode(r.ID) + ")"
	}
	if r.Target != "" {
		title += " against " + mdCode(r.Target)
	}
	fmt.Fprintf(b, "## %s %s: %s\n\n", mark, mdText(r.Status), title)
	span := ""
	if r.From > 0 || r.To >= 0 {
		to := "the end"
		if r.To >= 0 {
			to = fmt.Sprint(r.To)
		}
		span = fmt.Sprintf(", seconds %d to %s", r.From, to)
	}
	fmt.Fprintf(b, "%s s%s, %d arrivals planned, %d started.\n\n", ciNumber(ciFinite(r.DurationSec)), span, r.Planned, r.Arrivals)

	// Totals.
	b.WriteString("| requests | achieved / target rate | error rate | dropped | p50 | p95 | p99 |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|\n")
	fmt.Fprintf(b, "| %d | %s / %s /s | %s | %d | %s | %s | %s |\n", r.Requests,
		FormatRate(r.Rate.Achieved), FormatRate(r.Rate.Target), mdPercent(r.ErrorRate), r.Dropped,
		FormatMs(r.Latency.P50), FormatMs(r.Latency.P95), FormatMs(r.Latency.P99))

	// Steps, regions.
	if len(r.ByStep) > 0 {
		b.WriteString("\n### Steps\n\n")
		mdGroup(b, "step", r.StepNames(nil), r.ByStep)
	}
	if len(r.ByRegion) > 0 {
		keys := make([]string, 0, len(r.ByRegion))
		for k := range r.ByRegion {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		b.WriteString("\n### Regions\n\n")
		mdGroup(b, "region", keys, r.ByRegion)
	}

	// Thresholds.
	if len(r.Thresholds) > 0 {
		b.WriteString("\n### Thresholds\n\n")
		for _, t := range r.Thresholds {
			verdict := "✅ PASS"
			if !t.Pass {
				verdict = "❌ FAIL"
			}
			line := fmt.Sprintf("- %s %s", verdict, mdCode(t.Expr))
			var vals []string
			for _, l := range ciValueLines(r, t) {
				name, value, _ := strings.Cut(l, " = ")
				vals = append(vals, mdCode(name)+" = "+mdText(value))
			}
			if len(vals) > 0 {
				line += ": " + strings.Join(vals, ", ")
			}
			var notes []string
			if t.Abort {
				notes = append(notes, "abort rule")
			}
			if r.Aborted != "" && t.Abort && r.Aborted == t.Expr {
				notes = append(notes, "**stopped the test**")
			}
			if t.Error != "" {
				notes = append(notes, "could not be evaluated: "+mdText(ciFirstLine(t.Error)))
			}
			if len(notes) > 0 {
				line += " (" + strings.Join(notes, "; ") + ")"
			}
			b.WriteString(line + "\n")
		}
	}

	// Notes.
	var notes []string
	if r.Failed != "" {
		notes = append(notes, "**Could not run**: "+mdText(r.Failed))
	}
	if r.Aborted != "" {
		notes = append(notes, "**Aborted** by the threshold "+mdCode(r.Aborted))
	}
	if r.Interrupted {
		notes = append(notes, "**Interrupted**: stopped before its end")
	}
	d := r.Delivery
	if !d.Complete && !r.Interrupted {
		n := "**Not delivered**: " + mdText(ciDeliveryText(d))
		if len(d.Why) > 0 {
			n += ": " + mdText(strings.Join(d.Why, "; "))
		}
		notes = append(notes, n)
	}
	if r.Incomplete {
		n := fmt.Sprintf("**Incomplete**: %d second(s) of a node's share missing", d.MissingSeconds)
		if len(r.MissingNodes) > 0 {
			n += ", no results from " + mdText(strings.Join(r.MissingNodes, ", "))
		}
		notes = append(notes, n)
	}
	if len(notes) > 0 {
		b.WriteString("\n### Notes\n\n")
		for _, n := range notes {
			b.WriteString("- " + n + "\n")
		}
	}

	// Scale lag.
	if o := r.Observe; o != nil && len(o.ScaleLag) > 0 {
		keys := make([]string, 0, len(o.ScaleLag))
		for k := range o.ScaleLag {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		from := ""
		if main, ok := MainChange(o.Changes); ok {
			from = fmt.Sprintf(" after the rise from %s/s to %s/s at %s s", FormatRate(main.From), FormatRate(main.To), ciNumber(main.T))
		}
		fmt.Fprintf(b, "\n### Scale lag%s\n\n", from)
		b.WriteString("| series | scale lag |\n|---|---:|\n")
		for _, k := range keys {
			lag := "never moved"
			if v := o.ScaleLag[k]; v != nil {
				lag = ciNumber(*v) + " s"
			}
			fmt.Fprintf(b, "| %s | %s |\n", mdCell(k), lag)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func mdGroup(b *strings.Builder, what string, keys []string, m map[string]storage.Summary) {
	fmt.Fprintf(b, "| %s | requests | errors | error rate | req/s | p50 | p95 | p99 |\n", what)
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, k := range keys {
		s := m[k]
		fmt.Fprintf(b, "| %s | %d | %d | %s | %s | %s | %s | %s |\n", mdCell(k), s.Requests, s.Errors, mdPercent(s.ErrorRate),
			FormatRate(s.Rate.Requests), FormatMs(s.Latency.P50), FormatMs(s.Latency.P95), FormatMs(s.Latency.P99))
	}
}

func mdPercent(v float64) string {
	return fmt.Sprintf("%.2f%%", 100*ciFinite(v))
}

// mdText escapes text for a Markdown line: the characters that mean
// something inline are backslash-escaped, and line breaks become spaces.
func mdText(s string) string {
	var b strings.Builder
	for _, c := range oneLine(s) {
		if strings.ContainsRune("\\`*_[]<>|~&#$", c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// mdCell escapes text for a table cell: as mdText, so a `|` cannot end
// the cell, and a line break is a <br> that cannot end the row.
func mdCell(s string) string {
	lines := strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	for i, l := range lines {
		lines[i] = mdText(l)
	}
	return strings.Join(lines, "<br>")
}

// mdCode shows s as code, on one line: a span fenced with more backticks
// than it holds in a row. (Not for table cells: there GitHub ends a cell
// at a `|` even in code.)
func mdCode(s string) string {
	s = oneLine(s)
	run, longest := 0, 0
	for _, c := range s {
		if c == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fence := strings.Repeat("`", longest+1)
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") || strings.TrimSpace(s) == "" {
		s = " " + s + " "
	}
	return fence + s + fence
}

// oneLine replaces line breaks (and other control characters) with spaces.
func oneLine(s string) string {
	return strings.Map(func(c rune) rune {
		if c < 0x20 || c == 0x7f || c == '\u2028' || c == '\u2029' {
			return ' '
		}
		return c
	}, s)
}
