package storage

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// The fuzzers check that decoders never panic, and that whatever decodes
// encodes again and decodes to an equal value. Run one with, e.g.,
//
//	go test ./storage/ -run '^$' -fuzz FuzzDecodeSeries -fuzztime 20s

func seedSeries() []*Series {
	out := []*Series{NewSeries(), handSeries()}
	for seed := range uint64(4) {
		out = append(out, randSeries(rand.New(rand.NewPCG(seed, 42))))
	}
	return out
}

func secondsEqual(a, b *Second) bool {
	if a.T != b.T || len(a.Buckets) != len(b.Buckets) {
		return false
	}
	for d, x := range a.Buckets {
		y := b.Buckets[d]
		if y == nil || x.Counters != y.Counters || !histEqual(x.Latency, y.Latency) || !histEqual(x.Service, y.Service) {
			return false
		}
	}
	return slices.Equal(a.Exemplars, b.Exemplars)
}

func FuzzDecodeSecond(f *testing.F) {
	for _, s := range seedSeries() {
		for _, sec := range s.Seconds {
			f.Add(mustEncodeSecond(f, sec))
		}
	}
	f.Add(mustEncodeSecond(f, exemplarSecond()))
	f.Add([]byte{0xa0})
	f.Add([]byte{0xa2, 0x01, 0x0c, 0x02, 0x81, 0xa1, 0x01, 0x61, 'x'})
	// {1: 12, 3: [{1: "a", 2: 16 bytes, 3: 5}]}: one exemplar, no buckets.
	f.Add(append(append([]byte{0xa2, 0x01, 0x0c, 0x03, 0x81, 0xa3, 0x01, 0x61, 'a', 0x02, 0x50},
		bytes.Repeat([]byte{7}, 16)...), 0x03, 0x05))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := DecodeSecond(data)
		if err != nil {
			return
		}
		enc, err := EncodeSecond(s)
		if err != nil {
			t.Fatalf("decoded second does not encode: %v", err)
		}
		s2, err := DecodeSecond(enc)
		if err != nil {
			t.Fatalf("re-encoded second does not decode: %v", err)
		}
		if !secondsEqual(s, s2) {
			t.Fatalf("second changed in a round trip")
		}
		if enc2 := mustEncodeSecond(t, s2); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable")
		}
		_ = SummarizeSecond(s)
		if err := s.Merge(s2); err != nil {
			t.Fatalf("merge of decoded seconds: %v", err)
		}
		// Exemplars merged with themselves stay as they were (a second
		// keeps a set), within the bounds.
		if !slices.Equal(s.Exemplars, s2.Exemplars) || len(s.Exemplars) > MaxExemplars {
			t.Fatalf("exemplars changed in a merge with themselves")
		}
	})
}

func FuzzDecodeSeries(f *testing.F) {
	for _, s := range seedSeries() {
		f.Add(mustEncodeSeries(f, s))
	}
	f.Add([]byte{0xa0})
	f.Add([]byte{0xa1, 0x02, 0xa1, 0x61, 'x', 0x81, 0x61, 'y'})
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := DecodeSeries(data)
		if err != nil {
			return
		}
		enc, err := EncodeSeries(s)
		if err != nil {
			t.Fatalf("decoded series does not encode: %v", err)
		}
		s2, err := DecodeSeries(enc)
		if err != nil {
			t.Fatalf("re-encoded series does not decode: %v", err)
		}
		if len(s.Seconds) != len(s2.Seconds) || len(s.Samples) != len(s2.Samples) {
			t.Fatalf("series changed in a round trip")
		}
		for k, sec := range s.Seconds {
			if s2.Seconds[k] == nil || !secondsEqual(sec, s2.Seconds[k]) {
				t.Fatalf("second %d changed in a round trip", k)
			}
		}
		for class, msgs := range s.Samples {
			if !slices.Equal(msgs, s2.Samples[class]) {
				t.Fatalf("samples of %q changed in a round trip", class)
			}
		}
		if enc2 := mustEncodeSeries(t, s2); !bytes.Equal(enc, enc2) {
			t.Fatalf("encoding is not stable")
		}
		_ = Summarize(s, nil)
		if err := s.Merge(s2); err != nil {
			t.Fatalf("merge of decoded series: %v", err)
		}
	})
}

func FuzzDecodeHistogram(f *testing.F) {
	r := rand.New(rand.NewPCG(7, 7))
	for _, n := range []int{0, 1, 10, 1000} {
		h := NewHistogram()
		for range n {
			h.Record(lognormal(r, 10*time.Millisecond, 3))
		}
		h.Record(time.Hour)
		enc, err := h.MarshalCBOR()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(enc)
	}
	f.Add(cborNull)
	f.Add([]byte{0xa0})
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := decodeHistogram(data)
		if err != nil {
			return
		}
		enc, err := h.MarshalCBOR()
		if err != nil {
			t.Fatalf("decoded histogram does not encode: %v", err)
		}
		h2, err := decodeHistogram(enc)
		if err != nil {
			t.Fatalf("re-encoded histogram does not decode: %v", err)
		}
		if !histEqual(h, h2) {
			t.Fatalf("histogram changed in a round trip")
		}
		if h == nil {
			return
		}
		if q := h.Quantile(0.99); q < h.Min() || q > h.Max() || h.Max() > HistHighestMicros*time.Microsecond {
			t.Fatalf("p99 %v outside [%v, %v]", q, h.Min(), h.Max())
		}
		var acc Histogram // sparse: a dense one slows fuzzing down
		if err := acc.Merge(h); err != nil || !histEqual(&acc, h) {
			t.Fatalf("merge of a decoded histogram: %v", err)
		}
		if err := acc.Merge(h2); err != nil || acc.Count() != 2*h.Count() || acc.Clamped() != 2*h.Clamped() {
			t.Fatalf("merge of two decoded histograms: %v", err)
		}
	})
}
