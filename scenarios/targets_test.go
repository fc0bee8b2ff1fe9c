package scenarios

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// testOwn is the node of these tests: address 10.9.9.9, gossip on
// 127.0.0.1:7946, API on every address at 8080, p2p on 10.9.9.9:4001.
var testOwn = Own{
	IPs:       []net.IP{net.ParseIP("10.9.9.9")},
	Endpoints: []string{"127.0.0.1:7946", "0.0.0.0:8080", "10.9.9.9:4001"},
}

// checkTarget runs one check written as "host" (CheckHost) or "host
// ip:port" (CheckDial).
func checkTarget(p *TargetPolicy, c string) error {
	host, dial, ok := strings.Cut(c, " ")
	if !ok {
		return p.CheckHost(host)
	}
	h, port, err := net.SplitHostPort(dial)
	if err != nil {
		panic(err)
	}
	n, _ := strconv.Atoi(port)
	return p.CheckDial(host, net.ParseIP(h), n)
}

func TestTargetPolicy(t *testing.T) {
	none := []string(nil)
	testnet := []string{"127.0.0.0/8"}
	mixed := []string{"api.staging.example", ".example.com", "*.corp.example", "10.1.2.0/24", "::1"}
	namesOnly := []string{"api.staging.example"}
	const ok = ""
	for _, tc := range []struct {
		entries []string
		check   string
		want    string // "" allowed, else a part of the error
	}{
		// No allow-list: names and ordinary addresses pass, the defaults do not.
		{none, "api.example.com", ok},              // a name passes
		{none, "10.1.2.3", ok},                     // private ranges are allowed
		{none, "8.8.8.8", ok},                      // so are public ones
		{none, "api.example.com 10.1.2.3:443", ok}, // a name resolving to a private address
		{none, "127.0.0.1", "target 127.0.0.1: loopback address refused: allow it explicitly with --allow-target 127.0.0.1"}, // loopback
		{none, "[::1]", "loopback address refused"},                    // IPv6 loopback, URL brackets
		{none, "::ffff:127.0.0.1", "loopback address refused"},         // v4-mapped loopback
		{none, "localhost", "target localhost: loopback name refused"}, // the loopback name
		{none, "db.LOCALHOST.", "loopback name refused"},               // *.localhost, any case, final dot
		{none, "169.254.169.254 169.254.169.254:80", "target 169.254.169.254:80: link-local address (cloud metadata) refused: allow it explicitly with --allow-target 169.254.169.254"},
		{none, "169.254.1.1", "link-local address refused"},                                                      // link-local
		{none, "fe80::1%eth0", "link-local address refused"},                                                     // IPv6 link-local with a zone
		{none, "100.100.100.200", "cloud metadata address refused"},                                              // another cloud's metadata
		{none, "fd00:ec2::254", "cloud metadata address refused"},                                                // AWS's IPv6 metadata
		{none, "64:ff9b::a9fe:a9fe", "NAT64 address of a link-local address (cloud metadata) refused"},           // metadata through NAT64
		{none, "0.0.0.0", "unspecified address refused"},                                                         // unspecified: Linux dials loopback
		{none, "::", "unspecified address refused"},                                                              // same in IPv6
		{none, "255.255.255.255", "broadcast address refused"},                                                   // broadcast
		{none, "224.0.0.1", "multicast address refused"},                                                         // multicast
		{none, "ff02::1", "multicast address refused"},                                                           // IPv6 multicast
		{none, "10.9.9.9", "this node's own address refused"},                                                    // the node itself
		{none, "rebind.example 127.0.0.1:80", "target rebind.example:80 at 127.0.0.1: loopback address refused"}, // DNS answers loopback
		{none, "metadata.google.internal 169.254.169.254:80", "link-local address (cloud metadata) refused"},     // the metadata name
		{none, "10.9.9.9 10.9.9.9:4001", "target 10.9.9.9:4001: this node's own endpoint"},                       // own p2p listener
		{none, "10.9.9.9 10.9.9.9:8080", "own endpoint"},                                                         // API on every address
		// The testnet: loopback allowed, the node's own listeners still not.
		{testnet, "127.0.0.1", ok},                            // loopback named by a CIDR
		{testnet, "localhost", ok},                            // so the name too
		{testnet, "localhost 127.0.0.1:9000", ok},             // and its address
		{testnet, "127.0.0.1 127.0.0.1:7946", "own endpoint"}, // own gossip listener
		{testnet, "127.0.0.5 127.0.0.5:8080", "own endpoint"}, // API on every address: any loopback one
		{testnet, "127.0.0.5 127.0.0.5:8081", ok},             // another node's port
		{testnet, "api.example.com", ok},                      // a name waits for its addresses
		{testnet, "api.example.com 127.0.0.2:80", ok},         // covered by the CIDR
		{testnet, "api.example.com 10.1.2.3:80", "not in this node's allow-list (127.0.0.0/8): allow it with --allow-target api.example.com"},
		{testnet, "10.1.2.3", "not in this node's allow-list"},  // an IP outside the list
		{testnet, "169.254.169.254", "cloud metadata) refused"}, // still refused
		// A broad entry does not name a refused range.
		{[]string{"0.0.0.0/0"}, "8.8.8.8", ok},                                  // anything
		{[]string{"0.0.0.0/0"}, "127.0.0.1", "loopback address refused"},        // but not loopback
		{[]string{"0.0.0.0/0"}, "169.254.169.254", "cloud metadata"},            // nor metadata
		{[]string{"::/0"}, "::1", "loopback address refused"},                   // nor in IPv6
		{[]string{"0.0.0.0/0"}, "10.9.9.9", ok},                                 // own addresses: any covering entry
		{[]string{"169.254.0.0/16"}, "169.254.1.1", ok},                         // link-local named
		{[]string{"169.254.0.0/16"}, "169.254.169.254", "cloud metadata"},       // metadata needs its own entry
		{[]string{"169.254.169.254"}, "169.254.169.254 169.254.169.254:80", ok}, // there it is
		{[]string{"::ffff:127.0.0.1"}, "127.0.0.1", ok},                         // a v4-mapped entry is the v4 address
		// Names, suffixes, IPs and CIDRs together.
		{mixed, "api.staging.example", ok},                                                 // exact name
		{mixed, "API.Staging.Example.", ok},                                                // any case, final dot
		{mixed, "a.example.com", ok},                                                       // suffix
		{mixed, "a.b.corp.example", ok},                                                    // legacy *. suffix
		{mixed, "10.1.2.200", ok},                                                          // in the CIDR
		{mixed, "[::1]", ok},                                                               // loopback named by an IP entry
		{mixed, "10.1.3.1", "not in this node's allow-list"},                               // outside the CIDR
		{mixed, "example.com", ok},                                                         // not a match, but the CIDR may cover its addresses
		{mixed, "example.com 93.184.216.34:443", "not in this node's allow-list"},          // and it does not
		{mixed, "example.com.attacker.net 10.66.0.1:443", "not in this node's allow-list"}, // a suffix is a suffix
		{mixed, "x.api.staging.example 8.8.8.8:80", "not in this node's allow-list"},       // exact means exact
		{mixed, "other.example 10.1.2.9:80", ok},                                           // every address in the CIDR
		{mixed, "a.example.com 10.1.2.7:80", ok},                                           // a listed name, an ordinary address
		{mixed, "a.example.com 127.0.0.1:80", "loopback address refused"},                  // rebinding a listed name
		{mixed, "a.example.com 169.254.169.254:80", "cloud metadata"},                      // to metadata too
		// Names only: a name is judged at once.
		{namesOnly, "api.staging.example", ok},                                              // listed
		{namesOnly, "other.example", "not in this node's allow-list (api.staging.example)"}, // not listed
		{namesOnly, "10.1.2.3", "not in this node's allow-list"},                            // IPs need an IP entry
	} {
		t.Run(fmt.Sprintf("%v/%s", tc.entries, tc.check), func(t *testing.T) {
			p, err := ParseTargetPolicy(tc.entries, testOwn)
			if err != nil {
				t.Fatal(err)
			}
			err = checkTarget(p, tc.check)
			switch {
			case tc.want == ok && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != ok && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v; want an error with %q", err, tc.want)
			}
			var te *TargetError
			if err != nil && (!errors.As(err, &te) || Classify(err) != ErrPolicy) {
				t.Fatalf("%v is not a *TargetError of class %s", err, ErrPolicy)
			}
		})
	}
	// A nil policy allows everything.
	var nilPolicy *TargetPolicy
	if nilPolicy.CheckHost("localhost") != nil || nilPolicy.CheckDial("x", net.ParseIP("169.254.169.254"), 80) != nil {
		t.Fatal("a nil policy refused")
	}
}

