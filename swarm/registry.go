package swarm

import (
	"errors"
	"fmt"
	"math"
	"strings"
)

// Kind says how envelopes of a type travel. A type may have more than one
// kind: the built-in TypePing is both a request and an answer.
type Kind uint8

// The kinds.
const (
	KindGossip  Kind = 1 << iota // published on a topic; rate-limited per sender
	KindRequest                  // sent on a stream (Swarm.Request)
	KindAnswer                   // a stream's reply (a Handler's result)
)

const allKinds = KindGossip | KindRequest | KindAnswer

func (k Kind) String() string {
	if k == 0 {
		return "none"
	}
	var parts []string
	for _, c := range []struct {
		k    Kind
		name string
	}{{KindGossip, "gossip"}, {KindRequest, "request"}, {KindAnswer, "answer"}} {
		if k&c.k != 0 {
			parts = append(parts, c.name)
		}
	}
	if k&^allKinds != 0 {
		parts = append(parts, fmt.Sprintf("kind(%#x)", uint8(k&^allKinds)))
	}
	return strings.Join(parts, "|")
}

// TypeSpec describes one application message type: how it travels and how
// much of it a node accepts from a peer. The application's specs
// (Config.Types) are the wire's one registry; the bodies' schemas live
// beside them in the application.
type TypeSpec struct {
	// Name names the type in logs and errors, e.g. "plan". Required.
	Name string
	// Kind is how the type travels: KindGossip, KindRequest, KindAnswer, or
	// a combination. Required.
	Kind Kind
	// MaxBytes is the largest envelope of this type accepted, in bytes,
	// header and body included. Required; at most 16 MiB for gossip types
	// (every node receives, caches and forwards a gossip message: large
	// data travels on streams) and 256 MiB for the others.
	MaxBytes int
	// RatePerSec and Burst bound the envelopes of a gossip type that each
	// sender may publish: every node keeps a token bucket per (sender,
	// type) and ignores what exceeds it, and Publish refuses it at the
	// sender with ErrRateLimited. Required (positive) for gossip types;
	// zero for the others. Burst defaults to one second's worth
	// (RatePerSec rounded up).
	RatePerSec float64
	Burst      int
}

// Size bounds of TypeSpec.MaxBytes.
const (
	maxTypeBytes = 256 << 20
	minTypeBytes = 64
)

// maxGossipTypeBytes is a variable only so that a test can build the
// hostile node that the issue "Trust no member" describes (60 MiB gossip).
var maxGossipTypeBytes = 16 << 20

func (ts TypeSpec) validate() error {
	var errs []error
	if ts.Name == "" {
		errs = append(errs, errors.New("name: required"))
	}
	if ts.Kind == 0 || ts.Kind&^allKinds != 0 {
		errs = append(errs, fmt.Errorf("kind %s: want gossip, request, answer or a combination", ts.Kind))
	}
	limit := maxTypeBytes
	if ts.Kind&KindGossip != 0 {
		limit = maxGossipTypeBytes
	}
	if ts.MaxBytes < minTypeBytes || ts.MaxBytes > limit {
		errs = append(errs, fmt.Errorf("max bytes %d: outside %d..%d", ts.MaxBytes, minTypeBytes, limit))
	}
	if ts.Kind&KindGossip != 0 {
		if !(ts.RatePerSec > 0) || math.IsInf(ts.RatePerSec, 0) {
			errs = append(errs, fmt.Errorf("rate %v/s: a gossip type needs a positive rate", ts.RatePerSec))
		}
		if ts.Burst < 0 {
			errs = append(errs, fmt.Errorf("burst %d: negative", ts.Burst))
		}
	} else if ts.RatePerSec != 0 || ts.Burst != 0 {
		errs = append(errs, errors.New("rate and burst apply to gossip types only"))
	}
	return errors.Join(errs...)
}

func (ts TypeSpec) withDefaults() TypeSpec {
	if ts.Kind&KindGossip != 0 && ts.Burst == 0 {
		ts.Burst = max(1, int(math.Ceil(ts.RatePerSec)))
	}
	return ts
}

