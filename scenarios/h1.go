package scenarios

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Transport sends a scenario's requests. HTTP/1.1 (plain or TLS) goes over
// its own connection pool, built for load generation:
//
//   - the request is written and its response read on the caller's
//     goroutine: no reader and writer goroutines per connection, no
//     hand-offs between them, and no read buffer held while a response is
//     awaited (one is lent from a pool once bytes arrive), so that 10,000
//     requests in flight cost little more than 10,000 sockets;
//   - it never opens more connections than its budget: max_in_flight,
//     bounded by the file descriptors the process may open. A request
//     that finds the budget spent waits for a connection to come free
//     (its latency still counts from its scheduled time) and the wait is
//     reported (RoundTripWait), instead of failing with "too many open
//     files";
//   - dials are paced: at most MaxDials at once; a request that would
//     dial beyond that waits for the first connection to come free or
//     the first dial slot, whichever is first, so that a cold start
//     against a fast target opens what the rate needs, not one connection
//     per arrival of the first milliseconds;
//   - idle connections are reused most-recently-used first, so that a
//     burst's extra connections age out rather than being kept warm.
//
// HTTP/2 goes through net/http's transport (TransportConfig.HTTP2).
type Transport struct {
	h2 *http.Transport // HTTP/2: net/http's; nil for HTTP/1.1

	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	tls         *tls.Config
	idleTimeout time.Duration
	timeout     time.Duration // TLS handshake bound
	maxConns    int           // this transport's connection budget
	maxDials    int           // dials in progress at once

	mu      sync.Mutex
	pools   map[poolKey]*pool
	open    int // connections open or being dialed
	dialing int
	nwait   int // requests waiting, all pools
	closed  bool

	dials chan *pool // to idle dialers

	peak    atomic.Int64 // the most connections open at once
	limited atomic.Int64 // requests that waited because the budget was spent
}

// DefaultIdleTimeout is how long an idle connection is kept for reuse.
const DefaultIdleTimeout = 30 * time.Second

type poolKey struct {
	addr string // host:port
	tls  bool
}

// pool holds one target's idle connections and the requests waiting for
// one.
type pool struct {
	key     poolKey
	host    string    // for TLS server name verification
	idle    []*conn   // most recently used last
	waiters []*waiter // FIFO from head; gone ones are skipped
	head    int
	nwait   int // waiters not gone
	dialing int // dials in progress for this target
}

// waiter is a request waiting for a connection: granted one that came
// free or was dialed, or the error of a failed dial.
type waiter struct {
	ch      chan grant
	granted bool
	gone    bool // gave up (its context ended) before a grant
}

type conn struct {
	nc     net.Conn
	pool   *pool
	br     *bufio.Reader // lent while a response is read
	used   time.Time     // when it was last put back
	reused bool          // carried a request before this one
	nread  int64         // bytes read since the request was written
	stop   func() bool   // undoes the context watch of the request in progress

	// first holds the response's first bytes: they are awaited without
	// a lent buffer, and most responses fit.
	first    [512]byte
	off, end int
}

// Read reads what first holds, then the connection.
func (c *conn) Read(p []byte) (int, error) {
	if c.off < c.end {
		n := copy(p, c.first[c.off:c.end])
		c.off += n
		return n, nil
	}
	n, err := c.nc.Read(p)
	c.nread += int64(n)
	return n, err
}

// NewTransport builds the transport a run sends its requests with.
func NewTransport(cfg TransportConfig) *Transport {
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxInFlight
	}
	if cfg.DNSTTL <= 0 {
		cfg.DNSTTL = 30 * time.Second
	}
	dial := checkedDial(cfg)
	tlsConf := &tls.Config{InsecureSkipVerify: cfg.Insecure} //nolint:gosec // opt-in for test targets
	if cfg.HTTP2 {
		return &Transport{h2: newHTTP2Transport(cfg, dial, tlsConf)}
	}
	maxDials := cfg.MaxDials
	if maxDials <= 0 {
		// Enough to open connections as fast as a distant target lets
		// (a 100 ms dial, 1,000 at once: 10,000 a second), few enough
		// that a cold start does not open one per arrival.
		maxDials = min(max(cfg.MaxConns/16, 16), 1024)
	}
	return &Transport{
		dial:        dial,
		tls:         tlsConf,
		idleTimeout: DefaultIdleTimeout,
		timeout:     cfg.Timeout,
		maxConns:    min(cfg.MaxConns, FDBudget()),
		maxDials:    maxDials,
		pools:       map[poolKey]*pool{},
		dials:       make(chan *pool),
	}
}

