package swarm

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// Default ports. The gossip port serves memberlist over both UDP and TCP;
// the p2p port serves libp2p over TCP.
const (
	DefaultGossipPort = 7946
	DefaultP2PPort    = 7947
)

// Config configures one node of the swarm. Profiles: DefaultConfig,
// DefaultWANConfig, DefaultLocalConfig. New copies the config and never
// writes into it.
type Config struct {
	// Name is the node's name, unique in the fleet (memberlist refuses a
	// second live node with the same name). Required.
	Name string

	// BindAddr is the IP address that gossip and libp2p listen on. Default
	// "0.0.0.0" (all IPv4 interfaces).
	BindAddr string
	// GossipPort is memberlist's UDP and TCP port. Default 7946; 0 picks a
	// free port (see Swarm.GossipAddr).
	GossipPort int
	// P2PPort is libp2p's TCP port. Default 7947; 0 picks a free port.
	P2PPort int
	// AdvertiseAddr is the IP address other nodes reach this one at.
	// Default: BindAddr, or when that is 0.0.0.0 the private address that
	// memberlist picks from the host's interfaces.
	AdvertiseAddr string

	// Identity is the node's key pair; its public half is the peer id.
	// Default: an ephemeral identity (a new peer id at every start). Nodes
	// load it with LoadOrCreateIdentity so that it survives restarts.
	Identity Identity
	// FleetKey gates membership and transport. The zero value runs an open
	// fleet: anyone who can reach the ports can join.
	FleetKey FleetKey

	// Meta is what this node tells the fleet about itself.
	Meta Meta
	// Version is the software version, spread in the metadata. Default "dev".
	Version string

	// Logger receives the swarm's structured logs, memberlist's included.
	// Default slog.Default().
	Logger *slog.Logger
	// LibraryLogLevel is the lowest level of libp2p and GossipSub logs that
	// reach Logger. Default slog.LevelError: their warnings are noise for a
	// load tester (dial backoffs, resource limits of peers that went away).
	LibraryLogLevel slog.Level

	// Types is the application's wire registry: every message type it
	// sends, with its kind, size limit and (for gossip) per-sender rate.
	// The swarm refuses to send or accept any other type, apart from its
	// own TypePing and TypeError. Nil is a registry of those two only: the
	// node pings and answers requests, and Publish refuses every type
	// (ErrUnknownType) until the application registers its gossip types.
	Types map[Type]TypeSpec
	// MaxGossipSenders bounds the members that get rate-limit state of
	// their own; the others share one. Default 4096.
	MaxGossipSenders int

	// Limits bound every message decoded from the network. Zero fields take
	// DefaultLimits; MaxBytes is ignored, as each type's MaxBytes bounds its
	// envelopes (see Limits).
	Limits Limits
	// RequestTimeout bounds a stream request whose context has no deadline
	// earlier, and a handler's whole exchange. Default 10 s.
	RequestTimeout time.Duration
	// MaxStreamsPerPeer is the resource manager's limit on open streams, each
	// way, per peer and per protocol. Default 1024 (libp2p's default limiter
	// throttles at 75 inbound streams per protocol per peer).
	MaxStreamsPerPeer int
	// MaxEventQueue is the buffer of each Watch channel; events beyond it
	// are dropped (and logged) rather than stall gossip. Default 256.
	MaxEventQueue int

	// Timing holds the failure-detection and gossip intervals.
	Timing Timing
}

// Timing is the failure detector's and the gossip's clock. The values of
// DefaultConfig were measured on 2 cores under load: lower ones give false
// deaths when the cores are busy generating traffic.
type Timing struct {
	// ProbeInterval is how often each node probes a random member. Default 250 ms.
	ProbeInterval time.Duration
	// ProbeTimeout is how long a probe waits for its ack before asking
	// others to probe indirectly. Default 200 ms; keep it above the RTT.
	ProbeTimeout time.Duration
	// SuspicionMult scales how long a suspect has to refute before it is
	// declared dead (times ProbeInterval times log10 of the fleet size).
	// Default 2.
	SuspicionMult int
	// SuspicionMaxTimeoutMult caps the suspicion timeout as a multiple of its
	// minimum. Default 2.
	SuspicionMaxTimeoutMult int
	// GossipInterval is how often a node gossips queued updates. Default 50 ms.
	GossipInterval time.Duration
	// PushPullInterval is how often a node syncs its whole state with a
	// random member over TCP, and how often the swarm reconnects libp2p to
	// members it is not connected to. Default 5 s.
	PushPullInterval time.Duration
	// GossipToTheDeadTime is how long dead nodes still receive gossip (so
	// that a falsely-dead node learns it and refutes). Default 15 s.
	GossipToTheDeadTime time.Duration
	// DeadNodeReclaimTime is how soon a dead node's name may come back from
	// another address (a crashed node restarted on a new port). Default 10 s.
	DeadNodeReclaimTime time.Duration
	// DeadRetention is how long Members keeps listing a dead or left member.
	// Default 60 s.
	DeadRetention time.Duration
	// LeaveTimeout bounds how long Leave waits for its broadcast to go out.
	// Default 2 s.
	LeaveTimeout time.Duration
	// HeartbeatInterval is GossipSub's mesh maintenance period. Default 1 s.
	HeartbeatInterval time.Duration
}

