package report

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/loadswarm/loadswarm/storage"
)

// Comparing two runs of a test: for the whole, each step and each region,
// the achieved rate, the error rate and p50/p95/p99, the change, and
// whether the change is beyond what the two runs can tell apart: the
// histograms' precision and each run's own noise. A gate fails a run only
// on a change that is both worse than its limit and beyond that noise, so
// that it does not flap.

// Metrics compared, and the direction that is worse.
var compared = []struct {
	name      string
	higherBad bool
}{
	{"rate", false}, {"error_rate", true}, {"p50", true}, {"p95", true}, {"p99", true},
}

// Change is one number of two runs, side by side.
type Change struct {
	Scope  string  `json:"scope"`  // "total", "step NAME" or "region NAME"
	Metric string  `json:"metric"` // rate (achieved, /s), error_rate (0-1), p50, p95, p99 (ms)
	Base   float64 `json:"base"`
	New    float64 `json:"new"`
	Delta  float64 `json:"delta"`  // New - Base
	Ratio  float64 `json:"ratio"`  // Delta / Base; 0 when Base is 0
	Noise  float64 `json:"noise"`  // the smallest |Delta| the two runs tell apart
	Beyond bool    `json:"beyond"` // |Delta| > Noise: a real change, not noise
	Worse  bool    `json:"worse"`  // in the bad direction (slower, more errors, less rate)
}

// Comparison is a run against its baseline.
type Comparison struct {
	BaseID  string   `json:"base_id"`
	NewID   string   `json:"new_id"`
	Name    string   `json:"name"`
	Changes []Change `json:"changes"`
}

// Compare compares cur with base, two runs of the same test.
func Compare(base, cur *Report) (*Comparison, error) {
	if base == nil || cur == nil {
		return nil, errors.New("compare: a report is missing")
	}
	if base.Name != cur.Name {
		return nil, fmt.Errorf("compare: %q and %q are different tests: compare runs of the same test", base.Name, cur.Name)
	}
	c := &Comparison{BaseID: base.ID, NewID: cur.ID, Name: cur.Name}
	bn, cn := seriesNoise(base.Series), seriesNoise(cur.Series)
	c.add("total", base.Summary, cur.Summary, bn, cn)
	for _, k := range sortedNames(base.ByStep, cur.ByStep) {
		b, okb := base.ByStep[k]
		n, okn := cur.ByStep[k]
		if okb && okn {
			c.add("step "+k, b, n, bn.scaled(base.Summary, b), cn.scaled(cur.Summary, n))
		}
	}
	for _, k := range sortedNames(base.ByRegion, cur.ByRegion) {
		b, okb := base.ByRegion[k]
		n, okn := cur.ByRegion[k]
		if !okb || !okn {
			continue
		}
		rb, rn := bn.scaled(base.Summary, b), cn.scaled(cur.Summary, n)
		if s, ok := base.SeriesByRegion[k]; ok {
			rb = seriesNoise(s)
		}
		if s, ok := cur.SeriesByRegion[k]; ok {
			rn = seriesNoise(s)
		}
		c.add("region "+k, b, n, rb, rn)
	}
	return c, nil
}

func (c *Comparison) add(scope string, b, n storage.Summary, bn, nn noise) {
	for _, m := range compared {
		var bv, nv, tol float64
		switch m.name {
		case "rate":
			bv, nv = b.Rate.Achieved, n.Rate.Achieved
			// Arrivals are counts: Poisson noise at worst.
			tol = 2 * math.Hypot(poissonSE(b.Arrivals, b.DurationSec), poissonSE(n.Arrivals, n.DurationSec))
		case "error_rate":
			bv, nv = b.ErrorRate, n.ErrorRate
			// Two proportions; smoothed, so that none against none is not
			// "certain".
			p := float64(b.Errors+n.Errors+1) / float64(b.Requests+n.Requests+2)
			tol = 2 * math.Sqrt(p*(1-p)*(1/float64(max(b.Requests, 1))+1/float64(max(n.Requests, 1))))
		default:
			bv, nv = quantileOf(b.Latency, m.name), quantileOf(n.Latency, m.name)
			// The histograms keep 3 significant digits and 1 µs; the runs
			// vary second to second by their own spread.
			precision := 0.001*max(bv, nv) + 0.001
			tol = max(precision, 2*math.Hypot(bn.rel[m.name]*bv, nn.rel[m.name]*nv))
		}
		ch := Change{Scope: scope, Metric: m.name, Base: bv, New: nv, Delta: nv - bv, Noise: tol}
		if bv != 0 {
			ch.Ratio = ch.Delta / bv
		}
		ch.Beyond = math.Abs(ch.Delta) > tol
		ch.Worse = (m.higherBad && ch.Delta > 0) || (!m.higherBad && ch.Delta < 0)
		c.Changes = append(c.Changes, ch)
	}
}

