package scenarios

import (
	crand "crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"unsafe"

	"go.yaml.in/yaml/v3"
)

// DefaultTraceSample is the share of arrivals whose traceparent has the
// sampled flag when a scenario does not say: 1%.
const DefaultTraceSample = 0.01

// TracingSpec is the tracing field of a scenario, as written:
//
//	(absent)                on, sample ratio DefaultTraceSample (0.01)
//	tracing: true           the same
//	tracing: false          off: no traceparent header is added
//	tracing: {sample: 0.25} on, with the sampled flag on 25% of arrivals
//	tracing: {enabled: false}
//
// Nil fields take their defaults. JSON and YAML encode it as the map form,
// which decodes back to the same value.
type TracingSpec struct {
	// Enabled turns trace context on or off. Default: true.
	Enabled *bool `yaml:"enabled,omitempty" json:"enabled,omitempty"`
	// Sample is the share of arrivals (0 to 1) whose trace is marked
	// sampled (the traceparent flag 01), which asks the target's tracing
	// to record it. Every request carries a trace id either way. Default:
	// DefaultTraceSample.
	Sample *float64 `yaml:"sample,omitempty" json:"sample,omitempty"`
}

// UnmarshalYAML accepts a boolean or a map with the keys enabled (a
// boolean) and sample (a number); Compile checks the ratio's range. null
// leaves the defaults.
func (t *TracingSpec) UnmarshalYAML(n *yaml.Node) error {
	bad := func(n *yaml.Node, format string, args ...any) error {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: ", n.Line) + fmt.Sprintf(format, args...)}}
	}
	*t = TracingSpec{}
	switch n.Kind {
	case yaml.ScalarNode:
		if n.ShortTag() != "!!bool" {
			return bad(n, "tracing: %q is not true, false or a map like {sample: 0.1}", n.Value)
		}
		var on bool
		if err := n.Decode(&on); err != nil {
			return bad(n, "tracing: %q is not a boolean", n.Value)
		}
		t.Enabled = &on
		return nil
	case yaml.MappingNode:
	default:
		return bad(n, "tracing: must be true, false or a map like {sample: 0.1}")
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if seen[k.Value] {
			return bad(k, "tracing.%s is set twice", k.Value)
		}
		seen[k.Value] = true
		null := v.ShortTag() == "!!null"
		switch k.Value {
		case "enabled":
			if null {
				continue
			}
			var on bool
			if v.Kind != yaml.ScalarNode || v.ShortTag() != "!!bool" || v.Decode(&on) != nil {
				return bad(v, "tracing.enabled: %q is not true or false", v.Value)
			}
			t.Enabled = &on
		case "sample":
			if null {
				continue
			}
			var f float64
			if v.Kind != yaml.ScalarNode || (v.ShortTag() != "!!float" && v.ShortTag() != "!!int") || v.Decode(&f) != nil {
				return bad(v, "tracing.sample: %q is not a number (a ratio 0..1, like 0.1)", v.Value)
			}
			t.Sample = &f
		default:
			return bad(k, "tracing.%s is unknown (known: enabled, sample)", k.Value)
		}
	}
	return nil
}

// Tracing is a compiled scenario's trace context settings.
type Tracing struct {
	// On: every request carries a traceparent header (unless the step's
	// own headers set one), with a trace id per arrival shared by its
	// steps and a span id per request. Default: true.
	On bool
	// Sample is the share of arrivals whose traceparent has the sampled
	// flag (01), drawn per arrival. 0 to 1; default DefaultTraceSample.
	Sample float64
}

// compileTracing checks the tracing field.
func compileTracing(errs *problems, t TracingSpec) Tracing {
	out := Tracing{On: true, Sample: DefaultTraceSample}
	if t.Enabled != nil {
		out.On = *t.Enabled
	}
	if t.Sample != nil {
		if s := *t.Sample; !(s >= 0 && s <= 1) {
			errs.add("tracing.sample", "%v is not a ratio 0..1", s)
		} else {
			out.Sample = s
		}
	}
	return out
}

