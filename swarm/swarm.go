package swarm

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"
)

// ErrClosed is returned by the methods of a swarm after Close.
var ErrClosed = errors.New("swarm closed")

// Swarm is one node's membership and transport. Create it with New, join a
// fleet with Join, and stop with Leave (graceful) then Close. All methods are
// safe for concurrent use.
type Swarm struct {
	cfg  Config
	log  *slog.Logger
	reg  *Registry // the wire's types: Config.Types and the built-ins
	dec  *Decoder  // of reg's types
	lim  *limiter  // per-sender rates, penalties and log pacing
	host host.Host
	ps   *pubsub.PubSub
	ml   *memberlist.Memberlist

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	isolated atomic.Bool // SetIsolated: drop all traffic (fault injection)
	// dials bounds concurrent libp2p dials: when a whole fleet joins at
	// once, every node would otherwise run a Noise handshake with every
	// other at the same moment and starve the failure detector.
	dials       chan struct{}
	refused     [numReasons]atomic.Uint64 // by reason, indexed as refusalReasons
	eventsDrops atomic.Uint64

	mu       sync.Mutex
	self     nodeInfo
	metaRaw  []byte
	members  map[string]*entry // by name, self included
	watchers map[*watcher]struct{}
	topics   map[string]*topicState
	left     bool
	closed   bool

	nameTaken   *nameTakenError      // a live member holds our name: found during Join
	conflictLog map[string]time.Time // the last log line about each name conflict
}

// entry is one member in the local table. memberlist forgets dead nodes
// (Members omits them); the table keeps them for DeadRetention so that the
// API can show who died.
type entry struct {
	name  string
	addr  string
	info  nodeInfo
	state State // alive, dead or left; suspect is derived in Members
	since time.Time
	self  bool

	dialFailed bool // the last libp2p dial to it failed
}

type watcher struct {
	ch chan Event
}

// Stats counts what the swarm refused or dropped since New.
type Stats struct {
	// MessagesRejected counts every message refused: the sum of Refused.
	MessagesRejected uint64
	// Refused counts refused messages (gossip, requests, answers and
	// member metadata) by reason: RefusedMalformed, RefusedUnknownType, ...
	// Gossip messages over GossipSub's size limit are not counted: the
	// transport drops them unread, with the stream that carried them.
	Refused        map[string]uint64
	EventsDropped  uint64 // membership events not delivered because a Watch channel was full
	ConnectedPeers int    // peers with an open libp2p connection
	// GossipSenders is how many peers have rate-limit state of their own;
	// at most Config.MaxGossipSenders.
	GossipSenders int
	// PenalizedPeers is how many of them sent so many bad messages lately
	// that GossipSub drops everything they send, unread.
	PenalizedPeers int
}

// Refusal reasons, the keys of Stats.Refused.
const (
	RefusedMalformed    = "malformed"     // not an envelope within the limits
	RefusedUnknownType  = "unknown-type"  // a type the registry lacks
	RefusedWrongKind    = "wrong-kind"    // e.g. a request type published on a topic
	RefusedTooLarge     = "too-large"     // over its type's MaxBytes
	RefusedRateLimited  = "rate-limited"  // its sender is over the type's rate
	RefusedForgedSender = "forged-sender" // Sender is not the peer that signed or sent it
	RefusedBadMetadata  = "bad-metadata"  // a member's metadata does not decode
)

var refusalReasons = [...]string{RefusedMalformed, RefusedUnknownType, RefusedWrongKind, RefusedTooLarge,
	RefusedRateLimited, RefusedForgedSender, RefusedBadMetadata}

const numReasons = len(refusalReasons)

// refusalReason maps a decoding or checking error to its reason.
func refusalReason(err error) string {
	switch {
	case errors.Is(err, errForgedSender):
		return RefusedForgedSender
	case errors.Is(err, ErrRateLimited):
		return RefusedRateLimited
	case errors.Is(err, ErrUnknownType):
		return RefusedUnknownType
	case errors.Is(err, ErrWrongKind):
		return RefusedWrongKind
	case errors.Is(err, ErrTooLarge):
		return RefusedTooLarge
	}
	return RefusedMalformed
}

