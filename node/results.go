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

	"github.com/loadswarm/loadswarm/report"
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
	// Observed asks for the system under test's observed values too.
	Observed bool `cbor:"7,keyasint,omitempty"`
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
// before they travel (report.Fold): Total is every second in range merged
// (all dimensions kept: exact summaries by step, region, node), Series holds
// one bucket per Resolution seconds with the dimensions folded (exact
// per-point percentiles).
type QueryPart struct {
	Origin  string              `cbor:"1,keyasint"`
	Own     bool                `cbor:"2,keyasint,omitempty"` // the origin answered for itself
	Total   []byte              `cbor:"3,keyasint,omitempty"` // storage.EncodeSecond
	Series  []byte              `cbor:"4,keyasint,omitempty"` // storage.EncodeSeries
	Seconds int64               `cbor:"5,keyasint"`           // seconds it holds in range
	Samples map[string][]string `cbor:"6,keyasint,omitempty"`
	Last    int64               `cbor:"7,keyasint,omitempty"` // the last second it holds in range (-1: none)
}

// QueryAnswer is the body of TypeQueryResult.
type QueryAnswer struct {
	Parts []QueryPart `cbor:"1,keyasint"`
	// Observed is what the node keeps of the system under test in range
	// (storage.EncodeObserved), when the query asks for it.
	Observed []byte `cbor:"2,keyasint,omitempty"`
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
		total, coarse, err := report.Fold(s, q.Resolution)
		if err != nil {
			return nil, fmt.Errorf("origin %s: %w", o, err)
		}
		part := QueryPart{Origin: o, Own: o == n.sw.PeerID(), Seconds: int64(len(s.Seconds)), Samples: s.Samples, Last: -1}
		for t := range s.Seconds {
			part.Last = max(part.Last, t)
		}
		if part.Total, err = storage.EncodeSecond(total); err != nil {
			return nil, err
		}
		if part.Series, err = storage.EncodeSeries(coarse); err != nil {
			return nil, err
		}
		out.Parts = append(out.Parts, part)
	}
	if q.Observed {
		to := q.To
		if to >= 0 {
			to += int64(observeSlack / time.Second)
		}
		obs, err := n.store.Observed(q.TestID, q.From, to)
		if err != nil {
			return nil, err
		}
		if secs := obs.Seconds(); len(secs) > 0 {
			if out.Observed, err = storage.EncodeObserved(secs); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
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
// every node's results, wherever they are kept, as one report.
type Results struct {
	report.Report
	Answered   int   `json:"answered"` // nodes that answered the query
	BytesMoved int64 `json:"bytes_moved"`
}

// results runs a query over the fleet: every alive node is asked in
// parallel, with a deadline, for what it holds; an origin's own answer wins
// over replicas, and each origin counts once. Names, regions and each
// node's share come from the test's record (what the plans said), not from
// whoever is a member now.
func (n *Node) results(ctx context.Context, testID string, from, to int64, by map[string]bool) (*Results, error) {
	rec, ok, err := n.store.Test(testID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("test %q: not known to this node", testID)
	}
	sc, err := n.reg.scenarioOf(rec)
	if err != nil {
		return nil, fmt.Errorf("test %q: its stored spec: %w", testID, err)
	}
	dur := int64(math.Ceil(sc.Profile.Duration().Seconds()))
	last := to
	if last < 0 || last >= dur {
		last = dur - 1
	}
	if from > last {
		return nil, fmt.Errorf("from %d is past the test's last second %d", from, last)
	}
	q := Query{TestID: testID, From: from, To: to, Resolution: max(1, (last-from+1+119)/120)}

	res := &Results{}
	chosen := map[string]QueryPart{}
	answered := map[string]bool{}
	// First every node's own results, then replicas of whoever is missing.
	own := q
	own.OwnOnly, own.Observed = true, true
	observed := storage.NewObserved()
	n.ask(ctx, own, res, chosen, answered, observed)
	var missing []string
	for _, id := range rec.Nodes {
		if _, ok := chosen[id]; !ok {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		rq := q
		rq.Origins = missing
		n.ask(ctx, rq, res, chosen, answered, nil)
	}
	res.Answered = len(answered)
	x := n.reg.recordExtraOf(testID, rec)
	name := func(id string) string {
		if v := x.Names[id]; v != "" {
			return v
		}
		if m, ok := n.sw.Member(id); ok {
			return m.Name
		}
		return id
	}
	in := report.Input{ID: testID, Scenario: sc, From: from, To: to, Resolution: q.Resolution,
		ByRegion: by["region"], ByNode: by["node"], Exemplars: by["exemplars"], Interrupted: rec.State == StateStopped, Observed: observed}
	if rec.State == StateFailed {
		in.Failed = rec.Reason
	}
	in.Aborted = x.Aborted
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
		until := int64(-1)
		if sp, ok := x.Spans[id]; ok && !x.Done[id] {
			until = sp[1]
		}
		in.Parts = append(in.Parts, report.Part{Node: id, Name: name(id), Region: x.Regions[id],
			Total: decoded[i].total, Points: decoded[i].coarse, Samples: p.Samples, Replica: !p.Own,
			Last: p.Last, Until: until})
	}
	for _, id := range rec.Nodes {
		if _, ok := chosen[id]; !ok {
			in.Missing = append(in.Missing, name(id))
		}
	}
	rep, err := report.Build(in)
	if err != nil {
		return nil, err
	}
	res.Report = *rep
	return res, nil
}

// ask sends q to every alive node in parallel, with a deadline, and keeps
// the best part per origin: the origin's own answer over a replica, else
// the replica holding more seconds. Observed values, when asked for, are
// merged into observed in the order of the nodes' ids.
func (n *Node) ask(ctx context.Context, q Query, res *Results, chosen map[string]QueryPart, answered map[string]bool, observed *storage.Observed) {
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
	var all []answer
	for a := range answers {
		all = append(all, a)
	}
	sort.Slice(all, func(i, j int) bool { return all[i].peer < all[j].peer })
	for _, a := range all {
		if a.err != nil {
			n.log.Warn("results: a node did not answer", "test", q.TestID, "peer", a.peer, "error", a.err)
			continue
		}
		answered[a.peer] = true
		res.BytesMoved += a.bytes
		if observed != nil && len(a.a.Observed) > 0 {
			secs, err := storage.DecodeObserved(a.a.Observed)
			if err != nil {
				n.log.Warn("results: bad observed values", "test", q.TestID, "peer", a.peer, "error", err)
			}
			for _, s := range secs {
				observed.Add(s)
			}
		}
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
