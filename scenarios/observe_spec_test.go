package scenarios

import (
	"strings"
	"testing"
)

// TestObserveInSpec: a source written as a path follows the test's target
// (so `swarm run --target` moves it too); bad sources are refused with
// their field's path.
func TestObserveInSpec(t *testing.T) {
	base := "name: o\ntarget: http://127.0.0.1:8080/shop\nduration: 1s\nload: {rate: 1}\nrequests: [{name: a}]\n"
	sc, err := Parse([]byte(base + "observe:\n  sources:\n    - {name: r, scrape: \"/metrics?x=1\", select: shop_replicas}\n    - {name: q, prometheus: http://127.0.0.2:9090, query: up}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if sc.Observe == nil || len(sc.Observe.Sources) != 2 {
		t.Fatalf("observe %+v", sc.Observe)
	}
	if got := sc.Observe.Sources[0].URL.String(); got != "http://127.0.0.1:8080/metrics?x=1" {
		t.Errorf("relative scrape URL resolved to %s", got)
	}
	if got := sc.Observe.Sources[1].URL.Host; got != "127.0.0.2:9090" {
		t.Errorf("absolute URL changed: %s", got)
	}
	if sc, err := Parse([]byte(base)); err != nil || sc.Observe != nil {
		t.Errorf("no observe: section: %v, %+v", err, sc.Observe)
	}
	for _, c := range []struct{ yaml, want string }{
		{"observe:\n  sources: [{name: r, scrape: ftp://x/metrics, select: a}]\n", "observe.sources[0].scrape"},
		{"observe:\n  sources: [{name: r, prometheus: http://x:9090, query: 'sum(('}]\n", "observe.sources[0].query"},
		{"observe:\n  every: 1ms\n  sources: [{name: r, scrape: /m, select: a}]\n", "observe.every"},
		{"observe:\n  sources: [{name: r, scrape: /m}]\n", "observe.sources[0].select"},
	} {
		_, err := Parse([]byte(base + c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error naming %s", c.yaml, err, c.want)
		}
	}
}
