package scenarios

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Error classes, the Error field of storage.Dim.
const (
	ErrTimeout = "timeout"
	ErrRefused = "refused"
	ErrReset   = "reset"
	ErrDNS     = "dns"
	ErrTLS     = "tls"
	ErrHTTP4xx = "http_4xx"
	ErrHTTP5xx = "http_5xx"
	ErrCheck   = "check"
	ErrDropped = "dropped" // the in-flight cap was reached: not sent
	// ErrMissed counts arrivals the pacer reached more than
	// RunConfig.MaxLate after their scheduled time (a frozen process):
	// not sent, so that a wake-up never bursts.
	ErrMissed = "missed"
	ErrOther  = "other"
)

// Classify names the class of a transport error.
func Classify(err error) string {
	if err == nil {
		return ""
	}
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var recErr tls.RecordHeaderError
	var unkAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var invalid x509.CertificateInvalidError
	var alert tls.AlertError
	var netErr net.Error
	var targetErr *TargetError
	switch {
	case errors.As(err, &targetErr):
		return ErrPolicy
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return ErrTimeout
	case errors.As(err, &dnsErr):
		return ErrDNS
	case errors.As(err, &certErr), errors.As(err, &recErr), errors.As(err, &unkAuth),
		errors.As(err, &hostErr), errors.As(err, &invalid), errors.As(err, &alert):
		return ErrTLS
	case errors.Is(err, syscall.ECONNREFUSED):
		return ErrRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNABORTED):
		return ErrReset
	case errors.As(err, &netErr) && netErr.Timeout():
		return ErrTimeout
	}
	return ErrOther
}

// StatusClass is "2xx" for 200..299 and so on.
func StatusClass(code int) string {
	if code < 100 || code > 599 {
		return "other"
	}
	return [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}[code/100-1]
}

// TransportConfig tunes the HTTP client of an executor.
type TransportConfig struct {
	HTTP2    bool          // speak HTTP/2 (ALPN on TLS, prior knowledge on http)
	Insecure bool          // skip TLS verification
	Timeout  time.Duration // dial and TLS handshake bound; default 10s
	// MaxConns bounds the connections open at once (HTTP/1.1), or those
	// kept idle per host (HTTP/2); default 1000. The process's
	// file-descriptor budget bounds it too (FDBudget).
	MaxConns int
	// MaxDials bounds the dials in progress at once (HTTP/1.1). Default:
	// MaxConns/16, at least 16 and at most 1024.
	MaxDials int
	// DNSTTL is how long a resolved address is reused. Default 30s.
	DNSTTL time.Duration
	// Dial replaces the network dialer (the testnet wraps it to add a
	// region's latency). Default: a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Allow, when set, vets every host:port before it is resolved and
	// dialed; its error fails the request. Kept for compatibility:
	// Targets checks resolved addresses too.
	Allow func(hostport string) error
	// Targets, when set, is checked on every address a host resolves to,
	// all of them before any is dialed, and the dial goes to the checked
	// address itself, so that DNS cannot rebind in between. A refused
	// target fails the request with a *TargetError, class ErrPolicy.
	// Default: nil, any target.
	Targets *TargetPolicy

	// lookup replaces the resolver in tests.
	lookup func(ctx context.Context, host string) ([]string, error)
}

// checkedDial is the transport's dialer: it vets the target (Allow, then
// Targets on every address the host resolves to) and dials the checked
// address, with a DNS cache.
func checkedDial(cfg TransportConfig) func(ctx context.Context, network, addr string) (net.Conn, error) {
	dial := cfg.Dial
	if dial == nil {
		d := &net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}
		dial = d.DialContext
	}
	cache := &dnsCache{ttl: cfg.DNSTTL, m: map[string]dnsEntry{}, lookup: cfg.lookup}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if cfg.Allow != nil {
			if err := cfg.Allow(addr); err != nil {
				return nil, err
			}
		}
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		addrs, next, err := cache.resolve(ctx, host)
		if err != nil {
			return nil, err
		}
		if cfg.Targets != nil {
			// Every candidate, before any packet: a name with one bad
			// address is refused whole.
			pn, _ := strconv.Atoi(port)
			for _, a := range addrs {
				if err := cfg.Targets.CheckDial(host, net.IP(a.AsSlice()), pn); err != nil {
					return nil, err
				}
			}
		}
		return dial(ctx, network, net.JoinHostPort(addrs[next].String(), port))
	}
}

// newHTTP2Transport is net/http's transport for HTTP/2 (ALPN on TLS, prior
// knowledge on http): kept-alive connections, no compression (measure
// what the server sends), no proxy (a load generator must hit the target).
func newHTTP2Transport(cfg TransportConfig, dial func(ctx context.Context, network, addr string) (net.Conn, error), tlsConf *tls.Config) *http.Transport {
	t := &http.Transport{
		Proxy:                 nil,
		DialContext:           dial,
		TLSClientConfig:       tlsConf,
		TLSHandshakeTimeout:   cfg.Timeout,
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   cfg.MaxConns,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ResponseHeaderTimeout: 0, // the request's context bounds the whole exchange
		WriteBufferSize:       4 << 10,
		ReadBufferSize:        4 << 10,
	}
	var p http.Protocols
	p.SetHTTP2(true)
	p.SetUnencryptedHTTP2(true)
	t.Protocols = &p
	return t
}

// dnsCache resolves host names once per TTL: Go's resolver has no cache,
// and a lookup per new connection would measure DNS, not the target.
type dnsCache struct {
	ttl    time.Duration
	lookup func(ctx context.Context, host string) ([]string, error) // nil: net.DefaultResolver
	mu     sync.Mutex
	m      map[string]dnsEntry
}

type dnsEntry struct {
	addrs   []netip.Addr
	expires time.Time
	next    int
}

// resolve returns host's addresses (the host itself when it is an IP
// literal) and which one to dial: they take turns.
func (c *dnsCache) resolve(ctx context.Context, host string) ([]netip.Addr, int, error) {
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")); err == nil {
		return []netip.Addr{a}, 0, nil
	}
	c.mu.Lock()
	e, ok := c.m[host]
	if ok && time.Now().Before(e.expires) && len(e.addrs) > 0 {
		i := e.next % len(e.addrs)
		e.next++
		c.m[host] = e
		c.mu.Unlock()
		return e.addrs, i, nil
	}
	c.mu.Unlock()
	lookup := c.lookup
	if lookup == nil {
		lookup = net.DefaultResolver.LookupHost
	}
	names, err := lookup(ctx, host)
	if err != nil {
		return nil, 0, err
	}
	addrs := make([]netip.Addr, 0, len(names))
	for _, n := range names {
		a, err := netip.ParseAddr(n)
		if err != nil {
			return nil, 0, &net.DNSError{Err: fmt.Sprintf("bad address %q", n), Name: host}
		}
		addrs = append(addrs, a)
	}
	if len(addrs) == 0 {
		return nil, 0, &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
	}
	c.mu.Lock()
	c.m[host] = dnsEntry{addrs: addrs, expires: time.Now().Add(c.ttl), next: 1}
	c.mu.Unlock()
	return addrs, 0, nil
}
