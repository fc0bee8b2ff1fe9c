package scenarios

import (
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/loadswarm/loadswarm/scenarios/observe"
)

// Defaults for fields a scenario leaves out.
const (
	DefaultTimeout     = 10 * time.Second
	DefaultMaxInFlight = 1000
	// MaxDuration bounds one test: a typo like "300h" should not pin a
	// fleet for days.
	MaxDuration = 24 * time.Hour
	// MaxRate bounds a stage's rate (arrivals per second, whole fleet).
	MaxRate = 10_000_000
	// MaxSteps bounds the steps of a flow.
	MaxSteps = 100
)

// Flow kinds.
const (
	FlowSequence = "sequence" // each arrival runs every step in order
	FlowWeighted = "weighted" // each arrival runs one step, picked by weight
)

// Scenario is a validated, compiled test definition, ready to run. It is
// read-only after Compile and safe to share between goroutines.
type Scenario struct {
	Spec Spec // as written, for storing and sending to peers
	// Env is the run's parameters (templates and checks read env.KEY);
	// SecretNames are those whose values Redact hides.
	Env          map[string]string
	SecretNames  []string
	secrets      []string // the secret values, longest first
	Name         string
	Target       *url.URL
	Profile      Profile
	Arrivals     string
	MaxInFlight  int
	MinDelivered float64 // 0: the report's default
	Seed         uint64
	Timeout      time.Duration
	HTTP2        bool
	Insecure     bool
	MaxBody      int  // bytes; the default of every step's MaxBody
	Redirects    int  // the default of every step's Redirects
	Cookies      bool // a cookie jar per arrival
	Headers      map[string]*Template
	Flow         string
	Vars         map[string]any
	Steps        []*Step
	Thresholds   []*Threshold
	Distribution *Distribution
	// Observe is what the test's scheduler reads from the system under
	// test; nil when the test observes nothing.
	Observe *observe.Config
	// Tracing: W3C trace context on every request. Compile's defaults:
	// on, Sample DefaultTraceSample (0.01). A Scenario built by hand has
	// it off.
	Tracing Tracing
	// hasExtract is true when a step extracts values, so each arrival
	// needs its own copy of Vars.
	hasExtract bool
}

// Step is one compiled request of the flow.
type Step struct {
	Name    string
	Method  string
	URL     *Template // absolute after rendering
	Headers map[string]*Template
	Body    *Template
	Weight  float64
	Timeout time.Duration
	MaxBody int // bytes: the largest body Body may render
	// Redirects is how many redirects the step follows; Think the pause
	// after it (sequence flow).
	Redirects int
	Think     Think
	Checks    []*Check
	Extract   []Extract
	// needBody / needJSON / needHeaders say whether a check or extraction
	// reads them, so that other steps only count and discard the body and
	// build no header map.
	needBody, needJSON, needHeaders bool
	// staticURL is the parsed URL when it has no template hole: parsed
	// once, not per request.
	staticURL *url.URL
}

// Check is one compiled check expression.
type Check struct {
	Src  string
	prog *vm.Program
}

// Extract stores an expression's value in vars under Name.
type Extract struct {
	Name string
	Src  string
	prog *vm.Program
}

// problems collects validation errors with their paths.
type problems []error

func (p *problems) add(path, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

var (
	stepName   = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
	varName    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)
	headerName = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$")
)

