package storage

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// The histogram range: latency in microseconds, from 1 µs to 60 s, with 3
// significant digits (a recorded value is within 0.1% of the true one).
const (
	HistLowestMicros  = 1
	HistHighestMicros = 60_000_000
	HistSigFigs       = 3
)

// The HDR geometry of the range above, computed as hdrhistogram-go does:
// 3 significant digits need unit resolution up to 2000, so 2048 sub-buckets
// (half of them, 1024, per bucket after the first); a lowest value of 1 gives
// a unit magnitude of 0. indexOf and valueOf are valid for this geometry
// only; TestGeometryMatchesHDR checks them against the library.
const (
	subBucketHalfCountMag = 10
	subBucketHalfCount    = 1 << subBucketHalfCountMag
	subBucketMask         = 2*subBucketHalfCount - 1
)

// maxIndex is the flat counts index of HistHighestMicros, the highest index
// Record can reach (values above the range are clamped to it).
var maxIndex = indexOf(HistHighestMicros)

// indexOf returns the flat counts index of a value in [1, HistHighestMicros].
func indexOf(v int64) int32 {
	bucket := int32(64-bits.LeadingZeros64(uint64(v|subBucketMask))) - (subBucketHalfCountMag + 1)
	sub := int32(v >> uint(bucket))
	return (bucket+1)<<subBucketHalfCountMag + sub - subBucketHalfCount
}

// valueOf returns the lowest value that maps to a flat counts index.
func valueOf(idx int32) int64 {
	bucket := idx>>subBucketHalfCountMag - 1
	sub := idx&(subBucketHalfCount-1) + subBucketHalfCount
	if bucket < 0 {
		sub -= subBucketHalfCount
		bucket = 0
	}
	return int64(sub) << uint(bucket)
}

// histParams are the parameters of an HDR histogram; two histograms merge
// exactly only when theirs are equal.
type histParams struct {
	lowest, highest, sigFigs int64
}

func (p histParams) String() string {
	return fmt.Sprintf("(%d, %d, %d)", p.lowest, p.highest, p.sigFigs)
}

var ourParams = histParams{HistLowestMicros, HistHighestMicros, HistSigFigs}

// Histogram is an HDR histogram (hdrhistogram-go) of durations in
// microseconds, with the range and precision of the Hist* constants, plus a
// count of the values that were above the range.
//
// It keeps one of two representations. NewHistogram makes a dense one (a
// fixed array of about 17k counts, 139 KB) so that Record is a few
// instructions and never allocates: use it to record. Histograms that this
// package copies into a Second or Series that had none (Series.Add,
// Series.Merge, Second.Merge) and histograms it decodes are sparse (about 4
// bytes per non-zero count, see counts), so that a test's results fit in
// memory. Both give the same answers, merge with each other exactly, and
// encode the same. (A dense histogram with other parameters, which only
// tests make, stays dense when copied.)
//
// The zero value is an empty histogram; its first Record allocates a dense
// array. A Histogram is not safe for concurrent use.
type Histogram struct {
	dense   *hdr.Histogram // nil unless dense
	sparse  *counts        // nil unless sparse
	clamped int64
}

// NewHistogram returns an empty dense histogram, ready to record into without
// allocating.
func NewHistogram() *Histogram {
	return &Histogram{dense: hdr.New(HistLowestMicros, HistHighestMicros, HistSigFigs)}
}

// newHistogramWith returns a dense histogram with other parameters, for tests
// of incompatible merges.
func newHistogramWith(lowest, highest int64, sigFigs int) *Histogram {
	return &Histogram{dense: hdr.New(lowest, highest, sigFigs)}
}

func (h *Histogram) params() histParams {
	if h.dense != nil {
		return histParams{h.dense.LowestTrackableValue(), h.dense.HighestTrackableValue(), h.dense.SignificantFigures()}
	}
	return ourParams // counts hold nothing else
}

// Record records one duration. A duration under 1 µs records 1 µs; one over
// 60 s records 60 s and counts as clamped. Record never fails, and it never
// allocates on a histogram from NewHistogram (a sparse one allocates when a
// value falls in a slot that had no count).
func (h *Histogram) Record(d time.Duration) {
	v := int64(d / time.Microsecond)
	clamped := false
	if v < HistLowestMicros {
		v = HistLowestMicros
	} else if v > HistHighestMicros {
		v, clamped = HistHighestMicros, true
	}
	var err error
	switch {
	case h.dense != nil:
		err = h.dense.RecordValue(v)
	case h.sparse != nil:
		if h.sparse.total == math.MaxInt64 {
			return // as the library refuses a value past the total
		}
		h.sparse.add(indexOf(v), 1)
	default:
		h.dense = hdr.New(HistLowestMicros, HistHighestMicros, HistSigFigs)
		err = h.dense.RecordValue(v)
	}
	// The only possible error is a total count past math.MaxInt64.
	if err == nil && clamped {
		h.clamped++
	}
}

// Clamped returns how many recorded durations were over 60 s (and were
// recorded as 60 s).
func (h *Histogram) Clamped() int64 { return h.clamped }