// refuse counts a refused message, charges its sender penalty, and logs
// it: a warning at most once per sender per logEvery (with the count of
// refusals since the last one), debug otherwise.
func (s *Swarm) refuse(reason string, from peer.ID, penalty float64, now time.Time, msg string, attrs ...any) {
	for i, r := range refusalReasons {
		if r == reason {
			s.refused[i].Add(1)
		}
	}
	attrs = append(attrs, "from", from.String(), "reason", reason)
	logIt, unlogged := s.lim.refused(from, penalty, now)
	if !logIt {
		s.log.Debug(msg, attrs...)
		return
	}
	if unlogged > 0 {
		attrs = append(attrs, "refused_since_last_line", unlogged)
	}
	s.log.Warn(msg+" (one line per sender per minute)", attrs...)
}

// New starts a node: its libp2p host and GossipSub, then memberlist. The
// node is alone until Join. New validates cfg and never panics.
func New(cfg Config) (*Swarm, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("swarm config: %w", err)
	}
	cfg = cfg.withDefaults()
	cfg.Meta = cfg.Meta.Clone()
	if cfg.Meta.CPUs == 0 {
		cfg.Meta.CPUs = runtime.NumCPU()
	}
	if cfg.Identity.IsZero() {
		id, err := GenerateIdentity()
		if err != nil {
			return nil, err
		}
		cfg.Identity = id
	}
	logger := cfg.Logger.With("node", cfg.Name)
	setLibraryLogger(cfg.Logger, cfg.LibraryLogLevel)
	reg, err := NewRegistry(cfg.Types)
	if err != nil {
		return nil, err
	}
	lim := cfg.Limits
	lim.MaxBytes = 0 // each type's own
	dec, err := reg.NewDecoder(lim)
	if err != nil {
		return nil, err
	}
	selfID, err := peer.IDFromPrivateKey(cfg.Identity.priv)
	if err != nil {
		return nil, fmt.Errorf("identity: %w", err)
	}

	s := &Swarm{
		cfg:      cfg,
		log:      logger,
		reg:      reg,
		dec:      dec,
		lim:      newLimiter(reg, cfg.MaxGossipSenders, selfID),
		members:  make(map[string]*entry),
		dials:    make(chan struct{}, maxConcurrentDials),
		watchers: make(map[*watcher]struct{}),
		topics:   make(map[string]*topicState),

		conflictLog: make(map[string]time.Time),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())

	if s.host, err = newHost(cfg, gater{off: &s.isolated}); err != nil {
		s.cancel()
		return nil, err
	}
	// GossipSub starts before any connection: if its first stream to a peer
	// fails, it drops that peer for good.
	if s.ps, err = s.newPubSub(); err != nil {
		s.host.Close()
		s.cancel()
		return nil, fmt.Errorf("gossipsub: %w", err)
	}

	p2pPort, err := s.p2pPort()
	if err != nil {
		s.host.Close()
		s.cancel()
		return nil, err
	}
	advertise := cfg.AdvertiseAddr
	if advertise == "" && !net.ParseIP(cfg.BindAddr).IsUnspecified() {
		advertise = cfg.BindAddr
	}
	s.self = nodeInfo{meta: cfg.Meta, peerID: s.host.ID(), version: cfg.Version}
	if advertise != "" {
		s.self.addrs = []ma.Multiaddr{tcpAddr(advertise, p2pPort)}
	}
	if s.metaRaw, err = encodeMeta(s.self); err != nil {
		s.host.Close()
		s.cancel()
		return nil, err
	}

	mlc := s.memberlistConfig(advertise)
	gt, err := newGatedTransport(mlc.BindAddr, mlc.BindPort, mlc.Logger, &s.isolated)
	if err != nil {
		s.host.Close()
		s.cancel()
		return nil, fmt.Errorf("memberlist transport on %s:%d: %w", mlc.BindAddr, mlc.BindPort, err)
	}
	if mlc.BindPort == 0 {
		mlc.BindPort = gt.GetAutoBindPort()
		mlc.AdvertisePort = mlc.BindPort
	}
	mlc.Transport = gt
	if s.ml, err = memberlist.Create(mlc); err != nil {
		gt.Shutdown()
		s.host.Close()
		s.cancel()
		return nil, fmt.Errorf("memberlist: %w", err)
	}
	if advertise == "" {
		// Bound to all interfaces: libp2p is reached at the address that
		// memberlist chose to advertise. No one has seen this node yet, so
		// the update costs nothing.
		s.mu.Lock()
		s.self.addrs = []ma.Multiaddr{tcpAddr(s.ml.LocalNode().Addr.String(), p2pPort)}
		raw, err := encodeMeta(s.self)
		if err == nil {
			s.metaRaw = raw
		}
		s.mu.Unlock()
		if err == nil {
			err = s.ml.UpdateNode(0)
		}
		if err != nil {
			s.ml.Shutdown()
			s.host.Close()
			s.cancel()
			return nil, err
		}
	}

	s.wg.Add(1)
	go s.maintain()

	attrs := []any{"peer_id", s.host.ID().String(), "gossip", s.GossipAddr(), "p2p", s.P2PAddrs()}
	if cfg.FleetKey.IsZero() {
		logger.Warn("open fleet: no fleet key, so any host that reaches the gossip and p2p ports can join; make a key with `swarm keygen` and give it to every node with --fleet-key", attrs...)
	} else {
		logger.Info("private fleet", append(attrs, "fleet_key", cfg.FleetKey.Fingerprint())...)
	}
	return s, nil
}

