package storage

import (
	"bytes"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// TestMergeExact records a data set whole into one histogram and split at
// random over 7 series (random seconds and dims), merges the series, and
// checks that the merged latencies are the whole histogram, whose quantiles
// are those of the raw data within HDR precision, and that counters sum
// exactly. The series are merged twice: as recorded, and after a round
// trip through the encoding (as they come from other nodes).
func TestMergeExact(t *testing.T) {
	const n, parts, seconds = 100_000, 7, 10
	r := rand.New(rand.NewPCG(1, 2))
	whole := NewHistogram()
	raw := make([]int64, n) // µs, as recorded
	type sample struct {
		dim int
		lat time.Duration
	}
	groups := make([][][]sample, parts) // part, second -> samples
	for p := range groups {
		groups[p] = make([][]sample, seconds)
	}
	for i := range raw {
		lat := lognormal(r, 20*time.Millisecond, 1)
		if i%10_000 == 0 {
			lat = 90 * time.Second // clamped
		}
		whole.Record(lat)
		raw[i] = min(max(int64(lat/time.Microsecond), HistLowestMicros), HistHighestMicros)
		p, s := r.IntN(parts), r.IntN(seconds)
		groups[p][s] = append(groups[p][s], sample{r.IntN(len(testDims)), lat})
	}
	series := make([]*Series, parts)
	for p := range series {
		series[p] = NewSeries()
		for s, samples := range groups[p] {
			sec := NewSecond(int64(s))
			for _, x := range samples {
				record(sec.Bucket(testDims[x.dim]), testDims[x.dim], x.lat)
			}
			if err := series[p].Add(sec); err != nil {
				t.Fatal(err)
			}
		}
	}

	merged := NewSeries()
	decoded := NewSeries()
	for _, s := range series {
		if err := merged.Merge(s); err != nil {
			t.Fatal(err)
		}
		d, err := DecodeSeries(mustEncodeSeries(t, s))
		if err != nil {
			t.Fatal(err)
		}
		if err := decoded.Merge(d); err != nil {
			t.Fatal(err)
		}
	}
	sameSeries(t, "merged after decoding", merged, decoded)

	got := &Histogram{}
	var errs int64
	for _, sec := range merged.Seconds {
		for d, b := range sec.Buckets {
			if err := got.Merge(b.Latency); err != nil {
				t.Fatal(err)
			}
			if d.Error != "" {
				errs += b.Requests
			}
		}
	}
	if !histEqual(got, whole) {
		t.Errorf("merged histogram differs from the whole one")
	}
	if got.Clamped() != n/10_000 {
		t.Errorf("clamped %d, want %d", got.Clamped(), n/10_000)
	}

	// Quantiles: merged == whole exactly, and whole == raw within precision.
	slices.Sort(raw)
	ref := hdr.New(HistLowestMicros, HistHighestMicros, HistSigFigs)
	for _, q := range []float64{0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 0.9999, 1} {
		g, w := got.Quantile(q), whole.Quantile(q)
		if g != w {
			t.Errorf("q%v: merged %v, whole %v", q, g, w)
		}
		rank := min(max(int(q*n+0.5), 1), n) // HDR's nearest rank
		exact := raw[rank-1]
		gotMicros := int64(g / time.Microsecond)
		relErr := math.Abs(float64(gotMicros-exact)) / float64(exact)
		if !ref.ValuesAreEquivalent(gotMicros, exact) && relErr > 0.001 {
			t.Errorf("q%v: %d µs, raw data %d µs (error %.4f%%)", q, gotMicros, exact, 100*relErr)
		}
	}
	if got.Max() != whole.Max() || got.Min() != whole.Min() || got.Mean() != whole.Mean() {
		t.Errorf("max/min/mean differ")
	}

	s := Summarize(merged, nil)
	if s.Requests != n || s.Arrivals != n || s.Planned != n || s.Errors != errs ||
		s.BytesIn != 300*n || s.BytesOut != 120*n || s.DurationSec != seconds {
		t.Errorf("summary counters: %s", summaryLine(s))
	}
	if want := float64(whole.Quantile(0.99)) / 1e6; s.Latency.P99 != want {
		t.Errorf("summary p99 %v ms, want %v", s.Latency.P99, want)
	}
}

// TestMergeProperties checks on random series that merge is associative and
// commutative and leaves its argument alone.
func TestMergeProperties(t *testing.T) {
	merge := func(t *testing.T, a, b *Series) *Series {
		t.Helper()
		c := a.Clone()
		if err := c.Merge(b); err != nil {
			t.Fatal(err)
		}
		return c
	}
	for seed := range uint64(25) {
		r := rand.New(rand.NewPCG(seed, 99))
		a, b, c := randSeries(r), randSeries(r), randSeries(r)
		encA, encB, encC := mustEncodeSeries(t, a), mustEncodeSeries(t, b), mustEncodeSeries(t, c)

		sameSeries(t, "(a+b)+c vs a+(b+c)", merge(t, merge(t, a, b), c), merge(t, a, merge(t, b, c)))
		sameSeries(t, "a+b vs b+a", merge(t, a, b), merge(t, b, a))
		sameSeries(t, "a+empty vs a", merge(t, a, NewSeries()), a)
		sameSeries(t, "empty+a vs a", merge(t, NewSeries(), a), a)

		// Seconds one by one, through Add, give the same as Merge.
		x := b.Clone()
		for _, sec := range a.Seconds {
			if err := x.Add(sec); err != nil {
				t.Fatal(err)
			}
		}
		for class, msgs := range a.Samples {
			for _, m := range msgs {
				x.AddSample(class, m)
			}
		}
		sameSeries(t, "adds vs merge", x, merge(t, b, a))

		for _, in := range []struct {
			s   *Series
			enc []byte
		}{{a, encA}, {b, encB}, {c, encC}} {
			if !bytes.Equal(mustEncodeSeries(t, in.s), in.enc) {
				t.Fatalf("seed %d: a merge changed its argument", seed)
			}
		}
		if t.Failed() {
			t.Fatalf("seed %d", seed)
		}
	}
}

func TestSecondMerge(t *testing.T) {
	d := Dim{Step: "login", Status: "2xx"}
	mk := func(tt int64, lat ...time.Duration) *Second {
		s := NewSecond(tt)
		b := s.Bucket(d)
		for _, l := range lat {
			record(b, d, l)
		}
		return s
	}
	t.Run("sums", func(t *testing.T) {
		a, b := mk(3, time.Millisecond, 1500*time.Microsecond), mk(3, 2*time.Millisecond)
		b.Bucket(Dim{Step: "login", Error: "dropped"}).Dropped = 4
		if err := a.Merge(b); err != nil {
			t.Fatal(err)
		}
		got := a.Buckets[d]
		if got.Requests != 3 || got.Latency.Count() != 3 || got.Latency.Max() != 2*time.Millisecond {
			t.Errorf("merged bucket: %+v", got.Counters)
		}
		if nb := a.Buckets[Dim{Step: "login", Error: "dropped"}]; nb == nil || nb.Dropped != 4 || nb.Latency != nil {
			t.Errorf("new bucket not copied: %+v", nb)
		}
		if err := a.Merge(a); err != nil || a.Buckets[d].Requests != 6 || a.Buckets[d].Latency.Count() != 6 {
			t.Errorf("self merge: %v", err)
		}
		if err := a.Merge(nil); err != nil {
			t.Errorf("merge nil: %v", err)
		}
	})
	tests := []struct {
		name string
		a, b func() *Second
		want string
	}{
		{"different T", func() *Second { return mk(1, time.Millisecond) }, func() *Second { return mk(2, time.Millisecond) }, "cannot merge second 2 into second 1"},
		{"histogram parameters", func() *Second { return mk(1, time.Millisecond) }, func() *Second {
			s := mk(1)
			s.Buckets[d].Latency = newHistogramWith(1, 1000, 3)
			s.Buckets[d].Latency.Record(time.Microsecond)
			return s
		}, "dim {login 2xx }: latency: histogram parameters (1, 60000000, 3) and (1, 1000, 3) differ"},
		{"counter overflow", func() *Second { return mk(1, time.Millisecond) }, func() *Second {
			s := mk(1, time.Millisecond)
			s.Buckets[d].BytesIn = math.MaxInt64
			return s
		}, "overflow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, b := tt.a(), tt.b()
			before := mustEncodeSecond(t, a)
			err := a.Merge(b)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Merge = %v, want an error with %q", err, tt.want)
			}
			if !bytes.Equal(mustEncodeSecond(t, a), before) {
				t.Errorf("failed merge changed the receiver")
			}
			// Through a series too, which must be left unchanged as well.
			sa, sb := NewSeries(), NewSeries()
			sa.Seconds[b.T] = a
			sb.Seconds[b.T] = b
			if a.T != b.T {
				return
			}
			if err := sa.Merge(sb); err == nil {
				t.Errorf("series merge succeeded")
			}
			if !bytes.Equal(mustEncodeSecond(t, a), before) {
				t.Errorf("failed series merge changed the receiver")
			}
		})
	}
}

