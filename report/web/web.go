// Vendored: uPlot v1.6.32 (MIT, https://github.com/leeoniya/uPlot), from npm `uplot@1.6.32`:
// assets/uPlot.iife.min.js, assets/uPlot.min.css, assets/LICENSE-uPlot.

// Package web is Loadswarm's browser front end: the live dashboard a node
// serves at /ui, and the self-contained HTML report `swarm report` writes.
// Both run the same script (assets/app.js): a page that holds a
// #loadswarm-data element is a report and never touches the network; any
// other page is the live dashboard and reads the node's /v1/stream.
package web

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"strings"
	"time"
)

//go:embed assets
var assets embed.FS

// LiveCSP is the Content-Security-Policy of every /ui response. No other
// site may frame the page: a framed stop button could be clicked by a
// visitor who thinks they click something else.
const LiveCSP = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"

// ReportCSP is the Content-Security-Policy a report file declares: it can
// run its own inline code and nothing else, and make no network request.
const ReportCSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"

// types are the files the handler serves (under /ui/) and their types.
var types = map[string]string{
	"index.html":        "text/html; charset=utf-8",
	"app.js":            "text/javascript; charset=utf-8",
	"app.css":           "text/css; charset=utf-8",
	"uPlot.iife.min.js": "text/javascript; charset=utf-8",
	"uPlot.min.css":     "text/css; charset=utf-8",
	"LICENSE-uPlot":     "text/plain; charset=utf-8",
}

// Handler serves the dashboard: GET /ui and /ui/ give index.html, and
// /ui/<name> the other embedded assets. It expects the full path (mount it
// at both "/ui" and "/ui/", without http.StripPrefix). Anything else is 404.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var name string
		switch p := r.URL.Path; {
		case p == "/ui" || p == "/ui/":
			name = "index.html"
		case strings.HasPrefix(p, "/ui/"):
			name = p[len("/ui/"):]
		}
		ct, ok := types[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		b, err := assets.ReadFile("assets/" + name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", ct)
		h.Set("Cache-Control", "no-cache")
		h.Set("Content-Security-Policy", LiveCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Length", fmt.Sprint(len(b)))
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			w.Write(b)
		}
	})
}

// ReportData is what a report file holds. Raw JSON is the node API's own
// JSON, passed through.
type ReportData struct {
	Generated time.Time       `json:"generated"`
	Generator string          `json:"generator"`        // e.g. "swarm v0.3.0"
	Status    json.RawMessage `json:"status,omitempty"` // GET /v1/tests/{id}?by=node (may be absent/null)
	Results   json.RawMessage `json:"results"`          // GET /v1/tests/{id}/results?by=region,node,step&exemplars=1
	Baseline  *Baseline       `json:"baseline,omitempty"`
}

// Baseline is an earlier run to compare a report with.
type Baseline struct {
	Status  json.RawMessage `json:"status,omitempty"`
	Results json.RawMessage `json:"results"`
}

// checkObject says what is wrong with a raw JSON field that must hold an
// object (required: it may not be absent or null).
func checkObject(field string, raw json.RawMessage, required bool) error {
	t := bytes.TrimSpace(raw)
	if len(t) == 0 || string(t) == "null" {
		if required {
			return fmt.Errorf("web: report: %s: empty", field)
		}
		return nil
	}
	if !json.Valid(t) {
		return fmt.Errorf("web: report: %s: invalid JSON", field)
	}
	if t[0] != '{' {
		return fmt.Errorf("web: report: %s: want a JSON object", field)
	}
	return nil
}

// inline makes text safe to sit inside a <script> or <style> element: no
// "</" can close it and no "<!--" can change how it is parsed. In JS and
// JSON strings and in CSS, "<\/" still reads as "</".
func inline(s string) string {
	s = strings.ReplaceAll(s, "</", `<\/`)
	return strings.ReplaceAll(s, "<!--", `<\!--`)
}

func asset(name string) string {
	b, err := assets.ReadFile("assets/" + name)
	if err != nil {
		panic("web: embedded asset missing: " + name) // a build error
	}
	return string(b)
}

// WriteReport writes d as one self-contained HTML file: styles, scripts
// and data inline, a Content-Security-Policy that forbids any network
// request, and the uPlot licence at the bottom.
func WriteReport(w io.Writer, d ReportData) error {
	if err := checkObject("results", d.Results, true); err != nil {
		return err
	}
	if err := checkObject("status", d.Status, false); err != nil {
		return err
	}
	if d.Baseline != nil {
		if err := checkObject("baseline.results", d.Baseline.Results, true); err != nil {
			return err
		}
		if err := checkObject("baseline.status", d.Baseline.Status, false); err != nil {
			return err
		}
	}
	// Marshal compacts the raw fields and escapes <, > and & in them.
	data, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("web: report: %w", err)
	}
	var head struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}
	_ = json.Unmarshal(d.Results, &head) // checked above; fields may be absent
	title := "Loadswarm report"
	switch {
	case head.Name != "" && head.ID != "":
		title += ": " + head.Name + " (" + head.ID + ")"
	case head.Name != "" || head.ID != "":
		title += ": " + head.Name + head.ID
	}

	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
	b.WriteString("<meta http-equiv=\"Content-Security-Policy\" content=\"" + ReportCSP + "\">\n")
	b.WriteString("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n")
	b.WriteString("<meta name=\"referrer\" content=\"no-referrer\">\n")
	if d.Generator != "" {
		b.WriteString("<meta name=\"generator\" content=\"" + html.EscapeString(d.Generator) + "\">\n")
	}
	b.WriteString("<title>" + html.EscapeString(title) + "</title>\n")
	b.WriteString("<link rel=\"icon\" href=\"data:,\">\n")
	b.WriteString("<style>\n" + inline(asset("uPlot.min.css")) + "\n</style>\n")
	b.WriteString("<style>\n" + inline(asset("app.css")) + "\n</style>\n")
	b.WriteString("</head>\n<body class=\"report-mode\">\n")
	b.WriteString("<noscript><p>This report needs JavaScript to draw its tables and charts; its data is in the element #loadswarm-data.</p></noscript>\n")
	b.WriteString("<div id=\"app\"></div>\n")
	b.WriteString("<script id=\"loadswarm-data\" type=\"application/json\">" + inline(string(data)) + "</script>\n")
	b.WriteString("<script>\n" + inline(asset("uPlot.iife.min.js")) + "\n</script>\n")
	b.WriteString("<script>\n" + inline(asset("app.js")) + "\n</script>\n")
	b.WriteString("<footer class=\"licences\"><details id=\"licences\"><summary>Third-party licences: uPlot</summary><pre>" +
		html.EscapeString(asset("LICENSE-uPlot")) + "</pre></details></footer>\n")
	b.WriteString("</body>\n</html>\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("web: report: %w", err)
	}
	return nil
}
