// Package fleettest starts in-process fleets of real nodes for Go tests:
// memberlist and libp2p on 127.0.0.1 with port 0, shrunk timings, each node
// in a simulated region, all stopped in t.Cleanup.
//
//	f := fleettest.Start(t, 3, fleettest.Options{RTTs: testnet.DefaultRTTs})
//	id, err := f.Client(f.Nodes[0]).Submit(ctx, spec, "")
//
// It is for tests only: it imports package testing, so no production
// package may import it (testnet does not; the `swarm` binary links no
// testing code). The fleet of real processes is testnet.Up.
package fleettest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/loadswarm/loadswarm/node"
	"github.com/loadswarm/loadswarm/swarm/swarmtest"
	"github.com/loadswarm/loadswarm/testnet"
)

// Options shape an in-process fleet (Start).
type Options struct {
	// Regions are given to the nodes round robin. Default
	// testnet.DefaultRegions.
	Regions []string
	// RTTs give each region its simulated distance to the target.
	// Default: none (no added latency), so unit tests stay fast; pass
	// testnet.DefaultRTTs for realistic distances.
	RTTs testnet.RTTTable
	// LeaseTTL and StartLead are shrunk for tests. Default 1500ms and 1s.
	LeaseTTL, StartLead time.Duration
	// Configure, if set, edits each node's config before it starts.
	Configure func(i int, c *node.Config)
	// Wait bounds how long Start waits for the fleet to converge.
	// Default 15s.
	Wait time.Duration
}

// Fleet is an in-process fleet of real nodes (memberlist and libp2p on
// 127.0.0.1 with port 0), for Go tests. Its nodes stop in t.Cleanup.
type Fleet struct {
	t     testing.TB
	Nodes []*node.Node
	// Regions[i] is node i's region.
	Regions []string
}

// Start starts n nodes named "<region>-<i>" with shrunk timings (profile
// local, short lease and lead), joins them and waits until every node sees
// all n alive.
func Start(t testing.TB, n int, opts Options) *Fleet {
	t.Helper()
	if len(opts.Regions) == 0 {
		opts.Regions = testnet.DefaultRegions
	}
	if opts.LeaseTTL == 0 {
		opts.LeaseTTL = 1500 * time.Millisecond
	}
	if opts.StartLead == 0 {
		opts.StartLead = time.Second
	}
	if opts.Wait == 0 {
		opts.Wait = 15 * time.Second
	}
	f := &Fleet{t: t}
	for i := range n {
		region := opts.Regions[i%len(opts.Regions)]
		c := node.DefaultConfig()
		c.Name = fmt.Sprintf("%s-%d", region, i)
		c.Region = region
		c.DataDir = t.TempDir()
		c.Bind, c.API, c.Profile = "127.0.0.1:0", "127.0.0.1:0", "local"
		c.LeaseTTL, c.StartLead = opts.LeaseTTL, opts.StartLead
		c.Policy.AllowTargets = []string{"127.0.0.0/8"} // the demo target is on loopback
		c.DebugAPI = true
		if opts.RTTs != nil {
			rtt := opts.RTTs.Lookup(region)
			c.SimLatency, c.SimJitter = rtt.Latency, rtt.Jitter
		}
		if i > 0 {
			c.Seeds = []string{f.Nodes[0].Swarm().GossipAddr()}
		}
		if opts.Configure != nil {
			opts.Configure(i, &c)
		}
		nd, err := node.New(c, swarmtest.Logger(t))
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		if err := nd.Start(context.Background()); err != nil {
			t.Fatalf("node %d: start: %v", i, err)
		}
		t.Cleanup(func() { _ = nd.Close() })
		f.Nodes = append(f.Nodes, nd)
		f.Regions = append(f.Regions, region)
	}
	f.WaitAlive(n, opts.Wait)
	return f
}

// WaitAlive waits until every node still running sees want nodes alive.
func (f *Fleet) WaitAlive(want int, timeout time.Duration) {
	f.t.Helper()
	swarmtest.WaitFor(f.t, timeout, fmt.Sprintf("every node sees %d alive", want), func() (bool, string) {
		for _, nd := range f.Nodes {
			if nd.APIAddr() == "" || nd.Swarm() == nil {
				continue
			}
			h, err := f.Client(nd).Health(context.Background())
			if err != nil {
				continue // closed
			}
			if h.MembersAlive != want {
				return false, fmt.Sprintf("%s sees %d", h.Name, h.MembersAlive)
			}
		}
		return true, ""
	})
}

// Client returns a client for a node's API.
func (f *Fleet) Client(nd *node.Node) *node.Client {
	return node.NewClient(nd.APIAddr(), nil)
}

// Node finds a node by name; nil if none has it.
func (f *Fleet) Node(name string) *node.Node {
	for _, nd := range f.Nodes {
		if nd.Swarm() != nil && nd.Swarm().Name() == name {
			return nd
		}
	}
	return nil
}

// Crash stops node i. It uses Node.Close, which leaves the fleet
// gracefully (the others see it as left at once, not dead): a true crash
// needs node internals that only node's own tests reach (Node.Crash in
// node/export_test.go). For a real kill -9, use the process testnet
// (testnet.State.Kill).
func (f *Fleet) Crash(i int) {
	f.t.Helper()
	if err := f.Nodes[i].Close(); err != nil {
		f.t.Logf("close %s: %v", f.Regions[i], err)
	}
}
