package report

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/loadswarm/loadswarm/storage"
)

// run builds a 10 s run of 100 requests a second whose latencies are
// uniform over 1..500 ms times slow, and whose errors are errRate of them.
func compareRun(t *testing.T, id string, seed uint64, slow, errRate float64) *Report {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	s := storage.NewSeries()
	for sec := int64(0); sec < 10; sec++ {
		second := storage.NewSecond(sec)
		for range 100 {
			dim := storage.Dim{Step: "a", Status: "2xx"}
			failed := rng.Float64() < errRate
			if failed {
				dim = storage.Dim{Step: "a", Status: "5xx", Error: "http_5xx"}
			}
			b := second.Bucket(dim)
			b.Planned++
			b.Arrivals++
			b.Requests++
			if failed {
				b.Errors++
			}
			if b.Latency == nil {
				b.Latency, b.Service = storage.NewHistogram(), storage.NewHistogram()
			}
			d := time.Duration(float64(1+rng.IntN(500))*slow) * time.Millisecond
			b.Latency.Record(d)
			b.Service.Record(d)
		}
		if err := s.Add(second); err != nil {
			t.Fatal(err)
		}
	}
	r, err := Build(Input{ID: id, Scenario: scenario(t, ""), To: -1, Resolution: 1, ByRegion: true,
		Parts: []Part{part(t, "n0", "eu-west", s, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func find(c *Comparison, scope, metric string) Change {
	for _, ch := range c.Changes {
		if ch.Scope == scope && ch.Metric == metric {
			return ch
		}
	}
	return Change{}
}

func TestCompare(t *testing.T) {
	base := compareRun(t, "base", 1, 1, 0.001)
	limits, err := ParseLimits("p95=10%, error_rate=0.5pp, rate=5%")
	if err != nil {
		t.Fatal(err)
	}
	// The same system again (other random draws): no change beyond noise,
	// so no regression, in 20 trials.
	for seed := range uint64(20) {
		same := compareRun(t, "same", 100+seed, 1, 0.001)
		c, err := Compare(base, same)
		if err != nil {
			t.Fatal(err)
		}
		if r := c.Regressions(limits); len(r) > 0 {
			t.Fatalf("seed %d: the same system regressed: %+v", seed, r)
		}
		// ... and not because the noise is too wide to see anything: a
		// 10% change of p95 or of the rate would show.
		if ch := find(c, "total", "p95"); ch.Noise > 0.1*ch.Base || ch.Noise <= 0 {
			t.Fatalf("seed %d: p95 noise %.1f ms for p95 %.1f ms", seed, ch.Noise, ch.Base)
		}
		if ch := find(c, "total", "rate"); ch.Noise > 0.1*ch.Base {
			t.Fatalf("seed %d: rate noise %.1f for %.1f/s", seed, ch.Noise, ch.Base)
		}
	}
	// 50% slower and 3% errors: regressions, beyond noise, in the total,
	// the step and the region.
	slow := compareRun(t, "slow", 2, 1.5, 0.03)
	c, err := Compare(base, slow)
	if err != nil {
		t.Fatal(err)
	}
	for _, scope := range []string{"total", "step a", "region eu-west"} {
		for _, m := range []string{"p95", "error_rate"} {
			if ch := find(c, scope, m); !ch.Beyond || !ch.Worse {
				t.Errorf("%s %s: %+v", scope, m, ch)
			}
		}
	}
	got := map[string]bool{}
	for _, r := range c.Regressions(limits) {
		got[r.Scope+" "+r.Metric] = true
	}
	for _, want := range []string{"total p95", "total error_rate", "step a p95", "region eu-west p99"} {
		if !got[want] && strings.HasSuffix(want, "p99") {
			continue // p99 has no limit here
		}
		if !got[want] {
			t.Errorf("missing regression %s (got %v)", want, got)
		}
	}
	// Better is never a regression.
	if r, _ := Compare(slow, base); len(r.Regressions(limits)) > 0 {
		t.Errorf("a faster run regressed: %+v", r.Regressions(limits))
	}
	// Another test: refused.
	other := compareRun(t, "o", 3, 1, 0)
	other.Name = "other"
	if _, err := Compare(base, other); err == nil || !strings.Contains(err.Error(), "different tests") {
		t.Errorf("compare with another test: %v", err)
	}
}

func TestParseLimits(t *testing.T) {
	for _, bad := range []string{"", "p95", "p95=", "p95=10", "colour=1%", "p95=x%", "p95=-1%", "rate=1pp", "p95=Inf%"} {
		if _, err := ParseLimits(bad); err == nil {
			t.Errorf("%q: parsed", bad)
		}
	}
	l, err := ParseLimits("error_rate=0.5pp,p99=20%")
	if err != nil || len(l) != 2 || l[0].PP != 0.5 || l[1].Pct != 20 {
		t.Fatalf("%+v %v", l, err)
	}
}
