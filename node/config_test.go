package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	c := DefaultConfig()
	c.Name = ""
	c.CapacityPerSec = -5
	c.Bind = "nowhere:99999"
	c.API = "7070"
	c.Profile = "moon"
	c.LogLevel = "loud"
	c.Tags = map[string]string{"": "x"}
	err := c.Validate()
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{"name", "capacity", "bind", "api", "profile", "log level", "tag key"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	d := DefaultConfig()
	d.Name = "n1"
	if err := d.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
}

func TestSplitBind(t *testing.T) {
	for _, tc := range []struct {
		in   string
		ip   string
		port int
		ok   bool
	}{
		{"0.0.0.0:7946", "0.0.0.0", 7946, true}, // the default
		{"127.0.0.2", "127.0.0.2", 7946, true},  // port defaults
		{"127.0.0.1:0", "127.0.0.1", 0, true},   // free ports, for tests
		{":8000", "0.0.0.0", 8000, true},        // all interfaces
		{"[::1]:9000", "::1", 9000, true},       // IPv6
		{"example.com:7946", "", 0, false},      // names are not resolved
		{"127.0.0.1:65535", "", 0, false},       // no room for libp2p's port+1
	} {
		ip, port, err := splitBind(tc.in)
		if (err == nil) != tc.ok || ip != tc.ip || port != tc.port {
			t.Errorf("splitBind(%q) = %q, %d, %v", tc.in, ip, port, err)
		}
	}
}

func TestConfigFileThenEnv(t *testing.T) {
	path := filepath.Join(t.TempDir(), "swarm.yaml")
	if err := os.WriteFile(path, []byte("name: from-file\nregion: eu\ncapacity: 50\ntags: {tier: spot}\nseeds: [a:1, b:2]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := DefaultConfig()
	if err := LoadConfigFile(path, &c); err != nil {
		t.Fatal(err)
	}
	if c.Name != "from-file" || c.Region != "eu" || c.CapacityPerSec != 50 || c.Tags["tier"] != "spot" || len(c.Seeds) != 2 || c.API != DefaultAPI {
		t.Fatalf("file: %+v", c)
	}
	env := map[string]string{"SWARM_REGION": "us", "SWARM_CAPACITY": "70", "SWARM_TAGS": "a=1, b=2", "SWARM_SEEDS": "x:1"}
	if err := c.ApplyEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if c.Name != "from-file" || c.Region != "us" || c.CapacityPerSec != 70 || c.Tags["b"] != "2" || c.Seeds[0] != "x:1" {
		t.Fatalf("env: %+v", c)
	}
	bad := map[string]string{"SWARM_CAPACITY": "lots", "SWARM_TAGS": "novalue"}
	if err := c.ApplyEnv(func(k string) (string, bool) { v, ok := bad[k]; return v, ok }); err == nil ||
		!strings.Contains(err.Error(), "SWARM_CAPACITY") || !strings.Contains(err.Error(), "SWARM_TAGS") {
		t.Fatalf("bad env: %v", err)
	}
	if err := os.WriteFile(path, []byte("nmae: typo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := LoadConfigFile(path, &c); err == nil {
		t.Fatal("unknown field accepted")
	}
}
