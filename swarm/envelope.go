package swarm

import (
	"errors"
	"fmt"
	"sync"

	"github.com/fxamacker/cbor/v2"
)

// Type says what an envelope's body is. The swarm defines only its own
// (TypePing, TypeError); the application defines every other type in its
// registry (Config.Types: each type's name, kind, size and rate) with their
// bodies' schemas beside it. Receivers refuse a type the registry lacks
// (ErrUnknownType), so adding a type is a wire change. Numbers are never
// reused.
type Type uint16

// The swarm's own types, in every registry.
const (
	TypePing  Type = 1 // a liveness or echo request (and its answer); body: anything small
	TypeError Type = 2 // a failed request's answer; body: ErrorBody
)

// String names the built-in types ("ping", "error"); any other type prints
// as "type(N)": its name is in the application's registry (Registry.Name).
func (t Type) String() string { return builtinRegistry.Name(t) }

// Errors returned by the decoders, Publish and Request (wrapped; test with
// errors.Is). ErrWrongKind is beside the registry.
var (
	// ErrTooLarge: the message is longer than its type's MaxBytes or the
	// decoder's Limits.MaxBytes.
	ErrTooLarge = errors.New("message too large")
	// ErrMalformed: the bytes are not one well-formed CBOR envelope within
	// the limits (depth, array and map lengths), a required field is
	// missing, or the sender named inside is not the peer that sent it.
	ErrMalformed = errors.New("malformed message")
	// ErrUnknownType: a well-formed envelope of a type the registry lacks.
	ErrUnknownType = errors.New("unknown message type")
)

// errForgedSender: an envelope whose Sender is not the peer that signed or
// sent it. It is ErrMalformed for callers, and its own refusal reason.
var errForgedSender = fmt.Errorf("%w: forged sender", ErrMalformed)

// errOverLimits: well-formed CBOR beyond the decoder's depth or lengths,
// which a node with other Limits may accept. ErrMalformed for callers.
var errOverLimits = fmt.Errorf("%w: over the decoder's limits", ErrMalformed)

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

// EncodeBody encodes a body as NewEnvelope does: what a receiver's
// DecodeBody reads back exactly.
func EncodeBody(body any) ([]byte, error) { return encMode.Marshal(body) }

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

// Marshal encodes the envelope. It refuses type 0, which decoders read as
// no type; Publish and Request check the type against the registry.
func (e Envelope) Marshal() ([]byte, error) {
	if e.Type == 0 {
		return nil, fmt.Errorf("encode envelope: %w: no type", ErrMalformed)
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
	// MaxBytes is the longest message in bytes; default 1 MiB (for
	// Registry.NewDecoder: the registry's largest MaxBytes). A Swarm
	// ignores it: each type's MaxBytes in its registry bounds its
	// envelopes.
	MaxBytes       int
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

// Decoder decodes envelopes from untrusted bytes within its limits, and
// accepts only the types of its registry, each up to its MaxBytes. It is
// safe for concurrent use.
type Decoder struct {
	lim Limits
	reg *Registry
	dm  cbor.DecMode
}

// NewDecoder returns a decoder with limits l (zero fields take
// DefaultLimits) that knows the built-in types only (TypePing, TypeError)
// and refuses every other type with ErrUnknownType. Decoders of an
// application's types come from Registry.NewDecoder.
func NewDecoder(l Limits) (*Decoder, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	return builtinRegistry.NewDecoder(l.withDefaults())
}

// NewDecoder returns a decoder of the registry's types with limits l. A
// zero l.MaxBytes takes the registry's largest MaxBytes; other zero fields
// take DefaultLimits.
func (r *Registry) NewDecoder(l Limits) (*Decoder, error) {
	if l.MaxBytes == 0 {
		l.MaxBytes = r.maxAll
	}
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
	return &Decoder{lim: l, reg: r, dm: dm}, nil
}

// Limits returns the decoder's limits, defaults filled in.
func (d *Decoder) Limits() Limits { return d.lim }

// Registry returns the registry whose types the decoder accepts.
func (d *Decoder) Registry() *Registry { return d.reg }

// Decode decodes one envelope that must fill b exactly, of any kind. It
// never panics; errors wrap ErrTooLarge, ErrMalformed or ErrUnknownType.
func (d *Decoder) Decode(b []byte) (Envelope, error) { return d.DecodeKind(b, allKinds) }

// DecodeKind is Decode for an envelope that travelled as kind k: a type
// without that kind is refused with ErrWrongKind.
func (d *Decoder) DecodeKind(b []byte, k Kind) (Envelope, error) {
	e, err := d.decode(b, k)
	if err != nil {
		return Envelope{}, err
	}
	return e, nil
}

// decode is DecodeKind, but on ErrWrongKind and ErrTooLarge of a known type
// the envelope's Type is set: the gossip validator charges the sender's
// rate for it.
func (d *Decoder) decode(b []byte, k Kind) (Envelope, error) {
	if len(b) > d.lim.MaxBytes {
		return Envelope{}, fmt.Errorf("decode envelope: %w: %d bytes, limit %d", ErrTooLarge, len(b), d.lim.MaxBytes)
	}
	var w wireEnvelope
	if err := d.dm.Unmarshal(b, &w); err != nil {
		var depth *cbor.MaxNestedLevelError
		var arr *cbor.MaxArrayElementsError
		var pairs *cbor.MaxMapPairsError
		if errors.As(err, &depth) || errors.As(err, &arr) || errors.As(err, &pairs) {
			return Envelope{}, fmt.Errorf("decode envelope: %w: %v", errOverLimits, err)
		}
		return Envelope{}, fmt.Errorf("decode envelope: %w: %v", ErrMalformed, err)
	}
	if w.Type == 0 {
		return Envelope{}, fmt.Errorf("decode envelope: %w: no type", ErrMalformed)
	}
	if err := d.reg.Check(w.Type, k, len(b)); err != nil {
		if errors.Is(err, ErrUnknownType) {
			return Envelope{}, fmt.Errorf("decode envelope: %w", err)
		}
		return Envelope{Type: w.Type}, fmt.Errorf("decode envelope: %w", err)
	}
	return Envelope{Type: w.Type, Version: w.Version, Sender: w.Sender, TestID: w.TestID, Body: []byte(w.Body)}, nil
}

// DecodeEnvelope decodes b with the default limits; it knows the built-in
// types only (see NewDecoder): an answer of TypeError or TypePing, say.
func DecodeEnvelope(b []byte) (Envelope, error) { return defaultDecoder().Decode(b) }

var defaultDecoder = sync.OnceValue(func() *Decoder {
	d, err := NewDecoder(Limits{})
	if err != nil {
		panic(err) // the defaults are constants: a failure here is a bug in this file
	}
	return d
})

// encMode writes deterministic CBOR (sorted map keys, smallest integers),
// without tags, which the decoder refuses. Times travel as RFC 3339 text
// with nanoseconds: the library's default, whole Unix seconds, would move a
// test's start and a lease's send time by up to a second, and a body
// decoded and encoded again would no longer be the same.
var encMode = func() cbor.EncMode {
	em, err := cbor.EncOptions{Sort: cbor.SortCoreDeterministic, TagsMd: cbor.TagsForbidden, Time: cbor.TimeRFC3339Nano}.EncMode()
	if err != nil {
		panic(err)
	}
	return em
}()
