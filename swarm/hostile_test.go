package swarm_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loadswarm/loadswarm/swarm"
	"github.com/loadswarm/loadswarm/swarm/swarmtest"
)

// The wire registry of these tests, as an application would define it.
const (
	typeChat  swarm.Type = 100 // gossip: 4 KiB, 20/s, burst 10
	typeAsk   swarm.Type = 101 // request
	typeReply swarm.Type = 102 // answer
	typeNew   swarm.Type = 103 // only the hostile node has it
)

const chatRate, chatBurst = 20, 10

func honestTypes() map[swarm.Type]swarm.TypeSpec {
	return map[swarm.Type]swarm.TypeSpec{
		typeChat:  {Name: "chat", Kind: swarm.KindGossip, MaxBytes: 4 << 10, RatePerSec: chatRate, Burst: chatBurst},
		typeAsk:   {Name: "ask", Kind: swarm.KindRequest, MaxBytes: 4 << 10},
		typeReply: {Name: "reply", Kind: swarm.KindAnswer, MaxBytes: 4 << 10},
	}
}

// hostileTypes is the registry of a member built to hurt: huge chats at
// any rate, requests published as gossip, a type nobody else knows.
func hostileTypes(chatBytes int) map[swarm.Type]swarm.TypeSpec {
	return map[swarm.Type]swarm.TypeSpec{
		typeChat:  {Name: "chat", Kind: swarm.KindGossip, MaxBytes: chatBytes, RatePerSec: 1e9, Burst: 1e9},
		typeAsk:   {Name: "ask", Kind: swarm.KindGossip | swarm.KindRequest, MaxBytes: 4 << 10, RatePerSec: 1e9},
		typeReply: {Name: "reply", Kind: swarm.KindAnswer, MaxBytes: 4 << 10},
		typeNew:   {Name: "new", Kind: swarm.KindGossip, MaxBytes: 4 << 10, RatePerSec: 1e9},
	}
}

// hostileFleet starts three honest nodes with honestTypes and a hostile
// member with hostileTypes(chatBytes), all on topic "fleet", and waits
// until every node has the others as topic peers.
func hostileFleet(t *testing.T, chatBytes int) (honest []*swarm.Swarm, hostile *swarm.Swarm, topics []*swarm.Topic, subs []*swarm.Subscription, bad *swarm.Topic) {
	t.Helper()
	honest = swarmtest.Cluster(t, 3, func(i int, c *swarm.Config) { c.Types = honestTypes() })
	c := swarmtest.Config(t, 9)
	c.Types = hostileTypes(chatBytes)
	hostile = swarmtest.Start(t, c)
	if _, err := hostile.Join([]string{honest[0].GossipAddr()}); err != nil {
		t.Fatal(err)
	}
	swarmtest.WaitConverged(t, append(honest, hostile), 10*time.Second)
	bad, err := hostile.Topic("fleet")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bad.Close() })
	// Subscribed, so that the others list it as a topic peer; it reads
	// what it gets and throws it away.
	hsub, err := bad.Subscribe()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			if _, err := hsub.Next(context.Background()); err != nil {
				return
			}
		}
	}()
	topics, subs = swarmtest.Topics(t, honest, "fleet")
	swarmtest.WaitFor(t, 10*time.Second, "hostile node meshed", func() (bool, string) {
		if n := len(bad.Peers()); n < 3 {
			return false, fmt.Sprintf("hostile has %d topic peers", n)
		}
		for i, tp := range topics {
			if n := len(tp.Peers()); n < 3 {
				return false, fmt.Sprintf("%s has %d topic peers", honest[i].Name(), n)
			}
		}
		return true, ""
	})
	return honest, hostile, topics, subs, bad
}

