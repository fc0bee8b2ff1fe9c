package observe

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func scrapeSrc(name string) SourceSpec {
	return SourceSpec{Name: name, Scrape: "http://127.0.0.1:8080/metrics", Select: `shop_replicas{service="catalog"}`}
}

func querySrc(name string) SourceSpec {
	return SourceSpec{Name: name, Prometheus: "http://127.0.0.1:9090", Query: `sum(shop_queue_length)`}
}

func TestSpecYAML(t *testing.T) {
	const doc = `
observe:
  every: 500ms
  sources:
    - name: catalog_replicas
      scrape: http://127.0.0.1:8080/metrics
      select: 'shop_replicas{service="catalog"}'
    - name: queue
      prometheus: http://127.0.0.1:9090
      query: 'sum(shop_queue_length)'
`
	var top struct {
		Observe Spec `yaml:"observe"`
	}
	if err := yaml.Unmarshal([]byte(doc), &top); err != nil {
		t.Fatal(err)
	}
	cfg, err := top.Observe.Compile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Every != 500*time.Millisecond || len(cfg.Sources) != 2 {
		t.Fatalf("got %+v", cfg)
	}
	s0, s1 := cfg.Sources[0], cfg.Sources[1]
	if s0.Name != "catalog_replicas" || s0.Kind != KindScrape || s0.URL.String() != "http://127.0.0.1:8080/metrics" ||
		s0.Select != `shop_replicas{service="catalog"}` || s0.Query != "" || len(s0.matchers) != 2 {
		t.Errorf("source 0: %+v", s0)
	}
	if s1.Name != "queue" || s1.Kind != KindQuery || s1.URL.String() != "http://127.0.0.1:9090" ||
		s1.Query != "sum(shop_queue_length)" || s1.Select != "" {
		t.Errorf("source 1: %+v", s1)
	}
	urls := cfg.URLs()
	if len(urls) != 2 || urls[0].String() != "http://127.0.0.1:8080/metrics" || urls[1].String() != "http://127.0.0.1:9090/api/v1/query" {
		t.Errorf("URLs: %v", urls)
	}
	// URLs returns copies.
	urls[0].Host = "evil"
	if cfg.Sources[0].URL.Host != "127.0.0.1:8080" {
		t.Error("URLs aliases the config")
	}

	js, err := json.Marshal(top.Observe)
	if err != nil {
		t.Fatal(err)
	}
	var back Spec
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(back) != fmt.Sprint(top.Observe) {
		t.Errorf("JSON round trip: %+v != %+v", back, top.Observe)
	}
	if js, _ := json.Marshal(Spec{}); string(js) != "{}" {
		t.Errorf("empty spec JSON = %s", js)
	}
}

func TestCompileZero(t *testing.T) {
	if !(Spec{}).IsZero() {
		t.Fatal("zero Spec not IsZero")
	}
	cfg, err := Spec{}.Compile()
	if cfg != nil || err != nil {
		t.Fatalf("Compile(zero) = %v, %v", cfg, err)
	}
	if (Spec{Every: "1s"}).IsZero() || (Spec{Sources: []SourceSpec{{}}}).IsZero() {
		t.Fatal("non-zero Spec reported IsZero")
	}
	var nilCfg *Config
	if nilCfg.URLs() != nil {
		t.Fatal("nil Config URLs")
	}
}

func TestCompileGood(t *testing.T) {
	many := make([]SourceSpec, MaxSources)
	for i := range many {
		many[i] = scrapeSrc(fmt.Sprintf("s%d", i))
	}
	tests := []struct {
		name  string
		spec  Spec
		every time.Duration
		check func(*testing.T, *Config)
	}{
		{"default every", Spec{Sources: []SourceSpec{scrapeSrc("a")}}, time.Second, nil},
		{"min every", Spec{Every: "250ms", Sources: []SourceSpec{querySrc("a")}}, 250 * time.Millisecond, nil},
		{"max every", Spec{Every: "1m", Sources: []SourceSpec{querySrc("a")}}, time.Minute, nil},
		{"max sources", Spec{Sources: many}, time.Second, nil},
		{"federate URL", Spec{Sources: []SourceSpec{{Name: "fed", Scrape: `http://prom:9090/federate?match[]=up{job="x"}`, Select: `up`}}}, time.Second, nil},
		{"https and port", Spec{Sources: []SourceSpec{{Name: "x", Scrape: "https://example.com:8443/metrics", Select: `{__name__=~"a.*"}`}}}, time.Second, nil},
		{"utf8 metric name", Spec{Sources: []SourceSpec{{Name: "x", Scrape: "http://h/metrics", Select: `{"my.metric", zone="eu"}`}}}, time.Second, nil},
		{"name limits", Spec{Sources: []SourceSpec{scrapeSrc("_"), scrapeSrc(strings.Repeat("a", MaxNameLen)), scrapeSrc("A_9")}}, time.Second, nil},
		{"scalar query", Spec{Sources: []SourceSpec{{Name: "x", Prometheus: "http://h:9090/prom/", Query: "scalar(sum(up))"}}}, time.Second,
			func(t *testing.T, c *Config) {
				if u := c.URLs()[0].String(); u != "http://h:9090/prom/api/v1/query" {
					t.Errorf("URLs = %s", u)
				}
			}},
		{"rate query", Spec{Sources: []SourceSpec{{Name: "x", Prometheus: "http://h", Query: `sum by (pod) (rate(http_requests_total[1m]))`}}}, time.Second, nil},
		{"max select", Spec{Sources: []SourceSpec{{Name: "x", Scrape: "http://h/", Select: "a" + strings.Repeat(" ", MaxExprLen-1)}}}, time.Second, nil},
		{"max url", Spec{Sources: []SourceSpec{{Name: "x", Scrape: "http://h/" + strings.Repeat("a", MaxURLLen-len("http://h/")), Select: "a"}}}, time.Second, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := tc.spec.Compile()
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			if cfg.Every != tc.every || len(cfg.Sources) != len(tc.spec.Sources) {
				t.Fatalf("got every=%v sources=%d", cfg.Every, len(cfg.Sources))
			}
			if len(cfg.URLs()) != len(cfg.Sources) {
				t.Fatalf("URLs: %v", cfg.URLs())
			}
			if tc.check != nil {
				tc.check(t, cfg)
			}
		})
	}
}

