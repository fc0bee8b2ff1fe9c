package swarm

import (
	"errors"
	"fmt"
	"sync"

	"github.com/fxamacker/cbor/v2"
)

// Type says what an envelope's body is. Receivers reject a type they do not
// know (ErrUnknownType), so adding a type is a wire change: add it here, with
// its body's schema in the owning package.
type Type uint16

// The envelope types of this wire version. Numbers are never reused.
const (
	TypePing         Type = 1  // a liveness or echo request; body: anything small
	TypeError        Type = 2  // a failed request; body: ErrorBody
	TypeTestAnnounce Type = 10 // fleet topic: a test was submitted
	TypeTestStop     Type = 11 // fleet topic: stop a test
	TypeTestReady    Type = 12 // fleet topic: a node accepts or declines a test
	TypePlan         Type = 20 // per-test topic: the scheduler's plan
	TypeLease        Type = 21 // per-test topic: a share's lease renewal
	TypeStats        Type = 30 // per-test topic: per-second summaries
	TypeQuery        Type = 40 // stream: a result query
	TypeQueryResult  Type = 41 // stream: a result query's answer
	TypePlanFetch    Type = 42 // stream: ask a node for the current plan
	TypePlanResponse Type = 43 // stream: the plan asked for
)

var typeNames = map[Type]string{
	TypePing:         "ping",
	TypeError:        "error",
	TypeTestAnnounce: "test-announce",
	TypeTestStop:     "test-stop",
	TypeTestReady:    "test-ready",
	TypePlan:         "plan",
	TypeLease:        "lease",
	TypeStats:        "stats",
	TypeQuery:        "query",
	TypeQueryResult:  "query-result",
	TypePlanFetch:    "plan-fetch",
	TypePlanResponse: "plan-response",
}

// Known reports whether t is a type of this wire version.
func (t Type) Known() bool { _, ok := typeNames[t]; return ok }

func (t Type) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type(%d)", uint16(t))
}

// Errors returned by Decoder.Decode (wrapped; test with errors.Is).
var (
	// ErrTooLarge: the message is longer than Limits.MaxBytes.
	ErrTooLarge = errors.New("message too large")
	// ErrMalformed: the bytes are not one well-formed CBOR envelope within
	// the limits (depth, array and map lengths), or a required field is missing.
	ErrMalformed = errors.New("malformed message")
	// ErrUnknownType: a well-formed envelope of a type this version does not know.
	ErrUnknownType = errors.New("unknown message type")
)

// Envelope is the one wire format of every message: gossip, streams and
// stream answers alike.
type Envelope struct {
	Type    Type
	Version uint16 // the version of the body's schema, chosen by its owner
	Sender  string // peer id of the node that made it; Publish and Request set it
	TestID  string // the test this message belongs to; empty for fleet-wide messages
	Body    []byte // the body as raw CBOR; see NewEnvelope and DecodeBody
}

// wireEnvelope fixes the field numbers. Integer keys keep envelopes small;
// fields that newer versions add get new numbers and older decoders skip them.
type wireEnvelope struct {
	Type    Type            `cbor:"1,keyasint"`
	Version uint16          `cbor:"2,keyasint,omitempty"`
	Sender  string          `cbor:"3,keyasint,omitempty"`
	TestID  string          `cbor:"4,keyasint,omitempty"`
	Body    cbor.RawMessage `cbor:"5,keyasint,omitempty"`
}

// ErrorBody is the body of a TypeError answer.
type ErrorBody struct {
	Message string `cbor:"1,keyasint"`
}

// NewEnvelope encodes body (any CBOR-encodable value; nil for none) into an
// envelope of type t for test testID (empty for fleet-wide messages).
func NewEnvelope(t Type, version uint16, testID string, body any) (Envelope, error) {
	e := Envelope{Type: t, Version: version, TestID: testID}
	if body != nil {
		b, err := encMode.Marshal(body)
		if err != nil {
			return Envelope{}, fmt.Errorf("encode %s body: %w", t, err)
		}
		e.Body = b
	}
	return e, nil
}

// Marshal encodes the envelope. It refuses unknown types so that a bug
// shows at the sender.
func (e Envelope) Marshal() ([]byte, error) {
	if !e.Type.Known() {
		return nil, fmt.Errorf("encode envelope: %w: %s", ErrUnknownType, e.Type)
	}
	return encMode.Marshal(wireEnvelope{
		Type: e.Type, Version: e.Version, Sender: e.Sender, TestID: e.TestID,
		Body: cbor.RawMessage(e.Body),
	})
}

// DecodeBody decodes the body into v (a pointer) with the default limits.
// Fields of v that the body lacks keep their values; body fields that v
// lacks (added by newer versions) are ignored.
func (e Envelope) DecodeBody(v any) error {
	if len(e.Body) == 0 {
		return fmt.Errorf("decode %s body: %w: empty body", e.Type, ErrMalformed)
	}
	if err := defaultDecoder().dm.Unmarshal(e.Body, v); err != nil {
		return fmt.Errorf("decode %s body: %w: %v", e.Type, ErrMalformed, err)
	}
	return nil
}

