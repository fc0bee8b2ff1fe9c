package node

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/loadswarm/loadswarm/scheduler"
	"github.com/loadswarm/loadswarm/swarm"
)

// The wire, in one place: topics, stream protocols, the message types with
// their limits, and the body of each. Adding a message touches this file
// and the handler that reads it; the swarm moves envelopes and enforces the
// limits of wireTypes without knowing what they carry.
const (
	fleetTopic    = "fleet"             // test announcements, readiness and stops
	testTopicFmt  = "test/%s"           // per test: plans, leases, stats
	planProtocol  = "/loadswarm/plan/1" // stream: fetch a test's current plan
	queryProtocol = "/loadswarm/query/1"
	testsProtocol = "/loadswarm/tests/1" // stream: the tests running now (for a node that joins late)
	wireVersion   = 1                    // body schema version of every message below
	maxSpecOnWire = 1 << 20              // a test file travels whole in its announcement
	// announceDomain separates the signature of an announcement from any
	// other use of a node's key.
	announceDomain = "loadswarm/announce/1\x00"
	maxCatchUp     = 32 // tests a node hands to one that joins late
)

// Message types. Numbers are never reused; a receiver refuses a type it
// does not know.
const (
	TypeTestAnnounce swarm.Type = 10 // fleet topic: a test was submitted (Announce)
	TypeTestStop     swarm.Type = 11 // fleet topic: stop a test (Stop)
	TypeTestReady    swarm.Type = 12 // fleet topic: a node accepts or declines a test (Ready)
	TypePlan         swarm.Type = 20 // test topic: the scheduler's plan (scheduler.Plan)
	TypeLease        swarm.Type = 21 // test topic: a lease renewal (scheduler.Lease)
	TypeStats        swarm.Type = 30 // test topic: a node's second of results (Stats)
	TypeObserved     swarm.Type = 31 // test topic: the system under test as the scheduler read it (Observed)
	TypeQuery        swarm.Type = 40 // stream: a result query (Query)
	TypeQueryResult  swarm.Type = 41 // stream: its answer (QueryAnswer)
	TypePlanFetch    swarm.Type = 42 // stream: ask a node for a test's plan (PlanFetch)
	TypePlanResponse swarm.Type = 43 // stream: the plan (scheduler.Plan)
	TypeTestsFetch   swarm.Type = 44 // stream: ask a member for the tests that run now (TestsFetch)
	TypeTestsList    swarm.Type = 45 // stream: their signed announcements (TestsList)
)

// wireTypes is the registry the swarm enforces: how each type travels, its
// largest envelope, and for gossip how many each sender may publish per
// second on every node (rates are per sender across all its tests, sized
// for a node in tens of tests at once: a second of stats and a lease per
// test per second).
var wireTypes = map[swarm.Type]swarm.TypeSpec{
	TypeTestAnnounce: {Name: "test-announce", Kind: swarm.KindGossip, MaxBytes: maxSpecOnWire + 64<<10, RatePerSec: 5, Burst: 20},
	TypeTestStop:     {Name: "test-stop", Kind: swarm.KindGossip, MaxBytes: 16 << 10, RatePerSec: 10, Burst: 50},
	TypeTestReady:    {Name: "test-ready", Kind: swarm.KindGossip, MaxBytes: 16 << 10, RatePerSec: 20, Burst: 100},
	TypePlan:         {Name: "plan", Kind: swarm.KindGossip, MaxBytes: 2 << 20, RatePerSec: 20, Burst: 50},
	TypeLease:        {Name: "lease", Kind: swarm.KindGossip, MaxBytes: 512 << 10, RatePerSec: 50, Burst: 100},
	TypeStats:        {Name: "stats", Kind: swarm.KindGossip, MaxBytes: 1 << 20, RatePerSec: 100, Burst: 300},
	TypeObserved:     {Name: "observed", Kind: swarm.KindGossip, MaxBytes: 256 << 10, RatePerSec: 20, Burst: 60},
	TypeQuery:        {Name: "query", Kind: swarm.KindRequest, MaxBytes: 1 << 20},
	TypeQueryResult:  {Name: "query-result", Kind: swarm.KindAnswer, MaxBytes: 64 << 20},
	TypePlanFetch:    {Name: "plan-fetch", Kind: swarm.KindRequest, MaxBytes: 16 << 10},
	TypePlanResponse: {Name: "plan-response", Kind: swarm.KindAnswer, MaxBytes: 4<<20 + 64<<10},
	TypeTestsFetch:   {Name: "tests-fetch", Kind: swarm.KindRequest, MaxBytes: 16 << 10},
	TypeTestsList:    {Name: "tests-list", Kind: swarm.KindAnswer, MaxBytes: maxCatchUp*(maxSpecOnWire+8<<10) + 64<<10},
}