// Compile validates a spec and compiles its expressions. The error lists
// every problem, one per line, each with the field's path.
func Compile(spec *Spec) (*Scenario, error) {
	var errs problems
	sc := &Scenario{Spec: *spec, Name: spec.Name, Vars: spec.Vars}
	if sc.Vars == nil {
		sc.Vars = map[string]any{}
	}
	if spec.Name == "" {
		errs.add("name", "required")
	} else if len(spec.Name) > 128 {
		errs.add("name", "longer than 128 characters")
	}
	if err := validTarget(spec.Target); err != nil {
		errs.add("target", "%v", err)
	} else {
		sc.Target, _ = url.Parse(strings.TrimRight(spec.Target, "/"))
	}
	for k := range spec.Vars {
		if !varName.MatchString(k) {
			errs.add("vars."+k, "name must be letters, digits and _, starting with a letter")
		}
	}

	// Defaults.
	sc.Timeout = DefaultTimeout
	if spec.Defaults.Timeout < 0 {
		errs.add("defaults.timeout", "must be > 0")
	} else if spec.Defaults.Timeout > 0 {
		sc.Timeout = spec.Defaults.Timeout.D()
	}
	switch spec.Defaults.HTTP {
	case "", "1.1", "1":
	case "2", "2.0", "h2":
		sc.HTTP2 = true
	default:
		errs.add("defaults.http", "%q: must be \"1.1\" or \"2\"", spec.Defaults.HTTP)
	}
	sc.Insecure = spec.Defaults.InsecureSkipVerify
	sc.MaxBody = compileMaxBody(&errs, "defaults.max_body", spec.Defaults.MaxBody, DefaultMaxBody)
	sc.Headers = compileHeaders(&errs, "defaults.headers", spec.Defaults.Headers)
	sc.Redirects = compileRedirects(&errs, "defaults.redirects", spec.Defaults.Redirects, DefaultRedirects)
	sc.Cookies = spec.Defaults.Cookies == nil || *spec.Defaults.Cookies

	sc.compileEnv(&errs, spec)
	sc.compileLoad(&errs, spec)
	sc.compileSteps(&errs, spec)
	sc.compileThresholds(&errs, spec)
	sc.Distribution = compileDistribution(&errs, spec.Distribution)
	sc.Distribution.env = sc.Env
	sc.Tracing = compileTracing(&errs, spec.Tracing)
	if cfg, err := resolveObserve(spec.Observe, spec.Target).Compile(); err != nil {
		errs = append(errs, err) // each line names its field (observe.sources[1].query: ...)
	} else {
		sc.Observe = cfg
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("invalid scenario:\n%w", errors.Join(errs...))
	}
	return sc, nil
}

// compileMaxBody reads a max_body field; "" gives def.
func compileMaxBody(errs *problems, path, v string, def int) int {
	if v == "" {
		return def
	}
	n, err := ParseSize(v)
	switch {
	case err != nil:
		errs.add(path, "%v", err)
	case n <= 0:
		errs.add(path, "%q: must be > 0", v)
	case n > MaxBodyLimit:
		errs.add(path, "%s is over the limit of %s", FormatSize(n), FormatSize(MaxBodyLimit))
	default:
		return int(n)
	}
	return def
}

func compileHeaders(errs *problems, path string, h map[string]string) map[string]*Template {
	out := make(map[string]*Template, len(h))
	text := 0
	for k, v := range h {
		if !headerName.MatchString(k) {
			errs.add(path+"."+k, "not a valid header name")
			continue
		}
		t, err := parseTemplate(v, MaxHeaderValue, "header value")
		if err != nil {
			errs.add(path+"."+k, "%v", err)
			continue
		}
		if n := t.textLen(); n > MaxHeaderValue {
			errs.add(path+"."+k, "%d bytes of text, over the %s header value limit", n, FormatSize(MaxHeaderValue))
		}
		text += len(k) + t.textLen()
		out[http.CanonicalHeaderKey(k)] = t
	}
	if text > MaxHeaderBytes {
		errs.add(path, "%d bytes of text, over the %s header limit", text, FormatSize(MaxHeaderBytes))
	}
	return out
}

