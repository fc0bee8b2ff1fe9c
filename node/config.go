package node

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/loadswarm/loadswarm/scenarios"
	"github.com/loadswarm/loadswarm/scheduler"
)

// Default addresses.
const (
	DefaultBind = "0.0.0.0:7946"   // gossip on 7946 (UDP+TCP), libp2p on 7947 (TCP)
	DefaultAPI  = "127.0.0.1:7070" // loopback: the API has no authentication
)

// Config configures one node process. Each field says its flag, its
// environment variable and its default; DefaultConfig returns the defaults.
// New copies the config and never writes into it.
type Config struct {
	// Name is the node's name, unique in the fleet. --name, SWARM_NAME.
	// Default: the host name.
	Name string `yaml:"name"`
	// Region, Zone and Org describe where the node runs and who runs it;
	// scheduler rules split load by them. --region/--zone/--org,
	// SWARM_REGION/SWARM_ZONE/SWARM_ORG. Default empty.
	Region string `yaml:"region"`
	Zone   string `yaml:"zone"`
	Org    string `yaml:"org"`
	// CapacityPerSec is the most requests per second this node will
	// generate. --capacity, SWARM_CAPACITY. Default 1000.
	CapacityPerSec int `yaml:"capacity"`
	// Tags are free-form labels (k=v). --tag (repeatable), SWARM_TAGS
	// ("k=v,k2=v2"). Default none.
	Tags map[string]string `yaml:"tags"`

	// DataDir holds the node's identity (identity.key) and, later, its
	// stores. --data-dir, SWARM_DATA_DIR. Default ~/.loadswarm.
	DataDir string `yaml:"data_dir"`
	// Bind is the address for gossip and libp2p, host:port: gossip uses the
	// port, libp2p the port+1; port 0 picks free ports for both. --bind,
	// SWARM_BIND. Default 0.0.0.0:7946.
	Bind string `yaml:"bind"`
	// Advertise is the IP address other nodes reach this one at, when it
	// differs from Bind's (NAT, containers). --advertise, SWARM_ADVERTISE.
	// Default: Bind's IP, or a private address of the host for 0.0.0.0.
	Advertise string `yaml:"advertise"`
	// API is the local HTTP API's listen address. --api, SWARM_API.
	// Default 127.0.0.1:7070.
	API string `yaml:"api"`
	// FleetKeyFile is the fleet key (from `swarm keygen`). Empty runs an
	// open fleet. --fleet-key, SWARM_FLEET_KEY.
	FleetKeyFile string `yaml:"fleet_key"`
	// Seeds are gossip addresses (host or host:port) of members to join.
	// Arguments of `swarm join`, SWARM_SEEDS ("a:7946,b:7946"). Default
	// none: the node starts a new fleet.
	Seeds []string `yaml:"seeds"`
	// Profile picks the failure detector's timing: "lan" (default: a death
	// is seen in about 2 s), "wan" (fleets across continents: about 10 s)
	// or "local" (nodes on one host, tests). SWARM_PROFILE.
	Profile string `yaml:"profile"`
	// LogLevel is debug, info, warn or error. --log-level, SWARM_LOG_LEVEL.
	// Default info.
	LogLevel string `yaml:"log_level"`
	// LogFormat is text or json. --log-format, SWARM_LOG_FORMAT. Default text.
	LogFormat string `yaml:"log_format"`

	// LeaseTTL is how long this node keeps generating a share without
	// hearing from the test's scheduler, and how long leases it gives last
	// when it schedules. Default 3s. SWARM_LEASE_TTL.
	LeaseTTL time.Duration `yaml:"lease_ttl"`
	// StartLead is how far ahead a scheduler sets a test's start (and a new
	// share's), so every node has the plan in time. Default 2s.
	// SWARM_START_LEAD.
	StartLead time.Duration `yaml:"start_lead"`

	// SimLatency and SimJitter add a simulated network distance to every
	// request this node sends to a target (a round trip of SimLatency plus
	// a uniform 0..SimJitter), in userspace: the testnet gives each node
	// the latency of its simulated region with them. Default 0: none.
	// --sim-latency, --sim-jitter, SWARM_SIM_LATENCY, SWARM_SIM_JITTER.
	SimLatency time.Duration `yaml:"sim_latency"`
	SimJitter  time.Duration `yaml:"sim_jitter"`

	// MaxLate is how late past its scheduled time an arrival may still be
	// sent; later ones (a frozen process, a starved generator) are counted
	// as missed, never sent in a burst. Default 0: the executor's 50ms,
	// the most that keeps every second within 105% of the plan. Raise it
	// only on hosts too slow to keep up, at the cost of bursts after a
	// stall. --max-late, SWARM_MAX_LATE.
	MaxLate time.Duration `yaml:"max_late"`

	// Policy is what this node lets tests do (see Policy).
	Policy Policy `yaml:",inline"`

	// DebugAPI serves fault-injection endpoints on the API (POST
	// /v1/debug/isolate). Default false; `swarm testnet` sets it.
	// --debug-api, SWARM_DEBUG_API=1.
	DebugAPI bool `yaml:"debug_api"`

	// Retention is how long this node keeps tests and results on disk.
	// Default 720h (30 days). --retention, SWARM_RETENTION.
	Retention time.Duration `yaml:"retention"`
	// MaxDisk is the most disk the results store may use, as a size
	// ("10GiB"); over it, the oldest finished tests are evicted (a log line
	// each). Default "": no budget (the free-space floor still holds).
	// --max-disk, SWARM_MAX_DISK.
	MaxDisk string `yaml:"max_disk"`
	// MinFreeDisk is the free space below which the node declines new
	// tests (its writes stop at a quarter of it, before the file system
	// fills). Default 512MiB. --min-free-disk, SWARM_MIN_FREE_DISK.
	MinFreeDisk string `yaml:"min_free_disk"`

	// OTLPEndpoint turns on OpenTelemetry export over OTLP/gRPC to this
	// host:port (a collector, an agent, Tempo, Jaeger...): a client span
	// for every request whose trace is sampled (the test's tracing), and
	// each test's per-second results as metrics. The SDK's standard
	// OTEL_EXPORTER_OTLP_* variables set headers, certificates,
	// compression and timeout; OTEL_RESOURCE_ATTRIBUTES and
	// OTEL_SERVICE_NAME the resource. This setting is the endpoint: the
	// OTEL_EXPORTER_OTLP_*ENDPOINT variables alone do not turn export on.
	// Default "": off. --otlp-endpoint, SWARM_OTLP_ENDPOINT.
	OTLPEndpoint string `yaml:"otlp_endpoint"`
	// OTLPInsecure sends OTLP in plaintext (true) or over TLS (false).
	// Default (unset): the OTEL_EXPORTER_OTLP_INSECURE variables if set,
	// else plaintext for a loopback endpoint (localhost, 127.0.0.1, ::1:
	// a local collector) and TLS with the system's roots for any other.
	// --otlp-insecure[=false], SWARM_OTLP_INSECURE.
	OTLPInsecure *bool `yaml:"otlp_insecure"`
	// OTLPInterval is how often each test's metrics are exported. Default
	// 0: OTEL_METRIC_EXPORT_INTERVAL (milliseconds) if set, else 10s.
	// --otlp-interval, SWARM_OTLP_INTERVAL.
	OTLPInterval time.Duration `yaml:"otlp_interval"`

	// Version is the software version that the node reports. Set by the CLI.
	Version string `yaml:"-"`
}

