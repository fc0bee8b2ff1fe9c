package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
	"unicode/utf8"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
	"github.com/fxamacker/cbor/v2"
)

// Limits of the encodings. Encoders refuse what decoders would refuse, so
// whatever encodes also decodes.
const (
	// MaxSecondBytes is the largest encoded Second that DecodeSecond reads:
	// 4 MiB. A realistic second (15 dims, a few thousand requests each) is
	// a few tens of KB.
	MaxSecondBytes = 4 << 20
	// MaxSeriesBytes is the largest encoded Series that DecodeSeries reads:
	// 64 MiB. Query longer tests in ranges (Series.Filter).
	MaxSeriesBytes = 64 << 20
	// MaxDimLen is the longest Dim field (and sample class), in bytes.
	MaxDimLen = 256

	maxDims          = 4096    // dims in one second
	maxSeconds       = 86400   // seconds in one series: a day
	maxSeriesBuckets = 1 << 16 // buckets in one series, all seconds together
)

// The CBOR modes are built once. Decoding forbids what these types never
// use (tags, indefinite lengths, byte strings for text) and limits nesting
// (a Series is 7 levels deep), array lengths (a histogram holds at most
// 2×17192 numbers, a series 86400 seconds) and map sizes (a struct has at
// most 12 keys, samples 64 classes).
var (
	encMode = mustEncMode(cbor.EncOptions{Sort: cbor.SortCoreDeterministic})
	decMode = mustDecMode(cbor.DecOptions{
		DupMapKey:          cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:    16,
		MaxArrayElements:   1 << 17,
		MaxMapPairs:        1 << 10,
		IndefLength:        cbor.IndefLengthForbidden,
		TagsMd:             cbor.TagsForbidden,
		UTF8:               cbor.UTF8RejectInvalid,
		ByteStringToString: cbor.ByteStringToStringForbidden,
	})
)

func mustEncMode(o cbor.EncOptions) cbor.EncMode {
	m, err := o.EncMode()
	if err != nil {
		panic(err) // constant options
	}
	return m
}

func mustDecMode(o cbor.DecOptions) cbor.DecMode {
	m, err := o.DecMode()
	if err != nil {
		panic(err) // constant options
	}
	return m
}

// wireHist is the encoding of a Histogram: its parameters, the clamped
// count, and its non-zero counts as (index delta, count) pairs, in index
// order. The first delta is counted from index -1, so every delta is at
// least 1. MarshalCBOR writes it by hand, as the cbor package would (a test
// checks that they agree), because reflection on thousands of numbers is
// slow.
type wireHist struct {
	Lowest  int64    `cbor:"1,keyasint"`
	Highest int64    `cbor:"2,keyasint"`
	SigFigs int64    `cbor:"3,keyasint"`
	Clamped int64    `cbor:"4,keyasint,omitempty"`
	Counts  []uint64 `cbor:"5,keyasint,omitempty"`
}

// wireHistIn decodes a wireHist, leaving the counts to be read by hand.
type wireHistIn struct {
	Lowest  int64           `cbor:"1,keyasint"`
	Highest int64           `cbor:"2,keyasint"`
	SigFigs int64           `cbor:"3,keyasint"`
	Clamped int64           `cbor:"4,keyasint,omitempty"`
	Counts  cbor.RawMessage `cbor:"5,keyasint,omitempty"`
}

var cborNull = []byte{0xf6}

// appendHead appends the shortest CBOR head of a major type and argument.
func appendHead(b []byte, major byte, v uint64) []byte {
	m := major << 5
	switch {
	case v < 24:
		return append(b, m|byte(v))
	case v <= math.MaxUint8:
		return append(b, m|24, byte(v))
	case v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, m|25), uint16(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, m|26), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(b, m|27), v)
}

