package storage

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"unicode/utf8"
)

// Dim is one dimension of a result: a step (named request of the scenario), a
// status class and an error class.
type Dim struct {
	Step   string // request step name; the first step for arrival counters
	Status string // "1xx".."5xx", or "" when no response came
	Error  string // "" for success, else a class: "timeout","refused","reset","dns","tls","http_4xx","http_5xx","check","dropped","other"
}

// compareDims orders dims by step, status, then error; encodings list
// buckets in this order.
func compareDims(a, b Dim) int {
	if c := strings.Compare(a.Step, b.Step); c != 0 {
		return c
	}
	if c := strings.Compare(a.Status, b.Status); c != 0 {
		return c
	}
	return strings.Compare(a.Error, b.Error)
}

// Counters are exact counts for one Dim in one second.
type Counters struct {
	Planned  int64 // arrivals whose scheduled time fell in this second (the target)
	Arrivals int64 // arrivals actually started in this second (sent at least their first request)
	Dropped  int64 // arrivals dropped because max_in_flight requests were outstanding
	Requests int64 // HTTP requests completed (response or error) in this second
	Errors   int64 // of Requests, those with an error class
	BytesIn  int64 // response bytes received
	BytesOut int64 // request bytes sent
	// ConnWaits counts the requests of Requests that waited for a free
	// connection because the node's connection budget (max_in_flight,
	// or its file descriptors) was spent; ConnWaitNs is their total wait.
	// Nonzero means the test was connection-limited on that node.
	ConnWaits  int64
	ConnWaitNs int64
}

// Add adds o to c, field by field. It does not check for overflow; merges
// do, before they call it.
func (c *Counters) Add(o Counters) {
	c.Planned += o.Planned
	c.Arrivals += o.Arrivals
	c.Dropped += o.Dropped
	c.Requests += o.Requests
	c.Errors += o.Errors
	c.BytesIn += o.BytesIn
	c.BytesOut += o.BytesOut
	c.ConnWaits += o.ConnWaits
	c.ConnWaitNs += o.ConnWaitNs
}

// addOverflows reports whether a+b overflows an int64.
func addOverflows(a, b int64) bool {
	s := a + b
	return (b > 0 && s < a) || (b < 0 && s > a)
}

// checkAdd reports whether adding o to c would overflow a field.
func (c Counters) checkAdd(o Counters) error {
	if addOverflows(c.Planned, o.Planned) || addOverflows(c.Arrivals, o.Arrivals) ||
		addOverflows(c.Dropped, o.Dropped) || addOverflows(c.Requests, o.Requests) ||
		addOverflows(c.Errors, o.Errors) || addOverflows(c.BytesIn, o.BytesIn) ||
		addOverflows(c.BytesOut, o.BytesOut) || addOverflows(c.ConnWaits, o.ConnWaits) ||
		addOverflows(c.ConnWaitNs, o.ConnWaitNs) {
		return errors.New("counters would overflow")
	}
	return nil
}

// Bucket is one Dim's results in one second.
type Bucket struct {
	Counters
	Latency *Histogram // from the arrival's scheduled time to the response (coordinated-omission corrected); nil when no request completed
	Service *Histogram // from the actual send to the response; nil when no request completed
}

func (b *Bucket) checkMerge(o *Bucket) error {
	if err := b.Counters.checkAdd(o.Counters); err != nil {
		return err
	}
	if b.Latency != nil && o.Latency != nil {
		if err := b.Latency.checkMerge(o.Latency); err != nil {
			return fmt.Errorf("latency: %w", err)
		}
	}
	if b.Service != nil && o.Service != nil {
		if err := b.Service.checkMerge(o.Service); err != nil {
			return fmt.Errorf("service: %w", err)
		}
	}
	return nil
}

// mergeChecked merges o into b after checkMerge.
func (b *Bucket) mergeChecked(o *Bucket) error {
	b.Counters.Add(o.Counters)
	var err error
	if b.Latency, err = mergeHist(b.Latency, o.Latency); err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	if b.Service, err = mergeHist(b.Service, o.Service); err != nil {
		return fmt.Errorf("service: %w", err)
	}
	return nil
}