// Count returns the number of recorded durations, clamped ones included.
func (h *Histogram) Count() int64 {
	switch {
	case h.dense != nil:
		return h.dense.TotalCount()
	case h.sparse != nil:
		return h.sparse.total
	}
	return 0
}

func micros(v int64) time.Duration {
	// HDR answers with the highest value equivalent to a slot; the top
	// slot reaches past the range, where nothing was recorded.
	return time.Duration(min(v, HistHighestMicros)) * time.Microsecond
}

// Quantile returns the duration at or below which a fraction q (0 to 1,
// clamped) of the recorded durations fall, within the histogram's precision.
// It returns 0 when the histogram is empty.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.Count() == 0 {
		return 0
	}
	if !(q >= 0) { // NaN too
		q = 0
	} else if q > 1 {
		q = 1
	}
	if h.dense != nil {
		return micros(h.dense.ValueAtQuantile(q * 100))
	}
	return micros(h.sparse.packed().ValueAtPercentile(q * 100))
}

// Max returns the largest recorded duration, within the histogram's
// precision; 0 when empty.
func (h *Histogram) Max() time.Duration {
	switch {
	case h.Count() == 0:
		return 0
	case h.dense != nil:
		return micros(h.dense.Max())
	}
	return micros(h.sparse.packed().Max())
}

// Min returns the smallest recorded duration, within the histogram's
// precision; 0 when empty.
func (h *Histogram) Min() time.Duration {
	switch {
	case h.Count() == 0:
		return 0
	case h.dense != nil:
		return micros(h.dense.Min())
	}
	return micros(h.sparse.packed().Min())
}

// Mean returns the mean of the recorded durations, within the histogram's
// precision; 0 when empty.
func (h *Histogram) Mean() time.Duration {
	var m float64
	switch {
	case h.Count() == 0:
		return 0
	case h.dense != nil:
		m = h.dense.Mean()
	default:
		m = h.sparse.packed().Mean()
	}
	return time.Duration(math.Round(m * float64(time.Microsecond)))
}

// checkMerge reports why o cannot be merged into h, before anything changes.
func (h *Histogram) checkMerge(o *Histogram) error {
	if hp, op := h.params(), o.params(); hp != op {
		return fmt.Errorf("histogram parameters %v and %v differ", hp, op)
	}
	if o.Count() > math.MaxInt64-h.Count() {
		return errors.New("histogram total count would overflow")
	}
	return nil
}

// Merge adds the durations recorded in o to h, exactly: the result is the
// histogram of all the durations recorded into either. It returns an error,
// and leaves h unchanged, when the histograms have different parameters or
// the total count would overflow; it never drops a value silently. o is not
// changed, and a nil o is an empty one.
func (h *Histogram) Merge(o *Histogram) error {
	if o == nil {
		return nil
	}
	if err := h.checkMerge(o); err != nil {
		return err
	}
	if o.Count() == 0 {
		return nil
	}
	if o == h {
		o = h.Clone()
	}
	var dropped int64
	switch {
	case h.dense != nil && o.dense != nil:
		dropped = h.dense.Merge(o.dense)
	case h.dense != nil:
		dropped = o.sparse.mergeInto(h.dense)
	case h.sparse != nil && o.dense != nil:
		h.sparse.merge(countsOfDense(o.dense))
	case h.sparse != nil:
		h.sparse.merge(o.sparse)
	default: // h is the zero value
		*h = *o.compactClone()
		return nil
	}
	if dropped != 0 {
		// checkMerge rules this out; report it rather than trust it.
		return fmt.Errorf("histogram merge dropped %d values", dropped)
	}
	h.clamped += o.clamped
	return nil
}

// Clone returns an independent copy of h in the same representation.
func (h *Histogram) Clone() *Histogram {
	c := &Histogram{clamped: h.clamped}
	switch {
	case h.dense != nil:
		c.dense = h.dense.Clone()
	case h.sparse != nil:
		c.sparse = h.sparse.clone()
	}
	return c
}

// compactClone returns an independent sparse copy of h, sized to fit (a
// dense one for other parameters, which counts cannot hold).
func (h *Histogram) compactClone() *Histogram {
	c := &Histogram{clamped: h.clamped}
	switch {
	case h.dense != nil && h.params() != ourParams:
		c.dense = h.dense.Clone()
	case h.dense != nil:
		c.sparse = countsOfDense(h.dense)
	case h.sparse != nil:
		c.sparse = h.sparse.clone()
	}
	return c
}

// compactOrNil returns a compact copy of h, or nil when h is nil or empty.
func compactOrNil(h *Histogram) *Histogram {
	if h == nil || h.Count() == 0 {
		return nil
	}
	return h.compactClone()
}

// Reset empties h, keeping its representation and memory.
func (h *Histogram) Reset() {
	switch {
	case h.dense != nil:
		h.dense.Reset()
	case h.sparse != nil:
		h.sparse.reset()
	}
	h.clamped = 0
}