// MarshalCBOR implements cbor.Marshaler with a sparse encoding: a histogram
// of one second takes a few hundred bytes to a few KB, where the dense
// counts would take 139 KB. A nil *Histogram encodes as null.
func (h *Histogram) MarshalCBOR() ([]byte, error) {
	if h == nil {
		return cborNull, nil
	}
	if p := h.params(); p != ourParams {
		return nil, fmt.Errorf("cannot encode a histogram with parameters %v", p)
	}
	var dense []int64
	n := 0
	switch {
	case h.dense != nil:
		// Export copies the 139 KB of counts; the library has no cheaper
		// way to list a dense histogram's counts.
		dense = h.dense.Export().Counts
		for _, c := range dense {
			if c > 0 {
				n++
			}
		}
	case h.sparse != nil:
		h.sparse.ForEachBucket(func(_, c int64) bool {
			if c > 0 {
				n++
			}
			return true
		})
	}
	keys := uint64(3)
	if h.clamped > 0 {
		keys++
	}
	if n > 0 {
		keys++
	}
	b := make([]byte, 0, 16+5*n)
	b = appendHead(b, 5, keys)
	b = appendHead(appendHead(b, 0, 1), 0, HistLowestMicros)
	b = appendHead(appendHead(b, 0, 2), 0, HistHighestMicros)
	b = appendHead(appendHead(b, 0, 3), 0, HistSigFigs)
	if h.clamped > 0 {
		b = appendHead(appendHead(b, 0, 4), 0, uint64(h.clamped))
	}
	if n == 0 {
		return b, nil
	}
	b = appendHead(appendHead(b, 0, 5), 4, uint64(2*n))
	prev := int32(-1)
	add := func(idx int32, c int64) {
		b = appendHead(appendHead(b, 0, uint64(idx-prev)), 0, uint64(c))
		prev = idx
	}
	if dense != nil {
		for i, c := range dense {
			if c > 0 {
				add(int32(i), c)
			}
		}
	} else {
		h.sparse.ForEachBucket(func(v, c int64) bool {
			if c > 0 {
				add(indexOf(v), c)
			}
			return true
		})
	}
	return b, nil
}

// UnmarshalCBOR implements cbor.Unmarshaler. It checks everything (see
// decodeHistogram) and returns an error rather than panic. Decoding null
// into a *Histogram gives nil; UnmarshalCBOR itself, given null, empties h.
// The result is sparse.
func (h *Histogram) UnmarshalCBOR(data []byte) error {
	d, err := decodeHistogram(data)
	if err != nil {
		return err
	}
	if d == nil {
		d = &Histogram{}
	}
	*h = *d
	return nil
}

// decodeHistogram decodes a Histogram, or nil from null. The parameters
// must be ours; indexes must increase and stay within the range (values
// above 60 s are never recorded); counts must be positive, with a total
// that fits an int64; the clamped count must be non-negative and at most
// the count at 60 s.
func decodeHistogram(data []byte) (*Histogram, error) {
	var w *wireHistIn
	if err := decMode.Unmarshal(data, &w); err != nil {
		return nil, err
	}
	if w == nil {
		return nil, nil
	}
	if p := (histParams{w.Lowest, w.Highest, w.SigFigs}); p != ourParams {
		return nil, fmt.Errorf("parameters %v differ from %v", p, ourParams)
	}
	if w.Clamped < 0 {
		return nil, fmt.Errorf("negative clamped count %d", w.Clamped)
	}
	p := hdr.NewPacked(HistLowestMicros, HistHighestMicros, HistSigFigs)
	var top int64
	if w.Counts != nil {
		var err error
		if top, err = readCounts(w.Counts, p); err != nil {
			return nil, err
		}
	}
	if w.Clamped > top {
		return nil, fmt.Errorf("clamped count %d exceeds the %d values at 60 s", w.Clamped, top)
	}
	p.Compact()
	return &Histogram{sparse: p, clamped: w.Clamped}, nil
}

