package scenarios

import (
	"fmt"
	"net"
)

func ExampleParseTargetPolicy() {
	p, err := ParseTargetPolicy([]string{"api.staging.example", "10.1.2.0/24"}, Own{Endpoints: []string{"0.0.0.0:7946"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	// At validation: the name is listed.
	fmt.Println(p.CheckHost("api.staging.example"))
	// At the dial: DNS answered the metadata address.
	fmt.Println(p.CheckDial("api.staging.example", net.ParseIP("169.254.169.254"), 80))
	// An address in the CIDR.
	fmt.Println(p.CheckDial("10.1.2.3", net.ParseIP("10.1.2.3"), 8080))
	// The old glob patterns are refused with what to write instead.
	_, err = ParseTargetPolicy([]string{"10.1.2.*"}, Own{})
	fmt.Println(err)
	// Output:
	// <nil>
	// target api.staging.example:80 at 169.254.169.254: link-local address (cloud metadata) refused: allow it explicitly with --allow-target 169.254.169.254
	// <nil>
	// allow-target "10.1.2.*": wildcards do not match IP addresses: use a CIDR, like 10.1.2.0/24
}
