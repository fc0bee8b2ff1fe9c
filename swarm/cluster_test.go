package swarm_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/loadswarm/loadswarm/swarm"
	"github.com/loadswarm/loadswarm/swarm/swarmtest"
)

func TestClusterConverges(t *testing.T) {
	start := time.Now()
	nodes := swarmtest.Cluster(t, 5, func(i int, c *swarm.Config) {
		c.Meta = swarm.Meta{Region: fmt.Sprintf("r%d", i%2), Zone: "z", Org: "acme", CapacityPerSec: 100 * (i + 1), Tags: map[string]string{"i": fmt.Sprint(i)}}
		c.Version = "v-test"
	})
	t.Logf("5 nodes converged in %v", time.Since(start).Round(time.Millisecond))

	// Every node sees every other's metadata and peer id.
	for _, s := range nodes {
		for i, o := range nodes {
			m, ok := s.Member(o.Name())
			if !ok {
				t.Fatalf("%s does not list %s", s.Name(), o.Name())
			}
			if m.PeerID != o.PeerID() || m.Meta.CapacityPerSec != 100*(i+1) || m.Meta.Tags["i"] != fmt.Sprint(i) ||
				m.Version != "v-test" || m.Meta.CPUs == 0 || len(m.P2PAddrs) != 1 || m.Addr != o.GossipAddr() {
				t.Fatalf("%s sees %s as %+v", s.Name(), o.Name(), m)
			}
			if m.Self != (s == o) {
				t.Fatalf("%s: Self=%v for %s", s.Name(), m.Self, o.Name())
			}
		}
	}

	// A metadata change spreads.
	events, stop := nodes[4].Watch()
	defer stop()
	meta := nodes[0].Meta()
	meta.CapacityPerSec = 12345
	if err := nodes[0].UpdateMeta(meta); err != nil {
		t.Fatal(err)
	}
	swarmtest.WaitFor(t, 3*time.Second, "capacity update seen", func() (bool, string) {
		for _, s := range nodes {
			if m, _ := s.Member(nodes[0].Name()); m.Meta.CapacityPerSec != 12345 {
				return false, fmt.Sprintf("%s sees %d", s.Name(), m.Meta.CapacityPerSec)
			}
		}
		return true, ""
	})
	select {
	case ev := <-events:
		if ev.Kind != swarm.MemberUpdated || ev.Member.Name != nodes[0].Name() {
			t.Fatalf("event %v %s", ev.Kind, ev.Member.Name)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("no update event")
	}
	// Too much metadata is refused, not a panic in memberlist.
	meta.Tags = map[string]string{"x": strings.Repeat("y", 600)}
	if err := nodes[0].UpdateMeta(meta); err == nil {
		t.Fatal("oversized metadata accepted")
	}
}

func TestCrashMarkedDeadWithin5s(t *testing.T) {
	nodes := swarmtest.Cluster(t, 5, nil)
	victim := nodes[4]
	start := time.Now()
	victim.Close() // no Leave: a crash
	swarmtest.WaitState(t, nodes[:4], victim.Name(), swarm.StateDead, 5*time.Second)
	t.Logf("crash detected everywhere in %v", time.Since(start).Round(time.Millisecond))
	// Nobody else was declared dead on the way.
	for _, s := range nodes[:4] {
		for _, m := range s.Members() {
			if m.Name != victim.Name() && m.State != swarm.StateAlive {
				t.Errorf("%s sees %s %s", s.Name(), m.Name, m.State)
			}
		}
	}
}

func TestLeaveSeenAtOnce(t *testing.T) {
	nodes := swarmtest.Cluster(t, 5, nil)
	events, stop := nodes[0].Watch()
	defer stop()
	start := time.Now()
	if err := nodes[4].Leave(); err != nil {
		t.Fatal(err)
	}
	nodes[4].Close()
	swarmtest.WaitState(t, nodes[:4], nodes[4].Name(), swarm.StateLeft, time.Second)
	t.Logf("leave seen everywhere in %v", time.Since(start).Round(time.Millisecond))
	for ev := range events {
		if ev.Member.Name == nodes[4].Name() {
			if ev.Kind != swarm.MemberLeft {
				t.Fatalf("event %v, want left", ev.Kind)
			}
			break
		}
	}
}

func TestWrongFleetKeyRefused(t *testing.T) {
	key, _ := swarm.GenerateFleetKey()
	other, _ := swarm.GenerateFleetKey()
	nodes := swarmtest.Cluster(t, 2, func(i int, c *swarm.Config) { c.FleetKey = key })

	for _, tc := range []struct {
		name string
		key  swarm.FleetKey
	}{
		{"other key", other},
		{"no key", swarm.FleetKey{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := swarmtest.Config(t, 9)
			c.FleetKey = tc.key
			c.Timing.LeaveTimeout = 100 * time.Millisecond
			intruder := swarmtest.Start(t, c)

			// Membership: the join fails, and nobody lists the intruder.
			if n, err := intruder.Join([]string{nodes[0].GossipAddr()}); err == nil {
				t.Fatalf("join with %s succeeded (%d answered)", tc.name, n)
			} else {
				t.Logf("join refused: %v", err)
			}
			// Transport: a direct dial to a member fails.
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			target := nodes[0]
			m, _ := target.Member(target.Name())
			if err := intruder.Connect(ctx, target.PeerID(), m.P2PAddrs); err == nil {
				t.Fatal("libp2p dial succeeded")
			} else {
				t.Logf("dial refused: %v", err)
			}
			for _, s := range nodes {
				if _, ok := s.Member(intruder.Name()); ok {
					t.Fatalf("%s lists the intruder", s.Name())
				}
			}
		})
	}
	// And the right key gets in.
	c := swarmtest.Config(t, 3)
	c.FleetKey = key
	friend := swarmtest.Start(t, c)
	if _, err := friend.Join([]string{nodes[1].GossipAddr()}); err != nil {
		t.Fatal(err)
	}
	swarmtest.WaitConverged(t, append(nodes, friend), 5*time.Second)
}

type hello struct {
	Text string `cbor:"1,keyasint"`
	N    int    `cbor:"2,keyasint"`
}

func TestGossipDeliversToAll(t *testing.T) {
	nodes := swarmtest.Cluster(t, 5, nil)
	_, subs := swarmtest.Topics(t, nodes, "fleet")
	topic, err := nodes[2].Topic("fleet") // a second handle on the same topic
	if err != nil {
		t.Fatal(err)
	}
	defer topic.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := swarm.Publish(ctx, topic, swarmtest.TypeChat, 1, "test-7", hello{"hi", 7}); err != nil {
		t.Fatal(err)
	}
	for i, sub := range subs {
		m, body, err := swarm.Receive[hello](ctx, sub)
		if err != nil {
			t.Fatalf("%s: %v", nodes[i].Name(), err)
		}
		if body != (hello{"hi", 7}) || m.Sender != nodes[2].PeerID() || m.TestID != "test-7" || m.Local != (i == 2) {
			t.Fatalf("%s got %+v %+v", nodes[i].Name(), m, body)
		}
	}
	// A type filter drops what it did not ask for.
	tp, _ := nodes[0].Topic("fleet")
	defer tp.Close()
	alerts, err := tp.Subscribe(swarmtest.TypeAlert)
	if err != nil {
		t.Fatal(err)
	}
	_ = swarm.Publish(ctx, topic, swarmtest.TypeChat, 1, "", hello{"ignored", 0})
	_ = swarm.Publish(ctx, topic, swarmtest.TypeAlert, 1, "test-7", hello{"alert", 1})
	if _, body, err := swarm.Receive[hello](ctx, alerts); err != nil || body.Text != "alert" {
		t.Fatalf("filtered subscription got %+v, %v", body, err)
	}
	// A per-test topic is left when its last handle closes.
	if err := tp.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := alerts.Next(ctx); !errors.Is(err, swarm.ErrClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
}

func TestRequestGetsAnswer(t *testing.T) {
	nodes := swarmtest.Cluster(t, 3, nil)
	const proto = "/loadswarm/test-echo/1"
	for _, s := range nodes {
		s.Handle(proto, func(ctx context.Context, from string, req swarm.Envelope) (swarm.Envelope, error) {
			var h hello
			if err := req.DecodeBody(&h); err != nil {
				return swarm.Envelope{}, err
			}
			switch h.Text {
			case "fail":
				return swarm.Envelope{}, errors.New("asked to fail")
			case "slow":
				<-ctx.Done()
				return swarm.Envelope{}, ctx.Err()
			}
			return swarm.NewEnvelope(swarmtest.TypeReply, 1, req.TestID, hello{Text: "echo " + h.Text + " from " + from[len(from)-4:], N: h.N + 1})
		})
	}
	ctx := context.Background()
	req, _ := swarm.NewEnvelope(swarmtest.TypeAsk, 1, "t1", hello{Text: "hi", N: 1})
	resp, err := nodes[0].Request(ctx, nodes[2].PeerID(), proto, req)
	if err != nil {
		t.Fatal(err)
	}
	var h hello
	if err := resp.DecodeBody(&h); err != nil {
		t.Fatal(err)
	}
	if want := "echo hi from " + nodes[0].PeerID()[len(nodes[0].PeerID())-4:]; h.Text != want || h.N != 2 || resp.Type != swarmtest.TypeReply || resp.Sender != nodes[2].PeerID() || resp.TestID != "t1" {
		t.Fatalf("got %+v %+v", resp, h)
	}

	// A handler's error comes back as a RemoteError.
	req, _ = swarm.NewEnvelope(swarm.TypePing, 1, "", hello{Text: "fail"})
	_, err = nodes[1].Request(ctx, nodes[2].PeerID(), proto, req)
	var re *swarm.RemoteError
	if !errors.As(err, &re) || re.Message != "asked to fail" {
		t.Fatalf("got %v", err)
	}

	// The deadline holds when the handler does not answer.
	req, _ = swarm.NewEnvelope(swarm.TypePing, 1, "", hello{Text: "slow"})
	dctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = nodes[1].Request(dctx, nodes[0].PeerID(), proto, req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow handler: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("deadline not kept: %v", d)
	}

	// An unknown protocol fails cleanly.
	if _, err := nodes[1].Request(ctx, nodes[0].PeerID(), "/loadswarm/nope/1", req); err == nil {
		t.Fatal("unknown protocol answered")
	}
}

func TestRestartKeepsPeerID(t *testing.T) {
	nodes := swarmtest.Cluster(t, 2, nil)
	path := filepath.Join(t.TempDir(), "identity.key")
	start := func() *swarm.Swarm {
		id, _, err := swarm.LoadOrCreateIdentity(path)
		if err != nil {
			t.Fatal(err)
		}
		c := swarmtest.Config(t, 7)
		c.Identity = id
		s := swarmtest.Start(t, c)
		if _, err := s.Join([]string{nodes[0].GossipAddr()}); err != nil {
			t.Fatal(err)
		}
		swarmtest.WaitConverged(t, append(nodes, s), 5*time.Second)
		return s
	}
	first := start()
	pid := first.PeerID()
	if err := first.Leave(); err != nil {
		t.Fatal(err)
	}
	first.Close()
	swarmtest.WaitState(t, nodes, first.Name(), swarm.StateLeft, 2*time.Second)

	second := start() // new ports, same identity file
	if second.PeerID() != pid {
		t.Fatalf("peer id changed across restart: %s -> %s", pid, second.PeerID())
	}
	for _, s := range nodes {
		if m, _ := s.Member(second.Name()); m.PeerID != pid || m.State != swarm.StateAlive {
			t.Fatalf("%s sees %+v", s.Name(), m)
		}
	}
}

func TestBadMessagesRefusedNodeKeepsRunning(t *testing.T) {
	nodes := swarmtest.Cluster(t, 3, nil) // chats of up to 4 KiB
	topics, subs := swarmtest.Topics(t, nodes, "fleet")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Oversized: refused at the sender.
	big := hello{Text: strings.Repeat("x", 5000)}
	if err := swarm.Publish(ctx, topics[0], swarmtest.TypeChat, 1, "", big); !errors.Is(err, swarm.ErrTooLarge) {
		t.Fatalf("oversized publish: %v", err)
	}
	// Malformed, unknown-type and forged-sender gossip from node 0 (which
	// trusts what it publishes itself): refused by the others' validators.
	forged, _ := swarm.Envelope{Type: swarmtest.TypeChat, Sender: nodes[1].PeerID()}.Marshal()
	unknown := []byte{0xa1, 0x01, 0x19, 0x03, 0xe7} // {1: 999}
	for _, raw := range [][]byte{[]byte("garbage"), {0xa1, 0x01, 0x9f}, unknown, forged} {
		if err := topics[0].PublishRaw(ctx, raw); err != nil {
			t.Fatal(err)
		}
	}
	// And raw on streams: malformed, oversized and forged requests get an
	// error answer.
	const proto = "/loadswarm/test-echo/1"
	nodes[2].Handle(proto, func(ctx context.Context, from string, req swarm.Envelope) (swarm.Envelope, error) {
		return swarm.NewEnvelope(swarm.TypePing, 1, "", hello{Text: "ok"})
	})
	for name, raw := range map[string][]byte{
		"garbage":   []byte("garbage"),
		"truncated": {0xa2, 0x01},
		"oversized": make([]byte, 64<<10+1), // over the largest request type, TypePing
		"forged":    forged,
	} {
		ans, err := nodes[0].RequestRaw(ctx, nodes[2].PeerID(), proto, raw)
		if err != nil {
			continue // a reset is a refusal too
		}
		e, err := swarm.DecodeEnvelope(ans)
		if err != nil || e.Type != swarm.TypeError {
			t.Fatalf("%s request: answer %+v, %v", name, e, err)
		}
	}
	if got := nodes[2].Stats().MessagesRejected; got < 4 {
		t.Errorf("node 2 rejected %d messages, want at least 4", got)
	}

	// The others still work: a good message arrives at nodes 1 and 2, and
	// it is the first one (nothing bad got through). Node 0 is left out:
	// having sent bad messages, it gets no more from the others for a
	// while (peer scoring; see TestMalformedSenderCutOff).
	if err := swarm.Publish(ctx, topics[1], swarmtest.TypeChat, 1, "", hello{Text: "good"}); err != nil {
		t.Fatal(err)
	}
	for i, sub := range subs[1:] {
		_, body, err := swarm.Receive[hello](ctx, sub)
		if err != nil || body.Text != "good" {
			t.Fatalf("%s: got %+v, %v", nodes[i+1].Name(), body, err)
		}
	}
	req, _ := swarm.NewEnvelope(swarm.TypePing, 1, "", nil)
	if _, err := nodes[1].Request(ctx, nodes[2].PeerID(), proto, req); err != nil {
		t.Fatalf("good request after bad ones: %v", err)
	}
	swarmtest.WaitConverged(t, nodes, time.Second)
}

// TestNoTypesNoGossip: a node whose application registered no types knows
// the swarm's own two only, and publishes or subscribes to nothing.
func TestNoTypesNoGossip(t *testing.T) {
	c := swarmtest.Config(t, 0)
	c.Types = nil
	s := swarmtest.Start(t, c)
	tp, err := s.Topic("fleet")
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := swarm.Publish(ctx, tp, swarmtest.TypeChat, 1, "", hello{Text: "hi"}); !errors.Is(err, swarm.ErrUnknownType) {
		t.Fatalf("publish without types: %v", err)
	}
	if _, err := tp.Subscribe(swarmtest.TypeChat); !errors.Is(err, swarm.ErrUnknownType) {
		t.Fatalf("subscribe without types: %v", err)
	}
}

// TestIsolate: a node cut off with SetIsolated is seen dead by the others
// and sees them dead, with no traffic over either layer; restored and
// rejoined, it is back.
func TestIsolate(t *testing.T) {
	nodes := swarmtest.Cluster(t, 3, nil)
	cut := nodes[2]
	cut.SetIsolated(true)
	swarmtest.WaitFor(t, 10*time.Second, "isolation seen on both sides", func() (bool, string) {
		return nodes[0].NumAlive() == 2 && nodes[1].NumAlive() == 2 && cut.NumAlive() == 1,
			fmt.Sprintf("%d %d %d", nodes[0].NumAlive(), nodes[1].NumAlive(), cut.NumAlive())
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := swarm.NewEnvelope(swarm.TypePing, 1, "", "hello")
	if _, err := cut.Request(ctx, nodes[0].PeerID(), "/loadswarm/test/echo", req); err == nil {
		t.Fatal("an isolated node reached a peer over libp2p")
	}
	cut.SetIsolated(false)
	if _, err := cut.Join([]string{nodes[0].GossipAddr()}); err != nil {
		t.Fatal(err)
	}
	swarmtest.WaitConverged(t, nodes, 10*time.Second)
}
