package scenarios

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"

	"github.com/loadswarm/loadswarm/storage"
)

// doublingSpec is a scenario whose body doubles a 1 MiB string six times:
// 64 MiB per request if nothing stopped it.
func doublingSpec(body string) *Spec {
	return &Spec{
		Name: "doubling", Target: "http://fake", Duration: Duration(1e9),
		Load: Load{Rate: 5},
		Vars: map[string]any{"s": strings.Repeat("x", 1<<20)},
		Requests: []StepSpec{{Name: "add-to-cart", Method: "POST",
			Path: "/{{ arrival }}", Body: body}},
	}
}

// TestDoublingBodyIsRefusedBeforeAllocating: the body limit is checked
// before the big string exists, so sending the doubling template several
// times allocates far less than one 64 MiB body.
func TestDoublingBodyIsRefusedBeforeAllocating(t *testing.T) {
	for _, body := range []string{
		`{{ vars.s + vars.s + vars.s + vars.s + vars.s + vars.s + vars.s + vars.s }}`,
		`{{ let a = vars.s + vars.s; let b = a + a; let c = b + b; let d = c + c; let e = d + d; e + e }}`,
		`{{ repeat(vars.s, 64) }}`,
		`{{ join(map(1..64, vars.s), "") }}`,
		`{{ replace(vars.s, "x", "xxxxxxxxxxxxxxxx") }}`,
		`{{ toJSON(map(1..64, vars.s)) }}`,
		`{{ string(map(1..64, vars.s)) }}`,
		`{{ map(1..64, vars.s) }}`,
		`{{ vars.s }}{{ vars.s }}`,
	} {
		t.Run(body, func(t *testing.T) {
			sc, err := Compile(doublingSpec(body))
			if err != nil {
				t.Fatal(err)
			}
			w := &worker{e: &executor{sc: sc}}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			const arrivals = 5
			for i := range arrivals {
				w.env = IterEnv{Vars: sc.Vars, Arrival: int64(i)}
				_, _, err = w.request(sc.Steps[0])
				if err == nil || err.Error() != "body template: over the 1 MiB body limit" {
					t.Fatalf("request: %v; want the body limit", err)
				}
			}
			runtime.ReadMemStats(&after)
			// One arrival may build up to twice the limit in
			// intermediate values before it is stopped.
			if got := after.TotalAlloc - before.TotalAlloc; got > arrivals*3<<20 {
				t.Fatalf("%d arrivals allocated %d MiB", arrivals, got>>20)
			}
		})
	}
}

// TestBodyLimitInARun: in a run, the over-limit body fails the request
// with class "other" and a clear sample, and nothing is sent.
func TestBodyLimitInARun(t *testing.T) {
	sc, err := Compile(doublingSpec(`{{ vars.s + vars.s }}`))
	if err != nil {
		t.Fatal(err)
	}
	tgt := newFakeTarget()
	res, err := Run(context.Background(), RunConfig{Scenario: sc, Transport: tgt, MaxLate: countsAll})
	if err != nil {
		t.Fatal(err)
	}
	sum := storage.Summarize(res.Series, nil)
	if sum.Requests != 5 || sum.ErrorsByClass[ErrOther] != 5 || len(tgt.sent) != 0 {
		t.Fatalf("requests %d errors %v sent %d; want 5 errors of class other, nothing sent", sum.Requests, sum.ErrorsByClass, len(tgt.sent))
	}
	if s := res.Series.Samples[ErrOther]; len(s) == 0 || s[0] != "step add-to-cart: body template: over the 1 MiB body limit" {
		t.Fatalf("samples: %q", s)
	}
}

