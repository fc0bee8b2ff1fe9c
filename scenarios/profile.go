package scenarios

import (
	"math"
	"time"
)

// Segment is a piece of an arrival profile: over [Start, Start+Dur) the rate
// moves linearly from From to To arrivals per second. It travels as it is
// in plans (durations in nanoseconds).
type Segment struct {
	Start time.Duration `cbor:"1,keyasint"`
	Dur   time.Duration `cbor:"2,keyasint"`
	From  float64       `cbor:"3,keyasint"`
	To    float64       `cbor:"4,keyasint"`
}

// hits returns the expected arrivals in the first x seconds of the segment.
func (s Segment) hits(x float64) float64 {
	d := s.Dur.Seconds()
	return s.From*x + (s.To-s.From)*x*x/(2*d)
}

// Profile is a piecewise-linear arrival rate over time: the whole load shape
// of a test, or one node's share of it. Its methods are pure functions; a
// Profile is never changed after NewProfile, so it is safe to share.
type Profile struct {
	segs []Segment
	cum  []float64 // cum[i] = expected arrivals before segment i
}

// NewProfile builds a profile from segments laid end to end in order.
// Segments must be contiguous from 0; Compile guarantees it for scenarios.
func NewProfile(segs []Segment) Profile {
	p := Profile{segs: append([]Segment(nil), segs...), cum: make([]float64, len(segs)+1)}
	for i, s := range p.segs {
		p.cum[i+1] = p.cum[i] + s.hits(s.Dur.Seconds())
	}
	return p
}

// Segments returns a copy of the profile's segments.
func (p Profile) Segments() []Segment { return append([]Segment(nil), p.segs...) }

// Duration is the length of the profile.
func (p Profile) Duration() time.Duration {
	if len(p.segs) == 0 {
		return 0
	}
	last := p.segs[len(p.segs)-1]
	return last.Start + last.Dur
}

// Total is the expected number of arrivals over the whole profile.
func (p Profile) Total() float64 { return p.cum[len(p.cum)-1] }

// seg finds the segment holding t (the last one for t past the end).
func (p Profile) seg(t time.Duration) int {
	lo, hi := 0, len(p.segs)-1
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if p.segs[mid].Start <= t {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}

// RateAt is the planned rate at t, in arrivals per second; 0 outside the
// profile.
func (p Profile) RateAt(t time.Duration) float64 {
	if len(p.segs) == 0 || t < 0 || t >= p.Duration() {
		return 0
	}
	s := p.segs[p.seg(t)]
	return s.From + (s.To-s.From)*float64(t-s.Start)/float64(s.Dur)
}

// Hits is the expected number of arrivals in [0, t).
func (p Profile) Hits(t time.Duration) float64 {
	if len(p.segs) == 0 || t <= 0 {
		return 0
	}
	if t >= p.Duration() {
		return p.Total()
	}
	i := p.seg(t)
	return p.cum[i] + p.segs[i].hits((t - p.segs[i].Start).Seconds())
}

// TimeOf inverts Hits: the earliest t at which h arrivals are expected. ok is
// false when the profile never reaches h.
func (p Profile) TimeOf(h float64) (t time.Duration, ok bool) {
	if h < 0 || len(p.segs) == 0 || h >= p.Total()-1e-9 {
		return 0, h == 0 && p.Total() > 1e-9
	}
	// Binary search on cumulative hits: the first segment whose end is
	// past h.
	lo, hi := 0, len(p.segs)-1
	for lo < hi {
		mid := (lo + hi) / 2
		if p.cum[mid+1] > h {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	s := p.segs[lo]
	r := h - p.cum[lo] // arrivals into this segment
	d := s.Dur.Seconds()
	k := (s.To - s.From) / (2 * d)
	var x float64
	if math.Abs(k) < 1e-12 {
		x = r / s.From
	} else {
		// k x^2 + From x - r = 0, in the form that stays stable as k -> 0.
		disc := s.From*s.From + 4*k*r
		x = 2 * r / (s.From + math.Sqrt(math.Max(disc, 0)))
	}
	x = math.Min(math.Max(x, 0), d)
	return s.Start + time.Duration(x*float64(time.Second)), true
}

// Scale returns the profile with every rate multiplied by f: a node's
// share of a test.
func (p Profile) Scale(f float64) Profile {
	segs := p.Segments()
	for i := range segs {
		segs[i].From *= f
		segs[i].To *= f
	}
	return NewProfile(segs)
}

// SecondPlanned returns the expected arrivals in second i of the profile
// (for the target rate in reports).
func (p Profile) SecondPlanned(i int64) float64 {
	return p.Hits(time.Duration(i+1)*time.Second) - p.Hits(time.Duration(i)*time.Second)
}

// Splice returns a profile that follows p before at and q from at on. The
// expected arrivals before at are p's, so a pacer that has issued n
// arrivals under p can go on under the spliced profile without a jump: this
// is how a node takes a new share mid-test.
func (p Profile) Splice(at time.Duration, q Profile) Profile {
	var segs []Segment
	for _, s := range p.segs {
		if s.Start >= at {
			break
		}
		if end := s.Start + s.Dur; end > at {
			s = s.cut(s.Start, at)
		}
		segs = append(segs, s)
	}
	if len(segs) > 0 {
		last := segs[len(segs)-1]
		if gap := at - (last.Start + last.Dur); gap > 0 {
			segs = append(segs, Segment{Start: last.Start + last.Dur, Dur: gap})
		}
	} else if at > 0 {
		segs = append(segs, Segment{Dur: at})
	}
	for _, s := range q.segs {
		end := s.Start + s.Dur
		if end <= at {
			continue
		}
		if s.Start < at {
			s = s.cut(at, end)
		}
		segs = append(segs, s)
	}
	return NewProfile(segs)
}

// cut returns the part of s over [from, to), with its rates interpolated.
func (s Segment) cut(from, to time.Duration) Segment {
	rate := func(t time.Duration) float64 {
		return s.From + (s.To-s.From)*float64(t-s.Start)/float64(s.Dur)
	}
	return Segment{Start: from, Dur: to - from, From: rate(from), To: rate(to)}
}

// Until returns p cut at at: no arrivals from then on.
func (p Profile) Until(at time.Duration) Profile { return p.Splice(at, Profile{}) }
