package storage

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
)

// traceID returns a trace id whose bytes are n (big-endian) after a 0x01.
func traceID(n uint64) (id [16]byte) {
	id[0] = 1
	for i := 15; i > 0 && n > 0; i-- {
		id[i] = byte(n)
		n >>= 8
	}
	return id
}

// randExemplar draws exemplars with few distinct steps, latencies and
// trace ids, so that ties and duplicates happen.
func randExemplar(r *rand.Rand, steps int) Exemplar {
	e := Exemplar{
		Step:    fmt.Sprintf("s%02d", r.IntN(steps)),
		TraceID: traceID(uint64(r.IntN(20))),
		Latency: time.Duration(r.IntN(8)) * time.Millisecond,
		Status:  200,
		Sampled: r.IntN(2) == 0,
	}
	if r.IntN(3) == 0 {
		e.Class, e.Status = "http_5xx", 500
	}
	return e
}

// refSelect is the brute-force reference of what a second keeps of xs:
// per step and outcome the two slowest (ties by trace id bytes, then the
// other fields), then the first 64 by step name, failures first.
func refSelect(xs []Exemplar) []Exemplar {
	type key struct {
		step   string
		failed bool
	}
	groups := map[key][]Exemplar{}
	for _, e := range xs {
		k := key{e.Step, e.Class != ""}
		if !slices.Contains(groups[k], e) {
			groups[k] = append(groups[k], e)
		}
	}
	less := func(a, b Exemplar) bool { // slowest first, then a fixed tie order
		if a.Latency != b.Latency {
			return a.Latency > b.Latency
		}
		if c := bytes.Compare(a.TraceID[:], b.TraceID[:]); c != 0 {
			return c < 0
		}
		return fmt.Sprintf("%d %s %v", a.Status, a.Class, a.Sampled) < fmt.Sprintf("%d %s %v", b.Status, b.Class, b.Sampled)
	}
	keys := make([]key, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].step != keys[j].step {
			return keys[i].step < keys[j].step
		}
		return keys[i].failed && !keys[j].failed
	})
	var out []Exemplar
	for _, k := range keys {
		g := groups[k]
		sort.Slice(g, func(i, j int) bool { return less(g[i], g[j]) })
		out = append(out, g[:min(len(g), 2)]...)
	}
	return out[:min(len(out), 64)]
}

func secondWith(xs ...Exemplar) *Second {
	s := NewSecond(3)
	for _, e := range xs {
		s.AddExemplar(e)
	}
	return s
}

func TestAddExemplarBoundAndChoice(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		steps := 1 + r.IntN(40) // up to 160 candidates for 64 places
		xs := make([]Exemplar, r.IntN(300))
		for i := range xs {
			xs[i] = randExemplar(r, steps)
		}
		s := secondWith(xs...)
		want := refSelect(xs)
		if !slices.Equal(s.Exemplars, want) {
			t.Fatalf("round %d: kept\n%v\nwant\n%v", round, s.Exemplars, want)
		}
		perStep := map[string]int{}
		for _, e := range s.Exemplars {
			perStep[e.Step]++
		}
		for step, n := range perStep {
			if n > 2*ExemplarsPerStep {
				t.Fatalf("step %s keeps %d exemplars", step, n)
			}
		}
		if len(s.Exemplars) > MaxExemplars {
			t.Fatalf("%d exemplars", len(s.Exemplars))
		}
		// Any order of the same requests keeps the same.
		r.Shuffle(len(xs), func(i, j int) { xs[i], xs[j] = xs[j], xs[i] })
		if got := secondWith(xs...).Exemplars; !slices.Equal(got, s.Exemplars) {
			t.Fatalf("round %d: order changed the choice:\n%v\n%v", round, got, s.Exemplars)
		}
	}
}