// Announce is the body of TypeTestAnnounce: a test as its submitter
// signed it. The signature covers Body's bytes as sent, so no relay can
// change a field, and the test's id is a hash of them, so a submitter
// cannot choose it apart from the content. Signer is the submitter's peer
// id, whose public key it embeds: identity is the signature, never a name
// written in a message.
type Announce struct {
	Body   []byte `cbor:"1,keyasint"` // CBOR of AnnounceBody
	Sig    []byte `cbor:"2,keyasint"`
	Signer string `cbor:"3,keyasint"`
}

// AnnounceBody is what a submitter signs.
type AnnounceBody struct {
	Spec    []byte    `cbor:"1,keyasint"`
	Target  string    `cbor:"2,keyasint,omitempty"` // replaces the spec's target when set
	Name    string    `cbor:"3,keyasint"`           // the submitting node's name, for people; trust goes by Signer
	Created time.Time `cbor:"4,keyasint"`
	Seed    uint64    `cbor:"5,keyasint"`
	// Env and Secret are the run's parameters (swarm run -e, -s): values
	// the test reads as env.KEY, and the names whose values are secret.
	// They travel only inside the fleet's authenticated, encrypted
	// transport; the nodes keep and show the secrets as "***".
	Env    map[string]string `cbor:"6,keyasint,omitempty"`
	Secret []string          `cbor:"7,keyasint,omitempty"`
}

// encodePlan is a plan as it travels, and as the store keeps it.
func encodePlan(p *scheduler.Plan) ([]byte, error) { return swarm.EncodeBody(p) }

// onWire returns p as every receiver will decode it: a scheduler follows
// that copy of its own plan, so that it agrees to the nanosecond (and to
// the digest) with the nodes that read it from the wire.
func onWire(p *scheduler.Plan) (*scheduler.Plan, error) {
	b, err := encodePlan(p)
	if err != nil {
		return nil, err
	}
	return decodePlan(b)
}

// decodePlan reads a plan kept by encodePlan.
func decodePlan(b []byte) (*scheduler.Plan, error) {
	var p scheduler.Plan
	if err := (swarm.Envelope{Type: TypePlan, Body: b}).DecodeBody(&p); err != nil {
		return nil, err
	}
	return &p, nil
}

// testIDOf derives a test's id from its signed body.
func testIDOf(body []byte) string {
	h := sha256.Sum256(body)
	return hex.EncodeToString(h[:8])
}

// signAnnounce signs a test's body with this node's key.
func signAnnounce(sw *swarm.Swarm, b AnnounceBody) (Announce, error) {
	raw, err := swarm.EncodeBody(b)
	if err != nil {
		return Announce{}, fmt.Errorf("announce: %w", err)
	}
	sig, err := sw.Sign(append([]byte(announceDomain), raw...))
	if err != nil {
		return Announce{}, fmt.Errorf("announce: sign: %w", err)
	}
	return Announce{Body: raw, Sig: sig, Signer: sw.PeerID()}, nil
}