// mergeHist merges o into h and returns the result: h, or a compact copy of
// o when h is nil.
func mergeHist(h, o *Histogram) (*Histogram, error) {
	if o == nil || o.Count() == 0 {
		return h, nil
	}
	if h == nil {
		return o.compactClone(), nil
	}
	return h, h.Merge(o)
}

func (b *Bucket) clone() *Bucket {
	c := &Bucket{Counters: b.Counters}
	if b.Latency != nil {
		c.Latency = b.Latency.Clone()
	}
	if b.Service != nil {
		c.Service = b.Service.Clone()
	}
	return c
}

func (b *Bucket) compactClone() *Bucket {
	return &Bucket{Counters: b.Counters, Latency: compactOrNil(b.Latency), Service: compactOrNil(b.Service)}
}

// Second is every Dim's bucket for one second of one test on one node (or
// merged from several nodes). Nil buckets are ignored.
//
// Exemplars are traced requests that ended in the second: per step, the
// ExemplarsPerStep (2) slowest successful ones and the 2 slowest failed
// ones, MaxExemplars (64) in all (the steps that sort last lose theirs
// first). They are kept sorted by step, failures first, slowest first,
// ties broken by trace id; AddExemplar and the merges keep them so, and
// merges keep the slowest of both sides, so that they are commutative and
// associative. Nil for a second without any.
type Second struct {
	T         int64 // seconds since the test's start (0-based)
	Buckets   map[Dim]*Bucket
	Exemplars []Exemplar
}

// NewSecond returns an empty second.
func NewSecond(t int64) *Second {
	return &Second{T: t, Buckets: make(map[Dim]*Bucket)}
}

// Bucket returns the bucket for d, creating an empty one if there is none.
// A new bucket has nil histograms: whoever records the first completed
// request sets them to NewHistogram(), so that buckets of arrivals only
// (dropped ones, say) cost no histogram memory.
func (s *Second) Bucket(d Dim) *Bucket {
	if s.Buckets == nil {
		s.Buckets = make(map[Dim]*Bucket)
	}
	b := s.Buckets[d]
	if b == nil {
		b = &Bucket{}
		s.Buckets[d] = b
	}
	return b
}

func (s *Second) checkMerge(o *Second) error {
	if s.T != o.T {
		return fmt.Errorf("cannot merge second %d into second %d", o.T, s.T)
	}
	for d, ob := range o.Buckets {
		if b := s.Buckets[d]; b != nil && ob != nil {
			if err := b.checkMerge(ob); err != nil {
				return fmt.Errorf("dim %v: %w", d, err)
			}
		}
	}
	return nil
}

// mergeChecked merges o into s after checkMerge; buckets new to s are
// compact copies.
func (s *Second) mergeChecked(o *Second) error {
	if s.Buckets == nil {
		s.Buckets = make(map[Dim]*Bucket, len(o.Buckets))
	}
	for d, ob := range o.Buckets {
		if ob == nil {
			continue
		}
		b := s.Buckets[d]
		if b == nil {
			s.Buckets[d] = ob.compactClone()
			continue
		}
		if err := b.mergeChecked(ob); err != nil {
			return fmt.Errorf("dim %v: %w", d, err)
		}
	}
	if len(o.Exemplars) > 0 {
		s.Exemplars = mergeExemplars(s.Exemplars, o.Exemplars)
	}
	return nil
}

// Merge adds o's results to s exactly: counters are summed and histograms
// merged; of both seconds' exemplars, the slowest are kept (see Second). It
// returns an error, and leaves s unchanged, when the seconds have
// different T, a counter or histogram count would overflow, or two
// histograms have different parameters. o is not changed; a nil o is empty.
func (s *Second) Merge(o *Second) error {
	if o == nil {
		return nil
	}
	if err := s.checkMerge(o); err != nil {
		return err
	}
	if o == s {
		o = s.Clone()
	}
	return s.mergeChecked(o)
}