// TestTemplateBudget: what each growing operation may build under a 1000
// byte limit. vars.s is 400 bytes.
func TestTemplateBudget(t *testing.T) {
	var m vm.VM
	s := strings.Repeat("ab", 200)
	env := &IterEnv{Vars: map[string]any{"s": s, "n": 2, "list": []any{"a", "b"}, "m": map[string]any{"k": "v"}}, Arrival: 3}
	for _, tc := range []struct {
		src  string
		want string // "" with ok false: over the limit
		ok   bool
	}{
		{`{{ "a" + "b" }}`, "ab", true},                                          // constants still concatenate
		{`{{ arrival + 1 }}`, "4", true},                                         // numbers still add
		{`{{ vars.n + 1.5 }}`, "3.5", true},                                      // numbers of unknown type too
		{`{{ vars.s + vars.s }}`, s + s, true},                                   // 800 bytes: under 1000
		{`{{ vars.s + vars.s + vars.s }}`, "", false},                            // 1200 bytes
		{`{{ vars.s }}{{ vars.s }}{{ vars.s }}`, "", false},                      // three holes, 1200 bytes
		{`{{ [vars.s + vars.s, vars.s + vars.s, vars.s + vars.s] }}`, "", false}, // 2400 bytes built in all
		{`{{ repeat("ab", 3) }}`, "ababab", true},                                // small repeat
		{`{{ repeat(vars.s, 3) }}`, "", false},                                   // 1200 bytes
		{`{{ join(vars.list, "-") }}`, "a-b", true},                              // small join
		{`{{ join(map(1..3, vars.s)) }}`, "", false},                             // 1200 bytes
		{`{{ replace("aaa", "a", "bb") }}`, "bbbbbb", true},                      // growing replace, small
		{`{{ replace(vars.s, "a", "aaaaa") }}`, "", false},                       // 400 + 200*4 = 1200
		{`{{ upper("abc") }}`, "ABC", true},                                      // case
		{`{{ upper(vars.s + vars.s) }}`, "", false},                              // 800, then 1200 more
		{`{{ split("a,b", ",") }}`, "[a b]", true},                               // a list, printed
		{`{{ len(split(vars.s, "")) }}`, "", false},                              // 400 strings of 16 bytes
		{`{{ toJSON(vars.list) }}`, "[\n  \"a\",\n  \"b\"\n]", true},             // as expr's toJSON
		{`{{ toJSON(map(1..3, vars.s)) }}`, "", false},                           // 1200+ bytes
		{`{{ string(vars.list) }}`, "[a b]", true},                               // fmt
		{`{{ string(map(1..3, vars.s)) }}`, "", false},                           // 1200+ bytes
		{`{{ map(1..3, vars.s) }}`, "", false},                                   // printed by Render: 1200+ bytes
		{`{{ toBase64("hi") }}`, "aGk=", true},                                   // small
		{`{{ toBase64(vars.s + vars.s) }}`, "", false},                           // 800 then 1068
		{`{{ fromJSON("[1]")[0] }}`, "1", true},                                  // small
		{`{{ len(fromJSON(toJSON(vars.s))) }}`, "", false},                       // 8 bytes per byte of JSON text
		{`{{ keys(vars.m)[0] }}`, "k", true},
		{`{{ toPairs(vars.m) }}`, "[[k v]]", true},                                           // other list types print too
		{`{{ toJSON(toPairs(vars.m)) }}`, "[\n  [\n    \"k\",\n    \"v\"\n  ]\n]", true},     // and encode                                                 // maps
		{`{{ let a = vars.s + "x"; a + a }}`, s + "x" + s + "x", true},                       // 401 then 802: 1203 in all, under 2000
		{`{{ vars.s | repeat(2) }}`, s + s, true},                                            // pipes are calls too
		{`{{ date("2024-01-01") + duration("1h") }}`, "2024-01-01 01:00:00 +0000 UTC", true}, // times still add
	} {
		tpl, err := parseTemplate(tc.src, 1000, "body")
		if err != nil {
			t.Errorf("%s: %v", tc.src, err)
			continue
		}
		got, err := tpl.Render(&m, env)
		switch {
		case tc.ok && (err != nil || got != tc.want):
			t.Errorf("%s = %q, %v; want %q", tc.src, got, err, tc.want)
		case !tc.ok && (err == nil || err.Error() != "over the 1000 bytes body limit"):
			t.Errorf("%s = %d bytes, %v; want the body limit", tc.src, len(got), err)
		}
	}
}

// TestBoundedFunctionsMatchExpr: under the limit, each replaced builtin
// gives what expr's own gives (the reference), on random strings.
func TestBoundedFunctionsMatchExpr(t *testing.T) {
	var m vm.VM
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "b", ",", "<", "é", "\n", "\"", "\\", "ſ"}
	word := func() string {
		var b strings.Builder
		for range r.IntN(12) {
			b.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		return b.String()
	}
	exprs := []string{
		`a + b`, `repeat(a, 3)`, `join([a, b], c)`, `join([a, b])`, `replace(a, b, c)`, `replace(a, "a", c, 1)`,
		`upper(a)`, `lower(a)`, `split(a, ",")`, `split(a, b)`, `splitAfter(a, ",")`, `split(a, ",", 2)`,
		`toJSON([a, b, {"k": c}])`, `toJSON(a)`, `toBase64(a)`, `string([a, 1, true, nil])`, `string(1.5)`,
		`toJSON(toPairs({"k": a}))`, `string(toPairs({"k": a}))`, `toJSON({"k": [a, {"l": b}]})`,
		`fromBase64(toBase64(a))`, `fromJSON(toJSON([a]))`,
	}
	for i := range 300 {
		vars := map[string]any{"a": word(), "b": word(), "c": word()}
		src := exprs[i%len(exprs)]
		ours, err := compileExpr(src, map[string]any{"a": "", "b": "", "c": ""})
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		theirs, err := expr.Compile(src, expr.Env(vars))
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		got, err1 := m.Run(ours, vars)
		want, err2 := expr.Run(theirs, vars)
		if fmt.Sprint(got) != fmt.Sprint(want) || (err1 == nil) != (err2 == nil) {
			t.Fatalf("%s with %q: got %q, %v; expr gives %q, %v", src, vars, got, err1, want, err2)
		}
	}
}