func (s *Swarm) memberlistConfig(advertise string) *memberlist.Config {
	c := memberlist.DefaultLANConfig()
	t := s.cfg.Timing
	c.Name = s.cfg.Name
	c.BindAddr = s.cfg.BindAddr
	c.BindPort = s.cfg.GossipPort
	c.AdvertisePort = s.cfg.GossipPort // 0: memberlist uses the bound port
	if advertise != "" {
		c.AdvertiseAddr = advertise
	}
	c.Label = "loadswarm/1" // refuse other memberlist clusters (Consul, Serf) on the port
	c.ProbeInterval = t.ProbeInterval
	c.ProbeTimeout = t.ProbeTimeout
	c.SuspicionMult = t.SuspicionMult
	c.SuspicionMaxTimeoutMult = t.SuspicionMaxTimeoutMult
	c.GossipInterval = t.GossipInterval
	c.PushPullInterval = t.PushPullInterval
	c.GossipToTheDeadTime = t.GossipToTheDeadTime
	c.DeadNodeReclaimTime = t.DeadNodeReclaimTime
	c.TCPTimeout = 5 * time.Second
	c.Delegate = &delegate{s: s}
	c.Events = &events{s: s}
	c.Merge = &conflicts{s: s}
	c.Conflict = &conflicts{s: s}
	c.Logger = log.New(&memberlistLog{log: s.log}, "", 0)
	if !s.cfg.FleetKey.IsZero() {
		// Encrypt and authenticate every gossip packet and stream; a node
		// without the key can neither read nor inject.
		c.SecretKey = s.cfg.FleetKey.gossipKey()
		c.GossipVerifyIncoming = true
		c.GossipVerifyOutgoing = true
	}
	return c
}

func (s *Swarm) p2pPort() (int, error) {
	for _, a := range s.host.Network().ListenAddresses() {
		if p, err := a.ValueForProtocol(ma.P_TCP); err == nil {
			return strconv.Atoi(p)
		}
	}
	return 0, errors.New("libp2p: no TCP listen address")
}

func tcpAddr(ip string, port int) ma.Multiaddr {
	proto := "ip4"
	if parsed := net.ParseIP(ip); parsed != nil && parsed.To4() == nil {
		proto = "ip6"
	}
	a, err := ma.NewMultiaddr(fmt.Sprintf("/%s/%s/tcp/%d", proto, ip, port))
	if err != nil {
		panic(fmt.Sprintf("swarm: multiaddr of %s:%d: %v", ip, port, err)) // ip was parsed by Validate or memberlist
	}
	return a
}

// Name returns the node's name.
func (s *Swarm) Name() string { return s.cfg.Name }

