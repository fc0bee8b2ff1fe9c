package scheduler

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/loadswarm/loadswarm/scenarios"
)

func dist(t testing.TB, yaml string) *scenarios.Distribution {
	t.Helper()
	sc, err := scenarios.Parse([]byte("name: d\ntarget: http://x\nduration: 1s\nload: {rate: 1}\nrequests: [{name: a}]\ndistribution:\n" + yaml))
	if err != nil {
		t.Fatal(err)
	}
	return sc.Distribution
}

func randomMembers(r *rand.Rand, n int, regions []string) []Member {
	ms := make([]Member, n)
	for i := range ms {
		ms[i] = Member{ID: fmt.Sprintf("n%03d", i), Info: scenarios.NodeInfo{
			Name: fmt.Sprintf("n%03d", i), Region: regions[r.IntN(len(regions))],
			Capacity: float64(1 + r.IntN(500)), CPUs: 1 + r.IntN(16),
		}}
	}
	return ms
}

func randomProfile(r *rand.Rand, maxRate int) scenarios.Profile {
	var segs []scenarios.Segment
	var at time.Duration
	rate := float64(r.IntN(maxRate))
	for range 1 + r.IntN(5) {
		to := float64(r.IntN(maxRate))
		d := time.Duration(1+r.IntN(30)) * time.Second
		segs = append(segs, scenarios.Segment{Start: at, Dur: d, From: rate, To: to})
		at += d
		rate = to
	}
	return scenarios.NewProfile(segs)
}

// TestSplitProperties checks random splits against simple references:
// totals exact at every breakpoint (and so at every instant), caps held,
// region shares within one unit, and uncapped shares within one unit of
// the exact proportional share.
func TestSplitProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	regions := []string{"eu-west", "us-east", "ap-south"}
	var feasible, refused int
	defer func() {
		// Both outcomes must be exercised, or the test proves little.
		if feasible < 50 || refused < 10 {
			t.Errorf("%d feasible and %d refused splits: tune the generator", feasible, refused)
		}
	}()
	for iter := range 300 {
		ms := randomMembers(r, 1+r.IntN(40), regions)
		p := randomProfile(r, 3000)
		var d *scenarios.Distribution
		useRegions := iter%3 == 0
		if useRegions {
			d = dist(t, "  regions: {eu-west: 0.5, us-east: 0.3, ap-south: 0.2}\n")
		}
		sp, err := SplitRate(p, ms, d, 7)
		if err != nil {
			if !errors.Is(err, ErrInfeasible) {
				t.Fatalf("iter %d: %v", iter, err)
			}
			// Refused: check it really is infeasible at some breakpoint.
			if !infeasibleRef(p, ms, useRegions) {
				t.Fatalf("iter %d: refused a feasible split: %v", iter, err)
			}
			refused++
			continue
		}
		if infeasibleRef(p, ms, useRegions) {
			t.Fatalf("iter %d: accepted an infeasible split", iter)
		}
		feasible++
		caps := map[string]float64{}
		weights := map[string]float64{}
		region := map[string]string{}
		for _, m := range ms {
			caps[m.ID] = m.Info.Capacity
			weights[m.ID] = m.Info.Capacity
			region[m.ID] = m.Info.Region
		}
		for gi, g := range p.Segments() {
			for _, end := range []struct {
				name string
				want float64
				get  func(scenarios.Segment) float64
			}{{"from", g.From, func(s scenarios.Segment) float64 { return s.From }}, {"to", g.To, func(s scenarios.Segment) float64 { return s.To }}} {
				var sum float64
				perRegion := map[string]float64{}
				for _, sh := range sp.Shares {
					v := end.get(sh.Segments[gi])
					if v > caps[sh.Node]+1e-9 {
						t.Fatalf("iter %d: node %s gets %v over its cap %v", iter, sh.Node, v, caps[sh.Node])
					}
					if v != math.Trunc(v) {
						t.Fatalf("iter %d: fractional share %v with whole rates", iter, v)
					}
					sum += v
					perRegion[region[sh.Node]] += v
				}
				if sum != end.want {
					t.Fatalf("iter %d seg %d %s: shares add to %v, want %v", iter, gi, end.name, sum, end.want)
				}
				if useRegions {
					for reg, share := range map[string]float64{"eu-west": 0.5, "us-east": 0.3, "ap-south": 0.2} {
						if math.Abs(perRegion[reg]-end.want*share) > 1 {
							t.Fatalf("iter %d: region %s gets %v, want %v ± 1", iter, reg, perRegion[reg], end.want*share)
						}
					}
				}
			}
		}
	}
}

