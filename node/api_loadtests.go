package node

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/loadswarm/loadswarm/scenarios"
	"github.com/loadswarm/loadswarm/storage"
)

// TestSummary is one line of GET /v1/tests.
type TestSummary struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	State     string    `json:"state"`
	Reason    string    `json:"reason,omitempty"`
	Submitter string    `json:"submitter"`
	Created   time.Time `json:"created"`
	Nodes     int       `json:"nodes"`
}

// NodeState is one node's part in a test.
type NodeState struct {
	Name        string  `json:"name"`
	PeerID      string  `json:"peer_id"`
	Region      string  `json:"region,omitempty"`
	Rate        float64 `json:"rate"` // its planned rate now (arrivals/s), 0 when it has no share
	Done        bool    `json:"done"`
	Stopped     string  `json:"stopped,omitempty"`
	LastSecond  int64   `json:"last_second"`
	StartSkewMs float64 `json:"start_skew_ms"`
}

// SecondStats is the fleet's numbers for one second of a test.
type SecondStats struct {
	T        int64   `json:"t"`
	Target   float64 `json:"target"`   // planned arrivals
	Achieved float64 `json:"achieved"` // started arrivals
	P50      float64 `json:"p50_ms"`
	P95      float64 `json:"p95_ms"`
	P99      float64 `json:"p99_ms"`
	Errors   int64   `json:"errors"`
	Dropped  int64   `json:"dropped"`
	Nodes    int     `json:"nodes"` // nodes that reported this second
	// ByNode is each node's started arrivals this second (?by=node).
	ByNode map[string]float64 `json:"by_node,omitempty"`
}

// TestStatus is GET /v1/tests/{id}: where a test is, second by second.
type TestStatus struct {
	TestSummary
	Target      string            `json:"target"`
	Start       *time.Time        `json:"start,omitempty"`
	DurationSec float64           `json:"duration_s"`
	Scheduler   string            `json:"scheduler,omitempty"`
	Epoch       uint64            `json:"epoch"`
	NodeStates  []NodeState       `json:"node_states"`
	Excluded    map[string]string `json:"excluded,omitempty"`
	Seconds     []SecondStats     `json:"seconds"`
	// CompleteThrough is the last second every running node has reported
	// (-1 before any): seconds up to it will not change.
	CompleteThrough int64        `json:"complete_through"`
	Report          *FleetReport `json:"report,omitempty"` // once the test is over
}

// FleetReport is a test's merged report with the fleet's view of it.
type FleetReport struct {
	scenarios.Report
	ID          string      `json:"id"`
	Nodes       []NodeState `json:"nodes"`
	StartSkewMs float64     `json:"start_skew_ms"` // the largest start skew of any node
	// ByRegion and ByNode are the same numbers per region and per node
	// (by name), each from the exact merge of its nodes' histograms.
	ByRegion map[string]storage.Summary `json:"by_region"`
	ByNode   map[string]storage.Summary `json:"by_node"`
}

func (n *Node) testRoutes() {
	n.mux.HandleFunc("POST /v1/tests", n.handleSubmit)
	n.mux.HandleFunc("GET /v1/tests", n.handleTests)
	n.mux.HandleFunc("GET /v1/tests/{id}", n.handleTest)
	n.mux.HandleFunc("DELETE /v1/tests/{id}", n.handleStop)
	n.mux.HandleFunc("GET /v1/tests/{id}/results", n.handleResults)
}

