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
