package node

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sort"
	"sync"
	"time"

	"github.com/loadswarm/loadswarm/scenarios"
	"github.com/loadswarm/loadswarm/storage"
	"github.com/loadswarm/loadswarm/swarm"
)

// Query is the body of TypeQuery: a test's results over [From, To]
// (seconds since its start; To < 0: to the end).
type Query struct {
	TestID     string `cbor:"1,keyasint"`
	From       int64  `cbor:"2,keyasint"`
	To         int64  `cbor:"3,keyasint"`
	Resolution int64  `cbor:"4,keyasint"` // seconds per point of the series, >= 1
	// Origins limits the answer to these nodes' results; empty: all the
	// node holds. OwnOnly limits it to the node's own results.
	Origins []string `cbor:"5,keyasint,omitempty"`
	OwnOnly bool     `cbor:"6,keyasint,omitempty"`
}

// Validate checks a query from the network or the API.
func (q Query) Validate() error {
	var errs []error
	if q.TestID == "" || len(q.TestID) > storage.MaxIDLen {
		errs = append(errs, errors.New("query: bad test id"))
	}
	if q.From < 0 {
		errs = append(errs, errors.New("query: from must be >= 0"))
	}
	if q.To >= 0 && q.To < q.From {
		errs = append(errs, errors.New("query: to is before from"))
	}
	if q.Resolution < 1 || q.Resolution > 86400 {
		errs = append(errs, errors.New("query: resolution must be 1..86400 s"))
	}
	if len(q.Origins) > storage.MaxTestNodes {
		errs = append(errs, errors.New("query: too many origins"))
	}
	return errors.Join(errs...)
}

// QueryPart is one origin node's results as a node holds them, merged down
// before they travel: Total is every second in range merged (all
// dimensions kept: exact summaries by step, region, node), Series holds
// one bucket per Resolution seconds with the dimensions folded (exact
// per-point percentiles).
type QueryPart struct {
	Origin  string              `cbor:"1,keyasint"`
	Own     bool                `cbor:"2,keyasint,omitempty"` // the origin answered for itself
	Total   []byte              `cbor:"3,keyasint,omitempty"` // storage.EncodeSecond
	Series  []byte              `cbor:"4,keyasint,omitempty"` // storage.EncodeSeries
	Seconds int64               `cbor:"5,keyasint"`           // seconds it holds in range
	Samples map[string][]string `cbor:"6,keyasint,omitempty"`
}

// QueryAnswer is the body of TypeQueryResult.
type QueryAnswer struct {
	Parts []QueryPart `cbor:"1,keyasint"`
}

// answerQuery merges down what this node's store holds for a test.
func (n *Node) answerQuery(q Query) (*QueryAnswer, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	origins, err := n.store.Origins(q.TestID)
	if err != nil {
		return nil, err
	}
	want := map[string]bool{}
	for _, o := range q.Origins {
		want[o] = true
	}
	out := &QueryAnswer{}
	for _, o := range origins {
		if (q.OwnOnly && o != n.sw.PeerID()) || (len(want) > 0 && !want[o]) {
			continue
		}
		s, err := n.store.Series(q.TestID, o, q.From, q.To)
		if err != nil {
			return nil, fmt.Errorf("origin %s: %w", o, err)
		}
		total, coarse, err := pushDown(s, q.Resolution)
		if err != nil {
			return nil, fmt.Errorf("origin %s: %w", o, err)
		}
		part := QueryPart{Origin: o, Own: o == n.sw.PeerID(), Seconds: int64(len(s.Seconds)), Samples: s.Samples}
		if part.Total, err = storage.EncodeSecond(total); err != nil {
			return nil, err
		}
		if part.Series, err = storage.EncodeSeries(coarse); err != nil {
			return nil, err
		}
		out.Parts = append(out.Parts, part)
	}
	return out, nil
}