// PeerID returns the node's libp2p peer id: the Sender of its envelopes.
func (s *Swarm) PeerID() string { return s.host.ID().String() }

// GossipAddr returns the address other nodes join through (host:port), with
// the real port when the config asked for port 0.
func (s *Swarm) GossipAddr() string { return s.ml.LocalNode().Address() }

// P2PAddrs returns the libp2p addresses this node advertises.
func (s *Swarm) P2PAddrs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return addrStrings(s.self.addrs)
}

// Stats returns the counts of refused messages and dropped events.
func (s *Swarm) Stats() Stats {
	st := Stats{
		Refused:        make(map[string]uint64, numReasons),
		EventsDropped:  s.eventsDrops.Load(),
		ConnectedPeers: len(s.host.Network().Peers()),
	}
	for i, r := range refusalReasons {
		n := s.refused[i].Load()
		st.Refused[r] = n
		st.MessagesRejected += n
	}
	st.GossipSenders, st.PenalizedPeers = s.lim.counts(time.Now())
	return st
}

// Join contacts the seeds (gossip addresses, host:port; the port defaults
// to 7946) and merges their view of the fleet. It returns how many seeds
// answered; it fails when none did. A seed whose fleet key differs from
// ours does not answer.
//
// It also fails, with an error wrapping ErrNameTaken, when a seed lists
// this node's name as a live member with another peer id: the fleet would
// ignore this node. The node should stop (Close) and start again with
// another name. The same identity under the same name is a restart, and
// joins, even while the fleet still lists the old address.
func (s *Swarm) Join(seeds []string) (int, error) {
	if s.isClosed() {
		return 0, ErrClosed
	}
	addrs := make([]string, 0, len(seeds))
	for _, seed := range seeds {
		if _, _, err := net.SplitHostPort(seed); err != nil {
			seed = net.JoinHostPort(seed, strconv.Itoa(DefaultGossipPort))
		}
		if seed == s.GossipAddr() {
			continue // memberlist would count it as an answer
		}
		addrs = append(addrs, seed)
	}
	if len(addrs) == 0 {
		return 0, nil
	}
	s.mu.Lock()
	s.nameTaken = nil
	s.mu.Unlock()
	n, err := s.ml.Join(addrs)
	s.mu.Lock()
	taken := s.nameTaken
	s.mu.Unlock()
	if taken != nil {
		s.log.Error("join refused: this node's name is taken", "error", taken)
		return 0, fmt.Errorf("join %s: %w", strings.Join(addrs, ", "), taken)
	}
	if err != nil {
		err = flatErr{err}
	}
	if n == 0 && err != nil {
		return 0, fmt.Errorf("join %s: no seed answered (are they up, and do they use the same fleet key as ours, %s?): %w",
			strings.Join(addrs, ", "), s.cfg.FleetKey.Fingerprint(), err)
	}
	if err != nil {
		s.log.Warn("some seeds did not answer", "joined", n, "error", err)
	}
	s.log.Info("joined fleet", "seeds_answered", n, "members", s.ml.NumMembers())
	return n, nil
}

// Leave tells the fleet that this node is going, and waits (up to
// Timing.LeaveTimeout) for the news to go out. Others see it as left at
// once, not as dead. Call Close afterwards.
func (s *Swarm) Leave() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if s.left {
		s.mu.Unlock()
		return nil
	}
	s.left = true
	// memberlist v0.7 does not tell others whether a node left or died
	// (Node.State is never set), so the node first spreads a "leaving"
	// flag in its metadata; UpdateNode returns once that went out.
	s.self.leaving = true
	raw, err := encodeMeta(s.self)
	if err == nil {
		s.metaRaw = raw
	}
	s.mu.Unlock()
	if err == nil {
		if err := s.ml.UpdateNode(s.cfg.Timing.LeaveTimeout); err != nil {
			s.log.Debug("leave: metadata update", "error", err)
		}
	}
	if err := s.ml.Leave(s.cfg.Timing.LeaveTimeout); err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	s.log.Info("left fleet")
	return nil
}