// coordinatorConfig is the scheduler's config from the node's.
func (c Config) coordinatorConfig() scheduler.CoordinatorConfig {
	cc := scheduler.DefaultCoordinatorConfig()
	if c.LeaseTTL > 0 {
		cc.LeaseTTL = c.LeaseTTL
		cc.LeaseEvery = min(cc.LeaseEvery, c.LeaseTTL/3)
		// Under the time a lost node's share takes to move (its failure
		// detection, then TTL and margin), so a scheduler cut off from
		// the fleet has stopped leasing before anyone could move a share
		// it gives out; and never so short that a second of stats late
		// loses the majority.
		cc.Contact = max(c.LeaseTTL, 2*time.Second)
	}
	if c.StartLead > 0 {
		cc.Lead = c.StartLead
	}
	return cc
}

// DefaultConfig returns the defaults documented on Config.
func DefaultConfig() Config {
	name, _ := os.Hostname()
	dataDir := ".loadswarm"
	if home, err := os.UserHomeDir(); err == nil {
		dataDir = filepath.Join(home, ".loadswarm")
	}
	return Config{
		Name:           name,
		CapacityPerSec: 1000,
		DataDir:        dataDir,
		Bind:           DefaultBind,
		API:            DefaultAPI,
		Profile:        "lan",
		LogLevel:       "info",
		LogFormat:      "text",
		Version:        "dev",
		LeaseTTL:       3 * time.Second,
		Retention:      30 * 24 * time.Hour,
		StartLead:      2 * time.Second,
	}
}

