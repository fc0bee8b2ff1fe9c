package swarm

import (
	"errors"
	"strings"
	"testing"
)

// Test types: one of each kind.
const (
	tGossip  Type = 100
	tRequest Type = 101
	tAnswer  Type = 102
)

func testTypes() map[Type]TypeSpec {
	return map[Type]TypeSpec{
		tGossip:  {Name: "chat", Kind: KindGossip, MaxBytes: 1 << 10, RatePerSec: 2.5},
		tRequest: {Name: "ask", Kind: KindRequest, MaxBytes: 2 << 10},
		tAnswer:  {Name: "reply", Kind: KindAnswer, MaxBytes: 64 << 10},
	}
}

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
		{"a legacy type is unknown here", TypePlan, KindGossip, 10, ErrUnknownType},
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

func TestLegacyRegistryCapped(t *testing.T) {
	r := legacyRegistry(4096)
	for ty, spec := range r.specs {
		if spec.MaxBytes > 4096 {
			t.Errorf("%s: %d bytes above the cap", spec.Name, spec.MaxBytes)
		}
		if !ty.Known() {
			t.Errorf("%s: not Known", spec.Name)
		}
	}
	// The node's limit of 64 MiB lets query answers through, not gossip.
	r = legacyRegistry(64 << 20)
	if r.MaxBytes(KindAnswer) != 64<<20 || r.MaxBytes(KindGossip) > 2<<20 {
		t.Fatalf("answer %d, gossip %d", r.MaxBytes(KindAnswer), r.MaxBytes(KindGossip))
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
		{"legacy type", enc(Envelope{Type: TypeStats}), KindGossip, ErrUnknownType},
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