// Close stops the node. Without Leave first, the fleet sees a crash: the
// node is suspected, then declared dead. Close is idempotent.
func (s *Swarm) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var handles []*Topic
	for _, ts := range s.topics {
		for h := range ts.handles {
			handles = append(handles, h)
		}
	}
	s.mu.Unlock()

	s.cancel()
	errs := []error{s.ml.Shutdown()}
	for _, h := range handles {
		h.Close()
	}
	errs = append(errs, s.host.Close())
	s.wg.Wait()

	s.mu.Lock()
	for w := range s.watchers {
		close(w.ch)
		delete(s.watchers, w)
	}
	s.mu.Unlock()
	return errors.Join(errs...)
}

func (s *Swarm) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// UpdateMeta replaces this node's metadata (e.g. a new capacity) and
// spreads it to the fleet, within about 100 ms on a LAN. CPUs 0 keeps the
// current value. It fails if the metadata would exceed 512 bytes.
func (s *Swarm) UpdateMeta(m Meta) error {
	if err := m.validate(); err != nil {
		return err
	}
	m = m.Clone()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if m.CPUs == 0 {
		m.CPUs = s.self.meta.CPUs
	}
	info := s.self
	info.meta = m
	raw, err := encodeMeta(info)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	s.self, s.metaRaw = info, raw
	s.mu.Unlock()
	// Not under s.mu: memberlist calls the delegates with its own lock held.
	if err := s.ml.UpdateNode(s.cfg.Timing.LeaveTimeout); err != nil {
		return fmt.Errorf("update metadata: %w", err)
	}
	return nil
}

// Meta returns this node's metadata.
func (s *Swarm) Meta() Meta {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.self.meta.Clone()
}

// Members returns every member this node knows, itself included, sorted by
// name: alive and suspect ones, and dead or left ones for
// Timing.DeadRetention after they went.
//
// Suspect means: alive for membership, but this node could not reach it
// over libp2p at its last dial (memberlist v0.7 does not expose its own
// suspicion). Such a member gets no requests that matter until a redial
// succeeds (every Timing.PushPullInterval).
func (s *Swarm) Members() []Member {
	s.mu.Lock()
	out := make([]Member, 0, len(s.members))
	for _, e := range s.members {
		m := e.member()
		if m.State == StateAlive && e.dialFailed && !e.self &&
			s.host.Network().Connectedness(e.info.peerID) != network.Connected {
			m.State = StateSuspect
		}
		out = append(out, m)
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Member returns the member with the given name or peer id.
func (s *Swarm) Member(nameOrPeerID string) (Member, bool) {
	for _, m := range s.Members() {
		if m.Name == nameOrPeerID || m.PeerID == nameOrPeerID {
			return m, true
		}
	}
	return Member{}, false
}

// NumAlive returns how many members (this one included) are alive or suspect.
func (s *Swarm) NumAlive() int {
	if s.isClosed() {
		return 0
	}
	return s.ml.NumMembers()
}

func (e *entry) member() Member {
	return Member{
		Name:     e.name,
		Meta:     e.info.meta.Clone(),
		State:    e.state,
		Addr:     e.addr,
		PeerID:   peerIDString(e.info.peerID),
		P2PAddrs: addrStrings(e.info.addrs),
		Version:  e.info.version,
		Since:    e.since,
		Self:     e.self,
	}
}

func peerIDString(p peer.ID) string {
	if p == "" {
		return ""
	}
	return p.String()
}

func addrStrings(as []ma.Multiaddr) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}

// Watch returns a channel of membership events and a function that stops
// them. Events come in the order memberlist saw them; if the receiver falls
// Config.MaxEventQueue behind, events are dropped (counted in Stats and
// logged), so a consumer that must not miss one re-reads Members on a
// drop. The channel is closed by stop or Close.
func (s *Swarm) Watch() (events <-chan Event, stop func()) {
	w := &watcher{ch: make(chan Event, s.cfg.MaxEventQueue)}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		close(w.ch)
		return w.ch, func() {}
	}
	s.watchers[w] = struct{}{}
	return w.ch, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if _, ok := s.watchers[w]; ok {
			delete(s.watchers, w)
			close(w.ch)
		}
	}
}

