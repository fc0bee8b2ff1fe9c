package observe

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Point is one value of one series. T is whole seconds since the test's
// start, the same clock as the load results.
type Point struct {
	Series string
	T      int64
	V      float64
}

// Gap records that a source (or one of its series) could not be read at T,
// and why, so the report can tell "no data" from "value did not change".
// Reason is short (at most 200 bytes) valid UTF-8.
type Gap struct {
	Series string
	T      int64
	Reason string
}

// SamplerConfig configures Run.
type SamplerConfig struct {
	Config *Config
	// Start is the test's second 0; zero means Run's own start.
	Start time.Time
	// End: no round is scheduled after it; zero means until ctx is done.
	End time.Time
	// Client carries every request. The node passes one whose dialer
	// enforces its target policy. Default: a client with a 2 s timeout.
	Client *http.Client
	// OnTick receives each round's points and gaps, from one goroutine, in
	// order of T (T repeats when Every < 1s). It is called between rounds,
	// so it should be quick; a slow OnTick makes rounds skip, not pile up.
	OnTick func(t int64, pts []Point, gaps []Gap)
	// Now is for tests; default time.Now. Waits use real timers for the
	// difference between Now and the next round.
	Now func() time.Time
}

const (
	maxBody        = 16 << 20 // a /metrics page or query response larger than this is a mistake
	maxReason      = 200
	maxReadTimeout = 2 * time.Second
	maxQuerySeries = 20  // per query source and round: keeps a careless query from flooding the results
	maxSeriesName  = 512 // bytes, for a name{labels} series
	defaultTimeout = 2 * time.Second
)

// Run reads every source at Start, Start+Every, ... until End or ctx is
// done, and hands each round to OnTick. A round's T is
// floor((round time - Start) / 1s), where the round time is the scheduled
// one, so T does not drift with the scheduler's lateness.
//
// A round's reads run concurrently, each with a timeout of min(Every, 2s),
// and Run waits for all of them before the next round: a slow source makes
// a Gap, never a pile-up. If rounds fall behind (a paused process, a slow
// OnTick), the missed ones are skipped, not replayed in a burst.
//
// Run returns nil at End, ctx.Err() when ctx is done (a round cut short by
// the cancel is not delivered), and an error for a nil or invalid config.
func Run(ctx context.Context, cfg SamplerConfig) error {
	if cfg.Config == nil {
		return errors.New("observe: nil Config")
	}
	if cfg.OnTick == nil {
		return errors.New("observe: nil OnTick")
	}
	// Re-validate: a Config may have been built by hand, and this also
	// compiles the selectors.
	conf, err := cfg.Config.spec().Compile()
	if err != nil {
		return fmt.Errorf("observe: invalid Config: %w", err)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{Timeout: defaultTimeout}
	}
	readers, err := newReaders(conf, client)
	if err != nil {
		return err
	}
	start := cfg.Start
	if start.IsZero() {
		start = now()
	}
	every := conf.Every
	timeout := min(every, maxReadTimeout)

	next := int64(0) // the lowest round index still to run
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		k := next
		if d := now().Sub(start); d > 0 {
			// Skip the rounds whose slot has passed entirely.
			k = max(k, int64(d/every))
		}
		at := start.Add(time.Duration(k) * every)
		if !cfg.End.IsZero() && at.After(cfg.End) {
			if err := sleepUntil(ctx, now, cfg.End); err != nil {
				return err
			}
			return nil
		}
		if err := sleepUntil(ctx, now, at); err != nil {
			return err
		}
		t := int64(at.Sub(start) / time.Second)
		pts, gaps := runRound(ctx, readers, at, t, timeout)
		if err := ctx.Err(); err != nil {
			return err
		}
		cfg.OnTick(t, pts, gaps)
		next = k + 1
	}
}

