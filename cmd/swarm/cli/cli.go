// Package cli holds the swarm command's subcommands. Every subcommand only
// parses flags into an options struct and calls a run function that does the
// work; exit codes are chosen in one place, Main.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/spf13/cobra"
)

// ExitCode is the process exit status. The values follow k6 so that CI
// pipelines written for k6 read ours the same way.
type ExitCode int

const (
	ExitOK              ExitCode = 0  // the command did its job; thresholds (if any) passed
	ExitError           ExitCode = 1  // bad input, unreachable node, or any other failure
	ExitThresholdFailed ExitCode = 99 // the test ran but a threshold failed
)

// ErrThresholds is returned by a run whose thresholds failed; Main maps it
// to ExitThresholdFailed.
var ErrThresholds = errors.New("thresholds failed")

// IO is where a command reads and writes; tests give it buffers.
type IO struct {
	In     io.Reader
	Out    io.Writer // results: tables, JSON
	ErrOut io.Writer // progress, logs, errors
}

// Version is set at build time with -ldflags "-X .../cli.Version=...".
var Version = "dev"

// Main runs the command line in os.Args and returns the exit code.
func Main() ExitCode {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ios := IO{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	if path := os.Getenv("SWARM_CPUPROFILE"); path != "" {
		// For profiling the generator as it really runs (make bench):
		// a test binary would mix in its in-process target.
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintln(ios.ErrOut, "error: SWARM_CPUPROFILE:", err)
			return ExitError
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(ios.ErrOut, "error: SWARM_CPUPROFILE:", err)
			return ExitError
		}
		defer func() { pprof.StopCPUProfile(); f.Close() }()
	}
	return Execute(ctx, ios, os.Args[1:])
}

// Execute runs args against a fresh command tree; it is Main without the
// process: tests call it.
func Execute(ctx context.Context, ios IO, args []string) ExitCode {
	root := NewCmdRoot(ios)
	root.SetArgs(args)
	root.SetIn(ios.In)
	root.SetOut(ios.Out)
	root.SetErr(ios.ErrOut)
	err := root.ExecuteContext(ctx)
	switch {
	case err == nil:
		return ExitOK
	case errors.Is(err, ErrThresholds):
		return ExitThresholdFailed
	default:
		fmt.Fprintln(ios.ErrOut, "error:", err)
		return ExitError
	}
}

// NewCmdRoot builds the command tree.
func NewCmdRoot(ios IO) *cobra.Command {
	root := &cobra.Command{
		Use:   "swarm",
		Short: "Loadswarm: a peer-to-peer load-testing swarm",
		Long: `Loadswarm is a peer-to-peer load-testing swarm. Identical nodes join a fleet
by gossip; a test submitted to any node is scheduled by one of them, its rate
split over the fleet, and every node sends its share as open-model traffic
(arrivals at the planned rate, whatever the responses do). Reports merge
every node's results exactly.

Try it on one machine:

  swarm testnet up --nodes 3 --regions eu-west,us-east,ap-south
  swarm run --api NODE_API --target SHOP_URL examples/slow-region.yaml
  swarm testnet down

On real hosts: "swarm join" on each (see swarm join --help), then
"swarm run test.yaml" on any of them. Without a fleet:

  swarm run --local examples/constant.yaml

Exit codes: 0 passed, 99 a threshold failed, 1 any other error.
SWARM_CPUPROFILE=FILE writes a Go CPU profile of the command to FILE.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
	}
	// Every command, in one place (one file each).
	root.AddCommand(
		NewCmdJoin(ios, nil),
		NewCmdRun(ios, nil),
		NewCmdTests(ios, nil),
		NewCmdStop(ios, nil),
		NewCmdResults(ios, nil),
		NewCmdReport(ios, nil),
		NewCmdCompare(ios, nil),
		NewCmdPeers(ios, nil),
		NewCmdValidate(ios, nil),
		NewCmdKeygen(ios, nil),
		NewCmdTestnet(ios, nil),
		NewCmdTarget(ios, nil),
	)
	return root
}