// waitMarker publishes a chat from an honest node and checks that at
// every honest node it is the first message from anyone but the local
// node: nothing the hostile node sent before it got through.
func waitMarker(t *testing.T, ctx context.Context, honest []*swarm.Swarm, from *swarm.Topic, subs []*swarm.Subscription, text string) {
	t.Helper()
	if err := swarm.Publish(ctx, from, typeChat, 1, "", hello{Text: text}); err != nil {
		t.Fatal(err)
	}
	for i, sub := range subs {
		m, body, err := swarm.Receive[hello](ctx, sub)
		if err != nil || body.Text != text {
			t.Fatalf("%s: first message %+v from %s, %v; want the marker %q", honest[i].Name(), body, m.Sender, err, text)
		}
	}
}

// TestHostileMessagesRefused: a member of the fleet publishes a type no
// one else knows, a request type as gossip, a chat over the chat size, a
// message in another node's name and bytes that are no envelope. Every
// honest node refuses each, counts it by reason, and delivers nothing of
// it; stream requests of the wrong kind are refused too; and the honest
// API refuses to send any of it.
func TestHostileMessagesRefused(t *testing.T) {
	honest, hostile, topics, subs, bad := hostileFleet(t, 64<<10)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	if err := swarm.Publish(ctx, bad, typeNew, 1, "", hello{Text: "unknown type"}); err != nil {
		t.Fatal(err)
	}
	if err := swarm.Publish(ctx, bad, typeAsk, 1, "", hello{Text: "a request as gossip"}); err != nil {
		t.Fatal(err)
	}
	if err := swarm.Publish(ctx, bad, typeChat, 1, "", hello{Text: strings.Repeat("x", 32<<10)}); err != nil {
		t.Fatal(err)
	}
	forged, _ := swarm.NewEnvelope(typeChat, 1, "", hello{Text: "in another's name"})
	forged.Sender = honest[1].PeerID()
	raw, _ := forged.Marshal()
	if err := bad.PublishRaw(ctx, raw); err != nil {
		t.Fatal(err)
	}
	if err := bad.PublishRaw(ctx, []byte("no envelope")); err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{
		swarm.RefusedUnknownType: 1, swarm.RefusedWrongKind: 1, swarm.RefusedTooLarge: 1,
		swarm.RefusedForgedSender: 1, swarm.RefusedMalformed: 1,
	}
	swarmtest.WaitFor(t, 10*time.Second, "every refusal counted", func() (bool, string) {
		for _, s := range honest {
			got := s.Stats().Refused
			for reason, n := range want {
				if got[reason] < n {
					return false, fmt.Sprintf("%s: %v", s.Name(), got)
				}
			}
		}
		return true, ""
	})
	waitMarker(t, ctx, honest, topics[2], subs, "after the hostile messages")

	// Streams: a gossip type as a request, and a type nobody knows, are
	// answered with an error; the handler never sees them.
	var handled atomic.Int32
	honest[0].Handle("/test/ask/1", func(ctx context.Context, from string, req swarm.Envelope) (swarm.Envelope, error) {
		handled.Add(1)
		return swarm.NewEnvelope(typeReply, 1, "", hello{Text: "ok"})
	})
	for name, ty := range map[string]swarm.Type{"gossip type": typeChat, "unknown type": typeNew} {
		req, _ := swarm.NewEnvelope(ty, 1, "", hello{Text: name})
		req.Sender = hostile.PeerID()
		b, _ := req.Marshal()
		ans, err := hostile.RequestRaw(ctx, honest[0].PeerID(), "/test/ask/1", b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		e, err := swarm.DecodeEnvelope(ans)
		if err != nil || e.Type != swarm.TypeError {
			t.Fatalf("%s: answer %+v, %v", name, e, err)
		}
	}
	if handled.Load() != 0 {
		t.Fatal("the handler saw a refused request")
	}
	// The honest API sends none of it.
	for name, check := range map[string]func() error{
		"publish a request type":  func() error { return swarm.Publish(ctx, topics[0], typeAsk, 1, "", hello{}) },
		"publish an unknown type": func() error { return swarm.Publish(ctx, topics[0], typeNew, 1, "", hello{}) },
		"publish an answer type":  func() error { return swarm.Publish(ctx, topics[0], typeReply, 1, "", hello{}) },
		"publish a huge chat": func() error {
			return swarm.Publish(ctx, topics[0], typeChat, 1, "", hello{Text: strings.Repeat("x", 5000)})
		},
		"subscribe to a request type": func() error { _, err := topics[0].Subscribe(typeAsk); return err },
		"request with a gossip type": func() error {
			req, _ := swarm.NewEnvelope(typeChat, 1, "", hello{})
			_, err := honest[1].Request(ctx, honest[0].PeerID(), "/test/ask/1", req)
			return err
		},
	} {
		err := check()
		if !errors.Is(err, swarm.ErrWrongKind) && !errors.Is(err, swarm.ErrUnknownType) && !errors.Is(err, swarm.ErrTooLarge) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// And a good request still works.
	req, _ := swarm.NewEnvelope(typeAsk, 1, "", hello{Text: "fine"})
	if _, err := honest[1].Request(ctx, honest[0].PeerID(), "/test/ask/1", req); err != nil || handled.Load() != 1 {
		t.Fatalf("good request: %v (handled %d)", err, handled.Load())
	}
}

// TestHostileFlood: a member publishes 10,000 chats as fast as it can while
// an honest node chats at its normal pace. At every honest node the
// subscription delivers no more of the flood than the chat's burst plus
// its rate over the time elapsed, and every honest chat arrives.
func TestHostileFlood(t *testing.T) {
	honest, hostile, topics, subs, bad := hostileFleet(t, 4<<10)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// Count what each honest subscription delivers, from whom.
	type count struct{ flood, fine atomic.Int64 }
	counts := make([]*count, len(subs))
	var wg sync.WaitGroup
	rctx, stop := context.WithCancel(ctx)
	for i, sub := range subs {
		counts[i] = &count{}
		wg.Go(func() {
			for {
				m, err := sub.Next(rctx)
				if err != nil {
					return
				}
				switch m.Sender {
				case hostile.PeerID():
					counts[i].flood.Add(1)
				case honest[0].PeerID():
					counts[i].fine.Add(1)
				}
			}
		})
	}

	start := time.Now()
	const honestChats = 10
	wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond) // the honest node's pace, during the flood
		defer tick.Stop()
		for i := range honestChats {
			if err := swarm.Publish(ctx, topics[0], typeChat, 1, "", hello{Text: "fine", N: i}); err != nil {
				t.Errorf("honest chat %d: %v", i, err)
			}
			<-tick.C
		}
	})
	// Four publishers, as fast as they can: 10,000 chats, or as many as
	// fit in 10 s. The hostile node shares the cores with its victims, so
	// under the race detector it floods with one publisher and 2,000
	// chats: more starves the failure detector, whose false deaths would
	// cut honest links (a cost of running everyone in one process).
	publishers, chats := 4, 10000
	if raceDetector {
		publishers, chats = 1, 2000
	}
	var published atomic.Int64
	floodEnd := start.Add(10 * time.Second)
	var flood sync.WaitGroup
	for w := range publishers {
		flood.Go(func() {
			for i := w; i < chats && time.Now().Before(floodEnd); i += publishers {
				if swarm.Publish(ctx, bad, typeChat, 1, "", hello{Text: "flood", N: i}) == nil {
					published.Add(1)
				}
			}
		})
	}
	flood.Wait()
	floodTime := time.Since(start)

	// Every honest chat arrives at every honest node (the sender's own
	// subscription included).
	swarmtest.WaitFor(t, 10*time.Second, "honest chats delivered", func() (bool, string) {
		for i, c := range counts {
			if n := c.fine.Load(); n < honestChats {
				return false, fmt.Sprintf("%s got %d of %d honest chats", honest[i].Name(), n, honestChats)
			}
		}
		return true, ""
	})
	elapsed := time.Since(start)
	bound := int64(chatBurst + chatRate*elapsed.Seconds() + 1)
	for i, c := range counts {
		st := honest[i].Stats()
		t.Logf("%s: %d of %d flood chats delivered in %v (bound %d); refused: %v; penalized peers %d",
			honest[i].Name(), c.flood.Load(), published.Load(), elapsed.Round(time.Millisecond), bound, st.Refused, st.PenalizedPeers)
		if n := c.flood.Load(); n > bound {
			t.Errorf("%s delivered %d flood chats in %v: more than burst %d + %d/s", honest[i].Name(), n, elapsed, chatBurst, chatRate)
		}
		if st.Refused[swarm.RefusedRateLimited] == 0 && st.PenalizedPeers == 0 {
			t.Errorf("%s refused nothing of the flood", honest[i].Name())
		}
		if st.PenalizedPeers > 1 {
			t.Errorf("%s penalized %d peers: only the hostile one deserves it", honest[i].Name(), st.PenalizedPeers)
		}
	}
	t.Logf("hostile published %d chats in %v", published.Load(), floodTime.Round(time.Millisecond))
	stop()
	wg.Wait()
}