func (sc *Scenario) compileLoad(errs *problems, spec *Spec) {
	l := spec.Load
	switch l.Arrivals {
	case "", ArrivalsUniform:
		sc.Arrivals = ArrivalsUniform
	case ArrivalsPoisson:
		sc.Arrivals = ArrivalsPoisson
	default:
		errs.add("load.arrivals", "%q: must be uniform or poisson", l.Arrivals)
	}
	sc.MaxInFlight = DefaultMaxInFlight
	switch {
	case l.MaxInFlight < 0:
		errs.add("load.max_in_flight", "must be > 0")
	case l.MaxInFlight > 1_000_000:
		errs.add("load.max_in_flight", "%d is over the limit of 1000000", l.MaxInFlight)
	case l.MaxInFlight > 0:
		sc.MaxInFlight = l.MaxInFlight
	}
	sc.Seed = l.Seed
	if !(l.MinDelivered >= 0 && l.MinDelivered <= 1) {
		errs.add("load.min_delivered", "%v: must be a share between 0 and 1 (0.95: 95%% of the planned arrivals)", l.MinDelivered)
	} else {
		sc.MinDelivered = l.MinDelivered
	}

	stages := l.Stages
	switch {
	case len(stages) > 0 && (l.Rate != 0 || spec.Duration != 0):
		errs.add("load", "set either load.rate with duration, or load.stages, not both")
		return
	case len(stages) == 0 && l.Rate == 0 && spec.Duration == 0:
		errs.add("load", "required: load.rate with duration, or load.stages")
		return
	case len(stages) == 0:
		if spec.Duration <= 0 {
			errs.add("duration", "required with load.rate, and must be > 0")
		}
		if !(l.Rate > 0) {
			errs.add("load.rate", "must be > 0")
		}
		r := l.Rate
		stages = []StageSpec{{Duration: spec.Duration, Rate: &r}}
	}
	if len(stages) > 1000 {
		errs.add("load.stages", "%d stages, over the limit of 1000", len(stages))
		return
	}
	var segs []Segment
	var at time.Duration
	n0 := len(*errs)
	for i, st := range stages {
		path := fmt.Sprintf("load.stages[%d]", i)
		if len(l.Stages) == 0 {
			path = "load"
		}
		ss, err := stageSegments(path, st, at)
		if err != nil {
			*errs = append(*errs, err...)
			continue
		}
		segs = append(segs, ss...)
		at += st.Duration.D()
	}
	if len(*errs) > n0 {
		return
	}
	if at > MaxDuration {
		errs.add("load.stages", "total duration %s is over the limit of %s", at, MaxDuration)
		return
	}
	sc.Profile = NewProfile(segs)
	if sc.Profile.Total() < 1 {
		errs.add("load", "plans %.3f arrivals in all: nothing to send", sc.Profile.Total())
	}
}

