package testnet

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestProcOwnedBy: a process is ours by its command line, or, in the
// moment of its exec when the command line reads empty, by its executable;
// a reused pid running something else, or a kernel thread, is not.
func TestProcOwnedBy(t *testing.T) {
	p := &Proc{Args: []string{"target", "--addr", "127.0.0.1:0"}, Binary: "/tmp/bin/swarm"}
	for _, c := range []struct {
		name    string
		cmdline string
		exe     string
		want    bool
	}{
		{"same command line", "/tmp/bin/swarm\x00target\x00--addr\x00127.0.0.1:0\x00", "/tmp/bin/swarm", true},
		{"other arguments", "/tmp/bin/swarm\x00join\x00", "/tmp/bin/swarm", false},
		{"other program", "/usr/bin/sleep\x0010\x00", "/usr/bin/sleep", false},
		{"mid exec: empty, our binary", "", "/tmp/bin/swarm", true},
		{"empty, other binary", "", "/usr/bin/sleep", false},
		{"kernel thread: empty, no executable", "", "", false},
	} {
		if got := p.ownedBy([]byte(c.cmdline), c.exe); got != c.want {
			t.Errorf("%s: owned %v, want %v", c.name, got, c.want)
		}
	}
	if (&Proc{}).ownedBy(nil, "") {
		t.Error("a process started before Binary was recorded, empty command line: owned")
	}
}

// TestProcStartSeenRunning: right after start, the process is running
// (never "gone" in the moment of its exec), and its recorded binary is
// the resolved path /proc shows.
func TestProcStartSeenRunning(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep(1) here")
	}
	for i := range 20 {
		p := &Proc{Name: "sleep", Args: []string{"5"}, Log: filepath.Join(t.TempDir(), "sleep.log")}
		if err := p.start(sleep); err != nil {
			t.Fatal(err)
		}
		st := p.State()
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.PID))
		_ = p.signal(9)
		if st != ProcRunning {
			t.Fatalf("start %d: state %s right after start (binary %s, /proc exe %q)", i, st, p.Binary, exe)
		}
	}
}