// readCounts checks the (index delta, count) pairs of raw, a well-formed
// CBOR item, and records them into p. It returns the count at 60 s.
func readCounts(raw []byte, p *hdr.PackedHistogram) (top int64, err error) {
	n, rest, err := cborHead(raw, 4)
	if err != nil {
		return 0, fmt.Errorf("counts: %w", err)
	}
	if n%2 != 0 {
		return 0, fmt.Errorf("odd number %d of index and count entries", n)
	}
	if n/2 > uint64(maxIndex)+1 {
		return 0, fmt.Errorf("%d counts, more than the %d slots", n/2, maxIndex+1)
	}
	idx := int64(-1)
	var total int64
	for i := uint64(0); i < n; i += 2 {
		var delta, c uint64
		if delta, rest, err = cborHead(rest, 0); err != nil {
			return 0, fmt.Errorf("counts: entry %d: %w", i, err)
		}
		if c, rest, err = cborHead(rest, 0); err != nil {
			return 0, fmt.Errorf("counts: entry %d: %w", i+1, err)
		}
		switch {
		case delta == 0:
			return 0, fmt.Errorf("index delta 0 after index %d", idx)
		case delta > uint64(int64(maxIndex)-idx):
			if delta > math.MaxInt32 {
				return 0, fmt.Errorf("index delta %d out of range", delta)
			}
			return 0, fmt.Errorf("index %d out of range", idx+int64(delta))
		}
		idx += int64(delta)
		if c == 0 {
			return 0, fmt.Errorf("count at index %d is 0", idx)
		}
		if c > uint64(math.MaxInt64-total) {
			return 0, fmt.Errorf("total count overflows at index %d", idx)
		}
		total += int64(c)
		if err := p.RecordValues(valueOf(int32(idx)), int64(c)); err != nil {
			return 0, fmt.Errorf("index %d: %w", idx, err)
		}
		if idx == int64(maxIndex) {
			top = int64(c)
		}
	}
	if len(rest) != 0 {
		return 0, fmt.Errorf("counts: %d bytes after the entries", len(rest))
	}
	return top, nil
}

// wireBucket is the encoding of one Dim and its Bucket. Histograms are
// decoded one by one, so that their errors say where they are.
type wireBucket struct {
	Step     string          `cbor:"1,keyasint,omitempty"`
	Status   string          `cbor:"2,keyasint,omitempty"`
	Error    string          `cbor:"3,keyasint,omitempty"`
	Planned  int64           `cbor:"4,keyasint,omitempty"`
	Arrivals int64           `cbor:"5,keyasint,omitempty"`
	Dropped  int64           `cbor:"6,keyasint,omitempty"`
	Requests int64           `cbor:"7,keyasint,omitempty"`
	Errors   int64           `cbor:"8,keyasint,omitempty"`
	BytesIn  int64           `cbor:"9,keyasint,omitempty"`
	BytesOut int64           `cbor:"10,keyasint,omitempty"`
	Latency  cbor.RawMessage `cbor:"11,keyasint,omitempty"`
	Service  cbor.RawMessage `cbor:"12,keyasint,omitempty"`
}

// wireSecondOut is the encoding of a Second: its buckets sorted by Dim, and
// its exemplars in their canonical order.
//
// The format grows by new keys, never by changing old ones: key 3
// (exemplars) was added after seconds had been stored and sent without it.
// A second encoded before has no key 3 and decodes with no exemplars; a
// decoder from before ignores key 3 (the decoders do not refuse unknown
// keys), so old and new nodes read each other's seconds.
type wireSecondOut struct {
	T         int64          `cbor:"1,keyasint"`
	Buckets   []wireBucket   `cbor:"2,keyasint,omitempty"`
	Exemplars []wireExemplar `cbor:"3,keyasint,omitempty"`
}

// wireSecondIn decodes a wireSecondOut, keeping the buckets raw so that they
// are decoded one at a time: decoding them all into a slice first would let
// a few bytes per bucket cost 150 bytes of memory before any check.
type wireSecondIn struct {
	T         int64           `cbor:"1,keyasint"`
	Buckets   cbor.RawMessage `cbor:"2,keyasint,omitempty"`
	Exemplars cbor.RawMessage `cbor:"3,keyasint,omitempty"`
}

