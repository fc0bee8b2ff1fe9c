package storage

import (
	"math"
	"strings"
	"testing"
)

// TestObservedStore: observed seconds of two observers round-trip through
// the store, merge in origin order (a value over a gap, the first origin's
// value for a second both read), filter by range, and go with the test.
func TestObservedStore(t *testing.T) {
	s := openTestStore(t, t.TempDir(), nil)
	a := []*ObservedSecond{
		{T: 0, Values: map[string]float64{"replicas": 2}},
		{T: 1, Values: map[string]float64{"replicas": 2}, Gaps: map[string]string{"queue": "connection refused"}},
		{T: 2, Gaps: map[string]string{"replicas": "timeout"}},
	}
	b := []*ObservedSecond{
		{T: 1, Values: map[string]float64{"replicas": 3, "queue": 7}},
		{T: 2, Values: map[string]float64{"replicas": 4}},
		{T: 3, Values: map[string]float64{"replicas": 4}},
	}
	if err := s.PutObserved("t1", "node-a", a); err != nil {
		t.Fatal(err)
	}
	if err := s.PutObserved("t1", "node-b", b); err != nil {
		t.Fatal(err)
	}
	o, err := s.Observed("t1", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int64]float64{0: 2, 1: 2, 2: 4, 3: 4}
	for ts, v := range want {
		if got, ok := o.Values["replicas"][ts]; !ok || got != v {
			t.Errorf("replicas at %d: %v (%v), want %v", ts, got, ok, v)
		}
	}
	if o.Values["queue"][1] != 7 || len(o.Gaps["queue"]) != 0 {
		t.Errorf("queue: values %v gaps %v; want node-b's 7 over node-a's gap", o.Values["queue"], o.Gaps["queue"])
	}
	if len(o.Gaps["replicas"]) != 0 {
		t.Errorf("replicas gaps %v: node-b's value at 2 should replace node-a's gap", o.Gaps["replicas"])
	}
	if got := o.Names(); strings.Join(got, ",") != "queue,replicas" {
		t.Errorf("names %v", got)
	}
	part, err := s.Observed("t1", 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(part.Values["replicas"]) != 2 {
		t.Errorf("range 1..2: %v", part.Values["replicas"])
	}
	if err := s.DeleteTest("t1"); err != nil {
		t.Fatal(err)
	}
	if o, err := s.Observed("t1", 0, -1); err != nil || len(o.Values)+len(o.Gaps) != 0 {
		t.Errorf("after DeleteTest: %v, %v", o, err)
	}
}

// TestObservedRefused: every bad value a peer could send is refused with
// what is wrong, and nothing is kept.
func TestObservedRefused(t *testing.T) {
	s := openTestStore(t, t.TempDir(), nil)
	long := strings.Repeat("x", MaxSeriesNameLen+1)
	many := map[string]float64{}
	for i := range MaxObservedSeries + 1 {
		many[strings.Repeat("s", 1+i%500)+string(rune('a'+i/500))] = 1
	}
	for _, c := range []struct {
		name string
		sec  *ObservedSecond
		want string
	}{
		{"negative second", &ObservedSecond{T: -1}, "negative"},
		{"NaN", &ObservedSecond{Values: map[string]float64{"q": math.NaN()}}, "not a finite number"},
		{"Inf", &ObservedSecond{Values: map[string]float64{"q": math.Inf(1)}}, "not a finite number"},
		{"empty name", &ObservedSecond{Values: map[string]float64{"": 1}}, "series name"},
		{"long name", &ObservedSecond{Values: map[string]float64{long: 1}}, "series name"},
		{"bad UTF-8 name", &ObservedSecond{Gaps: map[string]string{"\xff": "x"}}, "series name"},
		{"long reason", &ObservedSecond{Gaps: map[string]string{"q": strings.Repeat("r", MaxGapReasonLen+1)}}, "gap reason"},
		{"too many series", &ObservedSecond{Values: many}, "over the limit"},
	} {
		err := s.PutObserved("t1", "n", []*ObservedSecond{c.sec})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
		b, _ := EncodeObserved([]*ObservedSecond{c.sec})
		if _, err := DecodeObserved(b); err == nil {
			t.Errorf("%s: decoded", c.name)
		}
	}
	if o, _ := s.Observed("t1", 0, -1); len(o.Values)+len(o.Gaps) != 0 {
		t.Errorf("kept %v", o)
	}
	if err := s.PutObserved("", "n", nil); err == nil {
		t.Error("empty test id accepted")
	}
}

func FuzzDecodeObserved(f *testing.F) {
	b, _ := EncodeObserved([]*ObservedSecond{{T: 3, Values: map[string]float64{"a": 1.5}, Gaps: map[string]string{"b": "down"}}})
	f.Add(b)
	f.Add([]byte{0x80})
	f.Add([]byte{0xf6})
	f.Fuzz(func(t *testing.T, data []byte) {
		secs, err := DecodeObserved(data)
		if err != nil {
			return
		}
		for _, s := range secs {
			if err := s.Validate(); err != nil {
				t.Fatalf("decoded an invalid second: %v", err)
			}
		}
		o := NewObserved()
		for _, s := range secs {
			o.Add(s)
		}
		again, err := EncodeObserved(o.Seconds())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeObserved(again); err != nil {
			t.Fatalf("re-encoded merge does not decode: %v", err)
		}
	})
}
