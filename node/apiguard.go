package node

import (
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// guard keeps the local API for local programs. The API has no
// authentication: it trusts whoever can reach its loopback port. A web page
// open in the operator's browser can reach it too, so the guard refuses
// what only a browser sends:
//   - a Host that is not the API's own address (DNS rebinding: a page on
//     evil.example whose name resolves to 127.0.0.1 sends Host: evil.example);
//   - an Origin other than the API's own (a cross-site request; a browser
//     always sends Origin on cross-site POST, PUT and DELETE);
//   - a write without a JSON or YAML Content-Type: the types a page may send
//     cross-site without a preflight (text/plain, forms) are refused, and
//     the preflight that any other type needs is never answered.
//
// The CLI, curl and scripts send none of these, or the right ones.
func (n *Node) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := n.checkLocal(r); err != nil {
			writeError(w, http.StatusForbidden, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (n *Node) checkLocal(r *http.Request) error {
	if !n.ownHost(r.Host) {
		return fmt.Errorf("host %q: this API answers requests for its own address only (%s)", r.Host, n.APIAddr())
	}
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !n.ownHost(u.Host) {
			return fmt.Errorf("origin %q: browser requests from other sites are refused", o)
		}
	}
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return fmt.Errorf("a cross-site browser request is refused")
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return nil
	case http.MethodDelete:
		if r.ContentLength > 0 {
			return fmt.Errorf("%s takes no body", r.Method)
		}
		return nil
	}
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return fmt.Errorf("content-type %q: want application/json or application/yaml", ct)
	}
	switch mt {
	case "application/json", "application/yaml", "application/x-yaml", "text/yaml":
		return nil
	}
	return fmt.Errorf("content-type %q: want application/json or application/yaml", ct)
}

// ownHost reports whether a Host header names this API: its listen
// address, or localhost / a loopback address with its port.
func (n *Node) ownHost(host string) bool {
	addr := n.APIAddr()
	if host == "" || addr == "" {
		return false
	}
	if strings.EqualFold(host, addr) {
		return true
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	h, p, err := net.SplitHostPort(host)
	if err != nil {
		h, p = host, "80"
	}
	if p != port {
		return false
	}
	h = strings.Trim(strings.ToLower(h), "[]")
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	listen, _, _ := net.SplitHostPort(addr)
	lip := net.ParseIP(listen)
	switch {
	case ip == nil:
		return false
	case lip != nil && lip.IsUnspecified():
		return true // the operator chose to listen everywhere: any of this host's addresses
	case ip.IsLoopback() && lip != nil && lip.IsLoopback():
		return true
	}
	return lip != nil && ip.Equal(lip)
}
