package scheduler

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/loadswarm/loadswarm/scenarios"
)

// Wire versions of the bodies below (swarm.Envelope.Version).
const WireVersion = 1

// Plan is a test's split as its scheduler decided it: who sends what, from
// when. Nodes follow the plan with the highest epoch; a plan with a higher
// epoch replaces the shares of the previous one from Effective on.
type Plan struct {
	TestID    string        `cbor:"1,keyasint"`
	Epoch     uint64        `cbor:"2,keyasint"`
	Scheduler string        `cbor:"3,keyasint"` // the scheduler's node id
	Start     time.Time     `cbor:"4,keyasint"` // the test's time 0: every node starts its share then
	Effective time.Duration `cbor:"5,keyasint"` // offset into the test from which these shares apply
	Shares    []Share       `cbor:"6,keyasint"`
	// Excluded says why a member takes no part (not selected, declined,
	// capacity 0, lost).
	Excluded map[string]string `cbor:"7,keyasint,omitempty"`
	Unit     float64           `cbor:"8,keyasint,omitempty"`
	// LeaseTTL is how long a node's share lasts without a renewal; the plan
	// itself is the first lease.
	LeaseTTL time.Duration `cbor:"9,keyasint,omitempty"`
}

// Limits on plans from the network.
const (
	MaxShares   = 100_000
	MaxSegments = 20_000
)

// Share returns the plan's share for a node.
func (p *Plan) Share(node string) (Share, bool) {
	for _, s := range p.Shares {
		if s.Node == node {
			return s, true
		}
	}
	return Share{}, false
}

// Nodes lists the nodes with a share.
func (p *Plan) Nodes() []string {
	out := make([]string, len(p.Shares))
	for i, s := range p.Shares {
		out[i] = s.Node
	}
	return out
}

// Validate checks a plan received from a peer: nothing in it may make a
// node misbehave.
func (p *Plan) Validate() error {
	var errs []error
	if p.TestID == "" || p.Scheduler == "" || p.Epoch == 0 {
		errs = append(errs, errors.New("plan: test id, scheduler and epoch are required"))
	}
	if p.Effective < 0 {
		errs = append(errs, errors.New("plan: effective offset is negative"))
	}
	if p.LeaseTTL < 0 || p.LeaseTTL > time.Minute {
		errs = append(errs, errors.New("plan: lease TTL must be 0..1m"))
	}
	if len(p.Shares) > MaxShares {
		errs = append(errs, fmt.Errorf("plan: %d shares, over %d", len(p.Shares), MaxShares))
	}
	for i, s := range p.Shares {
		if s.Node == "" {
			errs = append(errs, fmt.Errorf("plan: shares[%d]: no node", i))
		}
		if len(s.Segments) > MaxSegments {
			errs = append(errs, fmt.Errorf("plan: shares[%d]: %d segments, over %d", i, len(s.Segments), MaxSegments))
			continue
		}
		var at time.Duration
		for j, g := range s.Segments {
			if g.Start != at || g.Dur <= 0 || !(g.From >= 0) || !(g.To >= 0) || g.From > scenarios.MaxRate || g.To > scenarios.MaxRate {
				errs = append(errs, fmt.Errorf("plan: shares[%d].segments[%d]: not contiguous, or a bad rate", i, j))
				break
			}
			at += g.Dur
		}
		if at > scenarios.MaxDuration {
			errs = append(errs, fmt.Errorf("plan: shares[%d]: longer than %s", i, scenarios.MaxDuration))
		}
	}
	return errors.Join(errs...)
}

// Lease renews the shares of the listed nodes for TTL from its receipt.
// Receipt time, not the sender's clock, starts the TTL, so clock skew
// between hosts does not stretch a lease.
type Lease struct {
	TestID    string        `cbor:"1,keyasint"`
	Epoch     uint64        `cbor:"2,keyasint"`
	Scheduler string        `cbor:"3,keyasint"`
	TTL       time.Duration `cbor:"4,keyasint"`
	Nodes     []string      `cbor:"5,keyasint"`
	// Sent is the scheduler's clock when it made the lease. A follower
	// counts the TTL from there, moved by the smallest delay it has seen
	// from that scheduler (see Follower), so a lease read late counts as
	// old. Zero: count from receipt.
	Sent time.Time `cbor:"6,keyasint,omitempty"`
}

// Digest is a hash of everything in the plan. Two plans of one scheduler
// with the same epoch and different digests mean it lied to somebody.
func (p *Plan) Digest() [32]byte {
	h := sha256.New()
	var b [8]byte
	num := func(v uint64) { binary.BigEndian.PutUint64(b[:], v); h.Write(b[:]) }
	str := func(s string) { num(uint64(len(s))); h.Write([]byte(s)) }
	str(p.TestID)
	num(p.Epoch)
	str(p.Scheduler)
	num(uint64(p.Start.UnixNano()))
	num(uint64(p.Effective))
	num(math.Float64bits(p.Unit))
	num(uint64(p.LeaseTTL))
	num(uint64(len(p.Shares)))
	for _, s := range p.Shares {
		str(s.Node)
		str(s.Region)
		num(s.Seed)
		num(uint64(len(s.Segments)))
		for _, g := range s.Segments {
			num(uint64(g.Start))
			num(uint64(g.Dur))
			num(math.Float64bits(g.From))
			num(math.Float64bits(g.To))
		}
	}
	keys := make([]string, 0, len(p.Excluded))
	for k := range p.Excluded {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	num(uint64(len(keys)))
	for _, k := range keys {
		str(k)
		str(p.Excluded[k])
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Majority reports whether more than half of the nodes with a share in p
// are in alive: a node leads a test, or takes it over, only then.
func Majority(p *Plan, alive map[string]Member) bool {
	n := 0
	for _, s := range p.Shares {
		if _, ok := alive[s.Node]; ok {
			n++
		}
	}
	return 2*n > len(p.Shares)
}

// Holds reports whether the lease renews node's share.
func (l *Lease) Holds(node string) bool {
	for _, n := range l.Nodes {
		if n == node {
			return true
		}
	}
	return false
}
