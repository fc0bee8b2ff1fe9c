package testnet

import (
	"strings"
	"testing"
	"time"
)

func TestParseRTTs(t *testing.T) {
	ms := time.Millisecond
	for _, tc := range []struct {
		in     string
		region string
		want   RTT
		err    string
	}{
		{"", "us-east", RTT{80 * ms, 10 * ms}, ""},                 // the default table
		{"us-east=60ms", "us-east", RTT{60 * ms, 0}, ""},           // no jitter given: none
		{"eu-west=10ms±2ms", "eu-west", RTT{10 * ms, 2 * ms}, ""},  // ± for jitter
		{"eu-west=10ms+-2ms", "eu-west", RTT{10 * ms, 2 * ms}, ""}, // +- types easier
		{"mars=1s, eu-west=1ms", "mars", RTT{time.Second, 0}, ""},  // a new region, spaces ok
		{"nowhere-listed", "", RTT{}, "want REGION=RTT"},
		{"eu-west=fast", "", RTT{}, "invalid duration"},
		{"eu-west=10ms±x", "", RTT{}, "jitter"},
		{"eu-west=11s", "", RTT{}, "must be 0..10s"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			tab, err := ParseRTTs(DefaultRTTs, tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || tab.Lookup(tc.region) != tc.want {
				t.Fatalf("%s: %v, %v; want %v", tc.region, tab.Lookup(tc.region), err, tc.want)
			}
		})
	}
	if _, err := ParseRTTs(DefaultRTTs, "eu-west=1ms"); err != nil || DefaultRTTs["eu-west"].Latency != 15*ms {
		t.Fatal("ParseRTTs wrote into the default table")
	}
	if got := (RTTTable{}).Lookup("atlantis"); got != UnknownRTT {
		t.Fatalf("unknown region: %v", got)
	}
}