// Clone returns a deep copy.
func (c Config) Clone() Config {
	c.Tags = maps.Clone(c.Tags)
	c.Seeds = slices.Clone(c.Seeds)
	c.Policy.TrustSubmitters = slices.Clone(c.Policy.TrustSubmitters)
	c.Policy.AllowTargets = slices.Clone(c.Policy.AllowTargets)
	if c.OTLPInsecure != nil {
		v := *c.OTLPInsecure
		c.OTLPInsecure = &v
	}
	return c
}

// Validate reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("name: required (--name)"))
	}
	if c.LeaseTTL != 0 && (c.LeaseTTL < 300*time.Millisecond || c.LeaseTTL > time.Minute) {
		errs = append(errs, fmt.Errorf("lease ttl %s: must be 300ms..1m", c.LeaseTTL))
	}
	if c.StartLead < 0 || c.StartLead > time.Minute {
		errs = append(errs, fmt.Errorf("start lead %s: must be 0..1m", c.StartLead))
	}
	if c.MaxLate < 0 || c.MaxLate > time.Minute {
		errs = append(errs, fmt.Errorf("max late %s: must be 0..1m (0: the default)", c.MaxLate))
	}
	if c.SimLatency < 0 || c.SimJitter < 0 || c.SimLatency > 10*time.Second || c.SimJitter > 10*time.Second {
		errs = append(errs, fmt.Errorf("sim latency %s / jitter %s: must be 0..10s", c.SimLatency, c.SimJitter))
	}
	if err := c.Policy.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Retention < 0 {
		errs = append(errs, fmt.Errorf("retention %s: must be >= 0 (0: the default)", c.Retention))
	}
	for _, f := range []struct{ name, v string }{{"max disk", c.MaxDisk}, {"min free disk", c.MinFreeDisk}} {
		if f.v != "" {
			if _, err := scenarios.ParseSize(f.v); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", f.name, err))
			}
		}
	}
	if c.OTLPEndpoint != "" {
		if err := checkOTLPEndpoint(c.OTLPEndpoint); err != nil {
			errs = append(errs, err)
		}
	}
	if c.OTLPInterval != 0 && (c.OTLPInterval < 100*time.Millisecond || c.OTLPInterval > time.Hour) {
		errs = append(errs, fmt.Errorf("otlp interval %s: must be 100ms..1h (0: the default)", c.OTLPInterval))
	}
	if c.CapacityPerSec < 0 {
		errs = append(errs, fmt.Errorf("capacity: %d is negative", c.CapacityPerSec))
	}
	for k := range c.Tags {
		if k == "" || strings.ContainsAny(k, "=,") {
			errs = append(errs, fmt.Errorf("tag key %q: must be non-empty, without '=' or ','", k))
		}
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data dir: required (--data-dir)"))
	}
	if _, _, err := splitBind(c.Bind); err != nil {
		errs = append(errs, err)
	}
	if c.Advertise != "" {
		if ip := net.ParseIP(c.Advertise); ip == nil || ip.IsUnspecified() {
			errs = append(errs, fmt.Errorf("advertise %q: not a usable IP address", c.Advertise))
		}
	}
	if _, _, err := net.SplitHostPort(c.API); err != nil {
		errs = append(errs, fmt.Errorf("api %q: want host:port: %v", c.API, err))
	}
	for _, s := range c.Seeds {
		if s == "" {
			errs = append(errs, errors.New("seeds: empty address"))
		}
	}
	switch c.Profile {
	case "", "lan", "wan", "local":
	default:
		errs = append(errs, fmt.Errorf("profile %q: want lan, wan or local", c.Profile))
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	switch c.LogFormat {
	case "", "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log format %q: want text or json", c.LogFormat))
	}
	return errors.Join(errs...)
}

// checkOTLPEndpoint wants host:port, the form the OTLP/gRPC exporter takes.
func checkOTLPEndpoint(ep string) error {
	if strings.Contains(ep, "://") {
		return fmt.Errorf("otlp endpoint %q: want host:port (e.g. localhost:4317), not a URL; --otlp-insecure chooses plaintext", ep)
	}
	host, port, err := net.SplitHostPort(ep)
	if err != nil || host == "" {
		return fmt.Errorf("otlp endpoint %q: want host:port, e.g. localhost:4317", ep)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("otlp endpoint %q: bad port", ep)
	}
	return nil
}

