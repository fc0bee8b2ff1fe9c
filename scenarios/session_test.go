package scenarios

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/loadswarm/loadswarm/storage"
)

// shop is a target with a session: /login sets a cookie and redirects to
// /home, which (like /cart) wants the cookie; /loop redirects to itself,
// /away redirects off the allow-list.
func shop(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var withCookie atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/login", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "sid", Value: "s-42", Path: "/"})
		http.Redirect(w, r, "/home", http.StatusSeeOther)
	})
	needCookie := func(w http.ResponseWriter, r *http.Request) {
		if c, err := r.Cookie("sid"); err != nil || c.Value != "s-42" {
			http.Error(w, "who are you?", http.StatusUnauthorized)
			return
		}
		withCookie.Add(1)
	}
	mux.HandleFunc("/home", needCookie)
	mux.HandleFunc("/cart", needCookie)
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/loop", http.StatusFound) })
	mux.HandleFunc("/slow/", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(150 * time.Millisecond) // each hop of /slow/3 -> /slow/2 -> ... -> /slow/0
		if n := strings.TrimPrefix(r.URL.Path, "/slow/"); n != "0" {
			http.Redirect(w, r, fmt.Sprintf("/slow/%d", int(n[0]-'1')), http.StatusFound)
		}
	})
	mux.HandleFunc("/away", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://10.255.255.1:9/steal", http.StatusFound)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv, &withCookie
}

// runShop runs a 1 s test of the given steps against the shop, with the
// target policy of a node that allows loopback only.
func runShop(t *testing.T, srv *httptest.Server, steps string) (*storage.Series, storage.Summary) {
	t.Helper()
	sc, err := Parse([]byte(fmt.Sprintf("name: s\ntarget: %s\nduration: 1s\nload: {rate: 10}\nrequests:\n%s", srv.URL, steps)))
	if err != nil {
		t.Fatal(err)
	}
	pol, err := ParseTargetPolicy([]string{"127.0.0.0/8"}, Own{})
	if err != nil {
		t.Fatal(err)
	}
	var dialed atomic.Int64
	rt := NewTransport(TransportConfig{Targets: pol, Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if !strings.HasPrefix(addr, "127.") {
			dialed.Add(1) // the policy must refuse before this
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}})
	res, err := Run(context.Background(), RunConfig{Scenario: sc, Transport: rt})
	if err != nil {
		t.Fatal(err)
	}
	if dialed.Load() > 0 {
		t.Fatalf("%d dials left loopback", dialed.Load())
	}
	return res.Series, storage.Summarize(res.Series, nil)
}

func TestSessionCookiesAndRedirects(t *testing.T) {
	srv, withCookie := shop(t)
	_, sum := runShop(t, srv, "  - {name: login, method: POST, path: /login, body: 'u=a', check: 'status == 200'}\n  - {name: cart, path: /cart, check: 'status == 200'}\n")
	if sum.Requests != 20 || sum.Errors != 0 || withCookie.Load() != 20 {
		t.Fatalf("%d requests, %d errors (%v), %d with the session cookie", sum.Requests, sum.Errors, sum.ErrorsByClass, withCookie.Load())
	}
}

func TestSessionRedirectsRefusedAndBounded(t *testing.T) {
	srv, _ := shop(t)
	for _, tc := range []struct {
		steps, class string
	}{
		{"  - {name: away, path: /away}\n", ErrPolicy},
		{"  - {name: loop, path: /loop}\n", ErrOther},
		// The step's timeout bounds the whole chain: 4 hops of 150 ms.
		{"  - {name: slow, path: /slow/3, timeout: 400ms}\n", ErrTimeout},
	} {
		s, sum := runShop(t, srv, tc.steps)
		if sum.Requests != 10 || sum.ErrorsByClass[tc.class] != 10 {
			t.Errorf("%s: %d requests, errors %v; want every one %s (samples %v)", tc.steps, sum.Requests, sum.ErrorsByClass, tc.class, s.Samples)
		}
	}
	// Not followed: the redirect is the response.
	_, sum := runShop(t, srv, "  - {name: loop, path: /loop, redirects: 0, check: 'status == 302'}\n")
	if sum.Errors != 0 || sum.StatusClasses["3xx"] != 10 {
		t.Fatalf("redirects: 0: errors %v, statuses %v", sum.ErrorsByClass, sum.StatusClasses)
	}
	// Without cookies the session is lost after the login.
	sc, err := Parse([]byte("name: s\ntarget: " + srv.URL + "\nduration: 1s\ndefaults: {cookies: false}\nload: {rate: 10}\nrequests: [{name: login, path: /login}, {name: cart, path: /cart}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), RunConfig{Scenario: sc})
	if err != nil {
		t.Fatal(err)
	}
	// The login's redirect to /home fails already: no cookie.
	if sum := storage.Summarize(res.Series, nil); sum.ErrorsByClass[ErrHTTP4xx] != 10 {
		t.Fatalf("cookies: false: errors %v, want 10 of class %s", sum.ErrorsByClass, ErrHTTP4xx)
	}
}

// TestThink: a pause between steps holds no latency: the second step's
// latency stays that of the target, and the arrival takes the pause longer.
func TestThink(t *testing.T) {
	srv, _ := shop(t)
	start := time.Now()
	s, sum := runShop(t, srv, "  - {name: login, path: /login, think: {min: 300ms, max: 400ms}}\n  - {name: cart, path: /cart}\n")
	if sum.Errors != 0 {
		t.Fatalf("errors %v", sum.ErrorsByClass)
	}
	cart := storage.SummarizeBy(s, func(d storage.Dim) string { return d.Step })["cart"]
	if cart.Requests != 10 || cart.Latency.Max > 200 {
		t.Fatalf("cart: %d requests, latency max %.1f ms: the think time leaked into it", cart.Requests, cart.Latency.Max)
	}
	if el := time.Since(start); el < 1200*time.Millisecond {
		t.Fatalf("the run took %s: the last arrival's pause was not taken", el)
	}
}

func TestSessionBadValues(t *testing.T) {
	base := "name: s\ntarget: http://127.0.0.1:1\nduration: 1s\nload: {rate: 1}\n"
	for _, tc := range []struct{ yaml, want string }{
		{"defaults: {redirects: -1}\nrequests: [{name: a}]\n", "defaults.redirects: -1"},
		{"requests: [{name: a, redirects: 51}]\n", "requests[0].redirects: 51"},
		{"requests: [{name: a, think: {min: 2s, max: 1s}}]\n", "requests[0].think: max 1s is less than min 2s"},
		{"requests: [{name: a, think: 11m}]\n", "requests[0].think: 11m0s is over the limit"},
		{"requests: [{name: a, think: 3}]\n", "duration"},
		{"requests: [{name: a, think: {min: -1s}}]\n", "requests[0].think: must be >= 0"},
		{"defaults: {cookies: maybe}\nrequests: [{name: a}]\n", "line"},
		{"flow: weighted\nrequests: [{name: a, think: 1s}]\n", "requests[0].think: a pause between steps needs flow: sequence"},
	} {
		if _, err := Parse([]byte(base + tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.yaml, err, tc.want)
		}
	}
}
