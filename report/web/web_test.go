package web

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

func get(t *testing.T, h http.Handler, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
	return rec
}

func TestHandlerAssets(t *testing.T) {
	h := Handler()
	for path, want := range map[string]string{
		"/ui":                   "text/html",
		"/ui/":                  "text/html",
		"/ui/app.js":            "text/javascript",
		"/ui/app.css":           "text/css",
		"/ui/uPlot.iife.min.js": "text/javascript",
		"/ui/uPlot.min.css":     "text/css",
		"/ui/LICENSE-uPlot":     "text/plain",
	} {
		rec := get(t, h, http.MethodGet, path)
		if rec.Code != http.StatusOK {
			t.Errorf("GET %s: %d", path, rec.Code)
			continue
		}
		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, want) {
			t.Errorf("GET %s: Content-Type %q, want %s", path, ct, want)
		}
		if cc := rec.Header().Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q", path, cc)
		}
		// The page runs only its own files, and no other site frames it.
		csp := rec.Header().Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "script-src") {
			t.Errorf("GET %s: CSP %q", path, csp)
		}
		if xf := rec.Header().Get("X-Frame-Options"); xf != "DENY" {
			t.Errorf("GET %s: X-Frame-Options %q", path, xf)
		}
		if rec.Body.Len() == 0 {
			t.Errorf("GET %s: empty body", path)
		}
		head := get(t, h, http.MethodHead, path)
		if head.Code != http.StatusOK || head.Body.Len() != 0 {
			t.Errorf("HEAD %s: %d, %d bytes", path, head.Code, head.Body.Len())
		}
	}
	if got, want := get(t, h, http.MethodGet, "/ui/").Body.String(), asset("index.html"); got != want {
		t.Errorf("/ui/ is not index.html")
	}
	for _, path := range []string{"/", "/uix", "/ui/nope.js", "/ui/assets/app.js", "/ui/app.js/", "/ui/index.htm",
		"/ui/../web.go", "/ui/testdata/results.json", "/v1/peers", "/ui//app.js"} {
		if rec := get(t, h, http.MethodGet, path); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, rec.Code)
		}
	}
	if rec := get(t, h, http.MethodPost, "/ui/app.js"); rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /ui/app.js: %d, want 405", rec.Code)
	}
}

var attrRe = regexp.MustCompile(`(?i)\b(src|href|action|formaction|poster|data)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))`)

// refs lists the src and href (and like) attribute values of some HTML.
func refs(html string) []string {
	var out []string
	for _, m := range attrRe.FindAllStringSubmatch(html, -1) {
		out = append(out, m[2]+m[3]+m[4])
	}
	return out
}

func TestIndexReferencesOnlyUI(t *testing.T) {
	h := Handler()
	index := asset("index.html")
	rs := refs(index)
	if len(rs) < 4 {
		t.Fatalf("index.html references %q: want the scripts and styles", rs)
	}
	for _, r := range rs {
		if r == "data:," { // the empty favicon: no request for /favicon.ico
			continue
		}
		if !strings.HasPrefix(r, "/ui/") {
			t.Errorf("index.html references %q, want a /ui/ path", r)
			continue
		}
		if rec := get(t, h, http.MethodGet, r); rec.Code != http.StatusOK {
			t.Errorf("index.html references %q: %d", r, rec.Code)
		}
	}
	if strings.Contains(strings.ToLower(index), "<script>") {
		t.Error("index.html has an inline script: the live CSP refuses it")
	}
}

func readData(t *testing.T, name string) json.RawMessage {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sample(t *testing.T) ReportData {
	return ReportData{
		Generated: time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC),
		Generator: "swarm v0.3.0",
		Status:    readData(t, "status.json"),
		Results:   readData(t, "results.json"),
		Baseline:  &Baseline{Results: readData(t, "baseline_results.json")},
	}
}