// wireExemplar is the encoding of an Exemplar.
type wireExemplar struct {
	Step    string `cbor:"1,keyasint,omitempty"`
	TraceID []byte `cbor:"2,keyasint"`
	Latency int64  `cbor:"3,keyasint,omitempty"` // ns
	Status  int64  `cbor:"4,keyasint,omitempty"`
	Class   string `cbor:"5,keyasint,omitempty"`
	Sampled bool   `cbor:"6,keyasint,omitempty"`
}

// wireSeriesOut is the encoding of a Series: its seconds sorted by T, and
// its samples.
type wireSeriesOut struct {
	Seconds []wireSecondOut     `cbor:"1,keyasint,omitempty"`
	Samples map[string][]string `cbor:"2,keyasint,omitempty"`
}

// wireSeriesIn decodes a wireSeriesOut, keeping the parts raw (see
// wireSecondIn).
type wireSeriesIn struct {
	Seconds cbor.RawMessage `cbor:"1,keyasint,omitempty"`
	Samples cbor.RawMessage `cbor:"2,keyasint,omitempty"`
}

// checkText checks a string field of the encoding.
func checkText(what, s string, maxLen int) error {
	if len(s) > maxLen {
		return fmt.Errorf("%s is %d bytes, over the limit of %d", what, len(s), maxLen)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not valid UTF-8", what)
	}
	return nil
}

func checkDim(d Dim) error {
	return errors.Join(
		checkText("step", d.Step, MaxDimLen),
		checkText("status", d.Status, MaxDimLen),
		checkText("error", d.Error, MaxDimLen))
}

func checkCounters(c Counters) error {
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"planned", c.Planned}, {"arrivals", c.Arrivals}, {"dropped", c.Dropped},
		{"requests", c.Requests}, {"errors", c.Errors}, {"bytes in", c.BytesIn}, {"bytes out", c.BytesOut},
	} {
		if f.v < 0 {
			return fmt.Errorf("negative %s count %d", f.name, f.v)
		}
	}
	if c.Errors > c.Requests {
		return fmt.Errorf("errors %d > requests %d", c.Errors, c.Requests)
	}
	return nil
}

// encodeBucketHist encodes a bucket's histogram, leaving it out (nil) when
// it is nil or empty.
func encodeBucketHist(h *Histogram) (cbor.RawMessage, error) {
	if h == nil || h.Count() == 0 {
		return nil, nil
	}
	return h.MarshalCBOR()
}

// decodeBucketHist decodes a bucket's histogram; an empty one becomes nil,
// as the encoder writes it.
func decodeBucketHist(raw cbor.RawMessage) (*Histogram, error) {
	if raw == nil {
		return nil, nil
	}
	h, err := decodeHistogram(raw)
	if err != nil || h == nil || h.Count() == 0 {
		return nil, err
	}
	return h, nil
}

func secondToWire(s *Second) (wireSecondOut, error) {
	w := wireSecondOut{T: s.T}
	if s.T < 0 {
		return w, fmt.Errorf("second %d: negative T", s.T)
	}
	dims := make([]Dim, 0, len(s.Buckets))
	for d, b := range s.Buckets {
		if b != nil {
			dims = append(dims, d)
		}
	}
	if len(dims) > maxDims {
		return w, fmt.Errorf("second %d: %d dims, over the limit of %d", s.T, len(dims), maxDims)
	}
	slices.SortFunc(dims, compareDims)
	w.Buckets = make([]wireBucket, len(dims))
	for i, d := range dims {
		b := s.Buckets[d]
		if err := checkDim(d); err != nil {
			return w, fmt.Errorf("second %d: dim %d: %w", s.T, i, err)
		}
		if err := checkCounters(b.Counters); err != nil {
			return w, fmt.Errorf("second %d: dim %v: %w", s.T, d, err)
		}
		lat, err := encodeBucketHist(b.Latency)
		if err != nil {
			return w, fmt.Errorf("second %d: dim %v: latency: %w", s.T, d, err)
		}
		svc, err := encodeBucketHist(b.Service)
		if err != nil {
			return w, fmt.Errorf("second %d: dim %v: service: %w", s.T, d, err)
		}
		c := b.Counters
		w.Buckets[i] = wireBucket{
			Step: d.Step, Status: d.Status, Error: d.Error,
			Planned: c.Planned, Arrivals: c.Arrivals, Dropped: c.Dropped, Requests: c.Requests,
			Errors: c.Errors, BytesIn: c.BytesIn, BytesOut: c.BytesOut,
			Latency: lat, Service: svc,
		}
	}
	// Selected as a merge would: what a decoder would refuse (a zero trace
	// id, say) is left out rather than failing the second.
	ex := mergeExemplars(s.Exemplars, nil)
	if len(ex) > 0 {
		w.Exemplars = make([]wireExemplar, len(ex))
		for i, e := range ex {
			w.Exemplars[i] = wireExemplar{Step: e.Step, TraceID: e.TraceID[:], Latency: int64(e.Latency),
				Status: int64(e.Status), Class: e.Class, Sampled: e.Sampled}
		}
	}
	return w, nil
}

