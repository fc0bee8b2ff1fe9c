package swarm

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"
)

// delegate hands memberlist this node's metadata. Messages travel over
// libp2p, not memberlist, so the rest of memberlist.Delegate is empty.
type delegate struct{ s *Swarm }

var _ memberlist.Delegate = (*delegate)(nil)

func (d *delegate) NodeMeta(limit int) []byte {
	d.s.mu.Lock()
	defer d.s.mu.Unlock()
	if len(d.s.metaRaw) > limit {
		return nil // encodeMeta keeps this from happening; memberlist would panic
	}
	return slices.Clone(d.s.metaRaw)
}

func (d *delegate) NotifyMsg([]byte)                           {}
func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d *delegate) LocalState(join bool) []byte                { return nil }
func (d *delegate) MergeRemoteState(buf []byte, join bool)     {}

// events keeps the member table. memberlist calls it never concurrently and
// with its node lock held: it must not call back into memberlist, and it
// hands dials to goroutines.
type events struct{ s *Swarm }

var _ memberlist.EventDelegate = (*events)(nil)

func (ev *events) NotifyJoin(n *memberlist.Node)   { ev.upsert(n, MemberJoined) }
func (ev *events) NotifyUpdate(n *memberlist.Node) { ev.upsert(n, MemberUpdated) }

