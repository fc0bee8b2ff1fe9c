package cli

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/loadswarm/loadswarm/node"
)

// JoinOptions are the flags of `swarm join`.
type JoinOptions struct {
	IO         IO
	Seeds      []string
	ConfigFile string
	Name       string
	Region     string
	Zone       string
	Org        string
	Capacity   int
	Tags       []string
	DataDir    string
	Bind       string
	Advertise  string
	API        string
	FleetKey   string
	Profile    string
	LogLevel   string
	LogFormat  string
	LeaseTTL   time.Duration
	StartLead  time.Duration
	SimLatency time.Duration
	SimJitter  time.Duration
	Trust      []string
	Allow      []string
	MaxDur     time.Duration
	DebugAPI   bool
	MaxDisk    string
	MinFree    string
	MaxLate    time.Duration

	OTLPEndpoint string
	OTLPInsecure bool
	OTLPInterval time.Duration

	// Changed holds the flags given on the command line: only those
	// override the config file and the environment.
	Changed map[string]bool
	// LookupEnv reads the environment (os.LookupEnv; tests replace it).
	LookupEnv func(string) (string, bool)
}

var joinFlags = []string{"config", "name", "region", "zone", "org", "capacity", "tag", "data-dir",
	"bind", "advertise", "api", "fleet-key", "profile", "log-level", "log-format",
	"lease-ttl", "start-lead", "sim-latency", "sim-jitter", "trust", "allow-target", "max-duration", "debug-api", "max-disk", "min-free-disk", "max-late",
	"otlp-endpoint", "otlp-insecure", "otlp-interval"}