// exemplarsFromWire decodes and checks a second's exemplars: at most
// MaxExemplars, each with a step and class as a Dim's fields, a 16-byte
// trace id other than zero, a latency >= 0 and a status 0..999. They are
// then selected as a merge would (sorted, duplicates and the surplus of a
// step left out), so a list in another order decodes as the encoder would
// have written it.
func exemplarsFromWire(raw cbor.RawMessage) ([]Exemplar, error) {
	n, rest, err := cborHead(raw, 4)
	if err != nil {
		return nil, fmt.Errorf("exemplars: %w", err)
	}
	if n > MaxExemplars {
		return nil, fmt.Errorf("exemplars: %d, over the limit of %d", n, MaxExemplars)
	}
	if n == 0 {
		return nil, nil
	}
	out := make([]Exemplar, n)
	for i := range out {
		var we wireExemplar
		if rest, err = decMode.UnmarshalFirst(rest, &we); err != nil {
			return nil, fmt.Errorf("exemplar %d: %w", i, err)
		}
		if err := errors.Join(checkText("step", we.Step, MaxDimLen), checkText("class", we.Class, MaxDimLen)); err != nil {
			return nil, fmt.Errorf("exemplar %d: %w", i, err)
		}
		e := Exemplar{Step: we.Step, Latency: time.Duration(we.Latency), Status: int(we.Status), Class: we.Class, Sampled: we.Sampled}
		switch {
		case len(we.TraceID) != len(e.TraceID):
			return nil, fmt.Errorf("exemplar %d: trace id is %d bytes, not %d", i, len(we.TraceID), len(e.TraceID))
		case we.Latency < 0:
			return nil, fmt.Errorf("exemplar %d: negative latency %d", i, we.Latency)
		case we.Status < 0 || we.Status > MaxExemplarStatus:
			return nil, fmt.Errorf("exemplar %d: status %d is not 0..%d", i, we.Status, MaxExemplarStatus)
		}
		copy(e.TraceID[:], we.TraceID)
		if e.TraceID == [16]byte{} {
			return nil, fmt.Errorf("exemplar %d: zero trace id", i)
		}
		out[i] = e
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("exemplars: %d bytes after them", len(rest))
	}
	return selectExemplars(out), nil
}

// cborHead parses a CBOR head of an unsigned integer (major type 0), a
// definite-length array (4) or a map (5) and returns its argument (the
// integer, or the length) and the bytes after it.
func cborHead(b []byte, major byte) (uint64, []byte, error) {
	kind := func() string {
		switch major {
		case 0:
			return "an unsigned integer"
		case 4:
			return "an array"
		}
		return "a map"
	}
	if len(b) == 0 || b[0]>>5 != major {
		return 0, nil, fmt.Errorf("not %s", kind())
	}
	ai := b[0] & 0x1f
	b = b[1:]
	var n int
	switch {
	case ai < 24:
		return uint64(ai), b, nil
	case ai == 24:
		n = 1
	case ai == 25:
		n = 2
	case ai == 26:
		n = 4
	case ai == 27:
		n = 8
	default:
		return 0, nil, fmt.Errorf("not %s of definite length", kind())
	}
	if len(b) < n {
		return 0, nil, errors.New("truncated")
	}
	var v uint64
	for _, c := range b[:n] {
		v = v<<8 | uint64(c)
	}
	return v, b[n:], nil
}

