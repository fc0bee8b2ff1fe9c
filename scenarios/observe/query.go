package observe

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// querier runs an instant query against a Prometheus server.
//
// Naming: a scalar or a one-sample vector is the series named by the
// source; a vector of several samples gives one series per sample, named
// source{label="value",...} (labels sorted, __name__ dropped unless
// dropping it would make two samples collide). A query whose result
// changes between one and several samples therefore changes series names;
// aggregate (sum by (...)) to keep them stable.
type querier struct {
	src *Source
	api v1.API
}

func newQuerier(src *Source, client *http.Client) (*querier, error) {
	c, err := api.NewClient(api.Config{Address: src.URL.String(), Client: client})
	if err != nil {
		return nil, err
	}
	return &querier{src: src, api: v1.NewAPI(c)}, nil
}

func (q *querier) name() string { return q.src.Name }

func (q *querier) read(ctx context.Context, at time.Time, t int64, timeout time.Duration) ([]Point, []Gap) {
	name := q.src.Name
	// The query is evaluated at the round's scheduled time, so its T is
	// exact whatever the network delay. Warnings and infos are ignored.
	val, _, _, err := q.api.Query(ctx, q.src.Query, at, v1.WithTimeout(timeout))
	if err != nil {
		return nil, gapf(name, t, "%s", errReason(ctx, err, timeout))
	}
	switch v := val.(type) {
	case *model.Scalar:
		if v == nil {
			return nil, gapf(name, t, "query returned no value")
		}
		return pointOrGap(name, t, float64(v.Value))
	case model.Vector:
		return vectorPoints(name, t, v)
	case model.Matrix:
		return nil, gapf(name, t, "query returned a range vector (matrix); want an instant vector or a scalar")
	case *model.String:
		return nil, gapf(name, t, "query returned a string; want an instant vector or a scalar")
	case nil:
		return nil, gapf(name, t, "query returned no value")
	default:
		return nil, gapf(name, t, "query returned a %s; want an instant vector or a scalar", v.Type())
	}
}

func vectorPoints(name string, t int64, vec model.Vector) ([]Point, []Gap) {
	vec = nonNil(vec)
	switch len(vec) {
	case 0:
		return nil, gapf(name, t, "query returned no series")
	case 1:
		return samplePoint(name, t, vec[0])
	}
	keys := make([]string, len(vec))
	fill := func(keepName bool) bool {
		seen := make(map[string]struct{}, len(vec))
		for i, s := range vec {
			keys[i] = seriesName(name, s.Metric, keepName)
			if len(keys[i]) > maxSeriesName {
				continue // cut short and dropped below: not a real collision
			}
			if _, dup := seen[keys[i]]; dup {
				return false
			}
			seen[keys[i]] = struct{}{}
		}
		return true
	}
	if !fill(false) {
		fill(true) // samples differ only by metric name
	}
	idx := make([]int, len(vec))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return keys[idx[a]] < keys[idx[b]] })

	short := idx[:0]
	for _, i := range idx {
		if len(keys[i]) <= maxSeriesName {
			short = append(short, i)
		}
	}
	var pts []Point
	var gaps []Gap
	for _, i := range short[:min(len(short), maxQuerySeries)] {
		p, g := samplePoint(keys[i], t, vec[i])
		pts = append(pts, p...)
		gaps = append(gaps, g...)
	}
	if long := len(vec) - len(short); long > 0 {
		gaps = append(gaps, gapf(name, t, "%d series with a name over %d bytes dropped", long, maxSeriesName)...)
	}
	if len(short) > maxQuerySeries {
		gaps = append(gaps, gapf(name, t, "query returned %d series; kept the first %d by labels", len(short), maxQuerySeries)...)
	}
	return pts, gaps
}

// nonNil drops nil samples a hostile or broken server could produce with
// JSON nulls.
func nonNil(vec model.Vector) model.Vector {
	for _, s := range vec {
		if s == nil {
			out := make(model.Vector, 0, len(vec))
			for _, s := range vec {
				if s != nil {
					out = append(out, s)
				}
			}
			return out
		}
	}
	return vec
}

func samplePoint(series string, t int64, s *model.Sample) ([]Point, []Gap) {
	if s.Histogram != nil {
		return nil, gapf(series, t, "value is a native histogram; want a float (e.g. histogram_count or histogram_quantile)")
	}
	return pointOrGap(series, t, float64(s.Value))
}

// seriesName formats source{a="x",b="y"} with sorted labels, quoting like
// PromQL (names that are not legacy-valid are quoted too).
func seriesName(source string, m model.Metric, keepName bool) string {
	names := make([]string, 0, len(m))
	for k := range m {
		if k == model.MetricNameLabel && !keepName {
			continue
		}
		names = append(names, string(k))
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString(source)
	b.WriteByte('{')
	for i, k := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		if model.LegacyValidation.IsValidLabelName(k) {
			b.WriteString(k)
		} else {
			b.WriteString(strconv.Quote(k))
		}
		b.WriteByte('=')
		b.WriteString(strconv.Quote(string(m[model.LabelName(k)])))
		if b.Len() > maxSeriesName {
			break // too long anyway: the caller drops it
		}
	}
	b.WriteByte('}')
	return b.String()
}

// errBodyTooLarge is returned by a response body read past maxBody.
var errBodyTooLarge = errors.New("body over 16 MiB")

// limitedClient returns a copy of c whose responses error past maxBody:
// the Prometheus API client reads whole bodies with no limit of its own.
func limitedClient(c *http.Client) *http.Client {
	cc := *c
	base := cc.Transport
	if base == nil {
		base = http.DefaultTransport
	}
	cc.Transport = limitTransport{base: base, max: maxBody}
	return &cc
}

type limitTransport struct {
	base http.RoundTripper
	max  int64
}

func (t limitTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil || resp == nil || resp.Body == nil {
		return resp, err
	}
	resp.Body = &limitedBody{rc: resp.Body, left: t.max}
	return resp, nil
}

type limitedBody struct {
	rc   io.ReadCloser
	left int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		// At the limit: any further byte means the body is too large.
		var one [1]byte
		n, err := b.rc.Read(one[:])
		if n > 0 {
			return 0, errBodyTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.rc.Read(p)
	b.left -= int64(n)
	return n, err
}

func (b *limitedBody) Close() error { return b.rc.Close() }