// infeasibleRef: some breakpoint asks more than the capacity available.
func infeasibleRef(p scenarios.Profile, ms []Member, regions bool) bool {
	capBy := map[string]float64{}
	var total float64
	for _, m := range ms {
		capBy[m.Info.Region] += m.Info.Capacity
		total += m.Info.Capacity
	}
	for _, g := range p.Segments() {
		for _, rate := range []float64{g.From, g.To} {
			if !regions && rate > total {
				return true
			}
			if regions {
				u := largestRemainder(int64(rate), []float64{0.2, 0.5, 0.3}) // sorted: ap-south, eu-west, us-east
				for i, reg := range []string{"ap-south", "eu-west", "us-east"} {
					if float64(u[i]) > capBy[reg] {
						return true
					}
				}
			}
		}
	}
	return false
}

func TestSplitProportionalWhenUncapped(t *testing.T) {
	ms := []Member{
		{ID: "a", Info: scenarios.NodeInfo{Capacity: 1000}},
		{ID: "b", Info: scenarios.NodeInfo{Capacity: 2000}},
		{ID: "c", Info: scenarios.NodeInfo{Capacity: 3000}},
	}
	for _, rate := range []float64{1, 2, 5, 7, 100, 101, 599, 600, 5999} {
		p := scenarios.NewProfile([]scenarios.Segment{{Dur: time.Second, From: rate, To: rate}})
		sp, err := SplitRate(p, ms, nil, 1)
		if err != nil {
			t.Fatal(err)
		}
		var sum float64
		for _, sh := range sp.Shares {
			exact := rate * map[string]float64{"a": 1, "b": 2, "c": 3}[sh.Node] / 6
			if math.Abs(sh.Segments[0].From-exact) >= 1 {
				t.Errorf("rate %v: node %s gets %v, exact share %v", rate, sh.Node, sh.Segments[0].From, exact)
			}
			sum += sh.Segments[0].From
		}
		if sum != rate {
			t.Errorf("rate %v: sum %v", rate, sum)
		}
	}
}

func TestSplitCapsSpill(t *testing.T) {
	// b is capped at 10: what it cannot take goes to a and c.
	ms := []Member{
		{ID: "a", Info: scenarios.NodeInfo{Capacity: 1000}},
		{ID: "b", Info: scenarios.NodeInfo{Capacity: 10}},
		{ID: "c", Info: scenarios.NodeInfo{Capacity: 1000}},
	}
	d := dist(t, "  weight: '1'\n")
	p := scenarios.NewProfile([]scenarios.Segment{{Dur: time.Second, From: 300, To: 300}})
	sp, err := SplitRate(p, ms, d, 1)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, sh := range sp.Shares {
		got[sh.Node] = sh.Segments[0].From
	}
	if got["b"] != 10 || got["a"] != 145 || got["c"] != 145 {
		t.Fatalf("shares %v, want b=10, a=c=145", got)
	}
}

