// Package node runs one Loadswarm process: it loads the config, the
// identity and the fleet key from disk, starts the swarm, joins the fleet,
// serves the local HTTP API, and runs this node's part of every test.
//
// Files by role: node.go (the process), config.go and policy.go (what the
// operator allows), wire.go (every message and its limits), registry.go
// (the tests this node knows: admission, readiness, capacity, catch-up),
// loadtest.go (one test: state and outcomes), loop.go (the goroutine that
// drives a test's scheduler.Follower and scheduler.Coordinator), share.go
// (this node's run of its share), stats.go (results, replicas, the test's
// record), results.go (queries over the fleet), api*.go and client.go (the
// local API and its client).
package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/loadswarm/loadswarm/scenarios"
	"github.com/loadswarm/loadswarm/storage"
	"github.com/loadswarm/loadswarm/swarm"
)

// File names in the data directory.
const (
	IdentityFile = "identity.key" // the libp2p key: the node's peer id
	AddrsFile    = "node.json"    // where a running node listens (see Addrs)
)

// Addrs is where a running node listens; Start writes it to node.json in
// the data directory (and Close removes it) so that scripts and tests find
// a node started with port 0.
type Addrs struct {
	Name   string   `json:"name"`
	PeerID string   `json:"peer_id"`
	API    string   `json:"api"`    // HTTP API, host:port
	Gossip string   `json:"gossip"` // a seed for `swarm join`
	P2P    []string `json:"p2p"`
	PID    int      `json:"pid"`
}

// Node is one process of the fleet. Create it with New, then Start; Close
// leaves the fleet and stops everything.
type Node struct {
	cfg     Config
	log     *slog.Logger
	mux     *http.ServeMux
	started time.Time

	sw       *swarm.Swarm
	fleetKey swarm.FleetKey
	srv      *http.Server
	apiLn    net.Listener
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	closeMu  sync.Mutex
	closed   bool
	fatal    chan error // a reason the node cannot go on (its name is taken)
	reg      *registry
	store    *storage.Store
	targets  *scenarios.TargetPolicy // where tests may send requests from this node
	metrics  *metrics                // GET /metrics, and the OTLP export when configured
	stream   streamHub               // GET /v1/stream: the dashboard's live frames
}

// New validates cfg and prepares a node; nothing listens until Start.
func New(cfg Config, logger *slog.Logger) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("node config: %w", err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	n := &Node{cfg: cfg.Clone(), log: logger, mux: http.NewServeMux(), fatal: make(chan error, 1)}
	n.stream.n = n
	n.reg = newRegistry(n)
	n.metrics = newMetrics(n)
	n.routes()
	return n, nil
}

// Mux is the API's router: later parts register their routes on it before
// Start.
func (n *Node) Mux() *http.ServeMux { return n.mux }

// Swarm returns the node's swarm; nil before Start.
func (n *Node) Swarm() *swarm.Swarm { return n.sw }

// Logger returns the node's logger.
func (n *Node) Logger() *slog.Logger { return n.log }

// APIAddr returns the HTTP API's address (with the real port when the
// config asked for port 0); empty before Start.
func (n *Node) APIAddr() string {
	if n.apiLn == nil {
		return ""
	}
	return n.apiLn.Addr().String()
}

