package browsertest

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestBrowserSeesProblemsAndRequests: the harness the dashboard tests
// trust must catch a console error, an uncaught exception and every
// request a page makes.
func TestBrowserSeesProblemsAndRequests(t *testing.T) {
	b := Start(t, 800, 600)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/":
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte(`<!doctype html><title>t</title><script>
console.error("boom", 42); fetch("/side").then(r => r.text()).then(t => { document.title = t });
setTimeout(() => { null.x }, 0);</script>`))
		case "/side":
			w.Write([]byte("fetched"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	b.Do(t, 10*time.Second, chromedp.Navigate(srv.URL+"/"))
	b.WaitFor(t, 5*time.Second, "the fetch", `document.title == "fetched"`, "document.title")
	if got := Eval[int](t, b, "6*7"); got != 42 {
		t.Fatalf("eval: %d", got)
	}
	b.WaitFor(t, 5*time.Second, "nothing", "true", "")
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		p := strings.Join(b.Problems(), "\n")
		if strings.Contains(p, "boom") && strings.Contains(p, "uncaught") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	p := strings.Join(b.Problems(), "\n")
	if !strings.Contains(p, "boom") || !strings.Contains(p, "uncaught") {
		t.Fatalf("problems: %q", p)
	}
	reqs := strings.Join(b.Requests(), "\n")
	if !strings.Contains(reqs, srv.URL+"/side") {
		t.Fatalf("requests: %q", reqs)
	}
}