// secondFromWire decodes and checks a second; budget is the number of
// buckets the caller still accepts, and is reduced by this second's.
func secondFromWire(w *wireSecondIn, budget *int) (*Second, error) {
	if w.T < 0 {
		return nil, fmt.Errorf("second %d: negative T", w.T)
	}
	s := NewSecond(w.T)
	if w.Exemplars != nil {
		var err error
		if s.Exemplars, err = exemplarsFromWire(w.Exemplars); err != nil {
			return nil, fmt.Errorf("second %d: %w", w.T, err)
		}
	}
	if w.Buckets == nil {
		return s, nil
	}
	n, rest, err := cborHead(w.Buckets, 4)
	if err != nil {
		return nil, fmt.Errorf("second %d: buckets: %w", w.T, err)
	}
	if n > maxDims {
		return nil, fmt.Errorf("second %d: %d dims, over the limit of %d", w.T, n, maxDims)
	}
	if n > uint64(*budget) {
		return nil, fmt.Errorf("second %d: %d dims, over the limit of %d buckets in all", w.T, n, maxSeriesBuckets)
	}
	*budget -= int(n)
	s.Buckets = make(map[Dim]*Bucket, n)
	for i := range n {
		var wb wireBucket
		if rest, err = decMode.UnmarshalFirst(rest, &wb); err != nil {
			return nil, fmt.Errorf("second %d: dim %d: %w", w.T, i, err)
		}
		d := Dim{Step: wb.Step, Status: wb.Status, Error: wb.Error}
		if err := checkDim(d); err != nil {
			return nil, fmt.Errorf("second %d: dim %d: %w", w.T, i, err)
		}
		if s.Buckets[d] != nil {
			return nil, fmt.Errorf("second %d: duplicate dim %v", w.T, d)
		}
		b := &Bucket{Counters: Counters{
			Planned: wb.Planned, Arrivals: wb.Arrivals, Dropped: wb.Dropped, Requests: wb.Requests,
			Errors: wb.Errors, BytesIn: wb.BytesIn, BytesOut: wb.BytesOut,
		}}
		if err := checkCounters(b.Counters); err != nil {
			return nil, fmt.Errorf("second %d: dim %v: %w", w.T, d, err)
		}
		if b.Latency, err = decodeBucketHist(wb.Latency); err != nil {
			return nil, fmt.Errorf("second %d: dim %v: latency: %w", w.T, d, err)
		}
		if b.Service, err = decodeBucketHist(wb.Service); err != nil {
			return nil, fmt.Errorf("second %d: dim %v: service: %w", w.T, d, err)
		}
		s.Buckets[d] = b
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("second %d: %d bytes after the buckets", w.T, len(rest))
	}
	return s, nil
}

// EncodeSecond encodes s in CBOR, deterministically (buckets sorted by Dim,
// exemplars in their canonical order). Nil buckets are left out, and so are
// empty histograms (they decode as nil) and exemplars that a Second would
// not keep (see Second.AddExemplar). It returns an error for what
// DecodeSecond would refuse.
func EncodeSecond(s *Second) ([]byte, error) {
	if s == nil {
		return nil, errors.New("second: nil")
	}
	w, err := secondToWire(s)
	if err != nil {
		return nil, err
	}
	b, err := encMode.Marshal(&w)
	if err != nil {
		return nil, fmt.Errorf("second %d: %w", s.T, err)
	}
	if len(b) > MaxSecondBytes {
		return nil, fmt.Errorf("second %d: encoding is %d bytes, over the limit of %d", s.T, len(b), MaxSecondBytes)
	}
	return b, nil
}

