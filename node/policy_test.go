package node

import (
	"strings"
	"testing"
	"time"

	"github.com/loadswarm/loadswarm/scenarios"
)

func TestPolicyCheck(t *testing.T) {
	sc := func(target, extra string) *scenarios.Scenario {
		s, err := scenarios.Parse([]byte("name: p\ntarget: " + target + "\nduration: 10s\nload: {rate: 1}\nrequests:\n  - {name: a, path: /x}\n" + extra))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	allow := Policy{AllowTargets: []string{"*.staging.example.com", "127.0.0.1"}}
	for _, tc := range []struct {
		name   string
		p      Policy
		sc     *scenarios.Scenario
		by     string
		refuse string // "" when accepted
	}{
		{"no policy", Policy{}, sc("http://anything.example", ""), "n1", ""},
		{"trusted by name", Policy{TrustSubmitters: []string{"n1"}}, sc("http://x", ""), "n1", ""},
		{"not trusted", Policy{TrustSubmitters: []string{"n2"}}, sc("http://x", ""), "n1", "not trusted"},
		{"too long", Policy{MaxDuration: 5 * time.Second}, sc("http://x", ""), "n1", "over this node's limit"},
		{"allowed host", allow, sc("https://shop.staging.example.com", ""), "n1", ""},
		{"allowed ip", allow, sc("http://127.0.0.1:8080", ""), "n1", ""},
		{"host not allowed", allow, sc("https://shop.example.com", ""), "n1", "allow-list"},
		{"a step's url elsewhere", allow, sc("http://127.0.0.1", "  - {name: b, url: 'https://evil.example.org/'}\n"), "n1", "step b"},
		{"templated path is fine", allow, sc("http://127.0.0.1", "  - {name: b, path: '/i/{{ randInt(1, 9) }}'}\n"), "n1", ""},
		{"templated host is refused", allow, sc("http://127.0.0.1", "  - {name: b, url: 'https://{{ vars.h }}/x'}\n"), "n1", "template"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.Check(tc.sc, tc.by, "peer-"+tc.by)
			switch {
			case tc.refuse == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.refuse != "" && (err == nil || !strings.Contains(err.Error(), tc.refuse)):
				t.Fatalf("err = %v, want %q", err, tc.refuse)
			}
		})
	}
	if (Policy{AllowTargets: []string{"[bad"}}).Validate() == nil {
		t.Fatal("bad pattern accepted")
	}
	if err := allow.allowDial("evil.example.org:443"); err == nil {
		t.Fatal("dial to a host off the list allowed")
	}
}
