// Command benchserver is the trivial keep-alive HTTP target of `make bench`.
//
//	/            answers "ok" at once (keep-alive)
//	/hold?ms=N   answers "ok" after N milliseconds
//	/stats       {"requests":N,"first_unix_nano":F,"last_unix_nano":L} since
//	             the last /stats/reset (the /stats paths themselves are not
//	             counted)
//	/stats/reset zeroes the counters
//
// The first line on stdout is the address it listens on (host:port).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

// counter records how many requests arrived and when the first and the
// last did. One mutex: the server is not the thing being measured, and an
// uncontended lock costs a few tens of nanoseconds.
type counter struct {
	mu          sync.Mutex
	n           int64
	first, last int64
	maxInFlight int64
	inFlight    int64
}

func (c *counter) arrive() {
	now := time.Now().UnixNano()
	c.mu.Lock()
	if c.n == 0 {
		c.first = now
	}
	c.n++
	c.last = now
	c.mu.Unlock()
}

func (c *counter) hold(delta int64) {
	c.mu.Lock()
	c.inFlight += delta
	if c.inFlight > c.maxInFlight {
		c.maxInFlight = c.inFlight
	}
	c.mu.Unlock()
}

var ok = []byte("ok")

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "listen address")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ln.Addr().String())
	os.Stdout.Sync()

	var c counter
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c.arrive()
		w.Header().Set("Content-Type", "text/plain")
		w.Write(ok)
	})
	mux.HandleFunc("/hold", func(w http.ResponseWriter, r *http.Request) {
		c.arrive()
		ms, _ := strconv.Atoi(r.URL.Query().Get("ms"))
		c.hold(1)
		if ms > 0 {
			t := time.NewTimer(time.Duration(ms) * time.Millisecond)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
			}
		}
		c.hold(-1)
		w.Header().Set("Content-Type", "text/plain")
		w.Write(ok)
	})
	mux.HandleFunc("/stats", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		v := map[string]int64{
			"requests":        c.n,
			"first_unix_nano": c.first,
			"last_unix_nano":  c.last,
			"max_in_flight":   c.maxInFlight,
			"in_flight":       c.inFlight,
		}
		c.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(v)
	})
	mux.HandleFunc("/stats/reset", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.n, c.first, c.last, c.maxInFlight = 0, 0, 0, c.inFlight
		c.mu.Unlock()
		w.Write(ok)
	})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    1 << 16,
	}
	log.Fatal(srv.Serve(ln))
}