// pushDown folds a series into its total (one Second, T 0, dimensions kept)
// and a coarse series (a bucket per res seconds, T its first second,
// dimensions folded into one).
func pushDown(s *storage.Series, res int64) (*storage.Second, *storage.Series, error) {
	total := storage.NewSecond(0)
	coarse := storage.NewSeries()
	ts := make([]int64, 0, len(s.Seconds))
	for t := range s.Seconds {
		ts = append(ts, t)
	}
	sort.Slice(ts, func(a, b int) bool { return ts[a] < ts[b] })
	for _, t := range ts {
		sec := s.Seconds[t]
		at0 := &storage.Second{T: 0, Buckets: sec.Buckets}
		if err := total.Merge(at0); err != nil {
			return nil, nil, err
		}
		folded := storage.NewSecond(t / res * res)
		for _, b := range sec.Buckets {
			one := &storage.Second{T: folded.T, Buckets: map[storage.Dim]*storage.Bucket{{}: {Counters: b.Counters, Latency: b.Latency}}}
			if err := folded.Merge(one); err != nil {
				return nil, nil, err
			}
		}
		if err := coarse.Add(folded); err != nil {
			return nil, nil, err
		}
	}
	return total, coarse, nil
}

func (n *Node) handleQueryStream(ctx context.Context, from string, req swarm.Envelope) (swarm.Envelope, error) {
	if req.Type != TypeQuery {
		return swarm.Envelope{}, fmt.Errorf("want a query, got %s", req.Type)
	}
	var q Query
	if err := req.DecodeBody(&q); err != nil {
		return swarm.Envelope{}, err
	}
	a, err := n.answerQuery(q)
	if err != nil {
		return swarm.Envelope{}, err
	}
	return swarm.NewEnvelope(TypeQueryResult, wireVersion, q.TestID, a)
}

// Results is the answer of GET /v1/tests/{id}/results: the exact merge of
// every node's results, wherever they are kept.
type Results struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Target string `json:"target"`
	Status string `json:"status"`
	storage.Summary
	ByRegion   map[string]storage.Summary  `json:"by_region,omitempty"`
	ByNode     map[string]storage.Summary  `json:"by_node,omitempty"`
	ByStep     map[string]storage.Summary  `json:"by_step,omitempty"`
	Series     []SeriesPoint               `json:"series"`
	Thresholds []scenarios.ThresholdResult `json:"thresholds"`
	Samples    map[string][]string         `json:"error_samples,omitempty"`
	// MissingNodes took part but neither they nor a replica answered: their
	// results are not in the numbers.
	MissingNodes []string `json:"missing_nodes"`
	// FromReplicas are nodes whose results came from a replica because they
	// did not answer themselves.
	FromReplicas []string `json:"from_replicas"`
	Answered     int      `json:"answered"` // nodes that answered the query
	BytesMoved   int64    `json:"bytes_moved"`
	From         int64    `json:"from"`
	To           int64    `json:"to"` // -1: to the end, the responses after the last arrival included
	Resolution   int64    `json:"resolution_s"`
}

// SeriesPoint is one point of a merged per-second (or coarser) series.
type SeriesPoint struct {
	T        int64   `json:"t"`
	Target   float64 `json:"target"`   // planned arrivals per second
	Achieved float64 `json:"achieved"` // started arrivals per second
	P50      float64 `json:"p50_ms"`
	P99      float64 `json:"p99_ms"`
	Errors   int64   `json:"errors"`
}

