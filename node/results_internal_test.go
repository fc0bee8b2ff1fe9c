package node

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/loadswarm/loadswarm/report"
	"github.com/loadswarm/loadswarm/storage"
)

func TestQueryValidate(t *testing.T) {
	for name, q := range map[string]Query{
		"no id":           {Resolution: 1},
		"negative from":   {TestID: "t", From: -1, Resolution: 1},
		"to before from":  {TestID: "t", From: 5, To: 2, Resolution: 1},
		"no resolution":   {TestID: "t"},
		"huge resolution": {TestID: "t", Resolution: 1 << 40},
	} {
		if q.Validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// syntheticSeries is one node's results for secs seconds of steps steps at
// rate requests per second per step, with lognormal latencies.
func syntheticSeries(r *rand.Rand, secs, steps, rate int) *storage.Series {
	s := storage.NewSeries()
	names := []string{"home", "list", "item", "login", "cart"}
	for t := range secs {
		sec := storage.NewSecond(int64(t))
		for st := range steps {
			b := sec.Bucket(storage.Dim{Step: names[st%len(names)], Status: "2xx"})
			b.Planned, b.Arrivals, b.Requests = int64(rate), int64(rate), int64(rate)
			b.Latency, b.Service = storage.NewHistogram(), storage.NewHistogram()
			for range rate {
				d := time.Duration(math.Exp(r.NormFloat64()*0.6+math.Log(20)) * float64(time.Millisecond))
				b.Latency.Record(d)
				b.Service.Record(d)
			}
		}
		_ = s.Add(sec)
	}
	return s
}

// BenchmarkQueryMerge: 50 nodes x a 10-minute test x 5 steps (100 req/s per
// step per node). "pushdown" is one node's work for its own results (read
// from its store, fold, encode); "merge" is the querier's (decode and merge
// 50 answers). On a real fleet the pushdowns run in parallel, one per host.
func BenchmarkQueryMerge(b *testing.B) {
	const nodes, secs, steps, rate = 50, 600, 5, 100
	r := rand.New(rand.NewPCG(1, 2))
	one := syntheticSeries(r, secs, steps, rate)
	st, err := storage.OpenStore(storage.StoreConfig{Dir: b.TempDir(), Small: true, NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	var all []*storage.Second
	for _, s := range one.Seconds {
		all = append(all, s)
	}
	if err := st.PutSeconds("t", "n0", all); err != nil {
		b.Fatal(err)
	}
	var parts [][2][]byte
	b.Run("pushdown", func(b *testing.B) {
		for range b.N {
			s, err := st.Series("t", "n0", 0, -1)
			if err != nil {
				b.Fatal(err)
			}
			total, coarse, err := report.Fold(s, 5)
			if err != nil {
				b.Fatal(err)
			}
			tb, _ := storage.EncodeSecond(total)
			cb, _ := storage.EncodeSeries(coarse)
			parts = [][2][]byte{{tb, cb}}
			b.ReportMetric(float64(len(tb)+len(cb)), "bytes/node")
		}
	})
	b.Run("merge50", func(b *testing.B) {
		ids := make([]string, nodes)
		chosen := map[string]QueryPart{}
		for i := range ids {
			ids[i] = string(rune('A' + i))
			chosen[ids[i]] = QueryPart{Total: parts[0][0], Series: parts[0][1]}
		}
		for range b.N {
			total, coarse := storage.NewSeries(), storage.NewSeries()
			dec, err := decodeParts(ids, chosen)
			if err != nil {
				b.Fatal(err)
			}
			for _, d := range dec {
				t0, c := d.total, d.coarse
				x := storage.NewSeries()
				_ = x.Add(t0)
				if err := total.Merge(x); err != nil {
					b.Fatal(err)
				}
				if err := coarse.Merge(c); err != nil {
					b.Fatal(err)
				}
			}
			_ = storage.Summarize(total, nil)
			b.ReportMetric(float64(nodes*(len(parts[0][0])+len(parts[0][1]))), "bytes-moved")
		}
	})
}
