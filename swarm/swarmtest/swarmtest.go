// Package swarmtest starts in-process swarm nodes for tests: real
// memberlist and libp2p on 127.0.0.1 with free ports and the local timing
// profile, closed in t.Cleanup. Tests poll with WaitFor; they never sleep.
// The nodes speak a small wire registry of test types (Types), as an
// application would define its own.
//
//	nodes := swarmtest.Cluster(t, 3, nil) // three nodes that see each other
//	topics, subs := swarmtest.Topics(t, nodes, "fleet")
//	err := swarm.Publish(ctx, topics[0], swarmtest.TypeChat, 1, "", body)
//
// It is for tests only: it imports package testing, so no production
// package may import it.
package swarmtest

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/loadswarm/loadswarm/swarm"
)

// The test types of Types: two gossip types, a request and its answer.
const (
	TypeChat  swarm.Type = 200 // gossip: up to 4 KiB, 100/s per sender, burst 100
	TypeAlert swarm.Type = 201 // gossip, as TypeChat: a second type, for subscription filters
	TypeAsk   swarm.Type = 202 // request: up to 4 KiB
	TypeReply swarm.Type = 203 // answer: up to 4 KiB
)

// Types returns the wire registry of Config and Cluster (a new map each
// time, for the caller to change). The rates are far above what a test
// publishes; 4 KiB is small, so that "too large" is easy to send.
func Types() map[swarm.Type]swarm.TypeSpec {
	return map[swarm.Type]swarm.TypeSpec{
		TypeChat:  {Name: "chat", Kind: swarm.KindGossip, MaxBytes: 4 << 10, RatePerSec: 100, Burst: 100},
		TypeAlert: {Name: "alert", Kind: swarm.KindGossip, MaxBytes: 4 << 10, RatePerSec: 100, Burst: 100},
		TypeAsk:   {Name: "ask", Kind: swarm.KindRequest, MaxBytes: 4 << 10},
		TypeReply: {Name: "reply", Kind: swarm.KindAnswer, MaxBytes: 4 << 10},
	}
}

// Config returns swarm.DefaultLocalConfig for node i of the test: named
// after the test, bound to 127.0.0.1 on free ports, speaking Types,
// logging warnings (or the level in $SWARM_TEST_LOG, e.g. "debug") to the
// test's output.
func Config(t testing.TB, i int) swarm.Config {
	return config(t, i, Logger(t))
}

func config(t testing.TB, i int, logger *slog.Logger) swarm.Config {
	c := swarm.DefaultLocalConfig()
	c.Name = fmt.Sprintf("%s-%d", nameRe.ReplaceAllString(t.Name(), "_"), i)
	c.Logger = logger
	c.Types = Types()
	return c
}

