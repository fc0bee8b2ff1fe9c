package storage

import (
	"bytes"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
)

func TestSecondRoundTrip(t *testing.T) {
	d := Dim{Step: "login", Status: "2xx"}
	clamped := NewSecond(7)
	record(clamped.Bucket(d), d, time.Hour)
	tests := []struct {
		name string
		sec  *Second
	}{
		{"empty", NewSecond(0)},
		{"nil map", &Second{T: 3}},
		{"arrivals only, nil histograms", func() *Second {
			s := NewSecond(1)
			b := s.Bucket(Dim{Step: "login", Error: "dropped"})
			b.Planned, b.Dropped = 5, 5
			return s
		}()},
		{"clamped", clamped},
		{"random", func() *Second {
			for _, sec := range randSeries(rand.New(rand.NewPCG(1, 1))).Seconds {
				if len(sec.Buckets) > 0 {
					return sec
				}
			}
			panic("no second")
		}()},
		{"nil bucket left out", func() *Second {
			s := NewSecond(2)
			s.Buckets[d] = nil
			return s
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := mustEncodeSecond(t, tt.sec)
			got, err := DecodeSecond(enc)
			if err != nil {
				t.Fatal(err)
			}
			if got.T != tt.sec.T {
				t.Errorf("T %d, want %d", got.T, tt.sec.T)
			}
			n := 0
			for d, b := range tt.sec.Buckets {
				if b == nil {
					continue
				}
				n++
				g := got.Buckets[d]
				if g == nil || g.Counters != b.Counters || !histEqual(g.Latency, b.Latency) || !histEqual(g.Service, b.Service) {
					t.Errorf("dim %v differs", d)
				}
			}
			if len(got.Buckets) != n {
				t.Errorf("%d buckets, want %d", len(got.Buckets), n)
			}
			if again := mustEncodeSecond(t, got); !bytes.Equal(again, enc) {
				t.Errorf("re-encoding differs")
			}
		})
	}
}

func TestSeriesRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		s    *Series
	}{
		{"empty", NewSeries()},
		{"nil maps", &Series{}},
		{"random", randSeries(rand.New(rand.NewPCG(2, 2)))},
		{"samples only", func() *Series {
			s := NewSeries()
			s.AddSample("dns", "no such host")
			s.AddSample("dns", "server misbehaving")
			s.Samples["empty class"] = nil
			return s
		}()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := mustEncodeSeries(t, tt.s)
			got, err := DecodeSeries(enc)
			if err != nil {
				t.Fatal(err)
			}
			if again := mustEncodeSeries(t, got); !bytes.Equal(again, enc) {
				t.Errorf("re-encoding differs")
			}
			if len(got.Seconds) != len(tt.s.Seconds) {
				t.Errorf("%d seconds, want %d", len(got.Seconds), len(tt.s.Seconds))
			}
			for class, msgs := range tt.s.Samples {
				if fmt.Sprint(got.Samples[class]) != fmt.Sprint(msgs) {
					t.Errorf("samples of %q: %q, want %q", class, got.Samples[class], msgs)
				}
			}
			if a, b := Summarize(got, nil), Summarize(tt.s, nil); summaryLine(a) != summaryLine(b) {
				t.Errorf("summaries differ:\n%s\n%s", summaryLine(a), summaryLine(b))
			}
		})
	}
}

func TestEncodeRejects(t *testing.T) {
	d := Dim{Step: "login", Status: "2xx"}
	tests := []struct {
		name string
		s    *Series
		want string
	}{
		{"key is not T", &Series{Seconds: map[int64]*Second{1: NewSecond(2)}}, "second 2: stored under key 1"},
		{"negative T", &Series{Seconds: map[int64]*Second{-1: NewSecond(-1)}}, "negative T"},
		{"negative counter", func() *Series {
			s := NewSeries()
			s.Seconds[0] = NewSecond(0)
			s.Seconds[0].Bucket(d).Arrivals = -1
			return s
		}(), "second 0: dim {login 2xx }: negative arrivals count -1"},
		{"long dim", func() *Series {
			s := NewSeries()
			s.Seconds[0] = NewSecond(0)
			s.Seconds[0].Bucket(Dim{Step: strings.Repeat("s", 300)})
			return s
		}(), "step is 300 bytes"},
		{"foreign histogram", func() *Series {
			s := NewSeries()
			s.Seconds[0] = NewSecond(0)
			b := s.Seconds[0].Bucket(d)
			b.Latency = newHistogramWith(1, 1000, 3)
			b.Latency.Record(time.Millisecond)
			return s
		}(), "parameters"},
		{"too many samples", &Series{Samples: map[string][]string{"x": {"a", "b", "c", "d", "e", "f"}}}, "6 samples"},
		{"duplicate samples", &Series{Samples: map[string][]string{"x": {"a", "a"}}}, "duplicate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := EncodeSeries(tt.s)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("EncodeSeries = %v, want an error with %q", err, tt.want)
			}
		})
	}
}