// NewCmdJoin parses `swarm join`; runF does the work (tests pass their own).
func NewCmdJoin(ios IO, runF func(context.Context, *JoinOptions) error) *cobra.Command {
	opts := &JoinOptions{IO: ios, LookupEnv: os.LookupEnv}
	d := node.DefaultConfig()
	cmd := &cobra.Command{
		Use:   "join [flags] [SEED...]",
		Short: "Run a node in the foreground and join (or start) a fleet",
		Long: `Run a Loadswarm node on this host until Ctrl-C (or SIGTERM).

With no SEED, the node starts a new fleet. Give other nodes the address it
prints ("others join it with ...") as their SEED: any member's gossip address
(host:port, port 7946 by default) will do. Nodes may start in any order; a
node keeps retrying its seeds while it is alone.

Ports: gossip (memberlist) uses UDP and TCP on the --bind port (7946), and
libp2p uses TCP on the next port (7947). Open both between hosts. --bind with
port 0 picks free ports (tests, several nodes on one host).

Security: with --fleet-key FILE (made by "swarm keygen"), gossip is encrypted
and libp2p runs as a private network: a host without the same key can neither
join nor connect. Without a key the fleet is open to anyone who can reach the
ports, and the node says so when it starts.

Shared fleets: the operator decides what the node will do. --trust limits
whose tests it runs (submissions are signed by the submitting node's key),
--allow-target limits the hosts it sends requests to (checked when a test is
announced, and again on every connection), --max-duration declines long
tests, --capacity caps its rate. A node that declines says why, and the
submitter sees it; the test is split over the nodes that accept.

Observability: GET /metrics on the API address serves Prometheus metrics
(arrivals, requests, errors by class, a latency histogram with trace-id
exemplars, fleet members, tests, store size, process and Go runtime). The
API answers requests for its own address only and refuses browsers, so
scrape the address it listens on (--api; 127.0.0.1 by default, so keep
Prometheus on the host or listen on an address it reaches). With
--otlp-endpoint host:port, the node also exports over OTLP/gRPC a client
span for every request whose trace is sampled (the scenario's tracing; the
span has the trace and span ids of the request's traceparent, so the
target's spans are its children) and each test's metrics every
--otlp-interval. The OpenTelemetry SDK's standard variables apply:
OTEL_EXPORTER_OTLP_HEADERS, OTEL_EXPORTER_OTLP_CERTIFICATE,
OTEL_EXPORTER_OTLP_COMPRESSION, OTEL_EXPORTER_OTLP_TIMEOUT (and their
_TRACES_/_METRICS_ forms), OTEL_EXPORTER_OTLP_INSECURE,
OTEL_METRIC_EXPORT_INTERVAL, OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE,
OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME; --otlp-endpoint (or
SWARM_OTLP_ENDPOINT) is what turns export on. An endpoint that is down
never slows a test: spans that cannot be queued are dropped and counted
(swarm_otlp_spans_dropped_total).

Settings come from, in increasing priority: defaults, the --config file
(YAML, keys as in the flags: name, region, zone, org, capacity, tags, data_dir,
bind, advertise, api, fleet_key, seeds, profile, log_level, log_format,
lease_ttl, start_lead, sim_latency, sim_jitter, retention, trust,
allow_targets, max_duration, otlp_endpoint, otlp_insecure, otlp_interval),
environment variables (SWARM_NAME, SWARM_REGION, SWARM_ZONE, SWARM_ORG,
SWARM_CAPACITY, SWARM_TAGS="k=v,k2=v2", SWARM_DATA_DIR, SWARM_BIND,
SWARM_ADVERTISE, SWARM_API, SWARM_FLEET_KEY, SWARM_SEEDS="a:7946,b:7946",
SWARM_PROFILE, SWARM_LOG_LEVEL, SWARM_LOG_FORMAT, SWARM_CONFIG, SWARM_LEASE_TTL,
SWARM_START_LEAD, SWARM_SIM_LATENCY, SWARM_SIM_JITTER, SWARM_RETENTION,
SWARM_TRUST, SWARM_ALLOW_TARGETS, SWARM_MAX_DURATION, SWARM_OTLP_ENDPOINT,
SWARM_OTLP_INSECURE, SWARM_OTLP_INTERVAL), then flags.

The node keeps its identity (its libp2p peer id) in --data-dir, so a node
restarted with the same directory comes back as itself. On Ctrl-C it leaves
the fleet gracefully: the others see it as "left" at once, not as dead.`,
		Example: `  # first host: start a fleet (prints the address others join through)
  swarm join --name eu-1 --region eu-west --capacity 2000

  # second host: join it
  swarm join --name us-1 --region us-east 10.0.0.5:7946

  # a private fleet: make a key once, copy it to every host
  swarm keygen -o fleet.key
  swarm join --fleet-key fleet.key --name eu-1
  swarm join --fleet-key fleet.key --name us-1 10.0.0.5

  # export spans of sampled requests and test metrics to a local collector
  swarm join --name eu-1 --otlp-endpoint localhost:4317

  # three nodes on one machine
  swarm join --name a --bind 127.0.0.1:7946 --api 127.0.0.1:7070 --data-dir /tmp/a
  swarm join --name b --bind 127.0.0.2:7946 --api 127.0.0.1:7071 --data-dir /tmp/b 127.0.0.1`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Seeds = args
			opts.Changed = map[string]bool{}
			for _, name := range joinFlags {
				opts.Changed[name] = cmd.Flags().Changed(name)
			}
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return joinRun(cmd.Context(), opts)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.ConfigFile, "config", "c", "", "read settings from this YAML file (env: SWARM_CONFIG)")
	f.StringVar(&opts.Name, "name", d.Name, "this node's name, unique in the fleet")
	f.StringVar(&opts.Region, "region", "", "region this node runs in, e.g. eu-west")
	f.StringVar(&opts.Zone, "zone", "", "zone within the region, e.g. eu-west-1a")
	f.StringVar(&opts.Org, "org", "", "organization that runs this node (shared fleets)")
	f.IntVar(&opts.Capacity, "capacity", d.CapacityPerSec, "most requests per second this node will generate")
	f.StringArrayVar(&opts.Tags, "tag", nil, "a label key=value (repeat the flag for more)")
	f.StringVar(&opts.DataDir, "data-dir", d.DataDir, "directory for the node's identity and data")
	f.StringVar(&opts.Bind, "bind", d.Bind, "IP:port for gossip; libp2p uses port+1; port 0 picks free ports")
	f.StringVar(&opts.Advertise, "advertise", "", "IP other nodes reach this one at, if not the bind IP (NAT, containers)")
	f.StringVar(&opts.API, "api", d.API, "listen address of the local HTTP API (keep it on loopback)")
	f.StringVar(&opts.FleetKey, "fleet-key", "", "fleet key file from `swarm keygen`; without it the fleet is open")
	f.StringVar(&opts.Profile, "profile", d.Profile, "failure detection timing: lan, wan (across continents) or local (one host)")
	f.StringVar(&opts.LogLevel, "log-level", d.LogLevel, "debug, info, warn or error")
	f.StringVar(&opts.LogFormat, "log-format", d.LogFormat, "text or json")
	f.DurationVar(&opts.LeaseTTL, "lease-ttl", d.LeaseTTL, "how long a share runs without hearing from its scheduler")
	f.DurationVar(&opts.StartLead, "start-lead", d.StartLead, "how far ahead a test (or a new share) starts when this node schedules")
	f.DurationVar(&opts.SimLatency, "sim-latency", 0, "simulated round trip added to every request to a target (testnet regions)")
	f.DurationVar(&opts.SimJitter, "sim-jitter", 0, "random extra simulated latency, uniform in 0..jitter")
	f.StringArrayVar(&opts.Trust, "trust", nil, "run only tests signed by this node (peer id, or its name in the fleet; repeat; default: any member)")
	f.StringArrayVar(&opts.Allow, "allow-target", nil, "send requests only to this host, domain suffix (.example.com), IP or CIDR (repeat; default: any host but loopback, link-local and this node's own addresses; 127.0.0.0/8 allows loopback)")
	f.StringVar(&opts.MaxDisk, "max-disk", "", "most disk the results store may use, e.g. 10GiB; over it the oldest finished tests go (default: no budget)")
	f.StringVar(&opts.MinFree, "min-free-disk", "", "decline new tests below this much free disk (default 512MiB)")
	f.DurationVar(&opts.MaxLate, "max-late", 0, "count an arrival as missed when it would go out later than this (default 50ms: no burst after a stall)")
	f.BoolVar(&opts.DebugAPI, "debug-api", false, "serve fault-injection endpoints on the API (POST /v1/debug/isolate); swarm testnet sets it")
	f.DurationVar(&opts.MaxDur, "max-duration", 0, "decline tests longer than this (default: no limit)")
	f.StringVar(&opts.OTLPEndpoint, "otlp-endpoint", "", "export spans of sampled requests and test metrics over OTLP/gRPC to this host:port (default: off; OTEL_EXPORTER_OTLP_* variables apply)")
	f.BoolVar(&opts.OTLPInsecure, "otlp-insecure", false, "send OTLP in plaintext, or over TLS with --otlp-insecure=false (default: plaintext for a loopback endpoint, TLS otherwise)")
	f.DurationVar(&opts.OTLPInterval, "otlp-interval", 0, "how often each test's metrics go to the OTLP endpoint (default: OTEL_METRIC_EXPORT_INTERVAL, else 10s)")
	return cmd
}

