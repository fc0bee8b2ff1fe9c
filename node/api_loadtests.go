package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/loadswarm/loadswarm/report"
	"github.com/loadswarm/loadswarm/storage"
)

// TestSummary is one line of GET /v1/tests.
type TestSummary struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	State  string `json:"state"`
	Reason string `json:"reason,omitempty"`
	// Submitter is the submitting node's name as membership knows its key
	// (as it wrote it, when membership does not know the key any more);
	// SubmitterID is the key that signed the test: the identity.
	Submitter   string    `json:"submitter"`
	SubmitterID string    `json:"submitter_id"`
	Created     time.Time `json:"created"`
	Nodes       int       `json:"nodes"`
	// Paused and GaveUp say how this node's own share stands.
	Paused bool   `json:"paused,omitempty"`
	GaveUp string `json:"gave_up,omitempty"`
	// Figures are a finished test's key numbers (in a test's history).
	Figures *Figures `json:"figures,omitempty"`
}

// NodeState is one node's part in a test.
type NodeState struct {
	Name        string  `json:"name"`
	PeerID      string  `json:"peer_id"`
	Region      string  `json:"region,omitempty"`
	Rate        float64 `json:"rate"` // its planned rate now, or from when the latest plan applies if later (arrivals/s); 0 when it has no share
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
	CompleteThrough int64 `json:"complete_through"`
	// Report is the merged report once the test is over; while it runs,
	// with ?report=1, the report so far.
	Report *FleetReport `json:"report,omitempty"`
	// Events are the test's plans and the shares stopped early, in order.
	Events []TestEvent `json:"events"`
}

// FleetReport is a test's merged report with the fleet's view of it: the
// same report as `swarm results` gives for the same data (report.Build),
// with every node's part.
type FleetReport struct {
	report.Report
	Nodes       []NodeState `json:"nodes"`
	StartSkewMs float64     `json:"start_skew_ms"` // the largest start skew of any node
}

func (n *Node) testRoutes() {
	n.mux.HandleFunc("POST /v1/tests", n.handleSubmit)
	n.mux.HandleFunc("POST /v1/runs", n.handleRun)
	n.mux.HandleFunc("GET /v1/tests", n.handleTests)
	n.mux.HandleFunc("GET /v1/tests/{id}", n.handleTest)
	n.mux.HandleFunc("DELETE /v1/tests/{id}", n.handleStop)
	n.mux.HandleFunc("GET /v1/tests/{id}/results", n.handleResults)
}

// handleResults: ?by=region,node,step (any of them), &from=&to= (seconds),
// &exemplars=1 (trace ids of the slowest and failed requests).
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
	switch v := q.Get("exemplars"); v {
	case "", "0", "false":
	case "1", "true":
		by["exemplars"] = true
	default:
		writeError(w, http.StatusBadRequest, fmt.Errorf("exemplars=%q: want 1 or 0", v))
		return
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

// Run is the body of POST /v1/runs: a test file with its run's
// parameters.
type Run struct {
	Spec   string            `json:"spec"`             // the test file (YAML or JSON)
	Target string            `json:"target,omitempty"` // replaces the file's target
	Env    map[string]string `json:"env,omitempty"`    // read as env.KEY
	Secret []string          `json:"secret,omitempty"` // names in Env whose values are secret
}

// handleRun takes a Run.
func (n *Node) handleRun(w http.ResponseWriter, r *http.Request) {
	var run Run
	dec := json.NewDecoder(io.LimitReader(r.Body, 2*maxSpecOnWire))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&run); err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("body: want {\"spec\": \"...\", \"target\", \"env\", \"secret\"}: %v", err))
		return
	}
	n.submitRun(w, r, run)
}

// handleSubmit takes a test file as the body; ?target= replaces its target.
func (n *Node) handleSubmit(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxSpecOnWire+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Errorf("read test file: %w", err))
		return
	}
	n.submitRun(w, r, Run{Spec: string(body), Target: r.URL.Query().Get("target")})
}

func (n *Node) submitRun(w http.ResponseWriter, r *http.Request, run Run) {
	id, err := n.reg.submit(r.Context(), run)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"id": id})
}

func (n *Node) handleTests(w http.ResponseWriter, r *http.Request) {
	if name := r.URL.Query().Get("name"); name != "" {
		n.handleHistory(w, name)
		return
	}
	out := []TestSummary{}
	for _, t := range n.reg.list() {
		t.mu.Lock()
		out = append(out, t.summaryLocked())
		t.mu.Unlock()
	}
	writeJSON(w, http.StatusOK, map[string]any{"tests": out})
}