func (ev *events) upsert(n *memberlist.Node, kind EventKind) {
	s := ev.s
	self := n.Name == s.cfg.Name
	info, err := decodeMeta(n.Meta)
	if err != nil {
		s.refuse(RefusedBadMetadata, "", 0, time.Now(), "member with unreadable metadata: listed, but not connected",
			"member", n.Name, "addr", n.Address(), "error", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.members[n.Name]
	if !ok {
		e = &entry{name: n.Name, self: self}
		s.members[n.Name] = e
	}
	if e.info.peerID != info.peerID {
		// Members' peer ids get rate-limit state of their own.
		s.lim.member(e.info.peerID, -1)
		s.lim.member(info.peerID, +1)
	}
	if kind == MemberJoined || e.state != StateAlive {
		kind = MemberJoined
		e.state, e.since = StateAlive, time.Now()
	}
	e.addr, e.info = n.Address(), info
	m := e.member()
	if info.leaving && kind == MemberUpdated {
		return // the MemberLeft event follows at once
	}
	s.emitLocked(Event{Kind: kind, Member: m})
	if self {
		return
	}
	if kind == MemberJoined {
		s.log.Info("member joined", "member", n.Name, "addr", m.Addr, "peer_id", m.PeerID, "region", info.meta.Region)
	} else {
		s.log.Debug("member updated", "member", n.Name, "capacity", info.meta.CapacityPerSec)
	}
	// Of each pair, the node with the lower peer id dials at once; the
	// other dials from maintain if no connection came by then. This halves
	// the handshakes when a fleet forms (2,450 instead of 4,900 for 50
	// nodes, on cores that also run the failure detector).
	if err == nil && s.host.ID() < info.peerID {
		s.goLocked(func() { s.connect(n.Name, info) })
	}
}

func (ev *events) NotifyLeave(n *memberlist.Node) {
	s := ev.s
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.members[n.Name]
	if !ok {
		return
	}
	// n.State is never set by memberlist v0.7: the leaving flag that Leave
	// spreads first tells a goodbye from a death.
	kind, state := MemberFailed, StateDead
	if info, err := decodeMeta(n.Meta); (err == nil && info.leaving) || e.info.leaving {
		kind, state = MemberLeft, StateLeft
	}
	e.state, e.since = state, time.Now()
	s.emitLocked(Event{Kind: kind, Member: e.member()})
	if e.self {
		return
	}
	if state == StateLeft {
		s.log.Info("member left", "member", n.Name)
	} else {
		s.log.Warn("member failed: declared dead", "member", n.Name, "addr", e.addr)
	}
	if pid := e.info.peerID; pid != "" {
		s.goLocked(func() {
			s.host.Peerstore().ClearAddrs(pid)
			_ = s.host.Network().ClosePeer(pid)
		})
	}
}

// conflicts keeps a name to one node. memberlist itself ignores a second
// live node with a taken name, which leaves that node running, seeing the
// fleet and unseen by it; the node learns it here and Join fails.
type conflicts struct{ s *Swarm }

var (
	_ memberlist.MergeDelegate    = (*conflicts)(nil)
	_ memberlist.ConflictDelegate = (*conflicts)(nil)
)

// ErrNameTaken is returned (wrapped) by Join when a live member with
// another peer id holds this node's name. The holder may be a crashed node
// not yet declared dead (about 2 s with the default timing): a later Join
// may then succeed.
var ErrNameTaken = errors.New("name taken")

type nameTakenError struct {
	name, addr, peerID string
}

func (e *nameTakenError) Error() string {
	return fmt.Sprintf("name %q is taken by a live member at %s (peer %s): pick another --name", e.name, e.addr, e.peerID)
}

func (e *nameTakenError) Unwrap() error { return ErrNameTaken }

// NotifyMerge runs on the joining side of a Join (and on the seed, with
// the joiner's view) before memberlist merges a remote view. A view that
// lists this node's name as alive or suspect under another peer id is
// refused, and Join reports it. The same peer id is this node's own
// earlier run (a restart before the fleet saw it die): merged.
func (c *conflicts) NotifyMerge(peers []*memberlist.Node) error {
	s := c.s
	for _, n := range peers {
		if n.Name != s.cfg.Name || (n.State != memberlist.StateAlive && n.State != memberlist.StateSuspect) {
			continue
		}
		info, err := decodeMeta(n.Meta)
		if err == nil && info.peerID == s.host.ID() {
			continue
		}
		taken := &nameTakenError{name: n.Name, addr: n.Address(), peerID: "unknown"}
		if err == nil {
			taken.peerID = peerIDString(info.peerID)
		}
		s.mu.Lock()
		s.nameTaken = taken
		s.mu.Unlock()
		return taken
	}
	return nil
}

// NotifyConflict runs when memberlist ignores an alive message that gives
// a live member's name another address: existing is the member as this
// node holds it, other the claim. memberlist calls it with its node lock
// held, and again at every gossip of the claim, so it only logs, once a
// minute per claim.
func (c *conflicts) NotifyConflict(existing, other *memberlist.Node) {
	s := c.s
	had, _ := decodeMeta(existing.Meta)
	claim, _ := decodeMeta(other.Meta)
	key := existing.Name + "\x00" + other.Address() + "\x00" + string(claim.peerID)
	now := time.Now()
	s.mu.Lock()
	if len(s.conflictLog) >= 256 {
		clear(s.conflictLog) // bounded: a flood of claims costs a few extra lines
	}
	quiet := now.Sub(s.conflictLog[key]) < logEvery
	if !quiet {
		s.conflictLog[key] = now
	}
	s.mu.Unlock()
	if quiet {
		return
	}
	attrs := []any{"name", existing.Name, "addr", existing.Address(), "peer_id", peerIDString(had.peerID),
		"claimed_from", other.Address(), "claimed_by", peerIDString(claim.peerID)}
	switch {
	case had.peerID != "" && had.peerID == claim.peerID && existing.Name == s.cfg.Name:
		s.log.Info("the fleet still lists this node's earlier run at its old address: it takes this one in once that is declared dead", attrs...)
	case had.peerID != "" && had.peerID == claim.peerID:
		s.log.Info("member restarted at a new address: taken in once the old one is declared dead", attrs...)
	case existing.Name == s.cfg.Name:
		s.log.Error("another node uses this node's name: the fleet sees only one of us; rename one (--name)", attrs...)
	default:
		s.log.Warn("a node tried to join under the name of a live member: ignored", attrs...)
	}
}
