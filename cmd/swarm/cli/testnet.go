package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/loadswarm/loadswarm/testnet"
)

// TestnetOptions are the flags of `swarm testnet ACTION`.
type TestnetOptions struct {
	IO     IO
	Action string // up, down, status, kill, restart, pause, resume, isolate, heal
	Dir    string
	// Node is the NODE argument of kill, restart, pause and resume.
	Node string

	// up
	Nodes       int
	Regions     []string
	Latency     string // REGION=RTT[±JITTER],... over the default table
	NoTarget    bool
	TargetFlags string
	LeaseTTL    time.Duration
	StartLead   time.Duration
	Wait        time.Duration
	// Binary is the swarm executable the nodes run; empty: this one.
	Binary string

	// add
	Region string

	// down
	Purge bool
	Grace time.Duration
}

// NewCmdTestnet parses `swarm testnet`; runF does the work (tests pass
// their own).
func NewCmdTestnet(ios IO, runF func(context.Context, *TestnetOptions) error) *cobra.Command {
	opts := &TestnetOptions{IO: ios}
	run := func(action string) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, args []string) error {
			opts.Action = action
			if len(args) > 0 {
				opts.Node = args[0]
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return testnetRun(cmd.Context(), opts)
		}
	}
	root := &cobra.Command{
		Use:   "testnet",
		Short: "Run a whole fleet on this machine: nodes in simulated regions, plus a demo shop",
		Long: `A testnet is a real fleet on one machine, to try Loadswarm or test it in CI.

"swarm testnet up" starts N "swarm join" processes (this same binary), each
on its own loopback address (127.0.0.1, 127.0.0.2, ...) with its own data
directory, a region, and a private fleet key made for the occasion. Each
node adds the round-trip time of its region to every request it sends to a
target (eu-west 15ms±5ms, us-east 80ms±10ms, ap-south 180ms±20ms, ...), so
a test's report by region shows the regions apart. It also starts the demo
shop ("swarm target") for tests to aim at.

The processes run in the background, with their logs and a state file in
--dir (./.testnet by default), until "swarm testnet down". Any node's API
accepts a test: "swarm run --api ADDR --target URL FILE".

No root needed. Fault commands: kill (a crash), restart (same identity),
isolate/heal (cut a node off from the fleet while it still reaches the
target: a partition), pause/resume (freeze a node).`,
		Example: `  swarm testnet up --nodes 3 --regions eu-west,us-east,ap-south
  swarm testnet status
  swarm run --api 127.0.0.1:PORT --target http://127.0.0.1:PORT examples/black-friday.yaml
  swarm testnet kill us-east-1
  swarm testnet restart us-east-1
  swarm testnet down`,
		Args: cobra.NoArgs,
	}
	root.PersistentFlags().StringVar(&opts.Dir, "dir", testnet.DefaultDir, "directory of the testnet's state, logs and node data")

	up := &cobra.Command{
		Use:   "up [--nodes N] [--regions R1,R2,...] [flags]",
		Short: "Start a local fleet and the demo target, and wait until it has formed",
		Long: `Start --nodes "swarm join" processes and the demo target in the background,
wait until every node answers and sees every other one alive, and print
each node's name, region, simulated latency and API address.

Nodes get the regions round robin and are named after them (eu-west-1,
us-east-1, ...). Each region's simulated round trip comes from a built-in
table; --latency overrides it per region. Nodes use short lease and start
times suited to one host (--lease-ttl, --start-lead) and the "local" failure
detector (a dead node is seen in about 2s).`,
		Example: `  swarm testnet up
  swarm testnet up --nodes 4 --regions eu-west,us-east --latency eu-west=10ms,us-east=80ms±5ms
  # a shop whose payments service fails a third of the time
  swarm testnet up --target-flags "--set payments.error-rate=0.3 --retries 3"`,
		Args: cobra.NoArgs,
		RunE: run("up"),
	}
	uf := up.Flags()
	uf.IntVarP(&opts.Nodes, "nodes", "n", 3, "how many nodes")
	uf.StringSliceVar(&opts.Regions, "regions", testnet.DefaultRegions, "regions, given to the nodes round robin")
	uf.StringVar(&opts.Latency, "latency", "", "simulated round trip per region: REGION=RTT[±JITTER],... (\"+-\" works for \"±\")")
	uf.BoolVar(&opts.NoTarget, "no-target", false, "do not start the demo target")
	uf.StringVar(&opts.TargetFlags, "target-flags", "", "extra flags for the demo target, as one string (see swarm target --help)")
	uf.DurationVar(&opts.LeaseTTL, "lease-ttl", 1500*time.Millisecond, "nodes' --lease-ttl")
	uf.DurationVar(&opts.StartLead, "start-lead", time.Second, "nodes' --start-lead")
	uf.DurationVar(&opts.Wait, "wait", time.Minute, "how long to wait for the fleet to form")

	down := &cobra.Command{
		Use:   "down [--purge]",
		Short: "Stop every process of the testnet",
		Long: `Stop every node (SIGTERM: it leaves the fleet; SIGKILL after --grace) and
the target, and check that no process and no port is left. Logs and node
data stay in --dir for reading; --purge removes everything up made.`,
		Args: cobra.NoArgs,
		RunE: run("down"),
	}
	down.Flags().BoolVar(&opts.Purge, "purge", false, "also remove the logs, data, key and state that up made")
	down.Flags().DurationVar(&opts.Grace, "grace", 10*time.Second, "how long processes get to stop before SIGKILL")

	status := &cobra.Command{
		Use:   "status",
		Short: "Show the testnet's processes and the fleet as a node sees it",
		Args:  cobra.NoArgs,
		RunE:  run("status"),
	}
	kill := &cobra.Command{
		Use:   "kill NODE",
		Short: "Crash a node (SIGKILL): the others see it die, and its shares move",
		Long: `Send SIGKILL to a node (by name, or number from 1; "target" for the demo
target). The node says no goodbye: the others find it dead in about 2s, and
a running test moves its share to the survivors once its lease has run out.`,
		Example: "  swarm testnet kill us-east-1\n  swarm testnet kill 2",
		Args:    cobra.ExactArgs(1),
		RunE:    run("kill"),
	}
	restart := &cobra.Command{
		Use:   "restart NODE",
		Short: "Start a node again (stopping it first if it runs) with the same identity",
		Long: `Stop the node if it runs (SIGTERM), start it again with the same data
directory (so the same peer id), address and ports, and wait until it is
back in the fleet.`,
		Args: cobra.ExactArgs(1),
		RunE: run("restart"),
	}
	pause := &cobra.Command{
		Use:   "pause NODE",
		Short: "Freeze a node (SIGSTOP) until resume: cut off from the fleet",
		Long: `Freeze a node's process with SIGSTOP until "swarm testnet resume NODE".

The others stop hearing from it, find it dead in about 2s, and move its
share once its lease has run out. A frozen node also stops sending traffic;
for a node that is cut off from the fleet but still reaches the target (a
partition), use "swarm testnet isolate". When resumed, the node finds its
lease expired and its share gone, and rejoins the fleet.`,
		Args: cobra.ExactArgs(1),
		RunE: run("pause"),
	}
	resume := &cobra.Command{
		Use:   "resume NODE",
		Short: "Continue a paused node (SIGCONT)",
		Args:  cobra.ExactArgs(1),
		RunE:  run("resume"),
	}
	isolate := &cobra.Command{
		Use:   "isolate NODE",
		Short: "Cut a node off from the fleet (a partition) until heal",
		Long: `Cut a node off from the rest of the fleet: its gossip and libp2p traffic are
dropped (through its local API, no root needed), while its process runs on
and still reaches the target. The others find it dead in about 2s and move
its share once its lease has run out; the node itself, hearing no lease,
stops its share by itself at lease expiry, so the fleet never sends more
than planned. "swarm testnet heal NODE" reconnects it.`,
		Args: cobra.ExactArgs(1),
		RunE: run("isolate"),
	}
	heal := &cobra.Command{
		Use:   "heal NODE",
		Short: "Reconnect an isolated node to the fleet",
		Args:  cobra.ExactArgs(1),
		RunE:  run("heal"),
	}
	add := &cobra.Command{
		Use:   "add [--region R]",
		Short: "Start one more node and wait until the fleet sees it",
		Long: `Start one more node in the running testnet (on the next loopback address,
in the given region or the next one round robin) and wait until every node
sees it. A node that joins while a test runs asks a member for the running
tests, accepts them under its own policy, and takes a share at the test's
next split (within a few seconds); "swarm run" shows the share moving.`,
		Example: "  swarm testnet add\n  swarm testnet add --region ap-south",
		Args:    cobra.NoArgs,
		RunE:    run("add"),
	}
	add.Flags().StringVar(&opts.Region, "region", "", "region of the new node (default: the next in the testnet's list)")
	root.AddCommand(up, down, status, kill, restart, pause, resume, isolate, heal, add)
	return root
}