// The swarm's own types, in every registry. An application's registry
// must not define them.
var builtinTypes = map[Type]TypeSpec{
	TypePing:  {Name: "ping", Kind: KindRequest | KindAnswer, MaxBytes: 64 << 10},
	TypeError: {Name: "error", Kind: KindAnswer, MaxBytes: 8 << 10}, // errorEnvelope truncates to fit
}

// ErrWrongKind: a known type that travelled the wrong way (a request type
// published on a topic, a gossip type sent as a request). Returned
// wrapped by Publish, Request and the decoders.
var ErrWrongKind = errors.New("message type of the wrong kind")

// Registry is a validated wire registry: an application's types and the
// swarm's built-ins (TypePing, TypeError). It is immutable and safe for
// concurrent use.
type Registry struct {
	specs  map[Type]TypeSpec
	maxOf  map[Kind]int // the largest MaxBytes of each single kind
	maxAll int
}

// NewRegistry checks the application's types and adds the built-ins. It
// reports every problem at once. A nil or empty types gives the built-ins
// only: such a node pings and answers, and publishes nothing.
func NewRegistry(types map[Type]TypeSpec) (*Registry, error) {
	var errs []error
	for t, spec := range types {
		if t == 0 {
			errs = append(errs, errors.New("type 0: not a type (decoders read it as a missing type)"))
			continue
		}
		if b, ok := builtinTypes[t]; ok {
			errs = append(errs, fmt.Errorf("type %d: reserved for the swarm's %q", uint16(t), b.Name))
			continue
		}
		if err := spec.validate(); err != nil {
			errs = append(errs, fmt.Errorf("type %d (%s): %w", uint16(t), spec.Name, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("wire types: %w", err)
	}
	return newRegistry(types), nil
}

// builtinRegistry holds the built-ins only, as a Config without Types
// does: the registry of NewDecoder and Type.String.
var builtinRegistry = newRegistry(nil)

// newRegistry builds a registry of valid specs and the built-ins.
func newRegistry(types map[Type]TypeSpec) *Registry {
	r := &Registry{specs: make(map[Type]TypeSpec, len(types)+len(builtinTypes)), maxOf: map[Kind]int{}}
	add := func(t Type, spec TypeSpec) {
		spec = spec.withDefaults()
		r.specs[t] = spec
		for _, k := range []Kind{KindGossip, KindRequest, KindAnswer} {
			if spec.Kind&k != 0 {
				r.maxOf[k] = max(r.maxOf[k], spec.MaxBytes)
			}
		}
		r.maxAll = max(r.maxAll, spec.MaxBytes)
	}
	for t, spec := range builtinTypes {
		add(t, spec)
	}
	for t, spec := range types {
		add(t, spec)
	}
	return r
}

// Spec returns the spec of type t, defaults filled in.
func (r *Registry) Spec(t Type) (TypeSpec, bool) {
	spec, ok := r.specs[t]
	return spec, ok
}

// Name returns the type's name for logs: its spec's Name, or "type(N)"
// for a type outside the registry.
func (r *Registry) Name(t Type) string {
	if spec, ok := r.specs[t]; ok {
		return spec.Name
	}
	return fmt.Sprintf("type(%d)", uint16(t))
}

// MaxBytes returns the largest MaxBytes among the types of kind k (one
// kind): what a reader of that kind must be ready to read. 0 when no type
// has it.
func (r *Registry) MaxBytes(k Kind) int { return r.maxOf[k] }

// Check reports whether an envelope of type t and size bytes may travel as
// kind k. Errors wrap ErrUnknownType, ErrWrongKind or ErrTooLarge.
func (r *Registry) Check(t Type, k Kind, size int) error {
	spec, ok := r.specs[t]
	if !ok {
		return fmt.Errorf("%w: %d", ErrUnknownType, uint16(t))
	}
	if spec.Kind&k == 0 {
		return fmt.Errorf("%w: %s is %s, not %s", ErrWrongKind, spec.Name, spec.Kind, k)
	}
	if size > spec.MaxBytes {
		return fmt.Errorf("%w: %s of %d bytes, limit %d", ErrTooLarge, spec.Name, size, spec.MaxBytes)
	}
	return nil
}