// Config merges defaults, the config file, the environment and the flags
// given on the command line, in that order.
func (o *JoinOptions) Config() (node.Config, error) {
	c := node.DefaultConfig()
	c.Version = Version
	lookup := o.LookupEnv
	if lookup == nil {
		lookup = func(string) (string, bool) { return "", false }
	}
	file := o.ConfigFile
	if !o.Changed["config"] {
		if v, ok := lookup("SWARM_CONFIG"); ok {
			file = v
		}
	}
	if file != "" {
		if err := node.LoadConfigFile(file, &c); err != nil {
			return c, err
		}
	}
	if err := c.ApplyEnv(lookup); err != nil {
		return c, err
	}
	set := func(flag string, dst *string, v string) {
		if o.Changed[flag] {
			*dst = v
		}
	}
	set("name", &c.Name, o.Name)
	set("region", &c.Region, o.Region)
	set("zone", &c.Zone, o.Zone)
	set("org", &c.Org, o.Org)
	set("data-dir", &c.DataDir, o.DataDir)
	set("bind", &c.Bind, o.Bind)
	set("advertise", &c.Advertise, o.Advertise)
	set("api", &c.API, o.API)
	set("fleet-key", &c.FleetKeyFile, o.FleetKey)
	set("profile", &c.Profile, o.Profile)
	set("log-level", &c.LogLevel, o.LogLevel)
	set("log-format", &c.LogFormat, o.LogFormat)
	if o.Changed["capacity"] {
		c.CapacityPerSec = o.Capacity
	}
	for flag, v := range map[string]struct {
		dst *time.Duration
		v   time.Duration
	}{"lease-ttl": {&c.LeaseTTL, o.LeaseTTL}, "start-lead": {&c.StartLead, o.StartLead},
		"sim-latency": {&c.SimLatency, o.SimLatency}, "sim-jitter": {&c.SimJitter, o.SimJitter},
		"max-duration": {&c.Policy.MaxDuration, o.MaxDur}, "max-late": {&c.MaxLate, o.MaxLate}} {
		if o.Changed[flag] {
			*v.dst = v.v
		}
	}
	if o.Changed["tag"] {
		tags, err := node.ParseTags(o.Tags)
		if err != nil {
			return c, fmt.Errorf("--tag: %w", err)
		}
		c.Tags = tags
	}
	if o.Changed["trust"] {
		c.Policy.TrustSubmitters = o.Trust
	}
	if o.Changed["allow-target"] {
		c.Policy.AllowTargets = o.Allow
	}
	if o.Changed["debug-api"] {
		c.DebugAPI = o.DebugAPI
	}
	set("max-disk", &c.MaxDisk, o.MaxDisk)
	set("min-free-disk", &c.MinFreeDisk, o.MinFree)
	set("otlp-endpoint", &c.OTLPEndpoint, o.OTLPEndpoint)
	if o.Changed["otlp-insecure"] {
		v := o.OTLPInsecure
		c.OTLPInsecure = &v
	}
	if o.Changed["otlp-interval"] {
		c.OTLPInterval = o.OTLPInterval
	}
	if len(o.Seeds) > 0 {
		c.Seeds = o.Seeds
	}
	return c, c.Validate()
}

func joinRun(ctx context.Context, opts *JoinOptions) error {
	cfg, err := opts.Config()
	if err != nil {
		return err
	}
	logger, err := node.NewLogger(opts.IO.ErrOut, cfg.LogLevel, cfg.LogFormat)
	if err != nil {
		return err
	}
	n, err := node.New(cfg, logger)
	if err != nil {
		return err
	}
	if err := n.Start(ctx); err != nil {
		return err
	}
	seeds := "none (a new fleet)"
	if len(cfg.Seeds) > 0 {
		seeds = strings.Join(cfg.Seeds, ", ")
	}
	fmt.Fprintf(opts.IO.ErrOut, "node %s is running: API http://%s, gossip %s, seeds %s. Stop with Ctrl-C.\n",
		cfg.Name, n.APIAddr(), n.Swarm().GossipAddr(), seeds)
	select {
	case <-ctx.Done():
	case err := <-n.Fatal():
		n.Close()
		return err
	}
	fmt.Fprintln(opts.IO.ErrOut, "leaving the fleet...")
	return n.Close()
}