// DefaultConfig returns the profile for a fleet on one network (a data
// centre or a cloud region): a crashed node is declared dead in about 2 s
// (50 nodes, measured), at about 0.3% of a core per node.
func DefaultConfig() Config {
	return Config{
		BindAddr:          "0.0.0.0",
		GossipPort:        DefaultGossipPort,
		P2PPort:           DefaultP2PPort,
		Version:           "dev",
		LibraryLogLevel:   slog.LevelError,
		Limits:            DefaultLimits(),
		RequestTimeout:    10 * time.Second,
		MaxStreamsPerPeer: 1024,
		MaxEventQueue:     256,
		MaxGossipSenders:  4096,
		Timing: Timing{
			ProbeInterval:           250 * time.Millisecond,
			ProbeTimeout:            200 * time.Millisecond,
			SuspicionMult:           2,
			SuspicionMaxTimeoutMult: 2,
			GossipInterval:          50 * time.Millisecond,
			PushPullInterval:        5 * time.Second,
			GossipToTheDeadTime:     15 * time.Second,
			DeadNodeReclaimTime:     10 * time.Second,
			DeadRetention:           60 * time.Second,
			LeaveTimeout:            2 * time.Second,
			HeartbeatInterval:       time.Second,
		},
	}
}

// DefaultWANConfig is DefaultConfig for a fleet spread over regions and
// continents: probes wait for round trips of up to about a second, so a
// death takes about 10 s to be declared instead of 2.
func DefaultWANConfig() Config {
	c := DefaultConfig()
	c.Timing.ProbeInterval = 2 * time.Second // fewer probes across the ocean
	c.Timing.ProbeTimeout = time.Second      // above intercontinental RTTs with jitter
	c.Timing.SuspicionMult = 3               // a lost packet or two must not kill a node
	c.Timing.GossipInterval = 200 * time.Millisecond
	c.Timing.PushPullInterval = 30 * time.Second
	c.Timing.GossipToTheDeadTime = 60 * time.Second
	c.Timing.DeadNodeReclaimTime = 30 * time.Second
	return c
}

// DefaultLocalConfig is DefaultConfig for nodes on one host (tests,
// testnet): 127.0.0.1, free ports, quicker mesh and shorter dead retention.
// The failure detector keeps DefaultConfig's values: lower ones give false
// deaths on a busy machine.
func DefaultLocalConfig() Config {
	c := DefaultConfig()
	c.BindAddr = "127.0.0.1" // loopback: nothing outside the host can reach a test node
	c.GossipPort = 0         // many nodes per host
	c.P2PPort = 0
	c.Timing.PushPullInterval = 2 * time.Second // quicker repair after a partition in tests
	c.Timing.DeadNodeReclaimTime = time.Second  // restarted nodes come back on new ports
	c.Timing.DeadRetention = 10 * time.Second
	c.Timing.LeaveTimeout = time.Second
	c.Timing.HeartbeatInterval = 200 * time.Millisecond // mesh forms within a test's patience
	return c
}