// DecodeSecond decodes a Second encoded by EncodeSecond, with limits: the
// input must be at most MaxSecondBytes, T non-negative, at most 4096 dims,
// all distinct, with fields of at most MaxDimLen bytes of UTF-8; counters
// must be non-negative, with Errors <= Requests; histograms are checked as
// Histogram.UnmarshalCBOR does; at most MaxExemplars exemplars, each with a
// step and class as a Dim's fields, a non-zero 16-byte trace id, a latency
// >= 0 and a status 0..999 (they are then selected as a merge would).
// Seconds encoded before exemplars existed decode with none. Errors say
// where ("second 12: dim {login 2xx }: latency: index 99999 out of
// range"). It never panics.
func DecodeSecond(data []byte) (*Second, error) {
	if len(data) > MaxSecondBytes {
		return nil, fmt.Errorf("second: input is %d bytes, over the limit of %d", len(data), MaxSecondBytes)
	}
	var w *wireSecondIn
	if err := decMode.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("second: %w", err)
	}
	if w == nil {
		return nil, errors.New("second: null")
	}
	budget := maxDims
	return secondFromWire(w, &budget)
}

// samplesToWire checks and sorts the samples; empty classes are left out.
func samplesToWire(samples map[string][]string) (map[string][]string, error) {
	out := make(map[string][]string, len(samples))
	for class, msgs := range samples {
		if len(msgs) == 0 {
			continue
		}
		if err := checkText("class", class, MaxDimLen); err != nil {
			return nil, fmt.Errorf("samples: %w", err)
		}
		if len(msgs) > MaxSamples {
			return nil, fmt.Errorf("samples: class %q: %d samples, over the limit of %d", class, len(msgs), MaxSamples)
		}
		sorted := slices.Clone(msgs)
		slices.Sort(sorted)
		for i, m := range sorted {
			if err := checkText("sample", m, MaxSampleLen); err != nil {
				return nil, fmt.Errorf("samples: class %q: %w", class, err)
			}
			if i > 0 && m == sorted[i-1] {
				return nil, fmt.Errorf("samples: class %q: duplicate sample", class)
			}
		}
		out[class] = sorted
	}
	if len(out) > maxSampleClasses {
		return nil, fmt.Errorf("samples: %d classes, over the limit of %d", len(out), maxSampleClasses)
	}
	return out, nil
}

func samplesFromWire(raw []byte, into map[string][]string) error {
	n, rest, err := cborHead(raw, 5)
	if err != nil {
		return fmt.Errorf("samples: %w", err)
	}
	if n > maxSampleClasses {
		return fmt.Errorf("samples: %d classes, over the limit of %d", n, maxSampleClasses)
	}
	for range n {
		var class string
		if rest, err = decMode.UnmarshalFirst(rest, &class); err != nil {
			return fmt.Errorf("samples: class: %w", err)
		}
		if err := checkText("class", class, MaxDimLen); err != nil {
			return fmt.Errorf("samples: %w", err)
		}
		if _, dup := into[class]; dup {
			return fmt.Errorf("samples: duplicate class %q", class)
		}
		m, r, err := cborHead(rest, 4)
		if err != nil {
			return fmt.Errorf("samples: class %q: %w", class, err)
		}
		if m > MaxSamples {
			return fmt.Errorf("samples: class %q: %d samples, over the limit of %d", class, m, MaxSamples)
		}
		rest = r
		msgs := make([]string, m)
		for i := range msgs {
			if rest, err = decMode.UnmarshalFirst(rest, &msgs[i]); err != nil {
				return fmt.Errorf("samples: class %q: %w", class, err)
			}
			if err := checkText("sample", msgs[i], MaxSampleLen); err != nil {
				return fmt.Errorf("samples: class %q: %w", class, err)
			}
		}
		slices.Sort(msgs)
		for i := 1; i < len(msgs); i++ {
			if msgs[i] == msgs[i-1] {
				return fmt.Errorf("samples: class %q: duplicate sample", class)
			}
		}
		into[class] = msgs
	}
	if len(rest) != 0 {
		return fmt.Errorf("samples: %d bytes after the classes", len(rest))
	}
	// Empty classes are not kept (the encoder leaves them out).
	for class, msgs := range into {
		if len(msgs) == 0 {
			delete(into, class)
		}
	}
	return nil
}

