package storage

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/fxamacker/cbor/v2"
)

// TestGeometryMatchesHDR checks indexOf and valueOf, which the encoding
// uses, against hdrhistogram-go's own slots.
func TestGeometryMatchesHDR(t *testing.T) {
	ref := hdr.New(HistLowestMicros, HistHighestMicros, HistSigFigs)
	if got := ref.Export(); int(maxIndex) >= len(got.Counts) {
		t.Fatalf("maxIndex %d beyond the %d counts", maxIndex, len(got.Counts))
	}
	if maxIndex != 17191 {
		t.Errorf("maxIndex = %d, want 17191", maxIndex)
	}
	if n := len(ref.Export().Counts); denseLen != n {
		t.Errorf("denseLen = %d, want %d", denseLen, n)
	}
	p := hdr.NewPacked(HistLowestMicros, HistHighestMicros, HistSigFigs)
	for idx := int32(0); idx <= maxIndex; idx++ {
		v := valueOf(idx)
		if got := indexOf(v); got != idx {
			t.Fatalf("indexOf(valueOf(%d) = %d) = %d", idx, v, got)
		}
		// v is the lowest value of its slot, and the slot ends where the
		// next one starts.
		if idx > 0 && ref.ValuesAreEquivalent(v, v-1) {
			t.Fatalf("value %d of index %d is not the lowest of its slot", v, idx)
		}
		if idx < maxIndex && !ref.ValuesAreEquivalent(v, valueOf(idx+1)-1) {
			t.Fatalf("slot of index %d does not reach the next one", idx)
		}
		if err := p.RecordValues(v, int64(idx)+1); err != nil {
			t.Fatal(err)
		}
	}
	// HDR puts each value in the slot of the same index.
	idx := int32(0)
	p.ForEachBucket(func(v, c int64) bool {
		if v != valueOf(idx) || c != int64(idx)+1 {
			t.Fatalf("slot %d: HDR has value %d count %d, want %d and %d", idx, v, c, valueOf(idx), idx+1)
		}
		idx++
		return true
	})
	if idx != maxIndex+1 {
		t.Fatalf("HDR listed %d slots, want %d", idx, maxIndex+1)
	}
}

func TestHistogramRecord(t *testing.T) {
	tests := []struct {
		name        string
		d           time.Duration
		min, max    time.Duration
		clampedWant int64
	}{
		// zero records 1 µs
		{"zero", 0, time.Microsecond, time.Microsecond, 0},
		// a negative duration records 1 µs
		{"negative", -time.Second, time.Microsecond, time.Microsecond, 0},
		// 999 ns records 1 µs
		{"sub-microsecond", 999, time.Microsecond, time.Microsecond, 0},
		// 1 ms is exact: values under 2048 µs have unit resolution
		{"1ms", time.Millisecond, time.Millisecond, time.Millisecond, 0},
		// 60 s is in range; HDR's slot around it is 32 ms wide, Max is capped at 60 s
		{"60s", 60 * time.Second, 59_998_208 * time.Microsecond, 60 * time.Second, 0},
		// 60 s + 1 µs is clamped to 60 s
		{"just over", 60*time.Second + time.Microsecond, 59_998_208 * time.Microsecond, 60 * time.Second, 1},
		// an hour is clamped to 60 s
		{"hour", time.Hour, 59_998_208 * time.Microsecond, 60 * time.Second, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, h := range []*Histogram{NewHistogram(), {}, NewHistogram().compactClone()} {
				h.Record(tt.d)
				if h.Count() != 1 || h.Clamped() != tt.clampedWant {
					t.Errorf("count %d clamped %d, want 1 and %d", h.Count(), h.Clamped(), tt.clampedWant)
				}
				if h.Min() != tt.min || h.Max() != tt.max {
					t.Errorf("min %v max %v, want %v and %v", h.Min(), h.Max(), tt.min, tt.max)
				}
			}
		})
	}
}

