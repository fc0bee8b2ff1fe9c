package observe

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/common/model"
)

func FuzzCompile(f *testing.F) {
	f.Add("q", "http://127.0.0.1:8080/metrics", `shop_replicas{service="catalog"}`, "", "", "1s")
	f.Add("q", "", "", "http://127.0.0.1:9090", `sum(rate(x[1m])) by (pod)`, "250ms")
	f.Add("9bad-name", "ftp://h", "{", "http://[::1", "sum(", "10ms")
	f.Add("", "http://:80", `{a=~".*"}`, "https://h:99999/?a=b", `x[5m]`, "2m")
	f.Add("a", "http://h/federate?match[]=up", `{"my.metric"}`, "", `"s"`, "")
	f.Add("é", "HTTP://H/%zz", "a{b=~\"(\"}", "http://h", "label_replace(x, \"a\", \"$1\", \"b\", \"(\")", "1.5h")
	f.Fuzz(func(t *testing.T, name, scrape, sel, prom, query, every string) {
		spec := Spec{Every: every, Sources: []SourceSpec{
			{Name: name, Scrape: scrape, Select: sel, Prometheus: prom, Query: query},
			// The same fields split into a scrape and a query source.
			{Name: name + "_s", Scrape: scrape, Select: sel},
			{Name: name + "_q", Prometheus: prom, Query: query},
		}}
		cfg, err := spec.Compile()
		if (cfg == nil) == (err == nil) {
			t.Fatalf("Compile = %v, %v: want exactly one of a config or an error", cfg, err)
		}
		if err != nil {
			if !strings.HasPrefix(err.Error(), "observe.") {
				t.Fatalf("error without a field path: %v", err)
			}
			return
		}
		if cfg.Every < MinEvery || cfg.Every > MaxEvery || len(cfg.Sources) != 3 {
			t.Fatalf("bad config %+v", cfg)
		}
		for _, u := range cfg.URLs() {
			if u.Scheme != "http" && u.Scheme != "https" || u.Hostname() == "" {
				t.Fatalf("bad URL %v", u)
			}
		}
		for _, s := range cfg.Sources {
			if s.Kind == KindScrape && len(s.matchers) == 0 {
				t.Fatalf("scrape source without matchers: %+v", s)
			}
		}
		// A compiled config survives Run's re-validation.
		if _, err := cfg.spec().Compile(); err != nil {
			t.Fatalf("recompile: %v", err)
		}
	})
}

func FuzzClip(f *testing.F) {
	f.Add("hello", 200)
	f.Add("\xff\xfeé€\n", 5)
	f.Fuzz(func(t *testing.T, s string, max int) {
		if max < 0 || max > 1000 {
			return
		}
		got := clip(s, max)
		if len(got) > max || !utf8.ValidString(got) {
			t.Fatalf("clip(%q, %d) = %q", s, max, got)
		}
	})
}

// FuzzScrapeBody feeds arbitrary bytes through the scrape path's parsing
// and matching: network input must never panic.
func FuzzScrapeBody(f *testing.F) {
	f.Add([]byte("# TYPE a gauge\na{b=\"c\"} 1\na{b=\"d\"} 2\n"))
	f.Add([]byte("# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 2\n"))
	f.Add([]byte("# TYPE s summary\ns{quantile=\"0.5\"} NaN\ns_sum 1\ns_count 1\n{\"a.b\"} 1\n"))
	ms, err := compileSelect(`{__name__=~"a|h_.*|s.*|a.b"}`)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fams, err := parseText(body)
		if err != nil {
			return
		}
		sum, n := sumMatching(fams, ms)
		pts, gaps := pointOrGap("x", 0, sum)
		if n < 0 || len(pts)+len(gaps) != 1 {
			t.Fatalf("n=%d pts=%v gaps=%v", n, pts, gaps)
		}
	})
}

// FuzzQueryVector feeds arbitrary JSON through the query path's vector
// handling.
func FuzzQueryVector(f *testing.F) {
	f.Add([]byte(`[{"metric":{"a":"b"},"value":[1,"1"]},{"metric":{"a":"c"},"value":[1,"NaN"]}]`))
	f.Add([]byte(`[{"metric":{"__name__":"x"},"value":[1,"1"]},{"metric":{"__name__":"y"},"value":[1,"2"]}]`))
	f.Add([]byte(`[null,{"metric":{},"histogram":[1,{"count":"1","sum":"1"}]}]`))
	f.Fuzz(func(t *testing.T, js []byte) {
		var vec model.Vector
		if json.Unmarshal(js, &vec) != nil {
			return
		}
		pts, gaps := vectorPoints("src", 3, vec)
		if len(pts) > maxQuerySeries {
			t.Fatalf("%d points", len(pts))
		}
		for _, p := range pts {
			if !utf8.ValidString(p.Series) || len(p.Series) > maxSeriesName || p.T != 3 || math.IsNaN(p.V) || math.IsInf(p.V, 0) {
				t.Fatalf("bad point %+v", p)
			}
		}
		for _, g := range gaps {
			if !utf8.ValidString(g.Reason) || len(g.Reason) > maxReason || g.T != 3 {
				t.Fatalf("bad gap %+v", g)
			}
		}
	})
}
