package scenarios

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// TargetPolicy says which hosts a node may send requests to: its
// operator's allow-list (--allow-target) on top of defaults that keep a
// test from turning the node on itself or its cloud. It is checked twice:
// on names when a test is validated (CheckHost, CheckURL, CheckScenario),
// and on every resolved address before each connection (CheckDial, which
// the transport calls with the address it then dials, so that DNS cannot
// answer one address to the check and another to the dial).
//
// Defaults, with or without an allow-list:
//   - loopback (127.0.0.0/8, ::1, and the names localhost and *.localhost),
//     link-local (169.254.0.0/16, fe80::/10), cloud metadata addresses
//     (169.254.169.254, fd00:ec2::254, 100.100.100.200), unspecified
//     (0.0.0.0/8, ::), broadcast, multicast, the NAT64 forms of all
//     these (64:ff9b::/96) and the node's own addresses are refused
//     unless an IP or CIDR entry names them. An entry broader
//     than the refused range does not count (0.0.0.0/0 does not allow
//     loopback, 169.254.0.0/16 does not allow the metadata address): the
//     operator must mean it. The node's own addresses are allowed by any
//     entry that covers them.
//   - the node's own endpoints (its API, gossip and p2p listeners) are
//     refused always, whatever the entries say.
//   - private ranges (10/8, 172.16/12, 192.168/16, fc00::/7) are allowed
//     unless an allow-list says otherwise.
//
// With a non-empty allow-list, a request may go to a name only if the name
// matches a name entry, or every address it resolves to is covered by an
// IP or CIDR entry; to an IP address only if an IP or CIDR entry covers
// it. A name entry never allows a default-refused address: a name that
// resolves to 127.0.0.1 or 169.254.169.254 (DNS rebinding) is refused at
// the dial.
//
// A nil *TargetPolicy allows everything: a local run from the CLI against
// localhost. A TargetPolicy is read-only after ParseTargetPolicy and safe
// for concurrent use.
type TargetPolicy struct {
	names    map[string]bool // exact host names, lower case, no final dot
	suffixes []string        // ".example.com": names ending with it
	nets     []netip.Prefix  // IP (as /32, /128) and CIDR entries
	entries  []string        // as given, for messages
	ownIPs   []netip.Addr
	ownEPs   map[netip.AddrPort]bool
	ownPorts map[uint16]bool // listeners on every address (0.0.0.0:port, :port)
}

// Own describes the node itself: what a test must not make it hit.
type Own struct {
	// IPs are the node's addresses: those of its interfaces and those it
	// advertises. Default-refused unless an entry covers them.
	IPs []net.IP
	// Endpoints are host:port of the node's listeners (API, gossip,
	// p2p). Refused always. A host of 0.0.0.0, :: or "" (every address)
	// refuses the port on loopback, unspecified and own addresses;
	// "localhost" the port on loopback.
	Endpoints []string
}

// ErrPolicy is the error class of a request that a TargetPolicy refused:
// nothing was sent.
const ErrPolicy = "policy"

// TargetError is a target refused by a TargetPolicy. Transports return it
// from the dial, so it fails the request with class ErrPolicy.
type TargetError struct {
	Target string // "169.254.169.254:80", or "api.example:443 at 127.0.0.1"
	Why    string // the rule, and how to allow it when that is possible
}

func (e *TargetError) Error() string { return "target " + e.Target + ": " + e.Why }

// refusedRange is a default-refused range of addresses.
type refusedRange struct {
	p    netip.Prefix
	what string
}

// refusedRanges are checked in order; the first match names the reason.
var refusedRanges = func() []refusedRange {
	var out []refusedRange
	for _, r := range []struct{ cidr, what string }{
		{"169.254.169.254/32", "link-local address (cloud metadata)"},
		{"fd00:ec2::254/128", "cloud metadata address"},
		{"100.100.100.200/32", "cloud metadata address"},
		{"127.0.0.0/8", "loopback address"},
		{"::1/128", "loopback address"},
		{"169.254.0.0/16", "link-local address"},
		{"fe80::/10", "link-local address"},
		{"0.0.0.0/8", "unspecified address"},
		{"::/128", "unspecified address"},
		{"255.255.255.255/32", "broadcast address"},
		{"224.0.0.0/4", "multicast address"},
		{"ff00::/8", "multicast address"},
	} {
		out = append(out, refusedRange{netip.MustParsePrefix(r.cidr), r.what})
	}
	return out
}()

