package scenarios

import (
	"context"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"time"

	"go.yaml.in/yaml/v3"
)

// Sessions: what makes a flow of requests one user's visit. A cookie jar
// per arrival (cookies a response sets go with the arrival's next
// requests), redirects followed up to a limit, and think time between
// steps. Every hop of a redirect dials through the same transport, so the
// node's target policy checks each host and address again before a packet
// leaves: a redirect to a host outside the allow-list fails with class
// "policy".

// Session limits and defaults.
const (
	DefaultRedirects = 10 // as browsers and k6
	MaxRedirects     = 50
	MaxThink         = 10 * time.Minute
	redirectDrain    = 64 << 10 // bytes of a redirect's body read to reuse its connection
)

// ThinkSpec is the pause after a step before the next one of the same
// arrival: "2s", or {min: 1s, max: 3s} for a uniform draw. It holds no
// connection and is not part of any latency.
type ThinkSpec struct {
	Min Duration `yaml:"min" json:"min,omitempty"`
	Max Duration `yaml:"max" json:"max,omitempty"`
}

// UnmarshalYAML accepts "2s" as well as {min: 1s, max: 3s}.
func (t *ThinkSpec) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		var d Duration
		if err := d.UnmarshalYAML(n); err != nil {
			return err
		}
		t.Min, t.Max = d, d
		return nil
	}
	type plain ThinkSpec
	return n.Decode((*plain)(t))
}

// Think is a compiled ThinkSpec.
type Think struct{ Min, Max time.Duration }

// draw is one pause.
func (t Think) draw() time.Duration {
	if t.Max <= t.Min {
		return t.Min
	}
	return t.Min + time.Duration(mrand.Int64N(int64(t.Max-t.Min)+1))
}

func compileThink(errs *problems, path string, t *ThinkSpec) Think {
	if t == nil {
		return Think{}
	}
	min, max := t.Min.D(), t.Max.D()
	if max == 0 {
		max = min
	}
	switch {
	case min < 0 || max < 0:
		errs.add(path, "must be >= 0")
	case max < min:
		errs.add(path, "max %s is less than min %s", max, min)
	case max > MaxThink:
		errs.add(path, "%s is over the limit of %s", max, MaxThink)
	default:
		return Think{Min: min, Max: max}
	}
	return Think{}
}

func compileRedirects(errs *problems, path string, v *int, def int) int {
	if v == nil {
		return def
	}
	if *v < 0 || *v > MaxRedirects {
		errs.add(path, "%d: must be 0 (do not follow) to %d", *v, MaxRedirects)
		return def
	}
	return *v
}

// isRedirect reports whether a status asks to follow Location.
func isRedirect(code int) bool {
	switch code {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// errTooManyRedirects is a flow that kept redirecting.
var errTooManyRedirects = errors.New("too many redirects")

// roundTrip sends req with the arrival's cookies and follows up to
// st.Redirects redirects. It returns the last response and the request
// that got it, and the bytes read of the bodies of the redirects.
func (w *worker) roundTrip(st *Step, req *http.Request) (*http.Response, *http.Request, int64, error) {
	var drained int64
	for hop := 0; ; hop++ {
		if w.jar != nil {
			for _, c := range w.jar.Cookies(req.URL) {
				req.AddCookie(c)
			}
		}
		resp, err := w.send(req)
		if err != nil {
			return resp, req, drained, err
		}
		if w.e.sc.Cookies {
			if cs := resp.Cookies(); len(cs) > 0 {
				if w.jar == nil {
					w.jar, _ = cookiejar.New(nil) // never fails without options
				}
				w.jar.SetCookies(req.URL, cs)
			}
		}
		loc := resp.Header.Get("Location")
		if st.Redirects == 0 || !isRedirect(resp.StatusCode) || loc == "" {
			return resp, req, drained, nil
		}
		next, perr := req.URL.Parse(loc)
		n, _ := io.Copy(io.Discard, io.LimitReader(resp.Body, redirectDrain))
		drained += n
		resp.Body.Close()
		switch {
		case perr != nil:
			return nil, req, drained, fmt.Errorf("redirect to %q: %w", loc, perr)
		case next.Scheme != "http" && next.Scheme != "https":
			return nil, req, drained, fmt.Errorf("redirect to %q: scheme %q", loc, next.Scheme)
		case hop >= st.Redirects:
			return nil, req, drained, fmt.Errorf("%w: stopped after %d", errTooManyRedirects, st.Redirects)
		}
		// As browsers do: 301, 302 and 303 go on with GET and no body (but
		// HEAD stays HEAD); 307 and 308 repeat the method and the body.
		method, keepBody := req.Method, true
		if resp.StatusCode <= http.StatusSeeOther && method != http.MethodHead {
			method, keepBody = http.MethodGet, false
		}
		nreq := &http.Request{Method: method, URL: next, Host: next.Host, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: req.Header.Clone()}
		nreq.Header.Del("Cookie") // the jar's, for the new URL
		if next.Host != req.URL.Host {
			nreq.Header.Del("Authorization") // credentials stay with their host
		}
		if keepBody && req.GetBody != nil {
			b, err := req.GetBody()
			if err != nil {
				return nil, req, drained, fmt.Errorf("redirect: body: %w", err)
			}
			nreq.Body, nreq.ContentLength, nreq.GetBody = b, req.ContentLength, req.GetBody
		} else {
			nreq.Header.Del("Content-Type")
			nreq.Header.Del("Content-Length")
		}
		req = nreq
	}
}

// send sends one request of the step in flight, bounded by the step's
// deadline (the same for every hop of a redirect chain); a wait for a
// connection (the budget spent) is added to w.connWait.
func (w *worker) send(req *http.Request) (*http.Response, error) {
	if t := w.e.h1; t != nil {
		resp, wait, err := t.Do(w.e.ctx, w.deadline, req)
		w.connWait += wait
		return resp, err
	}
	ctx, cancel := context.WithDeadline(w.e.ctx, w.deadline)
	resp, err := w.e.rt.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// cancelBody ends its request's context when it is closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}
