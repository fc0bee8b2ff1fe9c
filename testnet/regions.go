package testnet

import (
	"fmt"
	"maps"
	"strings"
	"time"
)

// RTT is a simulated network distance from a region to the target: a round
// trip of Latency plus a uniform random 0..Jitter.
type RTT struct {
	Latency time.Duration `json:"latency"`
	Jitter  time.Duration `json:"jitter"`
}

func (r RTT) String() string {
	if r.Jitter == 0 {
		return r.Latency.String()
	}
	return r.Latency.String() + "±" + r.Jitter.String()
}

// DefaultRTTs are round-trip times to a target hosted in western Europe,
// roughly as measured between public cloud regions. A region not listed
// gets UnknownRTT.
var DefaultRTTs = map[string]RTT{
	"eu-west":    {15 * time.Millisecond, 5 * time.Millisecond},
	"eu-central": {25 * time.Millisecond, 5 * time.Millisecond},
	"us-east":    {80 * time.Millisecond, 10 * time.Millisecond},
	"us-west":    {140 * time.Millisecond, 15 * time.Millisecond},
	"sa-east":    {190 * time.Millisecond, 20 * time.Millisecond},
	"ap-south":   {180 * time.Millisecond, 20 * time.Millisecond},
	"ap-east":    {220 * time.Millisecond, 20 * time.Millisecond},
	"local":      {0, 0},
}

// UnknownRTT is the distance of a region missing from the table.
var UnknownRTT = RTT{50 * time.Millisecond, 10 * time.Millisecond}

// RTTTable maps regions to their simulated distance.
type RTTTable map[string]RTT

// Lookup returns the region's distance, UnknownRTT if it has none.
func (t RTTTable) Lookup(region string) RTT {
	if r, ok := t[region]; ok {
		return r
	}
	return UnknownRTT
}

// ParseRTTs reads overrides "REGION=RTT[±JITTER],..." (e.g.
// "eu-west=10ms±2ms,us-east=80ms"; "+-" may stand for "±") over a copy of
// base.
func ParseRTTs(base map[string]RTT, s string) (RTTTable, error) {
	out := RTTTable(maps.Clone(base))
	if out == nil {
		out = RTTTable{}
	}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		region, val, ok := strings.Cut(part, "=")
		if !ok || region == "" {
			return nil, fmt.Errorf("latency %q: want REGION=RTT[±JITTER], e.g. us-east=80ms±10ms", part)
		}
		val = strings.ReplaceAll(val, "+-", "±")
		lat, jit, _ := strings.Cut(val, "±")
		var r RTT
		var err error
		if r.Latency, err = time.ParseDuration(lat); err != nil {
			return nil, fmt.Errorf("latency %q: %v", part, err)
		}
		if jit != "" {
			if r.Jitter, err = time.ParseDuration(jit); err != nil {
				return nil, fmt.Errorf("latency %q: jitter: %v", part, err)
			}
		}
		if r.Latency < 0 || r.Jitter < 0 || r.Latency > 10*time.Second || r.Jitter > 10*time.Second {
			return nil, fmt.Errorf("latency %q: must be 0..10s", part)
		}
		out[region] = r
	}
	return out, nil
}