func TestCompileBad(t *testing.T) {
	one := func(s SourceSpec) Spec { return Spec{Sources: []SourceSpec{s}} }
	tooMany := make([]SourceSpec, MaxSources+1)
	for i := range tooMany {
		tooMany[i] = scrapeSrc(fmt.Sprintf("s%d", i))
	}
	long := func(n int) string { return strings.Repeat("x", n) }
	tests := []struct {
		name string
		spec Spec
		want []string // each must appear in the error
	}{
		{"every unparseable", Spec{Every: "soon", Sources: []SourceSpec{scrapeSrc("a")}}, []string{`observe.every: bad duration "soon"`}},
		{"every too small", Spec{Every: "10ms", Sources: []SourceSpec{scrapeSrc("a")}}, []string{"observe.every: 10ms is below the minimum 250ms"}},
		{"every negative", Spec{Every: "-1s", Sources: []SourceSpec{scrapeSrc("a")}}, []string{"observe.every: -1s is below the minimum 250ms"}},
		{"every too large", Spec{Every: "2m", Sources: []SourceSpec{scrapeSrc("a")}}, []string{"observe.every: 2m0s is above the maximum 60s"}},
		{"no sources", Spec{Every: "1s"}, []string{"observe.sources: at least one source is required"}},
		{"too many sources", Spec{Sources: tooMany}, []string{"observe.sources: 33 sources, at most 32"}},
		{"name missing", one(SourceSpec{Scrape: "http://h/", Select: "a"}), []string{"observe.sources[0].name: required"}},
		{"name bad char", one(scrapeSrc("catalog-replicas")), []string{`observe.sources[0].name: "catalog-replicas" is not a valid name`}},
		{"name leading digit", one(scrapeSrc("9lives")), []string{`observe.sources[0].name: "9lives" is not a valid name`}},
		{"name too long", one(scrapeSrc(strings.Repeat("a", MaxNameLen+1))), []string{"observe.sources[0].name: 65 bytes, at most 64"}},
		{"duplicate name", Spec{Sources: []SourceSpec{scrapeSrc("a"), querySrc("b"), querySrc("a")}}, []string{`observe.sources[2].name: duplicate name "a" (also observe.sources[0])`}},
		{"both kinds", one(SourceSpec{Name: "a", Scrape: "http://h/", Select: "a", Prometheus: "http://h", Query: "a"}), []string{"observe.sources[0]: both scrape and prometheus are set"}},
		{"neither kind", one(SourceSpec{Name: "a", Select: "a"}), []string{"observe.sources[0]: neither scrape nor prometheus is set"}},
		{"missing select", one(SourceSpec{Name: "a", Scrape: "http://h/"}), []string{"observe.sources[0].select: required with scrape"}},
		{"missing query", one(SourceSpec{Name: "a", Prometheus: "http://h"}), []string{"observe.sources[0].query: required with prometheus"}},
		{"query on scrape", one(SourceSpec{Name: "a", Scrape: "http://h/", Select: "a", Query: "b"}), []string{"observe.sources[0].query: only for prometheus sources"}},
		{"select on prometheus", one(SourceSpec{Name: "a", Prometheus: "http://h", Query: "b", Select: "a"}), []string{"observe.sources[0].select: only for scrape sources"}},
		{"unknown scheme", one(SourceSpec{Name: "a", Scrape: "ftp://h/metrics", Select: "a"}), []string{`observe.sources[0].scrape: unknown scheme "ftp" (want http or https)`}},
		{"no scheme", one(SourceSpec{Name: "a", Prometheus: "prom:9090", Query: "a"}), []string{`observe.sources[0].prometheus: unknown scheme "prom" (want http or https)`}},
		{"relative url", one(SourceSpec{Name: "a", Scrape: "/metrics", Select: "a"}), []string{"observe.sources[0].scrape: no scheme"}},
		{"no host", one(SourceSpec{Name: "a", Scrape: "http:///metrics", Select: "a"}), []string{"observe.sources[0].scrape: no host"}},
		{"port only", one(SourceSpec{Name: "a", Scrape: "http://:80/metrics", Select: "a"}), []string{"observe.sources[0].scrape: no host"}},
		{"bad url", one(SourceSpec{Name: "a", Scrape: "http://[::1/metrics", Select: "a"}), []string{"observe.sources[0].scrape: bad URL: missing ']' in host"}},
		{"bad port", one(SourceSpec{Name: "a", Scrape: "http://h:99999/", Select: "a"}), []string{`observe.sources[0].scrape: bad port "99999"`}},
		{"base url with query", one(SourceSpec{Name: "a", Prometheus: "http://h:9090/?x=1", Query: "a"}), []string{"observe.sources[0].prometheus: a Prometheus base URL takes no query"}},
		{"url too long", one(SourceSpec{Name: "a", Scrape: "http://h/" + long(MaxURLLen), Select: "a"}), []string{"observe.sources[0].scrape: 2057 bytes, at most 2048"}},
		{"bad PromQL", Spec{Sources: []SourceSpec{scrapeSrc("a"), {Name: "b", Prometheus: "http://h", Query: "sum(x"}}}, []string{"observe.sources[1].query: bad PromQL: 1:6: parse error: unclosed left parenthesis"}},
		{"PromQL unknown function", one(SourceSpec{Name: "a", Prometheus: "http://h", Query: "nosuch(x)"}), []string{"observe.sources[0].query: bad PromQL: 1:1: parse error: unknown function", "nosuch"}},
		{"PromQL range vector", one(SourceSpec{Name: "a", Prometheus: "http://h", Query: "x[5m]"}), []string{"observe.sources[0].query: returns a range vector"}},
		{"PromQL string", one(SourceSpec{Name: "a", Prometheus: "http://h", Query: `"hello"`}), []string{"observe.sources[0].query: returns a string"}},
		{"query too long", one(SourceSpec{Name: "a", Prometheus: "http://h", Query: long(MaxExprLen + 1)}), []string{"observe.sources[0].query: 4097 bytes, at most 4096"}},
		{"bad selector", one(SourceSpec{Name: "a", Scrape: "http://h/", Select: `shop_replicas{service="catalog"`}), []string{"observe.sources[0].select: bad selector: 1:32: parse error: unexpected end of input inside braces"}},
		{"selector is an expression", one(SourceSpec{Name: "a", Scrape: "http://h/", Select: `sum(x)`}), []string{"observe.sources[0].select: bad selector: 1:4: parse error"}},
		{"selector matches everything", one(SourceSpec{Name: "a", Scrape: "http://h/", Select: `{job=~".*"}`}), []string{"observe.sources[0].select: bad selector: needs at least one matcher that does not match the empty string"}},
		{"empty selector", one(SourceSpec{Name: "a", Scrape: "http://h/", Select: `{}`}), []string{"observe.sources[0].select: bad selector: needs at least one matcher"}},
		{"select too long", one(SourceSpec{Name: "a", Scrape: "http://h/", Select: long(MaxExprLen + 1)}), []string{"observe.sources[0].select: 4097 bytes, at most 4096"}},
		{"all at once", Spec{Every: "5ms", Sources: []SourceSpec{
			{Name: "ok", Scrape: "http://h/", Select: "a"},
			{Name: "bad-name", Scrape: "gopher://h/", Select: "a{"},
			{Name: "q", Prometheus: "http://h", Query: "1 +"},
		}}, []string{
			"observe.every: 5ms is below the minimum 250ms",
			`observe.sources[1].name: "bad-name" is not a valid name`,
			`observe.sources[1].scrape: unknown scheme "gopher"`,
			"observe.sources[1].select: bad selector: 1:3: parse error",
			"observe.sources[2].query: bad PromQL: 1:4: parse error",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := tc.spec.Compile()
			if err == nil {
				t.Fatalf("Compile succeeded: %+v", cfg)
			}
			if cfg != nil {
				t.Errorf("Compile returned a config with an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n  %v\nwant it to contain\n  %s", err, w)
				}
			}
			if n := strings.Count(err.Error(), "\n") + 1; n != len(tc.want) && tc.name != "PromQL unknown function" {
				t.Errorf("got %d errors, want %d:\n%v", n, len(tc.want), err)
			}
		})
	}
}
