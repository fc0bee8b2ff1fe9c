package swarm_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/loadswarm/loadswarm/swarm"
	"github.com/loadswarm/loadswarm/swarm/swarmtest"
)

// TestNameTaken: with A and B in the fleet, a third node started with B's
// name and another identity fails to join, with ErrNameTaken naming the
// holder; A and B still see the original B alive, and never the impostor.
// Then B crashes and restarts at once with its identity and name, on new
// ports, before the fleet declared it dead: it joins, and the fleet takes
// it in at its new address.
func TestNameTaken(t *testing.T) {
	idB, err := swarm.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	nodes := swarmtest.Cluster(t, 2, func(i int, c *swarm.Config) {
		if i == 1 {
			c.Identity = idB
		}
	})
	a, b := nodes[0], nodes[1]

	c := swarmtest.Config(t, 1) // B's name, a new identity
	if c.Name != b.Name() {
		t.Fatalf("config names %q, want %q", c.Name, b.Name())
	}
	impostor := swarmtest.Start(t, c)
	_, err = impostor.Join([]string{a.GossipAddr()})
	if !errors.Is(err, swarm.ErrNameTaken) {
		t.Fatalf("join: %v, want ErrNameTaken", err)
	}
	for _, want := range []string{fmt.Sprintf("%q", b.Name()), b.GossipAddr(), b.PeerID(), "pick another --name"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %s", err, want)
		}
	}
	t.Logf("join refused: %v", err)
	impostor.Close()
	for _, s := range nodes {
		m, ok := s.Member(b.Name())
		if !ok || m.PeerID != b.PeerID() || m.State != swarm.StateAlive || m.Addr != b.GossipAddr() {
			t.Fatalf("%s sees %s as %+v", s.Name(), b.Name(), m)
		}
		for _, m := range s.Members() {
			if m.PeerID == impostor.PeerID() {
				t.Fatalf("%s lists the impostor: %+v", s.Name(), m)
			}
		}
	}
	swarmtest.WaitConverged(t, nodes, time.Second)

	// B crashes and comes back at once: same identity, same name.
	b.Close()
	c = swarmtest.Config(t, 1)
	c.Identity = idB
	again := swarmtest.Start(t, c)
	if _, err := again.Join([]string{a.GossipAddr()}); err != nil {
		t.Fatalf("restart with the same identity: %v", err)
	}
	swarmtest.WaitFor(t, 20*time.Second, "restarted B taken in at its new address", func() (bool, string) {
		for _, s := range []*swarm.Swarm{a, again} {
			m, ok := s.Member(again.Name())
			if !ok || m.State != swarm.StateAlive || m.Addr != again.GossipAddr() || m.PeerID != idB.PeerID() {
				return false, fmt.Sprintf("%s sees %+v", s.Name(), m)
			}
		}
		return true, ""
	})
	swarmtest.WaitConverged(t, []*swarm.Swarm{a, again}, 10*time.Second)
}
