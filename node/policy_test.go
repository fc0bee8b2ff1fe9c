package node

import (
	"strings"
	"testing"
	"time"

	"github.com/loadswarm/loadswarm/scenarios"
)

func TestPolicyCheck(t *testing.T) {
	sc, err := scenarios.Parse([]byte("name: p\ntarget: http://x.example\nduration: 10s\nload: {rate: 1}\nrequests:\n  - {name: a, path: /x}\n"))
	if err != nil {
		t.Fatal(err)
	}
	// Membership knows peer-1 as n1; peer-9 is a member whose node wrote
	// "n1" in its own announcement (a name is not an identity).
	nameOf := func(p string) string {
		return map[string]string{"peer-1": "n1", "peer-2": "n2"}[p]
	}
	for _, tc := range []struct {
		name   string
		p      Policy
		signer string
		refuse string // "" when accepted
	}{
		{"no policy", Policy{}, "peer-9", ""},
		{"trusted by peer id", Policy{TrustSubmitters: []string{"peer-1"}}, "peer-1", ""},
		{"trusted by its membership name", Policy{TrustSubmitters: []string{"n1"}}, "peer-1", ""},
		{"a name it does not hold", Policy{TrustSubmitters: []string{"n1"}}, "peer-9", "submitter peer-9 is not trusted"},
		{"another member", Policy{TrustSubmitters: []string{"n1"}}, "peer-2", "submitter n2 (peer-2) is not trusted"},
		{"too long", Policy{MaxDuration: 5 * time.Second}, "peer-1", "over this node's limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.Check(sc, tc.signer, nameOf)
			switch {
			case tc.refuse == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.refuse != "" && (err == nil || !strings.Contains(err.Error(), tc.refuse)):
				t.Fatalf("err = %v, want %q", err, tc.refuse)
			}
		})
	}
}

func TestPolicyValidate(t *testing.T) {
	for _, tc := range []struct {
		p    Policy
		want string
	}{
		{Policy{AllowTargets: []string{"10.1.2.*"}}, "10.1.2.*"},
		{Policy{AllowTargets: []string{"[bad"}}, "[bad"},
		{Policy{TrustSubmitters: []string{" "}}, "empty submitter"},
		{Policy{MaxDuration: -time.Second}, "must be >= 0"},
	} {
		if err := tc.p.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.p, err, tc.want)
		}
	}
	if err := (Policy{AllowTargets: []string{"*.staging.example.com", "10.1.2.0/24", "127.0.0.1"}}).Validate(); err != nil {
		t.Fatal(err)
	}
}