func TestExemplarSelection(t *testing.T) {
	ok := func(step string, ms int, id uint64) Exemplar {
		return Exemplar{Step: step, TraceID: traceID(id), Latency: time.Duration(ms) * time.Millisecond, Status: 200}
	}
	bad := func(step string, ms int, id uint64) Exemplar {
		e := ok(step, ms, id)
		e.Status, e.Class = 0, "timeout"
		return e
	}
	t.Run("two slowest of each outcome", func(t *testing.T) {
		s := secondWith(ok("a", 5, 1), ok("a", 9, 2), ok("a", 7, 3), bad("a", 1, 4), bad("a", 3, 5), bad("a", 2, 6), ok("a", 1, 7))
		want := []Exemplar{bad("a", 3, 5), bad("a", 2, 6), ok("a", 9, 2), ok("a", 7, 3)}
		if !slices.Equal(s.Exemplars, want) {
			t.Fatalf("kept %v, want %v", s.Exemplars, want)
		}
	})
	t.Run("ties by trace id", func(t *testing.T) {
		s := secondWith(ok("a", 5, 9), ok("a", 5, 3), ok("a", 5, 7))
		if want := []Exemplar{ok("a", 5, 3), ok("a", 5, 7)}; !slices.Equal(s.Exemplars, want) {
			t.Fatalf("kept %v, want %v", s.Exemplars, want)
		}
	})
	t.Run("duplicates kept once", func(t *testing.T) {
		s := secondWith(ok("a", 5, 1), ok("a", 5, 1), ok("a", 4, 2))
		if want := []Exemplar{ok("a", 5, 1), ok("a", 4, 2)}; !slices.Equal(s.Exemplars, want) {
			t.Fatalf("kept %v, want %v", s.Exemplars, want)
		}
	})
	t.Run("invalid ignored", func(t *testing.T) {
		neg := ok("a", 1, 1)
		neg.Latency = -1
		status := ok("a", 1, 2)
		status.Status = 1000
		long := ok(strings.Repeat("x", MaxDimLen+1), 1, 3)
		utf := ok("a\xff", 1, 4)
		s := NewSecond(1)
		for _, e := range []Exemplar{{Step: "a", Latency: time.Second}, neg, status, long, utf} {
			s.AddExemplar(e)
		}
		if len(s.Exemplars) != 0 {
			t.Fatalf("kept %v", s.Exemplars)
		}
	})
	t.Run("cap drops the steps sorting last", func(t *testing.T) {
		var xs []Exemplar
		for i := range 20 {
			step := fmt.Sprintf("s%02d", i)
			for j := range 3 {
				xs = append(xs, ok(step, 10+j, uint64(100*i+j)), bad(step, 10+j, uint64(100*i+50+j)))
			}
		}
		s := secondWith(xs...)
		if len(s.Exemplars) != MaxExemplars {
			t.Fatalf("%d exemplars, want %d", len(s.Exemplars), MaxExemplars)
		}
		// 16 steps of 4: s00..s15 whole, s16..s19 none.
		for _, e := range s.Exemplars {
			if e.Step > "s15" {
				t.Fatalf("kept %v of a step past the cap", e)
			}
		}
	})
}

