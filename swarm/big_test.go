package swarm_test

import (
	"fmt"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/loadswarm/loadswarm/swarm"
	"github.com/loadswarm/loadswarm/swarm/swarmtest"
)

// TestBigCluster is the 50-node benchmark; it runs only with SWARM_BIG=1
// (SWARM_BIG_N sets another size):
//
//	SWARM_BIG=1 go test -run TestBigCluster -v ./swarm/
//
// It reports the time to converge, the time for every node to declare a
// crashed node dead, and the CPU that idle nodes use.
func TestBigCluster(t *testing.T) {
	if os.Getenv("SWARM_BIG") == "" {
		t.Skip("set SWARM_BIG=1 to run the 50-node benchmark")
	}
	n := 50
	if v := os.Getenv("SWARM_BIG_N"); v != "" {
		fmt.Sscan(v, &n)
	}
	logger := swarmtest.Logger(t)
	nodes := make([]*swarm.Swarm, n)
	for i := range nodes {
		c := swarm.DefaultConfig() // the production timing, on loopback
		c.BindAddr, c.GossipPort, c.P2PPort = "127.0.0.1", 0, 0
		c.Name = fmt.Sprintf("big-%02d", i)
		c.Logger = logger
		s, err := swarm.New(c)
		if err != nil {
			t.Fatal(err)
		}
		nodes[i] = s
	}
	t.Cleanup(func() { swarmtest.CloseAll(nodes) })

	start := time.Now()
	var wg sync.WaitGroup
	for _, s := range nodes[1:] {
		wg.Go(func() {
			if _, err := s.Join([]string{nodes[0].GossipAddr()}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	swarmtest.WaitConverged(t, nodes, 60*time.Second)
	converge := time.Since(start)
	t.Logf("%d nodes: converged in %v", n, converge.Round(time.Millisecond))

	// Let the libp2p dials and GossipSub settle, then measure idle CPU.
	swarmtest.WaitFor(t, 60*time.Second, "libp2p full mesh", func() (bool, string) {
		for _, s := range nodes {
			if c := s.Stats().ConnectedPeers; c < n-1 {
				return false, fmt.Sprintf("%s has %d connections", s.Name(), c)
			}
		}
		return true, ""
	})
	t.Logf("%d nodes: libp2p full mesh after %v", n, time.Since(start).Round(time.Millisecond))
	const idle = 10 * time.Second
	cpu0, wall0 := cpuTime(), time.Now()
	deadline := wall0.Add(idle)
	for time.Now().Before(deadline) { // poll for false deaths while idle
		for _, s := range nodes[:3] {
			for _, m := range s.Members() {
				if m.State == swarm.StateDead {
					t.Errorf("false death: %s sees %s dead", s.Name(), m.Name)
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	cpu := cpuTime() - cpu0
	wall := time.Since(wall0)
	t.Logf("idle: %.2f%% of a core per node (%v CPU over %v for %d nodes)",
		100*cpu.Seconds()/wall.Seconds()/float64(n), cpu.Round(time.Millisecond), wall.Round(time.Millisecond), n)

	victim := nodes[n-1]
	start = time.Now()
	victim.Close()
	swarmtest.WaitState(t, nodes[:n-1], victim.Name(), swarm.StateDead, 30*time.Second)
	t.Logf("crash of one node declared dead by all %d others in %v", n-1, time.Since(start).Round(time.Millisecond))
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
