package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/loadswarm/loadswarm/report"
	"github.com/loadswarm/loadswarm/scenarios"
	"github.com/loadswarm/loadswarm/storage"
)

// RunOptions are the flags of `swarm run`.
type RunOptions struct {
	IO    IO
	File  string
	Local bool
	JSON  bool
	Quiet bool
	// Target replaces the file's target URL (same test, another system).
	Target string
	// API is the node to submit to (fleet runs).
	API string
	// Detach returns the test id at once instead of following the test.
	Detach bool
	// ByNode adds each node's arrivals per second to the live lines.
	ByNode bool
	// Report is an HTML report file to write when the test is over.
	Report string
	// Params are the run's parameters (-e, --env-file, -s).
	Params Params
	// Outputs are files for CI (--junit, --summary, --markdown).
	Outputs Outputs
	// Baseline is an earlier run to compare with (a test id or a file);
	// MaxRegression the limits that fail the run (exit 99).
	Baseline      string
	MaxRegression string
	env           map[string]string
	secret        []string
}

// NewCmdRun parses `swarm run`; runF does the work (tests pass their own).
func NewCmdRun(ios IO, runF func(context.Context, *RunOptions) error) *cobra.Command {
	opts := &RunOptions{IO: ios, API: defaultAPI()}
	cmd := &cobra.Command{
		Use:   "run [flags] TEST.yaml",
		Short: "Run a load test on the fleet (or --local) and print its merged report",
		Long: `Run a load test described in a YAML (or JSON) file.

By default the test goes to the node whose API is at --api (one started with
"swarm join"): it is validated, announced to the whole fleet, scheduled by one
node, and every node sends its share of the rate. The report merges every
node's results exactly. Ctrl-C stops the test on every node. With --local the
test runs from this host alone, no node needed.

Arrivals follow the file's load profile whatever the target's responses do
(an open model): latency counts from each arrival's scheduled time, so a
stalled target shows in the percentiles instead of slowing the test down.

While the test runs, a line per second goes to stderr: elapsed time, target
and achieved arrival rate, p50/p95/p99 latency of that second, errors and
dropped arrivals. The report (a table per step, then the thresholds) goes to
stdout; --json prints it as JSON for scripts.

Exit codes: 0 all thresholds passed, 99 a threshold failed, 1 anything else
(a bad file, an unreachable node, an interrupted run).`,
		Example: `  # run on the fleet of the node on this host, follow it live
  swarm run examples/spike.yaml

  # submit and return the test id (then: swarm tests, swarm results ID)
  swarm run --detach examples/spike.yaml

  # run on this host alone
  swarm run --local examples/constant.yaml

  # follow it, then write the HTML report (charts, thresholds, nodes)
  swarm run --report report.html examples/spike.yaml

  # parameters the file reads as env.KEY; a secret from $API_TOKEN, never stored
  swarm run -e BASE_PATH=/v2 -s API_TOKEN examples/spike.yaml

  # for CI: JUnit for the test tab, Markdown for the job's summary page
  swarm run --junit junit.xml --markdown "$GITHUB_STEP_SUMMARY" examples/spike.yaml

  # fail on a regression against the last good run
  swarm run --baseline 3f2a9c1b7d4e --max-regression p95=10%,error_rate=0.5pp examples/spike.yaml

  # the report as JSON, for CI
  swarm run --local --json examples/flow.yaml > report.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.File = args[0]
			if opts.MaxRegression != "" {
				if opts.Baseline == "" {
					return errors.New("--max-regression needs --baseline ID|FILE")
				}
				if _, err := report.ParseLimits(opts.MaxRegression); err != nil {
					return fmt.Errorf("--max-regression: %w", err)
				}
			}
			if opts.Baseline != "" && opts.Local && !fileExists(opts.Baseline) {
				return fmt.Errorf("--baseline %s: with --local, give a file (swarm results --json or --summary output)", opts.Baseline)
			}
			if opts.Baseline != "" && opts.Detach {
				return errors.New("--baseline: not with --detach (compare later: swarm compare BASE ID)")
			}
			if opts.Report != "" && (opts.Local || opts.Detach) {
				return errors.New("--report: the HTML report is made from a fleet's stores; not with --local or --detach (use swarm report ID later)")
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return runRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().BoolVar(&opts.Local, "local", false, "run on this host alone, without a fleet")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the report as JSON on stdout")
	cmd.Flags().BoolVarP(&opts.Quiet, "quiet", "q", false, "no live progress lines")
	cmd.Flags().StringVar(&opts.Target, "target", "", "replace the file's target base URL")
	cmd.Flags().StringVar(&opts.API, "api", opts.API, "address of the node's HTTP API (env: SWARM_API)")
	cmd.Flags().BoolVarP(&opts.Detach, "detach", "d", false, "submit, print the test id and return (fleet runs)")
	cmd.Flags().BoolVar(&opts.ByNode, "by-node", false, "show each node's arrivals per second in the live lines (fleet runs)")
	opts.Params.addFlags(cmd.Flags())
	opts.Outputs.addFlags(cmd.Flags())
	cmd.Flags().StringVar(&opts.Baseline, "baseline", "", "compare with an earlier run of the test: a test id, or a swarm results --json / --summary file")
	cmd.Flags().StringVar(&opts.MaxRegression, "max-regression", "", "with --baseline: exit 99 when a metric gets worse than this beyond noise: p95=10%,error_rate=0.5pp,rate=5%")
	cmd.Flags().StringVar(&opts.Report, "report", "", "when the test is over, write its HTML report to this file (fleet runs; see swarm report)")
	return cmd
}

func runRun(ctx context.Context, opts *RunOptions) error {
	var err error
	if opts.env, opts.secret, err = opts.Params.resolve(); err != nil {
		return err
	}
	sc, err := compileFile(opts.File, opts.Target, opts.env, opts.secret)
	if err != nil {
		return err
	}
	if !opts.Local {
		return runFleet(ctx, opts, sc)
	}
	return runLocal(ctx, opts, sc)
}

func runLocal(ctx context.Context, opts *RunOptions, sc *scenarios.Scenario) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if !opts.Quiet {
		fmt.Fprintf(opts.IO.ErrOut, "running %q against %s: %s, %s arrivals, peak %s/s, max %d in flight\n",
			sc.Name, sc.Target, sc.Profile.Duration(), sc.Arrivals, fmtRate(peakRate(sc.Profile)), sc.MaxInFlight)
		if b := scenarios.FDBudget(); sc.MaxInFlight > b && !sc.HTTP2 {
			fmt.Fprintf(opts.IO.ErrOut, "note: max_in_flight %d is more than the %d connections this process may open "+
				"(its open-files limit, `ulimit -n`): requests beyond wait for a free connection\n", sc.MaxInFlight, b)
		}
	}
	live := &liveView{sc: sc, w: opts.IO.ErrOut, quiet: opts.Quiet, cancel: cancel}
	res, err := scenarios.Run(ctx, scenarios.RunConfig{Scenario: sc, OnSecond: live.second})
	if err != nil {
		return err
	}
	aborted := ""
	if a := live.abortedBy(); a != nil {
		aborted = a.Expr
	}
	rep, err := report.Local(sc, res.Series, res.Canceled && aborted == "", aborted)
	if err != nil {
		return err
	}
	if err := printReport(opts.IO.Out, opts.JSON, sc, rep); err != nil {
		return err
	}
	if line := report.ConnLimitedLine(rep.ConnLimited); line != "" && opts.JSON && !opts.Quiet {
		fmt.Fprintln(opts.IO.ErrOut, line) // the JSON has it too; a person reads this
	}
	if err := opts.Outputs.write(rep, rep); err != nil {
		return err
	}
	gateErr := gateRun(ctx, nil, opts, rep)
	switch {
	case rep.Aborted != "":
		return ErrThresholds
	case rep.Interrupted:
		return errors.New("interrupted before the end of the test")
	case rep.Status != report.StatusPassed:
		return ErrThresholds
	}
	return gateErr
}

func peakRate(p scenarios.Profile) float64 {
	var m float64
	for _, s := range p.Segments() {
		m = max(m, s.From, s.To)
	}
	return m
}

// liveView prints a progress line per second and checks abort thresholds
// on the running totals.
type liveView struct {
	sc     *scenarios.Scenario
	w      io.Writer
	quiet  bool
	cancel context.CancelFunc

	mu      sync.Mutex
	total   *storage.Series // kept only when an abort threshold needs it
	errs    int64
	dropped int64
	aborted *scenarios.ThresholdResult
}

func (v *liveView) second(s *storage.Second) {
	v.mu.Lock()
	defer v.mu.Unlock()
	sum := storage.SummarizeSecond(s)
	v.errs += sum.Errors
	v.dropped += sum.Dropped
	if !v.quiet {
		fmt.Fprintf(v.w, "%5s  target %7s/s  achieved %7s/s  p50 %8s  p95 %8s  p99 %8s  errors %d  dropped %d\n",
			time.Duration(s.T+1)*time.Second, fmtRate(v.sc.Profile.SecondPlanned(s.T)), fmtRate(sum.Rate.Achieved),
			fmtMs(sum.Latency.P50), fmtMs(sum.Latency.P95), fmtMs(sum.Latency.P99), v.errs, v.dropped)
	}
	if v.aborted != nil || !hasAbort(v.sc) {
		return
	}
	if v.total == nil {
		v.total = storage.NewSeries()
	}
	_ = v.total.Add(s.Clone())
	env := v.sc.WithEnv(scenarios.ThresholdEnv(storage.Summarize(v.total, nil),
		storage.SummarizeBy(v.total, func(d storage.Dim) string { return d.Step })))
	if r, stop := v.sc.ShouldAbort(env, time.Duration(s.T+1)*time.Second); stop {
		v.aborted = &r
		fmt.Fprintf(v.w, "aborting: threshold %q failed\n", r.Expr)
		v.cancel()
	}
}

func (v *liveView) abortedBy() *scenarios.ThresholdResult {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.aborted
}

func hasAbort(sc *scenarios.Scenario) bool {
	for _, t := range sc.Thresholds {
		if t.Abort {
			return true
		}
	}
	return false
}

func printReport(w io.Writer, asJSON bool, sc *scenarios.Scenario, r *report.Report) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	}
	return report.WriteText(w, r, sc)
}

func fmtMs(ms float64) string  { return report.FormatMs(ms) }
func fmtRate(r float64) string { return report.FormatRate(r) }
