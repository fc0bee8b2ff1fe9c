package storage_test

import (
	"fmt"
	"time"

	"github.com/loadswarm/loadswarm/storage"
)

// Example records two nodes' shares of a test, merges them as any node
// would after receiving the other's encoded results, and summarizes.
func Example() {
	login := storage.Dim{Step: "login", Status: "2xx"}
	record := func(node int) *storage.Second {
		sec := storage.NewSecond(0) // the test's first second
		b := sec.Bucket(login)
		b.Latency, b.Service = storage.NewHistogram(), storage.NewHistogram()
		for i := 1; i <= 100; i++ {
			b.Planned++
			b.Arrivals++
			b.Requests++
			d := time.Duration(100*node+i) * time.Millisecond // node 0: 1..100 ms, node 1: 101..200 ms
			b.Latency.Record(d)
			b.Service.Record(d / 2)
		}
		return sec
	}
	a, b := record(0), record(1)

	// Node b's second arrives encoded.
	enc, err := storage.EncodeSecond(b)
	if err != nil {
		panic(err)
	}
	fromB, err := storage.DecodeSecond(enc)
	if err != nil {
		panic(err)
	}

	results := storage.NewSeries()
	for _, sec := range []*storage.Second{a, fromB} {
		if err := results.Add(sec); err != nil { // merges with the same second
			panic(err)
		}
	}
	s := storage.Summarize(results, nil)
	fmt.Printf("requests %d in %v s, %.0f/s\n", s.Requests, s.DurationSec, s.Rate.Requests)
	fmt.Printf("p50 %.0f ms, p99 %.0f ms, max %.0f ms\n", s.Latency.P50, s.Latency.P99, s.Latency.Max)

	// Averaging the nodes' p99s would be wrong.
	pa := storage.SummarizeSecond(a).Latency.P99
	pb := storage.SummarizeSecond(fromB).Latency.P99
	fmt.Printf("not %.0f ms\n", (pa+pb)/2)
	// Output:
	// requests 200 in 1 s, 200/s
	// p50 100 ms, p99 198 ms, max 200 ms
	// not 149 ms
}