func testnetRun(ctx context.Context, opts *TestnetOptions) error {
	if opts.Action == "up" {
		return testnetUp(ctx, opts)
	}
	s, err := testnet.Load(opts.Dir)
	if err != nil {
		return err
	}
	w := opts.IO.Out
	switch opts.Action {
	case "down":
		if err := s.Down(ctx, testnet.DownOptions{Grace: opts.Grace, Purge: opts.Purge, Progress: opts.IO.ErrOut}); err != nil {
			return err
		}
		what := "logs and data kept in " + s.Dir + " (--purge removes them)"
		if opts.Purge {
			what = "its files removed"
		}
		fmt.Fprintf(w, "testnet stopped: %d nodes and %s; no process or port left; %s\n", len(s.Nodes),
			map[bool]string{true: "the target", false: "no target"}[s.Target != nil], what)
		return nil
	case "status":
		return testnetStatus(ctx, opts, s)
	case "kill":
		p, err := s.Kill(opts.Node)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "killed %s (pid %d): the others will find it dead in about 2s\n", p.Name, p.PID)
	case "restart":
		p, err := s.Restart(ctx, opts.Node, opts.IO.ErrOut)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "restarted %s (pid %d)\n", p.Name, p.PID)
	case "pause":
		p, err := s.Pause(opts.Node)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "paused %s (pid %d): frozen until `swarm testnet resume %s`\n", p.Name, p.PID, p.Name)
	case "resume":
		p, err := s.Resume(opts.Node)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "resumed %s (pid %d)\n", p.Name, p.PID)
	case "add":
		n, err := s.Add(ctx, opts.Region, opts.IO.ErrOut)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "added %s (%s, pid %d): API http://%s\n", n.Name, n.Region, n.PID, n.API)
	case "isolate", "heal":
		p, err := s.Isolate(ctx, opts.Node, opts.Action == "isolate")
		if err != nil {
			return err
		}
		if opts.Action == "isolate" {
			fmt.Fprintf(w, "isolated %s: cut off from the fleet until `swarm testnet heal %s`\n", p.Name, p.Name)
		} else {
			fmt.Fprintf(w, "healed %s: it rejoins the fleet\n", p.Name)
		}
	default:
		return fmt.Errorf("testnet: unknown action %q", opts.Action)
	}
	return nil
}