// TestMalformedSenderCutOff: a member that keeps sending bytes that are no
// envelope is cut off by GossipSub's peer scoring at every honest node;
// the honest nodes keep talking, and none of them is penalized.
func TestMalformedSenderCutOff(t *testing.T) {
	honest, hostile, topics, subs, bad := hostileFleet(t, 4<<10)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 60 {
		if err := bad.PublishRaw(ctx, []byte(fmt.Sprintf("garbage %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	swarmtest.WaitFor(t, 10*time.Second, "the sender of garbage penalized everywhere", func() (bool, string) {
		for _, s := range honest {
			if st := s.Stats(); st.PenalizedPeers != 1 {
				return false, fmt.Sprintf("%s: %d penalized, refused %v", s.Name(), st.PenalizedPeers, st.Refused)
			}
		}
		return true, ""
	})
	// Now even its valid messages are dropped unread: a chat it publishes
	// before an honest marker does not arrive before the marker.
	if err := swarm.Publish(ctx, bad, typeChat, 1, "", hello{Text: "valid, from a cut-off peer"}); err != nil {
		t.Fatal(err)
	}
	waitMarker(t, ctx, honest, topics[1], subs, "honest nodes still talk")
	for _, s := range honest {
		if st := s.Stats(); st.PenalizedPeers != 1 {
			t.Fatalf("%s: %d penalized peers, want 1 (the hostile %s)", s.Name(), st.PenalizedPeers, hostile.Name())
		}
	}
}

// hostileProcessEnv names the seed that TestHostileProcess joins.
const hostileProcessEnv = "SWARM_TEST_HOSTILE_SEED"

// TestHugeGossipRefused reproduces "Trust no member": a member publishes a
// 60 MiB gossip message. The honest nodes' GossipSub refuses it from its
// length prefix (their largest gossip type is 4 KiB), so they never hold
// it: their memory does not grow by more than a few MiB, and nothing is
// delivered. The member runs in a child process (TestHostileProcess) so
// that the memory measured here is the honest nodes' alone.
func TestHugeGossipRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	honest := swarmtest.Cluster(t, 3, func(i int, c *swarm.Config) { c.Types = honestTypes() })
	topics, subs := swarmtest.Topics(t, honest, "fleet")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestHostileProcess$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), hostileProcessEnv+"="+honest[0].GossipAddr())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		var out []string
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "HOSTILE ") {
				lines <- l
			} else {
				out = append(out, l)
			}
		}
		close(lines)
		err := cmd.Wait()
		if err != nil {
			err = fmt.Errorf("%w; output:\n%s", err, strings.Join(out, "\n"))
		}
		exited <- err
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	expect := func(prefix string) string {
		t.Helper()
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("hostile process ended before %q: %v", prefix, <-exited)
			}
			if !strings.HasPrefix(l, prefix) {
				t.Fatalf("hostile process said %q, want %q", l, prefix)
			}
			return l
		case <-ctx.Done():
			t.Fatalf("hostile process: no %q", prefix)
		}
		return ""
	}
	expect("HOSTILE READY")

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	var peak atomic.Uint64
	sampling, stopSampling := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(5 * time.Millisecond) // sampling period, not a wait
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-sampling.Done():
				return
			case <-tick.C:
			}
		}
	}()

	fmt.Fprintln(stdin, "publish")
	t.Log(expect("HOSTILE PUBLISHED"))
	// Each honest node reads the length prefix, refuses, and resets the
	// stream; the member then drops it from the topic. When it has no
	// topic peer left, every honest node has met the message.
	t.Log(expect("HOSTILE REFUSED"))
	// Ending the member ends everything it sent.
	stdin.Close()
	if err := <-exited; err != nil {
		t.Fatalf("hostile process: %v", err)
	}
	stopSampling()
	<-sampled
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	// Reading the message would take 60 MiB per node for tens of
	// milliseconds at least, which the 5 ms samples would see. (TotalAlloc
	// is logged only: it grows with the time the test takes.)
	const few = 16 << 20
	grew, allocated := int64(peak.Load())-int64(before.HeapInuse), after.TotalAlloc-before.TotalAlloc
	t.Logf("honest nodes: heap in use %d MiB before, peak +%d MiB, %d MiB after; allocated %d MiB in all meanwhile",
		before.HeapInuse>>20, grew>>20, after.HeapInuse>>20, allocated>>20)
	if grew > few {
		t.Fatalf("honest nodes' heap grew by %d MiB: the 60 MiB message was read", grew>>20)
	}
	// Nothing was delivered, and they still talk.
	waitMarker(t, ctx, honest, topics[0], subs, "still fine")
}

