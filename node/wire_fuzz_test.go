package node

import (
	"testing"
	"time"

	"github.com/loadswarm/loadswarm/scenarios"
	"github.com/loadswarm/loadswarm/scheduler"
	"github.com/loadswarm/loadswarm/storage"
	"github.com/loadswarm/loadswarm/swarm"
)

// FuzzWire feeds arbitrary bytes through the decoder a node uses for every
// message (the registry of wireTypes, with its limits), then through the
// body's own decoding and checks, for every type: nothing a peer sends may
// crash a node.
func FuzzWire(f *testing.F) {
	reg, err := swarm.NewRegistry(wireTypes)
	if err != nil {
		f.Fatal(err)
	}
	dec, err := reg.NewDecoder(swarm.Limits{})
	if err != nil {
		f.Fatal(err)
	}
	prof := scenarios.NewProfile([]scenarios.Segment{{Dur: 10 * time.Second, From: 10, To: 10}})
	seeds := []struct {
		t    swarm.Type
		body any
	}{
		{TypeTestAnnounce, Announce{Body: []byte{0xa0}, Sig: []byte{1}, Signer: "x"}},
		{TypeTestReady, Ready{ID: "t", Accept: true, Free: 10}},
		{TypeTestStop, Stop{ID: "t", Reason: "r"}},
		{TypeStats, Stats{Name: "n", Second: []byte{0xa0}}},
		{TypePlan, scheduler.Plan{TestID: "t", Epoch: 1, Scheduler: "a", Shares: []scheduler.Share{{Node: "a", Segments: []scenarios.Segment{{Dur: 1e9, From: 1, To: 1}}}}}},
		{TypeLease, scheduler.Lease{TestID: "t", Epoch: 1, Scheduler: "a", TTL: time.Second, Nodes: []string{"a"}}},
		{TypeQuery, Query{TestID: "t", Resolution: 1}},
		{TypeQueryResult, QueryAnswer{Parts: []QueryPart{{Origin: "a", Total: []byte{0xa0}}}}},
		{TypeTestsList, TestsList{Tests: []Announce{{Body: []byte{0xa0}}}}},
	}
	for _, s := range seeds {
		e, _ := swarm.NewEnvelope(s.t, wireVersion, "t", s.body)
		e.Sender = "a"
		b, _ := e.Marshal()
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := dec.Decode(data)
		if err != nil {
			return
		}
		switch e.Type {
		case TypeTestAnnounce:
			var a Announce
			if e.DecodeBody(&a) == nil {
				_, _, _ = a.open()
			}
		case TypeTestReady:
			var r Ready
			_ = e.DecodeBody(&r)
		case TypeTestStop:
			var s Stop
			_ = e.DecodeBody(&s)
		case TypeStats:
			var s Stats
			if e.DecodeBody(&s) == nil && len(s.Second) > 0 {
				_, _ = storage.DecodeSecond(s.Second)
			}
		case TypePlan, TypePlanResponse:
			var p scheduler.Plan
			if e.DecodeBody(&p) == nil && p.Validate() == nil {
				_ = scheduler.CheckPlan(&p, prof)
				_ = p.Digest()
			}
		case TypeLease:
			var l scheduler.Lease
			_ = e.DecodeBody(&l)
		case TypeQuery:
			var q Query
			if e.DecodeBody(&q) == nil {
				_ = q.Validate()
			}
		case TypeQueryResult:
			var a QueryAnswer
			if e.DecodeBody(&a) == nil {
				for _, p := range a.Parts {
					_, _ = storage.DecodeSecond(p.Total)
					_, _ = storage.DecodeSeries(p.Series)
				}
			}
		case TypeTestsList:
			var l TestsList
			if e.DecodeBody(&l) == nil {
				for _, a := range l.Tests {
					_, _, _ = a.open()
				}
			}
		}
	})
}