// splitBind parses host[:port]; the port defaults to 7946.
func splitBind(bind string) (ip string, port int, err error) {
	host, p, err := net.SplitHostPort(bind)
	if err != nil {
		host, p = bind, "7946"
		if strings.HasPrefix(bind, "[") && strings.HasSuffix(bind, "]") {
			host = bind[1 : len(bind)-1]
		}
	}
	if host == "" {
		host = "0.0.0.0"
	}
	if net.ParseIP(host) == nil {
		return "", 0, fmt.Errorf("bind %q: want an IP address and optional port, e.g. 0.0.0.0:7946", bind)
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 0 || port > 65534 {
		return "", 0, fmt.Errorf("bind %q: bad port (0 to 65534; libp2p takes the next one)", bind)
	}
	return host, port, nil
}

// LoadConfigFile reads a YAML config file over c: fields the file sets
// replace c's, the rest keep their values. Unknown fields are an error (a
// typo must not pass silently).
func LoadConfigFile(path string, c *Config) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if len(b) > 1<<20 {
		return fmt.Errorf("config %s: larger than 1 MiB", path)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// ApplyEnv sets the fields whose SWARM_* variable is set (see Config);
// lookup is os.LookupEnv in production.
func (c *Config) ApplyEnv(lookup func(string) (string, bool)) error {
	var errs []error
	str := func(key string, dst *string) {
		if v, ok := lookup(key); ok {
			*dst = v
		}
	}
	str("SWARM_NAME", &c.Name)
	str("SWARM_REGION", &c.Region)
	str("SWARM_ZONE", &c.Zone)
	str("SWARM_ORG", &c.Org)
	str("SWARM_DATA_DIR", &c.DataDir)
	str("SWARM_BIND", &c.Bind)
	str("SWARM_ADVERTISE", &c.Advertise)
	str("SWARM_API", &c.API)
	str("SWARM_FLEET_KEY", &c.FleetKeyFile)
	str("SWARM_PROFILE", &c.Profile)
	str("SWARM_LOG_LEVEL", &c.LogLevel)
	str("SWARM_LOG_FORMAT", &c.LogFormat)
	if v, ok := lookup("SWARM_CAPACITY"); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("SWARM_CAPACITY=%q: not an integer", v))
		}
		c.CapacityPerSec = n
	}
	if v, ok := lookup("SWARM_TAGS"); ok {
		tags, err := ParseTags(splitList(v))
		if err != nil {
			errs = append(errs, fmt.Errorf("SWARM_TAGS: %w", err))
		}
		c.Tags = tags
	}
	if v, ok := lookup("SWARM_SEEDS"); ok {
		c.Seeds = splitList(v)
	}
	dur := func(key string, dst *time.Duration) {
		if v, ok := lookup(key); ok {
			d, err := time.ParseDuration(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: not a duration like 3s", key, v))
			}
			*dst = d
		}
	}
	dur("SWARM_LEASE_TTL", &c.LeaseTTL)
	dur("SWARM_START_LEAD", &c.StartLead)
	dur("SWARM_SIM_LATENCY", &c.SimLatency)
	dur("SWARM_MAX_LATE", &c.MaxLate)
	dur("SWARM_RETENTION", &c.Retention)
	str("SWARM_MAX_DISK", &c.MaxDisk)
	str("SWARM_MIN_FREE_DISK", &c.MinFreeDisk)
	dur("SWARM_MAX_DURATION", &c.Policy.MaxDuration)
	if v, ok := lookup("SWARM_DEBUG_API"); ok {
		c.DebugAPI = v == "1" || strings.EqualFold(v, "true")
	}
	if v, ok := lookup("SWARM_TRUST"); ok {
		c.Policy.TrustSubmitters = splitList(v)
	}
	if v, ok := lookup("SWARM_ALLOW_TARGETS"); ok {
		c.Policy.AllowTargets = splitList(v)
	}
	dur("SWARM_SIM_JITTER", &c.SimJitter)
	str("SWARM_OTLP_ENDPOINT", &c.OTLPEndpoint)
	dur("SWARM_OTLP_INTERVAL", &c.OTLPInterval)
	if v, ok := lookup("SWARM_OTLP_INSECURE"); ok {
		switch b, err := strconv.ParseBool(v); {
		case err != nil:
			errs = append(errs, fmt.Errorf("SWARM_OTLP_INSECURE=%q: want true or false", v))
		default:
			c.OTLPInsecure = &b
		}
	}
	return errors.Join(errs...)
}

// ParseTags parses k=v pairs.
func ParseTags(pairs []string) (map[string]string, error) {
	if len(pairs) == 0 {
		return nil, nil
	}
	tags := make(map[string]string, len(pairs))
	for _, p := range pairs {
		k, v, ok := strings.Cut(p, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("tag %q: want key=value", p)
		}
		tags[k] = v
	}
	return tags, nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