// handleHistory: GET /v1/tests?name=NAME, every stored run of a test by
// name, newest first, with its key figures: a trend in one request.
func (n *Node) handleHistory(w http.ResponseWriter, name string) {
	if len(name) > 128 {
		writeError(w, http.StatusBadRequest, errors.New("name: longer than 128 characters"))
		return
	}
	recs, err := n.store.Tests()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	out := []TestSummary{}
	for _, rec := range recs {
		if rec.Name != name {
			continue
		}
		x := n.reg.recordExtraOf(rec.ID, rec)
		sum := TestSummary{ID: rec.ID, Name: rec.Name, State: rec.State, Reason: rec.Reason, Submitter: rec.Submitter,
			Created: rec.Created, Nodes: len(rec.Nodes), Figures: x.Figures}
		if t := n.reg.get(rec.ID); t != nil {
			t.mu.Lock()
			sum.State, sum.Reason = t.state, t.reason
			switch {
			case sum.Figures != nil:
			case t.final != nil:
				sum.Figures = figuresOf(t.final)
			case t.endedLocked() && !t.isRetired:
				if rep, err := t.reportLocked(); err == nil { // over, not retired yet
					sum.Figures = figuresOf(rep)
				}
			}
			t.mu.Unlock()
		}
		out = append(out, sum)
	}
	writeJSON(w, http.StatusOK, map[string]any{"tests": out})
}

// StopResult is the answer of DELETE /v1/tests/{id}.
type StopResult struct {
	ID    string `json:"id"`
	State string `json:"state"`
	// Scope is "fleet" when the test stops on every node (this node
	// submitted or schedules it), "node" when only this node's share stops
	// (the others accept a stop from the submitter or the scheduler only).
	Scope string `json:"scope"`
	Note  string `json:"note,omitempty"`
}

func (n *Node) handleStop(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	t := n.reg.get(id)
	if t == nil {
		writeError(w, http.StatusNotFound, fmt.Errorf("test %q: not known to this node", id))
		return
	}
	scope, err := n.reg.stop(r.Context(), t, "stopped by a user on "+n.cfg.Name)
	if err != nil {
		writeError(w, http.StatusBadGateway, err)
		return
	}
	res := StopResult{ID: id, State: StateStopped, Scope: scope}
	if scope == StopNode {
		t.mu.Lock()
		sum := t.summaryLocked()
		leader := t.nameOfLocked(t.leader)
		t.mu.Unlock()
		res.State = sum.State
		res.Note = fmt.Sprintf("this node's share stops and moves to the others; only the test's submitter (%s) or its scheduler (%s) can stop it on every node", sum.Submitter, leader)
	}
	writeJSON(w, http.StatusOK, res)
}

