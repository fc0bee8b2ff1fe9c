package observe

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// Limits of the observe: section. They keep a test file from turning the
// scheduler into a heavy scraper, and bound every parse.
const (
	DefaultEvery = time.Second
	MinEvery     = 250 * time.Millisecond
	MaxEvery     = 60 * time.Second
	MaxSources   = 32
	MaxNameLen   = 64
	MaxURLLen    = 2048
	MaxExprLen   = 4096 // select and query
)

// Source kinds.
const (
	KindScrape = "scrape"
	KindQuery  = "query"
)

// Spec is the observe: section as written.
type Spec struct {
	Every   string       `yaml:"every" json:"every,omitempty"`
	Sources []SourceSpec `yaml:"sources" json:"sources,omitempty"`
}

// SourceSpec is one source as written: exactly one of Scrape (with Select)
// or Prometheus (with Query).
type SourceSpec struct {
	Name       string `yaml:"name" json:"name"`
	Scrape     string `yaml:"scrape" json:"scrape,omitempty"`
	Select     string `yaml:"select" json:"select,omitempty"`
	Prometheus string `yaml:"prometheus" json:"prometheus,omitempty"`
	Query      string `yaml:"query" json:"query,omitempty"`
}

// Config is a validated observe: section.
type Config struct {
	Every   time.Duration
	Sources []Source
}

// Source is one validated source.
type Source struct {
	Name   string
	Kind   string   // KindScrape or KindQuery
	URL    *url.URL // the scrape URL, or the Prometheus base URL
	Select string   // scrape only
	Query  string   // query only

	// matchers is Select compiled once, so a round only matches labels.
	matchers []*labels.Matcher
}

// IsZero reports whether the section is absent.
func (s Spec) IsZero() bool { return s.Every == "" && len(s.Sources) == 0 }

var nameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// promParser is the PromQL parser used for select and query. Experimental
// functions are accepted because a server may enable them; if it does not,
// the query fails there and each round records a Gap with its error.
var promParser = parser.NewParser(parser.Options{EnableExperimentalFunctions: true})

type errList []error

