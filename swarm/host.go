package swarm

import (
	"fmt"
	"net"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

// newHost builds the libp2p host: TCP only (a private network refuses QUIC
// and WebRTC anyway), Noise, yamux, no relay, our own resource limits.
// Closing the host closes its resource and connection managers too.
func newHost(cfg Config, g gater) (host.Host, error) {
	proto := "ip4"
	if net.ParseIP(cfg.BindAddr).To4() == nil {
		proto = "ip6"
	}
	rm, err := newResourceManager(cfg.MaxStreamsPerPeer)
	if err != nil {
		return nil, err
	}
	// Trimming starts above 400 connections (below the resource manager's
	// system limit of about 500), far beyond a test fleet's
	// full mesh; requests redial on demand.
	cm, err := connmgr.NewConnManager(300, 400, connmgr.WithGracePeriod(time.Minute))
	if err != nil {
		rm.Close()
		return nil, fmt.Errorf("libp2p connection manager: %w", err)
	}
	opts := []libp2p.Option{
		libp2p.Identity(cfg.Identity.priv),
		libp2p.ListenAddrStrings(fmt.Sprintf("/%s/%s/tcp/%d", proto, cfg.BindAddr, cfg.P2PPort)),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionManager(cm),
		libp2p.ConnectionGater(g),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(), // many hosts per test process; the node exports its own metrics
		libp2p.UserAgent("loadswarm/" + cfg.Version),
	}
	if !cfg.FleetKey.IsZero() {
		opts = append(opts, libp2p.PrivateNetwork(pnet.PSK(cfg.FleetKey.psk())))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		rm.Close()
		cm.Close()
		return nil, fmt.Errorf("libp2p host on %s port %d: %w", cfg.BindAddr, cfg.P2PPort, err)
	}
	return h, nil
}

// newResourceManager raises libp2p's per-peer stream limits: its default
// limiter throttles at 75 inbound streams per protocol per peer, which
// a busy fleet's requests and queries reach.
func newResourceManager(maxStreams int) (network.ResourceManager, error) {
	scaling := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&scaling)
	n := rcmgr.LimitVal(maxStreams)
	perPeer := rcmgr.ResourceLimits{Streams: 2 * n, StreamsInbound: n, StreamsOutbound: n}
	limits := rcmgr.PartialLimitConfig{
		PeerDefault:         perPeer,
		ProtocolPeerDefault: perPeer,
		ServicePeerDefault:  perPeer,
	}.Build(scaling.AutoScale())
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits))
	if err != nil {
		return nil, fmt.Errorf("libp2p resource manager: %w", err)
	}
	return rm, nil
}

// gossipOverhead is the room GossipSub needs around an envelope: the
// signature, the author's peer id, the sequence number, the topic name and
// protobuf framing.
const gossipOverhead = 4096

// validateQueueBytes bounds the memory of GossipSub's validation queue,
// which holds received messages until the validator sees them. GossipSub
// counts it in messages (32 by default), for all peers together: a flood
// of small messages fills it and the messages of honest peers arriving
// meanwhile are dropped. Sized by bytes instead, the queue holds
// thousands of small messages, and still not more than this of large ones.
const validateQueueBytes = 64 << 20

// validateQueueSize is how many messages of the largest gossip type fit
// in validateQueueBytes, between GossipSub's default and 4096.
func validateQueueSize(maxGossip int) int {
	return min(4096, max(32, validateQueueBytes/(maxGossip+gossipOverhead)))
}

// newPubSub starts GossipSub with strict signing (the default, stated), a
// validator that decodes every envelope once, and peer scoring.
//
// Its message size limit is the largest gossip type's MaxBytes plus
// framing: a bigger message is refused from its length prefix, before a
// byte of it is buffered, and the stream that carried it is reset. The
// limit is never below GossipSub's default of 1 MiB, because the control
// messages a peer piggybacks (up to 512 KiB) are split at its own limit,
// not ours.
//
// Peer scoring uses only the application-specific score, which is minus
// the penalty the validator charges a message's signer (see limiter).
// Honest peers score 0 and are treated as without scoring; topic scores
// are off, because pubsub keeps the parameters of every scored topic for
// good and per-test topics come and go; the IP colocation factor is off,
// because whole fleets run on one host (testnet) or behind one NAT; and
// the behaviour penalty is off, because a node whose cores are busy
// generating load breaks gossip promises without malice.
func (s *Swarm) newPubSub() (*pubsub.PubSub, error) {
	params := pubsub.DefaultGossipSubParams()
	params.HeartbeatInterval = s.cfg.Timing.HeartbeatInterval
	if params.HeartbeatInitialDelay > params.HeartbeatInterval {
		params.HeartbeatInitialDelay = params.HeartbeatInterval
	}
	score := &pubsub.PeerScoreParams{
		AppSpecificScore:  func(p peer.ID) float64 { return s.lim.score(p, time.Now()) },
		AppSpecificWeight: 1,
		DecayInterval:     time.Second, // decays topic counters, which are off
		DecayToZero:       0.01,
		RetainScore:       penaltyHalfLife, // our penalties outlive a reconnect anyway
	}
	thresholds := &pubsub.PeerScoreThresholds{
		GossipThreshold:   -gossipPenalty,
		PublishThreshold:  -publishPenalty,
		GraylistThreshold: -graylistPenalty,
	}
	return pubsub.NewGossipSub(s.ctx, s.host,
		pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
		pubsub.WithGossipSubParams(params),
		// Flood publishing (off by default in this version) sends a node's own
		// messages to every subscribed peer: without it, a message published
		// before the first heartbeat builds the mesh reaches nobody.
		pubsub.WithFloodPublish(true),
		pubsub.WithMaxMessageSize(max(pubsub.DefaultMaxMessageSize, s.reg.MaxBytes(KindGossip)+gossipOverhead)),
		pubsub.WithValidateQueueSize(validateQueueSize(s.reg.MaxBytes(KindGossip))),
		// Inline: the validator never blocks, and a goroutine per message
		// costs more than it does.
		pubsub.WithDefaultValidator(pubsub.ValidatorEx(s.validate), pubsub.WithValidatorInline(true)),
		pubsub.WithPeerScore(score, thresholds),
		pubsub.WithLogger(libraryLogger(s.cfg.Logger, s.cfg.LibraryLogLevel)),
	)
}
