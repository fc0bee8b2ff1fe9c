package swarm

import (
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// metaMaxSize is memberlist's limit on node metadata (MetaMaxSize); more
// makes memberlist panic, so the swarm checks before handing it over.
const metaMaxSize = 512

// Meta is what a node tells the fleet about itself; scheduler rules see it
// as `node`. It travels in memberlist's node metadata, which holds at most
// 512 bytes with the peer id and address: keep tags short.
type Meta struct {
	Region         string            // e.g. "eu-west"; empty if unknown
	Zone           string            // e.g. "eu-west-1a"
	Org            string            // the organization that runs the node (shared fleets)
	CapacityPerSec int               // the most requests per second this node will generate; 0: none declared
	CPUs           int               // cores the node may use; New fills in runtime.NumCPU() when 0
	Tags           map[string]string // free-form labels, e.g. {"tier": "spot"}
	// API is the node's local API address (host:port), so that the others
	// can refuse to send a test's requests to it.
	API string
}

// Clone returns a copy that shares no map with m.
func (m Meta) Clone() Meta {
	m.Tags = maps.Clone(m.Tags)
	return m
}

func (m Meta) validate() error {
	var errs []error
	if m.CapacityPerSec < 0 {
		errs = append(errs, fmt.Errorf("meta: capacity %d/s is negative", m.CapacityPerSec))
	}
	if m.CPUs < 0 {
		errs = append(errs, fmt.Errorf("meta: cpus %d is negative", m.CPUs))
	}
	for k := range m.Tags {
		if k == "" {
			errs = append(errs, errors.New("meta: tag with an empty key"))
		}
	}
	return errors.Join(errs...)
}

// wireMeta is Meta on the wire, with integer keys to fit in 512 bytes.
type wireMeta struct {
	Region   string            `cbor:"1,keyasint,omitempty"`
	Zone     string            `cbor:"2,keyasint,omitempty"`
	Org      string            `cbor:"3,keyasint,omitempty"`
	Capacity int               `cbor:"4,keyasint,omitempty"`
	CPUs     int               `cbor:"5,keyasint,omitempty"`
	Tags     map[string]string `cbor:"6,keyasint,omitempty"`
	PeerID   []byte            `cbor:"7,keyasint,omitempty"` // binary peer id
	Addrs    [][]byte          `cbor:"8,keyasint,omitempty"` // binary multiaddrs
	Version  string            `cbor:"9,keyasint,omitempty"`
	Leaving  bool              `cbor:"10,keyasint,omitempty"` // set by Leave just before memberlist's own leave
	API      string            `cbor:"11,keyasint,omitempty"`
}

// nodeInfo is a member's metadata decoded.
type nodeInfo struct {
	meta    Meta
	peerID  peer.ID
	addrs   []ma.Multiaddr
	version string
	leaving bool // the node announced that it is leaving
}

func encodeMeta(info nodeInfo) ([]byte, error) {
	w := wireMeta{
		Region: info.meta.Region, Zone: info.meta.Zone, Org: info.meta.Org,
		Capacity: info.meta.CapacityPerSec, CPUs: info.meta.CPUs, Tags: info.meta.Tags,
		PeerID: []byte(info.peerID), Version: info.version, Leaving: info.leaving, API: info.meta.API,
	}
	for _, a := range info.addrs {
		w.Addrs = append(w.Addrs, a.Bytes())
	}
	b, err := encMode.Marshal(w)
	if err != nil {
		return nil, fmt.Errorf("encode node metadata: %w", err)
	}
	if len(b) > metaMaxSize {
		return nil, fmt.Errorf("node metadata is %d bytes, the limit is %d: use fewer or shorter tags", len(b), metaMaxSize)
	}
	return b, nil
}

// metaDecMode decodes metadata from other nodes: it is as untrusted as any
// message, and small.
var metaDecoder = func() *Decoder {
	d, err := NewDecoder(Limits{MaxBytes: metaMaxSize, MaxDepth: 4, MaxArrayLength: 16, MaxMapPairs: 64})
	if err != nil {
		panic(err)
	}
	return d
}()

func decodeMeta(b []byte) (nodeInfo, error) {
	if len(b) == 0 {
		return nodeInfo{}, errors.New("no metadata (not a loadswarm node?)")
	}
	if len(b) > metaMaxSize {
		return nodeInfo{}, fmt.Errorf("metadata: %w", ErrTooLarge)
	}
	var w wireMeta
	if err := metaDecoder.dm.Unmarshal(b, &w); err != nil {
		return nodeInfo{}, fmt.Errorf("metadata: %w: %v", ErrMalformed, err)
	}
	info := nodeInfo{
		meta:    Meta{Region: w.Region, Zone: w.Zone, Org: w.Org, CapacityPerSec: w.Capacity, CPUs: w.CPUs, Tags: w.Tags, API: w.API},
		version: w.Version,
		leaving: w.Leaving,
	}
	if len(w.PeerID) > 0 {
		pid, err := peer.IDFromBytes(w.PeerID)
		if err != nil {
			return nodeInfo{}, fmt.Errorf("metadata: peer id: %w", err)
		}
		info.peerID = pid
	}
	for _, raw := range w.Addrs {
		a, err := ma.NewMultiaddrBytes(raw)
		if err != nil {
			return nodeInfo{}, fmt.Errorf("metadata: address: %w", err)
		}
		info.addrs = append(info.addrs, a)
	}
	return info, nil
}

// State is a member's state as this node sees it.
type State int

// Member states. Suspect members may still refute; dead ones failed to
// answer probes; left ones said goodbye.
const (
	StateAlive State = iota
	StateSuspect
	StateDead
	StateLeft
)

var stateNames = [...]string{"alive", "suspect", "dead", "left"}

func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", int(s))
}

// MarshalText writes the state's name ("alive", ...), for JSON.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a state's name.
func (s *State) UnmarshalText(b []byte) error {
	for i, n := range stateNames {
		if n == string(b) {
			*s = State(i)
			return nil
		}
	}
	return fmt.Errorf("unknown member state %q", b)
}

// Member is one node of the fleet as this node sees it.
type Member struct {
	Name     string
	Meta     Meta
	State    State
	Addr     string    // gossip address, host:port: a seed for Join
	PeerID   string    // libp2p peer id; the Sender of its envelopes
	P2PAddrs []string  // libp2p multiaddrs
	Version  string    // software version
	Since    time.Time // when this node saw the member's state change
	Self     bool      // this is the local node
}

// EventKind says what happened to a member.
type EventKind int

// Event kinds.
const (
	MemberJoined  EventKind = iota // a member appeared (or came back)
	MemberUpdated                  // a member's metadata changed
	MemberLeft                     // a member left gracefully
	MemberFailed                   // a member was declared dead
)

var eventNames = [...]string{"joined", "updated", "left", "failed"}

func (k EventKind) String() string {
	if k >= 0 && int(k) < len(eventNames) {
		return eventNames[k]
	}
	return fmt.Sprintf("event(%d)", int(k))
}

// Event is a membership change.
type Event struct {
	Kind   EventKind
	Member Member
}