// MaxConns is the most connections the transport opens at once: the
// in-flight cap it was built with, or the file-descriptor budget when that
// is lower.
func (t *Transport) MaxConns() int {
	if t.h2 != nil {
		return 0
	}
	return t.maxConns
}

// ConnStats says how the transport's connections were used.
type ConnStats struct {
	Budget  int   // MaxConns
	Peak    int   // the most connections open at once
	Limited int64 // requests that waited because Budget connections were busy
}

// Stats returns the connection figures so far.
func (t *Transport) Stats() ConnStats {
	return ConnStats{Budget: t.MaxConns(), Peak: int(t.peak.Load()), Limited: t.limited.Load()}
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, _, err := t.RoundTripWait(req)
	return resp, err
}

// RoundTripWait is RoundTrip that also returns how long the request
// waited for a connection because the transport's connection budget was
// spent (0 when it did not). The response body must be read to its end
// and closed for the connection to be reused.
func (t *Transport) RoundTripWait(req *http.Request) (*http.Response, time.Duration, error) {
	if t.h2 != nil {
		resp, err := t.h2.RoundTrip(req)
		return resp, 0, err
	}
	ctx := req.Context()
	deadline, _ := ctx.Deadline()
	return t.Do(ctx, deadline, req)
}

// Do is RoundTripWait with the request's context and deadline given apart
// (a zero deadline is none): the executor's requests share one context,
// their run's, and need no context of their own.
func (t *Transport) Do(ctx context.Context, deadline time.Time, req *http.Request) (*http.Response, time.Duration, error) {
	if t.h2 != nil {
		cancel := context.CancelFunc(func() {})
		if !deadline.IsZero() {
			ctx, cancel = context.WithDeadline(ctx, deadline)
		}
		resp, err := t.h2.RoundTrip(req.WithContext(ctx))
		if err != nil {
			cancel()
			return nil, 0, err
		}
		// The deadline bounds the body too: it ends when the body is closed.
		resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
		return resp, 0, nil
	}
	u := req.URL
	if u == nil || u.Host == "" {
		closeBody(req)
		return nil, 0, errors.New("http: request has no host")
	}
	var key poolKey
	port := u.Port()
	switch u.Scheme {
	case "http":
		port = cmpOr(port, "80")
	case "https":
		port, key.tls = cmpOr(port, "443"), true
	default:
		closeBody(req)
		return nil, 0, fmt.Errorf("http: unsupported scheme %q", u.Scheme)
	}
	host := u.Hostname()
	key.addr = net.JoinHostPort(host, port)
	var waited time.Duration
	for attempt := 0; ; attempt++ {
		c, wait, err := t.get(ctx, deadline, key, host)
		waited += wait
		if err != nil {
			closeBody(req)
			return nil, waited, err
		}
		resp, err := t.exchange(ctx, deadline, c, req)
		if err == nil {
			return resp, waited, nil
		}
		t.discard(c)
		// A kept-alive connection the server closed while it was idle
		// fails before a byte of response: send again on another, once,
		// when the body can be sent again (as net/http does).
		if attempt == 0 && c.reused && c.nread == 0 && ctx.Err() == nil && staleConnErr(err) {
			if r2, ok := rewind(req); ok {
				req = r2
				continue
			}
		}
		return nil, waited, err
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

// staleConnErr says whether err is how a write to, or a read from, a
// connection the peer has closed fails.
func staleConnErr(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// rewind returns req ready to be sent again, when its body allows.
func rewind(req *http.Request) (*http.Request, bool) {
	if req.Body == nil || req.Body == http.NoBody {
		return req, true
	}
	if req.GetBody == nil {
		return nil, false
	}
	b, err := req.GetBody()
	if err != nil {
		return nil, false
	}
	r2 := *req
	r2.Body = b
	return &r2, true
}

// get returns a connection to key: an idle one, or the first to come
// free, or a new one if the budget allows (dialed on a goroutine of its
// own, so that the request's goroutine keeps a small stack).
func (t *Transport) get(ctx context.Context, deadline time.Time, key poolKey, host string) (*conn, time.Duration, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil, 0, errors.New("http: transport closed")
	}
	p := t.pools[key]
	if p == nil {
		p = &pool{key: key, host: host}
		t.pools[key] = p
	}
	if c := t.popIdleLocked(p); c != nil {
		t.mu.Unlock()
		return c, 0, nil
	}
	w := &waiter{ch: make(chan grant, 1)}
	p.waiters = append(p.waiters, w)
	p.nwait++
	t.nwait++
	if t.open >= t.maxConns && p.nwait > p.dialing {
		t.evictLocked(p) // an idle connection to another target makes room
	}
	t.wakeLocked()
	// No dial of its own, the budget spent: connection-limited. (A wait
	// for a dial slot is pacing, not a limit.)
	limited := p.nwait > p.dialing && (t.open >= t.maxConns || fds.open.Load() >= fds.limit)
	t.mu.Unlock()
	if limited {
		t.limited.Add(1)
	}
	start := time.Now()
	var expired <-chan time.Time
	if !deadline.IsZero() {
		timer := time.NewTimer(time.Until(deadline))
		defer timer.Stop()
		expired = timer.C
	}
	var g grant
	var ended error
	select {
	case g = <-w.ch:
	case <-ctx.Done():
		ended = ctx.Err()
	case <-expired:
		ended = os.ErrDeadlineExceeded
	}
	wait := waitIf(limited, start)
	if ended != nil {
		t.mu.Lock()
		if !w.granted {
			w.gone = true
			p.nwait--
			t.nwait--
			t.mu.Unlock()
			return nil, wait, ended
		}
		t.mu.Unlock()
		// A connection came as the wait ended: hand it on.
		if late := <-w.ch; late.c != nil {
			t.put(late.c)
		}
		return nil, wait, ended
	}
	return g.c, wait, g.err
}

// grant is what a waiter gets: a connection, or the error of the dial
// made for it.
type grant struct {
	c   *conn
	err error
}

func waitIf(limited bool, start time.Time) time.Duration {
	if !limited {
		return 0
	}
	return time.Since(start)
}

func (t *Transport) popIdleLocked(p *pool) *conn {
	for len(p.idle) > 0 {
		c := p.idle[len(p.idle)-1]
		p.idle[len(p.idle)-1] = nil
		p.idle = p.idle[:len(p.idle)-1]
		if time.Since(c.used) < t.idleTimeout {
			c.reused = true
			return c
		}
		t.closeLocked(c)
	}
	return nil
}

// evictLocked closes the longest-idle connection of a pool other than p.
func (t *Transport) evictLocked(p *pool) {
	for _, o := range t.pools {
		if o != p && len(o.idle) > 0 {
			c := o.idle[0]
			o.idle = append(o.idle[:0], o.idle[1:]...)
			t.closeLocked(c)
			return
		}
	}
}

// wakeLocked starts dials for waiters that no dial in progress will serve,
// while the budget allows.
func (t *Transport) wakeLocked() {
	if t.nwait == 0 {
		return
	}
	for _, p := range t.pools {
		for p.nwait > p.dialing && t.open < t.maxConns && t.dialing < t.maxDials && fds.open.Load() < fds.limit {
			t.open++
			t.dialing++
			p.dialing++
			fds.open.Add(1)
			if int64(t.open) > t.peak.Load() {
				t.peak.Store(int64(t.open))
			}
			select {
			case t.dials <- p: // an idle dialer takes it
			default:
				go t.dialer(p)
			}
		}
	}
}

// dialer dials for pools until it has been idle for a while. Dialers are
// reused, as workers are: a new goroutine per dial would grow a new stack
// for each of the thousands a ramp opens.
func (t *Transport) dialer(p *pool) {
	idle := time.NewTimer(dialerIdle)
	defer idle.Stop()
	for {
		t.dialFor(p)
		idle.Reset(dialerIdle)
		select {
		case p = <-t.dials:
		case <-idle.C:
			return
		}
	}
}

const dialerIdle = 2 * time.Second

// dialFor opens a connection to p's target and hands it to its first
// waiter; a failed dial fails that waiter.
func (t *Transport) dialFor(p *pool) {
	c, err := t.dialConn(p)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.dialing--
	p.dialing--
	if err != nil {
		t.open--
		fds.open.Add(-1)
		if p.nwait > 0 {
			w := p.popWaiter()
			t.nwait--
			w.granted = true
			w.ch <- grant{err: err}
		}
		t.wakeLocked()
		return
	}
	t.putLocked(c)
	t.wakeLocked()
}

func (t *Transport) dialConn(p *pool) (*conn, error) {
	// The dial is bounded by the dialer's own timeout (the scenario's),
	// not by the request it was started for: another may use it.
	nc, err := t.dial(context.Background(), "tcp", p.key.addr)
	if err == nil && p.key.tls {
		conf := t.tls.Clone()
		if conf.ServerName == "" {
			conf.ServerName = p.host
		}
		conf.NextProtos = []string{"http/1.1"}
		tc := tls.Client(nc, conf)
		ctx, cancel := context.WithTimeout(context.Background(), t.timeout)
		err = tc.HandshakeContext(ctx)
		cancel()
		if err != nil {
			nc.Close()
		}
		nc = tc
	}
	if err != nil {
		return nil, err
	}
	return &conn{nc: nc, pool: p}, nil
}

func (p *pool) popWaiter() *waiter {
	for {
		w := p.waiters[p.head]
		p.waiters[p.head] = nil
		p.head++
		if p.head == len(p.waiters) {
			p.waiters, p.head = p.waiters[:0], 0
		} else if p.head > 1024 && p.head*2 > len(p.waiters) {
			n := copy(p.waiters, p.waiters[p.head:])
			p.waiters, p.head = p.waiters[:n], 0
		}
		if !w.gone {
			p.nwait--
			return w
		}
	}
}

// put hands a connection whose exchange ended cleanly to the first waiter
// for its target, or keeps it idle.
func (t *Transport) put(c *conn) {
	t.mu.Lock()
	t.putLocked(c)
	t.mu.Unlock()
}

func (t *Transport) putLocked(c *conn) {
	p := c.pool
	if t.closed {
		t.closeLocked(c)
		return
	}
	if p.nwait > 0 {
		w := p.popWaiter()
		t.nwait--
		w.granted = true
		w.ch <- grant{c: c}
		return
	}
	if t.nwait > 0 && t.open >= t.maxConns {
		// Requests to another target wait for the budget: make room.
		t.closeLocked(c)
		return
	}
	c.used = time.Now()
	p.idle = append(p.idle, c)
	// The longest idle may have been closed by the server long ago.
	if o := p.idle[0]; c.used.Sub(o.used) > t.idleTimeout {
		p.idle = append(p.idle[:0], p.idle[1:]...)
		t.closeLocked(o)
	}
}

// discard closes a connection that cannot be reused.
func (t *Transport) discard(c *conn) {
	t.mu.Lock()
	t.closeLocked(c)
	t.mu.Unlock()
}

func (t *Transport) closeLocked(c *conn) {
	c.nc.Close()
	t.open--
	fds.open.Add(-1)
	t.wakeLocked()
}

// CloseIdleConnections closes the idle connections; later requests open
// new ones.
func (t *Transport) CloseIdleConnections() {
	if t.h2 != nil {
		t.h2.CloseIdleConnections()
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range t.pools {
		for _, c := range p.idle {
			t.closeLocked(c)
		}
		p.idle = nil
	}
}

// Warm opens up to n connections to u's target ahead of a run, so that its
// first arrivals find connections as later ones do, rather than all
// dialing at once. It returns when they are open or ctx ends; a failed
// dial ends it quietly (the run's requests will report the failure).
func (t *Transport) Warm(ctx context.Context, u *url.URL, n int) {
	if t.h2 != nil || u == nil || n <= 0 {
		return
	}
	var key poolKey
	switch u.Scheme {
	case "http":
		key.addr = net.JoinHostPort(u.Hostname(), cmpOr(u.Port(), "80"))
	case "https":
		key.addr, key.tls = net.JoinHostPort(u.Hostname(), cmpOr(u.Port(), "443")), true
	default:
		return
	}
	n = min(n, t.maxConns/2)
	conns := make(chan *conn, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if c, _, err := t.get(ctx, time.Time{}, key, u.Hostname()); err == nil {
				conns <- c
			}
		})
	}
	wg.Wait()
	close(conns)
	for c := range conns {
		t.put(c)
	}
}

// aLongTimeAgo is a deadline that makes pending I/O fail at once.
var aLongTimeAgo = time.Unix(1, 0)

// exchange writes req on c and reads the response's head. The body is
// read by the caller; c is put back or closed when the body ends.
func (t *Transport) exchange(ctx context.Context, deadline time.Time, c *conn, req *http.Request) (*http.Response, error) {
	if err := c.nc.SetDeadline(deadline); err != nil {
		return nil, err
	}
	c.stop = nil
	if ctx.Done() != nil {
		nc := c.nc
		c.stop = context.AfterFunc(ctx, func() { nc.SetDeadline(aLongTimeAgo) })
	}
	c.nread = 0
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(c.nc)
	err := writeRequest(bw, req)
	if err == nil {
		err = bw.Flush()
	}
	bw.Reset(nil)
	writers.Put(bw)
	if err != nil {
		c.unwatch()
		return nil, err
	}
	// Wait for the response's first bytes in the connection's own small
	// array: a read buffer is lent only once there is something to read.
	n, err := c.nc.Read(c.first[:])
	c.nread += int64(n)
	c.off, c.end = 0, n
	if n == 0 {
		c.unwatch()
		if err == nil {
			err = io.ErrNoProgress
		}
		return nil, err
	}
	br := readers.Get().(*bufio.Reader)
	br.Reset(c)
	c.br = br
	for {
		resp, err := readResponse(br, req)
		if err != nil {
			c.unwatch()
			c.releaseReader()
			return nil, err
		}
		if resp.StatusCode >= 100 && resp.StatusCode < 200 && resp.StatusCode != http.StatusSwitchingProtocols {
			continue // an interim response: the final one follows
		}
		keep := !resp.Close && !req.Close && resp.StatusCode != http.StatusSwitchingProtocols
		resp.Body = &body{t: t, c: c, r: resp.Body, keep: keep}
		return resp, nil
	}
}

// unwatch stops watching the request's context; false means it ended,
// and the connection's deadline has been (or is being) set into the past.
func (c *conn) unwatch() bool {
	if c.stop == nil {
		return true
	}
	ok := c.stop()
	c.stop = nil
	return ok
}

func (c *conn) releaseReader() {
	if c.br != nil {
		c.br.Reset(nil)
		readers.Put(c.br)
		c.br = nil
	}
}

var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
)