func (l *errList) add(path, format string, args ...any) {
	*l = append(*l, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
}

// Compile validates the section and returns its compiled form; nil, nil
// for an absent section. All problems are reported at once, each with its
// field path.
func (s Spec) Compile() (*Config, error) {
	if s.IsZero() {
		return nil, nil
	}
	var errs errList
	cfg := &Config{Every: DefaultEvery}
	if s.Every != "" {
		if d, ok := parseEvery(&errs, s.Every); ok {
			cfg.Every = d
		}
	}
	switch n := len(s.Sources); {
	case n == 0:
		errs.add("observe.sources", "at least one source is required")
	case n > MaxSources:
		errs.add("observe.sources", "%d sources, at most %d", n, MaxSources)
	}
	srcs := s.Sources
	if len(srcs) > MaxSources {
		// The section is rejected anyway; do not parse an unbounded list.
		srcs = srcs[:MaxSources]
	}
	seen := make(map[string]int, len(srcs))
	for i, ss := range srcs {
		p := fmt.Sprintf("observe.sources[%d]", i)
		if j, dup := seen[ss.Name]; dup && ss.Name != "" {
			errs.add(p+".name", "duplicate name %q (also observe.sources[%d])", clipForError(ss.Name), j)
		} else {
			seen[ss.Name] = i
		}
		if src, ok := compileSource(&errs, p, ss); ok {
			cfg.Sources = append(cfg.Sources, src)
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return cfg, nil
}

func parseEvery(errs *errList, s string) (time.Duration, bool) {
	const p = "observe.every"
	d, err := time.ParseDuration(s)
	switch {
	case err != nil:
		errs.add(p, "bad duration %q (want e.g. 1s or 500ms)", clipForError(s))
	case d < MinEvery:
		errs.add(p, "%s is below the minimum %s", d, MinEvery)
	case d > MaxEvery:
		errs.add(p, "%s is above the maximum 60s", d)
	default:
		return d, true
	}
	return 0, false
}

func compileSource(errs *errList, p string, ss SourceSpec) (Source, bool) {
	n := len(*errs)
	src := Source{Name: ss.Name}
	switch {
	case ss.Name == "":
		errs.add(p+".name", "required")
	case len(ss.Name) > MaxNameLen:
		errs.add(p+".name", "%d bytes, at most %d", len(ss.Name), MaxNameLen)
	case !nameRE.MatchString(ss.Name):
		errs.add(p+".name", "%q is not a valid name (want [a-zA-Z_][a-zA-Z0-9_]*)", clipForError(ss.Name))
	}
	switch {
	case ss.Scrape != "" && ss.Prometheus != "":
		errs.add(p, "both scrape and prometheus are set (want exactly one)")
	case ss.Scrape != "":
		src.Kind = KindScrape
		src.URL = checkURL(errs, p+".scrape", ss.Scrape, false)
		if ss.Query != "" {
			errs.add(p+".query", "only for prometheus sources (a scrape source filters with select)")
		}
		switch {
		case ss.Select == "":
			errs.add(p+".select", "required with scrape")
		case len(ss.Select) > MaxExprLen:
			errs.add(p+".select", "%d bytes, at most %d", len(ss.Select), MaxExprLen)
		default:
			ms, err := compileSelect(ss.Select)
			if err != nil {
				errs.add(p+".select", "%v", err)
			}
			src.Select, src.matchers = ss.Select, ms
		}
	case ss.Prometheus != "":
		src.Kind = KindQuery
		src.URL = checkURL(errs, p+".prometheus", ss.Prometheus, true)
		if ss.Select != "" {
			errs.add(p+".select", "only for scrape sources (a prometheus source uses query)")
		}
		switch {
		case ss.Query == "":
			errs.add(p+".query", "required with prometheus")
		case len(ss.Query) > MaxExprLen:
			errs.add(p+".query", "%d bytes, at most %d", len(ss.Query), MaxExprLen)
		default:
			if err := checkQuery(ss.Query); err != nil {
				errs.add(p+".query", "%v", err)
			}
			src.Query = ss.Query
		}
	default:
		errs.add(p, "neither scrape nor prometheus is set (want exactly one)")
	}
	return src, len(*errs) == n
}

// checkURL returns the parsed URL, or nil after adding an error. A base URL
// (for the Prometheus API) must not carry a query or fragment, since the
// API path is appended to it.
func checkURL(errs *errList, p, raw string, base bool) *url.URL {
	if len(raw) > MaxURLLen {
		errs.add(p, "%d bytes, at most %d", len(raw), MaxURLLen)
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		errs.add(p, "bad URL: %v", err)
		return nil
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		if u.Scheme == "" {
			errs.add(p, "no scheme (want http:// or https://)")
		} else {
			errs.add(p, "unknown scheme %q (want http or https)", clipForError(u.Scheme))
		}
		return nil
	}
	if u.Hostname() == "" {
		errs.add(p, "no host")
		return nil
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			errs.add(p, "bad port %q", clipForError(port))
			return nil
		}
	}
	if base && (u.RawQuery != "" || u.Fragment != "") {
		errs.add(p, "a Prometheus base URL takes no query or fragment")
		return nil
	}
	return u
}

// compileSelect parses a series selector into label matchers. Like
// Prometheus, it refuses a selector that every series matches ({} or
// {job=~".*"}): summing a whole endpoint is never what was meant.
func compileSelect(s string) ([]*labels.Matcher, error) {
	ms, err := promParser.ParseMetricSelector(s)
	if err != nil {
		return nil, fmt.Errorf("bad selector: %v", oneLine(err.Error()))
	}
	for _, m := range ms {
		if !m.Matches("") {
			return ms, nil
		}
	}
	return nil, errors.New("bad selector: needs at least one matcher that does not match the empty string (e.g. a metric name)")
}

// checkQuery parses a PromQL query. An instant query of a range vector or a
// string yields no value to plot, so those are refused here rather than
// recorded as a Gap every round.
func checkQuery(q string) error {
	expr, err := promParser.ParseExpr(q)
	if err != nil {
		return fmt.Errorf("bad PromQL: %v", oneLine(err.Error()))
	}
	switch t := expr.Type(); t {
	case parser.ValueTypeVector, parser.ValueTypeScalar:
		return nil
	case parser.ValueTypeMatrix:
		return errors.New("returns a range vector; want an instant vector or a scalar (e.g. wrap it in rate() or last_over_time())")
	default:
		return fmt.Errorf("returns a %s; want an instant vector or a scalar", t)
	}
}

// URLs lists every URL the sampler will contact: the scrape URLs and, for
// query sources, the Prometheus query endpoint. The node checks them
// against its target allow-list before it accepts the test. The URLs are
// copies.
func (c *Config) URLs() []*url.URL {
	if c == nil {
		return nil
	}
	out := make([]*url.URL, 0, len(c.Sources))
	for _, s := range c.Sources {
		if s.URL == nil {
			continue
		}
		u := *s.URL
		if u.User != nil {
			user := *u.User
			u.User = &user
		}
		if s.Kind == KindQuery {
			u.Path = queryPath(u.Path)
			u.RawPath = ""
		}
		out = append(out, &u)
	}
	return out
}

// queryPath is the path of the instant-query endpoint under a base path,
// joined the way the client_golang API client joins it.
func queryPath(base string) string {
	return path.Join(strings.TrimRight(base, "/"), "/api/v1/query")
}

// oneLine keeps an error on one line: a multi-line query can put a
// newline in the parser's message.
func oneLine(s string) string {
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(s)
}

// clipForError keeps echoed user input short in error messages.
func clipForError(s string) string {
	return clip(s, 80)
}