// sleepUntil waits until now() reaches at, or ctx is done.
func sleepUntil(ctx context.Context, now func() time.Time, at time.Time) error {
	d := at.Sub(now())
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// reader reads one source once.
type reader interface {
	read(ctx context.Context, at time.Time, t int64, timeout time.Duration) ([]Point, []Gap)
	name() string
}

func newReaders(conf *Config, client *http.Client) ([]reader, error) {
	qc := limitedClient(client)
	out := make([]reader, 0, len(conf.Sources))
	for i := range conf.Sources {
		src := &conf.Sources[i]
		switch src.Kind {
		case KindScrape:
			out = append(out, &scraper{src: src, client: client})
		case KindQuery:
			q, err := newQuerier(src, qc)
			if err != nil {
				return nil, fmt.Errorf("observe: source %s: %w", src.Name, err)
			}
			out = append(out, q)
		default:
			return nil, fmt.Errorf("observe: source %s: unknown kind %q", src.Name, src.Kind)
		}
	}
	return out, nil
}

// runRound reads every source concurrently and returns the points and gaps
// in source order.
func runRound(ctx context.Context, readers []reader, at time.Time, t int64, timeout time.Duration) ([]Point, []Gap) {
	type result struct {
		pts  []Point
		gaps []Gap
	}
	res := make([]result, len(readers))
	var wg sync.WaitGroup
	for i, r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() {
				// Input from the network must never take the node down.
				if p := recover(); p != nil {
					res[i] = result{gaps: []Gap{{Series: r.name(), T: t, Reason: clip(fmt.Sprintf("internal error: %v", p), maxReason)}}}
				}
			}()
			rctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			pts, gaps := r.read(rctx, at, t, timeout)
			res[i] = result{pts, gaps}
		}()
	}
	wg.Wait()
	var pts []Point
	var gaps []Gap
	for _, r := range res {
		pts = append(pts, r.pts...)
		gaps = append(gaps, r.gaps...)
	}
	return pts, gaps
}

// pointOrGap turns a value into a Point, or a Gap when it cannot be stored
// (NaN and infinities do not survive JSON).
func pointOrGap(series string, t int64, v float64) ([]Point, []Gap) {
	switch {
	case math.IsNaN(v):
		return nil, []Gap{{Series: series, T: t, Reason: "value is NaN"}}
	case math.IsInf(v, 1):
		return nil, []Gap{{Series: series, T: t, Reason: "value is +Inf"}}
	case math.IsInf(v, -1):
		return nil, []Gap{{Series: series, T: t, Reason: "value is -Inf"}}
	}
	return []Point{{Series: series, T: t, V: v}}, nil
}

func gapf(series string, t int64, format string, args ...any) []Gap {
	return []Gap{{Series: series, T: t, Reason: clip(fmt.Sprintf(format, args...), maxReason)}}
}

// clip makes s valid UTF-8 on one line and at most limit bytes, cutting on
// a rune boundary: error text from a remote server ends up in the results.
func clip(s string, limit int) string {
	if len(s) > 4*limit+8 {
		s = s[:4*limit+8] // a parse error can quote a huge token; cleaning it all is waste
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) <= limit {
		return s
	}
	ell := "..."
	if limit < 2*len(ell) {
		ell = ""
	}
	cut := max(0, limit-len(ell))
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + ell
}

// spec turns a Config back into the Spec it compiles from, so Run can
// re-validate a Config however it was built.
func (c *Config) spec() Spec {
	s := Spec{Every: c.Every.String()}
	if c.Every == 0 {
		s.Every = "0s"
	}
	for _, src := range c.Sources {
		ss := SourceSpec{Name: src.Name}
		u := ""
		if src.URL != nil {
			u = src.URL.String()
		}
		switch src.Kind {
		case KindScrape:
			ss.Scrape, ss.Select = u, src.Select
		case KindQuery:
			ss.Prometheus, ss.Query = u, src.Query
		}
		s.Sources = append(s.Sources, ss)
	}
	return s
}
