package node

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/loadswarm/loadswarm/scenarios/observe"
	"github.com/loadswarm/loadswarm/storage"
)

// Observed is the body of TypeObserved: seconds that a test's scheduler
// read from the system under test (observe:), for every node of the test
// to keep with the results.
type Observed struct {
	ID      string `cbor:"1,keyasint"`
	Seconds []byte `cbor:"2,keyasint"` // storage.EncodeObserved
}

// observeSlack lets the observer read a little past the test's end: the
// system's reaction to its last seconds (and the results' latest) is part
// of the story.
const observeSlack = 2 * time.Second

// observeIfLeading starts or stops this node's observer of the system under
// test: it runs while this node schedules the test (the loop goroutine
// calls it), so the sources are read once however large the fleet, and
// whoever takes over the scheduling takes over the reading.
func (t *loadTest) observeIfLeading(leading bool) {
	cfg := t.sc.Observe
	if cfg == nil || len(cfg.Sources) == 0 {
		return
	}
	if !leading {
		if t.observeCancel != nil {
			t.observeCancel()
			t.observeCancel = nil
			t.log.Info("no longer observing the system under test")
		}
		return
	}
	p := t.follower.Plan()
	if t.observeCancel != nil || p == nil {
		return
	}
	ctx, cancel := context.WithCancel(t.ctx)
	t.observeCancel = cancel
	start := p.Start
	end := start.Add(t.sc.Profile.Duration() + observeSlack)
	client := &http.Client{Transport: t.reg.n.transport(t.sc), Timeout: 2 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	t.log.Info("observing the system under test", "sources", len(cfg.Sources), "every", cfg.Every.String())
	t.reg.wg.Add(1)
	go func() {
		defer t.reg.wg.Done()
		defer client.CloseIdleConnections()
		err := observe.Run(ctx, observe.SamplerConfig{Config: cfg, Start: start, End: end, Client: client,
			OnTick: func(ts int64, pts []observe.Point, gaps []observe.Gap) { t.observed(ts, pts, gaps) }})
		if err != nil && ctx.Err() == nil {
			t.log.Warn("observer stopped", "error", err)
		}
	}()
}

// observed keeps one round of readings and publishes it to the test's
// nodes.
func (t *loadTest) observed(ts int64, pts []observe.Point, gaps []observe.Gap) {
	if ts < 0 || ts > t.lastSecond()+int64(observeSlack/time.Second) {
		return
	}
	sec := &storage.ObservedSecond{T: ts}
	for _, p := range pts {
		if sec.Values == nil {
			sec.Values = map[string]float64{}
		}
		sec.Values[p.Series] = p.V
	}
	for _, g := range gaps {
		if sec.Gaps == nil {
			sec.Gaps = map[string]string{}
		}
		sec.Gaps[g.Series] = g.Reason
	}
	if err := sec.Validate(); err != nil {
		t.log.Warn("observed values not kept", "error", err)
		return
	}
	secs := []*storage.ObservedSecond{sec}
	if err := t.reg.n.store.PutObserved(t.id, t.reg.self, secs); err != nil {
		t.log.Warn("could not store observed values", "error", err)
	}
	b, err := storage.EncodeObserved(secs)
	if err != nil {
		return
	}
	t.publish(TypeObserved, Observed{ID: t.id, Seconds: b})
}

// onObserved keeps observed seconds from another node: only from a node
// that scheduled a plan this node followed (a member that never led the
// test cannot put numbers about the system under test into its results),
// and only for the test's seconds.
func (t *loadTest) onObserved(from string, o *Observed) {
	t.mu.Lock()
	ok := t.schedulers[from]
	t.mu.Unlock()
	if !ok {
		t.logRefusal(from, "observed values from a node that never scheduled this test")
		return
	}
	secs, err := storage.DecodeObserved(o.Seconds)
	if err != nil {
		t.logRefusal(from, "bad observed values: "+err.Error())
		return
	}
	limit := t.lastSecond() + int64(observeSlack/time.Second)
	for _, s := range secs {
		if s.T > limit {
			t.logRefusal(from, fmt.Sprintf("observed values for second %d, past the test's end", s.T))
			return
		}
	}
	if err := t.reg.n.store.PutObserved(t.id, from, secs); err != nil {
		t.log.Warn("could not store observed values", "origin", from, "error", err)
	}
}
