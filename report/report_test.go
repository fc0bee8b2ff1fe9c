package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/loadswarm/loadswarm/scenarios"
	"github.com/loadswarm/loadswarm/storage"
)

func scenario(t *testing.T, extra string) *scenarios.Scenario {
	t.Helper()
	sc, err := scenarios.Parse([]byte("name: r\ntarget: http://127.0.0.1:1\nduration: 10s\nload: {rate: 100}\nrequests: [{name: a}, {name: b}]\n" + extra))
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// node makes one node's series: for each second, `per` arrivals of which
// each sends a (200, latency from rng) and b every other one fails.
func nodeSeries(rng *rand.Rand, secs []int64, per int) *storage.Series {
	s := storage.NewSeries()
	for _, t := range secs {
		sec := storage.NewSecond(t)
		for i := range per {
			a := sec.Bucket(storage.Dim{Step: "a", Status: "2xx"})
			a.Planned++
			a.Arrivals++
			a.Requests++
			if a.Latency == nil {
				a.Latency, a.Service = storage.NewHistogram(), storage.NewHistogram()
			}
			d := time.Duration(1+rng.IntN(500)) * time.Millisecond
			a.Latency.Record(d)
			a.Service.Record(d / 2)
			if i%2 == 0 {
				b := sec.Bucket(storage.Dim{Step: "b", Status: "5xx", Error: "http_5xx"})
				b.Requests++
				b.Errors++
				if b.Latency == nil {
					b.Latency, b.Service = storage.NewHistogram(), storage.NewHistogram()
				}
				b.Latency.Record(d)
				b.Service.Record(d)
			}
		}
		_ = s.Add(sec)
	}
	s.AddSample("http_5xx", fmt.Sprintf("step b: %d", len(secs)))
	return s
}

func part(t *testing.T, id, region string, s *storage.Series, res int64) Part {
	t.Helper()
	total, points, err := Fold(s, res)
	if err != nil {
		t.Fatal(err)
	}
	last := int64(-1)
	for x := range s.Seconds {
		last = max(last, x)
	}
	return Part{Node: id, Region: region, Total: total, Points: points, Samples: s.Samples, Last: last, Until: -1}
}

// TestSplitDoesNotChangeNumbers: the same data split over any number of
// nodes, and merged by Build, gives the report of one node holding it all:
// the property that makes the live report, swarm results and --local agree.
func TestSplitDoesNotChangeNumbers(t *testing.T) {
	sc := scenario(t, "thresholds: ['p95 < 400', 'steps[\"b\"].error_rate == 1']\n")
	for trial := range 20 {
		rng := rand.New(rand.NewPCG(uint64(trial), 9))
		n := 1 + rng.IntN(6)
		all := storage.NewSeries()
		in := Input{Scenario: sc, To: -1, Resolution: 1 + int64(rng.IntN(3)), ByNode: true, ByRegion: true}
		for i := range n {
			var secs []int64
			for s := int64(0); s < 10; s++ {
				if rng.IntN(4) > 0 {
					secs = append(secs, s)
				}
			}
			one := nodeSeries(rand.New(rand.NewPCG(uint64(trial), uint64(i))), secs, 100/n)
			if err := all.Merge(one); err != nil {
				t.Fatal(err)
			}
			in.Parts = append(in.Parts, part(t, fmt.Sprint("n", i), "", one, in.Resolution))
		}
		split, err := Build(in)
		if err != nil {
			t.Fatal(err)
		}
		whole, err := Build(Input{Scenario: sc, To: -1, Resolution: in.Resolution, Parts: []Part{part(t, "all", "", all, in.Resolution)}})
		if err != nil {
			t.Fatal(err)
		}
		// A region's planned arrivals are what its nodes planned; the
		// total's are the test's.
		region, total := split.ByRegion[NoRegion], whole.Summary
		// The one region's series is the fleet's, without the plan's
		// target; the nodes' series add up to it.
		fleet := noTarget(append([]Point(nil), whole.Series...))
		sum := map[int64]float64{}
		for _, ps := range split.SeriesByNode {
			for _, p := range ps {
				sum[p.T] += p.Achieved
			}
		}
		for _, p := range whole.Series {
			if d := sum[p.T] - p.Achieved; d > 1e-9 || d < -1e-9 {
				t.Fatalf("trial %d: second %d: the nodes' series add up to %v achieved, the fleet's is %v", trial, p.T, sum[p.T], p.Achieved)
			}
		}
		if len(split.SeriesByNode) != n {
			t.Fatalf("trial %d: %d node series for %d nodes", trial, len(split.SeriesByNode), n)
		}
		region.Planned, region.Rate.Target, total.Planned, total.Rate.Target = 0, 0, 0, 0
		for name, pair := range map[string][2]any{
			"summary":       {split.Summary, whole.Summary},
			"by step":       {split.ByStep, whole.ByStep},
			"series":        {split.Series, whole.Series},
			"thresholds":    {split.Thresholds, whole.Thresholds},
			"delivery":      {split.Delivery, whole.Delivery},
			"status":        {split.Status, whole.Status},
			"region":        {region, total},
			"region series": {split.SeriesByRegion[NoRegion], fleet},
		} {
			a, _ := json.Marshal(pair[0])
			b, _ := json.Marshal(pair[1])
			if !bytes.Equal(a, b) {
				t.Fatalf("trial %d (%d nodes): %s differs:\n%s\n%s", trial, n, name, a, b)
			}
		}
	}
}

func TestDelivery(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	secs := func(from, to int64) []int64 {
		var out []int64
		for s := from; s <= to; s++ {
			out = append(out, s)
		}
		return out
	}
	for _, tc := range []struct {
		name       string
		extra      string
		parts      func() []Part
		missing    []string
		interrupt  bool
		status     string
		complete   bool
		incomplete bool
		missingSec int64
		why        string
	}{
		{
			// two nodes, 50/s each, all ten seconds: the whole plan
			name: "all delivered", status: StatusPassed, complete: true,
			parts: func() []Part {
				return []Part{part(t, "a", "eu", nodeSeries(rng, secs(0, 9), 50), 1), part(t, "b", "us", nodeSeries(rng, secs(0, 9), 50), 1)}
			},
		},
		{
			// b stops after second 4 and never says so; its share ran to
			// second 9: five seconds missing, 250 arrivals undelivered
			// (75%: under the default 95%)
			name: "a node lost mid-test", status: StatusFailed, incomplete: true, missingSec: 5, why: "b (5)",
			parts: func() []Part {
				b := part(t, "b", "us", nodeSeries(rng, secs(0, 4), 50), 1)
				b.Until = 9
				return []Part{part(t, "a", "eu", nodeSeries(rng, secs(0, 9), 50), 1), b}
			},
		},
		{
			// the same, with the test's own bar lowered to 70%
			name: "a lower bar", extra: "", status: StatusPassed, complete: true, incomplete: true, missingSec: 5,
			parts: func() []Part {
				b := part(t, "b", "us", nodeSeries(rng, secs(0, 4), 50), 1)
				b.Until = 9
				return []Part{part(t, "a", "eu", nodeSeries(rng, secs(0, 9), 50), 1), b}
			},
		},
		{
			// nobody can supply c's results at all
			name: "a missing node", status: StatusFailed, incomplete: true, missing: []string{"c"}, why: "no results from c",
			parts: func() []Part {
				return []Part{part(t, "a", "eu", nodeSeries(rng, secs(0, 9), 50), 1), part(t, "b", "us", nodeSeries(rng, secs(0, 9), 50), 1)}
			},
		},
		{
			// stopped by a user at 5s: short, but not a delivery failure
			name: "interrupted", status: StatusPassed, interrupt: true,
			parts: func() []Part { return []Part{part(t, "a", "eu", nodeSeries(rng, secs(0, 4), 100), 1)} },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			extra := tc.extra
			if tc.name == "a lower bar" {
				extra = "" // set below through the spec
			}
			sc := scenario(t, extra)
			if tc.name == "a lower bar" {
				sc.MinDelivered = 0.7
			}
			r, err := Build(Input{Scenario: sc, To: -1, Parts: tc.parts(), Missing: tc.missing, Interrupted: tc.interrupt})
			if err != nil {
				t.Fatal(err)
			}
			d := r.Delivery
			if r.Status != tc.status || d.Complete != tc.complete || r.Incomplete != tc.incomplete || d.MissingSeconds != tc.missingSec {
				t.Fatalf("status %s complete %v incomplete %v missing seconds %d; delivery %+v", r.Status, d.Complete, r.Incomplete, d.MissingSeconds, d)
			}
			if tc.why != "" && !strings.Contains(strings.Join(d.Why, "; "), tc.why) {
				t.Fatalf("why %q, want %q", d.Why, tc.why)
			}
			if d.Planned != 1000 || d.Undelivered != max(0, d.Planned-d.Counted) {
				t.Fatalf("delivery %+v", d)
			}
			var b bytes.Buffer
			if err := WriteText(&b, r, sc); err != nil {
				t.Fatal(err)
			}
			if !tc.complete && !tc.interrupt && !strings.Contains(b.String(), "NOT DELIVERED") {
				t.Fatalf("text does not say it:\n%s", b.String())
			}
		})
	}
}

func TestRegionsAndThresholdsByRegion(t *testing.T) {
	sc := scenario(t, "thresholds: ['regions[\"eu\"].requests > 0', 'regions[\"(none)\"].requests > 0']\n")
	rng := rand.New(rand.NewPCG(3, 3))
	r, err := Build(Input{Scenario: sc, To: -1, Parts: []Part{
		part(t, "a", "eu", nodeSeries(rng, []int64{0, 1}, 10), 1),
		part(t, "b", "", nodeSeries(rng, []int64{0, 1}, 10), 1),
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, th := range r.Thresholds {
		if !th.Pass {
			t.Fatalf("%s: %+v", th.Expr, th)
		}
	}
	if r.ByRegion != nil || r.ByNode != nil {
		t.Fatal("groups kept without being asked for")
	}
}

func TestBuildRefusesNoScenario(t *testing.T) {
	if _, err := Build(Input{}); err == nil {
		t.Fatal("built a report without a scenario")
	}
}
