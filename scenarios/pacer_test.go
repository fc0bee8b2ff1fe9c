package scenarios

import (
	"math"
	"sort"
	"testing"
	"time"
)

func constProfile(rate float64, d time.Duration) Profile {
	return NewProfile([]Segment{{Dur: d, From: rate, To: rate}})
}

func TestUniformPacer(t *testing.T) {
	const s = time.Second
	ramp := NewProfile([]Segment{{Dur: 10 * s, From: 0, To: 10}}) // hits(t) = t^2/2
	for _, tc := range []struct {
		name    string
		p       Profile
		elapsed time.Duration
		hits    uint64
		wait    time.Duration
		stop    bool
	}{
		{"first arrival is due at once", constProfile(10, s), 0, 0, 0, false},
		{"1/s: second arrival at 1s", constProfile(1, 10*s), 0, 1, s, false},
		{"1/s: at 0.5s the second waits 0.5s", constProfile(1, 10*s), s / 2, 1, s / 2, false},
		{"1/s: late arrival has negative wait", constProfile(1, 10*s), 3 * s, 1, -2 * s, false},
		{"100/s: arrival 50 at 500ms", constProfile(100, s), 0, 50, 500 * time.Millisecond, false},
		{"10/s over 1s: 10 arrivals, the 11th stops", constProfile(10, s), 0, 10, 0, true},
		{"10/s over 1s: the 10th is at 900ms", constProfile(10, s), 0, 9, 900 * time.Millisecond, false},
		{"ramp 0->10 over 10s: arrival 2 at 2s", ramp, 0, 2, 2 * s, false},
		{"ramp 0->10 over 10s: arrival 8 at 4s", ramp, 0, 8, 4 * s, false},
		{"ramp 0->10 over 10s: arrival 50 stops (total 50)", ramp, 0, 50, 0, true},
		{"zero profile stops at once", NewProfile(nil), 0, 0, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wait, stop := UniformPacer{Profile: tc.p}.Pace(tc.elapsed, tc.hits)
			if stop != tc.stop || (!stop && absDur(wait-tc.wait) > time.Microsecond) {
				t.Fatalf("Pace(%s, %d) = (%s, %v), want (%s, %v)", tc.elapsed, tc.hits, wait, stop, tc.wait, tc.stop)
			}
		})
	}
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

func TestProfileHitsAndInverse(t *testing.T) {
	p := NewProfile([]Segment{
		{Start: 0, Dur: 2 * time.Second, From: 10, To: 10},               // 20 arrivals
		{Start: 2 * time.Second, Dur: 4 * time.Second, From: 10, To: 30}, // 80 arrivals
		{Start: 6 * time.Second, Dur: 1 * time.Second, From: 0, To: 0},   // pause
		{Start: 7 * time.Second, Dur: 2 * time.Second, From: 40, To: 0},  // 40 arrivals
	})
	if got := p.Total(); math.Abs(got-140) > 1e-9 {
		t.Fatalf("Total = %v, want 140", got)
	}
	for _, tc := range []struct {
		t    time.Duration
		hits float64
		rate float64
	}{
		{0, 0, 10},
		{time.Second, 10, 10},
		{2 * time.Second, 20, 10},
		{4 * time.Second, 50, 20}, // 20 + 10*2 + (30-10)*2*2/(2*4)
		{6500 * time.Millisecond, 100, 0},
		{8 * time.Second, 100 + 40 - 10, 20},
		{20 * time.Second, 140, 0},
	} {
		if got := p.Hits(tc.t); math.Abs(got-tc.hits) > 1e-9 {
			t.Errorf("Hits(%s) = %v, want %v", tc.t, got, tc.hits)
		}
		if got := p.RateAt(tc.t); math.Abs(got-tc.rate) > 1e-9 {
			t.Errorf("RateAt(%s) = %v, want %v", tc.t, got, tc.rate)
		}
	}
	// TimeOf inverts Hits everywhere the rate is positive.
	for h := 0.0; h < 140; h += 0.37 {
		at, ok := p.TimeOf(h)
		if !ok {
			t.Fatalf("TimeOf(%v) not ok", h)
		}
		if got := p.Hits(at); math.Abs(got-h) > 1e-6 {
			t.Fatalf("Hits(TimeOf(%v)=%s) = %v", h, at, got)
		}
	}
	if _, ok := p.TimeOf(140); ok {
		t.Fatal("TimeOf(total) should be past the end")
	}
}

// TestStageMath checks the compiled shapes against their definition.
func TestStageMath(t *testing.T) {
	for _, tc := range []struct {
		name  string
		yaml  string
		total float64
		rates map[time.Duration]float64
	}{
		{"constant", "{duration: 10s, rate: 5}", 50, map[time.Duration]float64{0: 5, 9 * time.Second: 5}},
		{"ramp", "{duration: 10s, rate: 0, to: 10}", 50, map[time.Duration]float64{5 * time.Second: 5}},
		{"spike", "{duration: 10s, rate: 10, to: 110, shape: spike, at: 2s, rise: 1s, hold: 2s, fall: 1s}",
			10*10 + 100*(0.5+2+0.5), map[time.Duration]float64{time.Second: 10, 2500 * time.Millisecond: 60, 4 * time.Second: 110, 8 * time.Second: 10}},
		{"burst", "{duration: 10s, rate: 10, to: 50, shape: burst, every: 5s, for: 1s}",
			2*50 + 8*10, map[time.Duration]float64{500 * time.Millisecond: 50, 2 * time.Second: 10, 5500 * time.Millisecond: 50}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc, err := Parse([]byte("name: x\ntarget: http://127.0.0.1:1\nrequests: [{name: a}]\nload:\n  stages: [" + tc.yaml + "]\n"))
			if err != nil {
				t.Fatal(err)
			}
			if got := sc.Profile.Total(); math.Abs(got-tc.total) > 1e-6 {
				t.Errorf("total = %v, want %v", got, tc.total)
			}
			for at, want := range tc.rates {
				if got := sc.Profile.RateAt(at); math.Abs(got-want) > 1e-6 {
					t.Errorf("rate at %s = %v, want %v", at, got, want)
				}
			}
		})
	}
}

