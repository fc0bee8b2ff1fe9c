package swarm

import (
	"context"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// PublishRaw publishes bytes as they are, bypassing the envelope encoder
// and Publish's checks: tests use it to send what a broken or hostile node
// would. This node's own validator lets it out (a node trusts what it
// publishes); the peers' validators judge it.
func (t *Topic) PublishRaw(ctx context.Context, b []byte) error {
	return t.ts.t.Publish(ctx, b)
}

// AllowHugeGossip lifts the 16 MiB ceiling of gossip types in this
// process: a test plays a member built without it.
func AllowHugeGossip() { maxGossipTypeBytes = 1 << 30 }

// RequestRaw sends raw bytes on a fresh stream and returns the raw answer.
func (s *Swarm) RequestRaw(ctx context.Context, peerID, protocolID string, b []byte) ([]byte, error) {
	str, err := s.host.NewStream(ctx, peerIDMust(peerID), protocol.ID(protocolID))
	if err != nil {
		return nil, err
	}
	defer str.Close()
	if _, err := str.Write(b); err != nil {
		return nil, err
	}
	if err := str.CloseWrite(); err != nil {
		return nil, err
	}
	return readLimited(str, 1<<22)
}

func peerIDMust(s string) peer.ID {
	p, err := peer.Decode(s)
	if err != nil {
		panic(err)
	}
	return p
}