func write(t *testing.T, d ReportData) string {
	t.Helper()
	var b bytes.Buffer
	if err := WriteReport(&b, d); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// extract returns the report's data element's text.
func extract(t *testing.T, page string) string {
	t.Helper()
	i := strings.Index(page, dataOpen)
	if i < 0 {
		t.Fatal("no #loadswarm-data element")
	}
	rest := page[i+len(dataOpen):]
	j := strings.Index(strings.ToLower(rest), "</script")
	if j < 0 {
		t.Fatal("#loadswarm-data is not closed")
	}
	return rest[:j]
}

// jsonEqual compares two JSON texts by value.
func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("%v: %.80s", err, a)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("%v: %.80s", err, b)
	}
	return reflect.DeepEqual(x, y)
}

func TestWriteReportSelfContained(t *testing.T) {
	page := write(t, sample(t))
	if !strings.Contains(page, `<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">`) {
		t.Error("no CSP meta, or not the one expected")
	}
	if i, j := strings.Index(page, "Content-Security-Policy"), strings.Index(page, "<style"); i < 0 || j < i {
		t.Error("the CSP meta must come before any style or script")
	}
	for _, r := range refs(page) {
		l := strings.ToLower(strings.TrimSpace(r))
		if strings.Contains(l, "//") || strings.HasPrefix(l, "http") {
			t.Errorf("the report references %q", r)
		}
	}
	for _, bad := range []string{`<link rel="stylesheet"`, "@import", "url(http", "url(//", `url("http`, `url('http`, "<iframe", "<img src=\"http"} {
		if strings.Contains(strings.ToLower(page), strings.ToLower(bad)) {
			t.Errorf("the report contains %q", bad)
		}
	}
	// Everything it needs is inline.
	for _, want := range []string{asset("app.js")[:200], "uPlot", "Leon Sorokin", "Permission is hereby granted", `<div id="app">`} {
		if !strings.Contains(page, want) {
			t.Errorf("the report lacks %.40q", want)
		}
	}
	if got := strings.Count(strings.ToLower(page), "<script"); got != 3 {
		t.Errorf("%d <script elements, want 3 (data, uPlot, app)", got)
	}
	if got := strings.Count(strings.ToLower(page), "</script"); got != 3 {
		t.Errorf("%d </script, want 3", got)
	}
	if got := strings.Count(strings.ToLower(page), "<style"); got != 2 {
		t.Errorf("%d <style elements, want 2", got)
	}
}

func TestWriteReportRoundTrip(t *testing.T) {
	d := sample(t)
	d.Baseline.Status = json.RawMessage(`{"id":"t-20241220-xyz","name":"checkout ramp","state":"done"}`)
	text := extract(t, write(t, d))
	var got ReportData
	if err := json.Unmarshal([]byte(text), &got); err != nil {
		t.Fatal(err)
	}
	if !got.Generated.Equal(d.Generated) || got.Generator != d.Generator {
		t.Errorf("generated %v by %q, want %v by %q", got.Generated, got.Generator, d.Generated, d.Generator)
	}
	if !jsonEqual(t, got.Results, d.Results) {
		t.Error("results differ")
	}
	if !jsonEqual(t, got.Status, d.Status) {
		t.Error("status differs")
	}
	if got.Baseline == nil || !jsonEqual(t, got.Baseline.Results, d.Baseline.Results) || !jsonEqual(t, got.Baseline.Status, d.Baseline.Status) {
		t.Error("baseline differs")
	}

	// Without status or baseline, they stay out.
	text = extract(t, write(t, ReportData{Results: json.RawMessage(`{"name":"x"}`)}))
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(text), &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m["status"]; ok {
		t.Error("an absent status is in the data")
	}
	if _, ok := m["baseline"]; ok {
		t.Error("an absent baseline is in the data")
	}
}