func poissonSE(n int64, secs float64) float64 {
	if secs <= 0 {
		return 0
	}
	return math.Sqrt(float64(max(n, 1))) / secs
}

func quantileOf(l storage.Latency, q string) float64 {
	switch q {
	case "p50":
		return l.P50
	case "p95":
		return l.P95
	}
	return l.P99
}

// noise is a run's relative standard error of each latency quantile: the
// spread of its points' values over the square root of their number.
type noise struct {
	rel map[string]float64
}

func seriesNoise(ps []Point) noise {
	out := noise{rel: map[string]float64{}}
	for _, q := range []string{"p50", "p95", "p99"} {
		var xs []float64
		for _, p := range ps {
			if p.Requests <= 0 {
				continue
			}
			xs = append(xs, map[string]float64{"p50": p.P50, "p95": p.P95, "p99": p.P99}[q])
		}
		if len(xs) < 2 {
			out.rel[q] = 0.5 // too few points to say: only large changes count
			continue
		}
		var sum, sq float64
		for _, x := range xs {
			sum += x
		}
		mean := sum / float64(len(xs))
		for _, x := range xs {
			sq += (x - mean) * (x - mean)
		}
		if mean > 0 {
			out.rel[q] = math.Sqrt(sq/float64(len(xs)-1)) / mean / math.Sqrt(float64(len(xs)))
		}
	}
	return out
}

// scaled is the noise of a part (a step) of a run with this noise: fewer
// requests, more noise, by the square root of the share.
func (n noise) scaled(whole, part storage.Summary) noise {
	f := math.Sqrt(float64(max(whole.Requests, 1)) / float64(max(part.Requests, 1)))
	out := noise{rel: map[string]float64{}}
	for k, v := range n.rel {
		out.rel[k] = v * f
	}
	return out
}

func sortedNames(a, b map[string]storage.Summary) []string {
	seen := map[string]bool{}
	for k := range a {
		seen[k] = true
	}
	for k := range b {
		seen[k] = true
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Limit is how much worse a metric may get: a share of the baseline
// ("10%") or, for error_rate, percentage points ("0.5pp").
type Limit struct {
	Metric string
	Pct    float64 // relative, in percent
	PP     float64 // absolute, in percentage points (error_rate)
}

// ParseLimits reads "p95=10%,error_rate=0.5pp,rate=5%".
func ParseLimits(s string) ([]Limit, error) {
	var out []Limit
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || v == "" {
			return nil, fmt.Errorf("%q: want METRIC=LIMIT, e.g. p95=10%% or error_rate=0.5pp", part)
		}
		known := false
		for _, m := range compared {
			known = known || m.name == k
		}
		if !known {
			return nil, fmt.Errorf("%q: metric %q: want rate, error_rate, p50, p95 or p99", part, k)
		}
		l := Limit{Metric: k}
		var num string
		switch {
		case strings.HasSuffix(v, "%"):
			num = strings.TrimSuffix(v, "%")
		case strings.HasSuffix(v, "pp") && k == "error_rate":
			num = strings.TrimSuffix(v, "pp")
		default:
			return nil, fmt.Errorf("%q: limit %q: want a percentage (10%%)%s", part, v, map[bool]string{true: " or percentage points (0.5pp)"}[k == "error_rate"])
		}
		x, err := strconv.ParseFloat(num, 64)
		if err != nil || x < 0 || math.IsInf(x, 0) || math.IsNaN(x) {
			return nil, fmt.Errorf("%q: limit %q: want a number >= 0", part, v)
		}
		if strings.HasSuffix(v, "pp") {
			l.PP = x
		} else {
			l.Pct = x
		}
		out = append(out, l)
	}
	if len(out) == 0 {
		return nil, errors.New("no limits: want METRIC=LIMIT, e.g. p95=10%,error_rate=0.5pp")
	}
	return out, nil
}

// Regressions are the changes that break a limit: worse than it allows,
// and beyond the runs' noise.
func (c *Comparison) Regressions(limits []Limit) []Change {
	var out []Change
	for _, ch := range c.Changes {
		if !ch.Worse || !ch.Beyond {
			continue
		}
		for _, l := range limits {
			if l.Metric != ch.Metric {
				continue
			}
			over := false
			if l.PP > 0 || (l.Pct == 0 && ch.Metric == "error_rate") {
				over = math.Abs(ch.Delta)*100 > l.PP
			} else {
				over = ch.Base == 0 && ch.Delta != 0 || ch.Base != 0 && math.Abs(ch.Ratio)*100 > l.Pct
			}
			if over {
				out = append(out, ch)
			}
		}
	}
	return out
}
