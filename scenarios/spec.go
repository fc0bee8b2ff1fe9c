package scenarios

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/loadswarm/loadswarm/scenarios/observe"
)

// MaxSpecBytes bounds a scenario file: a hand-written test is a few KiB, so
// anything near this is a mistake or an attack on the parser.
const MaxSpecBytes = 1 << 20

// Spec is a test definition exactly as written in YAML (or JSON, which YAML
// accepts). Parse turns it into a validated Scenario; nothing reads a Spec
// before validation.
type Spec struct {
	Name         string            `yaml:"name" json:"name"`
	Target       string            `yaml:"target" json:"target"`
	Duration     Duration          `yaml:"duration" json:"duration,omitempty"`
	Defaults     Defaults          `yaml:"defaults" json:"defaults"`
	Load         Load              `yaml:"load" json:"load"`
	Flow         string            `yaml:"flow" json:"flow,omitempty"`
	Vars         map[string]any    `yaml:"vars" json:"vars,omitempty"`
	Requests     []StepSpec        `yaml:"requests" json:"requests"`
	Thresholds   []ThresholdSpec   `yaml:"thresholds" json:"thresholds,omitempty"`
	Distribution DistributionSpec  `yaml:"distribution" json:"distribution"`
	Labels       map[string]string `yaml:"labels" json:"labels,omitempty"`
	// Tracing sends W3C trace context (a traceparent header) with every
	// request. Default: on, with the sampled flag on 1% of the arrivals.
	Tracing TracingSpec `yaml:"tracing" json:"tracing,omitzero"`
	// Observe names the system under test's metrics to read during the
	// test (Prometheus sources), stored with the results. Default: none.
	Observe observe.Spec `yaml:"observe" json:"observe,omitzero"`
	// Secret names the run's parameters (env) whose values are secret:
	// used, never kept nor shown. Default: none (swarm run -s adds more).
	Secret []string `yaml:"secret" json:"secret,omitempty"`
	// Env is the run's parameters (swarm run -e KEY=VALUE), read as
	// env.KEY: not part of the file.
	Env map[string]string `yaml:"-" json:"-"`
}

// Defaults apply to every request step unless the step overrides them.
type Defaults struct {
	// Headers are sent with every request. Default: none.
	Headers map[string]string `yaml:"headers" json:"headers,omitempty"`
	// Timeout bounds one request, from send to the end of the body.
	// Default: 10s.
	Timeout Duration `yaml:"timeout" json:"timeout,omitempty"`
	// HTTP is the protocol version: "1.1" (default) or "2" (negotiated by
	// ALPN over TLS, prior knowledge over plain http).
	HTTP string `yaml:"http" json:"http,omitempty"`
	// InsecureSkipVerify skips TLS certificate checks, for test targets
	// with self-signed certificates. Default: false.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify" json:"insecure_skip_verify,omitempty"`
	// MaxBody bounds a request body built from a template, as bytes or
	// with a unit ("512KiB", "4MiB"); a request whose body would be
	// larger fails (error class "other") before the body is built.
	// Default: 1MiB; at most 64MiB.
	MaxBody string `yaml:"max_body" json:"max_body,omitempty"`
	// Redirects is how many redirects a request follows (0: none, the
	// redirect is the response). Default: 10.
	Redirects *int `yaml:"redirects" json:"redirects,omitempty"`
	// Cookies keeps a cookie jar per arrival: cookies a response sets go
	// with the arrival's later requests. Default: on.
	Cookies *bool `yaml:"cookies" json:"cookies,omitempty"`
}

// Load is the open-model arrival profile.
type Load struct {
	// Rate is a shorthand for one constant stage over the top-level
	// duration. Use either rate with duration, or stages.
	Rate float64 `yaml:"rate" json:"rate,omitempty"`
	// Arrivals is "uniform" (default: evenly spaced) or "poisson"
	// (exponential gaps, as independent users arrive).
	Arrivals string `yaml:"arrivals" json:"arrivals,omitempty"`
	// MaxInFlight caps outstanding arrivals; past it, an arrival is dropped
	// and counted, never delayed. Default: 1000.
	MaxInFlight int `yaml:"max_in_flight" json:"max_in_flight,omitempty"`
	// Seed makes Poisson arrivals repeatable. Default: 0, a random seed.
	Seed uint64 `yaml:"seed" json:"seed,omitempty"`
	// MinDelivered is the share of the planned arrivals (0-1) that the
	// fleet must send or count as not sent (dropped, missed) for the test
	// to pass: below it, nodes died, gave up or lost results, and the
	// numbers describe a smaller test than the one asked for. Default 0.95.
	MinDelivered float64     `yaml:"min_delivered" json:"min_delivered,omitempty"`
	Stages       []StageSpec `yaml:"stages" json:"stages,omitempty"`
}

// StageSpec is one stage of the arrival profile. Rates are arrivals per
// second.
//
//	constant: {duration: 30s, rate: 100}
//	ramp:     {duration: 30s, rate: 100, to: 500}
//	spike:    {duration: 60s, rate: 100, to: 1000, shape: spike, at: 20s, rise: 5s, hold: 10s, fall: 5s}
//	burst:    {duration: 60s, rate: 100, to: 400, shape: burst, every: 10s, for: 2s}
type StageSpec struct {
	Duration Duration `yaml:"duration" json:"duration"`
	Rate     *float64 `yaml:"rate" json:"rate"`
	To       *float64 `yaml:"to" json:"to,omitempty"`
	Shape    string   `yaml:"shape" json:"shape,omitempty"`
	// Spike: starts At into the stage, rises to To over Rise, holds for
	// Hold, falls back to Rate over Fall.
	At   Duration `yaml:"at" json:"at,omitempty"`
	Rise Duration `yaml:"rise" json:"rise,omitempty"`
	Hold Duration `yaml:"hold" json:"hold,omitempty"`
	Fall Duration `yaml:"fall" json:"fall,omitempty"`
	// Burst: every Every, the rate is To for For, else Rate.
	Every Duration `yaml:"every" json:"every,omitempty"`
	For   Duration `yaml:"for" json:"for,omitempty"`
}

