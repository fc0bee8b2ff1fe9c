package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/loadswarm/loadswarm/node"
	"github.com/loadswarm/loadswarm/report/web"
)

// ReportOptions are the flags of `swarm report`.
type ReportOptions struct {
	IO  IO
	API string
	ID  string
	// Out is the file to write ("-": stdout).
	Out string
	// Baseline is a previous run of the same test to draw beside this one:
	// a test id, a report file or a `swarm results --json` file.
	Baseline string
}

// NewCmdReport parses `swarm report`.
func NewCmdReport(ios IO, runF func(context.Context, *ReportOptions) error) *cobra.Command {
	opts := &ReportOptions{IO: ios, API: defaultAPI()}
	cmd := &cobra.Command{
		Use:   "report TEST-ID [-o report.html] [--baseline ID|FILE]",
		Short: "Write a test's merged results as one self-contained HTML file",
		Long: `Write a test's report as one HTML file that opens anywhere, offline: the
styles, the scripts (uPlot, for the charts) and the data are all inside it,
and it makes no network request.

The numbers are those of "swarm results" (the same merged query over every
node's store): the run's metadata (test, submitter, when, target, nodes and
their start skew, the plans), charts of rate, latency and errors for the
fleet, each region and each node with the load stages and the fleet's
events on the time axis, the thresholds, the observed system series and
scale lag, error samples and the trace ids of the slowest requests.

--baseline draws a previous run of the same test beside this one: its test
id (any node of the fleet that still has its results), a report file made
by "swarm report", or the output of "swarm results --json".

The live counterpart is the dashboard every node serves at
http://API/ui (the same address as --api).`,
		Example: `  swarm report 3f2a9c1b7d4e -o report.html
  swarm report 3f2a9c1b7d4e -o report.html --baseline 9d0e1f2a3b4c
  swarm report 3f2a9c1b7d4e -o - > report.html
  swarm run test.yaml --report report.html      # run, then write the report`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.ID = args[0]
			if opts.Out == "" {
				opts.Out = "loadswarm-" + opts.ID + ".html"
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return reportRun(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.API, "api", opts.API, "address of the node's HTTP API (env: SWARM_API)")
	f.StringVarP(&opts.Out, "output", "o", "", `the file to write ("-": stdout; default loadswarm-ID.html)`)
	f.StringVar(&opts.Baseline, "baseline", "", "a previous run of the same test to compare with: a test id, a report file or a results JSON file")
	return cmd
}

func reportRun(ctx context.Context, opts *ReportOptions) error {
	c := node.NewClient(opts.API, nil)
	if err := writeReport(ctx, c, opts.ID, opts.Out, opts.Baseline, opts.IO.Out); err != nil {
		return err
	}
	if opts.Out != "-" {
		fmt.Fprintf(opts.IO.ErrOut, "report of test %s written to %s\n", opts.ID, opts.Out)
	}
	return nil
}

// run is one run's data for a report: its merged results and, when the
// node still follows the test, its status (plans, nodes, events).
type run struct {
	results node.Results
	raw     json.RawMessage
	status  json.RawMessage
}

// fetchRun asks a node for a test's merged results and status.
func fetchRun(ctx context.Context, c *node.Client, id string) (*run, error) {
	res, err := c.ResultsWith(ctx, id, node.ResultsQuery{By: []string{"region", "node", "step"}, To: -1, Exemplars: true})
	if err != nil {
		return nil, fmt.Errorf("test %s: %w", id, err)
	}
	r := &run{results: res}
	if r.raw, err = json.Marshal(res); err != nil {
		return nil, err
	}
	// The status holds the plans and events; a node that no longer follows
	// the test (restarted since) has only the results, and the report
	// says less.
	if st, err := c.Test(ctx, id, 0, true); err == nil {
		if r.status, err = json.Marshal(st); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// writeReport writes test id's report to out ("-": w).
func writeReport(ctx context.Context, c *node.Client, id, out, baseline string, w io.Writer) error {
	cur, err := fetchRun(ctx, c, id)
	if err != nil {
		return err
	}
	if cur.results.Arrivals == 0 && cur.results.Dropped == 0 && len(cur.results.Series) == 0 {
		why := "it sent nothing"
		if cur.results.Failed != "" {
			why = "it could not run: " + cur.results.Failed
		}
		return fmt.Errorf("test %s has no results to report: %s", id, why)
	}
	d := web.ReportData{Generated: time.Now().UTC(), Generator: "swarm " + Version, Status: cur.status, Results: cur.raw}
	if baseline != "" {
		b, err := loadBaseline(ctx, c, baseline)
		if err != nil {
			return fmt.Errorf("--baseline %s: %w", baseline, err)
		}
		switch {
		case b.results.ID != "" && b.results.ID == cur.results.ID:
			return fmt.Errorf("--baseline %s: that is this same run; give an earlier run of test %q", baseline, cur.results.Name)
		case b.results.Name != cur.results.Name:
			return fmt.Errorf("--baseline %s: it is a run of test %q, and this is a run of %q: a baseline must be a run of the same test", baseline, b.results.Name, cur.results.Name)
		}
		d.Baseline = &web.Baseline{Status: b.status, Results: b.raw}
	}
	if out == "-" {
		return web.WriteReport(w, d)
	}
	return writeFileAtomic(out, func(f io.Writer) error { return web.WriteReport(f, d) })
}

// loadBaseline reads a baseline: a file if one is there, else a test id.
func loadBaseline(ctx context.Context, c *node.Client, ref string) (*run, error) {
	b, err := os.ReadFile(ref)
	if errors.Is(err, os.ErrNotExist) {
		return fetchRun(ctx, c, ref)
	}
	if err != nil {
		return nil, err
	}
	r := &run{}
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '<' {
		d, err := web.ReadReport(b)
		if err != nil {
			return nil, err
		}
		r.raw, r.status = d.Results, d.Status
	} else {
		r.raw = b
	}
	if err := json.Unmarshal(r.raw, &r.results); err != nil {
		return nil, fmt.Errorf("not a report file nor the JSON of swarm results: %v", err)
	}
	if r.results.Name == "" || r.results.Series == nil {
		return nil, errors.New("not a report file nor the JSON of swarm results: it has no test name or series")
	}
	return r, nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// writeFileAtomic writes a file whole or not at all: a crash or an error
// never leaves half a report where the last one was.
func writeFileAtomic(path string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