// Limits bound what a decoder accepts from the network. A zero field takes
// the default of DefaultLimits.
type Limits struct {
	MaxBytes       int // longest message in bytes; default 1 MiB
	MaxDepth       int // deepest nesting of arrays and maps, envelope included; default 16 (min 4)
	MaxArrayLength int // most elements in one array; default 65536 (min 16)
	MaxMapPairs    int // most pairs in one map; default 4096 (min 16)
}

// DefaultLimits returns the limits used when none are given: 1 MiB fits a
// per-second summary of a large test many times over, and the length limits
// keep the memory a decoded message can claim near its size on the wire.
func DefaultLimits() Limits {
	return Limits{MaxBytes: 1 << 20, MaxDepth: 16, MaxArrayLength: 65536, MaxMapPairs: 4096}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxBytes == 0 {
		l.MaxBytes = d.MaxBytes
	}
	if l.MaxDepth == 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxArrayLength == 0 {
		l.MaxArrayLength = d.MaxArrayLength
	}
	if l.MaxMapPairs == 0 {
		l.MaxMapPairs = d.MaxMapPairs
	}
	return l
}

// Validate reports every limit out of range.
func (l Limits) Validate() error {
	l = l.withDefaults()
	var errs []error
	if l.MaxBytes < 64 {
		errs = append(errs, fmt.Errorf("limits: MaxBytes %d is below 64", l.MaxBytes))
	}
	if l.MaxDepth < 4 || l.MaxDepth > 256 {
		errs = append(errs, fmt.Errorf("limits: MaxDepth %d is outside 4..256", l.MaxDepth))
	}
	if l.MaxArrayLength < 16 {
		errs = append(errs, fmt.Errorf("limits: MaxArrayLength %d is below 16", l.MaxArrayLength))
	}
	if l.MaxMapPairs < 16 {
		errs = append(errs, fmt.Errorf("limits: MaxMapPairs %d is below 16", l.MaxMapPairs))
	}
	return errors.Join(errs...)
}

// Decoder decodes envelopes from untrusted bytes within its limits. It is
// safe for concurrent use.
type Decoder struct {
	lim Limits
	dm  cbor.DecMode
}

// NewDecoder returns a decoder with limits l (zero fields take defaults).
func NewDecoder(l Limits) (*Decoder, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	l = l.withDefaults()
	dm, err := cbor.DecOptions{
		MaxNestedLevels:  l.MaxDepth,
		MaxArrayElements: l.MaxArrayLength,
		MaxMapPairs:      l.MaxMapPairs,
		DupMapKey:        cbor.DupMapKeyEnforcedAPF, // one meaning per message
		TagsMd:           cbor.TagsForbidden,        // nothing of ours uses tags
		IndefLength:      cbor.IndefLengthForbidden, // every length is known up front
	}.DecMode()
	if err != nil {
		return nil, fmt.Errorf("cbor decoder: %w", err)
	}
	return &Decoder{lim: l, dm: dm}, nil
}

// Limits returns the decoder's limits, defaults filled in.
func (d *Decoder) Limits() Limits { return d.lim }

// Decode decodes one envelope that must fill b exactly. It never panics;
// errors wrap ErrTooLarge, ErrMalformed or ErrUnknownType.
func (d *Decoder) Decode(b []byte) (Envelope, error) {
	if len(b) > d.lim.MaxBytes {
		return Envelope{}, fmt.Errorf("decode envelope: %w: %d bytes, limit %d", ErrTooLarge, len(b), d.lim.MaxBytes)
	}
	var w wireEnvelope
	if err := d.dm.Unmarshal(b, &w); err != nil {
		return Envelope{}, fmt.Errorf("decode envelope: %w: %v", ErrMalformed, err)
	}
	if w.Type == 0 {
		return Envelope{}, fmt.Errorf("decode envelope: %w: no type", ErrMalformed)
	}
	if !w.Type.Known() {
		return Envelope{}, fmt.Errorf("decode envelope: %w: %d", ErrUnknownType, uint16(w.Type))
	}
	return Envelope{Type: w.Type, Version: w.Version, Sender: w.Sender, TestID: w.TestID, Body: []byte(w.Body)}, nil
}

// DecodeEnvelope decodes b with the default limits.
func DecodeEnvelope(b []byte) (Envelope, error) { return defaultDecoder().Decode(b) }

var defaultDecoder = sync.OnceValue(func() *Decoder {
	d, err := NewDecoder(Limits{})
	if err != nil {
		panic(err) // the defaults are constants: a failure here is a bug in this file
	}
	return d
})

// encMode writes deterministic CBOR (sorted map keys, smallest integers),
// without tags, which the decoder refuses.
var encMode = func() cbor.EncMode {
	em, err := cbor.EncOptions{Sort: cbor.SortCoreDeterministic, TagsMd: cbor.TagsForbidden}.EncMode()
	if err != nil {
		panic(err)
	}
	return em
}()
