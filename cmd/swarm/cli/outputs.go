package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/pflag"

	"github.com/loadswarm/loadswarm/report"
)

// Outputs are the files a CI job keeps of a run: JUnit XML (each threshold
// a test case), the JSON summary (what --json prints) and a Markdown
// summary for a job's summary page.
type Outputs struct {
	JUnit    string
	Summary  string
	Markdown string
}

func (o *Outputs) addFlags(f *pflag.FlagSet) {
	f.StringVar(&o.JUnit, "junit", "", "write the thresholds as JUnit XML to this file (a test case each, by step and region)")
	f.StringVar(&o.Summary, "summary", "", "write the report as JSON to this file (what --json prints)")
	f.StringVar(&o.Markdown, "markdown", "", "write a short Markdown summary to this file (e.g. $GITHUB_STEP_SUMMARY)")
}

// write writes every output asked for; each file is whole or absent. v is
// what the JSON summary holds (the report, or the fleet's with its nodes).
func (o *Outputs) write(r *report.Report, v any) error {
	var errs []error
	put := func(flag, path string, f func(io.Writer) error) {
		if path == "" {
			return
		}
		if err := writeFileAtomic(path, f); err != nil {
			errs = append(errs, fmt.Errorf("--%s %s: %w", flag, path, err))
		}
	}
	put("junit", o.JUnit, func(w io.Writer) error { return report.WriteJUnit(w, r) })
	put("summary", o.Summary, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	})
	put("markdown", o.Markdown, func(w io.Writer) error { return report.WriteMarkdown(w, r) })
	return errors.Join(errs...)
}