func TestParseTargetPolicyErrors(t *testing.T) {
	for _, tc := range []struct {
		entry, want string
	}{
		{"10.1.2.*", "wildcards do not match IP addresses: use a CIDR, like 10.1.2.0/24"}, // the old pattern
		{"10.*", "like 10.0.0.0/8"},                        // shorter
		{"10.*.2.3", "like 10.0.0.0/8"},                    // a star in the middle
		{"*", "only allowed as a leading"},                 // everything
		{"api-*.example.com", "only allowed as a leading"}, // a star inside a name
		{"*.10.1.2", "ends in a number"},                   // a suffix that is an IP in disguise
		{"1.2.3", "ends in a number"},                      // not an IP, not a name
		{"0x7f.1", "ends in a number"},                     // inet_aton's forms
		{"", "empty entry"},                                // nothing
		{"10.1.2.0/33", "not a CIDR"},                      // bad prefix length
		{"http://api.example", "not a URL"},                // a URL
		{"api.example:443", "no scheme, port or path"},     // a port
		{"fe80::1%eth0", "zone"},                           // a zone
		{"bad..name", "not a host name"},                   // an empty label
		{"-x.example", "not a host name"},                  // a label starting with -
		{"localhost", "use --allow-target 127.0.0.1"},      // loopback goes by address
		{"*.localhost", "use --allow-target 127.0.0.1"},    // and its subdomains
	} {
		_, err := ParseTargetPolicy([]string{"ok.example", tc.entry}, Own{})
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), fmt.Sprintf("allow-target %q", tc.entry)) {
			t.Errorf("%q: %v; want %q", tc.entry, err, tc.want)
		}
	}
	// Every bad entry and own endpoint is reported at once.
	_, err := ParseTargetPolicy([]string{"10.1.2.*", "ok.example", "x/y"}, Own{Endpoints: []string{"api:80", "127.0.0.1:0"}})
	for _, w := range []string{`"10.1.2.*"`, `"x/y"`, `own endpoint "api:80"`, `own endpoint "127.0.0.1:0"`} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %s: %v", w, err)
		}
	}
	// "10.1.2.*" is never read as a suffix that matches a name.
	if p, err := ParseTargetPolicy([]string{"*.1.2"}, Own{}); err == nil {
		t.Fatalf("accepted *.1.2: %v", p.CheckDial("10.1.2.attacker.example", net.ParseIP("8.8.8.8"), 80))
	}
}

