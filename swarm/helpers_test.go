package swarm

import (
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

func peerIDOf(t *testing.T, id Identity) peer.ID {
	p, err := peer.IDFromPrivateKey(id.priv)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The wire registry of this package's internal tests, as an application
// would define it: one type of each kind. (The external tests use
// swarmtest.Types.)
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

// testDecoder decodes the types of testTypes with the default limits.
func testDecoder(t testing.TB) *Decoder {
	t.Helper()
	r, err := NewRegistry(testTypes())
	if err != nil {
		t.Fatal(err)
	}
	dec, err := r.NewDecoder(Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return dec
}
