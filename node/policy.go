package node

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/loadswarm/loadswarm/scenarios"
)

// Policy is what this node's operator lets tests do with the node. A node
// checks it before it generates a single request, declines a test that
// breaks it (the submitter sees who declined and why), and checks targets
// again on every address it dials.
type Policy struct {
	// TrustSubmitters are the nodes whose tests this node runs, by peer id
	// (the key that signs the test: the identity) or by name (the name
	// that membership gives the signing key; names are unique among live
	// members, but a name whose node is gone can be taken by another, so
	// peer ids are the safer choice). Default: empty, any member of the
	// fleet. --trust, SWARM_TRUST.
	TrustSubmitters []string `yaml:"trust"`
	// AllowTargets are the hosts this node may send requests to: exact host
	// names ("api.staging.example"), domain suffixes (".example.com" or
	// "*.example.com"), IPs ("10.1.2.3") or CIDRs ("10.1.2.0/24"); every
	// address a name resolves to is checked again at each dial. Default:
	// empty, any host but loopback, link-local (cloud metadata) and this
	// node's own addresses, which are refused unless an IP or CIDR entry
	// names them (the testnet allows 127.0.0.0/8). --allow-target,
	// SWARM_ALLOW_TARGETS.
	AllowTargets []string `yaml:"allow_targets"`
	// MaxDuration is the longest test this node takes part in. Default 0:
	// no limit (the scenario limit of 24h still applies). --max-duration.
	MaxDuration time.Duration `yaml:"max_duration"`
}

// Validate reports every bad entry.
func (p Policy) Validate() error {
	var errs []error
	if _, err := scenarios.ParseTargetPolicy(p.AllowTargets, scenarios.Own{}); err != nil {
		errs = append(errs, err)
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

// Check says why this node declines a test, or nil when its submitter and
// length are fine (targets are the TargetPolicy's). signer is the peer id
// that signed the test; nameOf gives the name membership knows it by.
func (p Policy) Check(sc *scenarios.Scenario, signer string, nameOf func(peerID string) string) error {
	if len(p.TrustSubmitters) > 0 && !slices.Contains(p.TrustSubmitters, signer) {
		name := nameOf(signer)
		if name == "" || !slices.Contains(p.TrustSubmitters, name) {
			who := signer
			if name != "" {
				who = fmt.Sprintf("%s (%s)", name, signer)
			}
			return fmt.Errorf("submitter %s is not trusted by this node", who)
		}
	}
	if p.MaxDuration > 0 && sc.Profile.Duration() > p.MaxDuration {
		return fmt.Errorf("test lasts %s, over this node's limit of %s", sc.Profile.Duration(), p.MaxDuration)
	}
	return nil
}

// targetPolicy builds the node's target policy from its allow-list and its
// own addresses and listeners: its interfaces' IPs, and its API, gossip and
// p2p endpoints, so that no test can aim at the node itself.
func (n *Node) targetPolicy() (*scenarios.TargetPolicy, error) {
	var own scenarios.Own
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				own.IPs = append(own.IPs, ipn.IP)
			}
		}
	}
	own.Endpoints = append(own.Endpoints, n.APIAddr(), n.sw.GossipAddr())
	for _, a := range n.sw.P2PAddrs() {
		// "/ip4/127.0.0.2/tcp/7947" -> 127.0.0.2:7947
		f := strings.Split(a, "/")
		if len(f) >= 5 && (f[1] == "ip4" || f[1] == "ip6") && f[3] == "tcp" {
			own.Endpoints = append(own.Endpoints, net.JoinHostPort(f[2], f[4]))
		}
	}
	return scenarios.ParseTargetPolicy(n.cfg.Policy.AllowTargets, own)
}
