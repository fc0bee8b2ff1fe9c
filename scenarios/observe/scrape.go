package observe

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"

	dto "github.com/prometheus/client_model/go"
)

// scrapeAccept asks for the Prometheus text format with UTF-8 names left
// unescaped, as Prometheus itself scrapes, so a selector matches the names
// the application really exposes. Protobuf is deliberately not offered.
const scrapeAccept = "text/plain;version=" + expfmt.TextVersion + ";escaping=" + model.AllowUTF8 + ";q=1,*/*;q=0.1"

// scraper reads a text-format endpoint and sums the samples matching the
// source's selector.
//
// Matching works on the samples as Prometheus would store them (expfmt's
// ExtractSamples): a counter, gauge or untyped sample under its own name; a
// summary as name{quantile=...}, name_sum and name_count; a histogram as
// name_bucket{le=...}, name_sum and name_count. So a histogram or summary
// is observed by naming one of those series (e.g. http_duration_seconds_count);
// its bare name matches nothing. The value is the SUM of all matched samples,
// which is what "total replicas" or "total queue length" across pods wants;
// narrow the selector to observe a single series.
type scraper struct {
	src    *Source
	client *http.Client
}

func (s *scraper) name() string { return s.src.Name }

func (s *scraper) read(ctx context.Context, _ time.Time, t int64, timeout time.Duration) ([]Point, []Gap) {
	name := s.src.Name
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.src.URL.String(), nil)
	if err != nil {
		return nil, gapf(name, t, "%v", err)
	}
	req.Header.Set("Accept", scrapeAccept)
	resp, err := s.client.Do(req)
	if err != nil {
		return nil, gapf(name, t, "%s", errReason(ctx, err, timeout))
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		// Drain a little so the connection can be reused.
		_, _ = io.CopyN(io.Discard, resp.Body, 4096)
		return nil, gapf(name, t, "HTTP %d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	switch expfmt.ResponseFormat(resp.Header).FormatType() {
	case expfmt.TypeProtoDelim, expfmt.TypeProtoText, expfmt.TypeProtoCompact:
		return nil, gapf(name, t, "unsupported content type %q (want the text format)", resp.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, gapf(name, t, "%s", errReason(ctx, err, timeout))
	}
	if len(body) > maxBody {
		return nil, gapf(name, t, "body over 16 MiB")
	}
	fams, err := parseText(body)
	if err != nil {
		return nil, gapf(name, t, "bad text format: %v", err)
	}
	sum, n := sumMatching(fams, s.src.matchers)
	if n == 0 {
		return nil, gapf(name, t, "no series matched select")
	}
	return pointOrGap(name, t, sum)
}

// parseText parses the text exposition format with UTF-8 names allowed, as
// requested in scrapeAccept.
func parseText(body []byte) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(bytes.NewReader(body))
}

// sumMatching sums the samples of fams that all matchers accept.
func sumMatching(fams map[string]*dto.MetricFamily, ms []*labels.Matcher) (sum float64, n int) {
	var nameMs []*labels.Matcher
	for _, m := range ms {
		if m.Name == model.MetricNameLabel {
			nameMs = append(nameMs, m)
		}
	}
	for famName, f := range fams {
		// Skip whole families the name matchers rule out, so the usual
		// `metric{...}` selector only flattens the family it names.
		if !familyMayMatch(famName, f.GetType(), nameMs) {
			continue
		}
		samples, err := expfmt.ExtractSamples(&expfmt.DecodeOptions{}, f)
		if err != nil {
			continue // an unknown family type: nothing a selector can mean
		}
		for _, smp := range samples {
			if matches(smp.Metric, ms) {
				sum += float64(smp.Value)
				n++
			}
		}
	}
	return sum, n
}

// familyMayMatch reports whether some series name of the family satisfies
// every __name__ matcher.
func familyMayMatch(name string, typ dto.MetricType, nameMs []*labels.Matcher) bool {
	if len(nameMs) == 0 {
		return true
	}
	var cands []string
	switch typ {
	case dto.MetricType_SUMMARY:
		cands = []string{name, name + "_sum", name + "_count"}
	case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
		cands = []string{name + "_bucket", name + "_sum", name + "_count"}
	default:
		cands = []string{name}
	}
next:
	for _, c := range cands {
		for _, m := range nameMs {
			if !m.Matches(c) {
				continue next
			}
		}
		return true
	}
	return false
}

// matches applies Prometheus semantics: a missing label has the empty value.
func matches(m model.Metric, ms []*labels.Matcher) bool {
	for _, x := range ms {
		if !x.Matches(string(m[model.LabelName(x.Name)])) {
			return false
		}
	}
	return true
}

// errReason turns a request error into a short reason.
func errReason(ctx context.Context, err error, timeout time.Duration) string {
	if errors.Is(err, errBodyTooLarge) {
		return "body over 16 MiB"
	}
	var ne net.Error
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Sprintf("timed out after %s", timeout)
	}
	// Drop url.Error's `Get "http://..."` prefix: the source name already
	// says which URL it was.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}