func testnetUp(ctx context.Context, opts *TestnetOptions) error {
	rtts, err := testnet.ParseRTTs(testnet.DefaultRTTs, opts.Latency)
	if err != nil {
		return err
	}
	bin := opts.Binary
	if bin == "" {
		if bin, err = os.Executable(); err != nil {
			return fmt.Errorf("testnet: find this binary: %w", err)
		}
	}
	if opts.Nodes < 1 {
		return errors.New("--nodes: need at least 1")
	}
	s, err := testnet.Up(ctx, testnet.UpConfig{
		Dir: opts.Dir, Binary: bin, Nodes: opts.Nodes, Regions: opts.Regions, RTTs: rtts,
		Target: !opts.NoTarget, TargetArgs: strings.Fields(opts.TargetFlags),
		LeaseTTL: opts.LeaseTTL, StartLead: opts.StartLead, Wait: opts.Wait, Progress: opts.IO.ErrOut,
	})
	if err != nil {
		return err
	}
	w := opts.IO.Out
	fmt.Fprintf(w, "testnet up in %s: %d nodes, fleet key %s\n\n", s.Dir, len(s.Nodes), s.FleetKey)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tREGION\tLATENCY\tAPI\tGOSSIP")
	for _, n := range s.Nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", n.Name, n.Region, n.RTT, n.API, n.Gossip)
	}
	tw.Flush()
	target := "http://TARGET"
	if s.Target != nil {
		target = s.Target.URL
		fmt.Fprintf(w, "\ntarget (the demo shop): %s  (metrics: %s/metrics)\n", target, target)
	}
	dirFlag := ""
	if opts.Dir != testnet.DefaultDir {
		dirFlag = " --dir " + opts.Dir
	}
	fmt.Fprintf(w, "\nnext:\n  swarm run --api %s --target %s examples/black-friday.yaml\n", s.Nodes[0].API, target)
	fmt.Fprintf(w, "  swarm testnet status%s     swarm testnet kill %s%s     swarm testnet down%s\n", dirFlag, s.Nodes[len(s.Nodes)-1].Name, dirFlag, dirFlag)
	return nil
}

func testnetStatus(ctx context.Context, opts *TestnetOptions, s *testnet.State) error {
	w := opts.IO.Out
	state := "running"
	if s.Stopped != nil {
		state = "stopped at " + s.Stopped.Local().Format(time.TimeOnly)
	}
	fmt.Fprintf(w, "testnet in %s, started %s, %s\n\n", s.Dir, s.Created.Local().Format(time.DateTime), state)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROCESS\tSTATE\tPID\tREGION\tLATENCY\tAPI\tLOG")
	var api string
	for _, n := range s.Nodes {
		st := n.State()
		if st == testnet.ProcRunning && api == "" {
			api = n.API
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%s\n", n.Name, st, n.PID, n.Region, n.RTT, dash(n.API), n.Log)
	}
	if s.Target != nil {
		fmt.Fprintf(tw, "target\t%s\t%d\t-\t-\t%s\t%s\n", s.Target.State(), s.Target.PID, dash(s.Target.URL), s.Target.Log)
	}
	tw.Flush()
	if api == "" {
		fmt.Fprintln(w, "\nno node is running: nothing to ask for the fleet's view")
		return nil
	}
	fmt.Fprintf(w, "\nthe fleet as %s sees it:\n", api)
	return peersRun(ctx, &PeersOptions{IO: opts.IO, API: api})
}
