package testnet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/loadswarm/loadswarm/node"
	"github.com/loadswarm/loadswarm/swarm"
)

// DefaultDir is where `swarm testnet up` keeps its state, logs and data.
const DefaultDir = ".testnet"

// StateFile is the testnet's state, in its directory.
const StateFile = "testnet.json"

// DefaultRegions are the regions of `swarm testnet up` without --regions.
var DefaultRegions = []string{"eu-west", "us-east", "ap-south"}

// UpConfig is what `swarm testnet up` starts.
type UpConfig struct {
	// Dir holds the state file, the fleet key, each node's data directory
	// and every log. Default DefaultDir.
	Dir string
	// Binary is the swarm executable to run. Required (the CLI passes its
	// own, os.Executable()).
	Binary string
	// Nodes is how many nodes to start. Default 3; at most 200.
	Nodes int
	// Regions are given to the nodes round robin. Default DefaultRegions.
	Regions []string
	// RTTs gives each region its simulated distance to the target.
	// Default DefaultRTTs.
	RTTs RTTTable
	// Target starts the demo target (`swarm target`) beside the nodes.
	Target bool
	// TargetArgs are extra flags for `swarm target`.
	TargetArgs []string
	// LeaseTTL and StartLead are the nodes' --lease-ttl and --start-lead:
	// short, as every node is on one host. Default 1500ms and 1s, as the
	// in-process fleet of package fleettest.
	LeaseTTL, StartLead time.Duration
	// Wait bounds how long Up waits for the fleet to form. Default 60s.
	Wait time.Duration
	// Progress receives a line now and then while Up waits. Default: none.
	Progress io.Writer
}

// Proc is one process of the testnet.
type Proc struct {
	Name string   `json:"name"`
	PID  int      `json:"pid"`
	Args []string `json:"args"` // after the binary: what restart runs again
	Log  string   `json:"log"`
	// Binary is the executable it was started from, to recognise it in the
	// moment of its exec before its command line is set.
	Binary string `json:"binary,omitempty"`
}

// NodeProc is a node process.
type NodeProc struct {
	Proc
	Region  string `json:"region"`
	RTT     RTT    `json:"rtt"`
	IP      string `json:"ip"`
	Gossip  string `json:"gossip"` // ip:port; libp2p listens on port+1
	API     string `json:"api"`
	DataDir string `json:"data_dir"`
}

// TargetProc is the demo target's process.
type TargetProc struct {
	Proc
	URL string `json:"url"`
}

// State is a testnet on disk (Dir/testnet.json): what `status`, `down` and
// the fault commands work from.
type State struct {
	Dir      string      `json:"dir"`
	Binary   string      `json:"binary"`
	FleetKey string      `json:"fleet_key"`
	Created  time.Time   `json:"created"`
	Nodes    []*NodeProc `json:"nodes"`
	Target   *TargetProc `json:"target,omitempty"`
	// MadeDir is true when Up created Dir: Down with purge removes it.
	MadeDir bool `json:"made_dir"`
	// Regions, RTTs, LeaseTTL and StartLead are Up's, for nodes added later.
	Regions   []string      `json:"regions,omitempty"`
	RTTs      RTTTable      `json:"rtts,omitempty"`
	LeaseTTL  time.Duration `json:"lease_ttl,omitempty"`
	StartLead time.Duration `json:"start_lead,omitempty"`
	// Stopped is set by Down.
	Stopped *time.Time `json:"stopped,omitempty"`
}

// ErrNoTestnet is returned by Load when the directory holds no testnet.
var ErrNoTestnet = errors.New("no testnet here (start one with `swarm testnet up`)")

// Load reads the state of the testnet in dir.
func Load(dir string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(dir, StateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", dir, ErrNoTestnet)
	}
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, StateFile), err)
	}
	return &s, nil
}

// Save writes the state file atomically.
func (s *State) Save() error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(s.Dir, StateFile)
	if err := os.WriteFile(path+".tmp", append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}