// mergeAll merges seconds into a fresh one, in order.
func mergeAll(t *testing.T, secs ...*Second) *Second {
	t.Helper()
	out := NewSecond(3)
	for _, s := range secs {
		if err := out.Merge(s); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestExemplarMergeProperties: merging seconds keeps the brute-force top 2
// of the union, whatever the order and grouping, through Second.Merge,
// Series.Merge and Series.Add alike.
func TestExemplarMergeProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for round := range 300 {
		steps := 1 + r.IntN(25)
		var all []Exemplar
		parts := make([]*Second, 3)
		for i := range parts {
			xs := make([]Exemplar, r.IntN(60))
			for j := range xs {
				xs[j] = randExemplar(r, steps)
			}
			all = append(all, xs...)
			parts[i] = secondWith(xs...)
		}
		a, b, c := parts[0], parts[1], parts[2]
		want := refSelect(all)
		check := func(what string, got *Second) {
			t.Helper()
			if !slices.Equal(got.Exemplars, want) {
				t.Fatalf("round %d: %s: kept\n%v\nwant\n%v", round, what, got.Exemplars, want)
			}
		}
		check("(a+b)+c", mergeAll(t, mergeAll(t, a, b), c))
		check("a+(b+c)", mergeAll(t, a, mergeAll(t, b, c)))
		check("c+b+a", mergeAll(t, c, b, a))
		check("b+a+c", mergeAll(t, b, a, c))

		sa, sb := NewSeries(), NewSeries()
		for _, x := range []struct {
			s   *Series
			sec *Second
		}{{sa, a}, {sa, b}, {sb, c}} {
			if err := x.s.Add(x.sec); err != nil {
				t.Fatal(err)
			}
		}
		if err := sa.Merge(sb); err != nil {
			t.Fatal(err)
		}
		check("series", sa.Seconds[3])
		// The arguments are left alone.
		if !slices.Equal(mergeAll(t, a).Exemplars, a.Exemplars) {
			t.Fatal("a merge changed its argument")
		}
	}
}

func TestExemplarCopies(t *testing.T) {
	s := secondWith(Exemplar{Step: "a", TraceID: traceID(1), Latency: time.Second})
	for name, c := range map[string]*Second{"Clone": s.Clone(), "compactClone": s.compactClone()} {
		if !slices.Equal(c.Exemplars, s.Exemplars) {
			t.Fatalf("%s: %v", name, c.Exemplars)
		}
		c.Exemplars[0].Step = "changed"
		if s.Exemplars[0].Step != "a" {
			t.Fatalf("%s shares exemplars", name)
		}
	}
	ser := NewSeries()
	if err := ser.Add(s); err != nil {
		t.Fatal(err)
	}
	if f := ser.Filter(0, -1); len(f.Seconds[3].Exemplars) != 1 {
		t.Fatalf("Filter lost the exemplars")
	}
}

// exemplarSecond is a second with buckets and exemplars of two steps.
func exemplarSecond() *Second {
	s := NewSecond(12)
	d1 := Dim{Step: "login", Status: "2xx"}
	d2 := Dim{Step: "login", Status: "5xx", Error: "http_5xx"}
	record(s.Bucket(d1), d1, 30*time.Millisecond)
	record(s.Bucket(d2), d2, 2*time.Second)
	s.AddExemplar(Exemplar{Step: "login", TraceID: traceID(7), Latency: 30 * time.Millisecond, Status: 200, Sampled: true})
	s.AddExemplar(Exemplar{Step: "login", TraceID: traceID(8), Latency: 2 * time.Second, Status: 500, Class: "http_5xx"})
	s.AddExemplar(Exemplar{Step: "buy", TraceID: traceID(9), Latency: 0, Class: "timeout"})
	return s
}

func TestExemplarRoundTrip(t *testing.T) {
	s := exemplarSecond()
	enc := mustEncodeSecond(t, s)
	got, err := DecodeSecond(enc)
	if err != nil {
		t.Fatal(err)
	}
	if !secondsEqual(got, s) || len(got.Exemplars) != 3 {
		t.Fatalf("round trip: %v, want %v", got.Exemplars, s.Exemplars)
	}
	ser := NewSeries()
	if err := ser.Add(s); err != nil {
		t.Fatal(err)
	}
	gs, err := DecodeSeries(mustEncodeSeries(t, ser))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(gs.Seconds[12].Exemplars, s.Exemplars) {
		t.Fatalf("series round trip: %v", gs.Seconds[12].Exemplars)
	}
	// A hand-made list out of order, with too many of a step and an
	// invalid one, encodes as the second would keep it.
	h := &Second{T: 1, Exemplars: []Exemplar{
		{Step: "a", TraceID: traceID(1), Latency: 1},
		{Step: "a", TraceID: traceID(2), Latency: 3},
		{Step: "a", TraceID: traceID(3), Latency: 2},
		{Step: "a", Latency: 9}, // zero trace id
	}}
	hd, err := DecodeSecond(mustEncodeSecond(t, h))
	if err != nil {
		t.Fatal(err)
	}
	if want := []Exemplar{h.Exemplars[1], h.Exemplars[2]}; !slices.Equal(hd.Exemplars, want) {
		t.Fatalf("hand-made: %v, want %v", hd.Exemplars, want)
	}
}

// Encodings written before exemplars existed (by the codec as it was,
// oldSecondFixture's second and a series of it with one sample).
const (
	oldSecondHex = "a2010c0282a901656c6f67696e0263327878040205020702091902580a18f00ba40101021a03938700030305841917540119022b010ca40101021a03938700030305841913540119022b01ab01656c6f67696e02633578780368687474705f35787804010501070108010919012c0a18780ba40101021a0393870003030582192fa2010ca40101021a0393870003030582192ba201"
	oldSeriesHex = "a20181a2010c0282a901656c6f67696e0263327878040205020702091902580a18f00ba40101021a03938700030305841917540119022b010ca40101021a03938700030305841913540119022b01ab01656c6f67696e02633578780368687474705f35787804010501070108010919012c0a18780ba40101021a0393870003030582192fa2010ca40101021a0393870003030582192ba20102a168687474705f35787881783273746570206c6f67696e3a20504f5354202f6c6f67696e3a2035303020496e7465726e616c20536572766572204572726f72"
)

func oldSecondFixture() *Second {
	s := NewSecond(12)
	d1 := Dim{Step: "login", Status: "2xx"}
	d2 := Dim{Step: "login", Status: "5xx", Error: "http_5xx"}
	record(s.Bucket(d1), d1, 30*time.Millisecond)
	record(s.Bucket(d1), d1, 45*time.Millisecond)
	record(s.Bucket(d2), d2, 2*time.Second)
	return s
}

func TestDecodeBeforeExemplars(t *testing.T) {
	b, _ := hex.DecodeString(oldSecondHex)
	s, err := DecodeSecond(b)
	if err != nil {
		t.Fatal(err)
	}
	if !secondsEqual(s, oldSecondFixture()) || s.Exemplars != nil {
		t.Fatalf("old second decodes differently: %+v", s)
	}
	// A second without exemplars encodes as it did.
	if !bytes.Equal(mustEncodeSecond(t, s), b) {
		t.Errorf("a second without exemplars no longer encodes as before")
	}
	b, _ = hex.DecodeString(oldSeriesHex)
	ser, err := DecodeSeries(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(ser.Seconds) != 1 || !secondsEqual(ser.Seconds[12], oldSecondFixture()) || len(ser.Samples["http_5xx"]) != 1 {
		t.Fatalf("old series decodes differently: %+v", ser)
	}
	if !bytes.Equal(mustEncodeSeries(t, ser), b) {
		t.Errorf("a series without exemplars no longer encodes as before")
	}
}

// TestDecodeRejectsExemplars: each bad exemplar is refused with a reason.
func TestDecodeRejectsExemplars(t *testing.T) {
	// The second as a CBOR map: {1: 12, 3: [exemplar...]} built by hand.
	enc := func(items ...[]byte) []byte {
		b := []byte{0xa2, 0x01, 0x0c, 0x03}
		b = appendHead(b, 4, uint64(len(items)))
		for _, it := range items {
			b = append(b, it...)
		}
		return b
	}
	// An exemplar: {1: step, 2: id bytes, 3: latency, 4: status, 5: class}
	ex := func(step string, id []byte, lat int64, status int64, class string) []byte {
		b := appendHead(nil, 5, 5)
		b = appendHead(appendHead(b, 0, 1), 3, uint64(len(step)))
		b = append(b, step...)
		b = appendHead(appendHead(b, 0, 2), 2, uint64(len(id)))
		b = append(b, id...)
		b = appendHead(b, 0, 3)
		if lat < 0 {
			b = appendHead(b, 1, uint64(-lat-1))
		} else {
			b = appendHead(b, 0, uint64(lat))
		}
		b = appendHead(b, 0, 4)
		if status < 0 {
			b = appendHead(b, 1, uint64(-status-1))
		} else {
			b = appendHead(b, 0, uint64(status))
		}
		b = appendHead(appendHead(b, 0, 5), 3, uint64(len(class)))
		return append(b, class...)
	}
	id := traceID(5)
	good := ex("a", id[:], 5, 200, "")
	if s, err := DecodeSecond(enc(good)); err != nil || len(s.Exemplars) != 1 {
		t.Fatalf("the good exemplar does not decode: %v", err)
	}
	many := make([][]byte, MaxExemplars+1)
	for i := range many {
		id := traceID(uint64(i))
		many[i] = ex(fmt.Sprintf("s%d", i), id[:], 1, 200, "")
	}
	for _, tc := range []struct {
		name, want string
		data       []byte
	}{
		{"too many", "65, over the limit of 64", enc(many...)},
		{"long step", "step is 257 bytes", enc(ex(strings.Repeat("x", MaxDimLen+1), id[:], 1, 200, ""))},
		{"long class", "class is 257 bytes", enc(ex("a", id[:], 1, 200, strings.Repeat("x", MaxDimLen+1)))},
		{"invalid step", "UTF-8", enc(ex("a\xff", id[:], 1, 200, ""))},
		{"negative latency", "negative latency", enc(ex("a", id[:], -5, 200, ""))},
		{"status over 999", "status 1000", enc(ex("a", id[:], 1, 1000, ""))},
		{"negative status", "status -1", enc(ex("a", id[:], 1, -1, ""))},
		{"short trace id", "trace id is 8 bytes", enc(ex("a", id[:8], 1, 200, ""))},
		{"zero trace id", "zero trace id", enc(ex("a", make([]byte, 16), 1, 200, ""))},
		{"not an array", "exemplars: not an array", []byte{0xa2, 0x01, 0x0c, 0x03, 0x01}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeSecond(tc.data)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestTracedSamples(t *testing.T) {
	id := func(n uint64) string { x := traceID(n); return hex.EncodeToString(x[:]) }
	msg := TracedSample("step a: GET /x: 500", traceID(1))
	if msg != "step a: GET /x: 500 trace="+id(1) {
		t.Fatalf("sample %q", msg)
	}
	long := TracedSample(strings.Repeat("é", 150)+"\xff", traceID(2))
	if len(long) > MaxSampleLen || !strings.HasSuffix(long, " trace="+id(2)) {
		t.Fatalf("long sample %q (%d bytes)", long, len(long))
	}
	s := NewSeries()
	s.AddSample("x", long)
	if got := s.Samples["x"]; len(got) != 1 || got[0] != long {
		t.Fatalf("AddSample cut the trace off: %q", got)
	}

	// One frequent error does not fill the class with copies; each
	// message keeps its smallest trace.
	s = NewSeries()
	for i := uint64(9); i > 0; i-- {
		s.AddSample("http_5xx", TracedSample("step a: 500", traceID(i)))
	}
	s.AddSample("http_5xx", "step b: 502")
	s.AddSample("http_5xx", TracedSample("step c: 503", traceID(4)))
	want := []string{"step a: 500 trace=" + id(1), "step b: 502", "step c: 503 trace=" + id(4)}
	if got := s.Samples["http_5xx"]; !slices.Equal(got, want) {
		t.Fatalf("samples %q, want %q", got, want)
	}

	// Merges stay commutative and associative with traced messages.
	r := rand.New(rand.NewPCG(5, 6))
	rs := func() *Series {
		s := NewSeries()
		for range r.IntN(20) {
			m := fmt.Sprintf("m%d", r.IntN(8))
			if r.IntN(2) == 0 {
				m = TracedSample(m, traceID(uint64(r.IntN(6))))
			}
			s.AddSample("c", m)
		}
		return s
	}
	merge := func(a, b *Series) *Series {
		c := a.Clone()
		if err := c.Merge(b); err != nil {
			t.Fatal(err)
		}
		return c
	}
	for range 200 {
		a, b, c := rs(), rs(), rs()
		sameSeries(t, "a+b vs b+a", merge(a, b), merge(b, a))
		sameSeries(t, "(a+b)+c vs a+(b+c)", merge(merge(a, b), c), merge(a, merge(b, c)))
		if t.Failed() {
			t.FailNow()
		}
	}
}
