package report

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/loadswarm/loadswarm/scenarios"
	"github.com/loadswarm/loadswarm/storage"
)

func seg(start, dur, from, to float64) scenarios.Segment {
	return scenarios.Segment{Start: time.Duration(start * float64(time.Second)), Dur: time.Duration(dur * float64(time.Second)), From: from, To: to}
}

func TestLoadChanges(t *testing.T) {
	for _, c := range []struct {
		name string
		segs []scenarios.Segment
		want []LoadChange
	}{
		{"constant", []scenarios.Segment{seg(0, 10, 50, 50)}, nil},
		{"ramp from the start", []scenarios.Segment{seg(0, 10, 0, 100)}, []LoadChange{{T: 0, From: 0, To: 100, End: 10}}},
		{"black friday: flat, ramp, flat", []scenarios.Segment{seg(0, 10, 50, 50), seg(10, 10, 50, 500), seg(20, 25, 500, 500)},
			[]LoadChange{{T: 10, From: 50, To: 500, End: 20}}},
		{"a jump then a ramp the same way is one change", []scenarios.Segment{seg(0, 10, 50, 50), seg(10, 5, 100, 200), seg(15, 5, 200, 200)},
			[]LoadChange{{T: 10, From: 50, To: 200, End: 15}}},
		{"spike: rise, hold, fall", []scenarios.Segment{seg(0, 20, 100, 100), seg(20, 5, 100, 1000), seg(25, 10, 1000, 1000), seg(35, 5, 1000, 100), seg(40, 20, 100, 100)},
			[]LoadChange{{T: 20, From: 100, To: 1000, End: 25}, {T: 35, From: 1000, To: 100, End: 40}}},
		{"burst: jumps", []scenarios.Segment{seg(0, 8, 100, 100), seg(8, 2, 400, 400), seg(10, 8, 100, 100)},
			[]LoadChange{{T: 8, From: 100, To: 400, End: 8}, {T: 10, From: 400, To: 100, End: 10}}},
	} {
		got := LoadChanges(scenarios.NewProfile(c.segs))
		if len(got) != len(c.want) {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s: change %d %+v, want %+v", c.name, i, got[i], c.want[i])
			}
		}
	}
	main, ok := MainChange([]LoadChange{{T: 5, From: 10, To: 100}, {T: 20, From: 100, To: 10}, {T: 30, From: 10, To: 200}, {T: 40, From: 10, To: 200}})
	if !ok || main.T != 30 {
		t.Errorf("main change %+v %v, want the largest rise, the earliest of equals (t=30)", main, ok)
	}
	if _, ok := MainChange([]LoadChange{{T: 5, From: 100, To: 10}}); ok {
		t.Error("a profile that only falls has a main change")
	}
}

func TestRecovery(t *testing.T) {
	pts := func(p95 ...float64) []Point {
		var out []Point
		for i, v := range p95 {
			out = append(out, Point{T: int64(i), P95: v})
		}
		return out
	}
	for _, c := range []struct {
		name string
		p95  []float64
		want *float64
	}{
		{"never over", []float64{100, 120, 200, 150, 100}, ptr(0)},
		{"over at 3..5, back at 6", []float64{100, 100, 100, 900, 800, 700, 100, 100}, ptr(4)}, // change at 2: back under at 6
		{"over before the change only", []float64{900, 100, 100, 100}, ptr(0)},
		{"over to the end", []float64{100, 100, 100, 900, 900}, nil},
	} {
		got := recovery(pts(c.p95...), "p95", 500, 2, 100, 1)
		switch {
		case (got == nil) != (c.want == nil):
			t.Errorf("%s: %v, want %v", c.name, fmtPtr(got), fmtPtr(c.want))
		case got != nil && *got != *c.want:
			t.Errorf("%s: %v, want %v", c.name, *got, *c.want)
		}
	}
}

func ptr(v float64) *float64 { return &v }

func fmtPtr(p *float64) string {
	if p == nil {
		return "nil"
	}
	return strings.TrimSpace(FormatRate(*p))
}

// TestObservationInReport: observed series reach the report, scale lag is
// timed from the main rise, thresholds on sut, scale_lag and recovery pass
// or fail on them, and the text tells the story.
func TestObservationInReport(t *testing.T) {
	spec := `name: obs
target: http://127.0.0.1:1
load:
  stages:
    - {duration: 10s, rate: 50}
    - {duration: 10s, rate: 50, to: 500}
    - {duration: 20s, rate: 500}
requests: [{name: a}]
observe:
  sources: [{name: replicas, scrape: "http://127.0.0.1:1/metrics", select: shop_replicas}]
thresholds:
  - 'p95 < 500'
  - 'scale_lag["replicas"] < 15'
  - 'sut["replicas"].max >= 6'
  - 'recovery["p95"] < 20'
  - 'scale_lag["nope"] < 15'
`
	sc, err := scenarios.Parse([]byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	obs := storage.NewObserved()
	for s := int64(0); s < 42; s++ {
		v := 2.0
		if s >= 22 { // moved 12 s after the rise began at 10 s
			v = 6
		}
		obs.Add(&storage.ObservedSecond{T: s, Values: map[string]float64{"replicas": v}})
	}
	obs.Add(&storage.ObservedSecond{T: 42, Gaps: map[string]string{"replicas": "connection refused"}})
	r, err := Build(Input{Scenario: sc, To: -1, Resolution: 1, Observed: obs})
	if err != nil {
		t.Fatal(err)
	}
	o := r.Observe
	if len(o.Series) != 1 || o.Series[0].First != 2 || o.Series[0].Max != 6 || o.Series[0].Gaps != 1 {
		t.Fatalf("series %+v", o.Series)
	}
	if l := o.ScaleLag["replicas"]; l == nil || math.Abs(*l-12) > 1e-9 {
		t.Errorf("scale lag %v, want 12", fmtPtr(l))
	}
	want := map[string]bool{"p95 < 500": true, `scale_lag["replicas"] < 15`: true, `sut["replicas"].max >= 6`: true,
		`recovery["p95"] < 20`: true, `scale_lag["nope"] < 15`: false}
	for _, th := range r.Thresholds {
		if th.Pass != want[th.Expr] {
			t.Errorf("threshold %s: pass %v (%s), want %v", th.Expr, th.Pass, th.Error, want[th.Expr])
		}
	}
	var b bytes.Buffer
	if err := WriteText(&b, r, sc); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"system under test", "replicas", "12s", "connection refused", "replicas 2 → 6, scale lag 12 s"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("text lacks %q:\n%s", s, b.String())
		}
	}

	// The series never moves: the lag is +Inf to thresholds, and fails.
	flat := storage.NewObserved()
	for s := int64(0); s < 40; s++ {
		flat.Add(&storage.ObservedSecond{T: s, Values: map[string]float64{"replicas": 2}})
	}
	r, err = Build(Input{Scenario: sc, To: -1, Resolution: 1, Observed: flat})
	if err != nil {
		t.Fatal(err)
	}
	if r.Observe.ScaleLag["replicas"] != nil {
		t.Errorf("flat series has a lag %v", *r.Observe.ScaleLag["replicas"])
	}
	for _, th := range r.Thresholds {
		if th.Expr == `scale_lag["replicas"] < 15` && th.Pass {
			t.Error("a series that never moved passes its scale lag threshold")
		}
	}
	if r.Status != StatusFailed {
		t.Errorf("status %s", r.Status)
	}
}