// Procs lists every process: the nodes, then the target.
func (s *State) Procs() []*Proc {
	var out []*Proc
	for _, n := range s.Nodes {
		out = append(out, &n.Proc)
	}
	if s.Target != nil {
		out = append(out, &s.Target.Proc)
	}
	return out
}

// Running reports whether any of the testnet's processes is alive.
func (s *State) Running() bool {
	for _, p := range s.Procs() {
		if p.State() != ProcGone {
			return true
		}
	}
	return false
}

// Node finds a node by name or by number (1 is the first).
func (s *State) Node(ref string) (*NodeProc, error) {
	for _, n := range s.Nodes {
		if n.Name == ref {
			return n, nil
		}
	}
	if i, err := strconv.Atoi(ref); err == nil && i >= 1 && i <= len(s.Nodes) {
		return s.Nodes[i-1], nil
	}
	names := make([]string, len(s.Nodes))
	for i, n := range s.Nodes {
		names[i] = n.Name
	}
	return nil, fmt.Errorf("no node %q in the testnet (nodes: %s, or 1..%d)", ref, strings.Join(names, ", "), len(s.Nodes))
}

// proc finds a process by node name or number, or "target".
func (s *State) proc(ref string) (*Proc, error) {
	if ref == "target" && s.Target != nil {
		return &s.Target.Proc, nil
	}
	n, err := s.Node(ref)
	if err != nil {
		return nil, err
	}
	return &n.Proc, nil
}

// Process states, as ProcState reads them.
const (
	ProcRunning = "running"
	ProcPaused  = "paused" // SIGSTOP
	ProcGone    = "gone"
)

// State says whether the process runs, is paused, or is gone (a process
// with the same pid that is not this one counts as gone).
func (p *Proc) State() string {
	if p.PID <= 0 || !p.owned() {
		return ProcGone
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.PID))
	if err != nil {
		if syscall.Kill(p.PID, 0) == nil && !dirExists("/proc/self") {
			return ProcRunning // no /proc on this system
		}
		return ProcGone
	}
	// pid (comm) S ...: the state follows the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return ProcGone
	}
	switch b[i+2] {
	case 'Z', 'X', 'x':
		return ProcGone
	case 'T', 't':
		return ProcPaused
	}
	return ProcRunning
}

// owned checks that the pid still runs our command line, so that a reused
// pid is never signalled.
func (p *Proc) owned() bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.PID))
	if err != nil {
		return !dirExists("/proc/self") // cannot tell: trust the pid
	}
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.PID))
	return p.ownedBy(b, exe)
}

// ownedBy says whether a process with this command line and executable is
// p. execve wakes the parent (our cmd.Start returns) before the kernel
// sets the new argv: for that moment the command line reads empty, but the
// executable is already the new one. Kernel threads, also empty, have no
// executable.
func (p *Proc) ownedBy(cmdline []byte, exe string) bool {
	if len(cmdline) == 0 {
		return p.Binary != "" && exe == p.Binary
	}
	args := strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00")
	return slices.Equal(args[1:], p.Args)
}

func dirExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// signal sends sig to the process's group (it leads its own session).
func (p *Proc) signal(sig syscall.Signal) error {
	if p.State() == ProcGone {
		return nil
	}
	if err := syscall.Kill(-p.PID, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("%s (pid %d): %s: %w", p.Name, p.PID, sig, err)
	}
	return nil
}