// StepSpec is one named request of the user flow. String fields may hold
// templates: "{{ expr }}" is replaced by the expression's value.
type StepSpec struct {
	Name    string            `yaml:"name" json:"name"`
	Method  string            `yaml:"method" json:"method,omitempty"`
	Path    string            `yaml:"path" json:"path,omitempty"`
	URL     string            `yaml:"url" json:"url,omitempty"`
	Headers map[string]string `yaml:"headers" json:"headers,omitempty"`
	Body    string            `yaml:"body" json:"body,omitempty"`
	// Weight picks the step in a weighted flow. Default: 1.
	Weight  *float64          `yaml:"weight" json:"weight,omitempty"`
	Timeout Duration          `yaml:"timeout" json:"timeout,omitempty"`
	Check   StringList        `yaml:"check" json:"check,omitempty"`
	Extract map[string]string `yaml:"extract" json:"extract,omitempty"`
	// MaxBody overrides defaults.max_body for this step.
	MaxBody string `yaml:"max_body" json:"max_body,omitempty"`
	// Redirects overrides defaults.redirects for this step.
	Redirects *int `yaml:"redirects" json:"redirects,omitempty"`
	// Think is the pause after this step before the arrival's next one
	// (sequence flow): "2s" or {min: 1s, max: 3s}. Default: none.
	Think *ThinkSpec `yaml:"think" json:"think,omitempty"`
}

// ThresholdSpec is a pass/fail rule over the run's merged summary. It may be
// written as a bare string.
type ThresholdSpec struct {
	Expr string `yaml:"expr" json:"expr"`
	// Abort stops the run as soon as the rule fails (checked each second
	// once After has passed).
	Abort bool     `yaml:"abort" json:"abort,omitempty"`
	After Duration `yaml:"after" json:"after,omitempty"`
}

// UnmarshalYAML accepts "p95 < 300" as well as {expr: ..., abort: true}.
func (t *ThresholdSpec) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		t.Expr = n.Value
		return nil
	}
	type plain ThresholdSpec
	return decodeStrict(n, (*plain)(t), "expr", "abort", "after")
}

// DistributionSpec holds the rules the scheduler uses to split the rate over
// nodes. Each expression sees `node` (name, region, zone, org, capacity,
// cpus, tags).
type DistributionSpec struct {
	Select  string             `yaml:"select" json:"select,omitempty"`
	Weight  string             `yaml:"weight" json:"weight,omitempty"`
	Regions map[string]float64 `yaml:"regions" json:"regions,omitempty"`
}

// StringList is one string or a list of strings in YAML.
type StringList []string

// UnmarshalYAML accepts a scalar or a sequence.
func (s *StringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		*s = StringList{n.Value}
		return nil
	}
	var l []string
	if err := n.Decode(&l); err != nil {
		return err
	}
	*s = l
	return nil
}

// Duration is a time.Duration written as "250ms", "30s", "2m".
type Duration time.Duration

// D returns the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// UnmarshalYAML parses a Go duration string; a bare number is refused
// because "30" could mean seconds or milliseconds.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: duration must be a string like \"30s\"", n.Line)
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: bad duration %q: use a unit, like 30s or 250ms", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration back as a string.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// MarshalText writes the duration as a string (JSON).
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// decodeStrict decodes a mapping node, refusing keys that v has no field
// for: Node.Decode does not inherit the decoder's KnownFields.
func decodeStrict(n *yaml.Node, v any, known ...string) error {
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if !slices.Contains(known, k.Value) {
				return fmt.Errorf("line %d: field %s is unknown (known: %s)", k.Line, k.Value, strings.Join(known, ", "))
			}
		}
	}
	return n.Decode(v)
}

// ParseFile reads and parses a scenario file.
func ParseFile(path string) (*Scenario, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSpecBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	sc, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return sc, nil
}

// Parse decodes a YAML or JSON scenario, refusing unknown fields, and
// validates it. All problems are reported at once, each with its path.
func Parse(data []byte) (*Scenario, error) {
	spec, err := DecodeSpec(data)
	if err != nil {
		return nil, err
	}
	return Compile(spec)
}

// DecodeSpec decodes without validating.
func DecodeSpec(data []byte) (*Spec, error) {
	if len(data) > MaxSpecBytes {
		return nil, fmt.Errorf("scenario is %d bytes, over the %d byte limit", len(data), MaxSpecBytes)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, errors.New("scenario is empty")
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var spec Spec
	if err := dec.Decode(&spec); err != nil {
		return nil, yamlError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		return nil, errors.New("scenario holds more than one YAML document")
	}
	return &spec, nil
}

// yamlError rewrites the YAML library's messages in our terms: one line per
// problem, "line N: ...".
func yamlError(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var errs []error
		for _, e := range te.Errors {
			e = strings.Replace(e, "not found in type scenarios.", "is unknown in ", 1)
			errs = append(errs, errors.New(e))
		}
		return fmt.Errorf("invalid scenario:\n%w", errors.Join(errs...))
	}
	return fmt.Errorf("invalid scenario: %w", err)
}

// validTarget checks a base URL.
func validTarget(s string) error {
	if s == "" {
		return errors.New("required (a base URL like http://127.0.0.1:8080)")
	}
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("not a URL: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("scheme %q: must be http or https", u.Scheme)
	}
	if u.Host == "" {
		return errors.New("has no host")
	}
	return nil
}
