package scenarios

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
)

// maxResponseHead bounds a response's status line and headers, as
// net/http's transport does by default (MaxResponseHeaderBytes).
const maxResponseHead = 1 << 20

// readResponse reads one HTTP/1.x response head from br and frames its
// body, as http.ReadResponse does, with a fraction of its allocations: the
// generator's main cost after the system calls. Interim (1xx) responses
// are returned like any other; the caller skips them.
func readResponse(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	budget := maxResponseHead
	line, err := readLine(br, &budget)
	if err != nil {
		return nil, err
	}
	resp := &http.Response{Request: req}
	if err := parseStatusLine(line, resp); err != nil {
		return nil, err
	}
	// Header lines go into one backing array of values: one allocation
	// for all of them, rather than one per header.
	var lines [][]byte
	for {
		line, err := readLine(br, &budget)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			return nil, errors.New("malformed HTTP response: obsolete line folding")
		}
		lines = append(lines, line)
	}
	resp.Header = make(http.Header, len(lines))
	vals := make([]string, len(lines))
	for i, l := range lines {
		k, v, ok := bytes.Cut(l, []byte{':'})
		if !ok || len(k) == 0 || !validHeaderKey(k) {
			return nil, fmt.Errorf("malformed HTTP response header %q", l)
		}
		v = bytes.Trim(v, " \t")
		if !validHeaderValue(v) {
			return nil, fmt.Errorf("malformed HTTP response header value %q", l)
		}
		key := canonicalKey(k)
		if internable[key] {
			vals[i] = internValue(v)
		} else {
			vals[i] = string(v)
		}
		if old, ok := resp.Header[key]; ok {
			resp.Header[key] = append(old, vals[i])
		} else {
			resp.Header[key] = vals[i : i+1 : i+1]
		}
	}
	if err := frameBody(br, req, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// readLine returns the next line without its CRLF (or LF), valid until
// the next read; lines longer than the reader's buffer are copied.
func readLine(br *bufio.Reader, budget *int) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	var long []byte
	for err == bufio.ErrBufferFull {
		long = append(long, line...)
		if len(long) > *budget {
			return nil, errors.New("HTTP response head too long")
		}
		line, err = br.ReadSlice('\n')
	}
	if long != nil {
		line = append(long, line...)
	}
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if *budget -= len(line); *budget < 0 {
		return nil, errors.New("HTTP response head too long")
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}

func parseStatusLine(line []byte, resp *http.Response) error {
	// "HTTP/1.1 200 OK": the reason may be missing.
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' ||
		(line[7] != '0' && line[7] != '1') || (len(line) > 12 && line[12] != ' ') {
		return fmt.Errorf("malformed HTTP status line %q", line)
	}
	code := 0
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return fmt.Errorf("malformed HTTP status code %q", line[9:12])
		}
		code = code*10 + int(c-'0')
	}
	if code < 100 {
		return fmt.Errorf("malformed HTTP status code %q", line[9:12])
	}
	resp.StatusCode = code
	resp.ProtoMajor, resp.ProtoMinor = 1, int(line[7]-'0')
	resp.Proto = [...]string{"HTTP/1.0", "HTTP/1.1"}[resp.ProtoMinor]
	resp.Status = internValue(line[9:])
	return nil
}