func TestCheckScenario(t *testing.T) {
	sc := mustParse(t, `name: s
target: http://api.staging.example:8080
duration: 1s
load: {rate: 1}
requests:
  - {name: a, path: /x}
  - {name: b, url: 'http://169.254.169.254/latest/meta-data/'}
  - {name: c, url: '{{ vars.h }}/x'}
  - {name: d, url: 'http://10.9.9.9:4001/{{ arrival }}'}
`)
	p, err := ParseTargetPolicy([]string{"api.staging.example", "10.0.0.0/8"}, testOwn)
	if err != nil {
		t.Fatal(err)
	}
	err = p.CheckScenario(sc)
	for _, w := range []string{"step b: target 169.254.169.254:80: link-local", "step c builds its host from a template", "step d: target 10.9.9.9:4001: this node's own endpoint"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q: %v", w, err)
		}
	}
	if strings.Contains(err.Error(), "step a") {
		t.Errorf("step a refused: %v", err)
	}
	if err := p.CheckURL(&url.URL{Scheme: "https", Host: "10.9.9.9"}); err != nil {
		t.Errorf("https://10.9.9.9 (port 443): %v", err)
	}
}

// TestTransportNeverDialsRefused: a refused address is never dialed, so no
// packet leaves for it. The dial hook records every address it is asked
// for and only ever connects to the test server on loopback.
func TestTransportNeverDialsRefused(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	srvAddr := srv.Listener.Addr().String()
	_, srvPort, _ := net.SplitHostPort(srvAddr)
	names := map[string][]string{
		"rebind.test": {"127.0.0.1"},                    // a listed name that answers loopback
		"mixed.test":  {"127.0.0.1", "169.254.169.254"}, // one good address, one bad
		"good.test":   {"127.0.0.1"},                    // allowed by the CIDR
		"meta.test":   {"169.254.169.254"},              // metadata
	}
	for _, tc := range []struct {
		name    string
		entries []string
		own     []string
		url     string
		want    string // "" for a request that reaches the server
	}{
		{"metadata", nil, nil, "http://169.254.169.254/latest/meta-data/", "link-local address (cloud metadata) refused"},
		{"metadata v4-mapped", nil, nil, "http://[::ffff:169.254.169.254]/", "cloud metadata"},
		{"loopback without an entry", nil, nil, srv.URL, "loopback address refused"},
		{"own endpoint", []string{"127.0.0.0/8"}, []string{srvAddr}, srv.URL, "own endpoint"},
		{"own endpoint on every address", []string{"127.0.0.0/8"}, []string{":" + srvPort}, srv.URL, "own endpoint"},
		{"rebinding", []string{"rebind.test"}, nil, "http://rebind.test:" + srvPort + "/", "target rebind.test:" + srvPort + " at 127.0.0.1: loopback address refused"},
		{"one bad candidate", []string{"127.0.0.0/8", "mixed.test"}, nil, "http://mixed.test:" + srvPort + "/", "cloud metadata"},
		{"metadata name", []string{".test"}, nil, "http://meta.test/", "cloud metadata"},
		{"allowed", []string{"127.0.0.0/8"}, nil, "http://good.test:" + srvPort + "/", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParseTargetPolicy(tc.entries, Own{Endpoints: tc.own})
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var dialed []string
			tr := NewTransport(TransportConfig{Targets: p,
				lookup: func(ctx context.Context, host string) ([]string, error) {
					if a, ok := names[host]; ok {
						return a, nil
					}
					return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
				},
				Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
					mu.Lock()
					dialed = append(dialed, addr)
					mu.Unlock()
					if a, err := netip.ParseAddrPort(addr); err != nil || !a.Addr().IsLoopback() {
						return nil, fmt.Errorf("test: refusing to dial %s", addr) // never a packet off loopback
					}
					return (&net.Dialer{}).DialContext(ctx, network, addr)
				}})
			defer tr.CloseIdleConnections()
			req, _ := http.NewRequest("GET", tc.url, nil)
			resp, err := tr.RoundTrip(req)
			if resp != nil {
				resp.Body.Close()
			}
			mu.Lock()
			defer mu.Unlock()
			if tc.want == "" {
				if err != nil || len(dialed) != 1 || dialed[0] != "127.0.0.1:"+srvPort {
					t.Fatalf("err %v, dialed %v; want one dial of the checked address 127.0.0.1:%s", err, dialed, srvPort)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || Classify(err) != ErrPolicy {
				t.Fatalf("err %v (class %s); want %q, class %s", err, Classify(err), tc.want, ErrPolicy)
			}
			if len(dialed) != 0 {
				t.Fatalf("dialed %v for a refused target", dialed)
			}
		})
	}
}