// nat64 holds IPv6 addresses that stand for IPv4 ones through a NAT64
// gateway: the embedded address is judged too.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// ParseTargetPolicy builds a policy from allow-list entries and what the
// node is. An entry is an exact host name ("api.staging.example"), a
// domain suffix (".example.com", or "*.example.com": any name ending in
// ".example.com"), an IP address ("10.1.2.3", "::1") or a CIDR
// ("10.1.2.0/24"). Every bad entry is reported at once.
func ParseTargetPolicy(entries []string, own Own) (*TargetPolicy, error) {
	p := &TargetPolicy{names: map[string]bool{}, ownEPs: map[netip.AddrPort]bool{}, ownPorts: map[uint16]bool{}}
	var errs []error
	for _, e := range entries {
		if err := p.addEntry(e); err != nil {
			errs = append(errs, fmt.Errorf("allow-target %q: %w", e, err))
			continue
		}
		p.entries = append(p.entries, strings.TrimSpace(e))
	}
	for _, ip := range own.IPs {
		if a, ok := addrOf(ip); ok {
			p.ownIPs = append(p.ownIPs, a)
		}
	}
	for _, ep := range own.Endpoints {
		if err := p.addOwnEndpoint(ep); err != nil {
			errs = append(errs, fmt.Errorf("own endpoint %q: %w", ep, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *TargetPolicy) addEntry(raw string) error {
	e := strings.ToLower(strings.TrimSpace(raw))
	switch {
	case e == "":
		return errors.New("empty entry")
	case strings.Contains(e, "://"):
		return errors.New("write a host name, an IP address or a CIDR, not a URL")
	case strings.Contains(e, "/"):
		pf, err := netip.ParsePrefix(e)
		if err != nil {
			return errors.New("not a CIDR (like 10.1.2.0/24)")
		}
		p.nets = append(p.nets, normPrefix(pf))
		return nil
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(e, "["), "]")); err == nil {
		if a.Zone() != "" {
			return errors.New("an address with a zone cannot be allowed")
		}
		a = a.Unmap()
		p.nets = append(p.nets, netip.PrefixFrom(a, a.BitLen()))
		return nil
	}
	if strings.Contains(e, "*") {
		if cidr, ok := wildcardCIDR(e); ok {
			return fmt.Errorf("wildcards do not match IP addresses: use a CIDR, like %s", cidr)
		}
		rest, ok := strings.CutPrefix(e, "*.")
		if !ok || strings.Contains(rest, "*") {
			return errors.New("a wildcard is only allowed as a leading \"*.\" (like *.example.com); with no allow-list every host is allowed")
		}
		e = "." + rest
	}
	name := strings.TrimSuffix(e, ".")
	if isLocalhost(strings.TrimPrefix(name, ".")) {
		return errors.New("loopback is allowed by address: use --allow-target 127.0.0.1 (or ::1, or 127.0.0.0/8)")
	}
	if strings.HasPrefix(name, ".") {
		if err := checkHostName(name[1:]); err != nil {
			return err
		}
		p.suffixes = append(p.suffixes, name)
		return nil
	}
	if err := checkHostName(name); err != nil {
		return err
	}
	p.names[name] = true
	return nil
}

// wildcardCIDR recognizes an IP pattern like "10.1.2.*" (numbers and
// stars, at least one number) and returns the CIDR to use instead: the
// one that means the same when the stars are at the end, else the /8 of
// its first number.
func wildcardCIDR(e string) (string, bool) {
	parts := strings.Split(e, ".")
	if len(parts) < 2 || len(parts) > 4 {
		return "", false
	}
	var b [4]byte
	bits, wild, tail := 0, false, true
	for i, s := range parts {
		if s == "*" {
			wild = true
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 255 {
			return "", false
		}
		if wild {
			tail = false
		} else {
			b[i] = byte(n)
			bits += 8
		}
	}
	if !wild || bits == 0 {
		return "", false
	}
	if !tail {
		b, bits = [4]byte{b[0]}, 8
	}
	return netip.PrefixFrom(netip.AddrFrom4(b), bits).String(), true
}

// checkHostName accepts a DNS name: labels of letters, digits, '-' and
// '_' of at most 63 bytes, at most 253 in all, and a last label that is
// not a number (that would be an IP address written some other way).
func checkHostName(s string) error {
	if s == "" || len(s) > 253 {
		return errors.New("not a host name")
	}
	labels := strings.Split(s, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return errors.New("not a host name, an IP address or a CIDR")
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return errors.New("not a host name, an IP address or a CIDR (entries have no scheme, port or path)")
			}
		}
	}
	if _, err := strconv.ParseUint(labels[len(labels)-1], 0, 64); err == nil {
		return errors.New("ends in a number: write an IP address or a CIDR")
	}
	return nil
}

func (p *TargetPolicy) addOwnEndpoint(ep string) error {
	host, port, err := net.SplitHostPort(ep)
	if err != nil {
		return err
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return errors.New("needs a port from 1 to 65535")
	}
	switch a, err := netip.ParseAddr(host); {
	case host == "" || err == nil && a.IsUnspecified():
		p.ownPorts[uint16(n)] = true
	case strings.EqualFold(host, "localhost"):
		for _, l := range []string{"127.0.0.1", "::1"} {
			p.ownEPs[netip.AddrPortFrom(netip.MustParseAddr(l), uint16(n))] = true
		}
	case err != nil:
		return errors.New("host must be an IP address (or empty, or localhost)")
	default:
		p.ownEPs[netip.AddrPortFrom(a.WithZone("").Unmap(), uint16(n))] = true
	}
	return nil
}

// normPrefix writes v4-in-v6 prefixes as v4 and masks host bits.
func normPrefix(p netip.Prefix) netip.Prefix {
	a := p.Addr().WithZone("")
	if a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96).Masked()
	}
	return netip.PrefixFrom(a, p.Bits()).Masked()
}

