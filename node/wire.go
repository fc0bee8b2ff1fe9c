package node

import (
	"time"
)

// Topic and protocol names.
const (
	fleetTopic    = "fleet"             // test announcements and stops
	planProtocol  = "/loadswarm/plan/1" // stream: fetch a test's current plan
	wireVersion   = 1                   // body schema version of the messages below
	maxSpecOnWire = 1 << 20             // a test file travels whole in its announcement
	testTopicFmt  = "test/%s"           // per-test: plans, leases, stats
)

// Announce is the body of swarm.TypeTestAnnounce: a test submitted to the
// fleet. Every node validates the spec again: a peer is not trusted to
// have done it.
type Announce struct {
	ID        string    `cbor:"1,keyasint"`
	Spec      []byte    `cbor:"2,keyasint"`
	Target    string    `cbor:"3,keyasint,omitempty"` // replaces the spec's target when set
	Submitter string    `cbor:"4,keyasint"`           // the submitting node's name
	Created   time.Time `cbor:"5,keyasint"`
	Seed      uint64    `cbor:"6,keyasint"`
}

// Stop is the body of swarm.TypeTestStop.
type Stop struct {
	ID     string `cbor:"1,keyasint"`
	Reason string `cbor:"2,keyasint"`
	Failed bool   `cbor:"3,keyasint,omitempty"` // the test could not run (vs. stopped by a user)
}

// Stats is the body of swarm.TypeStats: one node's results for one second
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
}

// PlanFetch is the body of swarm.TypePlanFetch.
type PlanFetch struct {
	TestID string `cbor:"1,keyasint"`
}

// Ready is the body of swarm.TypeTestReady: whether a node takes part in a
// test, checked against its operator's policy when the test is announced.
type Ready struct {
	ID     string `cbor:"1,keyasint"`
	Accept bool   `cbor:"2,keyasint,omitempty"`
	Reason string `cbor:"3,keyasint,omitempty"` // why it declines
	Name   string `cbor:"4,keyasint,omitempty"`
}