var errBodyClosed = errors.New("http: read on closed response body")

// body is a response body on a pooled connection: at its end, the
// connection goes back to the pool; closed early, it is closed.
type body struct {
	t    *Transport
	c    *conn
	r    io.ReadCloser // nil once released
	keep bool          // the connection may carry another request
	err  error         // what reads return once released
}

func (b *body) Read(p []byte) (int, error) {
	if b.r == nil {
		return 0, b.err
	}
	n, err := b.r.Read(p)
	if err == io.EOF {
		b.release(true)
		b.err = io.EOF
	}
	return n, err
}

func (b *body) Close() error {
	if b.r != nil {
		b.release(false)
	}
	b.err = errBodyClosed
	return nil
}

// release ends the exchange: the connection is reused when the body was
// read to its end, nothing else came after it, and the request's context
// did not end meanwhile.
func (b *body) release(atEOF bool) {
	b.r = nil
	c := b.c
	clean := c.unwatch()
	reuse := atEOF && b.keep && clean && c.br.Buffered() == 0
	c.releaseReader()
	if reuse {
		b.t.put(c)
	} else {
		b.t.discard(c)
	}
}

// fds is the process's file-descriptor budget for connections, shared by
// every transport: a node may run several tests at once.
var fds = struct {
	limit int64
	open  atomic.Int64
}{limit: fdBudget()}

// FDBudget is how many connections the process may open: the open files
// limit (which Go raises to its hard limit at start) minus the files open
// when the process started and a margin for everything else a node opens
// (its store, its peers, its API).
func FDBudget() int { return int(fds.limit) }

func fdBudget() int64 {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<30 {
		return 1 << 30
	}
	used := 0
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		used = len(ents)
	}
	margin := max(64, int64(rl.Cur)/20)
	return max(int64(rl.Cur)-int64(used)-margin, 16)
}