// handleResults: ?by=region,node,step (any of them), &from=&to= (seconds).
func (n *Node) handleResults(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	by := map[string]bool{}
	for _, b := range strings.Split(q.Get("by"), ",") {
		switch b = strings.TrimSpace(b); b {
		case "":
		case "region", "node", "step":
			by[b] = true
		default:
			writeError(w, http.StatusBadRequest, fmt.Errorf("by=%q: want region, node or step", b))
			return
		}
	}
	from, to := int64(0), int64(-1)
	for _, p := range []struct {
		name string
		dst  *int64
	}{{"from", &from}, {"to", &to}} {
		if v := q.Get(p.name); v != "" {
			x, err := strconv.ParseInt(v, 10, 64)
			if err != nil || x < 0 {
				writeError(w, http.StatusBadRequest, fmt.Errorf("%s=%q: want a second number >= 0", p.name, v))
				return
			}
			*p.dst = x
		}
	}
	res, err := n.results(r.Context(), r.PathValue("id"), from, to, by)
	if err != nil {
		writeError(w, http.StatusNotFound, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// apiError is the JSON body of every error answer.
type apiError struct {
	Error string `json:"error"`
}

func writeError(w http.ResponseWriter, status int, err error) {
	writeJSON(w, status, apiError{Error: err.Error()})
}

// handleSubmit takes a test file as the body; ?target= replaces its target.
func (n *Node) handleSubmit(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxSpecOnWire+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("read test file: %w", err))
		return
	}
	id, err := n.tests.submit(r.Context(), body, r.URL.Query().Get("target"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"id": id})
}

func (n *Node) handleTests(w http.ResponseWriter, r *http.Request) {
	out := []TestSummary{}
	for _, t := range n.tests.list() {
		t.mu.Lock()
		out = append(out, t.summaryLocked())
		t.mu.Unlock()
	}
	writeJSON(w, http.StatusOK, map[string]any{"tests": out})
}

func (n *Node) handleStop(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	t := n.tests.get(id)
	if t == nil {
		writeError(w, http.StatusNotFound, fmt.Errorf("test %q: not known to this node", id))
		return
	}
	if err := n.tests.stopTest(r.Context(), id, "stopped by a user on "+n.cfg.Name); err != nil {
		writeError(w, http.StatusBadGateway, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": id, "state": StateStopped})
}

func (n *Node) handleTest(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	t := n.tests.get(id)
	if t == nil {
		writeError(w, http.StatusNotFound, fmt.Errorf("test %q: not known to this node", id))
		return
	}
	since := int64(0)
	if v := r.URL.Query().Get("since"); v != "" {
		s, err := strconv.ParseInt(v, 10, 64)
		if err != nil || s < 0 {
			writeError(w, http.StatusBadRequest, errors.New("since: want a second number >= 0"))
			return
		}
		since = s
	}
	st, err := t.status(since, r.URL.Query().Get("by") == "node")
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (r *testRun) summaryLocked() TestSummary {
	nodes := 0
	if r.plan != nil {
		nodes = len(r.plan.Shares)
	}
	return TestSummary{ID: r.id, Name: r.sc.Name, State: r.state, Reason: r.reason, Submitter: r.ann.Submitter,
		Created: r.ann.Created, Nodes: nodes}
}

// status builds the test's status from seconds since on.
func (r *testRun) status(since int64, byNode bool) (*TestStatus, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := &TestStatus{TestSummary: r.summaryLocked(), Target: r.sc.Target.String(),
		DurationSec: r.sc.Profile.Duration().Seconds(), CompleteThrough: -1, Seconds: []SecondStats{}}
	names := map[string]string{}
	for id := range r.nodes {
		names[id] = r.nameOfLocked(id)
	}
	if r.plan != nil {
		start := r.plan.Start
		st.Start = &start
		st.Epoch = r.plan.Epoch
		st.Scheduler = r.nameOfLocked(r.plan.Scheduler)
		st.Excluded = map[string]string{}
		for id, why := range r.plan.Excluded {
			st.Excluded[r.nameOfLocked(id)] = why
		}
	}
	st.NodeStates = r.nodeStatesLocked()

	// Fleet-wide seconds.
	ts := map[int64]bool{}
	for _, res := range r.results {
		for t := range res.Seconds {
			if t >= since {
				ts[t] = true
			}
		}
	}
	order := make([]int64, 0, len(ts))
	for t := range ts {
		order = append(order, t)
	}
	sort.Slice(order, func(a, b int) bool { return order[a] < order[b] })
	for _, t := range order {
		merged := storage.NewSecond(t)
		ss := SecondStats{T: t}
		for id, res := range r.results {
			sec, ok := res.Seconds[t]
			if !ok {
				continue
			}
			if err := merged.Merge(sec); err != nil {
				return nil, fmt.Errorf("second %d of %s: %w", t, names[id], err)
			}
			ss.Nodes++
			if byNode {
				if ss.ByNode == nil {
					ss.ByNode = map[string]float64{}
				}
				ss.ByNode[names[id]] = float64(storage.SummarizeSecond(sec).Arrivals)
			}
		}
		sum := storage.SummarizeSecond(merged)
		ss.Target, ss.Achieved = r.sc.Profile.SecondPlanned(t), float64(sum.Arrivals)
		ss.P50, ss.P95, ss.P99 = sum.Latency.P50, sum.Latency.P95, sum.Latency.P99
		ss.Errors, ss.Dropped = sum.Errors, sum.Dropped
		st.Seconds = append(st.Seconds, ss)
	}
	st.CompleteThrough = r.completeThroughLocked()

	switch {
	case r.final != nil:
		st.Report = r.final // retired: its seconds are in the stores
	case r.state != StatePending && r.state != StateRunning:
		rep, err := r.reportLocked()
		if err != nil {
			return nil, err
		}
		st.Report = rep
	}
	return st, nil
}

func (r *testRun) nodeStatesLocked() []NodeState {
	var out []NodeState
	var elapsed time.Duration
	if r.plan != nil {
		elapsed = time.Since(r.plan.Start)
	}
	for id, ns := range r.nodes {
		s := NodeState{Name: r.nameOfLocked(id), PeerID: id, Region: ns.Region, Done: ns.Done, Stopped: ns.Stopped,
			LastSecond: ns.LastT, StartSkewMs: float64(ns.StartSkew) / float64(time.Millisecond)}
		if r.plan != nil {
			if sh, ok := r.plan.Share(id); ok && !ns.Done && ns.Stopped == "" {
				s.Rate = sh.Profile().RateAt(max(elapsed, 0))
			}
		}
		out = append(out, s)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}

// completeThroughLocked is the last second that every node still sending
// has reported; a node that is done, stopped or silent for 3 s does not
// hold it back.
func (r *testRun) completeThroughLocked() int64 {
	if r.plan == nil {
		return -1
	}
	limit := int64(time.Since(r.plan.Start)/time.Second) - 4 // a node silent this long is not waited for
	out := int64(-1)
	first := true
	for id := range r.everShared() {
		ns := r.node(id)
		if ns.Done || ns.Stopped != "" {
			continue
		}
		last := max(ns.LastT, limit)
		if first || last < out {
			out, first = last, false
		}
	}
	if first { // nobody is still sending
		for _, ns := range r.nodes {
			out = max(out, ns.LastT)
		}
	}
	return out
}

// nameOfLocked is a node's name from its stats, the membership, or its id.
func (r *testRun) nameOfLocked(id string) string {
	if ns, ok := r.nodes[id]; ok && ns.Name != "" {
		return ns.Name
	}
	if m, ok := r.ts.n.sw.Member(id); ok && m.Name != "" {
		return m.Name
	}
	return id
}

func (r *testRun) reportLocked() (*FleetReport, error) {
	merged, err := r.mergedLocked()
	if err != nil {
		return nil, err
	}
	rep := &FleetReport{Report: scenarios.BuildReport(r.sc, merged), ID: r.id, Nodes: r.nodeStatesLocked()}
	// The target is the test's, not the sum of what the nodes that answered
	// planned: a node lost mid-test planned nothing more, and its missing
	// share must show as a shortfall.
	if d := r.sc.Profile.Duration().Seconds(); d > 0 {
		rep.Planned = int64(math.Round(r.sc.Profile.Total()))
		rep.Rate.Target = r.sc.Profile.Total() / d
		rep.Rate.Achieved = float64(rep.Arrivals) / d
		rep.Rate.Requests = float64(rep.Requests) / d
		rep.DurationSec = d
	}
	for _, ns := range rep.Nodes {
		rep.StartSkewMs = max(rep.StartSkewMs, ns.StartSkewMs)
	}
	rep.ByRegion, rep.ByNode = map[string]storage.Summary{}, map[string]storage.Summary{}
	regions := map[string]*storage.Series{}
	for id, res := range r.results {
		rep.ByNode[r.nameOfLocked(id)] = storage.Summarize(res, nil)
		region := r.node(id).Region
		if region == "" {
			region = "(none)"
		}
		if regions[region] == nil {
			regions[region] = storage.NewSeries()
		}
		if err := regions[region].Merge(res); err != nil {
			return nil, fmt.Errorf("merge region %s: %w", region, err)
		}
	}
	for region, s := range regions {
		rep.ByRegion[region] = storage.Summarize(s, nil)
	}
	// Thresholds on the fleet-wide numbers as reported (the test's target),
	// with the regions for rules like regions["ap-south"].p95 < 300.
	var pass bool
	rep.Thresholds, pass = r.sc.Evaluate(scenarios.ThresholdEnvWith(rep.Summary, rep.ByStep, rep.ByRegion))
	if rep.Thresholds == nil {
		rep.Thresholds = []scenarios.ThresholdResult{}
	}
	rep.Status = scenarios.StatusPassed
	if !pass {
		rep.Status = scenarios.StatusFailed
	}
	switch r.state {
	case StateStopped:
		rep.Interrupted = true
	case StateFailed:
		rep.Status = scenarios.StatusFailed
	}
	return rep, nil
}