// addrOf converts a net.IP, unmapping v4-in-v6.
func addrOf(ip net.IP) (netip.Addr, bool) {
	a, ok := netip.AddrFromSlice(ip)
	return a.Unmap(), ok
}

// normHost lower-cases a host, drops URL brackets and a final dot.
func normHost(host string) string {
	h := strings.ToLower(strings.TrimSpace(host))
	h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	return strings.TrimSuffix(h, ".")
}

// parseHostAddr reads an IP literal host, without its zone.
func parseHostAddr(h string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(h)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.WithZone("").Unmap(), true
}

// isLocalhost reports names that resolve to loopback by convention
// (RFC 6761).
func isLocalhost(name string) bool {
	return name == "localhost" || strings.HasSuffix(name, ".localhost")
}

func (p *TargetPolicy) matchName(name string) bool {
	if p.names[name] {
		return true
	}
	for _, s := range p.suffixes {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	return false
}

// covered reports whether an IP or CIDR entry at least minBits long covers
// a.
func (p *TargetPolicy) covered(a netip.Addr, minBits int) bool {
	for _, n := range p.nets {
		if n.Bits() >= minBits && n.Contains(a) {
			return true
		}
	}
	return false
}

// refused says why a is refused by default, or "": the ranges and the
// node's own addresses, unless an entry names them.
func (p *TargetPolicy) refused(a netip.Addr) (why string) {
	for _, r := range refusedRanges {
		if r.p.Contains(a) && !p.covered(a, r.p.Bits()) {
			return r.what
		}
	}
	if nat64.Contains(a) && !p.covered(a, 128) {
		b := a.As16()
		if why := p.refused(netip.AddrFrom4([4]byte(b[12:]))); why != "" {
			return "NAT64 address of a " + why
		}
	}
	for _, o := range p.ownIPs {
		if o == a && !p.covered(a, 0) {
			return "this node's own address"
		}
	}
	return ""
}

// allowHint is the way to allow an address, for messages.
func allowHint(a netip.Addr) string {
	return ": allow it explicitly with --allow-target " + a.String()
}

// CheckHost says whether host (a name or an IP literal, as in a URL) may
// be a target, as far as can be told before resolving it: an IP literal is
// judged fully (but for the port: see CheckURL), a name by the name rules,
// and a name that only its addresses can judge passes here and is judged
// at the dial.
func (p *TargetPolicy) CheckHost(host string) error {
	if p == nil {
		return nil
	}
	h := normHost(host)
	if h == "" {
		return &TargetError{Target: `""`, Why: "no host"}
	}
	if a, ok := parseHostAddr(h); ok {
		return p.checkAddr(h, a, -1, true)
	}
	if isLocalhost(h) {
		if lo := netip.MustParseAddr("127.0.0.1"); p.refused(lo) != "" {
			return &TargetError{Target: h, Why: "loopback name refused" + allowHint(lo)}
		}
		return nil
	}
	if len(p.entries) == 0 || p.matchName(h) || len(p.nets) > 0 {
		return nil
	}
	return &TargetError{Target: h, Why: p.notListed(h)}
}

func (p *TargetPolicy) notListed(what string) string {
	const show = 5
	list := strings.Join(p.entries[:min(len(p.entries), show)], ", ")
	if len(p.entries) > show {
		list += ", ..."
	}
	return fmt.Sprintf("not in this node's allow-list (%s): allow it with --allow-target %s", list, what)
}

// CheckDial says whether a connection to ip:port may be opened for host
// (the name the request was for, or the same IP literal). The transport
// calls it for every address a name resolves to before it dials any.
func (p *TargetPolicy) CheckDial(host string, ip net.IP, port int) error {
	if p == nil {
		return nil
	}
	a, ok := addrOf(ip)
	if !ok {
		return &TargetError{Target: host, Why: "no address to dial"}
	}
	h := normHost(host)
	_, literal := parseHostAddr(h)
	return p.checkAddr(h, a, port, literal)
}

// checkAddr judges address a of host (port -1: unknown yet).
func (p *TargetPolicy) checkAddr(h string, a netip.Addr, port int, literal bool) error {
	target := a.String()
	if port >= 0 {
		target = net.JoinHostPort(target, strconv.Itoa(port))
	}
	if !literal {
		target = h + " at " + target
		if port >= 0 {
			target = net.JoinHostPort(h, strconv.Itoa(port)) + " at " + a.String()
		}
	}
	if port > 0 && port <= 65535 {
		ap := netip.AddrPortFrom(a, uint16(port))
		if p.ownEPs[ap] || p.ownPorts[uint16(port)] && (a.IsLoopback() || a.IsUnspecified() || p.isOwnIP(a)) {
			return &TargetError{Target: target, Why: "this node's own endpoint (its API, gossip or p2p listener) refused"}
		}
	}
	if why := p.refused(a); why != "" {
		return &TargetError{Target: target, Why: why + " refused" + allowHint(a)}
	}
	if len(p.entries) == 0 {
		return nil
	}
	if !literal && p.matchName(h) || p.covered(a, 0) {
		return nil
	}
	what := a.String()
	if !literal {
		what = h
	}
	return &TargetError{Target: target, Why: p.notListed(what)}
}

func (p *TargetPolicy) isOwnIP(a netip.Addr) bool {
	for _, o := range p.ownIPs {
		if o == a {
			return true
		}
	}
	return false
}

// CheckURL checks a request URL's host, and its port when the host is an
// IP literal (a name's port is checked at the dial, on its addresses).
func (p *TargetPolicy) CheckURL(u *url.URL) error {
	if p == nil {
		return nil
	}
	h := u.Hostname()
	a, ok := parseHostAddr(normHost(h))
	if !ok {
		return p.CheckHost(h)
	}
	port := 80
	if u.Scheme == "https" {
		port = 443
	}
	if s := u.Port(); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 65535 {
			return &TargetError{Target: u.Host, Why: "bad port"}
		}
		port = n
	}
	return p.checkAddr(normHost(h), a, port, true)
}