// Clone returns a deep copy of s; its histograms keep their representation.
func (s *Second) Clone() *Second {
	c := &Second{T: s.T, Buckets: make(map[Dim]*Bucket, len(s.Buckets)), Exemplars: slices.Clone(s.Exemplars)}
	for d, b := range s.Buckets {
		if b != nil {
			c.Buckets[d] = b.clone()
		}
	}
	return c
}

// compactClone returns a deep copy of s with sparse histograms and nil ones
// where they are empty, and its exemplars selected as a merge would (a
// second built by hand may hold more, or unsorted).
func (s *Second) compactClone() *Second {
	c := &Second{T: s.T, Buckets: make(map[Dim]*Bucket, len(s.Buckets)), Exemplars: mergeExemplars(s.Exemplars, nil)}
	for d, b := range s.Buckets {
		if b != nil {
			c.Buckets[d] = b.compactClone()
		}
	}
	return c
}

// MaxSamples is the number of example error messages a Series keeps per
// error class.
const MaxSamples = 5

// MaxSampleLen is the longest error message sample, in bytes; AddSample
// truncates longer ones.
const MaxSampleLen = 200

// maxSampleClasses is the number of error classes a Series keeps samples
// for; there are ten classes today.
const maxSampleClasses = 64

// Series is a test's results: seconds keyed by T, plus a few error samples
// per class. Nil seconds are ignored.
//
// Samples keep, per class, the MaxSamples smallest distinct messages in
// byte order (sorted), and samples of the maxSampleClasses (64) smallest
// classes. Keeping the smallest rather than the first makes merges
// commutative and associative. A message may end with the trace id of the
// request it describes (" trace=" and 32 lowercase hex digits, see
// TracedSample); messages that differ only in that suffix count as one,
// represented by the smallest of them, so that one frequent error does not
// fill its class with copies.
type Series struct {
	Seconds map[int64]*Second
	Samples map[string][]string // error class -> up to MaxSamples example messages
}

// NewSeries returns an empty series.
func NewSeries() *Series {
	return &Series{Seconds: make(map[int64]*Second), Samples: make(map[string][]string)}
}

// Add merges sec into the second of s with the same T, or stores a compact
// copy of it (sparse histograms) if s has none; sec stays the caller's. It
// returns an error for a negative T and for the errors of Second.Merge.
func (s *Series) Add(sec *Second) error {
	if sec == nil {
		return nil
	}
	if sec.T < 0 {
		return fmt.Errorf("second %d: negative T", sec.T)
	}
	if s.Seconds == nil {
		s.Seconds = make(map[int64]*Second)
	}
	if cur := s.Seconds[sec.T]; cur != nil {
		if err := cur.Merge(sec); err != nil {
			return fmt.Errorf("second %d: %w", sec.T, err)
		}
		return nil
	}
	s.Seconds[sec.T] = sec.compactClone()
	return nil
}

// clip makes s valid UTF-8 and cuts it to at most n bytes on a character
// boundary.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	i := n
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}

// AddSample records msg as an example of an error class. The message is cut
// to MaxSampleLen bytes (and the class to MaxDimLen), invalid UTF-8 is
// replaced, and identical messages, or messages identical but for their
// trace suffix, are kept once. Of the distinct messages of a class it keeps
// the MaxSamples smallest (see Series).
func (s *Series) AddSample(class, msg string) {
	class, msg = clip(class, MaxDimLen), clip(msg, MaxSampleLen)
	if s.Samples == nil {
		s.Samples = make(map[string][]string)
	}
	msgs, ok := s.Samples[class]
	if !ok && len(s.Samples) >= maxSampleClasses {
		largest := ""
		for c := range s.Samples {
			largest = max(largest, c)
		}
		if class > largest {
			return
		}
		delete(s.Samples, largest)
	}
	// Messages are compared by their text without the trace suffix (the
	// key): of each key the smallest message stays, and of the keys the
	// MaxSamples smallest. Without suffixes, that is the smallest distinct
	// messages.
	key := sampleKey(msg)
	largest := -1 // the message with the largest key
	for i, m := range msgs {
		k := sampleKey(m)
		if k == key {
			if msg >= m {
				return
			}
			msgs = slices.Delete(msgs, i, i+1)
			largest = -1
			break
		}
		if largest < 0 || k > sampleKey(msgs[largest]) {
			largest = i
		}
	}
	if largest >= 0 && len(msgs) >= MaxSamples {
		if key > sampleKey(msgs[largest]) {
			return
		}
		msgs = slices.Delete(msgs, largest, largest+1)
	}
	i, _ := slices.BinarySearch(msgs, msg)
	s.Samples[class] = slices.Insert(msgs, i, msg)
}

