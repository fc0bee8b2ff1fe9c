package swarm

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ma "github.com/multiformats/go-multiaddr"
)

func TestFleetKeyFile(t *testing.T) {
	k, err := GenerateFleetKey()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "fleet.key")
	if err := k.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("mode %v, want 0600", perm)
	}
	if err := k.WriteFile(path); err == nil {
		t.Error("WriteFile overwrote an existing key")
	}
	got, err := LoadFleetKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Fingerprint() != k.Fingerprint() || !bytes.Equal(got.psk(), k.psk()) {
		t.Fatal("loaded key differs")
	}
	if strings.Contains(k.String(), string(mustText(t, k))) {
		t.Fatal("String leaks the key")
	}
}

func TestFleetKeyDerivation(t *testing.T) {
	k, _ := GenerateFleetKey()
	if len(k.psk()) != 32 || len(k.gossipKey()) != 32 {
		t.Fatal("derived keys must be 32 bytes (libp2p PSK, AES-256)")
	}
	if bytes.Equal(k.psk(), k.gossipKey()) {
		t.Fatal("the two layers must get different keys")
	}
	other, _ := GenerateFleetKey()
	if k.Fingerprint() == other.Fingerprint() {
		t.Fatal("two keys, one fingerprint")
	}
}

func TestParseFleetKey(t *testing.T) {
	good := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"bare", good, true},
		{"comment and newline", "# fleet\n" + good + "\n", true},
		{"split over lines", good[:32] + "\n" + good[32:], true},
		{"short", good[:62], false},
		{"long", good + "ab", false},
		{"not hex", strings.Repeat("zz", 32), false},
		{"empty", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseFleetKey([]byte(tc.in))
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func mustText(t *testing.T, k FleetKey) []byte {
	b, err := k.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestIdentityPersists(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identity.key")
	id1, created, err := LoadOrCreateIdentity(path)
	if err != nil || !created {
		t.Fatalf("first load: created=%v err=%v", created, err)
	}
	id2, created, err := LoadOrCreateIdentity(path)
	if err != nil || created {
		t.Fatalf("second load: created=%v err=%v", created, err)
	}
	if id1.PeerID() == "" || id1.PeerID() != id2.PeerID() {
		t.Fatalf("peer id changed: %s -> %s", id1.PeerID(), id2.PeerID())
	}
	if err := os.WriteFile(path, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateIdentity(path); err == nil {
		t.Fatal("a corrupt identity file must be an error, not replaced")
	}
}

func TestMetaRoundTrip(t *testing.T) {
	id, _ := GenerateIdentity()
	info := nodeInfo{
		meta:    Meta{Region: "eu-west", Zone: "eu-west-1a", Org: "acme", CapacityPerSec: 5000, CPUs: 2, Tags: map[string]string{"tier": "spot"}},
		peerID:  peerIDOf(t, id),
		addrs:   []ma.Multiaddr{tcpAddr("10.0.0.1", 7947), tcpAddr("::1", 7947)},
		version: "v1.2.3",
	}
	b, err := encodeMeta(info)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > 160 {
		t.Errorf("metadata is %d bytes; expected about 120", len(b))
	}
	got, err := decodeMeta(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.peerID != info.peerID || got.meta.Region != "eu-west" || got.meta.Tags["tier"] != "spot" || len(got.addrs) != 2 || got.version != "v1.2.3" {
		t.Fatalf("got %+v", got)
	}
	info.meta.Tags = map[string]string{"big": strings.Repeat("x", 500)}
	if _, err := encodeMeta(info); err == nil || !strings.Contains(err.Error(), "512") {
		t.Fatalf("oversized metadata: err = %v", err)
	}
	for _, bad := range [][]byte{nil, {0xff}, bytes.Repeat([]byte{0x81}, 600)} {
		if _, err := decodeMeta(bad); err == nil {
			t.Errorf("decodeMeta(%x) accepted", bad)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	c := DefaultConfig()
	c.BindAddr = "nowhere"
	c.GossipPort = 70000
	c.Meta.CapacityPerSec = -1
	c.Timing.ProbeTimeout = 50 * 1e6
	err := c.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"name: required", "bind address", "gossip port", "capacity", "probe timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	ok := DefaultLocalConfig()
	ok.Name = "n1"
	if err := ok.Validate(); err != nil {
		t.Fatalf("local profile: %v", err)
	}
	if err := (Config{Name: "n"}).Validate(); err != nil {
		t.Fatalf("zero config with a name takes defaults: %v", err)
	}
	wan := DefaultWANConfig()
	wan.Name = "n"
	if err := wan.Validate(); err != nil {
		t.Fatalf("wan profile: %v", err)
	}
}
