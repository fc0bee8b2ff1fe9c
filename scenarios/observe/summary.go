package observe

import (
	"math"
	"slices"
)

// Summary describes one series (seconds -> value) for the report.
type Summary struct {
	First, Min, Max, Last float64
	FirstT, LastT         int64
	N                     int
}

// Summarize returns the first, last, min and max of a series; false when
// it is empty. Series hold finite values (the sampler turns NaN and
// infinities into gaps).
func Summarize(series map[int64]float64) (Summary, bool) {
	if len(series) == 0 {
		return Summary{}, false
	}
	s := Summary{N: len(series), Min: math.Inf(1), Max: math.Inf(-1)}
	first := true
	for t, v := range series {
		if first || t < s.FirstT {
			s.FirstT, s.First = t, v
		}
		if first || t > s.LastT {
			s.LastT, s.Last = t, v
		}
		first = false
		s.Min = min(s.Min, v)
		s.Max = max(s.Max, v)
	}
	return s, true
}

// FirstMove returns the first second t >= from at which the series differs
// from its value at from: the last value at or before from or, if there is
// none, the first value after from. It answers "how long after the load
// changed did the system react". ok is false if the series never moves.
func FirstMove(series map[int64]float64, from int64) (t int64, ok bool) {
	if len(series) == 0 {
		return 0, false
	}
	ts := make([]int64, 0, len(series))
	for k := range series {
		ts = append(ts, k)
	}
	slices.Sort(ts)
	// i: the first second after from.
	i, found := slices.BinarySearch(ts, from)
	var base float64
	switch {
	case found:
		base = series[from]
		i++
	case i > 0:
		base = series[ts[i-1]]
	default:
		base = series[ts[i]]
		i++
	}
	for _, k := range ts[i:] {
		if differ(series[k], base) {
			return k, true
		}
	}
	return 0, false
}

// differ compares with a relative tolerance, so float noise from sums and
// rates does not count as a move.
func differ(a, b float64) bool {
	return math.Abs(a-b) > 1e-9*max(1, math.Abs(a), math.Abs(b))
}
