package storage

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/fxamacker/cbor/v2"
)

// The decoders read counts by hand into counts, and merges add sorted
// lists; these tests check them against a straightforward reference: the
// cbor package's decoding of the plain wire types, and the library's dense
// histograms, recording each count at its value.

// randCounts returns a random sparse histogram and its reference, a map of
// index to count. Big counts make it wide; indexes cluster, as latencies do.
func randCounts(r *rand.Rand) (*counts, map[uint16]int64) {
	c, ref := &counts{}, map[uint16]int64{}
	lo := r.IntN(int(maxIndex) + 1)
	span := 1 + r.IntN(min(3000, int(maxIndex)+1-lo))
	for range r.IntN(300) {
		n := 1 + r.Int64N(5)
		switch r.IntN(50) {
		case 0:
			n = 1 + r.Int64N(1<<20)
		case 1:
			n = 1 + r.Int64N(1<<40)
		}
		idx := uint16(lo + r.IntN(span))
		ref[idx] += n
		c.add(int32(idx), n)
	}
	return c, ref
}

// checkCounts fails unless c holds ref, sorted, in the representation its
// total calls for.
func checkCounts(t *testing.T, what string, c *counts, ref map[uint16]int64) {
	t.Helper()
	want := slices.Sorted(maps.Keys(ref))
	var total int64
	for _, n := range ref {
		total += n
	}
	if !slices.Equal(c.idx, want) || c.total != total || (c.wide != nil) != (total > maxSmall) ||
		len(c.small)+len(c.wide) != len(want) {
		t.Fatalf("%s: %d indexes (%d wanted), total %d (%d wanted), wide %v", what, len(c.idx), len(want), c.total, total, c.wide != nil)
	}
	for i, idx := range c.idx {
		if c.at(i) != ref[idx] {
			t.Fatalf("%s: index %d: count %d, want %d", what, idx, c.at(i), ref[idx])
		}
	}
}

func TestCountsMatchReference(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for i := range 2000 {
		a, refA := randCounts(r)
		checkCounts(t, fmt.Sprint("add ", i), a, refA)
		b, refB := randCounts(r)
		if r.IntN(4) == 0 { // b within a's indexes: the in-place path
			b, refB = &counts{}, map[uint16]int64{}
			for j, idx := range a.idx {
				if r.IntN(2) == 0 {
					n := 1 + a.at(j)%7
					b.push(int32(idx), n)
					refB[idx] = n
				}
			}
		}
		bBefore := b.clone()
		a.merge(b)
		for idx, n := range refB {
			refA[idx] += n
		}
		checkCounts(t, fmt.Sprint("merge ", i), a, refA)
		if !slices.Equal(b.idx, bBefore.idx) || b.total != bBefore.total || !slices.Equal(b.small, bBefore.small) || !slices.Equal(b.wide, bBefore.wide) {
			t.Fatalf("merge %d changed its argument", i)
		}
	}
}

// refBucket is a bucket of the reference merge.
type refBucket struct {
	Counters
	latency, service *hdr.Histogram // dense, of our parameters
	clampedL         int64
}

// refMerge decodes encoded series with the cbor package into the wire
// types and merges them into dense histograms, count by count.
func refMerge(t *testing.T, encoded [][]byte) map[int64]map[Dim]*refBucket {
	t.Helper()
	out := map[int64]map[Dim]*refBucket{}
	record := func(dst **hdr.Histogram, raw cbor.RawMessage) int64 {
		if raw == nil {
			return 0
		}
		var w wireHist
		if err := cbor.Unmarshal(raw, &w); err != nil {
			t.Fatal(err)
		}
		if *dst == nil {
			*dst = hdr.New(HistLowestMicros, HistHighestMicros, HistSigFigs)
		}
		idx := int32(-1)
		for i := 0; i < len(w.Counts); i += 2 {
			idx += int32(w.Counts[i])
			if err := (*dst).RecordValues(valueOf(idx), int64(w.Counts[i+1])); err != nil {
				t.Fatal(err)
			}
		}
		return w.Clamped
	}
	for _, enc := range encoded {
		var w wireSeriesOut
		if err := cbor.Unmarshal(enc, &w); err != nil {
			t.Fatal(err)
		}
		for _, s := range w.Seconds {
			if out[s.T] == nil {
				out[s.T] = map[Dim]*refBucket{}
			}
			for _, wb := range s.Buckets {
				d := Dim{Step: wb.Step, Status: wb.Status, Error: wb.Error}
				b := out[s.T][d]
				if b == nil {
					b = &refBucket{}
					out[s.T][d] = b
				}
				b.Add(Counters{Planned: wb.Planned, Arrivals: wb.Arrivals, Dropped: wb.Dropped, Requests: wb.Requests,
					Errors: wb.Errors, BytesIn: wb.BytesIn, BytesOut: wb.BytesOut})
				b.clampedL += record(&b.latency, wb.Latency)
				record(&b.service, wb.Service)
			}
		}
	}
	return out
}

