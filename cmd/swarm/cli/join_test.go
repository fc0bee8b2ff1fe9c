package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/loadswarm/loadswarm/node"
)

// execCLI runs the command line with a fresh command tree.
func execCLI(args ...string) (ExitCode, string, string) {
	var out, errOut bytes.Buffer
	code := Execute(context.Background(), IO{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, args)
	return code, out.String(), errOut.String()
}

// parseJoin runs `swarm join args...` through runF and returns the options.
func parseJoin(t *testing.T, env map[string]string, args ...string) (*JoinOptions, error) {
	t.Helper()
	var got *JoinOptions
	ios := IO{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}
	cmd := NewCmdJoin(ios, func(_ context.Context, o *JoinOptions) error { got = o; return nil })
	cmd.SetArgs(args)
	cmd.SetOut(ios.Out)
	cmd.SetErr(ios.ErrOut)
	err := cmd.Execute()
	if got != nil {
		got.LookupEnv = func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	}
	return got, err
}

func TestJoinFlags(t *testing.T) {
	o, err := parseJoin(t, nil, "--name", "eu-1", "--region", "eu-west", "--zone", "eu-west-1a", "--org", "acme",
		"--capacity", "2500", "--tag", "tier=spot", "--tag", "owner=qa", "--data-dir", "/tmp/x", "--bind", "127.0.0.2:0",
		"--api", "127.0.0.1:0", "--fleet-key", "/k", "--profile", "local", "--log-level", "debug", "seed1:7946", "seed2")
	if err != nil {
		t.Fatal(err)
	}
	c, err := o.Config()
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "eu-1" || c.Region != "eu-west" || c.Zone != "eu-west-1a" || c.Org != "acme" || c.CapacityPerSec != 2500 ||
		c.Tags["tier"] != "spot" || c.Tags["owner"] != "qa" || c.DataDir != "/tmp/x" || c.Bind != "127.0.0.2:0" ||
		c.API != "127.0.0.1:0" || c.FleetKeyFile != "/k" || c.Profile != "local" || c.LogLevel != "debug" ||
		strings.Join(c.Seeds, ",") != "seed1:7946,seed2" {
		t.Fatalf("config: %+v", c)
	}
}

func TestJoinPrecedence(t *testing.T) {
	file := filepath.Join(t.TempDir(), "node.yaml")
	if err := os.WriteFile(file, []byte("name: file-name\nregion: file-region\nzone: file-zone\ncapacity: 10\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SWARM_CONFIG": file, "SWARM_REGION": "env-region", "SWARM_ZONE": "env-zone", "SWARM_TAGS": "a=1"}
	o, err := parseJoin(t, env, "--zone", "flag-zone")
	if err != nil {
		t.Fatal(err)
	}
	c, err := o.Config()
	if err != nil {
		t.Fatal(err)
	}
	// defaults < file < env < flags
	if c.Name != "file-name" || c.Region != "env-region" || c.Zone != "flag-zone" || c.CapacityPerSec != 10 || c.Tags["a"] != "1" || c.API != node.DefaultAPI {
		t.Fatalf("config: %+v", c)
	}
	// A bad value anywhere is reported with its source.
	o, _ = parseJoin(t, map[string]string{"SWARM_CAPACITY": "many"})
	if _, err := o.Config(); err == nil || !strings.Contains(err.Error(), "SWARM_CAPACITY") {
		t.Fatalf("bad env: %v", err)
	}
	o, _ = parseJoin(t, nil, "--tag", "novalue")
	if _, err := o.Config(); err == nil || !strings.Contains(err.Error(), "--tag") {
		t.Fatalf("bad tag: %v", err)
	}
	o, _ = parseJoin(t, nil, "--bind", "somewhere", "--profile", "mars")
	if _, err := o.Config(); err == nil || !strings.Contains(err.Error(), "bind") || !strings.Contains(err.Error(), "profile") {
		t.Fatalf("bad flags: %v", err)
	}
}

func TestJoinHelp(t *testing.T) {
	code, out, _ := execCLI("join", "--help")
	if code != ExitOK || !strings.Contains(out, "swarm keygen -o fleet.key") || !strings.Contains(out, "--fleet-key") {
		t.Fatalf("help (%d):\n%s", code, out)
	}
}

// TestJoinProcesses builds the binary and runs three `swarm join` processes
// on 127.0.0.1, 127.0.0.2 and 127.0.0.3; `swarm peers --json` shows the
// fleet, and SIGTERM makes a node leave.
func TestJoinProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "swarm")
	build := exec.Command("go", "build", "-o", bin, "github.com/loadswarm/loadswarm/cmd/swarm")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}

	type proc struct {
		name, dataDir string
		cmd           *exec.Cmd
		logs          *bytes.Buffer
		addrs         node.Addrs
	}
	start := func(name, ip string, seeds ...string) *proc {
		p := &proc{name: name, dataDir: filepath.Join(dir, name), logs: &bytes.Buffer{}}
		args := append([]string{"join", "--name", name, "--region", "r-" + name, "--bind", ip + ":0",
			"--api", "127.0.0.1:0", "--data-dir", p.dataDir, "--profile", "local"}, seeds...)
		p.cmd = exec.Command(bin, args...)
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "SWARM_") { // no stray settings from the caller's environment
				p.cmd.Env = append(p.cmd.Env, kv)
			}
		}
		p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if p.cmd.ProcessState == nil {
				p.cmd.Process.Kill()
				p.cmd.Wait()
			}
			if t.Failed() || testing.Verbose() {
				t.Logf("%s logs:\n%s", name, p.logs)
			}
		})
		waitUntil(t, 30*time.Second, name+" writes node.json", func() bool {
			a, err := node.ReadAddrs(p.dataDir)
			p.addrs = a
			return err == nil && a.API != ""
		})
		return p
	}
	peers := func(api string) []node.Peer {
		code, out, errOut := execCLI("peers", "--api", api, "--json")
		if code != ExitOK {
			t.Logf("swarm peers: %s", errOut)
			return nil
		}
		var p node.Peers
		if err := json.Unmarshal([]byte(out), &p); err != nil {
			t.Fatalf("peers --json: %v\n%s", err, out)
		}
		return p.Peers
	}
	states := func(ps []node.Peer) string {
		var s []string
		for _, p := range ps {
			s = append(s, p.Name+"="+p.State)
		}
		return strings.Join(s, " ")
	}

	a := start("a", "127.0.0.1")
	b := start("b", "127.0.0.2", a.addrs.Gossip)
	c := start("c", "127.0.0.3", b.addrs.Gossip)
	for _, p := range []*proc{a, b, c} {
		waitUntil(t, 15*time.Second, p.name+" sees a, b, c alive", func() bool {
			return states(peers(p.addrs.API)) == "a=alive b=alive c=alive"
		})
	}
	got := peers(a.addrs.API)
	if got[2].Address != c.addrs.Gossip || !strings.HasPrefix(got[2].Address, "127.0.0.3:") || got[2].PeerID != c.addrs.PeerID || got[2].Region != "r-c" {
		t.Fatalf("a sees c as %+v", got[2])
	}
	code, table, _ := execCLI("peers", "--api", a.addrs.API)
	if code != ExitOK || !strings.Contains(table, "a (this node)") || !strings.Contains(table, "127.0.0.2:") {
		t.Fatalf("table:\n%s", table)
	}

	// SIGTERM: b leaves, exits 0, and the others see it as left.
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.cmd.Wait() }()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) || err != nil {
			t.Fatalf("b exited with %v\n%s", err, b.logs)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("b did not exit after SIGTERM")
	}
	waitUntil(t, 5*time.Second, "a sees b left", func() bool {
		return states(peers(a.addrs.API)) == "a=alive b=left c=alive"
	})
	if _, err := os.Stat(filepath.Join(b.dataDir, node.AddrsFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("node.json left behind: %v", err)
	}
}

// waitUntil polls cond until it holds or fails the test at the deadline.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond) // poll interval
	}
}
