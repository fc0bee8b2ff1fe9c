package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/loadswarm/loadswarm/testnet"
)

func startTarget(t *testing.T) string {
	t.Helper()
	tg, err := testnet.NewTarget(testnet.TargetConfig{})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(tg)
	t.Cleanup(srv.Close)
	return srv.URL
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "test.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func execute(args ...string) (ExitCode, string, string) {
	var out, errOut bytes.Buffer
	code := Execute(context.Background(), IO{In: strings.NewReader(""), Out: &out, ErrOut: &errOut}, args)
	return code, out.String(), errOut.String()
}

func TestRunLocalExitCodes(t *testing.T) {
	url := startTarget(t)
	base := fmt.Sprintf("name: cli\ntarget: %s\nduration: 2s\nload: {rate: 20}\nrequests: [{name: items, path: /items, check: 'status == 200'}]\n", url)
	for _, tc := range []struct {
		name string
		yaml string
		args []string
		code ExitCode
		out  []string
	}{
		{"pass", base + "thresholds: ['p95 < 5000', 'error_rate == 0']\n", nil, ExitOK, []string{"pass  p95 < 5000", "status: passed", "items"}},
		{"threshold fails", base + "thresholds: ['requests > 1000000']\n", nil, ExitThresholdFailed, []string{"FAIL  requests > 1000000", "status: failed"}},
		{"bad file", "name: x\n", nil, ExitError, nil},
		{"no node at --api", base, []string{"--local=false", "--api", "127.0.0.1:1"}, ExitError, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"run", "--local", "-q"}, tc.args...)
			code, out, errOut := execute(append(args, writeFile(t, tc.yaml))...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, out, errOut)
			}
			for _, w := range tc.out {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
		})
	}
}

func TestRunLocalJSON(t *testing.T) {
	url := startTarget(t)
	// The file's target is wrong on purpose: --target replaces it.
	f := writeFile(t, "name: j\ntarget: http://127.0.0.1:1\nduration: 2s\nload: {rate: 10}\nrequests: [{name: a, path: /items}]\nthresholds: ['p99 < 5000']\n")
	code, out, errOut := execute("run", "--local", "--json", "--target", url, f)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var rep map[string]any
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, out)
	}
	if rep["status"] != "passed" || rep["requests"] != 20.0 || rep["errors"] != 0.0 || rep["dropped"] != 0.0 {
		t.Fatalf("report: %v", rep)
	}
	rate := rep["rate"].(map[string]any)
	if rate["target"] != 10.0 || rate["achieved"].(float64) < 9 {
		t.Fatalf("rate: %v", rate)
	}
	lat := rep["latency_ms"].(map[string]any)
	for _, k := range []string{"p50", "p90", "p95", "p99", "max"} {
		if v, ok := lat[k].(float64); !ok || v <= 0 {
			t.Errorf("latency_ms.%s = %v", k, lat[k])
		}
	}
	// Live lines went to stderr, one per second.
	if n := strings.Count(errOut, "achieved"); n < 2 {
		t.Errorf("%d live lines on stderr, want >= 2:\n%s", n, errOut)
	}
}

func TestRunAbortThreshold(t *testing.T) {
	url := startTarget(t)
	// Every request is a 404, so the abort rule fails after its first second.
	f := writeFile(t, fmt.Sprintf("name: abort\ntarget: %s\nduration: 30s\nload: {rate: 20}\nrequests: [{name: a, path: /nope}]\nthresholds: [{expr: 'error_rate < 0.5', abort: true}]\n", url))
	code, out, errOut := execute("run", "--local", f)
	if code != ExitThresholdFailed {
		t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
	}
	if !strings.Contains(out, "aborted early") || !strings.Contains(errOut, "aborting") {
		t.Fatalf("no abort reported:\n%s\n%s", out, errOut)
	}
}

func TestValidateCommand(t *testing.T) {
	good := writeFile(t, "name: v\ntarget: http://x\nduration: 1s\nload: {rate: 1}\nrequests: [{name: a}]\n")
	bad := writeFile(t, "name: v\ntarget: http://x\nduration: 1s\nload: {rate: -1}\nrequests: [{name: a}]\n")
	if code, out, _ := execute("validate", good); code != ExitOK || !strings.Contains(out, "ok") {
		t.Fatalf("good file: exit %d %s", code, out)
	}
	code, _, errOut := execute("validate", good, bad)
	if code != ExitError || !strings.Contains(errOut, "load.rate: must be > 0") {
		t.Fatalf("bad file: exit %d %s", code, errOut)
	}
}

func TestRunFlags(t *testing.T) {
	var got *RunOptions
	cmd := NewCmdRun(IO{}, func(_ context.Context, o *RunOptions) error { got = o; return nil })
	cmd.SetArgs([]string{"--local", "--json", "--target", "http://h", "f.yaml"})
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	if !got.Local || !got.JSON || got.Target != "http://h" || got.File != "f.yaml" {
		t.Fatalf("%+v", got)
	}
	cmd = NewCmdRun(IO{}, func(context.Context, *RunOptions) error { return nil })
	cmd.SetArgs([]string{})
	cmd.SetErr(&bytes.Buffer{})
	if err := cmd.Execute(); err == nil {
		t.Fatal("run without a file accepted")
	}
}
