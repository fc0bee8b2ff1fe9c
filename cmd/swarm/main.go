// Command swarm is Loadswarm's CLI: a peer-to-peer load-testing swarm.
package main

import (
	"os"

	"github.com/loadswarm/loadswarm/cmd/swarm/cli"
)

func main() { os.Exit(int(cli.Main())) }