// Start creates the data directory, loads (or creates) the identity, loads
// the fleet key, starts the swarm and the API, and joins the seeds in the
// background: it keeps retrying while the node is alone, so nodes may
// start in any order.
func (n *Node) Start(ctx context.Context) error {
	cfg := n.cfg
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	id, created, err := swarm.LoadOrCreateIdentity(filepath.Join(cfg.DataDir, IdentityFile))
	if err != nil {
		return err
	}
	if created {
		n.log.Info("created a new identity", "file", filepath.Join(cfg.DataDir, IdentityFile), "peer_id", id.PeerID())
	}
	var key swarm.FleetKey
	if cfg.FleetKeyFile != "" {
		if key, err = swarm.LoadFleetKey(cfg.FleetKeyFile); err != nil {
			return err
		}
		// Group read is how Kubernetes hands a Secret to a pod's user
		// (fsGroup); anything more is a key others can read or change.
		if fi, err := os.Stat(cfg.FleetKeyFile); err == nil && fi.Mode().Perm()&0o027 != 0 {
			n.log.Warn("fleet key file is open to others (writable by its group, or readable by anyone); chmod 600 it", "file", cfg.FleetKeyFile, "mode", fi.Mode().Perm().String())
		}
	}

	scfg, err := n.swarmConfig(id, key)
	if err != nil {
		return err
	}
	// Listening first: the API's address travels in the node's metadata.
	scfgStore := storage.StoreConfig{Dir: filepath.Join(cfg.DataDir, "results"), Retention: cfg.Retention, Small: true, Logger: n.log}
	if cfg.MaxDisk != "" {
		scfgStore.MaxBytes, _ = scenarios.ParseSize(cfg.MaxDisk) // Validate checked it
	}
	if cfg.MinFreeDisk != "" {
		scfgStore.MinFreeBytes, _ = scenarios.ParseSize(cfg.MinFreeDisk)
	}
	store, err := storage.OpenStore(scfgStore)
	if err != nil {
		return fmt.Errorf("results store: %w", err)
	}
	n.store = store
	apiLn, err := net.Listen("tcp", cfg.API)
	if err != nil {
		store.Close()
		return fmt.Errorf("api: %w", err)
	}
	scfg.Meta.API = apiLn.Addr().String()
	sw, err := swarm.New(scfg)
	if err != nil {
		apiLn.Close()
		store.Close()
		return err
	}
	sw.Handle(queryProtocol, n.handleQueryStream)
	n.sw, n.apiLn, n.started, n.fleetKey = sw, apiLn, time.Now(), key
	n.srv = &http.Server{
		Handler:           n.guard(n.mux),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(n.log.Handler(), slog.LevelDebug),
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		if err := n.srv.Serve(apiLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.log.Error("api stopped", "error", err)
		}
	}()

	if n.targets, err = n.targetPolicy(); err != nil {
		n.srv.Close()
		sw.Close()
		store.Close()
		return fmt.Errorf("allow-target: %w", err)
	}
	if cfg.OTLPEndpoint != "" {
		o, err := startOTLP(cfg, n.metrics, n.log)
		if err != nil {
			n.srv.Close()
			sw.Close()
			store.Close()
			return err
		}
		n.metrics.mu.Lock()
		n.metrics.otlp = o
		n.metrics.mu.Unlock()
	}
	if err := n.writeAddrs(); err != nil {
		n.log.Warn("could not write node.json", "error", err)
	}
	n.log.Info("node started", "api", n.APIAddr(), "gossip", sw.GossipAddr(), "data_dir", cfg.DataDir)

	jctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	n.cancel = cancel
	if err := n.reg.start(jctx); err != nil {
		cancel()
		return fmt.Errorf("tests: %w", err)
	}
	if len(cfg.Seeds) == 0 {
		n.log.Info("no seeds: this node starts a new fleet; others join it with `swarm join " + sw.GossipAddr() + "`")
	} else {
		// The first join is tried at once so that a taken name stops the
		// start; seeds that are not up yet are retried in the background.
		if _, err := sw.Join(cfg.Seeds); errors.Is(err, swarm.ErrNameTaken) {
			cancel()
			n.reg.close()
			n.srv.Close()
			sw.Close()
			n.metrics.close(otlpCloseTimeout)
			store.Close()
			n.closeMu.Lock()
			n.closed = true
			n.closeMu.Unlock()
			return err
		} else if err == nil {
			n.afterJoin(jctx)
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.joinLoop(jctx)
		}()
	}
	return nil
}

func (n *Node) swarmConfig(id swarm.Identity, key swarm.FleetKey) (swarm.Config, error) {
	cfg := n.cfg
	var sc swarm.Config
	switch cfg.Profile {
	case "wan":
		sc = swarm.DefaultWANConfig()
	case "local":
		sc = swarm.DefaultLocalConfig()
	default:
		sc = swarm.DefaultConfig()
	}
	ip, port, err := splitBind(cfg.Bind)
	if err != nil {
		return sc, err
	}
	sc.Name = cfg.Name
	sc.BindAddr = ip
	sc.GossipPort = port
	sc.P2PPort = 0
	if port != 0 {
		sc.P2PPort = port + 1
	}
	sc.AdvertiseAddr = cfg.Advertise
	sc.Identity = id
	sc.FleetKey = key
	sc.Version = cfg.Version
	sc.Logger = n.log
	sc.Types = wireTypes
	sc.Meta = swarm.Meta{Region: cfg.Region, Zone: cfg.Zone, Org: cfg.Org, CapacityPerSec: cfg.CapacityPerSec, Tags: cfg.Tags}
	return sc, nil
}

// joinLoop joins the seeds, retrying with backoff while the node is alone
// (seeds not up yet, a partition healed, the whole fleet restarted). A
// taken name ends it: the node cannot be a member under it.
func (n *Node) joinLoop(ctx context.Context) {
	backoff := time.Second
	for {
		if n.sw.NumAlive() <= 1 {
			_, err := n.sw.Join(n.cfg.Seeds)
			switch {
			case errors.Is(err, swarm.ErrNameTaken):
				n.log.Error("cannot join the fleet", "error", err)
				select {
				case n.fatal <- err:
				default:
				}
				return
			case err != nil:
				n.log.Warn("join failed; retrying", "error", err, "retry_in", backoff.String())
				backoff = min(2*backoff, 30*time.Second)
			default:
				backoff = time.Second
				n.afterJoin(ctx)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
	}
}

// afterJoin asks members for the tests that run now, in the background:
// a node that joins (or comes back) mid-test takes a share at the next
// split.
func (n *Node) afterJoin(ctx context.Context) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.reg.catchUp(ctx)
	}()
}

