package scenarios

import (
	"maps"
	"testing"
)

func TestLatencyLimits(t *testing.T) {
	for _, c := range []struct {
		rules []string
		want  map[string]float64
	}{
		{[]string{"p95 < 500", "error_rate < 0.01"}, map[string]float64{"p95": 500}},
		{[]string{"p95 <= 300.5 && p99 < 900"}, map[string]float64{"p95": 300.5, "p99": 900}},
		{[]string{"800 > p99", "p99 < 700"}, map[string]float64{"p99": 700}},
		{[]string{"p90 < 100", "steps[\"a\"].p95 < 100", "p95 > 10"}, map[string]float64{}},
	} {
		spec := "name: t\ntarget: http://127.0.0.1:1\nload: {rate: 1}\nduration: 1s\nrequests: [{name: a}]\nthresholds:\n"
		for _, r := range c.rules {
			spec += "  - '" + r + "'\n"
		}
		sc, err := Parse([]byte(spec))
		if err != nil {
			t.Fatalf("%v: %v", c.rules, err)
		}
		if got := sc.LatencyLimits(); !maps.Equal(got, c.want) {
			t.Errorf("%v: limits %v, want %v", c.rules, got, c.want)
		}
	}
}
