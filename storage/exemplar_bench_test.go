package storage

import (
	"math/rand/v2"
	"testing"
	"time"
)

// BenchmarkAddExemplar is the recorder's cost per traced request: a second
// of 8 steps offered requests of random latency, most of them faster than
// the two kept (the usual case).
func BenchmarkAddExemplar(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	xs := make([]Exemplar, 4096)
	steps := []string{"browse", "buy", "cart", "home", "login", "logout", "search", "view"}
	for i := range xs {
		xs[i] = Exemplar{Step: steps[r.IntN(len(steps))], TraceID: traceID(uint64(i)),
			Latency: time.Duration(r.ExpFloat64() * float64(20*time.Millisecond)), Status: 200}
		if r.IntN(50) == 0 {
			xs[i].Class, xs[i].Status = "http_5xx", 503
		}
	}
	s := NewSecond(0)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == len(xs) {
			i, s.Exemplars = 0, s.Exemplars[:0] // a new second
		}
		s.AddExemplar(xs[i])
		i++
	}
}
