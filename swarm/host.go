package swarm

import (
	"fmt"
	"net"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
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

// newPubSub starts GossipSub with strict signing (the default, stated), our
// message size limit and a validator that decodes every envelope once.
func (s *Swarm) newPubSub() (*pubsub.PubSub, error) {
	params := pubsub.DefaultGossipSubParams()
	params.HeartbeatInterval = s.cfg.Timing.HeartbeatInterval
	if params.HeartbeatInitialDelay > params.HeartbeatInterval {
		params.HeartbeatInitialDelay = params.HeartbeatInterval
	}
	return pubsub.NewGossipSub(s.ctx, s.host,
		pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
		pubsub.WithGossipSubParams(params),
		// Flood publishing (off by default in this version) sends a node's own
		// messages to every subscribed peer: without it, a message published
		// before the first heartbeat builds the mesh reaches nobody.
		pubsub.WithFloodPublish(true),
		pubsub.WithMaxMessageSize(s.cfg.Limits.MaxBytes+4096), // room for the signature and protobuf framing
		pubsub.WithDefaultValidator(pubsub.ValidatorEx(s.validate)),
		pubsub.WithLogger(libraryLogger(s.cfg.Logger, s.cfg.LibraryLogLevel)),
	)
}
