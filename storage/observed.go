package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"
)

// Limits of observed (system under test) samples: a test reads at most 32
// sources, each up to 20 series, once a second or so.
const (
	// MaxObservedSeries is the most series one observed second holds.
	MaxObservedSeries = 1024
	// MaxSeriesNameLen is the longest series name, in bytes.
	MaxSeriesNameLen = 512
	// MaxGapReasonLen is the longest reason a gap gives, in bytes.
	MaxGapReasonLen = 200
)

// ObservedSecond is what a test's observer (its scheduler) read from the
// system under test for one second: a value per series, and for the
// series it could not read, why.
type ObservedSecond struct {
	T      int64              `cbor:"1,keyasint"`
	Values map[string]float64 `cbor:"2,keyasint,omitempty"`
	Gaps   map[string]string  `cbor:"3,keyasint,omitempty"`
}

// Validate checks a second from the network before it is kept: finite
// values, bounded names and reasons.
func (o *ObservedSecond) Validate() error {
	if o.T < 0 {
		return fmt.Errorf("observed second %d: negative", o.T)
	}
	if n := len(o.Values) + len(o.Gaps); n > MaxObservedSeries {
		return fmt.Errorf("observed second %d: %d series, over the limit of %d", o.T, n, MaxObservedSeries)
	}
	for name, v := range o.Values {
		if err := checkSeriesName(name); err != nil {
			return fmt.Errorf("observed second %d: %w", o.T, err)
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("observed second %d: series %q: value %v is not a finite number", o.T, name, v)
		}
	}
	for name, why := range o.Gaps {
		if err := checkSeriesName(name); err != nil {
			return fmt.Errorf("observed second %d: %w", o.T, err)
		}
		if len(why) > MaxGapReasonLen || !utf8.ValidString(why) {
			return fmt.Errorf("observed second %d: series %q: gap reason over %d bytes or not UTF-8", o.T, name, MaxGapReasonLen)
		}
	}
	return nil
}

func checkSeriesName(name string) error {
	if name == "" || len(name) > MaxSeriesNameLen || !utf8.ValidString(name) {
		return fmt.Errorf("series name %q: want 1..%d bytes of UTF-8", clip(name, 32), MaxSeriesNameLen)
	}
	return nil
}

// Observed is a test's observed series over time, merged from whoever
// observed it (a scheduler, then the node that took over).
type Observed struct {
	Values map[string]map[int64]float64 // series -> second -> value
	Gaps   map[string]map[int64]string  // series -> second -> why it could not be read
}

// NewObserved returns an empty set.
func NewObserved() *Observed {
	return &Observed{Values: map[string]map[int64]float64{}, Gaps: map[string]map[int64]string{}}
}

// Add merges one second in. A value already there is kept (two observers
// read the same second: the first merged wins, and merges go in origin
// order, so every node that merges the same data gets the same answer); a
// value replaces a gap, never the other way round.
func (o *Observed) Add(sec *ObservedSecond) {
	for name, v := range sec.Values {
		m := o.Values[name]
		if m == nil {
			m = map[int64]float64{}
			o.Values[name] = m
		}
		if _, ok := m[sec.T]; !ok {
			m[sec.T] = v
		}
		if g := o.Gaps[name]; g != nil {
			delete(g, sec.T)
			if len(g) == 0 {
				delete(o.Gaps, name)
			}
		}
	}
	for name, why := range sec.Gaps {
		if _, ok := o.Values[name][sec.T]; ok {
			continue
		}
		g := o.Gaps[name]
		if g == nil {
			g = map[int64]string{}
			o.Gaps[name] = g
		}
		if _, ok := g[sec.T]; !ok {
			g[sec.T] = why
		}
	}
}

// Merge adds every second of p to o, with Add's rule.
func (o *Observed) Merge(p *Observed) {
	if p == nil {
		return
	}
	for _, sec := range p.Seconds() {
		o.Add(sec)
	}
}

// Seconds returns o as seconds, in T order, for the wire.
func (o *Observed) Seconds() []*ObservedSecond {
	by := map[int64]*ObservedSecond{}
	get := func(t int64) *ObservedSecond {
		s := by[t]
		if s == nil {
			s = &ObservedSecond{T: t}
			by[t] = s
		}
		return s
	}
	for name, m := range o.Values {
		for t, v := range m {
			s := get(t)
			if s.Values == nil {
				s.Values = map[string]float64{}
			}
			s.Values[name] = v
		}
	}
	for name, m := range o.Gaps {
		for t, why := range m {
			s := get(t)
			if s.Gaps == nil {
				s.Gaps = map[string]string{}
			}
			s.Gaps[name] = why
		}
	}
	out := make([]*ObservedSecond, 0, len(by))
	for _, s := range by {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *ObservedSecond) int { return int(a.T - b.T) })
	return out
}