func TestRecordDoesNotAllocate(t *testing.T) {
	h := NewHistogram()
	d := 3 * time.Millisecond
	if n := testing.AllocsPerRun(1000, func() { h.Record(d); d += 7 * time.Microsecond }); n != 0 {
		t.Errorf("Record allocates %v times", n)
	}
}

func TestHistogramEmpty(t *testing.T) {
	for name, h := range map[string]*Histogram{"new": NewHistogram(), "zero": {}, "sparse": NewHistogram().compactClone()} {
		t.Run(name, func(t *testing.T) {
			if h.Count() != 0 || h.Quantile(0.5) != 0 || h.Quantile(0) != 0 || h.Quantile(1) != 0 ||
				h.Max() != 0 || h.Min() != 0 || h.Mean() != 0 || h.Clamped() != 0 {
				t.Errorf("empty histogram answers count %d q50 %v max %v min %v mean %v", h.Count(), h.Quantile(0.5), h.Max(), h.Min(), h.Mean())
			}
		})
	}
}

func TestQuantile(t *testing.T) {
	h := NewHistogram()
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Microsecond) // 1..1000 µs, all exact
	}
	tests := []struct {
		q    float64
		want time.Duration
	}{
		{0, 1 * time.Microsecond},          // q 0 is the minimum
		{0.5, 500 * time.Microsecond},      // the 500th value
		{0.999, 999 * time.Microsecond},    // the 999th value
		{1, 1000 * time.Microsecond},       // q 1 is the maximum
		{-1, 1 * time.Microsecond},         // q under 0 counts as 0
		{2, 1000 * time.Microsecond},       // q over 1 counts as 1
		{math.NaN(), 1 * time.Microsecond}, // NaN counts as 0
	}
	for _, tt := range tests {
		for name, hh := range map[string]*Histogram{"dense": h, "sparse": h.compactClone()} {
			if got := hh.Quantile(tt.q); got != tt.want {
				t.Errorf("%s: Quantile(%v) = %v, want %v", name, tt.q, got, tt.want)
			}
		}
	}
	if got := h.Mean(); got != 500500*time.Nanosecond {
		t.Errorf("Mean = %v, want 500.5µs", got)
	}
}

// TestHistogramMergeRepresentations merges every pair of representations
// and checks that all give the histogram of all the values.
func TestHistogramMergeRepresentations(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	fill := func(h *Histogram, n int) *Histogram {
		for range n {
			h.Record(lognormal(r, 20*time.Millisecond, 2))
		}
		h.Record(time.Minute + time.Second)
		return h
	}
	a, b := fill(NewHistogram(), 2000), fill(NewHistogram(), 500)
	want := a.Clone()
	if err := want.Merge(b); err != nil {
		t.Fatal(err)
	}
	if want.Count() != 2502 || want.Clamped() != 2 {
		t.Fatalf("count %d clamped %d, want 2502 and 2", want.Count(), want.Clamped())
	}
	reps := map[string]func(*Histogram) *Histogram{
		"dense":  (*Histogram).Clone,
		"sparse": (*Histogram).compactClone,
		"decoded": func(h *Histogram) *Histogram {
			enc, err := h.MarshalCBOR()
			if err != nil {
				t.Fatal(err)
			}
			d, err := decodeHistogram(enc)
			if err != nil {
				t.Fatal(err)
			}
			return d
		},
	}
	for na, ra := range reps {
		for nb, rb := range reps {
			t.Run(na+"+"+nb, func(t *testing.T) {
				x, y := ra(a), rb(b)
				yBefore := countsOf(y)
				if err := x.Merge(y); err != nil {
					t.Fatal(err)
				}
				if !histEqual(x, want) {
					t.Errorf("merged histogram differs")
				}
				for _, q := range []float64{0, 0.5, 0.9, 0.99, 0.999, 1} {
					if x.Quantile(q) != want.Quantile(q) {
						t.Errorf("Quantile(%v) = %v, want %v", q, x.Quantile(q), want.Quantile(q))
					}
				}
				if x.Max() != want.Max() || x.Min() != want.Min() || x.Mean() != want.Mean() {
					t.Errorf("max/min/mean %v %v %v, want %v %v %v", x.Max(), x.Min(), x.Mean(), want.Max(), want.Min(), want.Mean())
				}
				if strings.Join(countsOf(y), " ") != strings.Join(yBefore, " ") || y.Clamped() != 1 {
					t.Errorf("merge changed its argument")
				}
			})
		}
		t.Run("zero+"+na, func(t *testing.T) {
			var z Histogram
			if err := z.Merge(ra(want)); err != nil || !histEqual(&z, want) {
				t.Errorf("merge into the zero value: %v", err)
			}
		})
	}
	t.Run("self", func(t *testing.T) {
		for _, h := range []*Histogram{a.Clone(), a.compactClone()} {
			if err := h.Merge(h); err != nil || h.Count() != 2*a.Count() || h.Clamped() != 2 || h.Quantile(0.5) != a.Quantile(0.5) {
				t.Errorf("self merge: err %v count %d clamped %d", err, h.Count(), h.Clamped())
			}
		}
	})
	t.Run("nil", func(t *testing.T) {
		h := a.Clone()
		if err := h.Merge(nil); err != nil || !histEqual(h, a) {
			t.Errorf("merging nil: %v", err)
		}
	})
}

