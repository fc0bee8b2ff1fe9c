package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

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
	maxMapPairs      = 1 << 10 // pairs in one map
)

// The CBOR modes are built once. Decoding forbids what these types never
// use (tags, indefinite lengths, byte strings for text) and limits nesting
// (a Series is 7 levels deep), array lengths (a histogram holds at most
// 2×17192 numbers, a series 86400 seconds) and map sizes (a struct has at
// most 12 keys, samples 64 classes). The decoders of seconds, series and
// histograms read most of their input by hand (see reader), with the same
// rules.
var (
	encMode = mustEncMode(cbor.EncOptions{Sort: cbor.SortCoreDeterministic})
	decMode = mustDecMode(cbor.DecOptions{
		DupMapKey:          cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:    16,
		MaxArrayElements:   1 << 17,
		MaxMapPairs:        maxMapPairs,
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
	c := h.sparse
	if h.dense != nil {
		c = countsOfDense(h.dense)
	}
	n := 0
	if c != nil {
		n = len(c.idx)
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
	prev := -1
	for i, idx := range c.idx {
		b = appendHead(appendHead(b, 0, uint64(int(idx)-prev)), 0, uint64(c.at(i)))
		prev = int(idx)
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

// decodeHistogram decodes a Histogram, or nil from null (see
// reader.hist for the checks).
func decodeHistogram(data []byte) (*Histogram, error) {
	r := reader{data}
	h, err := r.hist()
	if err == nil && len(r.b) != 0 {
		err = fmt.Errorf("%d bytes of extraneous data after the histogram", len(r.b))
	}
	if err != nil {
		return nil, malformed("histogram", data, err)
	}
	return h, nil
}

// hist reads a Histogram, or nil from null (or undefined). The parameters
// must be ours; indexes must increase and stay within the range (values
// above 60 s are never recorded); counts must be positive, with a total
// that fits an int64; the clamped count must be non-negative and at most
// the count at 60 s.
func (r *reader) hist() (*Histogram, error) {
	if isNull(r.b) {
		r.b = r.b[1:]
		return nil, nil
	}
	var p histParams
	var clamped, top int64
	c := &counts{}
	err := r.fields(func(key int64) (bool, error) {
		var err error
		switch key {
		case 1:
			p.lowest, err = r.int("lowest")
		case 2:
			p.highest, err = r.int("highest")
		case 3:
			p.sigFigs, err = r.int("significant figures")
		case 4:
			clamped, err = r.int("clamped")
		case 5:
			top, err = r.counts(c)
		default:
			return false, nil
		}
		return true, err
	})
	switch {
	case err != nil:
		return nil, err
	case p != ourParams:
		return nil, fmt.Errorf("parameters %v differ from %v", p, ourParams)
	case clamped < 0:
		return nil, fmt.Errorf("negative clamped count %d", clamped)
	case clamped > top:
		return nil, fmt.Errorf("clamped count %d exceeds the %d values at 60 s", clamped, top)
	}
	return &Histogram{sparse: c, clamped: clamped}, nil
}

// counts reads the (index delta, count) pairs of a histogram into c, which
// is empty, and returns the count at 60 s.
func (r *reader) counts(c *counts) (top int64, err error) {
	n, err := r.head(4, "counts")
	if err != nil {
		return 0, err
	}
	if n%2 != 0 {
		return 0, fmt.Errorf("odd number %d of index and count entries", n)
	}
	if n/2 > uint64(maxIndex)+1 {
		return 0, fmt.Errorf("%d counts, more than the %d slots", n/2, maxIndex+1)
	}
	// Sized for the counts the input can hold (2 bytes each at least), and
	// filled through locals, which the compiler keeps in registers.
	size := min(int(n/2), len(r.b)/2)
	idx, small := make([]uint16, 0, size), make([]uint16, 0, size)
	wide := false // the counts went to c (c.push) once the total passed maxSmall
	b := r.b
	at, total := int64(-1), int64(0)
	for i := range int(n / 2) {
		var delta, v uint64
		if len(b) >= 2 && b[0] < 24 && b[1] < 24 { // both in their head, as most are
			delta, v, b = uint64(b[0]), uint64(b[1]), b[2:]
		} else if delta, v, b, err = pairHeads(b, i); err != nil {
			return 0, err
		}
		// 1 <= delta <= maxIndex-at and 1 <= v <= MaxInt64-total.
		if delta-1 >= uint64(int64(maxIndex)-at) || v-1 >= uint64(math.MaxInt64-total) {
			return 0, pairError(delta, v, at, total)
		}
		at += int64(delta)
		if !wide && uint64(total)+v <= maxSmall {
			idx, small = append(idx, uint16(at)), append(small, uint16(v))
		} else {
			if !wide {
				c.idx, c.small, c.total, wide = idx, small, total, true
			}
			c.push(int32(at), int64(v))
		}
		total += int64(v)
	}
	if !wide {
		c.idx, c.small, c.total = idx, small, total
	}
	r.b = b
	if at == int64(maxIndex) { // the last index, if any
		top = c.at(len(c.idx) - 1)
	}
	return top, nil
}

// pairHeads reads the i-th (index delta, count) pair of a histogram's counts
// when either is over 23 (or the input is wrong).
func pairHeads(b []byte, i int) (delta, v uint64, rest []byte, err error) {
	if delta, b, err = cborHead(b, 0); err != nil {
		return 0, 0, nil, fmt.Errorf("counts: entry %d: %w", 2*i, err)
	}
	if v, b, err = cborHead(b, 0); err != nil {
		return 0, 0, nil, fmt.Errorf("counts: entry %d: %w", 2*i+1, err)
	}
	return delta, v, b, nil
}

// pairError says what is wrong with a pair after index at, with the counts
// before it summing to total.
func pairError(delta, v uint64, at, total int64) error {
	switch {
	case delta == 0:
		return fmt.Errorf("index delta 0 after index %d", at)
	case delta > uint64(int64(maxIndex)-at):
		if delta > math.MaxInt32 {
			return fmt.Errorf("index delta %d out of range", delta)
		}
		return fmt.Errorf("index %d out of range", at+int64(delta))
	case v == 0:
		return fmt.Errorf("count at index %d is 0", at+int64(delta))
	}
	return fmt.Errorf("total count overflows at index %d", at+int64(delta))
}

// wireBucket is the encoding of one Dim and its Bucket (reader.bucket
// decodes it).
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
	// Keys 13 and 14 came later (a decoder from before skips them).
	ConnWaits  int64 `cbor:"13,keyasint,omitempty"`
	ConnWaitNs int64 `cbor:"14,keyasint,omitempty"`
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
		{"connection waits", c.ConnWaits}, {"connection wait", c.ConnWaitNs},
	} {
		if f.v < 0 {
			return fmt.Errorf("negative %s count %d", f.name, f.v)
		}
	}
	if c.Errors > c.Requests {
		return fmt.Errorf("errors %d > requests %d", c.Errors, c.Requests)
	}
	if c.ConnWaits > c.Requests {
		return fmt.Errorf("connection waits %d > requests %d", c.ConnWaits, c.Requests)
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
			Latency: lat, Service: svc, ConnWaits: c.ConnWaits, ConnWaitNs: c.ConnWaitNs,
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

// reader decodes the encodings of this file in one pass. It walks maps and
// arrays and reads histogram counts (the bulk of a series) itself, and
// scalars in the form our encoder writes them; it hands anything else (a
// scalar in another form, an exemplar, the value of a key it does not know)
// to the cbor package, so that an input decodes, or fails, as it did when
// the cbor package decoded it all. Errors on malformed input are the cbor
// package's, as before (see malformed).
type reader struct {
	b []byte // what is left to read
}

// malformed returns the cbor package's error if data is malformed (what is
// wrong with its form comes first, as when the cbor package checked the
// whole input before decoding), else err.
func malformed(what string, data []byte, err error) error {
	if werr := decMode.Wellformed(data); werr != nil {
		return fmt.Errorf("%s: %w", what, werr)
	}
	return err
}

// majorNames are the CBOR major types, for errors.
var majorNames = [8]string{"an unsigned integer", "a negative integer", "a byte string", "a text string",
	"an array", "a map", "a tag", "a float or simple value"}

// isNull reports whether b starts with null or undefined, which the cbor
// package decodes into a pointer as nil and into a struct as nothing.
func isNull(b []byte) bool {
	return len(b) > 0 && (b[0] == cborNull[0] || b[0] == 0xf7)
}

func typeName(b []byte) string {
	switch {
	case len(b) == 0:
		return "nothing"
	case b[0] == cborNull[0]:
		return "null"
	}
	return majorNames[b[0]>>5]
}

// cborHead parses a CBOR head of a major type, of definite length, and
// returns its argument (the integer, or the length) and the bytes after it.
func cborHead(b []byte, major byte) (uint64, []byte, error) {
	if len(b) == 0 || b[0]>>5 != major {
		return 0, nil, fmt.Errorf("not %s", majorNames[major])
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
		return 0, nil, fmt.Errorf("not %s of definite length", majorNames[major])
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

// head reads the head of an item of a major type (see cborHead).
func (r *reader) head(major byte, what string) (uint64, error) {
	v, rest, err := cborHead(r.b, major)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	r.b = rest
	return v, nil
}

// value decodes the next item into v with the cbor package.
func (r *reader) value(v any) error {
	rest, err := decMode.UnmarshalFirst(r.b, v)
	r.b = rest
	return err
}

// skipped is the value of a key the decoders do not know: the cbor package
// checks it, and it is dropped.
type skipped struct{}

func (*skipped) UnmarshalCBOR([]byte) error { return nil }

// int reads an integer field.
func (r *reader) int(what string) (int64, error) {
	if v, rest, err := cborHead(r.b, 0); err == nil && v <= math.MaxInt64 {
		r.b = rest
		return int64(v), nil
	}
	var v int64
	if err := r.value(&v); err != nil {
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	return v, nil
}

// text reads a text field.
func (r *reader) text(what string) (string, error) {
	if n, rest, err := cborHead(r.b, 3); err == nil && n <= uint64(len(rest)) && utf8.Valid(rest[:n]) {
		r.b = rest[n:]
		return string(rest[:n]), nil
	}
	var s string
	if err := r.value(&s); err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	return s, nil
}

// key reads a map key: an integer (int64) or text (string).
func (r *reader) key() (any, error) {
	if len(r.b) > 0 && r.b[0] < 24 {
		k := int64(r.b[0])
		r.b = r.b[1:]
		return k, nil
	}
	if len(r.b) > 0 {
		switch r.b[0] >> 5 {
		case 0, 1:
			var k int64
			if err := r.value(&k); err != nil {
				return nil, fmt.Errorf("map key: %w", err)
			}
			return k, nil
		case 3:
			return r.text("map key")
		}
	}
	return nil, fmt.Errorf("map key is %s, not an integer or text", typeName(r.b))
}

// fields reads a map of a wire struct: fn reads the value of each integer
// key it knows and returns true; the values of other keys, integers or
// text, are checked and skipped, as the cbor package does. No key may
// repeat. Null reads as no keys.
func (r *reader) fields(fn func(key int64) (bool, error)) error {
	if isNull(r.b) { // the cbor package leaves the struct as it is
		r.b = r.b[1:]
		return nil
	}
	if len(r.b) == 0 || r.b[0]>>5 != 5 {
		return fmt.Errorf("cbor: cannot unmarshal %s into a map", typeName(r.b))
	}
	n, err := r.head(5, "map")
	if err != nil {
		return err
	}
	if n > maxMapPairs {
		return fmt.Errorf("map of %d pairs, over the limit of %d", n, maxMapPairs)
	}
	var seen uint64         // keys 0..63
	var others map[any]bool // other keys
	for range n {
		key, err := r.key()
		if err != nil {
			return err
		}
		k, isInt := key.(int64)
		if isInt && k >= 0 && k < 64 {
			if seen&(1<<k) != 0 {
				return fmt.Errorf("duplicate map key %d", k)
			}
			seen |= 1 << k
		} else {
			if others[key] {
				return fmt.Errorf("duplicate map key %q", fmt.Sprint(key))
			}
			if others == nil {
				others = map[any]bool{}
			}
			others[key] = true
		}
		if isInt {
			if known, err := fn(k); known || err != nil {
				if err != nil {
					return err
				}
				continue
			}
		}
		if err := r.value(&skipped{}); err != nil {
			return fmt.Errorf("map key %q: %w", fmt.Sprint(key), err)
		}
	}
	return nil
}

// exemplars reads and checks a second's exemplars: at most MaxExemplars,
// each with a step and class as a Dim's fields, a 16-byte trace id other
// than zero, a latency >= 0 and a status 0..999. They are then selected as
// a merge would (sorted, duplicates and the surplus of a step left out), so
// a list in another order decodes as the encoder would have written it.
func (r *reader) exemplars() ([]Exemplar, error) {
	n, err := r.head(4, "exemplars")
	if err != nil {
		return nil, err
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
		if err := r.value(&we); err != nil {
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
	return selectExemplars(out), nil
}

// second reads a Second, the pos-th of a series (-1: alone); budget is the
// number of buckets the caller still accepts, and is reduced by this
// second's.
func (r *reader) second(pos int, budget *int) (*Second, error) {
	s := NewSecond(0)
	hasT := false // errors say which second
	err := r.fields(func(key int64) (bool, error) {
		var err error
		switch key {
		case 1:
			if s.T, err = r.int("T"); err == nil {
				hasT = true
				if s.T < 0 {
					err = errors.New("negative T")
				}
			}
		case 2:
			err = r.buckets(s, budget)
		case 3:
			s.Exemplars, err = r.exemplars()
		default:
			return false, nil
		}
		return true, err
	})
	switch {
	case err == nil:
		return s, nil
	case hasT:
		return nil, fmt.Errorf("second %d: %w", s.T, err)
	case pos >= 0:
		return nil, fmt.Errorf("second at position %d: %w", pos, err)
	}
	return nil, fmt.Errorf("second: %w", err)
}

// buckets reads the buckets of s.
func (r *reader) buckets(s *Second, budget *int) error {
	n, err := r.head(4, "buckets")
	if err != nil {
		return err
	}
	if n > maxDims {
		return fmt.Errorf("%d dims, over the limit of %d", n, maxDims)
	}
	if n > uint64(*budget) {
		return fmt.Errorf("%d dims, over the limit of %d buckets in all", n, maxSeriesBuckets)
	}
	*budget -= int(n)
	s.Buckets = make(map[Dim]*Bucket, n)
	for i := range n {
		d, b, err := r.bucket(i)
		if err != nil {
			return err
		}
		if s.Buckets[d] != nil {
			return fmt.Errorf("duplicate dim %v", d)
		}
		s.Buckets[d] = b
	}
	return nil
}

// bucket reads and checks the i-th bucket of a second. Errors say which
// by its dim once it is read (and valid), else by its position.
func (r *reader) bucket(i uint64) (Dim, *Bucket, error) {
	var d Dim
	b := &Bucket{}
	named := false
	err := r.fields(func(key int64) (bool, error) {
		named = named || key > 3 // the encoder writes the dim first
		var err error
		switch key {
		case 1:
			d.Step, err = r.text("step")
		case 2:
			d.Status, err = r.text("status")
		case 3:
			d.Error, err = r.text("error")
		case 4:
			b.Planned, err = r.int("planned")
		case 5:
			b.Arrivals, err = r.int("arrivals")
		case 6:
			b.Dropped, err = r.int("dropped")
		case 7:
			b.Requests, err = r.int("requests")
		case 8:
			b.Errors, err = r.int("errors")
		case 9:
			b.BytesIn, err = r.int("bytes in")
		case 10:
			b.BytesOut, err = r.int("bytes out")
		case 11:
			b.Latency, err = r.bucketHist("latency")
		case 12:
			b.Service, err = r.bucketHist("service")
		case 13:
			b.ConnWaits, err = r.int("connection waits")
		case 14:
			b.ConnWaitNs, err = r.int("connection wait")
		default:
			return false, nil
		}
		return true, err
	})
	if err == nil {
		if err = checkDim(d); err != nil {
			named = false
		} else {
			named, err = true, checkCounters(b.Counters)
		}
	}
	switch {
	case err == nil:
		return d, b, nil
	case named && checkDim(d) == nil:
		return d, nil, fmt.Errorf("dim %v: %w", d, err)
	}
	return d, nil, fmt.Errorf("dim %d: %w", i, err)
}

// bucketHist reads a bucket's histogram; an empty one is nil, as the
// encoder writes it.
func (r *reader) bucketHist(what string) (*Histogram, error) {
	h, err := r.hist()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if h == nil || h.Count() == 0 {
		return nil, nil
	}
	return h, nil
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
	if len(data) == 1 && isNull(data) {
		return nil, errors.New("second: null")
	}
	r := reader{data}
	budget := maxDims
	s, err := r.second(-1, &budget)
	if err == nil && len(r.b) != 0 {
		err = fmt.Errorf("second %d: %d bytes of extraneous data after it", s.T, len(r.b))
	}
	if err != nil {
		return nil, malformed("second", data, err)
	}
	return s, nil
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

// samples reads and checks the samples of a series into an empty map.
func (r *reader) samples(into map[string][]string) error {
	n, err := r.head(5, "samples")
	if err != nil {
		return err
	}
	if n > maxSampleClasses {
		return fmt.Errorf("samples: %d classes, over the limit of %d", n, maxSampleClasses)
	}
	for range n {
		var class string
		if err := r.value(&class); err != nil {
			return fmt.Errorf("samples: class: %w", err)
		}
		if err := checkText("class", class, MaxDimLen); err != nil {
			return fmt.Errorf("samples: %w", err)
		}
		if _, dup := into[class]; dup {
			return fmt.Errorf("samples: duplicate class %q", class)
		}
		m, err := r.head(4, "samples: class "+strconv.Quote(class))
		if err != nil {
			return err
		}
		if m > MaxSamples {
			return fmt.Errorf("samples: class %q: %d samples, over the limit of %d", class, m, MaxSamples)
		}
		msgs := make([]string, m)
		for i := range msgs {
			if err := r.value(&msgs[i]); err != nil {
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
// plus 5 times the input whatever the input: a histogram's counts take 4
// or 10 bytes each, see counts, and 2 at least in the input); each second
// is checked as DecodeSecond does; samples must have at most 64 classes of
// at most MaxDimLen bytes, each with at most MaxSamples distinct messages
// of at most MaxSampleLen bytes. Its histograms are sparse. It never
// panics.
func DecodeSeries(data []byte) (*Series, error) {
	if len(data) > MaxSeriesBytes {
		return nil, fmt.Errorf("series: input is %d bytes, over the limit of %d", len(data), MaxSeriesBytes)
	}
	if len(data) == 1 && isNull(data) {
		return nil, errors.New("series: null")
	}
	r := reader{data}
	s, err := r.series()
	if err == nil && len(r.b) != 0 {
		err = fmt.Errorf("%d bytes of extraneous data after it", len(r.b))
	}
	if err != nil {
		return nil, malformed("series", data, fmt.Errorf("series: %w", err))
	}
	return s, nil
}

// series reads a Series (see DecodeSeries).
func (r *reader) series() (*Series, error) {
	s := NewSeries()
	budget := maxSeriesBuckets
	err := r.fields(func(key int64) (bool, error) {
		switch key {
		case 1:
			return true, r.seconds(s, &budget)
		case 2:
			return true, r.samples(s.Samples)
		}
		return false, nil
	})
	return s, err
}

// seconds reads the seconds of a series into s.
func (r *reader) seconds(s *Series, budget *int) error {
	n, err := r.head(4, "seconds")
	if err != nil {
		return err
	}
	if n > maxSeconds {
		return fmt.Errorf("%d seconds, over the limit of %d", n, maxSeconds)
	}
	for i := range int(n) {
		sec, err := r.second(i, budget)
		if err != nil {
			return err
		}
		if s.Seconds[sec.T] != nil {
			return fmt.Errorf("duplicate second %d", sec.T)
		}
		s.Seconds[sec.T] = sec
	}
	return nil
}
