package scenarios

import (
	"encoding/hex"
	"time"
)

// TraceContext is the W3C trace context a request carried in its
// traceparent header: the trace it starts and the id of the client span
// that sent it (the parent of the server's first span).
type TraceContext struct {
	TraceID [16]byte
	SpanID  [8]byte
	Sampled bool // the sampled flag (01) was set
}

// IsZero reports whether tc is unset (tracing off for this request).
func (tc TraceContext) IsZero() bool { return tc.TraceID == [16]byte{} }

// TraceIDString is the trace id as 32 lowercase hex digits, as Jaeger and
// Tempo take it.
func (tc TraceContext) TraceIDString() string { return hex.EncodeToString(tc.TraceID[:]) }

// SpanIDString is the span id as 16 lowercase hex digits.
func (tc TraceContext) SpanIDString() string { return hex.EncodeToString(tc.SpanID[:]) }

// RequestEvent is one finished request, as RunConfig.OnRequest sees it
// (metrics, spans). It is the executor's: an observer copies what it keeps.
type RequestEvent struct {
	Step    string
	Method  string
	Status  int           // HTTP status; 0 when no response came
	Class   string        // error class (ErrTimeout, ...); "" for success
	Sent    time.Time     // when it was sent; for one never sent (a template failed), End
	End     time.Time     // when the response ended or the request failed
	Latency time.Duration // from the intended send time (coordinated-omission corrected)
	BytesIn int64
	// Trace is the trace context the request carried: zero when tracing
	// is off, when the request was not sent (a template failed), and when
	// the user's own traceparent header is not valid.
	Trace TraceContext
}