// traceparentLen is the length of a version-00 traceparent value:
// 00-<32 hex>-<16 hex>-<2 hex>.
const traceparentLen = 55

// headerTraceparent is the header's key in canonical form, as
// compileHeaders stores the user's.
const headerTraceparent = "Traceparent"

// appendTraceparent appends tc as a version-00 traceparent value.
func appendTraceparent(b []byte, tc TraceContext) []byte {
	b = append(b, "00-"...)
	b = hex.AppendEncode(b, tc.TraceID[:])
	b = append(b, '-')
	b = hex.AppendEncode(b, tc.SpanID[:])
	if tc.Sampled {
		return append(b, "-01"...)
	}
	return append(b, "-00"...)
}

// traceparentValue holds a traceparent header's value slice and its bytes
// in one allocation.
type traceparentValue struct {
	v [1]string
	b [traceparentLen]byte
}

// traceparentHeader returns the header value list for tc (what
// http.Header holds under "Traceparent"), with one allocation: the string
// points into the same object as the slice, and its bytes are never
// written again.
func traceparentHeader(tc TraceContext) []string {
	h := new(traceparentValue)
	appendTraceparent(h.b[:0], tc)
	h.v[0] = unsafe.String(&h.b[0], traceparentLen)
	return h.v[:]
}

// parseTraceparent parses a traceparent header value as W3C Trace Context
// level 1 defines it: version 00 is exactly 55 characters; a later version
// (not ff) may add fields after a '-'. Hex is lowercase; the trace id and
// span id must not be all zero.
func parseTraceparent(s string) (TraceContext, bool) {
	var tc TraceContext
	if len(s) < traceparentLen || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return tc, false
	}
	var ver, flags [1]byte
	if !lowerHex(ver[:], s[0:2]) || ver[0] == 0xff || !lowerHex(tc.TraceID[:], s[3:35]) ||
		!lowerHex(tc.SpanID[:], s[36:52]) || !lowerHex(flags[:], s[53:55]) {
		return TraceContext{}, false
	}
	if (ver[0] == 0 && len(s) != traceparentLen) || (len(s) > traceparentLen && s[traceparentLen] != '-') {
		return TraceContext{}, false
	}
	if tc.TraceID == [16]byte{} || tc.SpanID == [8]byte{} {
		return TraceContext{}, false
	}
	tc.Sampled = flags[0]&1 == 1
	return tc, true
}

// lowerHex decodes s, lowercase hex digits only, into dst.
func lowerHex(dst []byte, s string) bool {
	if len(s) != 2*len(dst) {
		return false
	}
	for i := range dst {
		hi, ok1 := nibble(s[2*i])
		lo, ok2 := nibble(s[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func nibble(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// idGen draws trace and span ids for one worker: a ChaCha8 stream seeded
// from crypto/rand, so ids are unpredictable and unique in practice, and
// drawing one takes a few ns with no lock (the generator is the worker's
// alone).
type idGen struct {
	r *mrand.ChaCha8
}

func newIDGen() idGen {
	var seed [32]byte
	_, _ = crand.Read(seed[:]) // never fails (crypto/rand panics rather)
	return idGen{r: mrand.NewChaCha8(seed)}
}

// traceID returns a random trace id, never all zero.
func (g idGen) traceID() (id [16]byte) {
	for {
		a, b := g.r.Uint64(), g.r.Uint64()
		if a|b != 0 {
			binary.BigEndian.PutUint64(id[:8], a)
			binary.BigEndian.PutUint64(id[8:], b)
			return id
		}
	}
}

// spanID returns a random span id, never all zero.
func (g idGen) spanID() (id [8]byte) {
	for {
		if a := g.r.Uint64(); a != 0 {
			binary.BigEndian.PutUint64(id[:], a)
			return id
		}
	}
}

// sampled draws the sampled flag: true with probability ratio.
func (g idGen) sampled(ratio float64) bool {
	switch {
	case ratio <= 0:
		return false
	case ratio >= 1:
		return true
	}
	return float64(g.r.Uint64()>>11)*0x1p-53 < ratio
}