// waitGone polls until every process is gone or the deadline passes; it
// returns those still there.
func waitGone(ctx context.Context, procs []*Proc, within time.Duration) []*Proc {
	deadline := time.Now().Add(within)
	for {
		var left []*Proc
		for _, p := range procs {
			if p.State() != ProcGone {
				left = append(left, p)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) || ctx.Err() != nil {
			return left
		}
		time.Sleep(50 * time.Millisecond) // poll interval
	}
}

// start runs binary with p.Args in a new session (so it outlives the caller
// and a closing terminal), output appended to p.Log.
func (p *Proc) start(binary string) error {
	f, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	fmt.Fprintf(f, "--- %s: %s %s\n", time.Now().Format(time.RFC3339), binary, strings.Join(p.Args, " "))
	cmd := exec.Command(binary, p.Args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = childEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	p.PID = cmd.Process.Pid
	p.Binary = cmd.Path
	if abs, err := filepath.Abs(cmd.Path); err == nil {
		if real, err := filepath.EvalSymlinks(abs); err == nil {
			p.Binary = real
		}
	}
	go func() { _ = cmd.Wait() }() // reap it if this process outlives it
	return nil
}

// childEnv is the environment without SWARM_* settings, which would
// otherwise change the nodes' config behind the flags.
func childEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SWARM_") {
			out = append(out, kv)
		}
	}
	return out
}

// logTail returns the last lines of a log, for error messages.
func logTail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

// freeGossipPort finds a port on ip with TCP and UDP free for gossip and
// the next TCP port free for libp2p.
func freeGossipPort(ip string) (int, error) {
	for range 50 {
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			return 0, fmt.Errorf("listen on %s: %w (is 127.0.0.0/8 routed to lo?)", ip, err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln2, err2 := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port+1)))
		pc, err3 := net.ListenPacket("udp", net.JoinHostPort(ip, strconv.Itoa(port)))
		ln.Close()
		if err2 == nil {
			ln2.Close()
		}
		if err3 == nil {
			pc.Close()
		}
		if err2 == nil && err3 == nil && port < 65534 {
			return port, nil
		}
	}
	return 0, fmt.Errorf("no free port pair on %s", ip)
}