// results runs a query over the fleet: every alive node is asked in
// parallel, with a deadline, for what it holds; an origin's own answer wins
// over replicas, and each origin counts once.
func (n *Node) results(ctx context.Context, testID string, from, to int64, by map[string]bool) (*Results, error) {
	rec, ok, err := n.store.Test(testID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("test %q: not known to this node", testID)
	}
	sc, err := compileSpec(rec.Spec, rec.Target)
	if err != nil {
		return nil, fmt.Errorf("test %q: its stored spec: %w", testID, err)
	}
	// Rates are over the seconds with planned arrivals; the query reaches
	// past them when to is open (-1), to take in the responses that came
	// after the last arrival.
	dur := int64(math.Ceil(sc.Profile.Duration().Seconds()))
	last := to
	if last < 0 || last >= dur {
		last = dur - 1
	}
	if from > last {
		return nil, fmt.Errorf("from %d is past the test's last second %d", from, last)
	}
	q := Query{TestID: testID, From: from, To: to, Resolution: max(1, (last-from+1+119)/120)}

	res := &Results{ID: testID, Name: sc.Name, Target: sc.Target.String(), From: from, To: to, Resolution: q.Resolution,
		MissingNodes: []string{}, FromReplicas: []string{}}
	chosen := map[string]QueryPart{}
	answered := map[string]bool{}
	// First every node's own results, then replicas of whoever is missing.
	own := q
	own.OwnOnly = true
	n.ask(ctx, own, res, chosen, answered)
	var missing []string
	for _, id := range rec.Nodes {
		if _, ok := chosen[id]; !ok {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		rq := q
		rq.Origins = missing
		n.ask(ctx, rq, res, chosen, answered)
	}
	res.Answered = len(answered)
	// Who took part: the test record's nodes and whatever answered.
	took := map[string]bool{}
	for _, id := range rec.Nodes {
		took[id] = true
	}
	for id := range chosen {
		took[id] = true
	}
	names, regions := n.reg.namesAndRegions(testID, rec)
	name := func(id string) string {
		if v := names[id]; v != "" {
			return v
		}
		if m, ok := n.sw.Member(id); ok {
			return m.Name
		}
		return id
	}
	for id := range took {
		p, ok := chosen[id]
		switch {
		case !ok:
			res.MissingNodes = append(res.MissingNodes, name(id))
		case !p.Own:
			res.FromReplicas = append(res.FromReplicas, name(id))
		}
	}
	sort.Strings(res.MissingNodes)
	sort.Strings(res.FromReplicas)

	// Merge.
	total := storage.NewSeries()
	coarse := storage.NewSeries()
	perRegion := map[string]*storage.Series{}
	perNode := map[string]*storage.Series{}
	ids := make([]string, 0, len(chosen))
	for id := range chosen {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	decoded, err := decodeParts(ids, chosen)
	if err != nil {
		return nil, err
	}
	for i, id := range ids {
		p := chosen[id]
		t, c := decoded[i].total, decoded[i].coarse
		one := storage.NewSeries()
		if err := one.Add(t); err != nil {
			return nil, err
		}
		for class, msgs := range p.Samples {
			for _, m := range msgs {
				one.AddSample(class, m)
			}
		}
		if err := total.Merge(one); err != nil {
			return nil, err
		}
		if err := coarse.Merge(c); err != nil {
			return nil, err
		}
		{ // regions always: thresholds may name them
			r := regions[id]
			if r == "" {
				if m, ok := n.sw.Member(id); ok {
					r = m.Meta.Region
				}
			}
			if perRegion[r] == nil {
				perRegion[r] = storage.NewSeries()
			}
			if err := perRegion[r].Merge(one); err != nil {
				return nil, err
			}
		}
		if by["node"] {
			perNode[name(id)] = one
		}
	}
	// Totals span the queried range, not one merged second.
	span := float64(last - from + 1)
	fix := func(s storage.Summary) storage.Summary {
		s.DurationSec = span
		s.Rate = storage.Rate{Target: float64(s.Planned) / span, Achieved: float64(s.Arrivals) / span, Requests: float64(s.Requests) / span}
		return s
	}
	res.Summary = fix(storage.Summarize(total, nil))
	// The target is the test's: a missing node's share shows as a shortfall.
	res.Planned = int64(math.Round(sc.Profile.Hits(time.Duration(last+1)*time.Second) - sc.Profile.Hits(time.Duration(from)*time.Second)))
	res.Rate.Target = float64(res.Planned) / span
	steps := storage.SummarizeBy(total, func(d storage.Dim) string { return d.Step })
	for k, v := range steps {
		steps[k] = fix(v)
	}
	if by["step"] {
		res.ByStep = steps
	}
	byRegion := map[string]storage.Summary{}
	for k, v := range perRegion {
		byRegion[k] = fix(storage.Summarize(v, nil))
	}
	if by["region"] {
		res.ByRegion = byRegion
	}
	if by["node"] {
		res.ByNode = map[string]storage.Summary{}
		for k, v := range perNode {
			res.ByNode[k] = fix(storage.Summarize(v, nil))
		}
	}
	res.Samples = total.Samples
	var pass bool
	res.Thresholds, pass = sc.Evaluate(scenarios.ThresholdEnvWith(res.Summary, steps, byRegion))
	if res.Thresholds == nil {
		res.Thresholds = []scenarios.ThresholdResult{}
	}
	res.Status = scenarios.StatusPassed
	if !pass {
		res.Status = scenarios.StatusFailed
	}
	// The series.
	res.Series = []SeriesPoint{}
	pts := make([]int64, 0, len(coarse.Seconds))
	for t := range coarse.Seconds {
		pts = append(pts, t)
	}
	sort.Slice(pts, func(a, b int) bool { return pts[a] < pts[b] })
	for _, t := range pts {
		sum := storage.SummarizeSecond(coarse.Seconds[t])
		w := float64(max(1, min(q.Resolution, last-t+1)))
		planned := sc.Profile.Hits(time.Duration(t+int64(w))*time.Second) - sc.Profile.Hits(time.Duration(t)*time.Second)
		res.Series = append(res.Series, SeriesPoint{T: t, Target: planned / w, Achieved: float64(sum.Arrivals) / w,
			P50: sum.Latency.P50, P99: sum.Latency.P99, Errors: sum.Errors})
	}
	return res, nil
}

// ask sends q to every alive node in parallel, with a deadline, and keeps
// the best part per origin: the origin's own answer over a replica, else
// the replica holding more seconds.
func (n *Node) ask(ctx context.Context, q Query, res *Results, chosen map[string]QueryPart, answered map[string]bool) {
	type answer struct {
		peer  string
		a     *QueryAnswer
		bytes int64
		err   error
	}
	alive := n.reg.view()
	answers := make(chan answer, len(alive))
	var wg sync.WaitGroup
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	self := n.sw.PeerID()
	for id := range alive {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if id == self {
				a, err := n.answerQuery(q)
				answers <- answer{peer: id, a: a, err: err}
				return
			}
			req, err := swarm.NewEnvelope(TypeQuery, wireVersion, q.TestID, q)
			if err != nil {
				answers <- answer{peer: id, err: err}
				return
			}
			resp, err := n.sw.Request(qctx, id, queryProtocol, req)
			if err != nil {
				answers <- answer{peer: id, err: err}
				return
			}
			var a QueryAnswer
			if err := resp.DecodeBody(&a); err != nil {
				answers <- answer{peer: id, err: err}
				return
			}
			answers <- answer{peer: id, a: &a, bytes: int64(len(resp.Body))}
		}()
	}
	wg.Wait()
	close(answers)
	for a := range answers {
		if a.err != nil {
			n.log.Warn("results: a node did not answer", "test", q.TestID, "peer", a.peer, "error", a.err)
			continue
		}
		answered[a.peer] = true
		res.BytesMoved += a.bytes
		for _, p := range a.a.Parts {
			p.Own = p.Origin == a.peer // only the origin itself speaks for its own results
			cur, have := chosen[p.Origin]
			if !have || (p.Own && !cur.Own) || (p.Own == cur.Own && p.Seconds > cur.Seconds) {
				chosen[p.Origin] = p
			}
		}
	}
}

type decodedPart struct {
	total  *storage.Second
	coarse *storage.Series
}

// decodeParts decodes the answers in parallel, one goroutine per core:
// decoding is most of a large query's work, and merging (sequential) is
// cheaper once the parts are in memory.
func decodeParts(ids []string, chosen map[string]QueryPart) ([]decodedPart, error) {
	out := make([]decodedPart, len(ids))
	errs := make([]error, len(ids))
	next := make(chan int)
	var wg sync.WaitGroup
	for range max(1, runtime.GOMAXPROCS(0)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				p := chosen[ids[i]]
				t, err := storage.DecodeSecond(p.Total)
				if err != nil {
					errs[i] = fmt.Errorf("results of %s: %w", ids[i], err)
					continue
				}
				c, err := storage.DecodeSeries(p.Series)
				if err != nil {
					errs[i] = fmt.Errorf("results of %s: %w", ids[i], err)
					continue
				}
				out[i] = decodedPart{t, c}
			}
		}()
	}
	for i := range ids {
		next <- i
	}
	close(next)
	wg.Wait()
	return out, errors.Join(errs...)
}
