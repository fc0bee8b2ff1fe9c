package cli

import (
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/loadswarm/loadswarm/node"
	"github.com/loadswarm/loadswarm/report"
)

// ResultsOptions are the flags of `swarm results`.
type ResultsOptions struct {
	IO   IO
	API  string
	ID   string
	By   []string
	From int64
	To   int64
	JSON bool
	CSV  bool
	// Exemplars lists the trace ids of the slowest and failed requests;
	// Slowest keeps the N slowest of them (0: all, in time order).
	Exemplars bool
	Slowest   int
	// Outputs are files for CI (--junit, --summary, --markdown).
	Outputs Outputs
}

// NewCmdResults parses `swarm results`.
func NewCmdResults(ios IO, runF func(context.Context, *ResultsOptions) error) *cobra.Command {
	opts := &ResultsOptions{IO: ios, API: defaultAPI()}
	cmd := &cobra.Command{
		Use:   "results TEST-ID [--by region|node|step] [--json|--csv]",
		Short: "Merge a test's results from every node and print them",
		Long: `Ask any node for a test's results. The node asks every node of the fleet in
parallel for what it kept (each node stores its own per-second results, and
the test's scheduler and the next node in rank keep replicas), merges them
exactly (percentiles from merged histograms, never averaged) and says which
nodes did not answer: "missing" nodes are not in the numbers; "from replicas"
nodes did not answer but their replicas did.

With --exemplars it lists, for each point of the series, step and region,
the slowest successful and the slowest failed requests with their W3C trace
ids (every request carries a traceparent header unless the test file says
tracing: false): paste one into Jaeger or Tempo to see which service was
slow. The file's tracing.sample sets the share sent with the sampled flag.

When the test file has an observe: section, the report shows what the
system under test did (first, min, max, last of each series, the scale lag
after the largest rise in load, how long latency took to get back under its
threshold); --csv adds a column per observed series, --json has it all.

Thresholds are evaluated on the merged, fleet-wide numbers. Exit code 0 when
they pass, 99 when one fails, 1 on any other error.`,
		Example: `  swarm results 3f2a9c1b7d4e --by region
  swarm results 3f2a9c1b7d4e --by node --json > results.json
  swarm results 3f2a9c1b7d4e --csv > series.csv      # the per-second series
  swarm results 3f2a9c1b7d4e --exemplars             # trace ids of the slowest requests`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			if opts.JSON && opts.CSV {
				return errors.New("--json and --csv: pick one")
			}
			if opts.Slowest < 0 || (opts.Slowest > 0 && !opts.Exemplars) {
				return errors.New("--slowest N: N > 0, with --exemplars")
			}
			for _, b := range opts.By {
				if b != "region" && b != "node" && b != "step" {
					return fmt.Errorf("--by %q: want region, node or step", b)
				}
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return resultsRun(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.API, "api", opts.API, "address of the node's HTTP API (env: SWARM_API)")
	f.StringSliceVar(&opts.By, "by", []string{"step"}, "break down by region, node and/or step (repeat or comma-separate)")
	f.Int64Var(&opts.From, "from", 0, "first second of the test to include")
	f.Int64Var(&opts.To, "to", -1, "last second to include (-1: the end)")
	f.BoolVar(&opts.JSON, "json", false, "print JSON")
	f.BoolVar(&opts.CSV, "csv", false, "print the per-second series as CSV (with the observed series)")
	f.BoolVar(&opts.Exemplars, "exemplars", false, "list the trace ids of the slowest and failed requests per point, step and region")
	f.IntVar(&opts.Slowest, "slowest", 0, "with --exemplars: only the N slowest, slowest first")
	opts.Outputs.addFlags(f)
	return cmd
}

func resultsRun(ctx context.Context, opts *ResultsOptions) error {
	res, err := node.NewClient(opts.API, nil).ResultsWith(ctx, opts.ID,
		node.ResultsQuery{By: opts.By, From: opts.From, To: opts.To, Exemplars: opts.Exemplars})
	if err != nil {
		return err
	}
	switch {
	case opts.JSON:
		enc := json.NewEncoder(opts.IO.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return err
		}
	case opts.CSV:
		if err := writeSeriesCSV(opts.IO.Out, res.Series, res.Observe); err != nil {
			return err
		}
	case opts.Exemplars:
		rows := res.Exemplars
		if opts.Slowest > 0 {
			rows = slices.Clone(rows)
			slices.SortStableFunc(rows, func(a, b report.ExemplarRow) int { return cmp.Compare(b.LatencyMs, a.LatencyMs) })
			rows = rows[:min(len(rows), opts.Slowest)]
		}
		writeExemplars(opts.IO.Out, rows)
	default:
		printResults(opts.IO.Out, res)
	}
	if err := opts.Outputs.write(&res.Report, res); err != nil {
		return err
	}
	if res.Status != "passed" {
		return ErrThresholds
	}
	return nil
}

// writeSeriesCSV writes the per-point series, and a column per observed
// series of the system under test ("sut:NAME", its value at the point's
// first second; empty where it could not be read).
func writeSeriesCSV(w io.Writer, series []report.Point, obs *report.Observation) error {
	cw := csv.NewWriter(w)
	head := []string{"t", "target", "achieved", "p50_ms", "p95_ms", "p99_ms", "errors", "dropped"}
	var sut []report.SUTSeries
	if obs != nil {
		sut = obs.Series
	}
	for _, s := range sut {
		head = append(head, "sut:"+s.Name)
	}
	_ = cw.Write(head)
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }
	for _, p := range series {
		row := []string{strconv.FormatInt(p.T, 10), f(p.Target), f(p.Achieved), f(p.P50), f(p.P95), f(p.P99),
			strconv.FormatInt(p.Errors, 10), strconv.FormatInt(p.Dropped, 10)}
		for _, s := range sut {
			v, ok := s.Values[p.T]
			if !ok {
				row = append(row, "")
				continue
			}
			row = append(row, strconv.FormatFloat(v, 'g', -1, 64))
		}
		_ = cw.Write(row)
	}
	cw.Flush()
	return cw.Error()
}

func printResults(w io.Writer, r node.Results) {
	_ = report.WriteText(w, &r.Report, nil)
	fmt.Fprintf(w, "%d node(s) answered, %d bytes moved\n", r.Answered, r.BytesMoved)
}

// writeExemplars prints the traced requests, ready to paste into a tracing
// backend.
func writeExemplars(w io.Writer, rows []report.ExemplarRow) {
	if len(rows) == 0 {
		fmt.Fprintln(w, "no exemplars: the test sent no traced requests (tracing: false?) or its results hold none")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "t\tregion\tnode\tstep\tlatency\tstatus\terror\tsampled\ttrace id")
	for _, e := range rows {
		status := "-"
		if e.Status != 0 {
			status = strconv.Itoa(e.Status)
		}
		class := e.Class
		if class == "" {
			class = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%v\t%s\n", e.T, e.Region, e.Node, e.Step,
			report.FormatMs(e.LatencyMs), status, class, e.Sampled, e.TraceID)
	}
	_ = tw.Flush()
}
