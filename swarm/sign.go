package swarm

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
)

// ErrBadSignature is returned (wrapped) by VerifySignature for every
// signature that does not prove its claim: a wrong or truncated signature,
// other data, data without a domain, or a peer id that does not embed its
// public key.
var ErrBadSignature = errors.New("bad signature")

// signPrefix starts every byte string that Sign signs. Its NUL ends the
// text that libp2p's own signatures start with ("libp2p-pubsub:",
// "noise-libp2p-static-key:", ...), so no signature of ours passes for one
// of theirs, nor one of theirs for ours.
const signPrefix = "loadswarm/sig/1\x00"

// maxDomain bounds the domain that starts signed data.
const maxDomain = 128

// signedBytes is what Sign signs: signPrefix, then data, which must start
// with its domain: 1 to 128 bytes naming the purpose, then a NUL (e.g.
// "loadswarm/announce/1\x00"). The domain is what keeps a signature made
// for one purpose from being replayed for another: two purposes never
// share one, and no domain is a prefix of another's because each ends at
// its first NUL.
func signedBytes(data []byte) ([]byte, error) {
	if i := bytes.IndexByte(data, 0); i < 1 || i > maxDomain {
		return nil, fmt.Errorf("data must start with its domain (1 to %d bytes naming the purpose, then a NUL, e.g. %q)",
			maxDomain, "loadswarm/announce/1\x00")
	}
	return append([]byte(signPrefix), data...), nil
}

// Sign signs data, which starts with its domain: the purpose, then a NUL,
// e.g. append([]byte("loadswarm/announce/1\x00"), body...). A signature
// verifies only for the same domain, so one made for an announcement
// cannot be replayed as something else. Anyone can check it with
// VerifySignature and the identity's peer id, however the data travelled.
func (id Identity) Sign(data []byte) ([]byte, error) {
	if id.priv == nil {
		return nil, errors.New("sign: no identity")
	}
	msg, err := signedBytes(data)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	sig, err := id.priv.Sign(msg)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return sig, nil
}

// Sign signs data with this node's identity; see Identity.Sign.
func (s *Swarm) Sign(data []byte) ([]byte, error) { return s.cfg.Identity.Sign(data) }

// VerifySignature checks that sig is peerID's signature of data (which
// starts with its domain; see Identity.Sign). The public key comes from the
// peer id itself (Ed25519 peer ids embed it), so a message carries its
// author's proof wherever it is relayed or stored; a peer id that does not
// embed a key is refused. Errors wrap ErrBadSignature.
func VerifySignature(peerID string, data, sig []byte) error {
	pid, err := peer.Decode(peerID)
	if err != nil {
		return fmt.Errorf("verify signature: %w: peer id %q: %v", ErrBadSignature, shortID(peerID), err)
	}
	pub, err := pid.ExtractPublicKey()
	if err != nil {
		return fmt.Errorf("verify signature: %w: peer id %s does not embed its key: %v", ErrBadSignature, shortID(peerID), err)
	}
	msg, err := signedBytes(data)
	if err != nil {
		return fmt.Errorf("verify signature: %w: %v", ErrBadSignature, err)
	}
	ok, err := pub.Verify(msg, sig)
	if err != nil || !ok {
		return fmt.Errorf("verify signature: %w: not %s's signature of this data", ErrBadSignature, shortID(peerID))
	}
	return nil
}