// emitLocked sends ev to every watcher without blocking.
func (s *Swarm) emitLocked(ev Event) {
	for w := range s.watchers {
		select {
		case w.ch <- ev:
		default:
			s.eventsDrops.Add(1)
			s.log.Warn("membership event dropped: a watcher is not keeping up", "event", ev.Kind.String(), "member", ev.Member.Name)
		}
	}
}

// goLocked runs f in a goroutine that Close waits for, unless the swarm is
// closed. s.mu must be held.
func (s *Swarm) goLocked(f func()) {
	if s.closed {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
}

// connect dials a member over libp2p. Dials that fail are retried by
// maintain.
// maxConcurrentDials bounds a node's libp2p dials in flight.
const maxConcurrentDials = 4

func (s *Swarm) connect(name string, info nodeInfo) {
	if info.peerID == "" || info.peerID == s.host.ID() || len(info.addrs) == 0 {
		return
	}
	s.host.Peerstore().AddAddrs(info.peerID, info.addrs, peerstore.PermanentAddrTTL)
	if s.host.Network().Connectedness(info.peerID) == network.Connected {
		return
	}
	select {
	case s.dials <- struct{}{}:
		defer func() { <-s.dials }()
	case <-s.ctx.Done():
		return
	}
	if s.host.Network().Connectedness(info.peerID) == network.Connected {
		return // the other side dialed while this one waited
	}
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	err := s.host.Connect(ctx, peer.AddrInfo{ID: info.peerID, Addrs: info.addrs})
	if s.ctx.Err() != nil {
		return
	}
	s.mu.Lock()
	e, ok := s.members[name]
	if ok && e.info.peerID == info.peerID {
		if err != nil && !e.dialFailed {
			s.log.Warn("member unreachable over libp2p; will retry", "member", name, "peer_id", info.peerID.String(), "error", err)
		}
		e.dialFailed = err != nil
	}
	s.mu.Unlock()
}

// maintain redials members that are alive but not connected (a dial that
// failed, a connection that broke) and forgets members dead for longer than
// DeadRetention.
func (s *Swarm) maintain() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.Timing.PushPullInterval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		type target struct {
			name string
			info nodeInfo
		}
		var dial []target
		now := time.Now()
		s.mu.Lock()
		for name, e := range s.members {
			switch {
			case e.state != StateAlive && now.Sub(e.since) > s.cfg.Timing.DeadRetention:
				delete(s.members, name)
				s.lim.member(e.info.peerID, -1)
			case e.state == StateAlive && !e.self && e.info.peerID != "" &&
				s.host.Network().Connectedness(e.info.peerID) != network.Connected:
				dial = append(dial, target{name, e.info})
			}
		}
		s.mu.Unlock()
		for _, d := range dial {
			if s.ctx.Err() != nil {
				return
			}
			s.connect(d.name, d.info)
		}
	}
}

// Connect dials a node at its libp2p addresses directly, outside
// membership: a diagnostic that tells whether the transport lets this node
// in (a different fleet key shows as a failed dial).
func (s *Swarm) Connect(ctx context.Context, peerID string, addrs []string) error {
	pid, err := peer.Decode(peerID)
	if err != nil {
		return fmt.Errorf("connect: %w: %q", ErrUnknownPeer, peerID)
	}
	info := peer.AddrInfo{ID: pid}
	for _, a := range addrs {
		m, err := ma.NewMultiaddr(a)
		if err != nil {
			return fmt.Errorf("connect: address %q: %w", a, err)
		}
		info.Addrs = append(info.Addrs, m)
	}
	if err := s.host.Connect(ctx, info); err != nil {
		return fmt.Errorf("connect to %s (same fleet key? ours is %s): %w", shortID(peerID), s.cfg.FleetKey.Fingerprint(), err)
	}
	return nil
}

// flatErr puts memberlist's multi-line errors on one line, for logs.
type flatErr struct{ err error }

func (f flatErr) Error() string {
	msg := strings.TrimSpace(f.err.Error())
	msg = strings.ReplaceAll(msg, "\n\t* ", " ")
	return strings.ReplaceAll(msg, "\n", " ")
}
func (f flatErr) Unwrap() error { return f.err }
