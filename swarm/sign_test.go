package swarm

import (
	"bytes"
	"errors"
	"testing"
)

func TestSignVerify(t *testing.T) {
	id, _ := GenerateIdentity()
	other, _ := GenerateIdentity()
	domain := func(d, body string) []byte { return []byte(d + "\x00" + body) }
	data := domain("loadswarm/announce/1", "test t-1: 100/s for 60s")
	sig, err := id.Sign(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifySignature(id.PeerID(), data, sig); err != nil {
		t.Fatalf("round trip: %v", err)
	}
	flip := func(b []byte, i int) []byte {
		c := append([]byte(nil), b...)
		c[i] ^= 1
		return c
	}
	for _, tc := range []struct {
		name      string
		peerID    string
		data, sig []byte
	}{
		{"a changed byte of data", id.PeerID(), flip(data, len(data)-1), sig},
		{"a changed byte of the domain", id.PeerID(), flip(data, 3), sig},
		{"a changed byte of signature", id.PeerID(), data, flip(sig, 10)},
		{"a truncated signature", id.PeerID(), data, sig[:32]},
		{"no signature", id.PeerID(), data, nil},
		{"another peer id", other.PeerID(), data, sig},
		{"another domain, same body", id.PeerID(), domain("loadswarm/stop/1", "test t-1: 100/s for 60s"), sig},
		// Domain and body cannot trade bytes: the domain ends at its NUL.
		{"a byte moved into the domain", id.PeerID(), domain("loadswarm/announce/1t", "est t-1: 100/s for 60s"), sig},
		{"no domain", id.PeerID(), []byte("test t-1"), sig},
		{"garbage peer id", "not-a-peer-id", data, sig},
		{"empty peer id", "", data, sig},
		// A hashed (e.g. RSA) peer id does not embed its key: nothing to verify with.
		{"peer id without a key", "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N", data, sig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := VerifySignature(tc.peerID, tc.data, tc.sig)
			if !errors.Is(err, ErrBadSignature) {
				t.Fatalf("got %v, want ErrBadSignature", err)
			}
		})
	}
	// Signing needs a domain, and a key.
	for name, d := range map[string][]byte{
		"no NUL":       []byte("loadswarm/announce/1 body"),
		"empty domain": []byte("\x00body"),
		"long domain":  append(bytes.Repeat([]byte("a"), 200), 0),
	} {
		if _, err := id.Sign(d); err == nil {
			t.Errorf("%s: signed", name)
		}
	}
	if _, err := (Identity{}).Sign(data); err == nil {
		t.Fatal("zero identity signed")
	}
}