func TestWriteReportEscapes(t *testing.T) {
	evil := "</script><script>alert(1)</script><!-- </style>"
	res, _ := json.Marshal(map[string]any{
		"id": "t-1", "name": evil, "series": []any{},
		"error_samples": map[string][]string{"x": {evil, "</SCRIPT >"}},
	})
	d := ReportData{Generator: evil, Results: res}
	page := write(t, d)
	lower := strings.ToLower(page)
	if strings.Contains(lower, "<script>alert") || strings.Contains(page, "alert(1)</script>") {
		t.Error("the data broke out of its element")
	}
	if got := strings.Count(lower, "<script"); got != 3 {
		t.Errorf("%d <script elements, want 3", got)
	}
	if got := strings.Count(lower, "</script"); got != 3 {
		t.Errorf("%d </script, want 3", got)
	}
	// The data still decodes to the same text.
	var got ReportData
	if err := json.Unmarshal([]byte(extract(t, page)), &got); err != nil {
		t.Fatal(err)
	}
	var r struct {
		Name    string              `json:"name"`
		Samples map[string][]string `json:"error_samples"`
	}
	if err := json.Unmarshal(got.Results, &r); err != nil {
		t.Fatal(err)
	}
	if r.Name != evil || r.Samples["x"][0] != evil || got.Generator != evil {
		t.Errorf("round trip: %q %q %q", r.Name, r.Samples, got.Generator)
	}
	// The title and generator meta are escaped text.
	if strings.Contains(page, "<title>Loadswarm report: </script>") {
		t.Error("title not escaped")
	}

	// No inlined element body can end its element early.
	body := regexp.MustCompile(`(?is)<(script|style)[^>]*>(.*?)</(script|style)>`)
	n := 0
	for _, m := range body.FindAllStringSubmatch(page, -1) {
		n++
		if strings.Contains(m[2], "</") || strings.Contains(m[2], "<!--") {
			t.Errorf("an inline <%s> holds \"</\" or \"<!--\"", m[1])
		}
		if m[1] != m[3] {
			t.Errorf("<%s> closed by </%s>", m[1], m[3])
		}
	}
	if n != 5 {
		t.Errorf("%d inline script and style elements, want 5", n)
	}
}

func TestInline(t *testing.T) {
	for in, want := range map[string]string{
		`a</script>b`: `a<\/script>b`,
		`"</"`:        `"<\/"`,
		`<!-- x`:      `<\!-- x`,
		`a < b`:       `a < b`,
	} {
		if got := inline(in); got != want {
			t.Errorf("inline(%q) = %q, want %q", in, got, want)
		}
	}
	// Our own script never needs the rewrite (it would change code, not strings).
	if strings.Contains(asset("app.js"), "</") || strings.Contains(asset("uPlot.iife.min.js"), "</") {
		t.Error(`a script holds "</": check what inline() does to it`)
	}
}

func TestWriteReportErrors(t *testing.T) {
	ok := json.RawMessage(`{"name":"x"}`)
	for _, c := range []struct {
		name string
		d    ReportData
		want string
	}{
		{"no results", ReportData{}, "results"},
		{"blank results", ReportData{Results: json.RawMessage("  ")}, "results"},
		{"null results", ReportData{Results: json.RawMessage("null")}, "results"},
		{"invalid results", ReportData{Results: json.RawMessage(`{"name":`)}, "results"},
		{"array results", ReportData{Results: json.RawMessage(`[1]`)}, "results"},
		{"invalid status", ReportData{Results: ok, Status: json.RawMessage(`{x}`)}, "status"},
		{"baseline without results", ReportData{Results: ok, Baseline: &Baseline{}}, "baseline.results"},
		{"invalid baseline", ReportData{Results: ok, Baseline: &Baseline{Results: json.RawMessage(`nope`)}}, "baseline.results"},
		{"invalid baseline status", ReportData{Results: ok, Baseline: &Baseline{Results: ok, Status: json.RawMessage(`[`)}}, "baseline.status"},
	} {
		var b bytes.Buffer
		err := WriteReport(&b, c.d)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one naming %s", c.name, err, c.want)
		}
		if b.Len() != 0 {
			t.Errorf("%s: wrote %d bytes", c.name, b.Len())
		}
	}
	// A null status is as good as none.
	if err := WriteReport(&bytes.Buffer{}, ReportData{Results: ok, Status: json.RawMessage("null")}); err != nil {
		t.Error(err)
	}
}

func TestTestdataDecodes(t *testing.T) {
	for _, name := range []string{"results.json", "results_empty.json", "baseline_results.json", "status.json", "status_running.json", "fleet.json"} {
		var v map[string]any
		if err := json.Unmarshal(readData(t, name), &v); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
