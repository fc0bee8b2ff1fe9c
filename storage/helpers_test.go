package storage

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// countsOf lists a histogram's non-zero counts as "index:count" pairs.
func countsOf(h *Histogram) []string {
	var out []string
	h.forEachCount(func(idx int32, c int64) { out = append(out, fmt.Sprintf("%d:%d", idx, c)) })
	return out
}

// histEqual reports whether two histograms hold the same values, whatever
// their representation.
func histEqual(a, b *Histogram) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.params() == b.params() && a.clamped == b.clamped && a.Count() == b.Count() &&
		fmt.Sprint(countsOf(a)) == fmt.Sprint(countsOf(b))
}

func mustEncodeSeries(t testing.TB, s *Series) []byte {
	t.Helper()
	b, err := EncodeSeries(s)
	if err != nil {
		t.Fatalf("EncodeSeries: %v", err)
	}
	return b
}

func mustEncodeSecond(t testing.TB, s *Second) []byte {
	t.Helper()
	b, err := EncodeSecond(s)
	if err != nil {
		t.Fatalf("EncodeSecond: %v", err)
	}
	return b
}

// sameSeries fails the test unless a and b encode the same. The encoding is
// deterministic and leaves out only empty histograms and nil entries.
func sameSeries(t *testing.T, what string, a, b *Series) {
	t.Helper()
	if ea, eb := mustEncodeSeries(t, a), mustEncodeSeries(t, b); !bytes.Equal(ea, eb) {
		t.Errorf("%s: series differ:\n%s\n%s", what, summaryLine(Summarize(a, nil)), summaryLine(Summarize(b, nil)))
	}
}

// summaryLine helps test failure messages.
func summaryLine(s Summary) string {
	return fmt.Sprintf("req=%d err=%d arr=%d planned=%d drop=%d dur=%v p50=%v p99=%v max=%v",
		s.Requests, s.Errors, s.Arrivals, s.Planned, s.Dropped, s.DurationSec, s.Latency.P50, s.Latency.P99, s.Latency.Max)
}

// lognormal returns a duration with the given median and shape.
func lognormal(r *rand.Rand, median time.Duration, sigma float64) time.Duration {
	return time.Duration(float64(median) * math.Exp(sigma*r.NormFloat64()))
}

var testDims = []Dim{
	{Step: "login", Status: "2xx"},
	{Step: "login", Status: "5xx", Error: "http_5xx"},
	{Step: "browse", Status: "2xx"},
	{Step: "browse", Error: "timeout"},
	{Step: "buy", Status: "2xx"},
	{Step: "buy", Status: "4xx", Error: "http_4xx"},
}

// record adds one completed request to a bucket, as the executor does.
func record(b *Bucket, d Dim, latency time.Duration) {
	b.Planned++
	b.Arrivals++
	b.Requests++
	if d.Error != "" {
		b.Errors++
	}
	b.BytesIn += 300
	b.BytesOut += 120
	if b.Latency == nil {
		b.Latency, b.Service = NewHistogram(), NewHistogram()
	}
	b.Latency.Record(latency)
	b.Service.Record(latency / 2)
}

// randSeries returns a small random series. Half of its seconds are stored
// as recorded (dense histograms), half through Add (sparse), so that merges
// mix representations.
func randSeries(r *rand.Rand) *Series {
	s := NewSeries()
	for t := range int64(6) {
		if r.IntN(3) == 0 {
			continue
		}
		sec := NewSecond(t)
		for _, d := range testDims[:1+r.IntN(len(testDims))] {
			b := sec.Bucket(d)
			for range r.IntN(40) {
				record(b, d, lognormal(r, 30*time.Millisecond, 1.5))
			}
			if r.IntN(4) == 0 {
				b.Dropped += int64(r.IntN(5))
			}
			if b.Latency != nil && r.IntN(10) == 0 {
				b.Latency.Record(2 * time.Minute) // clamped
			}
		}
		if r.IntN(2) == 0 {
			s.Seconds[t] = sec
		} else if err := s.Add(sec); err != nil {
			panic(err)
		}
	}
	for range r.IntN(12) {
		s.AddSample([]string{"timeout", "reset", "http_5xx"}[r.IntN(3)], fmt.Sprintf("message %c", 'a'+r.IntN(9)))
	}
	// Exemplars last, so that the draws above stay what they were.
	for t := range int64(6) {
		if sec := s.Seconds[t]; sec != nil {
			for range r.IntN(12) {
				sec.AddExemplar(randExemplar(r, 1+len(sec.Buckets)))
			}
		}
	}
	return s
}

// forEachCount calls fn with each non-zero count of h and its flat index, in
// index order. h must have our parameters.
func (h *Histogram) forEachCount(fn func(idx int32, count int64)) {
	switch {
	case h.dense != nil:
		for i, c := range h.dense.Export().Counts {
			if c > 0 {
				fn(int32(i), c)
			}
		}
	case h.sparse != nil:
		for i, idx := range h.sparse.idx {
			fn(int32(idx), h.sparse.at(i))
		}
	}
}