func TestSeriesAddFilter(t *testing.T) {
	s := NewSeries()
	sec := NewSecond(2)
	d := Dim{Step: "a", Status: "2xx"}
	record(sec.Bucket(d), d, time.Millisecond)
	for range 2 {
		if err := s.Add(sec); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.Seconds[2].Buckets[d]; got.Requests != 2 || got.Latency.Count() != 2 || got.Latency.sparse == nil {
		t.Errorf("Add: %+v (sparse %v)", got.Counters, got.Latency.sparse != nil)
	}
	if sec.Buckets[d].Requests != 1 {
		t.Errorf("Add changed its argument")
	}
	if err := s.Add(NewSecond(-1)); err == nil {
		t.Errorf("Add accepted a negative T")
	}
	for _, tt := range []int64{0, 5, 9} {
		if err := s.Add(NewSecond(tt)); err != nil {
			t.Fatal(err)
		}
	}
	s.AddSample("timeout", "read tcp: i/o timeout")
	keys := func(s *Series) []int64 {
		var ks []int64
		for k := range s.Seconds {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		return ks
	}
	tests := []struct {
		from, to int64
		want     []int64
	}{
		{0, -1, []int64{0, 2, 5, 9}}, // no upper bound
		{2, 5, []int64{2, 5}},        // both ends included
		{3, 4, nil},                  // nothing in between
		{6, 100, []int64{9}},         // past the end
	}
	for _, tt := range tests {
		f := s.Filter(tt.from, tt.to)
		if got := keys(f); !slices.Equal(got, tt.want) {
			t.Errorf("Filter(%d, %d) = %v, want %v", tt.from, tt.to, got, tt.want)
		}
		if len(f.Samples["timeout"]) != 1 {
			t.Errorf("Filter dropped the samples")
		}
	}
	f := s.Filter(0, -1)
	f.Seconds[2].Buckets[d].Latency.Record(time.Second)
	f.Samples["timeout"][0] = "changed"
	if s.Seconds[2].Buckets[d].Latency.Count() != 2 || s.Samples["timeout"][0] == "changed" {
		t.Errorf("Filter shares memory with the series")
	}
}

func TestAddSample(t *testing.T) {
	long := strings.Repeat("é", 150) // 300 bytes
	tests := []struct {
		name string
		msgs []string
		want []string
	}{
		{"dedup", []string{"b", "a", "b"}, []string{"a", "b"}},
		{"keeps the smallest", []string{"g", "f", "e", "d", "c", "b", "a"}, []string{"a", "b", "c", "d", "e"}},
		{"larger ignored when full", []string{"a", "b", "c", "d", "e", "z"}, []string{"a", "b", "c", "d", "e"}},
		{"truncated on a character boundary", []string{long}, []string{long[:MaxSampleLen]}},
		{"invalid UTF-8 replaced", []string{"a\xffb"}, []string{"a\uFFFDb"}},
		{"truncation dedups", []string{long, long + "x"}, []string{long[:MaxSampleLen]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewSeries()
			for _, m := range tt.msgs {
				s.AddSample("reset", m)
			}
			if got := s.Samples["reset"]; !slices.Equal(got, tt.want) {
				t.Errorf("samples %q, want %q", got, tt.want)
			}
		})
	}
	t.Run("classes are capped", func(t *testing.T) {
		s := NewSeries()
		for i := range maxSampleClasses + 10 {
			s.AddSample(string(rune('z'-i%26))+strings.Repeat("x", i), "m")
		}
		if len(s.Samples) != maxSampleClasses {
			t.Errorf("%d classes, want %d", len(s.Samples), maxSampleClasses)
		}
		mustEncodeSeries(t, s)
	})
}
