package node

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/loadswarm/loadswarm/scenarios"
)

// Policy is what this node's operator lets tests do with the node. A node
// checks it before it generates a single request, declines a test that
// breaks it (the submitter sees who declined and why), and enforces the
// target allow-list again on every connection it opens.
type Policy struct {
	// TrustSubmitters are the nodes (names or peer ids) whose tests this
	// node runs. Submissions are authenticated: the announcement is signed
	// by the submitting node's key. Default: empty, any member of the
	// fleet. --trust, SWARM_TRUST.
	TrustSubmitters []string `yaml:"trust"`
	// AllowTargets are the hosts this node may send requests to, as
	// patterns matched against the target's host name or IP ("*.example.com",
	// "10.1.2.*", "127.0.0.1"). Default: empty, any host.
	// --allow-target, SWARM_ALLOW_TARGETS.
	AllowTargets []string `yaml:"allow_targets"`
	// MaxDuration is the longest test this node takes part in. Default 0:
	// no limit (the scenario limit of 24h still applies). --max-duration.
	MaxDuration time.Duration `yaml:"max_duration"`
}

// Validate reports every bad pattern.
func (p Policy) Validate() error {
	var errs []error
	for _, pat := range p.AllowTargets {
		if _, err := path.Match(pat, "x"); err != nil || pat == "" {
			errs = append(errs, fmt.Errorf("allow-target %q: not a valid pattern", pat))
		}
	}
	for _, s := range p.TrustSubmitters {
		if strings.TrimSpace(s) == "" {
			errs = append(errs, errors.New("trust: empty submitter"))
		}
	}
	if p.MaxDuration < 0 {
		errs = append(errs, fmt.Errorf("max duration %s: must be >= 0", p.MaxDuration))
	}
	return errors.Join(errs...)
}

// AllowHost says whether a host may be sent requests.
func (p Policy) AllowHost(host string) error {
	if len(p.AllowTargets) == 0 {
		return nil
	}
	h := strings.ToLower(strings.Trim(host, "[]"))
	for _, pat := range p.AllowTargets {
		if ok, _ := path.Match(strings.ToLower(pat), h); ok {
			return nil
		}
	}
	return fmt.Errorf("target host %q is not in this node's allow-list %v", host, p.AllowTargets)
}

// Check says why this node declines a test, or nil when it takes part.
// submitter is the announcing node's name and peer id (authenticated).
func (p Policy) Check(sc *scenarios.Scenario, submitterName, submitterPeer string) error {
	if len(p.TrustSubmitters) > 0 && !slices.Contains(p.TrustSubmitters, submitterName) && !slices.Contains(p.TrustSubmitters, submitterPeer) {
		return fmt.Errorf("submitter %s is not trusted by this node", submitterName)
	}
	if p.MaxDuration > 0 && sc.Profile.Duration() > p.MaxDuration {
		return fmt.Errorf("test lasts %s, over this node's limit of %s", sc.Profile.Duration(), p.MaxDuration)
	}
	if len(p.AllowTargets) == 0 {
		return nil
	}
	if err := p.AllowHost(sc.Target.Hostname()); err != nil {
		return err
	}
	for _, st := range sc.Steps {
		src := st.URL.String()
		if !st.URL.Static() {
			// A template may build any host; only a literal scheme and
			// host before the first hole can be checked.
			i := strings.Index(src, "{{")
			u, err := url.Parse(src[:i])
			if err != nil || u.Host == "" || !strings.Contains(src[:i], u.Host+"/") {
				return fmt.Errorf("step %s builds its host from a template: cannot check it against this node's allow-list", st.Name)
			}
			src = src[:i]
		}
		u, err := url.Parse(src)
		if err != nil {
			return fmt.Errorf("step %s: %v", st.Name, err)
		}
		if err := p.AllowHost(u.Hostname()); err != nil {
			return fmt.Errorf("step %s: %w", st.Name, err)
		}
	}
	return nil
}

// allowDial wraps the host check for the executor's transport.
func (p Policy) allowDial(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	return p.AllowHost(host)
}