// open checks an announcement's signature and decodes its body.
func (a Announce) open() (id string, b AnnounceBody, err error) {
	if len(a.Body) == 0 || len(a.Body) > maxSpecOnWire+4096 || len(a.Sig) == 0 || len(a.Sig) > 512 || a.Signer == "" {
		return "", b, errors.New("announcement: missing or oversized body, signature or signer")
	}
	if err := swarm.VerifySignature(a.Signer, append([]byte(announceDomain), a.Body...), a.Sig); err != nil {
		return "", b, fmt.Errorf("announcement: %w", err)
	}
	if err := (swarm.Envelope{Type: TypeTestAnnounce, Body: a.Body}).DecodeBody(&b); err != nil {
		return "", b, fmt.Errorf("announcement body: %w", err)
	}
	if len(b.Spec) > maxSpecOnWire || len(b.Name) > 256 || len(b.Target) > 4096 {
		return "", b, errors.New("announcement body: a field is over its limit")
	}
	return testIDOf(a.Body), b, nil
}

// Stop is the body of TypeTestStop. Only the test's submitter or its
// scheduler may stop it: every node checks the sender.
type Stop struct {
	ID     string `cbor:"1,keyasint"`
	Reason string `cbor:"2,keyasint"`
	Failed bool   `cbor:"3,keyasint,omitempty"` // the test could not run (vs. stopped by a user)
	// Aborted is the abort threshold that stopped the test, when one did:
	// its scheduler evaluates them on the fleet's merged numbers.
	Aborted string `cbor:"4,keyasint,omitempty"`
}

// Stats is the body of TypeStats: one node's results for one second
// (live progress and replication in one message), or its last word.
type Stats struct {
	Name      string              `cbor:"1,keyasint"`
	Region    string              `cbor:"2,keyasint,omitempty"`
	Second    []byte              `cbor:"3,keyasint,omitempty"` // storage.EncodeSecond
	Done      bool                `cbor:"4,keyasint,omitempty"` // the node's share is over
	Stopped   string              `cbor:"5,keyasint,omitempty"` // why the node stopped early, if it did
	Samples   map[string][]string `cbor:"6,keyasint,omitempty"` // error samples, with Done
	StartSkew time.Duration       `cbor:"7,keyasint,omitempty"` // how late its first arrival could go
	Epoch     uint64              `cbor:"8,keyasint,omitempty"` // the plan epoch it follows
	// Plan is the digest of the plan the node follows (scheduler.Plan.Digest):
	// a node that joins late follows the plan most shareholders report.
	Plan []byte `cbor:"9,keyasint,omitempty"`
}

// PlanFetch is the body of TypePlanFetch.
type PlanFetch struct {
	TestID string `cbor:"1,keyasint"`
}

// Ready is the body of TypeTestReady: whether a node takes part in a
// test, checked against its operator's policy when the test is announced.
type Ready struct {
	ID     string  `cbor:"1,keyasint"`
	Accept bool    `cbor:"2,keyasint,omitempty"`
	Reason string  `cbor:"3,keyasint,omitempty"` // why it declines
	Name   string  `cbor:"4,keyasint,omitempty"`
	Free   float64 `cbor:"5,keyasint,omitempty"` // arrivals/s it can give the test (its capacity less its other tests')
}

// TestsFetch is the body of TypeTestsFetch: a node that joined late
// asks a member for the tests that run now.
type TestsFetch struct{}

// TestsList answers TestsFetch with the tests' signed announcements, which
// the asking node checks as if it had read them on the fleet topic.
type TestsList struct {
	Tests []Announce `cbor:"1,keyasint"`
}

// WireTypes returns a copy of the message registry, for programs that
// speak the fleet's protocol (tests that play a hostile member, tools).
func WireTypes() map[swarm.Type]swarm.TypeSpec {
	out := make(map[swarm.Type]swarm.TypeSpec, len(wireTypes))
	for k, v := range wireTypes {
		out[k] = v
	}
	return out
}
