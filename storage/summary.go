package storage

import "time"

// Summary is the report numbers of a set of results. The CLI prints it as
// JSON as is; its maps are never nil.
type Summary struct {
	Requests      int64            `json:"requests"` // completed requests
	Errors        int64            `json:"errors"`
	Dropped       int64            `json:"dropped"`
	Arrivals      int64            `json:"arrivals"`
	Planned       int64            `json:"planned"`
	ErrorRate     float64          `json:"error_rate"`      // Errors/Requests, 0 when none
	ErrorsByClass map[string]int64 `json:"errors_by_class"` // Dim.Error -> Errors, for classes with errors
	StatusClasses map[string]int64 `json:"status_classes"`  // Dim.Status ("2xx") -> Requests, for requests with a response
	BytesIn       int64            `json:"bytes_in"`
	BytesOut      int64            `json:"bytes_out"`
	DurationSec   float64          `json:"duration_s"` // seconds from the first to the last with planned arrivals (see span)
	Rate          Rate             `json:"rate"`
	Latency       Latency          `json:"latency_ms"`
	Service       Latency          `json:"service_ms"`
	// ConnLimited is set when requests waited for a free connection
	// because a node's connection budget was spent.
	ConnLimited *ConnLimited `json:"connection_limited,omitempty"`
}

// ConnLimited says how much a test was held back by its connections: the
// requests that waited for one (their latency includes the wait, since it
// counts from the scheduled time) and for how long.
type ConnLimited struct {
	Waited     int64   `json:"waited"`       // requests that waited
	Share      float64 `json:"share"`        // Waited / Requests
	MeanWaitMs float64 `json:"mean_wait_ms"` // their mean wait
}

// Rate holds per-second rates over a Summary's DurationSec; 0 when it is 0.
type Rate struct {
	Target   float64 `json:"target"`   // Planned / DurationSec (arrivals per second)
	Achieved float64 `json:"achieved"` // Arrivals / DurationSec
	Requests float64 `json:"requests"` // Requests / DurationSec
}

// Latency holds the numbers of one merged histogram, in milliseconds: its
// percentiles are those of all the merged durations, never averages of
// percentiles. All are 0 when nothing was recorded.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P95  float64 `json:"p95"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Min  float64 `json:"min"`
	Mean float64 `json:"mean"`
}

func latencyOf(h *Histogram) Latency {
	if h == nil || h.Count() == 0 {
		return Latency{}
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	return Latency{
		P50: ms(h.Quantile(0.50)), P90: ms(h.Quantile(0.90)), P95: ms(h.Quantile(0.95)), P99: ms(h.Quantile(0.99)),
		Max: ms(h.Max()), Min: ms(h.Min()), Mean: ms(h.Mean()),
	}
}

// accumulator merges buckets into one set of numbers.
type accumulator struct {
	c                Counters
	byClass, status  map[string]int64
	latency, service tally
}

func newAccumulator() *accumulator {
	return &accumulator{byClass: map[string]int64{}, status: map[string]int64{}}
}

func (a *accumulator) add(d Dim, b *Bucket) {
	a.c.Add(b.Counters)
	if d.Error != "" && b.Errors != 0 {
		a.byClass[d.Error] += b.Errors
	}
	if d.Status != "" && b.Requests != 0 {
		a.status[d.Status] += b.Requests
	}
	a.latency.add(b.Latency)
	a.service.add(b.Service)
}

func (a *accumulator) summary(durationSec float64) Summary {
	s := Summary{
		Requests: a.c.Requests, Errors: a.c.Errors, Dropped: a.c.Dropped,
		Arrivals: a.c.Arrivals, Planned: a.c.Planned,
		ErrorsByClass: a.byClass, StatusClasses: a.status,
		BytesIn: a.c.BytesIn, BytesOut: a.c.BytesOut,
		DurationSec: durationSec,
		Latency:     latencyOf(a.latency.histogram()),
		Service:     latencyOf(a.service.histogram()),
	}
	if s.Requests > 0 {
		s.ErrorRate = float64(s.Errors) / float64(s.Requests)
	}
	if w := a.c.ConnWaits; w > 0 {
		s.ConnLimited = &ConnLimited{Waited: w, MeanWaitMs: float64(a.c.ConnWaitNs) / float64(w) / 1e6}
		if s.Requests > 0 {
			s.ConnLimited.Share = float64(w) / float64(s.Requests)
		}
	}
	if durationSec > 0 {
		s.Rate = Rate{
			Target:   float64(s.Planned) / durationSec,
			Achieved: float64(s.Arrivals) / durationSec,
			Requests: float64(s.Requests) / durationSec,
		}
	}
	return s
}

// span returns the number of seconds s covers: from the first to the last
// second in which arrivals were planned, both included. The seconds after
// the last arrival, where only responses come in, are not part of the
// test's duration: counting them would dilute every rate (a 10 s test at
// 10k/s would report 9091/s). A series with no planned arrivals (a filter
// that kept none) spans all its seconds; an empty one spans 0.
func span(s *Series) float64 {
	lo, hi, ok := bounds(s, func(sec *Second) bool {
		for _, b := range sec.Buckets {
			if b != nil && b.Planned > 0 {
				return true
			}
		}
		return false
	})
	if !ok {
		lo, hi, ok = bounds(s, func(*Second) bool { return true })
	}
	if !ok {
		return 0
	}
	return float64(hi-lo) + 1
}

func bounds(s *Series, keep func(*Second) bool) (lo, hi int64, ok bool) {
	for t, sec := range s.Seconds {
		if sec == nil || !keep(sec) {
			continue
		}
		if !ok || t < lo {
			lo = t
		}
		if !ok || t > hi {
			hi = t
		}
		ok = true
	}
	return lo, hi, ok
}

// Summarize merges all the seconds of s, and in them the buckets whose dim
// keep accepts (keep nil accepts all), and computes the numbers.
// DurationSec is the span of the whole series, whatever keep accepts.
func Summarize(s *Series, keep func(Dim) bool) Summary {
	a := newAccumulator()
	if s == nil {
		return a.summary(0)
	}
	for _, sec := range s.Seconds {
		if sec == nil {
			continue
		}
		for d, b := range sec.Buckets {
			if b != nil && (keep == nil || keep(d)) {
				a.add(d, b)
			}
		}
	}
	return a.summary(span(s))
}

// SummarizeBy groups the buckets of s by key(dim) (by step, say: func(d Dim)
// string { return d.Step }) and returns a Summary per group. DurationSec of
// each is the span of the whole series, so that the groups' rates add up to
// the total's.
func SummarizeBy(s *Series, key func(Dim) string) map[string]Summary {
	out := map[string]Summary{}
	if s == nil {
		return out
	}
	groups := map[string]*accumulator{}
	for _, sec := range s.Seconds {
		if sec == nil {
			continue
		}
		for d, b := range sec.Buckets {
			if b == nil {
				continue
			}
			k := key(d)
			a := groups[k]
			if a == nil {
				a = newAccumulator()
				groups[k] = a
			}
			a.add(d, b)
		}
	}
	dur := span(s)
	for k, a := range groups {
		out[k] = a.summary(dur)
	}
	return out
}

// SummarizeSecond gives one second's numbers, for live progress lines and
// per-second series: the Summary of all its buckets, with DurationSec 1.
func SummarizeSecond(sec *Second) Summary {
	a := newAccumulator()
	if sec != nil {
		for d, b := range sec.Buckets {
			if b != nil {
				a.add(d, b)
			}
		}
	}
	return a.summary(1)
}