func (c UpConfig) withDefaults() UpConfig {
	if c.Dir == "" {
		c.Dir = DefaultDir
	}
	if c.Nodes == 0 {
		c.Nodes = 3
	}
	if len(c.Regions) == 0 {
		c.Regions = DefaultRegions
	}
	if c.RTTs == nil {
		c.RTTs = DefaultRTTs
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = 1500 * time.Millisecond
	}
	if c.StartLead == 0 {
		c.StartLead = time.Second
	}
	if c.Wait == 0 {
		c.Wait = time.Minute
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	return c
}

// Validate reports every problem at once.
func (c UpConfig) Validate() error {
	var errs []error
	if c.Binary == "" {
		errs = append(errs, errors.New("binary: required"))
	}
	if c.Nodes < 0 || c.Nodes > 200 {
		errs = append(errs, fmt.Errorf("nodes %d: must be 1..200 (one loopback address each)", c.Nodes))
	}
	for _, r := range c.Regions {
		if r == "" || strings.ContainsAny(r, " /,") {
			errs = append(errs, fmt.Errorf("region %q: want a name like eu-west", r))
		}
	}
	if c.LeaseTTL < 0 || c.StartLead < 0 || c.Wait < 0 {
		errs = append(errs, errors.New("durations must be >= 0"))
	}
	return errors.Join(errs...)
}

// Up starts a testnet: a fleet key, cfg.Nodes `swarm join` processes (node
// i on 127.0.0.(i+1), region round robin, simulated latency of its region)
// and the demo target, then waits until every node answers and sees every
// other one alive. It refuses to start over a testnet that still runs in
// the same directory. On failure it stops what it started.
func Up(ctx context.Context, cfg UpConfig) (*State, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	if old, err := Load(dir); err == nil && old.Running() {
		return nil, fmt.Errorf("a testnet is already running in %s (stop it with `swarm testnet down --dir %s`)", dir, cfg.Dir)
	}
	s := &State{Dir: dir, Binary: cfg.Binary, Created: time.Now().UTC(), Regions: cfg.Regions, RTTs: cfg.RTTs,
		LeaseTTL: cfg.LeaseTTL, StartLead: cfg.StartLead}
	if !dirExists(dir) {
		s.MadeDir = true
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	key, err := swarm.GenerateFleetKey()
	if err != nil {
		return nil, err
	}
	s.FleetKey = filepath.Join(dir, "fleet.key")
	_ = os.Remove(s.FleetKey) // a new fleet gets a new key; WriteFile refuses to overwrite
	if err := key.WriteFile(s.FleetKey); err != nil {
		return nil, err
	}

	for i := range cfg.Nodes {
		if _, err := s.newNode(cfg.Regions[i%len(cfg.Regions)]); err != nil {
			return nil, err
		}
	}
	for _, n := range s.Nodes {
		s.setArgs(n)
	}
	if cfg.Target {
		s.Target = &TargetProc{Proc: Proc{Name: "target", Log: filepath.Join(dir, "target.log"),
			Args: append([]string{"target", "--addr", "127.0.0.1:0"}, cfg.TargetArgs...)}}
	}

	fail := func(err error) (*State, error) {
		_ = s.Down(context.Background(), DownOptions{})
		return nil, err
	}
	for _, p := range s.Procs() {
		if err := p.start(cfg.Binary); err != nil {
			return fail(err)
		}
	}
	if err := s.Save(); err != nil {
		return fail(err)
	}
	fmt.Fprintf(cfg.Progress, "started %d nodes and %s; waiting for the fleet to form (up to %s)...\n",
		len(s.Nodes), map[bool]string{true: "the demo target", false: "no target"}[s.Target != nil], cfg.Wait)
	wctx, cancel := context.WithTimeout(ctx, cfg.Wait)
	defer cancel()
	if err := s.waitReady(wctx, s.Procs(), cfg.Progress); err != nil {
		return fail(err)
	}
	if err := s.Save(); err != nil {
		return fail(err)
	}
	return s, nil
}

// newNode adds the next node of a region to the state: its loopback
// address (127.0.0.N), a free port pair, its name, log and data directory.
func (s *State) newNode(region string) (*NodeProc, error) {
	n := 0
	for _, o := range s.Nodes {
		if o.Region == region {
			n++
		}
	}
	ip := fmt.Sprintf("127.0.0.%d", len(s.Nodes)+1)
	port, err := freeGossipPort(ip)
	if err != nil {
		return nil, err
	}
	name := fmt.Sprintf("%s-%d", region, n+1)
	np := &NodeProc{Proc: Proc{Name: name, Log: filepath.Join(s.Dir, name+".log")},
		Region: region, RTT: s.RTTs.Lookup(region), IP: ip,
		Gossip: net.JoinHostPort(ip, strconv.Itoa(port)), DataDir: filepath.Join(s.Dir, name)}
	s.Nodes = append(s.Nodes, np)
	return np, nil
}

// setArgs sets a node's `swarm join` command line: every other node is a
// seed.
func (s *State) setArgs(n *NodeProc) {
	var seeds []string
	for _, o := range s.Nodes {
		if o != n {
			seeds = append(seeds, o.Gossip)
		}
	}
	n.Args = append([]string{"join", "--name", n.Name, "--region", n.Region, "--data-dir", n.DataDir,
		"--bind", n.Gossip, "--api", net.JoinHostPort(n.IP, "0"), "--fleet-key", s.FleetKey,
		"--profile", "local", "--lease-ttl", s.LeaseTTL.String(), "--start-lead", s.StartLead.String(),
		"--sim-latency", n.RTT.Latency.String(), "--sim-jitter", n.RTT.Jitter.String(),
		// The demo target and every node are on loopback; a node's own
		// listeners stay refused whatever the allow-list says.
		"--allow-target", "127.0.0.0/8", "--debug-api"}, seeds...)
}

// Add starts one more node in a running testnet (region "" takes the next
// in Up's round robin) and waits until the whole fleet sees it: a node
// that joins mid-test takes a share at the test's next split.
func (s *State) Add(ctx context.Context, region string, progress io.Writer) (*NodeProc, error) {
	if progress == nil {
		progress = io.Discard
	}
	if !s.Running() {
		return nil, errors.New("the testnet is not running (start it with `swarm testnet up`)")
	}
	if len(s.Nodes) >= 200 {
		return nil, errors.New("the testnet has 200 nodes, the most it can have")
	}
	if region == "" {
		regions := s.Regions
		if len(regions) == 0 {
			regions = DefaultRegions
		}
		region = regions[len(s.Nodes)%len(regions)]
	} else if strings.ContainsAny(region, " /,") {
		return nil, fmt.Errorf("region %q: want a name like eu-west", region)
	}
	if s.RTTs == nil {
		s.RTTs = DefaultRTTs
	}
	n, err := s.newNode(region)
	if err != nil {
		return nil, err
	}
	s.setArgs(n)
	if err := n.start(s.Binary); err != nil {
		s.Nodes = s.Nodes[:len(s.Nodes)-1]
		return nil, err
	}
	if err := s.Save(); err != nil {
		return n, err
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := s.waitReady(wctx, []*Proc{&n.Proc}, progress); err != nil {
		return n, err
	}
	return n, s.Save()
}

// waitReady polls until the processes in starting still run, the target
// (if any) answers, and every running node has written node.json, answers,
// and sees every running node alive. It fills in the API addresses and the
// target URL.
func (s *State) waitReady(ctx context.Context, starting []*Proc, progress io.Writer) error {
	began := time.Now()
	lastNote := began
	hc := &http.Client{Timeout: time.Second}
	for {
		var detail []string
		for _, p := range starting {
			if p.State() == ProcGone {
				return fmt.Errorf("%s exited while starting; the end of %s:\n%s", p.Name, p.Log, logTail(p.Log, 15))
			}
		}
		if s.Target != nil && s.Target.State() != ProcGone {
			if s.Target.URL == "" {
				if b, err := os.ReadFile(s.Target.Log); err == nil {
					for _, line := range strings.Split(string(b), "\n") {
						if u, ok := strings.CutPrefix(line, "target listening on "); ok {
							s.Target.URL = strings.TrimSpace(u)
						}
					}
				}
			}
			if !answers(ctx, hc, s.Target.URL+"/health") {
				detail = append(detail, "target not answering yet")
			}
		}
		var running []*NodeProc
		for _, n := range s.Nodes {
			if n.State() == ProcRunning {
				running = append(running, n)
			}
		}
		want, ready := len(running), 0
		for _, n := range running {
			if a, err := node.ReadAddrs(n.DataDir); err != nil || a.PID != n.PID {
				detail = append(detail, n.Name+" starting")
				continue
			} else {
				n.API = a.API
			}
			hctx, cancel := context.WithTimeout(ctx, time.Second)
			h, err := node.NewClient(n.API, hc).Health(hctx)
			cancel()
			switch {
			case err != nil:
				detail = append(detail, n.Name+" API not answering")
			case h.MembersAlive != want:
				detail = append(detail, fmt.Sprintf("%s sees %d/%d alive", n.Name, h.MembersAlive, want))
			default:
				ready++
			}
		}
		if len(detail) == 0 {
			fmt.Fprintf(progress, "ready in %.1fs: every node sees %d alive\n", time.Since(began).Seconds(), want)
			return nil
		}
		if time.Since(lastNote) >= 2*time.Second {
			lastNote = time.Now()
			fmt.Fprintf(progress, "  %4.1fs: %d/%d nodes ready; %s\n", time.Since(began).Seconds(), ready, want, strings.Join(first(detail, 3), "; "))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready in time (%s): %s; logs in %s", time.Since(began).Round(time.Second), strings.Join(first(detail, 5), "; "), s.Dir)
		case <-time.After(200 * time.Millisecond): // poll interval
		}
	}
}

func answers(ctx context.Context, hc *http.Client, url string) bool {
	if strings.HasPrefix(url, "/") {
		return false
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func first(s []string, n int) []string {
	if len(s) > n {
		return append(s[:n:n], fmt.Sprintf("and %d more", len(s)-n))
	}
	return s
}

// DownOptions tune Down.
type DownOptions struct {
	// Grace is how long processes get to leave after SIGTERM before
	// SIGKILL. Default 10s.
	Grace time.Duration
	// Purge removes what Up made: logs, data directories, the key, the
	// state file, and the directory if Up created it.
	Purge bool
	// Progress receives a line per step. Default: none.
	Progress io.Writer
}

// Down stops every process (SIGTERM, then SIGKILL after the grace time;
// a paused one is resumed so it can leave), waits until they are gone and
// their ports are free, and marks the state stopped (or purges it).
func (s *State) Down(ctx context.Context, opts DownOptions) error {
	if opts.Grace == 0 {
		opts.Grace = 10 * time.Second
	}
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	var errs []error
	procs := s.Procs()
	for _, p := range procs {
		errs = append(errs, p.signal(syscall.SIGTERM))
		errs = append(errs, p.signal(syscall.SIGCONT))
	}
	left := waitGone(ctx, procs, opts.Grace)
	for _, p := range left {
		fmt.Fprintf(opts.Progress, "%s (pid %d) did not stop within %s: killing it\n", p.Name, p.PID, opts.Grace)
		errs = append(errs, p.signal(syscall.SIGKILL))
	}
	if left = waitGone(context.Background(), left, 5*time.Second); len(left) > 0 {
		for _, p := range left {
			errs = append(errs, fmt.Errorf("%s (pid %d) is still there after SIGKILL", p.Name, p.PID))
		}
	}
	if busy := waitPortsFree(s.Ports(), 5*time.Second); len(busy) > 0 {
		errs = append(errs, fmt.Errorf("ports still in use after stopping: %s", strings.Join(busy, ", ")))
	}
	now := time.Now().UTC()
	s.Stopped = &now
	if opts.Purge {
		errs = append(errs, s.purge())
	} else if dirExists(s.Dir) {
		errs = append(errs, s.Save())
	}
	return errors.Join(errs...)
}

// purge removes the files Up made, and the directory if Up made it and it
// is then empty.
func (s *State) purge() error {
	var errs []error
	rm := func(p string) {
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
		}
	}
	for _, n := range s.Nodes {
		rm(n.DataDir)
		rm(n.Log)
	}
	if s.Target != nil {
		rm(s.Target.Log)
	}
	rm(s.FleetKey)
	rm(filepath.Join(s.Dir, StateFile))
	if s.MadeDir {
		_ = os.Remove(s.Dir) // only if empty: never what someone else put there
	}
	return errors.Join(errs...)
}

// Ports are every address the testnet listens on (tcp/ or udp/ host:port).
func (s *State) Ports() []string {
	var out []string
	for _, n := range s.Nodes {
		host, port, _ := net.SplitHostPort(n.Gossip)
		pn, _ := strconv.Atoi(port)
		out = append(out, "tcp/"+n.Gossip, "udp/"+n.Gossip, "tcp/"+net.JoinHostPort(host, strconv.Itoa(pn+1)))
		if n.API != "" {
			out = append(out, "tcp/"+n.API)
		}
	}
	if s.Target != nil && s.Target.URL != "" {
		out = append(out, "tcp/"+strings.TrimPrefix(s.Target.URL, "http://"))
	}
	return out
}

// PortFree reports whether a "tcp/host:port" or "udp/host:port" can be
// bound now.
func PortFree(addr string) bool {
	proto, hp, _ := strings.Cut(addr, "/")
	if proto == "udp" {
		pc, err := net.ListenPacket("udp", hp)
		if err != nil {
			return false
		}
		pc.Close()
		return true
	}
	ln, err := net.Listen("tcp", hp)
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

func waitPortsFree(ports []string, within time.Duration) []string {
	deadline := time.Now().Add(within)
	for {
		var busy []string
		for _, p := range ports {
			if !PortFree(p) {
				busy = append(busy, p)
			}
		}
		if len(busy) == 0 || time.Now().After(deadline) {
			return busy
		}
		time.Sleep(100 * time.Millisecond) // poll interval
	}
}

// Kill sends SIGKILL to a node (or "target"): a crash, without a goodbye
// to the fleet.
func (s *State) Kill(ref string) (*Proc, error) {
	p, err := s.proc(ref)
	if err != nil {
		return nil, err
	}
	if p.State() == ProcGone {
		return p, fmt.Errorf("%s is not running", p.Name)
	}
	if err := p.signal(syscall.SIGKILL); err != nil {
		return p, err
	}
	if left := waitGone(context.Background(), []*Proc{p}, 5*time.Second); len(left) > 0 {
		return p, fmt.Errorf("%s (pid %d) is still there after SIGKILL", p.Name, p.PID)
	}
	return p, nil
}

// Pause stops a node's process with SIGSTOP: it neither gossips nor sends
// traffic until Resume. See the package doc for what this does and does not
// show.
func (s *State) Pause(ref string) (*Proc, error) {
	p, err := s.proc(ref)
	if err != nil {
		return nil, err
	}
	if p.State() != ProcRunning {
		return p, fmt.Errorf("%s is %s", p.Name, p.State())
	}
	return p, p.signal(syscall.SIGSTOP)
}

// Isolate cuts a node off from the fleet (its gossip and libp2p traffic
// dropped, through its API) while it keeps running and reaching the target:
// a network partition, without root. on=false heals it.
func (s *State) Isolate(ctx context.Context, ref string, on bool) (*Proc, error) {
	n, err := s.Node(ref)
	if err != nil {
		return nil, err
	}
	if st := n.State(); st != ProcRunning || n.API == "" {
		return &n.Proc, fmt.Errorf("%s is %s", n.Name, st)
	}
	return &n.Proc, node.NewClient(n.API, nil).Isolate(ctx, on)
}

// Resume continues a paused process with SIGCONT.
func (s *State) Resume(ref string) (*Proc, error) {
	p, err := s.proc(ref)
	if err != nil {
		return nil, err
	}
	if p.State() != ProcPaused {
		return p, fmt.Errorf("%s is %s, not paused", p.Name, p.State())
	}
	return p, p.signal(syscall.SIGCONT)
}

// Restart stops a node (or "target") if it runs (SIGTERM: it leaves the
// fleet), starts it again with the same data directory, identity, address
// and ports, and waits until it is back in the fleet.
func (s *State) Restart(ctx context.Context, ref string, progress io.Writer) (*Proc, error) {
	if progress == nil {
		progress = io.Discard
	}
	p, err := s.proc(ref)
	if err != nil {
		return nil, err
	}
	if p.State() != ProcGone {
		_ = p.signal(syscall.SIGTERM)
		_ = p.signal(syscall.SIGCONT)
		if left := waitGone(ctx, []*Proc{p}, 10*time.Second); len(left) > 0 {
			_ = p.signal(syscall.SIGKILL)
			waitGone(ctx, left, 5*time.Second)
		}
	}
	if n, err := s.Node(ref); err == nil && p == &n.Proc {
		// Same ports as before: the fleet knows it by its gossip address.
		if n.API != "" {
			n.Args = replaceFlag(n.Args, "--api", n.API)
		}
		if busy := waitPortsFree([]string{"tcp/" + n.Gossip, "udp/" + n.Gossip}, 5*time.Second); len(busy) > 0 {
			return p, fmt.Errorf("%s: ports still busy: %s", n.Name, strings.Join(busy, ", "))
		}
	} else if s.Target != nil && s.Target.URL != "" {
		s.Target.Args = replaceFlag(s.Target.Args, "--addr", strings.TrimPrefix(s.Target.URL, "http://"))
	}
	if err := p.start(s.Binary); err != nil {
		return p, err
	}
	s.Stopped = nil
	if err := s.Save(); err != nil {
		return p, err
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := s.waitReady(wctx, []*Proc{p}, progress); err != nil {
		return p, err
	}
	return p, s.Save()
}

// replaceFlag sets the value after flag in args.
func replaceFlag(args []string, flag, value string) []string {
	out := slices.Clone(args)
	for i := 0; i+1 < len(out); i++ {
		if out[i] == flag {
			out[i+1] = value
		}
	}
	return out
}
