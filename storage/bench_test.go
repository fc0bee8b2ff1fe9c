package storage

import (
	"math/rand/v2"
	"testing"
	"time"
)

// realisticSecond is one node's second of a busy test: 5 steps × 3 dims
// (success, server error, timeout), 4500 requests per step.
func realisticSecond(r *rand.Rand, t int64) *Second {
	sec := NewSecond(t)
	for _, step := range []string{"home", "login", "search", "cart", "checkout"} {
		for _, x := range []struct {
			d      Dim
			n      int
			median time.Duration
			sigma  float64
		}{
			{Dim{Step: step, Status: "2xx"}, 3000, 40 * time.Millisecond, 0.5},
			{Dim{Step: step, Status: "5xx", Error: "http_5xx"}, 1000, 15 * time.Millisecond, 0.8},
			{Dim{Step: step, Error: "timeout"}, 500, 10 * time.Second, 0.01},
		} {
			b := sec.Bucket(x.d)
			for range x.n {
				record(b, x.d, lognormal(r, x.median, x.sigma))
			}
		}
	}
	return sec
}

func BenchmarkRecord(b *testing.B) {
	h := NewHistogram()
	r := rand.New(rand.NewPCG(1, 1))
	ds := make([]time.Duration, 4096)
	for i := range ds {
		ds[i] = lognormal(r, 40*time.Millisecond, 1)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		h.Record(ds[i&4095])
		i++
	}
}

func BenchmarkEncodeSecond(b *testing.B) {
	sec := realisticSecond(rand.New(rand.NewPCG(1, 2)), 0)
	enc := mustEncodeSecond(b, sec)
	b.ReportAllocs()
	b.SetBytes(int64(len(enc)))
	for b.Loop() {
		if _, err := EncodeSecond(sec); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(enc)), "encoded-bytes")
}

func BenchmarkDecodeSecond(b *testing.B) {
	enc := mustEncodeSecond(b, realisticSecond(rand.New(rand.NewPCG(1, 2)), 0))
	b.ReportAllocs()
	b.SetBytes(int64(len(enc)))
	for b.Loop() {
		if _, err := DecodeSecond(enc); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(enc)), "encoded-bytes")
}

// nodeSeries returns n nodes' series of seconds realistic seconds each, as
// kept in memory or decoded (sparse).
func nodeSeries(n, seconds int) []*Series {
	r := rand.New(rand.NewPCG(3, 4))
	pool := make([]*Second, 4)
	for i := range pool {
		pool[i] = realisticSecond(r, 0)
	}
	out := make([]*Series, n)
	for i := range out {
		out[i] = NewSeries()
		for t := range seconds {
			sec := pool[(i+t)%len(pool)]
			sec.T = int64(t)
			if err := out[i].Add(sec); err != nil {
				panic(err)
			}
		}
	}
	return out
}

// BenchmarkSeriesMerge merges 10 nodes' 60 seconds into one series.
func BenchmarkSeriesMerge(b *testing.B) {
	parts := nodeSeries(10, 60)
	size := 0
	for _, p := range parts {
		size += len(mustEncodeSeries(b, p))
	}
	b.ReportAllocs()
	b.SetBytes(int64(size))
	for b.Loop() {
		m := NewSeries()
		for _, p := range parts {
			if err := m.Merge(p); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(size), "encoded-bytes")
}

// BenchmarkSummarize summarizes 60 merged seconds of 15 dims.
func BenchmarkSummarize(b *testing.B) {
	m := NewSeries()
	for _, p := range nodeSeries(10, 60) {
		if err := m.Merge(p); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	for b.Loop() {
		Summarize(m, nil)
	}
}