// TestPoissonArrivals checks that gaps at a constant rate are exponential:
// mean 1/rate, and a Kolmogorov-Smirnov distance small enough for n gaps.
func TestPoissonArrivals(t *testing.T) {
	const rate = 1000.0
	const n = 20000
	p := NewPoissonPacer(constProfile(rate, time.Hour), 42)
	gaps := make([]float64, 0, n)
	var prev time.Duration
	for i := uint64(0); i < n; i++ {
		w, stop := p.Pace(0, i)
		if stop {
			t.Fatal("stopped early")
		}
		if i > 0 {
			gaps = append(gaps, (w - prev).Seconds())
		}
		prev = w
	}
	var sum float64
	for _, g := range gaps {
		sum += g
	}
	mean := sum / float64(len(gaps))
	if math.Abs(mean*rate-1) > 0.03 {
		t.Errorf("mean gap = %v s, want %v s within 3%%", mean, 1/rate)
	}
	sort.Float64s(gaps)
	var d float64
	for i, g := range gaps {
		cdf := 1 - math.Exp(-rate*g)
		d = math.Max(d, math.Max(math.Abs(cdf-float64(i)/float64(len(gaps))), math.Abs(cdf-float64(i+1)/float64(len(gaps)))))
	}
	// The 1% critical value of the KS statistic is 1.63/sqrt(n).
	if crit := 1.63 / math.Sqrt(float64(len(gaps))); d > crit {
		t.Errorf("KS distance %v > %v: gaps are not exponential", d, crit)
	}
	// The count of arrivals over a second is about the rate, and replays
	// the same way from the same seed.
	again := NewPoissonPacer(constProfile(rate, time.Hour), 42)
	w1, _ := p.Pace(0, 5)
	w2, _ := again.Pace(0, 5)
	if w1 != w2 {
		t.Errorf("same seed, different schedule: %s vs %s", w1, w2)
	}
	other := NewPoissonPacer(constProfile(rate, time.Hour), 43)
	if w3, _ := other.Pace(0, 5); w3 == w1 {
		t.Errorf("different seeds gave the same schedule")
	}
}

func TestPoissonFollowsRamp(t *testing.T) {
	// Over a ramp the count in each window follows the integral of the rate.
	prof := NewProfile([]Segment{{Dur: 10 * time.Second, From: 100, To: 1100}})
	p := NewPoissonPacer(prof, 7)
	counts := make([]int, 10)
	for i := uint64(0); ; i++ {
		w, stop := p.Pace(0, i)
		if stop {
			break
		}
		counts[int(w/time.Second)]++
	}
	for s, c := range counts {
		want := prof.SecondPlanned(int64(s))
		if math.Abs(float64(c)-want) > 4*math.Sqrt(want) {
			t.Errorf("second %d: %d arrivals, want %v ± 4σ", s, c, want)
		}
	}
}

func TestProfileSplice(t *testing.T) {
	s := time.Second
	p := NewProfile([]Segment{{Dur: 10 * s, From: 0, To: 100}})
	q := NewProfile([]Segment{{Dur: 4 * s, From: 7, To: 7}, {Start: 4 * s, Dur: 8 * s, From: 50, To: 50}})
	sp := p.Splice(5*s, q)
	// Before the splice, p exactly; after it, q.
	for _, at := range []time.Duration{0, s, 4900 * time.Millisecond} {
		if sp.Hits(at) != p.Hits(at) || sp.RateAt(at) != p.RateAt(at) {
			t.Fatalf("at %s: spliced %v/%v, p %v/%v", at, sp.Hits(at), sp.RateAt(at), p.Hits(at), p.RateAt(at))
		}
	}
	for _, at := range []time.Duration{5 * s, 6 * s, 11 * s} {
		if math.Abs(sp.RateAt(at)-q.RateAt(at)) > 1e-9 {
			t.Fatalf("at %s: spliced rate %v, q %v", at, sp.RateAt(at), q.RateAt(at))
		}
	}
	if sp.Duration() != 12*s || math.Abs(sp.Total()-(p.Hits(5*s)+q.Total()-q.Hits(5*s))) > 1e-9 {
		t.Fatalf("duration %s total %v", sp.Duration(), sp.Total())
	}
	// Until stops arrivals at the cut.
	u := p.Until(4 * s)
	if u.Duration() != 4*s || u.Total() != p.Hits(4*s) {
		t.Fatalf("until: %s %v", u.Duration(), u.Total())
	}
	// Splicing past the end of p pads with a zero rate.
	late := NewProfile([]Segment{{Dur: s, From: 1, To: 1}}).Splice(3*s, q)
	if late.RateAt(2*s) != 0 || late.RateAt(3*s) != 7 {
		t.Fatalf("padding: %v %v", late.RateAt(2*s), late.RateAt(3*s))
	}
}
