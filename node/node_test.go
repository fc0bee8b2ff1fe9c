package node_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/loadswarm/loadswarm/node"
	"github.com/loadswarm/loadswarm/swarm"
	"github.com/loadswarm/loadswarm/swarm/swarmtest"
)

func localConfig(t testing.TB, name, dataDir string, seeds ...string) node.Config {
	c := node.DefaultConfig()
	c.Name = name
	c.DataDir = dataDir
	c.Bind = "127.0.0.1:0"
	c.API = "127.0.0.1:0"
	c.Profile = "local"
	c.Region = "r-" + name
	c.Seeds = seeds
	c.Version = "v-test"
	c.Policy.AllowTargets = []string{"127.0.0.0/8"} // the tests' targets are on loopback
	c.DebugAPI = true
	return c
}

func startNode(t testing.TB, c node.Config) *node.Node {
	t.Helper()
	n, err := node.New(c, swarmtest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func TestNodeAPI(t *testing.T) {
	ctx := context.Background()
	a := startNode(t, localConfig(t, "a", t.TempDir()))
	bDir := t.TempDir()
	b := startNode(t, localConfig(t, "b", bDir, a.Swarm().GossipAddr()))

	ca := node.NewClient(a.APIAddr(), nil)
	swarmtest.WaitFor(t, 5*time.Second, "a lists b", func() (bool, string) {
		peers, err := ca.Peers(ctx)
		if err != nil {
			return false, err.Error()
		}
		return len(peers) == 2 && peers[1].Name == "b" && peers[1].State == "alive", ""
	})
	peers, _ := ca.Peers(ctx)
	if p := peers[1]; p.Region != "r-b" || p.PeerID != b.Swarm().PeerID() || p.Version != "v-test" || p.CapacityPerSec != 1000 || p.Address == "" {
		t.Fatalf("peer b: %+v", p)
	}
	h, err := node.NewClient(b.APIAddr(), nil).Health(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h.Status != "ok" || h.Name != "b" || h.Fleet != "open" || h.MembersAlive != 2 {
		t.Fatalf("health: %+v", h)
	}
	addrs, err := node.ReadAddrs(bDir)
	if err != nil || addrs.API != b.APIAddr() || addrs.PeerID != h.PeerID {
		t.Fatalf("node.json: %+v, %v", addrs, err)
	}
	// Only GET.
	resp, err := http.Post("http://"+a.APIAddr()+"/v1/peers", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /v1/peers: %s", resp.Status)
	}

	// Close leaves: a sees b as left, and b restarted keeps its peer id.
	pid := b.Swarm().PeerID()
	b.Close()
	swarmtest.WaitState(t, []*swarm.Swarm{a.Swarm()}, "b", swarm.StateLeft, 2*time.Second)
	b2 := startNode(t, localConfig(t, "b", bDir, a.Swarm().GossipAddr()))
	if b2.Swarm().PeerID() != pid {
		t.Fatalf("peer id changed: %s -> %s", pid, b2.Swarm().PeerID())
	}
	swarmtest.WaitState(t, []*swarm.Swarm{a.Swarm()}, "b", swarm.StateAlive, 5*time.Second)
}

func TestNodeJoinRetriesUntilSeedIsUp(t *testing.T) {
	// b starts first, pointing at a seed address that nobody serves yet.
	seed := fmt.Sprintf("127.0.0.1:%d", freePortPair(t))
	b := startNode(t, localConfig(t, "b", t.TempDir(), seed))
	ac := localConfig(t, "a", t.TempDir())
	ac.Bind = seed
	a := startNode(t, ac)
	swarmtest.WaitState(t, []*swarm.Swarm{a.Swarm()}, "b", swarm.StateAlive, 10*time.Second)
	swarmtest.WaitState(t, []*swarm.Swarm{b.Swarm()}, "a", swarm.StateAlive, 5*time.Second)
}

// freePortPair returns a port p such that p and p+1 were free a moment ago
// (gossip on p, libp2p on p+1).
func freePortPair(t *testing.T) int {
	t.Helper()
	for range 50 {
		l1, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l1.Addr().(*net.TCPAddr).Port
		l2, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+1))
		l1.Close()
		if err == nil {
			l2.Close()
			return p
		}
	}
	t.Fatal("no free port pair")
	return 0
}

func TestFleetKeyMismatchRefused(t *testing.T) {
	dir := t.TempDir()
	k1, _ := swarm.GenerateFleetKey()
	k2, _ := swarm.GenerateFleetKey()
	f1, f2 := filepath.Join(dir, "k1"), filepath.Join(dir, "k2")
	if err := k1.WriteFile(f1); err != nil {
		t.Fatal(err)
	}
	if err := k2.WriteFile(f2); err != nil {
		t.Fatal(err)
	}
	ac := localConfig(t, "a", t.TempDir())
	ac.FleetKeyFile = f1
	a := startNode(t, ac)
	bc := localConfig(t, "b", t.TempDir(), a.Swarm().GossipAddr())
	bc.FleetKeyFile = f2
	b := startNode(t, bc)
	cc := localConfig(t, "c", t.TempDir(), a.Swarm().GossipAddr())
	cc.FleetKeyFile = f1
	c := startNode(t, cc)
	swarmtest.WaitState(t, []*swarm.Swarm{a.Swarm()}, "c", swarm.StateAlive, 5*time.Second)
	if _, ok := a.Swarm().Member("b"); ok {
		t.Fatal("a lists b, whose key differs")
	}
	if n := b.Swarm().NumAlive(); n != 1 {
		t.Fatalf("b sees %d members", n)
	}
	h, _ := node.NewClient(c.APIAddr(), nil).Health(context.Background())
	if h.Fleet != "private" || h.FleetKey != k1.Fingerprint() {
		t.Fatalf("health: %+v", h)
	}
}
