package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/loadswarm/loadswarm/node"
	"github.com/loadswarm/loadswarm/report"
	"github.com/loadswarm/loadswarm/scenarios"
)

// defaultAPI is the node API address: SWARM_API, or the default.
func defaultAPI() string {
	if v, ok := os.LookupEnv("SWARM_API"); ok && v != "" {
		return v
	}
	return node.DefaultAPI
}

// pollEvery is how often a followed test is polled.
const pollEvery = 500 * time.Millisecond

// runFleet submits a test to a node and follows it to its report.
func runFleet(ctx context.Context, opts *RunOptions, sc *scenarios.Scenario) error {
	spec, err := os.ReadFile(opts.File)
	if err != nil {
		return err
	}
	c := node.NewClient(opts.API, nil)
	id, err := c.SubmitRun(ctx, node.Run{Spec: string(spec), Target: opts.Target, Env: opts.env, Secret: opts.secret})
	if err != nil {
		return fmt.Errorf("submit to %s: %w", opts.API, err)
	}
	if opts.Detach {
		fmt.Fprintln(opts.IO.Out, id)
		return nil
	}
	if !opts.Quiet {
		fmt.Fprintf(opts.IO.ErrOut, "test %s submitted to %s: %q against %s, %s, peak %s/s\n",
			id, opts.API, sc.Name, sc.Target, sc.Profile.Duration(), fmtRate(peakRate(sc.Profile)))
	}
	st, err := follow(ctx, c, id, opts)
	if err != nil {
		return err
	}
	rep := st.Report
	if opts.JSON {
		enc := json.NewEncoder(opts.IO.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		if err := printReport(opts.IO.Out, false, sc, &rep.Report); err != nil {
			return err
		}
		printNodes(opts.IO.Out, rep)
	}
	// A report that cannot be written does not hide how the test went;
	// it fails a run that passed.
	reportErr := opts.Outputs.write(&rep.Report, rep)
	if reportErr != nil {
		fmt.Fprintln(opts.IO.ErrOut, reportErr)
	}
	if opts.Report != "" {
		if err := writeReport(ctx, c, id, opts.Report, "", opts.IO.Out); err != nil {
			reportErr = errors.Join(reportErr, fmt.Errorf("--report: %w", err))
			fmt.Fprintln(opts.IO.ErrOut, err)
		} else if !opts.Quiet {
			fmt.Fprintf(opts.IO.ErrOut, "report written to %s\n", opts.Report)
		}
	}
	if opts.Baseline != "" && st.State != node.StateFailed {
		// The merged stores' numbers, with every region and step.
		if cur, err := fetchRun(ctx, c, id); err != nil {
			reportErr = errors.Join(reportErr, err)
		} else if err := gateRun(ctx, c, opts, &cur.results.Report); err != nil {
			reportErr = errors.Join(reportErr, err)
		}
	}
	switch {
	case st.State == node.StateFailed:
		return fmt.Errorf("test %s could not run: %s", id, st.Reason)
	case rep.Aborted != "":
		return ErrThresholds // the scheduler stopped it: an abort threshold failed
	case rep.Interrupted:
		return fmt.Errorf("test %s was stopped: %s", id, st.Reason)
	case rep.Status != report.StatusPassed:
		return ErrThresholds
	}
	return reportErr
}

// follow prints a line per second of the test until it is over; Ctrl-C
// stops the test on the fleet.
func follow(ctx context.Context, c *node.Client, id string, opts *RunOptions) (node.TestStatus, error) {
	next := int64(0)
	stopped := false
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	var planned bool
	var epoch uint64
	shares := map[string]bool{}
	for {
		if ctx.Err() != nil && !stopped {
			stopped = true
			fmt.Fprintf(opts.IO.ErrOut, "stopping test %s on the fleet...\n", id)
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_, err := c.Stop(sctx, id)
			cancel()
			if err != nil {
				return node.TestStatus{}, fmt.Errorf("stop %s: %w", id, err)
			}
		}
		qctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		st, err := c.Test(qctx, id, next, opts.ByNode)
		cancel()
		if err != nil {
			return st, err
		}
		if !planned && st.Start != nil && !opts.Quiet {
			planned = true
			fmt.Fprintf(opts.IO.ErrOut, "scheduled by %s on %d node(s); starts %s\n", st.Scheduler, st.Nodes, st.Start.Local().Format("15:04:05.000"))
			for name, why := range st.Excluded {
				fmt.Fprintf(opts.IO.ErrOut, "  %s takes no part: %s\n", name, why)
			}
		}
		if st.Start != nil && st.Epoch != epoch {
			if epoch != 0 && !opts.Quiet {
				printPlanChange(opts.IO.ErrOut, st, shares)
			}
			epoch = st.Epoch
			clear(shares)
			for _, ns := range st.NodeStates {
				if ns.Rate > 0 {
					shares[ns.Name] = true
				}
			}
		}
		over := st.Report != nil
		for _, s := range st.Seconds {
			if s.T < next || (!over && s.T > st.CompleteThrough) {
				continue
			}
			if !opts.Quiet {
				printSecond(opts.IO.ErrOut, s)
			}
			next = s.T + 1
		}
		if over {
			return st, nil
		}
		if st.State == node.StateFailed {
			return st, fmt.Errorf("test %s could not run: %s", id, st.Reason)
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
		}
	}
}

// printPlanChange says what a new plan changed: who joined the test (a node
// that joined the fleet mid-test, or took over a lost share), who left it,
// and each node's rate now.
func printPlanChange(w io.Writer, st node.TestStatus, before map[string]bool) {
	var joined, rates []string
	now := map[string]bool{}
	for _, ns := range st.NodeStates {
		if ns.Rate <= 0 {
			continue
		}
		now[ns.Name] = true
		rates = append(rates, fmt.Sprintf("%s=%s", ns.Name, fmtRate(ns.Rate)))
		if !before[ns.Name] {
			joined = append(joined, ns.Name)
		}
	}
	var left []string
	for name := range before {
		if !now[name] {
			left = append(left, name)
		}
	}
	sort.Strings(left)
	line := fmt.Sprintf("plan epoch %d by %s: %s/s", st.Epoch, st.Scheduler, strings.Join(rates, " "))
	if len(joined) > 0 {
		line += "; joined: " + strings.Join(joined, ", ")
	}
	if len(left) > 0 {
		line += "; left: " + strings.Join(left, ", ")
	}
	fmt.Fprintln(w, line)
}

func printSecond(w io.Writer, s node.SecondStats) {
	fmt.Fprintf(w, "%5s  target %7s/s  achieved %7s/s  p50 %8s  p95 %8s  p99 %8s  errors %d  dropped %d  nodes %d",
		time.Duration(s.T+1)*time.Second, fmtRate(s.Target), fmtRate(s.Achieved),
		fmtMs(s.P50), fmtMs(s.P95), fmtMs(s.P99), s.Errors, s.Dropped, s.Nodes)
	if len(s.ByNode) > 0 {
		names := make([]string, 0, len(s.ByNode))
		for k := range s.ByNode {
			names = append(names, k)
		}
		sort.Strings(names)
		var parts []string
		for _, k := range names {
			parts = append(parts, fmt.Sprintf("%s=%s", k, fmtRate(s.ByNode[k])))
		}
		fmt.Fprintf(w, "  [%s]", strings.Join(parts, " "))
	}
	fmt.Fprintln(w)
}

func printNodes(w io.Writer, rep *node.FleetReport) {
	fmt.Fprintf(w, "\nnodes (start skew up to %.1fms):\n", rep.StartSkewMs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, n := range rep.Nodes {
		state := "done"
		switch {
		case n.Stopped != "":
			state = "stopped: " + n.Stopped
		case !n.Done:
			state = "no final word (lost?)"
		}
		s := rep.ByNode[n.Name]
		fmt.Fprintf(tw, "  %s\t%s\t%d requests\tp50 %s\tp99 %s\t%s\n", n.Name, dash(n.Region), s.Requests,
			fmtMs(s.Latency.P50), fmtMs(s.Latency.P99), state)
	}
	tw.Flush()
}

// TestsOptions are the flags of `swarm tests`.
type TestsOptions struct {
	IO   IO
	API  string
	JSON bool
	// Name lists the history of one test instead: every stored run.
	Name string
}

// NewCmdTests parses `swarm tests`.
func NewCmdTests(ios IO, runF func(context.Context, *TestsOptions) error) *cobra.Command {
	opts := &TestsOptions{IO: ios, API: defaultAPI()}
	cmd := &cobra.Command{
		Use:   "tests [--api ADDR] [--json] [--name NAME]",
		Short: "List the tests a node knows, newest first",
		Long: `List the tests the node at --api has seen: submitted anywhere in the fleet
while it was up. States: pending (no plan yet), running, done, failed (could
not run: the reason says why), stopped (by swarm stop or Ctrl-C).

With --name, the history of one test instead: every run of a test with that
name the node keeps (for --retention), newest first, with its key figures
(status, requests, achieved rate, error rate, p50/p95/p99): a trend in one
command. The figures are the node's merged view when it closed the run;
swarm results ID gives the exact ones.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return testsRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.API, "api", opts.API, "address of the node's HTTP API (env: SWARM_API)")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print JSON instead of a table")
	cmd.Flags().StringVar(&opts.Name, "name", "", "the history of one test: every stored run with that name, newest first, with its key figures")
	return cmd
}

// historyRun prints every stored run of a test by name: a trend.
func historyRun(ctx context.Context, c *node.Client, opts *TestsOptions) error {
	tests, err := c.History(ctx, opts.Name)
	if err != nil {
		return err
	}
	if opts.JSON {
		enc := json.NewEncoder(opts.IO.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"tests": tests})
	}
	if len(tests) == 0 {
		return fmt.Errorf("no run of a test named %q is stored on the node at %s", opts.Name, opts.API)
	}
	tw := tabwriter.NewWriter(opts.IO.Out, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "ID\tSUBMITTED\tSTATE\tSTATUS\tREQUESTS\tRATE/S\tERRORS\tP50\tP95\tP99\t")
	for _, t := range tests {
		f := t.Figures
		if f == nil {
			fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\t-\t-\t-\t-\t-\t\n", t.ID, t.Created.Local().Format("2006-01-02 15:04"), t.State)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%.2f%%\t%s\t%s\t%s\t\n", t.ID, t.Created.Local().Format("2006-01-02 15:04"), t.State,
			f.Status, f.Requests, fmtRate(f.Achieved), 100*f.ErrorRate, fmtMs(f.P50), fmtMs(f.P95), fmtMs(f.P99))
	}
	return tw.Flush()
}

func testsRun(ctx context.Context, opts *TestsOptions) error {
	c := node.NewClient(opts.API, nil)
	if opts.Name != "" {
		return historyRun(ctx, c, opts)
	}
	tests, err := c.Tests(ctx)
	if err != nil {
		return err
	}
	if opts.JSON {
		enc := json.NewEncoder(opts.IO.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"tests": tests})
	}
	tw := tabwriter.NewWriter(opts.IO.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSTATE\tNODES\tSUBMITTED\tBY\tREASON")
	for _, t := range tests {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", t.ID, t.Name, t.State, t.Nodes,
			t.Created.Local().Format("2006-01-02 15:04:05"), t.Submitter, t.Reason)
	}
	return tw.Flush()
}

// StopOptions are the flags of `swarm stop`.
type StopOptions struct {
	IO  IO
	API string
	ID  string
}

// NewCmdStop parses `swarm stop`.
func NewCmdStop(ios IO, runF func(context.Context, *StopOptions) error) *cobra.Command {
	opts := &StopOptions{IO: ios, API: defaultAPI()}
	cmd := &cobra.Command{
		Use:   "stop TEST-ID [--api ADDR]",
		Short: "Stop a test on every node (from its submitter or scheduler)",
		Long: `Stop a running test. Asked of the node that submitted the test, or of the
node that schedules it, the test stops on every node: arrivals stop at once
and requests in flight are cut off, the results so far are kept, and the
report says it was interrupted.

Asked of any other node, only that node's share stops (its operator's
right); the share moves to the others and the test goes on. Members accept
a fleet-wide stop from a test's submitter or scheduler only, so that no
member can stop another's test.`,
		Example: "  swarm stop 3f2a9c1b7d4e",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return stopRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.API, "api", opts.API, "address of the node's HTTP API (env: SWARM_API)")
	return cmd
}

func stopRun(ctx context.Context, opts *StopOptions) error {
	if strings.TrimSpace(opts.ID) == "" {
		return errors.New("stop: a test id is required")
	}
	res, err := node.NewClient(opts.API, nil).Stop(ctx, opts.ID)
	if err != nil {
		return err
	}
	if res.Scope == node.StopNode {
		fmt.Fprintf(opts.IO.Out, "stopping this node's share of test %s: %s\n", opts.ID, res.Note)
		return nil
	}
	fmt.Fprintf(opts.IO.Out, "stopping test %s on every node\n", opts.ID)
	return nil
}
