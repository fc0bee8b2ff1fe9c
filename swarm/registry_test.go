package swarm

import (
	"errors"
	"strings"
	"testing"
)

func TestNewRegistryRefuses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		types map[Type]TypeSpec
		want  []string // every one in the error
	}{
		{"type zero", map[Type]TypeSpec{0: {Name: "x", Kind: KindRequest, MaxBytes: 100}}, []string{"type 0"}},
		{"built-in number", map[Type]TypeSpec{TypePing: {Name: "x", Kind: KindRequest, MaxBytes: 100}}, []string{"reserved", "ping"}},
		{"no name, no kind, no size", map[Type]TypeSpec{7: {}}, []string{"name: required", "kind none", "max bytes 0"}},
		{"unknown kind bit", map[Type]TypeSpec{7: {Name: "x", Kind: 0x80, MaxBytes: 100}}, []string{"kind"}},
		{"gossip without rate", map[Type]TypeSpec{7: {Name: "x", Kind: KindGossip, MaxBytes: 100}}, []string{"positive rate"}},
		{"gossip of 17 MiB", map[Type]TypeSpec{7: {Name: "x", Kind: KindGossip, MaxBytes: 17 << 20, RatePerSec: 1}}, []string{"outside 64..16777216"}},
		{"negative burst", map[Type]TypeSpec{7: {Name: "x", Kind: KindGossip, MaxBytes: 100, RatePerSec: 1, Burst: -1}}, []string{"burst -1"}},
		{"rate on a request", map[Type]TypeSpec{7: {Name: "x", Kind: KindRequest, MaxBytes: 100, RatePerSec: 1}}, []string{"gossip types only"}},
		{"two bad types", map[Type]TypeSpec{7: {Name: "a"}, 8: {Name: "b"}}, []string{"type 7 (a)", "type 8 (b)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewRegistry(tc.types)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestRegistryCheck(t *testing.T) {
	r, err := NewRegistry(testTypes())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		t    Type
		k    Kind
		size int
		want error // nil: allowed
	}{
		{"gossip within its size", tGossip, KindGossip, 1 << 10, nil},
		{"gossip one byte over", tGossip, KindGossip, 1<<10 + 1, ErrTooLarge},
		{"gossip sent as a request", tGossip, KindRequest, 10, ErrWrongKind},
		{"request published", tRequest, KindGossip, 10, ErrWrongKind},
		{"answer as an answer", tAnswer, KindAnswer, 64 << 10, nil},
		{"ping is a request", TypePing, KindRequest, 10, nil},
		{"ping is an answer too", TypePing, KindAnswer, 10, nil},
		{"ping is no gossip", TypePing, KindGossip, 10, ErrWrongKind},
		{"error is an answer", TypeError, KindAnswer, 10, nil},
		{"another registry's type", 10, KindGossip, 10, ErrUnknownType},
		{"unknown", 999, KindGossip, 10, ErrUnknownType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := r.Check(tc.t, tc.k, tc.size)
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	// The readers' sizes: the largest of each kind.
	if g, q, a := r.MaxBytes(KindGossip), r.MaxBytes(KindRequest), r.MaxBytes(KindAnswer); g != 1<<10 || q != 64<<10 || a != 64<<10 {
		t.Fatalf("max bytes: gossip %d, request %d (ping), answer %d", g, q, a)
	}
	// Burst defaults to one second's worth, rounded up.
	if spec, _ := r.Spec(tGossip); spec.Burst != 3 {
		t.Fatalf("burst %d, want 3", spec.Burst)
	}
}

// TestBuiltinsOnly: without the application's types the swarm knows its
// own two, and gossip nothing.
func TestBuiltinsOnly(t *testing.T) {
	r, err := NewRegistry(nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		t    Type
		k    Kind
		want error // nil: allowed
	}{
		{"ping request", TypePing, KindRequest, nil},
		{"error answer", TypeError, KindAnswer, nil},
		{"a test type", tGossip, KindGossip, ErrUnknownType},
		{"type 10", 10, KindGossip, ErrUnknownType},
		{"type 40", 40, KindRequest, ErrUnknownType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := r.Check(tc.t, tc.k, 10)
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	if n := r.MaxBytes(KindGossip); n != 0 {
		t.Fatalf("gossip read up to %d bytes, want 0: no gossip type", n)
	}
	// A Swarm without Types has this registry.
	c := DefaultLocalConfig()
	c.Name = "n"
	if err := c.Validate(); err != nil {
		t.Fatalf("a config without Types: %v", err)
	}
	// The package-level decoder too.
	b, _ := Envelope{Type: tGossip, Body: mustMarshal("hi")}.Marshal()
	if _, err := DecodeEnvelope(b); !errors.Is(err, ErrUnknownType) {
		t.Fatalf("DecodeEnvelope of an application type: %v", err)
	}
}

// TestTypeNames: a registry names its types; a Type alone knows only the
// built-ins' names.
func TestTypeNames(t *testing.T) {
	r, _ := NewRegistry(testTypes())
	for _, tc := range []struct {
		t          Type
		inRegistry string // r.Name(t)
		alone      string // t.String()
	}{
		{TypePing, "ping", "ping"},
		{TypeError, "error", "error"},
		{tGossip, "chat", "type(100)"},
		{tAnswer, "reply", "type(102)"},
		{999, "type(999)", "type(999)"},
	} {
		if got := r.Name(tc.t); got != tc.inRegistry {
			t.Errorf("Name(%d) = %q, want %q", uint16(tc.t), got, tc.inRegistry)
		}
		if got := tc.t.String(); got != tc.alone {
			t.Errorf("Type(%d).String() = %q, want %q", uint16(tc.t), got, tc.alone)
		}
	}
}

func TestDecodeKind(t *testing.T) {
	r, _ := NewRegistry(testTypes())
	dec, err := r.NewDecoder(Limits{})
	if err != nil {
		t.Fatal(err)
	}
	enc := func(e Envelope) []byte {
		b, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	chat := enc(Envelope{Type: tGossip, Sender: "p", Body: mustMarshal("hello")})
	big := enc(Envelope{Type: tGossip, Body: mustMarshal(strings.Repeat("x", 2000))})
	for _, tc := range []struct {
		name string
		in   []byte
		k    Kind
		want error
	}{
		{"chat as gossip", chat, KindGossip, nil},
		{"chat as a request", chat, KindRequest, ErrWrongKind},
		{"chat over its size", big, KindGossip, ErrTooLarge},
		{"another registry's type", enc(Envelope{Type: 30}), KindGossip, ErrUnknownType},
		{"over the registry's largest", make([]byte, 64<<10+1), KindAnswer, ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := dec.DecodeKind(tc.in, tc.k)
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
	// The validator's decode keeps the type of an oversized envelope, to
	// charge its sender's rate.
	if e, err := dec.decode(big, KindGossip); !errors.Is(err, ErrTooLarge) || e.Type != tGossip {
		t.Fatalf("got %+v, %v", e, err)
	}
}

func TestConfigValidatesTypes(t *testing.T) {
	c := DefaultLocalConfig()
	c.Name = "n"
	c.Types = map[Type]TypeSpec{7: {Name: "x", Kind: KindGossip, MaxBytes: 100}}
	c.MaxGossipSenders = -1
	err := c.Validate()
	for _, want := range []string{"wire types", "type 7 (x)", "positive rate", "max gossip senders"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %q", err, want)
		}
	}
	if _, err := New(c); err == nil {
		t.Fatal("New accepted a bad registry")
	}
}