func (n *Node) handleTest(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	t := n.reg.get(id)
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
	live := false
	switch v := r.URL.Query().Get("report"); v {
	case "", "0", "false":
	case "1", "true":
		live = true
	default:
		writeError(w, http.StatusBadRequest, fmt.Errorf("report=%q: want 1 or 0", v))
		return
	}
	st, err := t.status(since, r.URL.Query().Get("by") == "node", live)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (t *loadTest) summaryLocked() TestSummary {
	nodes := 0
	if t.plan != nil {
		nodes = len(t.plan.Shares)
	}
	sub := t.reg.nameOf(t.ann.Signer)
	if sub == "" {
		sub = t.body.Name
	}
	return TestSummary{ID: t.id, Name: t.sc.Name, State: t.state, Reason: t.reason, Submitter: sub, SubmitterID: t.ann.Signer,
		Created: t.body.Created, Nodes: nodes, Paused: t.paused, GaveUp: t.gaveUp}
}

// status builds the test's status from seconds since on.
// With live, a running test's status has the report so far.
func (t *loadTest) status(since int64, byNode, live bool) (*TestStatus, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	st := &TestStatus{TestSummary: t.summaryLocked(), Target: t.sc.Target.String(),
		DurationSec: t.sc.Profile.Duration().Seconds(), CompleteThrough: -1, Seconds: []SecondStats{},
		Events: append([]TestEvent{}, t.events...)}
	names := map[string]string{}
	for id := range t.nodes {
		names[id] = t.nameOfLocked(id)
	}
	if t.plan != nil {
		start := t.plan.Start
		st.Start = &start
		st.Epoch = t.plan.Epoch
		st.Scheduler = t.nameOfLocked(t.plan.Scheduler)
		st.Excluded = map[string]string{}
		for id, why := range t.plan.Excluded {
			st.Excluded[t.nameOfLocked(id)] = why
		}
	}
	st.NodeStates = t.nodeStatesLocked()

	// Fleet-wide seconds.
	ts := map[int64]bool{}
	for _, res := range t.results {
		for sec := range res.Seconds {
			if sec >= since {
				ts[sec] = true
			}
		}
	}
	order := make([]int64, 0, len(ts))
	for sec := range ts {
		order = append(order, sec)
	}
	sort.Slice(order, func(a, b int) bool { return order[a] < order[b] })
	for _, i := range order {
		merged := storage.NewSecond(i)
		ss := SecondStats{T: i}
		for id, res := range t.results {
			sec, ok := res.Seconds[i]
			if !ok {
				continue
			}
			if err := merged.Merge(sec); err != nil {
				return nil, fmt.Errorf("second %d of %s: %w", i, names[id], err)
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
		ss.Target, ss.Achieved = t.sc.Profile.SecondPlanned(i), float64(sum.Arrivals)
		ss.P50, ss.P95, ss.P99 = sum.Latency.P50, sum.Latency.P95, sum.Latency.P99
		ss.Errors, ss.Dropped = sum.Errors, sum.Dropped
		st.Seconds = append(st.Seconds, ss)
	}
	st.CompleteThrough = t.completeThroughLocked()

	switch {
	case t.final != nil:
		st.Report = t.final // retired: its seconds are in the stores
	case (t.state != StatePending && t.state != StateRunning) || (live && t.plan != nil):
		rep, err := t.reportLocked()
		if err != nil {
			return nil, err
		}
		st.Report = rep
	}
	return st, nil
}

func (t *loadTest) nodeStatesLocked() []NodeState {
	var out []NodeState
	var elapsed time.Duration
	if t.plan != nil {
		elapsed = time.Since(t.plan.Start)
	}
	for id, ns := range t.nodes {
		s := NodeState{Name: t.nameOfLocked(id), PeerID: id, Region: ns.Region, Done: ns.Done, Stopped: ns.Stopped,
			LastSecond: ns.LastT, StartSkewMs: float64(ns.StartSkew) / float64(time.Millisecond)}
		if t.plan != nil {
			if sh, ok := t.plan.Share(id); ok && !ns.Done && ns.Stopped == "" {
				s.Rate = sh.Profile().RateAt(max(elapsed, t.plan.Effective, 0))
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
func (t *loadTest) completeThroughLocked() int64 {
	if t.plan == nil {
		return -1
	}
	limit := int64(time.Since(t.plan.Start)/time.Second) - 4 // a node silent this long is not waited for
	out := int64(-1)
	first := true
	for id := range t.sharers {
		ns := t.node(id)
		if ns.Done || ns.Stopped != "" {
			continue
		}
		last := max(ns.LastT, limit)
		if first || last < out {
			out, first = last, false
		}
	}
	if first { // nobody is still sending
		for _, ns := range t.nodes {
			out = max(out, ns.LastT)
		}
	}
	return out
}

// nameOfLocked is a node's name from its stats, the membership, or its id.
func (t *loadTest) nameOfLocked(id string) string {
	if ns, ok := t.nodes[id]; ok && ns.Name != "" {
		return ns.Name
	}
	if m, ok := t.reg.n.sw.Member(id); ok && m.Name != "" {
		return m.Name
	}
	return id
}

func (t *loadTest) reportLocked() (*FleetReport, error) {
	dur := int64(math.Ceil(t.sc.Profile.Duration().Seconds()))
	in := report.Input{ID: t.id, Scenario: t.sc, To: -1, Resolution: max(1, (dur+119)/120),
		ByRegion: true, ByNode: true, Interrupted: t.state == StateStopped}
	if t.state == StateRunning || t.state == StatePending {
		// The report so far covers the seconds every node has reported:
		// the ones still on their way are not missing.
		in.To = max(t.completeThroughLocked(), 0)
	}
	if t.state == StateFailed {
		in.Failed = t.reason
	}
	in.Aborted = t.aborted
	x := t.extraLocked()
	for id, res := range t.results {
		total, points, err := report.Fold(res, in.Resolution)
		if err != nil {
			return nil, fmt.Errorf("results of %s: %w", t.nameOfLocked(id), err)
		}
		p := report.Part{Node: id, Name: t.nameOfLocked(id), Region: x.Regions[id], Total: total, Points: points,
			Samples: res.Samples, Last: -1, Until: -1}
		for s := range res.Seconds {
			p.Last = max(p.Last, s)
		}
		if sp, ok := x.Spans[id]; ok && !x.Done[id] {
			p.Until = sp[1]
		}
		in.Parts = append(in.Parts, p)
	}
	for id := range t.sharers {
		if ns := t.node(id); ns.Stopped != "" {
			in.Notes = append(in.Notes, fmt.Sprintf("%s stopped its share early: %s", t.nameOfLocked(id), ns.Stopped))
		}
	}
	sort.Strings(in.Notes)
	if t.sc.Observe != nil {
		// A few reads of the local store, under mu: the live report is
		// built a few times a second at most.
		if obs, err := t.reg.n.store.Observed(t.id, 0, -1); err == nil {
			in.Observed = obs
		} else {
			t.log.Warn("could not read observed values", "error", err)
		}
	}
	rep, err := report.Build(in)
	if err != nil {
		return nil, err
	}
	out := &FleetReport{Report: *rep, Nodes: t.nodeStatesLocked()}
	for _, ns := range out.Nodes {
		out.StartSkewMs = max(out.StartSkewMs, ns.StartSkewMs)
	}
	return out, nil
}
