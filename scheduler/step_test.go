package scheduler

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/loadswarm/loadswarm/scenarios"
)

// randomShare is a contiguous profile of a few segments, with jumps and
// ramps, as splits make them.
func randomShare(r *rand.Rand) []scenarios.Segment {
	var segs []scenarios.Segment
	var at time.Duration
	for range 1 + r.IntN(4) {
		d := time.Duration(1+r.IntN(10)) * 500 * time.Millisecond
		segs = append(segs, scenarios.Segment{Start: at, Dur: d, From: float64(r.IntN(5) * 10), To: float64(r.IntN(5) * 10)})
		at += d
	}
	return segs
}

// TestMinSegmentsAgainstSampling checks minSegments and below against a
// reference that samples both shares every millisecond.
func TestMinSegmentsAgainstSampling(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		x, y := randomShare(r), randomShare(r)
		from := time.Duration(r.IntN(8)) * 500 * time.Millisecond
		px, py := scenarios.NewProfile(x), scenarios.NewProfile(y)
		m := minSegments(x, y, from)
		pm := scenarios.NewProfile(m)
		if m != nil {
			p := Plan{TestID: "t", Epoch: 1, Scheduler: "a", Shares: []Share{{Node: "a", Segments: m}}}
			if err := p.Validate(); err != nil {
				t.Fatalf("case %d: %v", i, err)
			}
		}
		end := max(px.Duration(), py.Duration())
		lower := false
		for at := time.Duration(0); at < end; at += time.Millisecond {
			want := 0.0
			if at >= from {
				want = math.Min(px.RateAt(at), py.RateAt(at))
				lower = lower || px.RateAt(at) < py.RateAt(at)-1e-9
			}
			if got := pm.RateAt(at); math.Abs(got-want) > 1e-6 {
				t.Fatalf("case %d at %s: min %g, want %g (x %v y %v from %s)", i, at, got, want, x, y, from)
			}
		}
		if got := below(x, y, from); got != lower {
			t.Fatalf("case %d: below %v, want %v (x %v y %v from %s)", i, got, lower, x, y, from)
		}
	}
}
