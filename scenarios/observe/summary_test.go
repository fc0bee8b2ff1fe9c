package observe

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestSummarize(t *testing.T) {
	tests := []struct {
		name   string
		series map[int64]float64
		want   Summary
		ok     bool
	}{
		{"empty", nil, Summary{}, false},
		{"one", map[int64]float64{5: 3}, Summary{First: 3, Min: 3, Max: 3, Last: 3, FirstT: 5, LastT: 5, N: 1}, true},
		{"several", map[int64]float64{3: 2, 1: 4, 7: -1, 4: 9}, Summary{First: 4, Min: -1, Max: 9, Last: -1, FirstT: 1, LastT: 7, N: 4}, true},
		{"negative seconds", map[int64]float64{-2: 1, 0: 0}, Summary{First: 1, Min: 0, Max: 1, Last: 0, FirstT: -2, LastT: 0, N: 2}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := Summarize(tc.series)
			if ok != tc.ok || got != tc.want {
				t.Fatalf("Summarize = %+v, %v; want %+v, %v", got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestFirstMove(t *testing.T) {
	s := map[int64]float64{0: 1, 1: 1, 2: 1, 5: 2, 6: 2, 8: 1}
	tests := []struct {
		name   string
		series map[int64]float64
		from   int64
		want   int64
		ok     bool
	}{
		{"empty", nil, 0, 0, false},
		{"moves", s, 0, 5, true},
		{"from between samples uses the last value before", s, 3, 5, true},
		{"from on a changed value", s, 5, 8, true},
		{"from after the last change", s, 8, 0, false},
		{"from after the end", s, 100, 0, false},
		{"from before the start uses the first value", s, -10, 5, true},
		{"from before a first value that differs later", map[int64]float64{4: 7, 9: 8}, 0, 9, true},
		{"flat", map[int64]float64{0: 3, 1: 3, 2: 3}, 0, 0, false},
		{"float noise is not a move", map[int64]float64{0: 0.1 + 0.2, 1: 0.3, 2: 1e12, 3: 1e12 + 1}, 2, 0, false},
		{"a small real change is a move", map[int64]float64{0: 0, 1: 1e-6}, 0, 1, true},
		{"single", map[int64]float64{3: 1}, 3, 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := FirstMove(tc.series, tc.from)
			if got != tc.want || ok != tc.ok {
				t.Fatalf("FirstMove(%v, %d) = %d, %v; want %d, %v", tc.series, tc.from, got, ok, tc.want, tc.ok)
			}
		})
	}
}

// Brute-force references: scan every second in the series' range.

func refSummarize(series map[int64]float64) (Summary, bool) {
	if len(series) == 0 {
		return Summary{}, false
	}
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	for t := range series {
		lo, hi = min(lo, t), max(hi, t)
	}
	s := Summary{FirstT: lo, LastT: hi, First: series[lo], Last: series[hi], Min: series[lo], Max: series[lo]}
	for t := lo; t <= hi; t++ {
		if v, ok := series[t]; ok {
			s.N++
			if v < s.Min {
				s.Min = v
			}
			if v > s.Max {
				s.Max = v
			}
		}
	}
	return s, true
}

func refFirstMove(series map[int64]float64, from int64) (int64, bool) {
	if len(series) == 0 {
		return 0, false
	}
	lo, hi := int64(math.MaxInt64), int64(math.MinInt64)
	for t := range series {
		lo, hi = min(lo, t), max(hi, t)
	}
	var base float64
	found := false
	for t := from; t >= lo; t-- {
		if v, ok := series[t]; ok {
			base, found = v, true
			break
		}
	}
	if !found {
		for t := from + 1; t <= hi; t++ {
			if v, ok := series[t]; ok {
				base, found = v, true
				break
			}
		}
	}
	for t := from; t <= hi; t++ {
		if v, ok := series[t]; ok && v != base && math.Abs(v-base) > 1e-9*max(1, math.Abs(v), math.Abs(base)) {
			return t, true
		}
	}
	return 0, false
}

func TestSummaryProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 5000 {
		n := r.IntN(12)
		series := make(map[int64]float64, n)
		for range n {
			// Few distinct values so that moves and non-moves both happen.
			series[int64(r.IntN(40)-10)] = float64(r.IntN(3)) * []float64{1, 1e-10, 1e6}[r.IntN(3)]
		}
		from := int64(r.IntN(60) - 20)
		gs, gok := Summarize(series)
		ws, wok := refSummarize(series)
		if gs != ws || gok != wok {
			t.Fatalf("case %d: Summarize(%v) = %+v,%v; reference %+v,%v", i, series, gs, gok, ws, wok)
		}
		gt, gok := FirstMove(series, from)
		wt, wok := refFirstMove(series, from)
		if gt != wt || gok != wok {
			t.Fatalf("case %d: FirstMove(%v, %d) = %d,%v; reference %d,%v", i, series, from, gt, gok, wt, wok)
		}
		if gok && gt < from {
			t.Fatalf("case %d: move at %d before from %d", i, gt, from)
		}
	}
}
