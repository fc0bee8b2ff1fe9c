package swarm

import (
	"bytes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
)

// FleetKeySize is the length of a fleet key in bytes.
const FleetKeySize = 32

// FleetKey is the fleet secret. It feeds two keys derived from it (so that
// neither layer ever sees the other's key): the memberlist keyring, which
// encrypts and authenticates gossip, and the libp2p private-network PSK,
// which every connection must prove before Noise even starts. The zero value
// is not a key; use GenerateFleetKey, ParseFleetKey or LoadFleetKey.
type FleetKey struct {
	k   [FleetKeySize]byte
	set bool
}

// GenerateFleetKey returns a new random fleet key.
func GenerateFleetKey() (FleetKey, error) {
	var k FleetKey
	if _, err := rand.Read(k.k[:]); err != nil {
		return FleetKey{}, fmt.Errorf("generate fleet key: %w", err)
	}
	k.set = true
	return k, nil
}

// ParseFleetKey reads a key in the text form of MarshalText: 64 hex digits.
// Blank lines and lines starting with '#' are skipped.
func ParseFleetKey(text []byte) (FleetKey, error) {
	var digits []byte
	for line := range bytes.Lines(text) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		digits = append(digits, line...)
	}
	if len(digits) != 2*FleetKeySize {
		return FleetKey{}, fmt.Errorf("fleet key: want %d hex digits, got %d characters (make one with `swarm keygen`)", 2*FleetKeySize, len(digits))
	}
	var k FleetKey
	if _, err := hex.Decode(k.k[:], digits); err != nil {
		return FleetKey{}, fmt.Errorf("fleet key: %w", err)
	}
	k.set = true
	return k, nil
}

// LoadFleetKey reads a fleet key file written by WriteFile (`swarm keygen`).
func LoadFleetKey(path string) (FleetKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return FleetKey{}, fmt.Errorf("fleet key: %w", err)
	}
	k, err := ParseFleetKey(b)
	if err != nil {
		return FleetKey{}, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// IsZero reports whether k holds no key.
func (k FleetKey) IsZero() bool { return !k.set }

// MarshalText returns the key as 64 hex digits.
func (k FleetKey) MarshalText() ([]byte, error) {
	if !k.set {
		return nil, errors.New("fleet key: empty")
	}
	return []byte(hex.EncodeToString(k.k[:])), nil
}

// String returns the fingerprint, never the key, so that a key printed by
// mistake (in a log, with %v) does not leak.
func (k FleetKey) String() string { return "fleet-key:" + k.Fingerprint() }

// Fingerprint is a short public digest of the key (16 hex digits). Two nodes
// with the same fingerprint have the same key; logs show it so that an
// operator can tell keys apart without revealing them.
func (k FleetKey) Fingerprint() string {
	if !k.set {
		return "none"
	}
	return hex.EncodeToString(k.derive("loadswarm fingerprint v1", 8))
}

// WriteFile writes the key to path, readable by its owner only. It refuses
// to overwrite an existing file: a fleet's key is replaced on purpose, not
// by accident.
func (k FleetKey) WriteFile(path string) error {
	text, err := k.MarshalText()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write fleet key: %w", err)
	}
	content := "# Loadswarm fleet key: every node of the fleet needs this file. Keep it secret.\n" + string(text) + "\n"
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return fmt.Errorf("write fleet key: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write fleet key: %w", err)
	}
	return nil
}

// gossipKey is the memberlist key (AES-256-GCM).
func (k FleetKey) gossipKey() []byte { return k.derive("loadswarm memberlist v1", 32) }

// psk is the libp2p private network key; it must be 32 bytes (a 16-byte
// key is accepted by libp2p.New and then every dial fails).
func (k FleetKey) psk() []byte { return k.derive("loadswarm libp2p pnet v1", 32) }

func (k FleetKey) derive(label string, n int) []byte {
	out, err := hkdf.Key(sha256.New, k.k[:], nil, label, n)
	if err != nil {
		panic(err) // only for n > 255*32: our lengths are constants
	}
	return out
}
