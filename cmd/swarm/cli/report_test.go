package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReportBadInput: flags and files refused with the reason, before or
// without a node; a refused report leaves no file.
func TestReportBadInput(t *testing.T) {
	dir := t.TempDir()
	notReport := filepath.Join(dir, "page.html")
	if err := os.WriteFile(notReport, []byte("<html>hello</html>"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "r.html")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--local", "--report", out, "x.yaml"}, "--report"},
		{[]string{"run", "--detach", "--report", out, "x.yaml"}, "--report"},
		{[]string{"report"}, "accepts 1 arg"},
		{[]string{"report", "abc", "--api", "127.0.0.1:1", "-o", out}, "abc"},
	} {
		code, _, errOut := execute(tc.args...)
		if code != ExitError || !strings.Contains(errOut, tc.want) {
			t.Errorf("swarm %s: exit %d, %q; want an error with %q", strings.Join(tc.args, " "), code, errOut, tc.want)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a refused report left a file")
	}
	// A baseline file that is neither a report nor results JSON.
	for name, body := range map[string]string{"page.html": "<html>hello</html>", "x.json": `{"a": 1}`, "bad.json": "{"} {
		p := filepath.Join(dir, name)
		_ = os.WriteFile(p, []byte(body), 0o644)
		if _, err := loadBaseline(t.Context(), nil, p); err == nil {
			t.Errorf("baseline %s: read without an error", name)
		}
	}
}