// randWideSeries is a node's random series whose histograms have counts
// of every size (so some are wide) and span the range, dense or sparse.
func randWideSeries(r *rand.Rand) *Series {
	s := NewSeries()
	for t := range int64(8) {
		if r.IntN(4) == 0 {
			continue
		}
		sec := NewSecond(t)
		for _, d := range testDims[:1+r.IntN(len(testDims))] {
			b := sec.Bucket(d)
			b.Planned, b.Requests = r.Int64N(1000), r.Int64N(1000)
			if r.IntN(5) == 0 {
				continue // no histograms
			}
			b.Latency, b.Service = NewHistogram(), NewHistogram()
			for _, h := range []*Histogram{b.Latency, b.Service} {
				mid := r.IntN(int(maxIndex) + 1)
				for range r.IntN(400) {
					idx := min(max(mid+int(r.NormFloat64()*300), 0), int(maxIndex))
					n := 1 + r.Int64N(3)
					if r.IntN(100) == 0 {
						n = r.Int64N(1 << 34)
					}
					if err := h.dense.RecordValues(valueOf(int32(idx)), n); err != nil {
						panic(err)
					}
				}
			}
			if r.IntN(3) == 0 {
				b.Latency.Record(2 * time.Minute) // clamped
			}
		}
		if r.IntN(2) == 0 {
			s.Seconds[t] = sec
		} else if err := s.Add(sec); err != nil {
			panic(err)
		}
	}
	return s
}

// TestDecodeMergeMatchesReference merges random nodes' encoded series as a
// query does (decode, Series.Merge, Summarize) and checks every count,
// bucket, quantile and summary against the reference.
func TestDecodeMergeMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	for round := range 20 {
		var encoded [][]byte
		merged := NewSeries()
		for range 1 + r.IntN(8) {
			enc := mustEncodeSeries(t, randWideSeries(r))
			encoded = append(encoded, enc)
			s, err := DecodeSeries(enc)
			if err != nil {
				t.Fatal(err)
			}
			if err := merged.Merge(s); err != nil {
				t.Fatal(err)
			}
		}
		ref := refMerge(t, encoded)
		all := newAccumulator()
		var refLat, refSvc *hdr.Histogram
		for tt, dims := range ref {
			sec := merged.Seconds[tt]
			if sec == nil || len(sec.Buckets) != len(dims) {
				t.Fatalf("round %d: second %d has %v, want %d dims", round, tt, sec, len(dims))
			}
			for d, want := range dims {
				got := sec.Buckets[d]
				where := fmt.Sprintf("round %d: second %d: dim %v", round, tt, d)
				if got == nil || got.Counters != want.Counters {
					t.Fatalf("%s: counters %+v, want %+v", where, got, want.Counters)
				}
				checkHist(t, where+": latency", got.Latency, want.latency, want.clampedL)
				checkHist(t, where+": service", got.Service, want.service, -1)
				all.c.Add(want.Counters)
				refLat = refAccumulate(refLat, want.latency)
				refSvc = refAccumulate(refSvc, want.service)
			}
		}
		if len(merged.Seconds) != len(ref) {
			t.Fatalf("round %d: %d seconds, want %d", round, len(merged.Seconds), len(ref))
		}
		got := Summarize(merged, nil)
		if got.Requests != all.c.Requests || got.Planned != all.c.Planned ||
			got.Latency != refLatency(refLat) || got.Service != refLatency(refSvc) {
			t.Fatalf("round %d: summary %+v %+v, want %+v %+v", round, got.Latency, got.Service, refLatency(refLat), refLatency(refSvc))
		}
	}
}

