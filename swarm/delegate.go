package swarm

import (
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
		s.rejected.Add(1)
		s.log.Warn("member with unreadable metadata: listed, but not connected", "member", n.Name, "addr", n.Address(), "error", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.members[n.Name]
	if !ok {
		e = &entry{name: n.Name, self: self}
		s.members[n.Name] = e
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