func TestHistogramMergeIncompatible(t *testing.T) {
	tests := []struct {
		name string
		o    *Histogram
		want string
	}{
		{"other highest", newHistogramWith(1, 1000, 3), "parameters"},
		{"other precision", newHistogramWith(1, HistHighestMicros, 2), "parameters"},
		{"other lowest", newHistogramWith(1000, HistHighestMicros, 3), "parameters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.Record(time.Microsecond * 500)
			for _, h := range []*Histogram{NewHistogram(), NewHistogram().compactClone(), {}} {
				h.Record(time.Millisecond)
				before := countsOf(h)
				err := h.Merge(tt.o)
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Errorf("Merge = %v, want an error about %s", err, tt.want)
				}
				if strings.Join(countsOf(h), " ") != strings.Join(before, " ") {
					t.Errorf("failed merge changed the receiver")
				}
			}
			// And the other way round.
			if err := tt.o.Merge(NewHistogram()); err == nil {
				t.Errorf("merging ours into %v succeeded", tt.o.params())
			}
		})
	}
	t.Run("overflow", func(t *testing.T) {
		h, o := NewHistogram(), NewHistogram()
		if err := h.dense.RecordValues(1000, math.MaxInt64-10); err != nil {
			t.Fatal(err)
		}
		for range 11 {
			o.Record(time.Millisecond)
		}
		if err := h.Merge(o); err == nil || !strings.Contains(err.Error(), "overflow") {
			t.Errorf("Merge = %v, want an overflow error", err)
		}
		if h.Count() != math.MaxInt64-10 {
			t.Errorf("failed merge changed the receiver")
		}
	})
}

func TestHistogramCloneReset(t *testing.T) {
	for name, h := range map[string]*Histogram{"dense": NewHistogram(), "sparse": NewHistogram().compactClone()} {
		t.Run(name, func(t *testing.T) {
			h.Record(time.Millisecond)
			h.Record(time.Hour)
			c := h.Clone()
			h.Record(time.Second)
			if c.Count() != 2 || c.Clamped() != 1 || h.Count() != 3 {
				t.Errorf("clone is not independent: %d %d %d", c.Count(), c.Clamped(), h.Count())
			}
			if (c.dense == nil) != (h.dense == nil) {
				t.Errorf("clone changed representation")
			}
			h.Reset()
			if h.Count() != 0 || h.Clamped() != 0 || h.Max() != 0 || c.Count() != 2 {
				t.Errorf("reset: count %d clamped %d", h.Count(), h.Clamped())
			}
			h.Record(2 * time.Millisecond)
			if h.Count() != 1 || h.Min() != 2*time.Millisecond {
				t.Errorf("record after reset: count %d min %v", h.Count(), h.Min())
			}
		})
	}
}

func TestHistogramCBORRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	many := NewHistogram()
	for range 10000 {
		many.Record(lognormal(r, 5*time.Millisecond, 3)) // some over 60 s
	}
	one := NewHistogram()
	one.Record(42 * time.Millisecond)
	clamped := NewHistogram()
	clamped.Record(time.Hour)
	clamped.Record(60 * time.Second)
	tests := []struct {
		name string
		h    *Histogram
	}{
		{"nil", nil},
		{"empty", NewHistogram()},
		{"zero value", &Histogram{}},
		{"one", one},
		{"clamped", clamped},
		{"many", many},
		{"many sparse", many.compactClone()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc, err := cbor.Marshal(tt.h)
			if err != nil {
				t.Fatal(err)
			}
			var got *Histogram
			if err := cbor.Unmarshal(enc, &got); err != nil {
				t.Fatal(err)
			}
			if tt.h == nil {
				if got != nil || !bytes.Equal(enc, cborNull) {
					t.Errorf("nil encodes as %x and decodes as %v", enc, got)
				}
				return
			}
			if !histEqual(got, tt.h) {
				t.Errorf("round trip differs: %d/%d values, %d/%d clamped", got.Count(), tt.h.Count(), got.Clamped(), tt.h.Clamped())
			}
			if got.sparse == nil && got.Count() > 0 {
				t.Errorf("decoded histogram is not sparse")
			}
			if again, _ := got.MarshalCBOR(); !bytes.Equal(again, enc) {
				t.Errorf("re-encoding differs")
			}
		})
	}
	if many.Clamped() == 0 {
		t.Errorf("test data has no clamped values")
	}
	enc, _ := many.MarshalCBOR()
	t.Logf("%d values in %d slots encode in %d bytes", many.Count(), len(countsOf(many)), len(enc))
	t.Run("foreign parameters", func(t *testing.T) {
		if _, err := newHistogramWith(1, 1000, 3).MarshalCBOR(); err == nil {
			t.Errorf("encoded a histogram with other parameters")
		}
	})
}

// TestHistogramEncodingMatchesCBORPackage checks the hand-written encoder
// against the cbor package's encoding of wireHist.
func TestHistogramEncodingMatchesCBORPackage(t *testing.T) {
	big := NewHistogram()
	for i, n := range []int64{1, 23, 24, 255, 256, 65535, 65536, 1 << 32, 1<<32 - 1, 1 << 40} {
		if err := big.dense.RecordValues(valueOf(int32(i*1700)), n); err != nil {
			t.Fatal(err)
		}
	}
	big.Record(time.Hour)
	r := rand.New(rand.NewPCG(8, 8))
	many := NewHistogram()
	for range 5000 {
		many.Record(lognormal(r, time.Second, 4))
	}
	for name, h := range map[string]*Histogram{
		"empty": NewHistogram(), "big counts": big, "big counts sparse": big.compactClone(),
		"many": many, "many sparse": many.compactClone(),
	} {
		t.Run(name, func(t *testing.T) {
			w := wireHist{Lowest: HistLowestMicros, Highest: HistHighestMicros, SigFigs: HistSigFigs, Clamped: h.clamped}
			prev := int32(-1)
			h.forEachCount(func(idx int32, c int64) {
				w.Counts = append(w.Counts, uint64(idx-prev), uint64(c))
				prev = idx
			})
			want, err := encMode.Marshal(&w)
			if err != nil {
				t.Fatal(err)
			}
			got, err := h.MarshalCBOR()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("hand encoding differs from the cbor package's:\n%x\n%x", got, want)
			}
		})
	}
}
