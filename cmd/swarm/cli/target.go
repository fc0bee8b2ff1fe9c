package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/loadswarm/loadswarm/testnet"
)

// TargetOptions are the flags of `swarm target`.
type TargetOptions struct {
	IO     IO
	Addr   string
	Config testnet.TargetConfig
}

// NewCmdTarget parses `swarm target`.
func NewCmdTarget(ios IO, runF func(context.Context, *TargetOptions) error) *cobra.Command {
	opts := &TargetOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "target",
		Short: "Serve the demo system under test (a small shop API)",
		Long: `Serve a small shop API to aim tests at: GET /items, GET /items/{id},
POST /login (returns a token), POST /cart (needs "Authorization: Bearer TOKEN").
Latency, errors and periodic stalls can be added to see how they show in a
report. Stops on Ctrl-C.`,
		Example: `  swarm target --addr 127.0.0.1:8080
  # freeze for 1s every 5s, to see coordinated omission corrected
  swarm target --stall-every 5s --stall-for 1s`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return targetRun(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Addr, "addr", "127.0.0.1:8080", "address to listen on (port 0 picks a free one)")
	f.DurationVar(&opts.Config.Latency, "latency", 0, "latency added to every response")
	f.DurationVar(&opts.Config.Jitter, "jitter", 0, "random extra latency, uniform in 0..jitter")
	f.Float64Var(&opts.Config.ErrorRate, "error-rate", 0, "fraction of requests answered 503 (0-1)")
	f.DurationVar(&opts.Config.StallEvery, "stall-every", 0, "freeze the service once per this period")
	f.DurationVar(&opts.Config.StallFor, "stall-for", 0, "how long each freeze lasts")
	f.IntVar(&opts.Config.Items, "items", 100, "catalog size")
	return cmd
}

func targetRun(ctx context.Context, opts *TargetOptions) error {
	t, err := testnet.NewTarget(opts.Config)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return fmt.Errorf("target: %w", err)
	}
	srv := &http.Server{Handler: t, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(opts.IO.Out, "target listening on http://%s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	fmt.Fprintf(opts.IO.ErrOut, "target served %d requests\n", t.Requests())
	return nil
}