// TestHostileProcess is the member of TestHugeGossipRefused, run in a
// child process: it joins the seed, publishes one 60 MiB chat when told,
// says when every peer has cut it off, and waits for its stdin to close.
func TestHostileProcess(t *testing.T) {
	seed := os.Getenv(hostileProcessEnv)
	if seed == "" {
		t.Skip("the member of TestHugeGossipRefused, run as its child process")
	}
	swarm.AllowHugeGossip() // a member built without the ceiling
	c := swarmtest.Config(t, 99)
	c.Types = hostileTypes(64 << 20)
	s := swarmtest.Start(t, c)
	if _, err := s.Join([]string{seed}); err != nil {
		t.Fatal(err)
	}
	tp, err := s.Topic("fleet")
	if err != nil {
		t.Fatal(err)
	}
	swarmtest.WaitFor(t, 20*time.Second, "topic peers", func() (bool, string) {
		return len(tp.Peers()) >= 3, strconv.Itoa(len(tp.Peers()))
	})
	fmt.Println("HOSTILE READY")
	in := bufio.NewReader(os.Stdin)
	if _, err := in.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	huge := hello{Text: strings.Repeat("x", 60<<20)}
	err = swarm.Publish(context.Background(), tp, typeChat, 1, "", huge)
	fmt.Println("HOSTILE PUBLISHED 60 MiB chat:", err)
	// Published again every 2 s while a peer remains: one that lost its
	// link to us meanwhile (a false death on a loaded machine) and came
	// back never saw the first.
	last := time.Now()
	swarmtest.WaitFor(t, 60*time.Second, "every peer cut the stream", func() (bool, string) {
		if n := len(tp.Peers()); n > 0 && time.Since(last) > 2*time.Second {
			_ = swarm.Publish(context.Background(), tp, typeChat, 1, "", huge)
			last = time.Now()
		}
		return len(tp.Peers()) == 0, strconv.Itoa(len(tp.Peers()))
	})
	fmt.Println("HOSTILE REFUSED by every peer: none left on the topic")
	_, _ = io.Copy(io.Discard, in)
}