// withDefaults fills zero values from DefaultConfig (the caller's copy is
// untouched: c is a value).
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.BindAddr == "" {
		c.BindAddr = d.BindAddr
	}
	if c.Version == "" {
		c.Version = d.Version
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Limits = c.Limits.withDefaults()
	if c.RequestTimeout == 0 {
		c.RequestTimeout = d.RequestTimeout
	}
	if c.MaxStreamsPerPeer == 0 {
		c.MaxStreamsPerPeer = d.MaxStreamsPerPeer
	}
	if c.MaxEventQueue == 0 {
		c.MaxEventQueue = d.MaxEventQueue
	}
	if c.MaxGossipSenders == 0 {
		c.MaxGossipSenders = d.MaxGossipSenders
	}
	t, dt := &c.Timing, d.Timing
	setDur(&t.ProbeInterval, dt.ProbeInterval)
	setDur(&t.ProbeTimeout, dt.ProbeTimeout)
	setDur(&t.GossipInterval, dt.GossipInterval)
	setDur(&t.PushPullInterval, dt.PushPullInterval)
	setDur(&t.GossipToTheDeadTime, dt.GossipToTheDeadTime)
	setDur(&t.DeadNodeReclaimTime, dt.DeadNodeReclaimTime)
	setDur(&t.DeadRetention, dt.DeadRetention)
	setDur(&t.LeaveTimeout, dt.LeaveTimeout)
	setDur(&t.HeartbeatInterval, dt.HeartbeatInterval)
	if t.SuspicionMult == 0 {
		t.SuspicionMult = dt.SuspicionMult
	}
	if t.SuspicionMaxTimeoutMult == 0 {
		t.SuspicionMaxTimeoutMult = dt.SuspicionMaxTimeoutMult
	}
	return c
}

func setDur(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}

// Validate reports every problem of the config at once. Zero values that
// have defaults are not problems.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("name: required"))
	} else if len(c.Name) > 128 {
		errs = append(errs, fmt.Errorf("name: %d bytes, at most 128", len(c.Name)))
	}
	if net.ParseIP(c.BindAddr) == nil {
		errs = append(errs, fmt.Errorf("bind address %q: not an IP address", c.BindAddr))
	}
	if c.AdvertiseAddr != "" {
		if ip := net.ParseIP(c.AdvertiseAddr); ip == nil || ip.IsUnspecified() {
			errs = append(errs, fmt.Errorf("advertise address %q: not a usable IP address", c.AdvertiseAddr))
		}
	}
	if c.GossipPort < 0 || c.GossipPort > 65535 {
		errs = append(errs, fmt.Errorf("gossip port %d: outside 0..65535", c.GossipPort))
	}
	if c.P2PPort < 0 || c.P2PPort > 65535 {
		errs = append(errs, fmt.Errorf("p2p port %d: outside 0..65535", c.P2PPort))
	}
	if c.GossipPort != 0 && c.GossipPort == c.P2PPort {
		errs = append(errs, fmt.Errorf("gossip and p2p ports are both %d: they must differ", c.P2PPort))
	}
	if err := c.Limits.Validate(); err != nil {
		errs = append(errs, err)
	}
	if _, err := NewRegistry(c.Types); err != nil {
		errs = append(errs, err)
	}
	if c.MaxGossipSenders < 1 {
		errs = append(errs, fmt.Errorf("max gossip senders %d: must be positive", c.MaxGossipSenders))
	}
	if err := c.Meta.validate(); err != nil {
		errs = append(errs, err)
	}
	if c.RequestTimeout < 0 {
		errs = append(errs, fmt.Errorf("request timeout %v: negative", c.RequestTimeout))
	}
	if c.MaxStreamsPerPeer < 1 {
		errs = append(errs, fmt.Errorf("max streams per peer %d: must be positive", c.MaxStreamsPerPeer))
	}
	if c.MaxEventQueue < 1 {
		errs = append(errs, fmt.Errorf("max event queue %d: must be positive", c.MaxEventQueue))
	}
	t := c.Timing
	if t.ProbeTimeout >= t.ProbeInterval {
		errs = append(errs, fmt.Errorf("timing: probe timeout %v must be below the probe interval %v", t.ProbeTimeout, t.ProbeInterval))
	}
	if t.ProbeTimeout < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("timing: probe timeout %v is below 100ms: false deaths under load", t.ProbeTimeout))
	}
	if t.SuspicionMult < 1 || t.SuspicionMaxTimeoutMult < 1 {
		errs = append(errs, errors.New("timing: suspicion multipliers must be at least 1"))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"probe interval", t.ProbeInterval}, {"gossip interval", t.GossipInterval},
		{"push-pull interval", t.PushPullInterval}, {"gossip to the dead time", t.GossipToTheDeadTime},
		{"dead node reclaim time", t.DeadNodeReclaimTime}, {"dead retention", t.DeadRetention},
		{"leave timeout", t.LeaveTimeout}, {"heartbeat interval", t.HeartbeatInterval},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("timing: %s %v: negative", d.name, d.v))
		}
	}
	return errors.Join(errs...)
}