// validHeaderKey says whether k is a token (RFC 9110, 5.6.2).
func validHeaderKey(k []byte) bool {
	for _, c := range k {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// validHeaderValue refuses control characters but tab.
func validHeaderValue(v []byte) bool {
	for _, c := range v {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// frameBody sets resp's Body, ContentLength, Close and TransferEncoding
// from its status, headers and the request's method (RFC 9112, 6.3).
func frameBody(br *bufio.Reader, req *http.Request, resp *http.Response) error {
	h := resp.Header
	resp.Close = resp.ProtoMinor == 0 && !headerHasToken(h["Connection"], "keep-alive")
	if headerHasToken(h["Connection"], "close") {
		resp.Close = true
		h.Del("Connection") // as net/http does: Close says it
	}
	noBody := req.Method == http.MethodHead || resp.StatusCode/100 == 1 ||
		resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified
	// As net/http: the Transfer-Encoding header goes (TransferEncoding
	// says it); HTTP/1.0 ignores it; HTTP/1.1 knows only chunked.
	te, chunked := h["Transfer-Encoding"], false
	if te != nil {
		delete(h, "Transfer-Encoding")
		if resp.ProtoMinor == 1 {
			if len(te) != 1 || !asciiEqualFold(te[0], "chunked") {
				return fmt.Errorf("unsupported transfer encoding %q", te)
			}
			chunked = true
		}
	}
	cl := h["Content-Length"]
	resp.ContentLength = -1
	if len(cl) > 0 {
		n, err := parseContentLength(cl)
		if err != nil {
			return err
		}
		resp.ContentLength = n
	}
	switch {
	case noBody:
		resp.Body = http.NoBody
		if req.Method != http.MethodHead {
			resp.ContentLength = 0
		}
	case chunked:
		if len(cl) > 0 {
			resp.Close = true // both: suspect framing, do not reuse
		}
		resp.TransferEncoding = []string{"chunked"}
		resp.ContentLength = -1
		h.Del("Content-Length")
		resp.Body = &chunkedBody{br: br, r: httputil.NewChunkedReader(br)}
	case resp.ContentLength >= 0:
		if resp.ContentLength == 0 {
			resp.Body = http.NoBody
		} else {
			resp.Body = &lengthBody{br: br, n: resp.ContentLength}
		}
	default:
		// Delimited by the end of the connection.
		resp.Close = true
		resp.Body = io.NopCloser(br)
	}
	return nil
}

func parseContentLength(vs []string) (int64, error) {
	var n int64 = -1
	for _, v := range vs {
		m, err := strconv.ParseUint(textproto.TrimString(v), 10, 63)
		if err != nil {
			return 0, fmt.Errorf("bad Content-Length %q", v)
		}
		if n >= 0 && int64(m) != n {
			return 0, fmt.Errorf("conflicting Content-Length values %q", vs)
		}
		n = int64(m)
	}
	return n, nil
}

func headerHasToken(vs []string, token string) bool {
	for _, v := range vs {
		for len(v) > 0 {
			var t string
			if i := indexByte(v, ','); i >= 0 {
				t, v = v[:i], v[i+1:]
			} else {
				t, v = v, ""
			}
			if asciiEqualFold(textproto.TrimString(t), token) {
				return true
			}
		}
	}
	return false
}

func indexByte(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

func asciiEqualFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// lengthBody reads a Content-Length body.
type lengthBody struct {
	br *bufio.Reader
	n  int64
}

func (b *lengthBody) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.br.Read(p)
	b.n -= int64(n)
	if b.n > 0 && err == io.EOF {
		err = io.ErrUnexpectedEOF
	} else if b.n == 0 && err == nil {
		err = io.EOF
	}
	return n, err
}

func (b *lengthBody) Close() error { return nil }

// chunkedBody reads a chunked body and, at its end, the trailer section,
// so that the connection is left at the next response.
type chunkedBody struct {
	br   *bufio.Reader
	r    io.Reader
	done bool
}

func (b *chunkedBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.r.Read(p)
	if err == io.EOF {
		budget := maxResponseHead
		for {
			line, lerr := readLine(b.br, &budget)
			if lerr != nil {
				if lerr == io.EOF {
					lerr = io.ErrUnexpectedEOF
				}
				return n, lerr
			}
			if len(line) == 0 {
				break
			}
		}
		b.done = true
	}
	return n, err
}

func (b *chunkedBody) Close() error { return nil }

// Header names and values a target sends again and again are interned:
// a run sends the same requests to the same endpoints.
var (
	internMu   sync.RWMutex
	internKeys = map[string]string{}
	internVals = map[string]string{}
)

const maxInterned = 4096

// internable are the headers whose values repeat (not Date, cookies,
// validators).
var internable = map[string]bool{
	"Content-Type": true, "Content-Length": true, "Connection": true, "Server": true,
	"Cache-Control": true, "Vary": true, "Content-Encoding": true, "Transfer-Encoding": true,
	"Keep-Alive": true, "Access-Control-Allow-Origin": true, "X-Content-Type-Options": true,
}

func canonicalKey(k []byte) string {
	internMu.RLock()
	s, ok := internKeys[string(k)]
	internMu.RUnlock()
	if ok {
		return s
	}
	s = textproto.CanonicalMIMEHeaderKey(string(k))
	internMu.Lock()
	if len(internKeys) < maxInterned {
		internKeys[string(k)] = s
	}
	internMu.Unlock()
	return s
}

// internValue returns v as a string, shared with earlier equal values
// when it is short.
func internValue(v []byte) string {
	if len(v) > 64 {
		return string(v)
	}
	internMu.RLock()
	s, ok := internVals[string(v)]
	internMu.RUnlock()
	if ok {
		return s
	}
	s = string(v)
	internMu.Lock()
	if len(internVals) < maxInterned {
		internVals[s] = s
	}
	internMu.Unlock()
	return s
}

// writeRequest writes req's head and body to bw as HTTP/1.1, as
// req.Write does for the requests a scenario makes, without its
// formatting and sorting; what it does not handle (a body of unknown
// length, trailers, an opaque URL) goes to req.Write. Header names and
// values are checked as net/http's transport checks them: a CR or LF in a
// templated value must not split the request.
func writeRequest(bw *bufio.Writer, req *http.Request) error {
	u := req.URL
	hasBody := req.Body != nil && req.Body != http.NoBody
	if u.Opaque != "" || len(req.TransferEncoding) > 0 || len(req.Trailer) > 0 || req.Close ||
		(hasBody && req.ContentLength <= 0) {
		return req.Write(bw)
	}
	host := req.Host
	if host == "" {
		host = u.Host
	}
	if !validHeaderValue([]byte(host)) || strings.ContainsAny(host, " /") {
		return fmt.Errorf("http: invalid Host %q", host)
	}
	method := cmpOr(req.Method, http.MethodGet)
	if !validHeaderKey([]byte(method)) {
		return fmt.Errorf("http: invalid method %q", method)
	}
	bw.WriteString(method)
	bw.WriteByte(' ')
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	bw.WriteString(path)
	if u.ForceQuery || u.RawQuery != "" {
		bw.WriteByte('?')
		bw.WriteString(u.RawQuery)
	}
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host)
	bw.WriteString("\r\n")
	if _, ok := req.Header["User-Agent"]; !ok {
		bw.WriteString("User-Agent: Go-http-client/1.1\r\n")
	}
	switch {
	case hasBody:
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), req.ContentLength, 10))
		bw.WriteString("\r\n")
	case req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch:
		bw.WriteString("Content-Length: 0\r\n")
	}
	for k, vs := range req.Header {
		switch k {
		case "Host", "Content-Length", "Transfer-Encoding", "Trailer":
			continue
		}
		if !validHeaderKey([]byte(k)) {
			return fmt.Errorf("http: invalid header name %q", k)
		}
		for _, v := range vs {
			if !validHeaderValue([]byte(v)) {
				return fmt.Errorf("http: invalid value for header %q", k)
			}
			if k == "User-Agent" && v == "" {
				continue // an empty User-Agent means none, as in net/http
			}
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	bw.WriteString("\r\n")
	if hasBody {
		n, err := io.Copy(bw, req.Body)
		req.Body.Close()
		if err != nil {
			return err
		}
		if n != req.ContentLength {
			return fmt.Errorf("http: body length %d, Content-Length %d", n, req.ContentLength)
		}
	}
	return nil
}