func TestSplitSelectWeightAndRefusals(t *testing.T) {
	ms := []Member{
		{ID: "eu1", Info: scenarios.NodeInfo{Region: "eu-west", Capacity: 100, Tags: map[string]string{"tier": "spot"}}},
		{ID: "eu2", Info: scenarios.NodeInfo{Region: "eu-west", Capacity: 100}},
		{ID: "us1", Info: scenarios.NodeInfo{Region: "us-east", Capacity: 100}},
		{ID: "ap1", Info: scenarios.NodeInfo{Region: "ap-south", Capacity: 100}},
		{ID: "zero", Info: scenarios.NodeInfo{Region: "us-east", Capacity: 0}},
	}
	p := func(rate float64) scenarios.Profile {
		return scenarios.NewProfile([]scenarios.Segment{{Dur: time.Second, From: rate, To: rate}})
	}
	sp, err := SplitRate(p(150), ms, dist(t, "  select: 'node.tags[\"tier\"] != \"spot\" && node.region != \"ap-south\"'\n"), 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(sp.Shares) != 2 || sp.Shares[0].Node != "eu2" || sp.Shares[1].Node != "us1" {
		t.Fatalf("shares %+v", sp.Shares)
	}
	for id, why := range map[string]string{"eu1": "not selected", "ap1": "not selected", "zero": "capacity 0"} {
		if !strings.Contains(sp.Excluded[id], why) {
			t.Errorf("excluded[%s] = %q, want %q", id, sp.Excluded[id], why)
		}
	}
	// Over capacity: refused with the numbers.
	_, err = SplitRate(p(250), ms, dist(t, "  select: 'node.region == \"eu-west\"'\n"), 1)
	if !errors.Is(err, ErrInfeasible) || !strings.Contains(err.Error(), "need 250/s") || !strings.Contains(err.Error(), "carry 200/s") {
		t.Fatalf("err = %v", err)
	}
	// A region share no node can carry.
	_, err = SplitRate(p(300), ms, dist(t, "  regions: {eu-west: 0.5, us-east: 0.5}\n"), 1)
	if !errors.Is(err, ErrInfeasible) || !strings.Contains(err.Error(), `region "us-east"`) {
		t.Fatalf("err = %v", err)
	}
	// A region with a share and no node at all.
	_, err = SplitRate(p(10), ms, dist(t, "  regions: {eu-west: 0.5, sa-east: 0.5}\n"), 1)
	if !errors.Is(err, ErrInfeasible) || !strings.Contains(err.Error(), "sa-east") {
		t.Fatalf("err = %v", err)
	}
	// Nobody selected.
	_, err = SplitRate(p(10), ms, dist(t, "  select: 'false'\n"), 1)
	if !errors.Is(err, ErrInfeasible) || !strings.Contains(err.Error(), "no node") {
		t.Fatalf("err = %v", err)
	}
}

func TestSplitFractionalRates(t *testing.T) {
	ms := []Member{{ID: "a", Info: scenarios.NodeInfo{Capacity: 10}}, {ID: "b", Info: scenarios.NodeInfo{Capacity: 10}}, {ID: "c", Info: scenarios.NodeInfo{Capacity: 10}}}
	p := scenarios.NewProfile([]scenarios.Segment{{Dur: 10 * time.Second, From: 0.5, To: 2.5}})
	sp, err := SplitRate(p, ms, nil, 1)
	if err != nil {
		t.Fatal(err)
	}
	if sp.Unit != 0.001 {
		t.Fatalf("unit %v", sp.Unit)
	}
	var from, to float64
	seeds := map[uint64]bool{}
	for _, sh := range sp.Shares {
		from += sh.Segments[0].From
		to += sh.Segments[0].To
		seeds[sh.Seed] = true
	}
	if math.Abs(from-0.5) > 1e-9 || math.Abs(to-2.5) > 1e-9 {
		t.Fatalf("sums %v %v", from, to)
	}
	if len(seeds) != 3 {
		t.Fatal("nodes share a seed")
	}
}

func TestRank(t *testing.T) {
	ids := []string{"a", "b", "c", "d", "e"}
	r1 := Rank("test-1", ids)
	if len(r1) != 5 {
		t.Fatal(r1)
	}
	// Every node computes the same ranking, whatever order it sees members in.
	if r := Rank("test-1", []string{"e", "d", "c", "b", "a"}); strings.Join(r, ",") != strings.Join(r1, ",") {
		t.Fatalf("order depends on input: %v vs %v", r, r1)
	}
	// Removing the first keeps the others' order: the next in rank takes over.
	rest := Rank("test-1", r1[1:])
	if strings.Join(rest, ",") != strings.Join(r1[1:], ",") {
		t.Fatalf("after removing %s: %v, want %v", r1[0], rest, r1[1:])
	}
	// Tests spread over schedulers.
	first := map[string]int{}
	for i := range 1000 {
		first[Rank(fmt.Sprintf("t%d", i), ids)[0]]++
	}
	for _, id := range ids {
		if first[id] < 150 || first[id] > 250 {
			t.Errorf("node %s schedules %d of 1000 tests, want about 200", id, first[id])
		}
	}
}

func BenchmarkSplit10k(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	ms := randomMembers(r, 10_000, []string{"eu-west", "us-east", "ap-south"})
	p := scenarios.NewProfile([]scenarios.Segment{
		{Dur: time.Minute, From: 1000, To: 100_000},
		{Start: time.Minute, Dur: time.Minute, From: 100_000, To: 100_000},
	})
	d := dist(b, "  select: 'node.cpus > 1'\n  weight: 'node.capacity * node.cpus'\n  regions: {eu-west: 0.5, us-east: 0.3, ap-south: 0.2}\n")
	b.ResetTimer()
	for range b.N {
		if _, err := SplitRate(p, ms, d, 1); err != nil {
			b.Fatal(err)
		}
	}
}