// FuzzTargetPolicy: no entry list, host or address makes the policy panic,
// and whatever it allows among the default-refused addresses is named by
// an entry no broader than the refused range.
func FuzzTargetPolicy(f *testing.F) {
	f.Add("127.0.0.0/8,*.example.com", "a.example.com", []byte{127, 0, 0, 1}, 80)
	f.Add("10.1.2.*,::1", "[::1]", []byte{169, 254, 169, 254}, 7946)
	f.Add(".example.com.,API.example", "localhost.", []byte{0, 0, 0, 0}, 8080)
	f.Add("0.0.0.0/0,::ffff:0:0/96", "64:ff9b::a9fe:a9fe", make([]byte, 16), 0)
	f.Fuzz(func(t *testing.T, entries, host string, ip []byte, port int) {
		p, err := ParseTargetPolicy(strings.Split(entries, ","), testOwn)
		if err != nil {
			return
		}
		_ = p.CheckHost(host)
		if len(ip) != 4 && len(ip) != 16 {
			return
		}
		err = p.CheckDial(host, net.IP(ip), port)
		if err != nil {
			return
		}
		a, _ := netip.AddrFromSlice(ip)
		a = a.Unmap()
		if port == 7946 && a == netip.MustParseAddr("127.0.0.1") {
			t.Fatalf("dial to the own endpoint %s:%d allowed", a, port)
		}
		for _, r := range refusedRanges {
			if r.p.Contains(a) && !p.covered(a, r.p.Bits()) {
				t.Fatalf("%s (%s) allowed by %q", a, r.what, entries)
			}
		}
	})
}
