package storage

import (
	"bytes"
	"cmp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Bounds of a second's exemplars.
const (
	// ExemplarsPerStep is how many exemplars a Second keeps per step and
	// outcome: the ExemplarsPerStep slowest successful requests and the
	// ExemplarsPerStep slowest failed ones, so at most 4 per step.
	ExemplarsPerStep = 2
	// MaxExemplars is the most exemplars a Second keeps, all steps
	// together; past it, the steps that sort last (by name) lose theirs.
	MaxExemplars = 64
	// MaxExemplarStatus is the largest HTTP status an exemplar may have.
	MaxExemplarStatus = 999
)

// Exemplar is one traced request kept as an example of a second's results:
// its trace id finds the request in a tracing backend (Jaeger, Tempo).
// Seconds keep the slowest successful and the slowest failed requests of
// each step (see Second.Exemplars).
type Exemplar struct {
	Step    string        // the request's step
	TraceID [16]byte      // W3C trace id; never all zero
	Latency time.Duration // from the intended send time, as Bucket.Latency; >= 0
	Status  int           // HTTP status, 0..999; 0 when no response came
	Class   string        // error class; "" for a success
	Sampled bool          // the traceparent's sampled flag was set
}

// Failed reports whether the request failed (it has an error class).
func (e Exemplar) Failed() bool { return e.Class != "" }

// valid reports whether e may be kept: what the decoder accepts.
func (e Exemplar) valid() bool {
	return e.TraceID != [16]byte{} && e.Latency >= 0 && e.Status >= 0 && e.Status <= MaxExemplarStatus &&
		validText(e.Step) && validText(e.Class)
}

func validText(s string) bool { return len(s) <= MaxDimLen && utf8.ValidString(s) }

// compareGroup orders exemplars by step, then failures before successes:
// the groups that each keep ExemplarsPerStep exemplars.
func compareGroup(a, b Exemplar) int {
	if c := strings.Compare(a.Step, b.Step); c != 0 {
		return c
	}
	switch {
	case a.Failed() == b.Failed():
		return 0
	case a.Failed():
		return -1
	}
	return 1
}

// compareExemplars is the canonical order of exemplars, a total order:
// by group (step, failures first), then slowest first, then by trace id
// bytes, then by the remaining fields so that only equal exemplars tie.
// Selection keeps the first of each group in this order, which makes it a
// function of the set of exemplars offered, whatever their order: merges
// are commutative and associative.
func compareExemplars(a, b Exemplar) int {
	if c := compareGroup(a, b); c != 0 {
		return c
	}
	if c := cmp.Compare(b.Latency, a.Latency); c != 0 {
		return c
	}
	if c := bytes.Compare(a.TraceID[:], b.TraceID[:]); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Status, b.Status); c != 0 {
		return c
	}
	if c := strings.Compare(a.Class, b.Class); c != 0 {
		return c
	}
	switch {
	case a.Sampled == b.Sampled:
		return 0
	case b.Sampled:
		return -1
	}
	return 1
}

// selectExemplars returns what a Second keeps of xs, in place: the valid
// ones, sorted in canonical order without duplicates, at most
// ExemplarsPerStep per group and MaxExemplars in all (the first ones).
func selectExemplars(xs []Exemplar) []Exemplar {
	xs = slices.DeleteFunc(xs, func(e Exemplar) bool { return !e.valid() })
	slices.SortFunc(xs, compareExemplars)
	out := xs[:0]
	inGroup := 0
	for i, e := range xs {
		if i > 0 && e == xs[i-1] {
			continue
		}
		if len(out) == 0 || compareGroup(e, out[len(out)-1]) != 0 {
			inGroup = 0
		}
		if inGroup == ExemplarsPerStep {
			continue
		}
		inGroup++
		out = append(out, e)
		if len(out) == MaxExemplars {
			break
		}
	}
	clear(xs[len(out):]) // no strings kept alive past the end
	return out[:len(out):len(out)]
}

// mergeExemplars returns the selection of a and b together, in a new slice
// (or nil when there is none); neither is changed.
func mergeExemplars(a, b []Exemplar) []Exemplar {
	if len(a)+len(b) == 0 {
		return nil
	}
	xs := make([]Exemplar, 0, len(a)+len(b))
	return selectExemplars(append(append(xs, a...), b...))
}

// AddExemplar offers e as an exemplar of s: it is kept if it is among the
// ExemplarsPerStep slowest of its step and outcome (successful or failed),
// and within MaxExemplars. An exemplar with a zero trace id, a negative
// latency, a status over 999 or a step or class that a Dim could not hold
// is ignored. The usual case, a request faster than those kept, costs a
// binary search over the steps and no allocation.
func (s *Second) AddExemplar(e Exemplar) {
	xs := s.Exemplars
	failed := e.Failed()
	// The group of e: [lo, hi).
	lo, hi := 0, len(xs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		x := &xs[m]
		c := 0
		if x.Step != e.Step { // steps share their strings: == is quick
			c = strings.Compare(x.Step, e.Step)
		}
		if c < 0 || (c == 0 && x.Failed() && !failed) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	hi = lo
	for hi < len(xs) && xs[hi].Step == e.Step && xs[hi].Failed() == failed {
		hi++
	}
	if hi-lo >= ExemplarsPerStep && e.Latency < xs[hi-1].Latency {
		return // faster than those kept: the usual case
	}
	if !e.valid() {
		return
	}
	at, found := slices.BinarySearchFunc(xs[lo:hi], e, compareExemplars)
	if found || at >= ExemplarsPerStep || lo+at >= MaxExemplars {
		return // a duplicate, or not among the slowest kept
	}
	at += lo
	if hi-lo >= ExemplarsPerStep {
		// The group is full: its last one goes.
		xs = slices.Delete(xs, hi-1, hi)
	}
	xs = slices.Insert(xs, at, e)
	if len(xs) > MaxExemplars {
		clear(xs[MaxExemplars:])
		xs = xs[:MaxExemplars]
	}
	s.Exemplars = xs
}