var nameRe = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// Logger returns a logger that writes to the test's output until the test
// ends, and drops records after (libraries log from their goroutines while
// shutting down).
func Logger(t testing.TB) *slog.Logger {
	level := slog.LevelWarn
	if v := os.Getenv("SWARM_TEST_LOG"); v != "" {
		_ = level.UnmarshalText([]byte(v))
	}
	w := &testWriter{out: t.Output()}
	t.Cleanup(w.stop) // registered first, so it runs after the nodes close
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type testWriter struct {
	mu   sync.Mutex
	out  io.Writer
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return len(p), nil
	}
	return w.out.Write(p)
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// Start starts a node with cfg and closes it (without leaving) in
// t.Cleanup.
func Start(t testing.TB, cfg swarm.Config) *swarm.Swarm {
	t.Helper()
	s, err := swarm.New(cfg)
	if err != nil {
		t.Fatalf("start node %s: %v", cfg.Name, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Cluster starts n nodes with the configs of Config, joins each to the
// first, and waits until every node sees all n alive. configure, if not
// nil, edits node i's config before it starts (e.g. to give it a fleet
// key, metadata or other Types).
func Cluster(t testing.TB, n int, configure func(i int, c *swarm.Config)) []*swarm.Swarm {
	t.Helper()
	logger := Logger(t)
	nodes := make([]*swarm.Swarm, n)
	for i := range n {
		c := config(t, i, logger)
		if configure != nil {
			configure(i, &c)
		}
		s, err := swarm.New(c)
		if err != nil {
			t.Fatalf("start node %d: %v", i, err)
		}
		nodes[i] = s
	}
	t.Cleanup(func() { CloseAll(nodes) })
	for _, s := range nodes[1:] {
		if _, err := s.Join([]string{nodes[0].GossipAddr()}); err != nil {
			t.Fatalf("%s: %v", s.Name(), err)
		}
	}
	WaitConverged(t, nodes, 10*time.Second)
	return nodes
}

// CloseAll closes nodes in parallel (a crash, for the others), skipping nils.
func CloseAll(nodes []*swarm.Swarm) {
	var wg sync.WaitGroup
	for _, s := range nodes {
		if s != nil {
			wg.Go(func() { s.Close() })
		}
	}
	wg.Wait()
}

// WaitFor polls cond every 10 ms until it holds, and fails the test if it
// does not within timeout. what names the condition in the failure, and
// cond may return a detail that the failure shows.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var detail string
	for {
		var ok bool
		ok, detail = cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %s", what, timeout, detail)
		}
		time.Sleep(10 * time.Millisecond) // poll interval, not a wait for an event
	}
}

// WaitConverged waits until every node lists every node of nodes as alive.
func WaitConverged(t testing.TB, nodes []*swarm.Swarm, timeout time.Duration) {
	t.Helper()
	WaitFor(t, timeout, "cluster converged", func() (bool, string) {
		for _, s := range nodes {
			alive := map[string]bool{}
			for _, m := range s.Members() {
				if m.State == swarm.StateAlive {
					alive[m.Name] = true
				}
			}
			var missing []string
			for _, o := range nodes {
				if !alive[o.Name()] {
					missing = append(missing, o.Name())
				}
			}
			if len(missing) > 0 {
				return false, fmt.Sprintf("%s does not see %s alive", s.Name(), strings.Join(missing, ", "))
			}
		}
		return true, ""
	})
}

// WaitState waits until every node in observers lists the member named
// name in state want.
func WaitState(t testing.TB, observers []*swarm.Swarm, name string, want swarm.State, timeout time.Duration) {
	t.Helper()
	WaitFor(t, timeout, fmt.Sprintf("%s seen %s", name, want), func() (bool, string) {
		for _, s := range observers {
			m, ok := s.Member(name)
			if !ok {
				return false, fmt.Sprintf("%s does not list %s", s.Name(), name)
			}
			if m.State != want {
				return false, fmt.Sprintf("%s sees %s %s", s.Name(), name, m.State)
			}
		}
		return true, ""
	})
}

// Topics joins and subscribes to topic name on each node, and waits until
// each node's topic lists the other len(nodes)-1 nodes as subscribed peers,
// so that a message published next reaches all. The topics are closed in
// t.Cleanup.
func Topics(t testing.TB, nodes []*swarm.Swarm, name string) ([]*swarm.Topic, []*swarm.Subscription) {
	t.Helper()
	topics := make([]*swarm.Topic, len(nodes))
	subs := make([]*swarm.Subscription, len(nodes))
	for i, s := range nodes {
		tp, err := s.Topic(name)
		if err != nil {
			t.Fatalf("%s: %v", s.Name(), err)
		}
		t.Cleanup(func() { tp.Close() })
		sub, err := tp.Subscribe()
		if err != nil {
			t.Fatalf("%s: %v", s.Name(), err)
		}
		topics[i], subs[i] = tp, sub
	}
	WaitFor(t, 10*time.Second, "topic "+name+" meshed", func() (bool, string) {
		for i, tp := range topics {
			if n := len(tp.Peers()); n < len(nodes)-1 {
				return false, fmt.Sprintf("%s has %d topic peers of %d", nodes[i].Name(), n, len(nodes)-1)
			}
		}
		return true, ""
	})
	return topics, subs
}
