package node_test

import (
	"context"
	"testing"
	"time"

	"github.com/loadswarm/loadswarm/node"
	"github.com/loadswarm/loadswarm/scheduler"
	"github.com/loadswarm/loadswarm/storage"
	"github.com/loadswarm/loadswarm/swarm"
	"github.com/loadswarm/loadswarm/swarm/swarmtest"
)

// TestRoguePeerCannotDisrupt: a fleet member that sends bad or hostile
// messages (malformed announcements, a forged plan, a plan it claims to
// lead, fake results, an oversized lease) is refused message by message;
// the nodes keep running and a real test is unharmed.
func TestRoguePeerCannotDisrupt(t *testing.T) {
	nodes := fleet(t, 3)
	cfg := swarmtest.Config(t, 99)
	cfg.Meta.CapacityPerSec = 1000
	rogue := swarmtest.Start(t, cfg)
	if _, err := rogue.Join([]string{nodes[0].Swarm().GossipAddr()}); err != nil {
		t.Fatal(err)
	}
	swarmtest.WaitFor(t, 10*time.Second, "rogue seen", func() (bool, string) {
		return nodes[0].Swarm().NumAlive() == 4 && nodes[2].Swarm().NumAlive() == 4, ""
	})
	ctx := context.Background()
	fleetTopic, err := rogue.Topic("fleet")
	if err != nil {
		t.Fatal(err)
	}
	// Bad announcements: a spec that does not parse, an empty id.
	for _, a := range []node.Announce{
		{ID: "bad-spec", Spec: []byte("name: [")},
		{ID: "", Spec: spec("http://127.0.0.1:1", 1, 1)},
		{ID: "too-long", Spec: make([]byte, 2<<20)},
	} {
		_ = swarm.Publish(ctx, fleetTopic, swarm.TypeTestAnnounce, 1, a.ID, a)
	}
	// A ready answer with a junk body type.
	_ = swarm.Publish(ctx, fleetTopic, swarm.TypeTestReady, 1, "x", "not a ready body")

	ct := newCountingTarget(t)
	c := node.NewClient(nodes[0].APIAddr(), nil)
	id, err := c.Submit(ctx, spec(ct.srv.URL, 100, 4), "")
	if err != nil {
		t.Fatal(err)
	}
	st := waitStart(t, c, id)
	ct.setStart(*st.Start)
	topic, err := rogue.Topic("test/" + id)
	if err != nil {
		t.Fatal(err)
	}
	swarmtest.WaitFor(t, 5*time.Second, "rogue in the test's topic", func() (bool, string) {
		return len(topic.Peers()) > 0, ""
	})
	// A plan it claims to lead, giving node 1 a huge rate.
	huge := scheduler.Plan{TestID: id, Epoch: 99, Scheduler: rogue.PeerID(), Start: *st.Start,
		Shares: []scheduler.PlanShare{{Node: nodes[1].Swarm().PeerID(), Seed: 1,
			Segments: []scheduler.WireSegment{{Start: 0, Dur: int64(10 * time.Second), From: 5000, To: 5000}}}}}
	_ = swarm.Publish(ctx, topic, swarm.TypePlan, 1, id, huge)
	// A plan forged in the real scheduler's name (its signature is the rogue's).
	forged := huge
	forged.Scheduler = nodes[0].Swarm().PeerID()
	_ = swarm.Publish(ctx, topic, swarm.TypePlan, 1, id, forged)
	// A lease of an hour, fake results, garbage results.
	_ = swarm.Publish(ctx, topic, swarm.TypeLease, 1, id, scheduler.Lease{TestID: id, Epoch: 99, Scheduler: rogue.PeerID(), TTL: time.Hour})
	fake := storage.NewSecond(1)
	b := fake.Bucket(storage.Dim{Step: "a", Status: "2xx"})
	b.Requests, b.Arrivals, b.Planned = 1_000_000, 1_000_000, 1_000_000
	enc, _ := storage.EncodeSecond(fake)
	_ = swarm.Publish(ctx, topic, swarm.TypeStats, 1, id, node.Stats{Name: "rogue", Second: enc})
	_ = swarm.Publish(ctx, topic, swarm.TypeStats, 1, id, node.Stats{Name: "rogue", Second: []byte{0xff, 0x00, 0x13}})

	st = waitOver(t, c, id, 30*time.Second)
	if st.Report.Requests != 400 || st.Report.Status != "passed" {
		t.Fatalf("report: %d requests (want 400), %s", st.Report.Requests, st.Report.Status)
	}
	counts, _ := ct.snapshot()
	for s := int64(0); s < 4; s++ {
		if counts[s] > 105 {
			t.Fatalf("second %d: %d requests at the target: a hostile plan was followed", s, counts[s])
		}
	}
	if st.Scheduler == "" || st.Scheduler == cfg.Name {
		t.Fatalf("scheduler %q", st.Scheduler)
	}
	for _, n := range nodes {
		if _, err := node.NewClient(n.APIAddr(), nil).Health(ctx); err != nil {
			t.Fatalf("%s: %v", n.Swarm().Name(), err)
		}
	}
}
