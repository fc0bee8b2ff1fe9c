package storage

import (
	"encoding/json"
	"maps"
	"math"
	"slices"
	"testing"
	"time"
)

// handSeries is a small series with known numbers. All latencies are under
// 2048 µs, where HDR histograms are exact.
func handSeries() *Series {
	s := NewSeries()
	add := func(sec *Second, d Dim, c Counters, lat time.Duration, n int) {
		b := sec.Bucket(d)
		b.Counters.Add(c)
		if n > 0 && b.Latency == nil {
			b.Latency, b.Service = NewHistogram(), NewHistogram()
		}
		for range n {
			b.Latency.Record(lat)
			b.Service.Record(lat / 2)
		}
	}
	s5, s6, s7 := NewSecond(5), NewSecond(6), NewSecond(7)
	add(s5, Dim{"login", "2xx", ""}, Counters{Planned: 10, Arrivals: 10, Requests: 10, BytesIn: 1000, BytesOut: 500}, time.Millisecond, 10)
	add(s5, Dim{"login", "", "timeout"}, Counters{Requests: 2, Errors: 2}, 1500*time.Microsecond, 2)
	add(s5, Dim{"login", "", "dropped"}, Counters{Planned: 3, Dropped: 3}, 0, 0)
	add(s6, Dim{"buy", "2xx", ""}, Counters{Planned: 4, Arrivals: 4, Requests: 4, BytesIn: 400}, 2*time.Millisecond, 4)
	add(s6, Dim{"buy", "5xx", "http_5xx"}, Counters{Requests: 1, Errors: 1}, time.Millisecond, 1)
	add(s7, Dim{"login", "2xx", ""}, Counters{Planned: 2, Arrivals: 2, Requests: 2}, time.Millisecond, 2)
	for _, sec := range []*Second{s5, s6, s7} {
		if err := s.Add(sec); err != nil {
			panic(err)
		}
	}
	return s
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func TestSummarize(t *testing.T) {
	s := Summarize(handSeries(), nil)
	ints := []struct {
		name      string
		got, want int64
	}{
		{"requests", s.Requests, 19}, // 10+2 at T5, 4+1 at T6, 2 at T7
		{"errors", s.Errors, 3},      // 2 timeouts, 1 http_5xx
		{"dropped", s.Dropped, 3},
		{"arrivals", s.Arrivals, 16},
		{"planned", s.Planned, 19}, // arrivals and dropped ones
		{"bytes in", s.BytesIn, 1400},
		{"bytes out", s.BytesOut, 500},
	}
	for _, c := range ints {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
	floats := []struct {
		name      string
		got, want float64
	}{
		{"error rate", s.ErrorRate, 3.0 / 19},
		{"duration", s.DurationSec, 3}, // T 5 to 7
		{"target rate", s.Rate.Target, 19.0 / 3},
		{"achieved rate", s.Rate.Achieved, 16.0 / 3},
		{"request rate", s.Rate.Requests, 19.0 / 3},
		// 19 latencies: 13 × 1 ms, 2 × 1.5 ms, 4 × 2 ms
		{"p50", s.Latency.P50, 1},          // the 10th
		{"p90", s.Latency.P90, 2},          // the 17th
		{"p95", s.Latency.P95, 2},          // the 18th
		{"p99", s.Latency.P99, 2},          // the 19th
		{"max", s.Latency.Max, 2},          // the 19th
		{"min", s.Latency.Min, 1},          // the 1st
		{"mean", s.Latency.Mean, 1.263158}, // 24/19, to the ns
		{"service p50", s.Service.P50, 0.5},
		{"service max", s.Service.Max, 1},
	}
	for _, c := range floats {
		if !near(c.got, c.want) {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if want := map[string]int64{"timeout": 2, "http_5xx": 1}; !maps.Equal(s.ErrorsByClass, want) {
		t.Errorf("errors by class %v, want %v", s.ErrorsByClass, want)
	}
	if want := map[string]int64{"2xx": 16, "5xx": 1}; !maps.Equal(s.StatusClasses, want) {
		t.Errorf("status classes %v, want %v", s.StatusClasses, want)
	}
}

func TestSummarizeBy(t *testing.T) {
	series := handSeries()
	total := Summarize(series, nil)
	by := SummarizeBy(series, func(d Dim) string { return d.Step })
	if got := slices.Sorted(maps.Keys(by)); !slices.Equal(got, []string{"buy", "login"}) {
		t.Fatalf("groups %v", got)
	}
	var sum Summary
	var target, achieved, requests float64
	for _, g := range by {
		if g.DurationSec != total.DurationSec {
			t.Errorf("group duration %v, want the series' %v", g.DurationSec, total.DurationSec)
		}
		sum.Requests += g.Requests
		sum.Errors += g.Errors
		sum.Dropped += g.Dropped
		sum.Arrivals += g.Arrivals
		sum.Planned += g.Planned
		sum.BytesIn += g.BytesIn
		sum.BytesOut += g.BytesOut
		target += g.Rate.Target
		achieved += g.Rate.Achieved
		requests += g.Rate.Requests
	}
	if sum.Requests != total.Requests || sum.Errors != total.Errors || sum.Dropped != total.Dropped ||
		sum.Arrivals != total.Arrivals || sum.Planned != total.Planned || sum.BytesIn != total.BytesIn || sum.BytesOut != total.BytesOut {
		t.Errorf("groups add up to %s, total is %s", summaryLine(sum), summaryLine(total))
	}
	if !near(target, total.Rate.Target) || !near(achieved, total.Rate.Achieved) || !near(requests, total.Rate.Requests) {
		t.Errorf("group rates add up to %v %v %v, total %+v", target, achieved, requests, total.Rate)
	}
	buy := by["buy"]
	if buy.Requests != 5 || buy.Errors != 1 || buy.Latency.P50 != 2 || buy.Latency.Min != 1 {
		t.Errorf("buy: %s", summaryLine(buy))
	}
	// Summarize with keep gives the same numbers as the group.
	kept := Summarize(series, func(d Dim) bool { return d.Step == "buy" })
	if summaryLine(kept) != summaryLine(buy) || kept.Rate != buy.Rate {
		t.Errorf("kept %s, group %s", summaryLine(kept), summaryLine(buy))
	}
}

func TestSummarizeSecond(t *testing.T) {
	s := SummarizeSecond(handSeries().Seconds[5])
	if s.DurationSec != 1 || s.Requests != 12 || s.Rate.Requests != 12 || s.Rate.Target != 13 || s.Latency.Max != 1.5 {
		t.Errorf("second 5: %s rate %+v", summaryLine(s), s.Rate)
	}
}

func TestSummarizeEmpty(t *testing.T) {
	for name, s := range map[string]Summary{
		"empty series": Summarize(NewSeries(), nil),
		"nil series":   Summarize(nil, nil),
		"nil second":   SummarizeSecond(nil),
		"filtered out": Summarize(handSeries(), func(Dim) bool { return false }),
	} {
		if s.Requests != 0 || s.ErrorRate != 0 || s.Latency != (Latency{}) || s.ErrorsByClass == nil || s.StatusClasses == nil {
			t.Errorf("%s: %+v", name, s)
		}
		if _, err := json.Marshal(s); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if got := SummarizeBy(NewSeries(), func(d Dim) string { return d.Step }); len(got) != 0 {
		t.Errorf("SummarizeBy of nothing: %v", got)
	}
}

// TestSummaryJSON pins the JSON names the CLI prints.
func TestSummaryJSON(t *testing.T) {
	b, err := json.Marshal(Summarize(handSeries(), nil))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	want := []string{"arrivals", "bytes_in", "bytes_out", "dropped", "duration_s", "error_rate", "errors",
		"errors_by_class", "latency_ms", "planned", "rate", "requests", "service_ms", "status_classes"}
	if got := slices.Sorted(maps.Keys(m)); !slices.Equal(got, want) {
		t.Errorf("keys %v, want %v", got, want)
	}
	lat := m["latency_ms"].(map[string]any)
	if got := slices.Sorted(maps.Keys(lat)); !slices.Equal(got, []string{"max", "mean", "min", "p50", "p90", "p95", "p99"}) {
		t.Errorf("latency keys %v", got)
	}
	rate := m["rate"].(map[string]any)
	if got := slices.Sorted(maps.Keys(rate)); !slices.Equal(got, []string{"achieved", "requests", "target"}) {
		t.Errorf("rate keys %v", got)
	}
}

// TestSummarizeSpanIgnoresDrainSeconds: the seconds after the last planned
// arrival, where only responses come in, do not dilute the rates.
func TestSummarizeSpanIgnoresDrainSeconds(t *testing.T) {
	s := NewSeries()
	for i := int64(0); i < 10; i++ {
		sec := NewSecond(i)
		b := sec.Bucket(Dim{Step: "a"})
		b.Planned, b.Arrivals = 100, 100
		if err := s.Add(sec); err != nil {
			t.Fatal(err)
		}
	}
	tail := NewSecond(10)
	b := tail.Bucket(Dim{Step: "a", Status: "2xx"})
	b.Requests = 3
	b.Latency, b.Service = NewHistogram(), NewHistogram()
	for range 3 {
		b.Latency.Record(time.Millisecond)
		b.Service.Record(time.Millisecond)
	}
	if err := s.Add(tail); err != nil {
		t.Fatal(err)
	}
	sum := Summarize(s, nil)
	if sum.DurationSec != 10 || sum.Rate.Target != 100 || sum.Rate.Achieved != 100 {
		t.Fatalf("duration %v target %v achieved %v; want 10, 100, 100", sum.DurationSec, sum.Rate.Target, sum.Rate.Achieved)
	}
	// A series without planned arrivals spans all its seconds.
	only := NewSeries()
	_ = only.Add(tail.Clone())
	if d := Summarize(only, nil).DurationSec; d != 1 {
		t.Fatalf("duration %v, want 1", d)
	}
}
