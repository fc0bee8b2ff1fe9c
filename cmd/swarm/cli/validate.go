package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
)

// ValidateOptions are the flags of `swarm validate`.
type ValidateOptions struct {
	IO     IO
	Files  []string
	Params Params
}

// NewCmdValidate parses `swarm validate`.
func NewCmdValidate(ios IO, runF func(context.Context, *ValidateOptions) error) *cobra.Command {
	opts := &ValidateOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "validate TEST.yaml...",
		Short: "Check test files without running them",
		Long: `Parse and check test files: unknown fields, bad values and expressions that do
not compile are all reported at once, each with its path (load.stages[2].rate).
A file that reads parameters (env.KEY) needs them given, as for swarm run.
Exit code 0 when every file is valid, 1 otherwise.`,
		Example: "  swarm validate examples/*.yaml",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Files = args
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return validateRun(opts)
		},
	}
	opts.Params.addFlags(cmd.Flags())
	return cmd
}

func validateRun(opts *ValidateOptions) error {
	env, secret, err := opts.Params.resolve()
	if err != nil {
		return err
	}
	bad := 0
	for _, f := range opts.Files {
		sc, err := compileFile(f, "", env, secret)
		if err != nil {
			fmt.Fprintln(opts.IO.ErrOut, err)
			bad++
			continue
		}
		fmt.Fprintf(opts.IO.Out, "%s: ok: %q, %s, %.0f arrivals (peak %s/s), %d step(s), %d threshold(s)\n",
			f, sc.Name, sc.Profile.Duration(), sc.Profile.Total(), fmtRate(peakRate(sc.Profile)), len(sc.Steps), len(sc.Thresholds))
	}
	if bad > 0 {
		return fmt.Errorf("%d of %d file(s) invalid", bad, len(opts.Files))
	}
	return nil
}