// Fatal delivers the reason the node cannot go on (its name is taken by a
// live member); the process should stop.
func (n *Node) Fatal() <-chan error { return n.fatal }

func (n *Node) writeAddrs() error {
	a := Addrs{
		Name: n.cfg.Name, PeerID: n.sw.PeerID(), API: n.APIAddr(), Gossip: n.sw.GossipAddr(),
		P2P: n.sw.P2PAddrs(), PID: os.Getpid(),
	}
	b, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(n.cfg.DataDir, AddrsFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// ReadAddrs reads node.json from a running node's data directory.
func ReadAddrs(dataDir string) (Addrs, error) {
	var a Addrs
	b, err := os.ReadFile(filepath.Join(dataDir, AddrsFile))
	if err != nil {
		return a, err
	}
	err = json.Unmarshal(b, &a)
	return a, err
}

// Close leaves the fleet (others see the node as left at once, not dead),
// then stops the API and the swarm. It is idempotent.
func (n *Node) Close() error {
	n.closeMu.Lock()
	defer n.closeMu.Unlock()
	if n.closed || n.sw == nil {
		n.closed = true
		return nil
	}
	n.closed = true
	n.reg.close()
	n.cancel()
	var errs []error
	if err := n.sw.Leave(); err != nil {
		errs = append(errs, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := n.srv.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("api shutdown: %w", err))
	}
	errs = append(errs, n.sw.Close())
	n.wg.Wait()
	// The shares have ended: the OTLP export sends what is left, briefly.
	n.metrics.close(otlpCloseTimeout)
	errs = append(errs, n.store.Close())
	_ = os.Remove(filepath.Join(n.cfg.DataDir, AddrsFile))
	n.log.Info("node stopped")
	return errors.Join(errs...)
}

// otlpCloseTimeout bounds the OTLP export's last flush when the node
// closes: an endpoint that is down must not hold the node up.
const otlpCloseTimeout = 2 * time.Second

// transport is the HTTP transport a test's share uses on this node: every
// address it dials passes the node's target policy first, and the node's
// simulated latency, if any, is added to every connection.
func (n *Node) transport(sc *scenarios.Scenario) *scenarios.Transport {
	tc := scenarios.TransportConfig{HTTP2: sc.HTTP2, Insecure: sc.Insecure, Timeout: sc.Timeout, MaxConns: sc.MaxInFlight, Targets: n.targets}
	dial := (&net.Dialer{Timeout: sc.Timeout, KeepAlive: 30 * time.Second}).DialContext
	if n.cfg.SimLatency > 0 || n.cfg.SimJitter > 0 {
		dial = scenarios.LatencyDial(nil, n.cfg.SimLatency, n.cfg.SimJitter)
	}
	// The target policy has checked the address against this node's own
	// listeners; the fleet's are checked here, on the address about to be
	// dialed (after resolution), from membership as it is now.
	tc.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if err := n.memberEndpoint(addr); err != nil {
			return nil, err
		}
		return dial(ctx, network, addr)
	}
	return scenarios.NewTransport(tc)
}

// memberEndpoint refuses an address that is a fleet member's gossip, p2p or
// API listener: a test must not be able to aim at the fleet itself (on a
// testnet every node is on loopback, which the testnet allows).
func (n *Node) memberEndpoint(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	ip := net.ParseIP(host)
	same := func(ep string) bool {
		h, p, err := net.SplitHostPort(ep)
		if err != nil || p != port {
			return false
		}
		hip := net.ParseIP(h)
		return hip != nil && ip != nil && (hip.Equal(ip) || hip.IsUnspecified())
	}
	for _, m := range n.sw.Members() {
		eps := []string{m.Addr, m.Meta.API}
		for _, a := range m.P2PAddrs {
			if f := strings.Split(a, "/"); len(f) >= 5 && f[3] == "tcp" {
				eps = append(eps, net.JoinHostPort(f[2], f[4]))
			}
		}
		for _, ep := range eps {
			if ep != "" && same(ep) {
				return &scenarios.TargetError{Target: addr, Why: fmt.Sprintf("a listener of fleet member %s refused: a test may not aim at the fleet", m.Name)}
			}
		}
	}
	return nil
}
