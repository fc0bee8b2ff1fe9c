package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/loadswarm/loadswarm/node"
	"github.com/loadswarm/loadswarm/report"
)

// CompareOptions are the flags of `swarm compare`.
type CompareOptions struct {
	IO            IO
	API           string
	Base, New     string
	JSON          bool
	MaxRegression string
}

// NewCmdCompare parses `swarm compare`.
func NewCmdCompare(ios IO, runF func(context.Context, *CompareOptions) error) *cobra.Command {
	opts := &CompareOptions{IO: ios, API: defaultAPI()}
	cmd := &cobra.Command{
		Use:   "compare BASE NEW [--max-regression p95=10%,error_rate=0.5pp]",
		Short: "Compare two runs of a test: what changed, and whether it is beyond noise",
		Long: `Compare two runs of the same test, each given as a test id (asked of the
node at --api, merged from the fleet's stores), a report file made by
"swarm report", or the JSON of "swarm results --json" or "--summary".

For the whole test, each step and each region it prints the achieved rate,
the error rate and p50/p95/p99, the change, and the noise: the smallest
change the two runs can tell apart (the histograms keep 3 significant
digits; each run varies from second to second, and a step or a region with
fewer requests varies more; error rates are compared as two proportions).
A change within the noise is marked "~".

With --max-regression, a change that is worse than its limit and beyond the
noise is a regression: the command lists them and exits 99. Limits are a
share of the baseline (p95=10%, rate=5%) or, for error_rate, percentage
points (error_rate=0.5pp). Exit code 0 otherwise, 1 on an error.`,
		Example: `  swarm compare 3f2a9c1b7d4e 9d0e1f2a3b4c
  swarm compare last-main.json 9d0e1f2a3b4c --max-regression p95=10%,error_rate=0.5pp
  swarm tests --name checkout          # the runs to pick from`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Base, opts.New = args[0], args[1]
			if opts.MaxRegression != "" {
				if _, err := report.ParseLimits(opts.MaxRegression); err != nil {
					return fmt.Errorf("--max-regression: %w", err)
				}
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return compareRun(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.API, "api", opts.API, "address of the node's HTTP API, for test ids (env: SWARM_API)")
	f.BoolVar(&opts.JSON, "json", false, "print the comparison as JSON")
	f.StringVar(&opts.MaxRegression, "max-regression", "", "fail (exit 99) when a metric gets worse than this beyond noise: p95=10%,error_rate=0.5pp,rate=5%")
	return cmd
}

func compareRun(ctx context.Context, opts *CompareOptions) error {
	c := node.NewClient(opts.API, nil)
	base, err := loadBaseline(ctx, c, opts.Base)
	if err != nil {
		return fmt.Errorf("%s: %w", opts.Base, err)
	}
	cur, err := loadBaseline(ctx, c, opts.New)
	if err != nil {
		return fmt.Errorf("%s: %w", opts.New, err)
	}
	return compareAndGate(opts.IO.Out, opts.JSON, &base.results.Report, &cur.results.Report, opts.MaxRegression)
}

// ErrRegression is a change beyond a --max-regression limit (exit 99).
var ErrRegression = fmt.Errorf("%w: a regression against the baseline", ErrThresholds)

// compareAndGate prints the comparison and returns ErrRegression when a
// limit is broken.
func compareAndGate(w io.Writer, asJSON bool, base, cur *report.Report, limits string) error {
	cmp, err := report.Compare(base, cur)
	if err != nil {
		return err
	}
	var regs []report.Change
	if limits != "" {
		ls, err := report.ParseLimits(limits)
		if err != nil {
			return fmt.Errorf("--max-regression: %w", err)
		}
		regs = cmp.Regressions(ls)
	}
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"comparison": cmp, "regressions": nonNil(regs)}); err != nil {
			return err
		}
	} else {
		printComparison(w, cmp, regs)
	}
	if len(regs) > 0 {
		return ErrRegression
	}
	return nil
}

func nonNil(c []report.Change) []report.Change {
	if c == nil {
		return []report.Change{}
	}
	return c
}

func printComparison(w io.Writer, cmp *report.Comparison, regs []report.Change) {
	fmt.Fprintf(w, "%s: %s (baseline) -> %s\n\n", cmp.Name, orDash(cmp.BaseID), orDash(cmp.NewID))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "SCOPE\tMETRIC\tBASELINE\tNEW\tCHANGE\tNOISE\t\t")
	for _, ch := range cmp.Changes {
		mark := "~"
		switch {
		case ch.Beyond && ch.Worse:
			mark = "worse"
		case ch.Beyond:
			mark = "better"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t±%s\t%s\t\n", ch.Scope, ch.Metric, fmtMetric(ch.Metric, ch.Base), fmtMetric(ch.Metric, ch.New),
			fmtChange(ch), fmtMetric(ch.Metric, ch.Noise), mark)
	}
	_ = tw.Flush()
	if len(regs) > 0 {
		fmt.Fprintf(w, "\n%d regression(s):\n", len(regs))
		for _, r := range regs {
			fmt.Fprintf(w, "  %s %s: %s -> %s (%s)\n", r.Scope, r.Metric, fmtMetric(r.Metric, r.Base), fmtMetric(r.Metric, r.New), fmtChange(r))
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func fmtMetric(m string, v float64) string {
	switch m {
	case "rate":
		return fmtRate(v) + "/s"
	case "error_rate":
		return fmt.Sprintf("%.2f%%", 100*v)
	}
	return fmtMs(v)
}

func fmtChange(ch report.Change) string {
	switch {
	case ch.Metric == "error_rate":
		return fmt.Sprintf("%+.2fpp", 100*ch.Delta)
	case ch.Base == 0 && ch.Delta == 0:
		return "0%"
	case ch.Base == 0:
		return "new"
	case math.Abs(ch.Ratio) < 0.0005:
		return "0%"
	}
	return fmt.Sprintf("%+.1f%%", 100*ch.Ratio)
}

// gateRun compares a finished run with its baseline when asked
// (--baseline, --max-regression), on stderr when stdout holds JSON.
func gateRun(ctx context.Context, c *node.Client, opts *RunOptions, cur *report.Report) error {
	if opts.Baseline == "" {
		return nil
	}
	if c == nil && !fileExists(opts.Baseline) {
		return errors.New("--baseline: with --local, give a file (swarm results --json or --summary output)")
	}
	base, err := loadBaseline(ctx, c, opts.Baseline)
	if err != nil {
		return fmt.Errorf("--baseline %s: %w", opts.Baseline, err)
	}
	w := opts.IO.Out
	if opts.JSON {
		w = opts.IO.ErrOut
	}
	fmt.Fprintln(w)
	return compareAndGate(w, false, &base.results.Report, cur, opts.MaxRegression)
}