// Names returns the series names, values and gaps alike, sorted.
func (o *Observed) Names() []string {
	var out []string
	for k := range o.Values {
		out = append(out, k)
	}
	for k := range o.Gaps {
		if _, ok := o.Values[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// EncodeObserved and DecodeObserved are the wire and disk form of a set
// of observed seconds; the decoder checks every second.
func EncodeObserved(secs []*ObservedSecond) ([]byte, error) {
	return encMode.Marshal(secs)
}

// MaxObservedSeconds bounds one encoded batch.
const MaxObservedSeconds = 86400

func DecodeObserved(b []byte) ([]*ObservedSecond, error) {
	var secs []*ObservedSecond
	if err := decMode.Unmarshal(b, &secs); err != nil {
		return nil, fmt.Errorf("observed: %w", err)
	}
	if len(secs) > MaxObservedSeconds {
		return nil, fmt.Errorf("observed: %d seconds, over the limit of %d", len(secs), MaxObservedSeconds)
	}
	for _, s := range secs {
		if s == nil {
			return nil, errors.New("observed: a null second")
		}
		if err := s.Validate(); err != nil {
			return nil, err
		}
	}
	return secs, nil
}

func observedKey(testID, origin string, t int64) []byte {
	return binary.BigEndian.AppendUint64(originPrefix(kindObserved, testID, origin), uint64(t))
}

// PutObserved keeps observed seconds of a test, read by origin (a node id:
// the observer). A second already kept for the same origin and T is
// replaced.
func (s *Store) PutObserved(testID, origin string, secs []*ObservedSecond) error {
	release, err := s.acquire()
	if err != nil {
		return err
	}
	defer release()
	if err := checkIDs(testID, origin); err != nil {
		return fmt.Errorf("store: put observed: %w", err)
	}
	if len(secs) == 0 {
		return nil
	}
	n := 0
	vals := make([][]byte, len(secs))
	for i, sec := range secs {
		if err := sec.Validate(); err != nil {
			return fmt.Errorf("store: put observed of test %q: %w", testID, err)
		}
		if vals[i], err = encMode.Marshal(sec); err != nil {
			return err
		}
		n += len(vals[i])
	}
	if err := s.checkRoom(s.writeFloor, n); err != nil {
		return fmt.Errorf("store: put observed of test %q origin %q: %w", testID, origin, err)
	}
	wb := s.db.NewWriteBatch()
	defer wb.Cancel()
	for i, sec := range secs {
		if err := wb.SetEntry(badger.NewEntry(observedKey(testID, origin, sec.T), vals[i]).WithTTL(s.retention)); err != nil {
			return fmt.Errorf("store: put observed of test %q: %w", testID, err)
		}
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("store: put observed of test %q: %w", testID, err)
	}
	return nil
}

// Observed returns the test's observed seconds in [from, to] (to < 0: no
// upper bound) from every origin, merged in origin order (Observed.Add).
func (s *Store) Observed(testID string, from, to int64) (*Observed, error) {
	release, err := s.acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	if err := checkID("test", testID); err != nil {
		return nil, fmt.Errorf("store: observed: %w", err)
	}
	out := NewObserved()
	prefix := testResultsPrefix(kindObserved, testID)
	err = s.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		defer it.Close()
		for it.Seek(prefix); it.ValidForPrefix(prefix); it.Next() {
			_, _, _, t, err := parseResultKey(it.Item().Key())
			if err != nil {
				if len(it.Item().Key()) == len(prefix) {
					continue // a drop marker (disk.go)
				}
				return err
			}
			if t < from || (to >= 0 && t > to) {
				continue
			}
			var sec ObservedSecond
			if err := it.Item().Value(func(v []byte) error { return decMode.Unmarshal(v, &sec) }); err != nil {
				return fmt.Errorf("observed second %d: %w", t, err)
			}
			if err := sec.Validate(); err != nil {
				return err
			}
			sec.T = t
			out.Add(&sec)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("store: observed of test %q: %w", testID, err)
	}
	return out, nil
}

// String is a short description, for logs.
func (o *ObservedSecond) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "t=%d", o.T)
	for _, k := range slices.Sorted(maps.Keys(o.Values)) {
		fmt.Fprintf(&b, " %s=%g", k, o.Values[k])
	}
	return b.String()
}