// TracedSample returns the error sample of a traced request: msg, made
// valid UTF-8 and cut so that the whole fits in MaxSampleLen, then
// " trace=" and the trace id as 32 lowercase hex digits.
func TracedSample(msg string, traceID [16]byte) string {
	msg = clip(msg, MaxSampleLen-traceSuffixLen)
	b := make([]byte, 0, len(msg)+traceSuffixLen)
	b = append(append(b, msg...), " trace="...)
	return string(hex.AppendEncode(b, traceID[:]))
}

// traceSuffixLen is the length of a trace suffix.
const traceSuffixLen = len(" trace=") + 32

// sampleKey returns msg without its trace suffix, if it has one.
func sampleKey(msg string) string {
	if len(msg) < traceSuffixLen {
		return msg
	}
	i := len(msg) - traceSuffixLen
	suf := msg[i:]
	if !strings.HasPrefix(suf, " trace=") {
		return msg
	}
	for _, c := range []byte(suf[len(" trace="):]) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return msg
		}
	}
	return msg[:i]
}

// Merge adds o's results to s exactly: seconds with the same T are merged,
// others copied (compactly), and samples combined as AddSample does. Merge
// is associative and commutative. It returns an error, and leaves s
// unchanged, for a second stored under a key other than its T, a negative T,
// or an error of Second.Merge. o is not changed; a nil o is empty.
func (s *Series) Merge(o *Series) error {
	if o == nil {
		return nil
	}
	if o == s {
		o = s.Clone()
	}
	for t, os := range o.Seconds {
		if os == nil {
			continue
		}
		if os.T != t {
			return fmt.Errorf("second %d: stored under key %d", os.T, t)
		}
		if t < 0 {
			return fmt.Errorf("second %d: negative T", t)
		}
		if cur := s.Seconds[t]; cur != nil {
			if err := cur.checkMerge(os); err != nil {
				return fmt.Errorf("second %d: %w", t, err)
			}
		}
	}
	if s.Seconds == nil {
		s.Seconds = make(map[int64]*Second, len(o.Seconds))
	}
	for t, os := range o.Seconds {
		if os == nil {
			continue
		}
		cur := s.Seconds[t]
		if cur == nil {
			s.Seconds[t] = os.compactClone()
			continue
		}
		if err := cur.mergeChecked(os); err != nil {
			return fmt.Errorf("second %d: %w", t, err)
		}
	}
	for class, msgs := range o.Samples {
		for _, m := range msgs {
			s.AddSample(class, m)
		}
	}
	return nil
}

// Clone returns a deep copy of s; its histograms keep their representation.
func (s *Series) Clone() *Series {
	return s.Filter(math.MinInt64, -1)
}

// Filter returns a deep copy of the seconds of s with T in [from, to]
// (inclusive; to < 0 means no upper bound), and of all its samples, which
// are not kept per second.
func (s *Series) Filter(from, to int64) *Series {
	c := &Series{Seconds: make(map[int64]*Second), Samples: make(map[string][]string, len(s.Samples))}
	for t, sec := range s.Seconds {
		if sec != nil && t >= from && (to < 0 || t <= to) {
			c.Seconds[t] = sec.Clone()
		}
	}
	for class, msgs := range s.Samples {
		c.Samples[class] = slices.Clone(msgs)
	}
	return c
}
