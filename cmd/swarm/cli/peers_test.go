package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/loadswarm/loadswarm/node"
	"github.com/loadswarm/loadswarm/swarm/swarmtest"
)

func TestPeersFlags(t *testing.T) {
	var got *PeersOptions
	ios := IO{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}
	cmd := NewCmdPeers(ios, func(_ context.Context, o *PeersOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"--api", "127.0.0.1:9999", "--json"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if got.API != "127.0.0.1:9999" || !got.JSON {
		t.Fatalf("%+v", got)
	}
	cmd = NewCmdPeers(ios, func(_ context.Context, o *PeersOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"extra"})
	if err := cmd.Execute(); err == nil {
		t.Fatal("accepted an argument")
	}
}

func TestPeersAgainstNode(t *testing.T) {
	c := node.DefaultConfig()
	c.Name, c.DataDir, c.Bind, c.API, c.Profile, c.Region = "solo", t.TempDir(), "127.0.0.1:0", "127.0.0.1:0", "local", "eu"
	n, err := node.New(c, swarmtest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })

	code, out, errOut := execCLI("peers", "--api", n.APIAddr())
	if code != ExitOK || !strings.Contains(out, "NAME") || !strings.Contains(out, "solo (this node)") || !strings.Contains(out, "alive") {
		t.Fatalf("table (%d): %s %s", code, out, errOut)
	}
	code, out, _ = execCLI("peers", "--api", n.APIAddr(), "--json")
	var p node.Peers
	if code != ExitOK || json.Unmarshal([]byte(out), &p) != nil || len(p.Peers) != 1 || p.Peers[0].Region != "eu" {
		t.Fatalf("json (%d): %s", code, out)
	}
	// No node there: a clear error, exit 1.
	code, _, errOut = execCLI("peers", "--api", "127.0.0.1:1")
	if code != ExitError || !strings.Contains(errOut, "swarm join") {
		t.Fatalf("unreachable (%d): %s", code, errOut)
	}
}
