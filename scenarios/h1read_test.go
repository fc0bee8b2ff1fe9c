package scenarios

import (
	"bufio"
	"bytes"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// readBoth parses data with readResponse and with net/http's ReadResponse
// and reads each body whole.
func readBoth(data []byte, method string) (ours, std *http.Response, ob, sb []byte, oerr, serr error) {
	req, _ := http.NewRequest(method, "http://example.test/", nil)
	ours, oerr = readResponse(bufio.NewReader(bytes.NewReader(data)), req)
	if oerr == nil {
		ob, oerr = io.ReadAll(ours.Body)
	}
	std, serr = http.ReadResponse(bufio.NewReader(bytes.NewReader(data)), req)
	if serr == nil {
		sb, serr = io.ReadAll(std.Body)
	}
	return
}

// FuzzReadResponse holds our response reader to net/http's: whatever ours
// accepts, net/http accepts too, with the same status, headers, framing
// and body. (Ours may refuse more: obsolete folding, a transfer coding
// other than chunked.)
func FuzzReadResponse(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nX-T: 1\r\n\r\n",
		"HTTP/1.0 404 Not Found\r\n\r\nbody until close",
		"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc",
		"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
		"HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\nContent-Length: 1\n\nx",
	} {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, data []byte, head bool) {
		method := http.MethodGet
		if head {
			method = http.MethodHead
		}
		ours, std, ob, sb, oerr, serr := readBoth(data, method)
		if oerr != nil {
			return
		}
		if serr != nil {
			t.Fatalf("ours accepts what net/http refuses (%v):\n%q", serr, data)
		}
		if ours.StatusCode != std.StatusCode || ours.Proto != std.Proto || ours.Status != std.Status {
			t.Fatalf("status %d %q %q, net/http %d %q %q", ours.StatusCode, ours.Proto, ours.Status, std.StatusCode, std.Proto, std.Status)
		}
		// Which framing header is kept is cosmetic: the framing itself
		// is compared below.
		ours.Header.Del("Content-Length")
		std.Header.Del("Content-Length")
		if !maps.EqualFunc(ours.Header, std.Header, slices.Equal) {
			t.Fatalf("headers %v, net/http %v", ours.Header, std.Header)
		}
		if ours.ContentLength != std.ContentLength && std.ContentLength >= 0 {
			t.Fatalf("content length %d, net/http %d", ours.ContentLength, std.ContentLength)
		}
		if !bytes.Equal(ob, sb) {
			t.Fatalf("body %q, net/http %q", ob, sb)
		}
		if std.Close && !ours.Close {
			t.Fatalf("net/http would close the connection, ours would keep it")
		}
	})
}

// A kept-alive stream of responses is read one after the other, to the
// byte, whatever their framing.
func TestReadResponseStream(t *testing.T) {
	stream := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" +
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nTrailer: x\r\n\r\n" +
		"HTTP/1.1 100 Continue\r\n\r\n" +
		"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n" +
		"HTTP/1.1 200 OK\r\nX-Long: " + strings.Repeat("v", 10000) + "\r\nContent-Length: 1\r\n\r\nz"
	br := bufio.NewReaderSize(strings.NewReader(stream), 4096)
	req, _ := http.NewRequest(http.MethodGet, "http://example.test/", nil)
	for i, want := range []struct {
		code int
		body string
	}{{200, "ok"}, {200, "abc"}, {100, ""}, {304, ""}, {200, "z"}} {
		resp, err := readResponse(br, req)
		if err != nil {
			t.Fatalf("response %d: %v", i, err)
		}
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != want.code || string(b) != want.body {
			t.Fatalf("response %d: %d %q %v, want %d %q", i, resp.StatusCode, b, err, want.code, want.body)
		}
	}
	if br.Buffered() != 0 {
		t.Fatalf("%d bytes left", br.Buffered())
	}
	for _, bad := range []string{
		"HTTP/1.1 2000 OK\r\n\r\n", "HTTX/1.1 200 OK\r\n\r\n", "HTTP/1.1 200 OK\r\nNoColon\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "HTTP/1.1 200 OK\r\n Folded: x\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("v", maxResponseHead) + "\r\n\r\n",
	} {
		if _, err := readResponse(bufio.NewReader(strings.NewReader(bad)), req); err == nil {
			t.Errorf("%.60q: accepted", bad)
		}
	}
}

// writeRequest says what req.Write says, as a server reads it; a header
// value that would split the request is refused.
func TestWriteRequest(t *testing.T) {
	mk := func(method, url, body string, h map[string]string) *http.Request {
		var r io.Reader
		if body != "" {
			r = strings.NewReader(body)
		}
		req, err := http.NewRequest(method, url, r)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range h {
			req.Header.Set(k, v)
		}
		return req
	}
	read := func(b []byte) (*http.Request, string) {
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			t.Fatalf("%v:\n%s", err, b)
		}
		body, _ := io.ReadAll(r.Body)
		return r, string(body)
	}
	for _, tc := range []struct {
		method, url, body string
		h                 map[string]string
	}{
		{"GET", "http://example.test/", "", nil},
		{"GET", "http://example.test:8080/a%20b/c?x=1&y=%2F", "", map[string]string{"Accept": "*/*", "X-Id": "7"}},
		{"POST", "http://example.test/orders", `{"n":1}`, map[string]string{"Content-Type": "application/json"}},
		{"PUT", "http://example.test/empty", "", nil},
		{"GET", "http://example.test/ua", "", map[string]string{"User-Agent": "loadswarm"}},
		{"GET", "http://example.test/?", "", nil},
	} {
		var ours, std bytes.Buffer
		bw := bufio.NewWriter(&ours)
		if err := writeRequest(bw, mk(tc.method, tc.url, tc.body, tc.h)); err != nil {
			t.Fatal(err)
		}
		bw.Flush()
		if err := mk(tc.method, tc.url, tc.body, tc.h).Write(&std); err != nil {
			t.Fatal(err)
		}
		o, ob := read(ours.Bytes())
		s, sb := read(std.Bytes())
		if o.Method != s.Method || o.RequestURI != s.RequestURI || o.Host != s.Host || ob != sb ||
			o.ContentLength != s.ContentLength || !maps.EqualFunc(o.Header, s.Header, slices.Equal) {
			t.Errorf("%s %s:\nours:\n%s\nnet/http:\n%s", tc.method, tc.url, ours.Bytes(), std.Bytes())
		}
	}
	for _, h := range []map[string]string{{"X-Evil": "a\r\nX-Injected: 1"}, {"Bad Name": "x"}, {"X-Nul": "a\x00b"}} {
		bw := bufio.NewWriter(io.Discard)
		if err := writeRequest(bw, mk("GET", "http://example.test/", "", h)); err == nil {
			t.Errorf("%q: written", h)
		}
	}
}