// stageSegments turns one stage into profile segments starting at off.
func stageSegments(path string, st StageSpec, off time.Duration) ([]Segment, []error) {
	var errs problems
	d := st.Duration.D()
	if d <= 0 {
		errs.add(path+".duration", "required, and must be > 0")
	}
	rate := func(name string, v *float64, required bool) float64 {
		if v == nil {
			if required {
				errs.add(path+"."+name, "required")
			}
			return 0
		}
		if *v < 0 || math.IsNaN(*v) || math.IsInf(*v, 0) {
			errs.add(path+"."+name, "must be >= 0")
			return 0
		}
		if *v > MaxRate {
			errs.add(path+"."+name, "%g is over the limit of %d per second", *v, MaxRate)
			return 0
		}
		return *v
	}
	base := rate("rate", st.Rate, true)
	var segs []Segment
	switch st.Shape {
	case "", "constant", "ramp":
		to := base
		if st.To != nil {
			to = rate("to", st.To, false)
		} else if st.Shape == "ramp" {
			errs.add(path+".to", "required for a ramp")
		}
		for _, f := range []struct {
			name string
			v    Duration
		}{{"at", st.At}, {"rise", st.Rise}, {"hold", st.Hold}, {"fall", st.Fall}, {"every", st.Every}, {"for", st.For}} {
			if f.v != 0 {
				errs.add(path+"."+f.name, "only for shape spike or burst")
			}
		}
		segs = []Segment{{Start: off, Dur: d, From: base, To: to}}
	case "spike":
		to := rate("to", st.To, true)
		for _, f := range []struct {
			name string
			v    Duration
		}{{"at", st.At}, {"rise", st.Rise}, {"hold", st.Hold}, {"fall", st.Fall}} {
			if f.v < 0 {
				errs.add(path+"."+f.name, "must be >= 0")
			}
		}
		if st.Hold <= 0 && st.Rise <= 0 && st.Fall <= 0 {
			errs.add(path+".hold", "a spike needs rise, hold or fall > 0")
		}
		if st.At+st.Rise+st.Hold+st.Fall > st.Duration {
			errs.add(path, "at+rise+hold+fall (%s) is longer than duration %s", (st.At + st.Rise + st.Hold + st.Fall).D(), d)
		}
		t := off
		for _, p := range []struct {
			d        time.Duration
			from, to float64
		}{
			{st.At.D(), base, base},
			{st.Rise.D(), base, to},
			{st.Hold.D(), to, to},
			{st.Fall.D(), to, base},
			{d - (st.At + st.Rise + st.Hold + st.Fall).D(), base, base},
		} {
			if p.d > 0 {
				segs = append(segs, Segment{Start: t, Dur: p.d, From: p.from, To: p.to})
				t += p.d
			}
		}
	case "burst":
		to := rate("to", st.To, true)
		if st.Every <= 0 {
			errs.add(path+".every", "required for a burst, and must be > 0")
		}
		if st.For <= 0 || st.For >= st.Every {
			errs.add(path+".for", "must be > 0 and shorter than every")
		}
		if st.Every > 0 && d/st.Every.D() > 10_000 {
			errs.add(path+".every", "too short: over 10000 bursts in the stage")
		}
		if len(errs) == 0 {
			for t := time.Duration(0); t < d; t += st.Every.D() {
				on := min(st.For.D(), d-t)
				segs = append(segs, Segment{Start: off + t, Dur: on, From: to, To: to})
				if off := min(st.Every.D()-st.For.D(), d-t-on); off > 0 {
					segs = append(segs, Segment{Start: segs[len(segs)-1].Start + on, Dur: off, From: base, To: base})
				}
			}
		}
	default:
		errs.add(path+".shape", "%q: must be constant, ramp, spike or burst", st.Shape)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return segs, nil
}

func (sc *Scenario) compileSteps(errs *problems, spec *Spec) {
	switch spec.Flow {
	case "", FlowSequence:
		sc.Flow = FlowSequence
	case FlowWeighted:
		sc.Flow = FlowWeighted
	default:
		errs.add("flow", "%q: must be sequence or weighted", spec.Flow)
	}
	if len(spec.Requests) == 0 {
		errs.add("requests", "required: at least one step")
		return
	}
	if len(spec.Requests) > MaxSteps {
		errs.add("requests", "%d steps, over the limit of %d", len(spec.Requests), MaxSteps)
		return
	}
	seen := map[string]bool{}
	var totalWeight float64
	for i, rs := range spec.Requests {
		path := fmt.Sprintf("requests[%d]", i)
		st := &Step{Name: rs.Name, Method: strings.ToUpper(rs.Method), Timeout: sc.Timeout, Weight: 1}
		switch {
		case rs.Name == "":
			errs.add(path+".name", "required")
		case !stepName.MatchString(rs.Name):
			errs.add(path+".name", "%q: use letters, digits, '.', '_' or '-' (at most 64)", rs.Name)
		case seen[rs.Name]:
			errs.add(path+".name", "%q is used by another step", rs.Name)
		}
		seen[rs.Name] = true
		if st.Method == "" {
			st.Method = http.MethodGet
		} else if !headerName.MatchString(st.Method) {
			errs.add(path+".method", "%q is not an HTTP method", rs.Method)
		}
		switch {
		case rs.Path != "" && rs.URL != "":
			errs.add(path, "set path or url, not both")
		case rs.URL != "":
			if t, err := parseTemplate(rs.URL, MaxURLBytes, "URL"); err != nil {
				errs.add(path+".url", "%v", err)
			} else if t.Static() {
				if err := validTarget(rs.URL); err != nil {
					errs.add(path+".url", "%v", err)
				}
				st.URL = t
			} else {
				st.URL = t
			}
		default:
			p := rs.Path
			if p == "" {
				p = "/"
			}
			if !strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "{{") {
				errs.add(path+".path", "%q must start with /", p)
			}
			if sc.Target != nil {
				t, err := parseTemplate(sc.Target.String()+p, MaxURLBytes, "URL")
				if err != nil {
					errs.add(path+".path", "%v", err)
				}
				st.URL = t
			}
		}
		if st.URL != nil && st.URL.textLen() > MaxURLBytes {
			field := ".path"
			if rs.URL != "" {
				field = ".url"
			}
			errs.add(path+field, "%d bytes of text, over the %s URL limit", st.URL.textLen(), FormatSize(MaxURLBytes))
		}
		st.Headers = compileHeaders(errs, path+".headers", rs.Headers)
		st.Redirects = compileRedirects(errs, path+".redirects", rs.Redirects, sc.Redirects)
		st.Think = compileThink(errs, path+".think", rs.Think)
		if rs.Think != nil && spec.Flow == FlowWeighted {
			errs.add(path+".think", "a pause between steps needs flow: sequence (a weighted flow sends one step per arrival)")
		}
		st.MaxBody = compileMaxBody(errs, path+".max_body", rs.MaxBody, sc.MaxBody)
		if rs.Body != "" {
			t, err := parseTemplate(rs.Body, st.MaxBody, "body")
			if err != nil {
				errs.add(path+".body", "%v", err)
			} else if t.textLen() > st.MaxBody {
				errs.add(path+".body", "%d bytes of text, over the %s body limit (max_body)", t.textLen(), FormatSize(int64(st.MaxBody)))
			}
			st.Body = t
		}
		if rs.Weight != nil {
			if !(*rs.Weight >= 0) || math.IsInf(*rs.Weight, 0) {
				errs.add(path+".weight", "must be >= 0")
			} else if sc.Flow != FlowWeighted {
				errs.add(path+".weight", "only for flow: weighted")
			}
			st.Weight = *rs.Weight
		}
		totalWeight += st.Weight
		if rs.Timeout < 0 {
			errs.add(path+".timeout", "must be > 0")
		} else if rs.Timeout > 0 {
			st.Timeout = rs.Timeout.D()
		}
		for j, c := range rs.Check {
			p, err := compileExpr(c, ResponseEnv{}, expr.AsBool())
			if err != nil {
				errs.add(fmt.Sprintf("%s.check[%d]", path, j), "%v", err)
				continue
			}
			st.Checks = append(st.Checks, &Check{Src: c, prog: p})
			st.noteUses(p)
		}
		names := make([]string, 0, len(rs.Extract))
		for k := range rs.Extract {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			src := rs.Extract[k]
			if !varName.MatchString(k) {
				errs.add(path+".extract."+k, "name must be letters, digits and _, starting with a letter")
				continue
			}
			p, err := compileExpr(src, ResponseEnv{})
			if err != nil {
				errs.add(path+".extract."+k, "%v", err)
				continue
			}
			st.Extract = append(st.Extract, Extract{Name: k, Src: src, prog: p})
			st.noteUses(p)
			sc.hasExtract = true
		}
		if st.URL != nil && st.URL.Static() {
			u, err := url.Parse(st.URL.String())
			if err != nil || u.Host == "" {
				errs.add(path+".path", "%q does not make a valid URL", st.URL.String())
			}
			st.staticURL = u
		}
		sc.Steps = append(sc.Steps, st)
	}
	if sc.Flow == FlowWeighted && !(totalWeight > 0) {
		errs.add("requests", "weights add up to 0: no step can be picked")
	}
	if sc.Flow == FlowWeighted && sc.hasExtract {
		errs.add("requests", "extract needs flow: sequence (a weighted flow runs one step per arrival)")
	}
}

