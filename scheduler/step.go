package scheduler

import (
	"math"
	"sort"
	"time"

	"github.com/loadswarm/loadswarm/scenarios"
)

// Shares are piecewise linear, so two of them compare exactly at the
// breakpoints of both: between two breakpoints their difference is linear.
// A breakpoint may be a jump, so each is looked at from both sides.

// below reports whether x is lower than y anywhere from `from` on, by more
// than float error.
func below(x, y []scenarios.Segment, from time.Duration) bool {
	for _, t := range breakpoints(x, y, from) {
		xl, xr := rateNear(x, t)
		yl, yr := rateNear(y, t)
		if t > from && yl-xl > rateEps(yl) || yr-xr > rateEps(yr) {
			return true
		}
	}
	return false
}

// minSegments is the lower of x and y from `from` on, and nothing before:
// contiguous segments from 0, or nil when that is zero throughout.
func minSegments(x, y []scenarios.Segment, from time.Duration) []scenarios.Segment {
	pts := breakpoints(x, y, from)
	var segs []scenarios.Segment
	any := false
	add := func(a, b time.Duration, ra, rb float64) {
		if b <= a {
			return
		}
		any = any || ra > 0 || rb > 0
		segs = append(segs, scenarios.Segment{Start: a, Dur: b - a, From: ra, To: rb})
	}
	for i := 0; i+1 < len(pts); i++ {
		a, b := pts[i], pts[i+1]
		_, xa := rateNear(x, a)
		_, ya := rateNear(y, a)
		xb, _ := rateNear(x, b)
		yb, _ := rateNear(y, b)
		da, db := xa-ya, xb-yb
		if da*db < 0 {
			// They cross inside: the lower one changes there.
			c := a + time.Duration(float64(b-a)*da/(da-db))
			if c > a && c < b {
				rc := xa + (xb-xa)*float64(c-a)/float64(b-a)
				add(a, c, math.Min(xa, ya), rc)
				add(c, b, rc, math.Min(xb, yb))
				continue
			}
		}
		add(a, b, math.Min(xa, ya), math.Min(xb, yb))
	}
	if !any {
		return nil
	}
	return scenarios.Profile{}.Splice(from, scenarios.NewProfile(segs)).Segments()
}

// short reports whether p's shares add up to less than the test's rate
// anywhere from `from` on (split rounding aside).
func short(p *Plan, test scenarios.Profile, from time.Duration) bool {
	tsegs := test.Segments()
	pts := breakpoints(tsegs, nil, from)
	for _, s := range p.Shares {
		pts = append(pts, breakpoints(s.Segments, nil, from)...)
	}
	slack := 0.0015
	for _, t := range pts {
		if t > test.Duration() {
			continue
		}
		tl, tr := rateNear(tsegs, t)
		var sl, sr float64
		for _, s := range p.Shares {
			l, r := rateNear(s.Segments, t)
			sl, sr = sl+l, sr+r
		}
		if t > from && tl-sl > slack+rateEps(tl) || tr-sr > slack+rateEps(tr) {
			return true
		}
	}
	return false
}

// breakpoints are from and every segment edge of x and y after it, sorted.
func breakpoints(x, y []scenarios.Segment, from time.Duration) []time.Duration {
	pts := []time.Duration{from}
	for _, segs := range [][]scenarios.Segment{x, y} {
		for _, g := range segs {
			for _, t := range []time.Duration{g.Start, g.Start + g.Dur} {
				if t > from {
					pts = append(pts, t)
				}
			}
		}
	}
	sort.Slice(pts, func(i, j int) bool { return pts[i] < pts[j] })
	out := pts[:1]
	for _, t := range pts[1:] {
		if t != out[len(out)-1] {
			out = append(out, t)
		}
	}
	return out
}

// rateNear is the rate of segs just before t and just after it (0 where no
// segment is).
func rateNear(segs []scenarios.Segment, t time.Duration) (before, after float64) {
	for _, g := range segs {
		end := g.Start + g.Dur
		at := func() float64 { return g.From + (g.To-g.From)*float64(t-g.Start)/float64(g.Dur) }
		if g.Dur <= 0 {
			continue
		}
		if g.Start < t && t <= end {
			before = at()
		}
		if g.Start <= t && t < end {
			after = at()
		}
	}
	return before, after
}

// rateEps is float error on a rate, not a real difference.
func rateEps(r float64) float64 { return 1e-9 + 1e-9*math.Abs(r) }
