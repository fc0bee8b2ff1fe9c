package node

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"
	"sync"
	"time"
)

// The dashboard's live view is pushed as server-sent events (GET
// /v1/stream): once a second a "fleet" event (members, tests, who takes
// part in what) and, for a chosen test, a "test" event (its status with the
// report so far). Each frame is built once per second however many
// browsers watch, and the same bytes go to all of them: ten open
// dashboards cost the node ten writes, not ten reports.

// FleetFrame is the data of a "fleet" event.
type FleetFrame struct {
	Time         time.Time           `json:"time"`
	Self         string              `json:"self"`
	Peers        []Peer              `json:"peers"`
	Tests        []TestSummary       `json:"tests"`
	Participants map[string][]string `json:"participants"` // test id -> the names of the nodes in its plan
}

// Limits of the stream.
const (
	maxStreamViewers = 64               // open streams per node
	streamEvery      = time.Second      // one frame per second
	streamBacklog    = 2                // frames queued for a slow viewer before it skips
	streamPing       = 15 * time.Second // a comment line keeps idle proxies from closing it
)

// streamHub fans the frames out. It runs only while someone watches.
type streamHub struct {
	n       *Node
	mu      sync.Mutex
	viewers map[*viewer]bool
	running bool
	// build serializes building frames, so that viewers who connect at
	// once share one; cache holds the latest by test ("" for the fleet
	// alone).
	build sync.Mutex
	cache map[string]cachedFrame
}

type cachedFrame struct {
	b  []byte
	at time.Time
}

// frame is the frame for a test (or the fleet alone, for ""): the one
// built less than a period ago, else a new one.
func (h *streamHub) frame(test string) []byte {
	h.build.Lock()
	defer h.build.Unlock()
	if c, ok := h.cache[test]; ok && time.Since(c.at) < streamEvery/2 {
		return c.b
	}
	b := h.n.fleetEvent()
	if test != "" {
		b = append(b, h.n.testEvent(test)...)
	}
	if h.cache == nil {
		h.cache = map[string]cachedFrame{}
	}
	for k, c := range h.cache { // tests nobody watches any more
		if time.Since(c.at) > 10*streamEvery {
			delete(h.cache, k)
		}
	}
	h.cache[test] = cachedFrame{b: b, at: time.Now()}
	return b
}

type viewer struct {
	test string      // the test whose "test" events it wants, or ""
	ch   chan []byte // frames; one frame may hold a fleet and a test event
}

func (h *streamHub) add(v *viewer) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.viewers) >= maxStreamViewers {
		return fmt.Errorf("%d dashboards are watching this node already: close one", maxStreamViewers)
	}
	if h.viewers == nil {
		h.viewers = map[*viewer]bool{}
	}
	h.viewers[v] = true
	if !h.running {
		h.running = true
		go h.loop()
	}
	return nil
}

func (h *streamHub) remove(v *viewer) {
	h.mu.Lock()
	delete(h.viewers, v)
	h.mu.Unlock()
}

// loop builds and sends the frames every second until nobody watches.
func (h *streamHub) loop() {
	tick := time.NewTicker(streamEvery)
	defer tick.Stop()
	for {
		select {
		case <-h.n.reg.ctx.Done():
			h.mu.Lock()
			h.running = false
			h.mu.Unlock()
			return
		case <-tick.C:
		}
		h.mu.Lock()
		if len(h.viewers) == 0 {
			h.running = false
			h.mu.Unlock()
			return
		}
		tests := map[string]bool{}
		vs := make([]*viewer, 0, len(h.viewers))
		for v := range h.viewers {
			vs = append(vs, v)
			if v.test != "" {
				tests[v.test] = true
			}
		}
		h.mu.Unlock()

		frames := map[string][]byte{"": h.frame("")}
		for id := range tests {
			frames[id] = h.frame(id)
		}
		for _, v := range vs {
			select {
			case v.ch <- frames[v.test]:
			default: // a slow viewer skips a frame rather than hold the others
			}
		}
	}
}

// handleStream: GET /v1/stream[?test=ID].
func (n *Node) handleStream(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("test")
	if id != "" && n.reg.get(id) == nil {
		writeError(w, http.StatusNotFound, fmt.Errorf("test=%q: not known to this node", id))
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, errors.New("streaming is not supported here"))
		return
	}
	v := &viewer{test: id, ch: make(chan []byte, streamBacklog)}
	if err := n.stream.add(v); err != nil {
		writeError(w, http.StatusServiceUnavailable, err)
		return
	}
	defer n.stream.remove(v)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// The first frame at once.
	if _, err := w.Write(n.stream.frame(id)); err != nil {
		return
	}
	fl.Flush()
	ping := time.NewTicker(streamPing)
	defer ping.Stop()
	for {
		var b []byte
		select {
		case <-r.Context().Done():
			return
		case <-n.reg.ctx.Done():
			return
		case <-ping.C:
			b = []byte(": ping\n\n")
		case b = <-v.ch:
		}
		if _, err := w.Write(b); err != nil {
			return
		}
		fl.Flush()
	}
}

// fleetEvent is the "fleet" event now.
func (n *Node) fleetEvent() []byte {
	f := FleetFrame{Time: time.Now().UTC(), Self: n.cfg.Name, Peers: n.peers().Peers, Tests: []TestSummary{}, Participants: map[string][]string{}}
	for _, t := range n.reg.list() {
		t.mu.Lock()
		f.Tests = append(f.Tests, t.summaryLocked())
		if t.plan != nil {
			names := make([]string, 0, len(t.plan.Shares))
			for _, s := range t.plan.Shares {
				names = append(names, t.nameOfLocked(s.Node))
			}
			sort.Strings(names)
			f.Participants[t.id] = names
		}
		t.mu.Unlock()
	}
	return sse("fleet", f)
}

// testEvent is the "test" event for a test now: its status with the
// report so far, or an "error" event. It leaves out the per-second stats
// (the report's series has them): they cost a merge per second per node.
func (n *Node) testEvent(id string) []byte {
	t := n.reg.get(id)
	if t == nil {
		return sse("error", apiError{Error: fmt.Sprintf("test %q: not known to this node", id)})
	}
	st, err := t.status(math.MaxInt64, false, true)
	if err != nil {
		return sse("error", apiError{Error: err.Error()})
	}
	return sse("test", st)
}

// sse formats one server-sent event; JSON has no raw newlines.
func sse(event string, v any) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "event: %s\ndata: ", event)
	if err := json.NewEncoder(&b).Encode(v); err != nil {
		b.Reset()
		fmt.Fprintf(&b, "event: error\ndata: {\"error\":%q}\n", err.Error())
	}
	b.WriteString("\n") // Encode ended the data line; this ends the event
	return b.Bytes()
}