// Raw encodings for the rejection table.

func marshal(t *testing.T, v any) []byte {
	t.Helper()
	b, err := encMode.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func validWireHist() wireHist {
	return wireHist{Lowest: HistLowestMicros, Highest: HistHighestMicros, SigFigs: HistSigFigs, Counts: []uint64{1001, 3, 2, 1}}
}

func TestDecodeRejects(t *testing.T) {
	okBucket := wireBucket{Step: "login", Status: "2xx", Requests: 4}
	second := func(buckets ...wireBucket) []byte {
		return marshal(t, wireSecondOut{T: 12, Buckets: buckets})
	}
	withHist := func(mod func(*wireHist)) []byte {
		w := validWireHist()
		mod(&w)
		b := okBucket
		b.Latency = marshal(t, w)
		return second(b)
	}
	series := func(w wireSeriesOut) []byte { return marshal(t, w) }
	valid := second(okBucket, wireBucket{Step: "login", Error: "timeout", Requests: 1, Errors: 1})
	many := make([]wireBucket, maxDims+1)
	for i := range many {
		many[i] = wireBucket{Step: fmt.Sprint(i)}
	}
	classes := map[string][]string{}
	for i := range maxSampleClasses + 1 {
		classes[fmt.Sprint(i)] = []string{"m"}
	}

	tests := []struct {
		name   string
		series bool // DecodeSeries, else DecodeSecond
		in     []byte
		want   string
	}{
		{"empty input", false, nil, "EOF"},
		{"truncated", false, valid[:len(valid)-3], "EOF"},
		{"trailing bytes", false, append(bytes.Clone(valid), 0), "extraneous"},
		{"not a map", false, []byte{0x01}, "cannot unmarshal"},
		{"null", false, []byte{0xf6}, "null"},
		{"oversize second", false, make([]byte, MaxSecondBytes+1), "input is 4194305 bytes, over the limit"},
		{"oversize series", true, make([]byte, MaxSeriesBytes+1), "over the limit"},
		{"deeply nested junk", false, append(bytes.Repeat([]byte{0x81}, 100), 0), "nested"},
		{"nested junk in a field", false, marshal(t, map[int]any{1: 12, 2: []any{[]any{[]any{[]any{}}}}}), "cannot unmarshal"},
		{"indefinite length", false, []byte{0xbf, 0x01, 0x0c, 0xff}, "indefinite"},
		{"tag", false, []byte{0xc1, 0x00}, "tag"},
		{"duplicate key", false, []byte{0xa2, 0x01, 0x0c, 0x01, 0x0d}, "duplicate"},
		{"buckets not an array", false, marshal(t, map[int]any{1: 12, 2: 5}), "second 12: buckets: not an array"},
		{"negative T", false, marshal(t, wireSecondOut{T: -1}), "second -1: negative T"},
		{"huge T", false, []byte{0xa1, 0x01, 0x1b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, "overflows"},
		{"negative counter", false, second(wireBucket{Step: "login", Requests: -1}), "second 12: dim {login  }: negative requests count -1"},
		{"errors over requests", false, second(wireBucket{Step: "login", Requests: 2, Errors: 3}), "errors 3 > requests 2"},
		{"duplicate dim", false, second(okBucket, okBucket), "second 12: duplicate dim {login 2xx }"},
		{"long step", false, second(wireBucket{Step: strings.Repeat("x", MaxDimLen+1)}), "step is 257 bytes, over the limit of 256"},
		{"invalid UTF-8", false, []byte{0xa2, 0x01, 0x0c, 0x02, 0x81, 0xa1, 0x01, 0x61, 0xff}, "UTF-8"},
		{"byte string for text", false, []byte{0xa2, 0x01, 0x0c, 0x02, 0x81, 0xa1, 0x01, 0x41, 'a'}, "byte string"},
		{"too many dims", false, second(many...), "second 12: 4097 dims, over the limit of 4096"},
		{"wrong parameters", false, withHist(func(w *wireHist) { w.Highest = 1000 }), "latency: parameters (1, 1000, 3) differ from (1, 60000000, 3)"},
		{"wrong precision", false, withHist(func(w *wireHist) { w.SigFigs = 2 }), "parameters"},
		{"missing parameters", false, withHist(func(w *wireHist) { *w = wireHist{Counts: w.Counts} }), "parameters (0, 0, 0)"},
		{"index out of range", false, withHist(func(w *wireHist) { w.Counts = []uint64{100000, 1} }), "second 12: dim {login 2xx }: latency: index 99999 out of range"},
		{"index just out of range", false, withHist(func(w *wireHist) { w.Counts = []uint64{uint64(maxIndex) + 2, 1} }), "index 17192 out of range"},
		{"huge index delta", false, withHist(func(w *wireHist) { w.Counts = []uint64{5, 1, math.MaxUint64, 1} }), "out of range"},
		{"zero index delta", false, withHist(func(w *wireHist) { w.Counts = []uint64{5, 1, 0, 1} }), "index delta 0 after index 4"},
		{"zero count", false, withHist(func(w *wireHist) { w.Counts = []uint64{5, 0} }), "count at index 4 is 0"},
		{"odd counts", false, withHist(func(w *wireHist) { w.Counts = []uint64{5} }), "odd number"},
		{"count over int64", false, withHist(func(w *wireHist) { w.Counts = []uint64{1, math.MaxUint64} }), "overflows"},
		{"total over int64", false, withHist(func(w *wireHist) { w.Counts = []uint64{1, math.MaxInt64, 1, 1} }), "total count overflows"},
		{"negative count", false, func() []byte {
			b := okBucket
			b.Latency = marshal(t, map[int]any{1: 1, 2: HistHighestMicros, 3: 3, 5: []int64{1, -1}})
			return second(b)
		}(), "latency: counts: entry 1: not an unsigned integer"},
		{"negative clamped", false, withHist(func(w *wireHist) { w.Clamped = -1 }), "negative clamped"},
		{"clamped without 60 s values", false, withHist(func(w *wireHist) { w.Clamped = 1 }), "clamped count 1 exceeds the 0 values at 60 s"},
		{"histogram not a map", false, func() []byte { b := okBucket; b.Service = []byte{0x05}; return second(b) }(), "service: cbor: cannot unmarshal"},
		{"duplicate second", true, series(wireSeriesOut{Seconds: []wireSecondOut{{T: 3}, {T: 3}}}), "series: duplicate second 3"},
		{"bad second in series", true, series(wireSeriesOut{Seconds: []wireSecondOut{{T: 3, Buckets: []wireBucket{{Requests: -1}}}}}), "second 3: dim {  }: negative"},
		{"too many seconds", true, series(wireSeriesOut{Seconds: make([]wireSecondOut, maxSeconds+1)}), "86401 seconds"},
		{"too many samples", true, series(wireSeriesOut{Samples: map[string][]string{"x": {"a", "b", "c", "d", "e", "f"}}}), "samples: class \"x\": 6 samples"},
		{"duplicate sample", true, series(wireSeriesOut{Samples: map[string][]string{"x": {"a", "a"}}}), "duplicate sample"},
		{"long sample", true, series(wireSeriesOut{Samples: map[string][]string{"x": {strings.Repeat("a", 201)}}}), "sample is 201 bytes"},
		{"too many classes", true, series(wireSeriesOut{Samples: classes}), "65 classes"},
		{"duplicate class", true, []byte{0xa1, 0x02, 0xa2, 0x61, 'x', 0x80, 0x61, 'x', 0x80}, "duplicate class"},
		{"samples not a map", true, []byte{0xa1, 0x02, 0x80}, "samples: not a map"},
		{"seconds not an array", true, []byte{0xa1, 0x01, 0xa0}, "seconds: not an array"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.series {
				_, err = DecodeSeries(tt.in)
			} else {
				_, err = DecodeSecond(tt.in)
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one with %q", err, tt.want)
			}
		})
	}
	t.Run("too many buckets in all", func(t *testing.T) {
		// The limit is shared by the seconds of a series; try a small one.
		w := marshal(t, wireSecondOut{T: 4, Buckets: many[:10]})
		budget := 25
		for range 2 {
			r := reader{w}
			if _, err := r.second(-1, &budget); err != nil {
				t.Fatal(err)
			}
		}
		r := reader{w}
		if _, err := r.second(-1, &budget); err == nil || !strings.Contains(err.Error(), "buckets in all") {
			t.Errorf("error %v, want one about buckets in all", err)
		}
	})
}

// TestCBORNullHistogram checks that a null histogram decodes as nil through
// the cbor package, in a field or alone.
func TestCBORNullHistogram(t *testing.T) {
	var v struct {
		H *Histogram `cbor:"1,keyasint"`
	}
	v.H = NewHistogram()
	if err := cbor.Unmarshal([]byte{0xa1, 0x01, 0xf6}, &v); err != nil || v.H != nil {
		t.Errorf("null field decodes as %v, %v", v.H, err)
	}
	h := NewHistogram()
	h.Record(time.Second)
	if err := h.UnmarshalCBOR(cborNull); err != nil || h.Count() != 0 {
		t.Errorf("UnmarshalCBOR(null) leaves %d values, %v", h.Count(), err)
	}
}