// checkHist fails unless h holds the counts of ref (nil: none) and answers
// as it does; clamped < 0 skips the clamped count.
func checkHist(t *testing.T, where string, h *Histogram, ref *hdr.Histogram, clamped int64) {
	t.Helper()
	var want []string
	if ref != nil {
		for i, n := range ref.Export().Counts {
			if n > 0 {
				want = append(want, fmt.Sprintf("%d:%d", i, n))
			}
		}
	}
	if len(want) == 0 {
		if h != nil {
			t.Fatalf("%s: %d values, want none", where, h.Count())
		}
		return
	}
	if h == nil || !slices.Equal(countsOf(h), want) || h.Count() != ref.TotalCount() || (clamped >= 0 && h.Clamped() != clamped) {
		t.Fatalf("%s: counts differ from the reference", where)
	}
	for _, q := range []float64{0, 0.5, 0.9, 0.99, 0.999, 1} {
		if got, want := h.Quantile(q), micros(ref.ValueAtQuantile(q*100)); got != want {
			t.Fatalf("%s: quantile %v: %v, want %v", where, q, got, want)
		}
	}
	if h.Min() != micros(ref.Min()) || h.Max() != micros(ref.Max()) ||
		h.Mean() != time.Duration(math.Round(ref.Mean()*float64(time.Microsecond))) {
		t.Fatalf("%s: min/max/mean %v %v %v differ from the reference", where, h.Min(), h.Max(), h.Mean())
	}
}

func refAccumulate(acc, h *hdr.Histogram) *hdr.Histogram {
	if h == nil {
		return acc
	}
	if acc == nil {
		acc = hdr.New(HistLowestMicros, HistHighestMicros, HistSigFigs)
	}
	acc.Merge(h)
	return acc
}

// refLatency is latencyOf on the reference.
func refLatency(h *hdr.Histogram) Latency {
	if h == nil || h.TotalCount() == 0 {
		return Latency{}
	}
	ms := func(v int64) float64 { return float64(micros(v)) / float64(time.Millisecond) }
	q := func(q float64) float64 { return ms(h.ValueAtQuantile(q * 100)) }
	return Latency{P50: q(0.50), P90: q(0.90), P95: q(0.95), P99: q(0.99), Max: ms(h.Max()), Min: ms(h.Min()),
		Mean: float64(time.Duration(math.Round(h.Mean()*float64(time.Microsecond)))) / float64(time.Millisecond)}
}

// TestDecodeForms checks that the decoders take what the cbor package took
// when it decoded everything: keys in any order, unknown keys (integer or
// text, any value), heads longer than needed, null for a struct.
func TestDecodeForms(t *testing.T) {
	hist := validWireHist()
	bucket := func(extra map[any]any) map[any]any {
		m := map[any]any{1: "login", 2: "2xx", 7: 4, 11: hist}
		maps.Copy(m, extra)
		return m
	}
	want := marshal(t, wireSecondOut{T: 12, Buckets: []wireBucket{{Step: "login", Status: "2xx", Requests: 4, Latency: marshal(t, hist)}}})
	h := hist
	tests := map[string][]byte{
		"canonical":              want,
		"unknown keys":           marshal(t, map[any]any{1: 12, 2: []any{bucket(map[any]any{99: []any{1, 2.5, map[any]any{"a": nil}}, "x": "y"})}, 3: []any{}, -4: "z"}),
		"unknown in a histogram": marshal(t, map[any]any{1: 12, 2: []any{bucket(map[any]any{11: map[any]any{1: h.Lowest, 2: h.Highest, 3: h.SigFigs, 5: h.Counts, 6: true}})}}),
		// {2: [bucket], 1: 12}, T's head 3 bytes long, in the other order.
		"order and long heads": append(append([]byte{0xa2, 0x02, 0x81}, marshal(t, bucket(nil))...), 0x01, 0x19, 0x00, 0x0c),
	}
	for name, in := range tests {
		s, err := DecodeSecond(in)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got := mustEncodeSecond(t, s); !bytes.Equal(got, want) {
			t.Errorf("%s: decodes as %x, want %x", name, got, want)
		}
	}
	// A null bucket is an empty one, as the cbor package left a struct.
	s, err := DecodeSecond([]byte{0xa2, 0x01, 0x0c, 0x02, 0x81, 0xf6})
	if b := s.Buckets[Dim{}]; err != nil || len(s.Buckets) != 1 || b == nil || b.Counters != (Counters{}) {
		t.Errorf("null bucket: %v, %v", s, err)
	}
}