// EncodeSeries encodes s in CBOR, deterministically (seconds sorted by T,
// buckets by Dim, samples by class and message). Nil seconds and buckets
// and empty histograms are left out. It returns an error for what
// DecodeSeries would refuse.
func EncodeSeries(s *Series) ([]byte, error) {
	if s == nil {
		return nil, errors.New("series: nil")
	}
	ts := make([]int64, 0, len(s.Seconds))
	for t, sec := range s.Seconds {
		if sec == nil {
			continue
		}
		if sec.T != t {
			return nil, fmt.Errorf("second %d: stored under key %d", sec.T, t)
		}
		ts = append(ts, t)
	}
	if len(ts) > maxSeconds {
		return nil, fmt.Errorf("series: %d seconds, over the limit of %d", len(ts), maxSeconds)
	}
	slices.Sort(ts)
	var w wireSeriesOut
	w.Seconds = make([]wireSecondOut, len(ts))
	buckets := 0
	for i, t := range ts {
		ws, err := secondToWire(s.Seconds[t])
		if err != nil {
			return nil, err
		}
		if buckets += len(ws.Buckets); buckets > maxSeriesBuckets {
			return nil, fmt.Errorf("series: over the limit of %d buckets in all", maxSeriesBuckets)
		}
		w.Seconds[i] = ws
	}
	var err error
	if w.Samples, err = samplesToWire(s.Samples); err != nil {
		return nil, err
	}
	b, err := encMode.Marshal(&w)
	if err != nil {
		return nil, fmt.Errorf("series: %w", err)
	}
	if len(b) > MaxSeriesBytes {
		return nil, fmt.Errorf("series: encoding is %d bytes, over the limit of %d", len(b), MaxSeriesBytes)
	}
	return b, nil
}

// DecodeSeries decodes a Series encoded by EncodeSeries, with limits: the
// input must be at most MaxSeriesBytes, with at most 86400 distinct seconds
// and 65536 buckets in all (so that its memory stays within about 50 MB
// plus 3 times the input whatever the input); each second is checked as
// DecodeSecond does; samples must have at most 64 classes of at most
// MaxDimLen bytes, each with at most MaxSamples distinct messages of at most
// MaxSampleLen bytes. Its histograms are sparse. It never panics.
func DecodeSeries(data []byte) (*Series, error) {
	if len(data) > MaxSeriesBytes {
		return nil, fmt.Errorf("series: input is %d bytes, over the limit of %d", len(data), MaxSeriesBytes)
	}
	var w *wireSeriesIn
	if err := decMode.Unmarshal(data, &w); err != nil {
		return nil, fmt.Errorf("series: %w", err)
	}
	if w == nil {
		return nil, errors.New("series: null")
	}
	s := NewSeries()
	if w.Seconds != nil {
		n, rest, err := cborHead(w.Seconds, 4)
		if err != nil {
			return nil, fmt.Errorf("series: seconds: %w", err)
		}
		if n > maxSeconds {
			return nil, fmt.Errorf("series: %d seconds, over the limit of %d", n, maxSeconds)
		}
		budget := maxSeriesBuckets
		for i := range n {
			var ws wireSecondIn
			if rest, err = decMode.UnmarshalFirst(rest, &ws); err != nil {
				return nil, fmt.Errorf("series: second at position %d: %w", i, err)
			}
			sec, err := secondFromWire(&ws, &budget)
			if err != nil {
				return nil, err
			}
			if s.Seconds[sec.T] != nil {
				return nil, fmt.Errorf("series: duplicate second %d", sec.T)
			}
			s.Seconds[sec.T] = sec
		}
		if len(rest) != 0 {
			return nil, fmt.Errorf("series: %d bytes after the seconds", len(rest))
		}
	}
	if w.Samples != nil {
		if err := samplesFromWire(w.Samples, s.Samples); err != nil {
			return nil, err
		}
	}
	return s, nil
}
