package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/loadswarm/loadswarm/node"
)

// PeersOptions are the flags of `swarm peers`.
type PeersOptions struct {
	IO   IO
	API  string
	JSON bool
}

// NewCmdPeers parses `swarm peers`; runF does the work (tests pass their own).
func NewCmdPeers(ios IO, runF func(context.Context, *PeersOptions) error) *cobra.Command {
	opts := &PeersOptions{IO: ios}
	api := node.DefaultAPI
	if v, ok := os.LookupEnv("SWARM_API"); ok && v != "" {
		api = v
	}
	cmd := &cobra.Command{
		Use:   "peers [--api ADDR] [--json]",
		Short: "List the fleet's nodes as a running node sees them",
		Long: `Ask a running node (started with "swarm join") for the members of its fleet:
name, region, zone, org, capacity (requests per second), state, gossip
address, peer id and version.

States: alive; suspect (alive for gossip, but this node cannot reach it over
libp2p); dead (stopped answering: crashed, or cut off); left (stopped with
Ctrl-C). Dead and left nodes stay listed for a minute.`,
		Example: `  # the fleet seen by the node on this host
  swarm peers

  # from the node whose API listens on another port, as JSON
  swarm peers --api 127.0.0.1:7071 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return peersRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVar(&opts.API, "api", api, "address of the node's HTTP API (env: SWARM_API)")
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print JSON instead of a table")
	return cmd
}

func peersRun(ctx context.Context, opts *PeersOptions) error {
	peers, err := node.NewClient(opts.API, nil).Peers(ctx)
	if err != nil {
		return err
	}
	if opts.JSON {
		enc := json.NewEncoder(opts.IO.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(node.Peers{Peers: peers})
	}
	tw := tabwriter.NewWriter(opts.IO.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tREGION\tZONE\tORG\tCAPACITY\tADDRESS\tPEER ID\tVERSION")
	for _, p := range peers {
		name := p.Name
		if p.Self {
			name += " (this node)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", name, p.State, dash(p.Region), dash(p.Zone), dash(p.Org),
			strconv.Itoa(p.CapacityPerSec)+"/s", p.Address, p.PeerID, p.Version)
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
