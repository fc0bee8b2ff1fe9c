package cli

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestCompareAndGate: two stored runs of a test, the second slower: swarm
// compare shows it beyond noise and exits 99 with a limit; the other way
// round it is better, exit 0; swarm run --baseline gates a run the same way.
func TestCompareAndGate(t *testing.T) {
	var delay atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Duration(delay.Load()))
	}))
	t.Cleanup(srv.Close)
	file := writeFile(t, fmt.Sprintf("name: gate\ntarget: %s\nduration: 2s\nload: {rate: 50}\nrequests: [{name: a}]\n", srv.URL))
	dir := t.TempDir()
	fast, slow := filepath.Join(dir, "fast.json"), filepath.Join(dir, "slow.json")
	delay.Store(int64(time.Millisecond))
	if code, _, errOut := execute("run", "--local", "-q", "--summary", fast, file); code != ExitOK {
		t.Fatalf("fast run: %d %s", code, errOut)
	}
	delay.Store(int64(20 * time.Millisecond))
	if code, _, errOut := execute("run", "--local", "-q", "--summary", slow, file); code != ExitOK {
		t.Fatalf("slow run: %d %s", code, errOut)
	}
	code, out, errOut := execute("compare", fast, slow, "--max-regression", "p95=10%,error_rate=0.5pp")
	if code != ExitThresholdFailed || !strings.Contains(out, "regression(s)") || !strings.Contains(out, "total p95") {
		t.Fatalf("compare fast slow: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = execute("compare", slow, fast, "--max-regression", "p95=10%")
	if code != ExitOK || !strings.Contains(out, "better") {
		t.Fatalf("compare slow fast: exit %d\n%s\n%s", code, out, errOut)
	}
	// A run gated on its baseline.
	code, out, errOut = execute("run", "--local", "-q", "--baseline", fast, "--max-regression", "p95=10%", file)
	if code != ExitThresholdFailed || !strings.Contains(out, "regression(s)") {
		t.Fatalf("run --baseline: exit %d\n%s\n%s", code, out, errOut)
	}
	// Bad input, refused with the reason.
	other := filepath.Join(dir, "other.json")
	otherFile := writeFile(t, fmt.Sprintf("name: other\ntarget: %s\nduration: 1s\nload: {rate: 5}\nrequests: [{name: a}]\n", srv.URL))
	if code, _, errOut := execute("run", "--local", "-q", "--summary", other, otherFile); code != ExitOK {
		t.Fatalf("other run: %d %s", code, errOut)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"compare", fast, other}, "different tests"},
		{[]string{"compare", fast, slow, "--max-regression", "p95=10"}, "want a percentage"},
		{[]string{"compare", fast}, "accepts 2 arg"},
		{[]string{"compare", fast, filepath.Join(dir, "none.json"), "--api", "127.0.0.1:1"}, "none.json"},
		{[]string{"run", "--local", "--max-regression", "p95=10%", file}, "needs --baseline"},
		{[]string{"run", "--local", "--baseline", "3f2a9c1b7d4e", file}, "with --local, give a file"},
	} {
		code, _, errOut := execute(tc.args...)
		if code != ExitError || !strings.Contains(errOut, tc.want) {
			t.Errorf("swarm %s: exit %d, %q; want %q", strings.Join(tc.args, " "), code, errOut, tc.want)
		}
	}
}