// TestSizeLimitsValidated: bad max_body values and over-long literal text
// are refused with the field and the reason.
func TestSizeLimitsValidated(t *testing.T) {
	long := strings.Repeat("x", MaxHeaderValue+1)
	for _, tc := range []struct {
		name, yaml string
		want       []string
	}{
		{"zero", "defaults: {max_body: '0'}\n", []string{`defaults.max_body: "0": must be > 0`}},
		{"negative", "defaults: {max_body: '-1'}\n", []string{`defaults.max_body: "-1" is not a size`}},
		{"too big", "defaults: {max_body: 100MiB}\n", []string{"defaults.max_body: 100 MiB is over the limit of 64 MiB"}},
		{"bad unit", "defaults: {max_body: 1 MiBB}\n", []string{`defaults.max_body: "1 MiBB": unknown unit "mibb"`}},
		{"not a number", "defaults: {max_body: lots}\n", []string{`defaults.max_body: "lots" is not a size`}},
		{"step", "requests: [{name: a, max_body: 65MiB}]\n", []string{"requests[0].max_body: 65 MiB is over the limit of 64 MiB"}},
		{"body text over max_body", "requests: [{name: a, max_body: 10, body: 'hello world, hello'}]\n", []string{"requests[0].body: 18 bytes of text, over the 10 bytes body limit (max_body)"}},
		{"header text", "requests: [{name: a, headers: {X-Big: " + long + "}}]\n", []string{"requests[0].headers.X-Big: 8193 bytes of text, over the 8 KiB header value limit"}},
		{"url text", "requests: [{name: a, path: /" + strings.Repeat("x", MaxURLBytes) + "}]\n", []string{"requests[0].path: ", "over the 8 KiB URL limit"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := okHead + "duration: 1s\nload: {rate: 1}\n" + tc.yaml
			if !strings.Contains(tc.yaml, "requests:") {
				y += "requests: [{name: a}]\n"
			}
			_, err := Parse([]byte(y))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
	// Good values.
	for _, tc := range []struct {
		v    string
		want int
	}{
		{"", DefaultMaxBody},    // default
		{"1048576", 1 << 20},    // bytes
		{"512KiB", 512 << 10},   // KiB
		{"4 MiB", 4 << 20},      // with a space
		{"2MB", 2_000_000},      // decimal
		{"64MiB", MaxBodyLimit}, // the most
	} {
		sc, err := Parse([]byte(okHead + "duration: 1s\nload: {rate: 1}\ndefaults: {max_body: '" + tc.v + "'}\nrequests: [{name: a}, {name: b, max_body: 7}]\n"))
		if err != nil {
			t.Fatalf("%q: %v", tc.v, err)
		}
		if sc.MaxBody != tc.want || sc.Steps[0].MaxBody != tc.want || sc.Steps[1].MaxBody != 7 {
			t.Errorf("%q: max body %d, steps %d %d", tc.v, sc.MaxBody, sc.Steps[0].MaxBody, sc.Steps[1].MaxBody)
		}
	}
}

// TestHeaderAndURLLimits: rendered headers and URLs are bounded too.
func TestHeaderAndURLLimits(t *testing.T) {
	big := strings.Repeat("h", 7<<10)
	headers := map[string]string{}
	for i := range 10 {
		headers[fmt.Sprintf("X-H%d", i)] = "{{ vars.h }}" // 10 x 7 KiB: over 64 KiB in all
	}
	for _, tc := range []struct {
		name string
		step StepSpec
		want string
	}{
		{"one header value", StepSpec{Name: "a", Headers: map[string]string{"X-A": "{{ vars.h + vars.h }}"}}, "header X-A template: over the 8 KiB header value limit"},
		{"all headers", StepSpec{Name: "a", Headers: headers}, "headers: over the 64 KiB header limit"},
		{"url", StepSpec{Name: "a", Path: "/{{ vars.h + vars.h }}"}, "url template: over the 8 KiB URL limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc, err := Compile(&Spec{Name: "h", Target: "http://fake", Duration: Duration(1e9), Load: Load{Rate: 1},
				Vars: map[string]any{"h": big}, Requests: []StepSpec{tc.step}})
			if err != nil {
				t.Fatal(err)
			}
			w := &worker{e: &executor{sc: sc}, env: IterEnv{Vars: sc.Vars}}
			if _, _, err := w.request(sc.Steps[0]); err == nil || err.Error() != tc.want {
				t.Fatalf("request: %v; want %q", err, tc.want)
			}
		})
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},                     // zero parses; callers decide
		{"1500", 1500, true},               // bytes
		{"1500 bytes", 1500, true},         // spelled out
		{"1KiB", 1024, true},               // binary
		{"1kb", 1000, true},                // decimal, any case
		{"3m", 3 << 20, true},              // short binary
		{" 2 GiB ", 2 << 30, true},         // spaces
		{"8589934592GiB", 0, false},        // overflows
		{"99999999999999999999", 0, false}, // too many digits
		{"1.5MiB", 0, false},               // no fractions
		{"MiB", 0, false},                  // no number
		{"-5", 0, false},                   // no sign
		{"5 parsecs", 0, false},            // unknown unit
	} {
		got, err := ParseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "1 MiB", "512KiB", "2MB", "9223372036854775807", "8589934592GiB", "1 byte"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("ParseSize(%q) = %d", s, n)
		}
		// What FormatSize writes reads back the same.
		if back, err := ParseSize(FormatSize(n)); err != nil || back != n {
			t.Fatalf("FormatSize(%d) = %q reads back as %d, %v", n, FormatSize(n), back, err)
		}
	})
}

