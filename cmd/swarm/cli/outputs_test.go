package cli

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunOutputs: swarm run writes the CI files it is asked for, and they
// agree with the exit code.
func TestRunOutputs(t *testing.T) {
	url := startTarget(t)
	dir := t.TempDir()
	junit, summary, md := filepath.Join(dir, "j.xml"), filepath.Join(dir, "s.json"), filepath.Join(dir, "s.md")
	file := writeFile(t, fmt.Sprintf("name: ci\ntarget: %s\nduration: 1s\nload: {rate: 20}\nrequests: [{name: items, path: /items}]\nthresholds: ['p95 < 5000', 'requests > 1000000', 'steps[\"items\"].error_rate == 0']\n", url))
	code, _, errOut := execute("run", "--local", "-q", "--junit", junit, "--summary", summary, "--markdown", md, file)
	if code != ExitThresholdFailed {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var suites struct {
		Tests    int `xml:"tests,attr"`
		Failures int `xml:"failures,attr"`
		Suites   []struct {
			Name  string `xml:"name,attr"`
			Cases []struct {
				Name    string `xml:"name,attr"`
				Failure *struct {
					Message string `xml:"message,attr"`
				} `xml:"failure"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	b, err := os.ReadFile(junit)
	if err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(b, &suites); err != nil {
		t.Fatalf("junit: %v\n%s", err, b)
	}
	failed := map[string]string{}
	for _, s := range suites.Suites {
		for _, c := range s.Cases {
			if c.Failure != nil {
				failed[s.Name+"/"+c.Name] = c.Failure.Message
			}
		}
	}
	if msg := failed["fleet/requests > 1000000"]; !strings.Contains(msg, "requests = 20") || len(failed) != 1 {
		t.Fatalf("junit failures: %v", failed)
	}
	var rep struct {
		Status string `json:"status"`
	}
	b, _ = os.ReadFile(summary)
	if err := json.Unmarshal(b, &rep); err != nil || rep.Status != "failed" {
		t.Fatalf("summary: %v, %q", err, rep.Status)
	}
	b, _ = os.ReadFile(md)
	if !strings.Contains(string(b), "failed") || !strings.Contains(string(b), "requests > 1000000") {
		t.Fatalf("markdown:\n%s", b)
	}
	// An output that cannot be written is an error, named.
	code, _, errOut = execute("run", "--local", "-q", "--junit", filepath.Join(dir, "no", "such", "dir", "j.xml"), file)
	if code != ExitError || !strings.Contains(errOut, "--junit") {
		t.Fatalf("unwritable --junit: exit %d, %q", code, errOut)
	}
}