// CheckScenario checks the scenario's target and every step's URL before
// the test is accepted. A step whose host comes from a template cannot be
// judged now: with an allow-list it is refused, without one it is left to
// the dial.
func (p *TargetPolicy) CheckScenario(sc *Scenario) error {
	if p == nil {
		return nil
	}
	var errs []error
	if sc.Target != nil {
		if err := p.CheckURL(sc.Target); err != nil {
			errs = append(errs, err)
		}
	}
	for _, st := range sc.Steps {
		if st.URL == nil {
			continue
		}
		src := st.URL.String()
		if !st.URL.Static() {
			// Only a literal scheme and host before the first hole can
			// be checked.
			prefix := src[:strings.Index(src, "{{")]
			u, err := url.Parse(prefix)
			if err != nil || u.Host == "" || !strings.Contains(prefix, u.Host+"/") {
				if len(p.entries) > 0 {
					errs = append(errs, fmt.Errorf("step %s builds its host from a template: it cannot be checked against this node's allow-list", st.Name))
				}
				continue
			}
			src = prefix
		}
		u, err := url.Parse(src)
		if err != nil {
			errs = append(errs, fmt.Errorf("step %s: %v", st.Name, err))
			continue
		}
		if err := p.CheckURL(u); err != nil {
			errs = append(errs, fmt.Errorf("step %s: %w", st.Name, err))
		}
	}
	if sc.Observe != nil {
		// The scheduler reads these: they are targets like any other.
		for _, u := range sc.Observe.URLs() {
			if err := p.CheckURL(u); err != nil {
				errs = append(errs, fmt.Errorf("observe source %s: %w", u.Redacted(), err))
			}
		}
	}
	return errors.Join(errs...)
}