func compileDistribution(errs *problems, d DistributionSpec) *Distribution {
	out := &Distribution{Spec: d}
	if d.Select != "" {
		p, err := compileExpr(d.Select, DistEnv{}, expr.AsBool())
		if err != nil {
			errs.add("distribution.select", "%v", err)
		}
		out.selectP = p
	}
	if d.Weight != "" {
		p, err := compileExpr(d.Weight, DistEnv{}, expr.AsFloat64())
		if err != nil {
			errs.add("distribution.weight", "%v", err)
		}
		out.weightP = p
	}
	if len(d.Regions) > 0 {
		var sum float64
		for r, s := range d.Regions {
			if r == "" {
				errs.add("distribution.regions", "region name is empty")
			}
			if !(s > 0) || s > 1 {
				errs.add("distribution.regions."+r, "share %g: must be > 0 and <= 1", s)
			}
			sum += s
		}
		if math.Abs(sum-1) > 1e-6 {
			errs.add("distribution.regions", "shares add up to %g, not 1", sum)
		}
	}
	return out
}

func (st *Step) noteUses(p *vm.Program) {
	st.needBody = st.needBody || uses(p, "body")
	st.needJSON = st.needJSON || uses(p, "json")
	st.needHeaders = st.needHeaders || uses(p, "headers")
}

// resolveObserve makes an observe source written as a path ("/metrics")
// relative to the test's target, so that the file follows `swarm run
// --target` to another system. Anything else is left for observe's
// checks.
func resolveObserve(o observe.Spec, target string) observe.Spec {
	base, err := url.Parse(target)
	if err != nil || base.Host == "" {
		return o
	}
	o.Sources = slices.Clone(o.Sources)
	for i := range o.Sources {
		for _, f := range []*string{&o.Sources[i].Scrape, &o.Sources[i].Prometheus} {
			if strings.HasPrefix(*f, "/") && !strings.HasPrefix(*f, "//") {
				u := *base
				ref, err := url.Parse(*f)
				if err != nil {
					continue
				}
				u.Path, u.RawPath, u.RawQuery, u.Fragment = ref.Path, ref.RawPath, ref.RawQuery, ""
				*f = u.String()
			}
		}
	}
	return o
}
