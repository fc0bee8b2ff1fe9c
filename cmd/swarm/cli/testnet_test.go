package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/loadswarm/loadswarm/testnet"
)

// parseTestnet runs `swarm testnet args...` through runF.
func parseTestnet(t *testing.T, args ...string) (*TestnetOptions, error) {
	t.Helper()
	var got *TestnetOptions
	ios := IO{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}}
	cmd := NewCmdTestnet(ios, func(_ context.Context, o *TestnetOptions) error { got = o; return nil })
	cmd.SetArgs(args)
	cmd.SetOut(ios.Out)
	cmd.SetErr(ios.ErrOut)
	err := cmd.Execute()
	return got, err
}

func TestTestnetFlags(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		check func(o *TestnetOptions) bool
		err   string
	}{
		{"up defaults", []string{"up"}, func(o *TestnetOptions) bool {
			return o.Action == "up" && o.Nodes == 3 && strings.Join(o.Regions, ",") == "eu-west,us-east,ap-south" &&
				o.Dir == testnet.DefaultDir && !o.NoTarget && o.LeaseTTL == 1500*time.Millisecond && o.Wait == time.Minute
		}, ""},
		{"up with everything", []string{"up", "-n", "4", "--regions", "eu-west,us-east", "--dir", "/tmp/x", "--no-target",
			"--latency", "eu-west=10ms", "--target-flags", "--retries 3", "--lease-ttl", "1s"}, func(o *TestnetOptions) bool {
			return o.Nodes == 4 && len(o.Regions) == 2 && o.Dir == "/tmp/x" && o.NoTarget && o.Latency == "eu-west=10ms" &&
				o.TargetFlags == "--retries 3" && o.LeaseTTL == time.Second
		}, ""},
		{"down purge", []string{"down", "--purge", "--grace", "3s"}, func(o *TestnetOptions) bool {
			return o.Action == "down" && o.Purge && o.Grace == 3*time.Second
		}, ""},
		{"kill a node", []string{"kill", "us-east-1", "--dir", "d"}, func(o *TestnetOptions) bool {
			return o.Action == "kill" && o.Node == "us-east-1" && o.Dir == "d"
		}, ""},
		{"restart", []string{"restart", "2"}, func(o *TestnetOptions) bool { return o.Action == "restart" && o.Node == "2" }, ""},
		{"pause", []string{"pause", "2"}, func(o *TestnetOptions) bool { return o.Action == "pause" }, ""},
		{"resume", []string{"resume", "2"}, func(o *TestnetOptions) bool { return o.Action == "resume" }, ""},
		{"status", []string{"status"}, func(o *TestnetOptions) bool { return o.Action == "status" }, ""},
		{"kill needs a node", []string{"kill"}, nil, "accepts 1 arg"},
		{"up takes no args", []string{"up", "extra"}, nil, "unknown command"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := parseTestnet(t, tc.args...)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || o == nil || !tc.check(o) {
				t.Fatalf("err %v, options %+v", err, o)
			}
		})
	}
}

func TestTestnetWithoutOne(t *testing.T) {
	dir := t.TempDir()
	for _, action := range [][]string{{"status"}, {"down"}, {"kill", "1"}} {
		code, _, errOut := execCLI(append([]string{"testnet", "--dir", dir}, action...)...)
		if code != ExitError || !strings.Contains(errOut, "no testnet here") {
			t.Errorf("%v: exit %d, %q", action, code, errOut)
		}
	}
	code, _, errOut := execCLI("testnet", "up", "--dir", dir, "--latency", "eu-west=fast")
	if code != ExitError || !strings.Contains(errOut, "invalid duration") {
		t.Errorf("bad --latency: exit %d, %q", code, errOut)
	}
}

// TestTestnetStatusStopped: status and down of a testnet whose processes
// are gone.
func TestTestnetStatusStopped(t *testing.T) {
	dir := t.TempDir()
	s := &testnet.State{Dir: dir, Created: time.Now(), Nodes: []*testnet.NodeProc{{
		Proc: testnet.Proc{Name: "eu-west-1", PID: 0, Log: dir + "/eu-west-1.log"}, Region: "eu-west",
		RTT: testnet.RTT{Latency: 15 * time.Millisecond}, Gossip: "127.0.0.1:1", API: "127.0.0.1:2"}}}
	if err := s.Save(); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := execCLI("testnet", "status", "--dir", dir)
	if code != ExitOK || !strings.Contains(out, "eu-west-1") || !strings.Contains(out, "gone") || !strings.Contains(out, "no node is running") {
		t.Fatalf("status: %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = execCLI("testnet", "down", "--dir", dir)
	if code != ExitOK || !strings.Contains(out, "testnet stopped") {
		t.Fatalf("down: %d\n%s\n%s", code, out, errOut)
	}
	code, out, _ = execCLI("testnet", "kill", "eu-west-1", "--dir", dir)
	if code != ExitError {
		t.Fatalf("kill of a gone node: %d %s", code, out)
	}
}

func TestTestnetHelp(t *testing.T) {
	code, out, _ := execCLI("testnet", "--help")
	for _, want := range []string{"swarm testnet up", "kill", "restart", "pause", "region"} {
		if code != ExitOK || !strings.Contains(out, want) {
			t.Errorf("help lacks %q", want)
		}
	}
}