// FuzzTemplateBudget: any template, rendered under a small limit, never
// panics and never returns more than the limit.
func FuzzTemplateBudget(f *testing.F) {
	for _, s := range []string{`{{ vars.s + vars.s }}`, `{{ repeat(vars.s, arrival) }}`, `x{{ join(map(1..9, vars.s), "-") }}`,
		`{{ toJSON(vars) }}`, `{{ let a = vars.s + vars.s; [a, a] }}`, `{{ upper(vars.s) + lower(vars.s) }}`} {
		f.Add(s)
	}
	var m vm.VM
	f.Fuzz(func(t *testing.T, src string) {
		tpl, err := parseTemplate(src, 300, "body")
		if err != nil {
			return
		}
		out, err := tpl.Render(&m, &IterEnv{Vars: map[string]any{"s": strings.Repeat("z", 100), "l": []any{"a", 1.5}}, Arrival: 5})
		if err == nil && len(out) > 300 {
			t.Fatalf("%q rendered %d bytes, over the 300 byte limit", src, len(out))
		}
	})
}

// TestSizeBoundsHold: fmtSize and jsonSize never say less than what fmt
// and encoding/json then build (the reference), on random nested values.
func TestSizeBoundsHold(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	chars := []string{"a", "<", "\"", "\\", "\x01", "é", "\u2028", "\xff", " ", "&"}
	var value func(depth int) any
	value = func(depth int) any {
		k := r.IntN(10)
		if depth > 3 {
			k = r.IntN(6)
		}
		switch k {
		case 0:
			return nil
		case 1:
			return r.IntN(2) == 0
		case 2:
			return r.Int64() - r.Int64()
		case 3:
			return r.NormFloat64() * 1e10
		case 4, 5:
			var b strings.Builder
			for range r.IntN(8) {
				b.WriteString(chars[r.IntN(len(chars))])
			}
			return b.String()
		case 6, 7:
			l := make([]any, r.IntN(4))
			for i := range l {
				l[i] = value(depth + 1)
			}
			return l
		case 8:
			m := map[string]any{}
			for range r.IntN(4) {
				m[fmt.Sprint(value(5))] = value(depth + 1)
			}
			return m
		}
		return [][2]any{{value(depth + 1), value(depth + 1)}}
	}
	for range 2000 {
		v := value(0)
		n, err := fmtSize(v, 0, 1<<30)
		if got := len(fmt.Sprint(v)); err != nil || n < got {
			t.Fatalf("fmtSize(%#v) = %d, %v; fmt builds %d", v, n, err, got)
		}
		n, err = jsonSize(v, 0, 1<<30)
		b, jerr := json.MarshalIndent(v, "", "  ")
		if jerr == nil && (err != nil || n < len(b)) {
			t.Fatalf("jsonSize(%#v) = %d, %v; encoding/json builds %d:\n%s", v, n, err, len(b), b)
		}
	}
}
