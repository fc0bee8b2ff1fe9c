package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/loadswarm/loadswarm/swarm"
)

// KeygenOptions are the flags of `swarm keygen`.
type KeygenOptions struct {
	IO     IO
	Output string
}

// NewCmdKeygen parses `swarm keygen`; runF does the work (tests pass their own).
func NewCmdKeygen(ios IO, runF func(context.Context, *KeygenOptions) error) *cobra.Command {
	opts := &KeygenOptions{IO: ios}
	cmd := &cobra.Command{
		Use:   "keygen [-o FILE]",
		Short: "Make a fleet key: the secret that keeps strangers out of a fleet",
		Long: `Make a new random fleet key (32 bytes, written as 64 hex digits).

Give the same key file to every node of a fleet ("swarm join --fleet-key
FILE"). It encrypts the gossip between nodes and makes libp2p a private
network: a host without the key, or with another one, can neither join nor
connect, and the nodes' logs say why. Keep it secret, like a password; the
file is written readable by its owner only. Nodes log the key's fingerprint
(never the key), so you can check that two nodes have the same one.

Without -o the key goes to stdout.`,
		Example: `  swarm keygen -o fleet.key
  scp fleet.key other-host:
  swarm join --fleet-key fleet.key --name eu-1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return keygenRun(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVarP(&opts.Output, "output", "o", "", "write the key to FILE (refuses to overwrite one)")
	return cmd
}

func keygenRun(_ context.Context, opts *KeygenOptions) error {
	k, err := swarm.GenerateFleetKey()
	if err != nil {
		return err
	}
	if opts.Output == "" {
		text, err := k.MarshalText()
		if err != nil {
			return err
		}
		fmt.Fprintln(opts.IO.Out, string(text))
		fmt.Fprintf(opts.IO.ErrOut, "fleet key fingerprint %s: save the key above to a file readable only by you, and pass it to every node with --fleet-key\n", k.Fingerprint())
		return nil
	}
	if err := k.WriteFile(opts.Output); err != nil {
		return err
	}
	fmt.Fprintf(opts.IO.ErrOut, "wrote fleet key %s (fingerprint %s). Copy it to every node and start them with --fleet-key %s\n",
		opts.Output, k.Fingerprint(), opts.Output)
	return nil
}
