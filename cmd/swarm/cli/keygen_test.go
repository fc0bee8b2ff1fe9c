package cli

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/loadswarm/loadswarm/swarm"
)

func TestKeygen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fleet.key")
	code, _, errOut := execCLI("keygen", "-o", path)
	if code != ExitOK {
		t.Fatalf("keygen: %s", errOut)
	}
	k, err := swarm.LoadFleetKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errOut, k.Fingerprint()) {
		t.Errorf("stderr does not show the fingerprint: %s", errOut)
	}
	if code, _, errOut := execCLI("keygen", "-o", path); code != ExitError || !strings.Contains(errOut, "exists") {
		t.Fatalf("overwrote (%d): %s", code, errOut)
	}
	code, out, _ := execCLI("keygen")
	if _, err := swarm.ParseFleetKey([]byte(out)); code != ExitOK || err != nil {
		t.Fatalf("stdout key (%d): %q %v", code, out, err)
	}
}
