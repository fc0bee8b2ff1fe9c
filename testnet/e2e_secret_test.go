package testnet

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/loadswarm/loadswarm/scenarios"
)

// TestEndToEndSecret: a secret given with `swarm run -s` (from the
// environment, never on the command line) is sent in a header and a URL,
// so the target sees it, yet no node's data directory, no log, no API
// answer and no report holds it: they say *** instead.
func TestEndToEndSecret(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: a 2-node testnet of processes")
	}
	const secret = "tok-7f3a9c41e2d85b06"
	var authorized, requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if r.Header.Get("Authorization") == "Bearer "+secret && r.URL.Path == "/items/"+secret {
			authorized.Add(1)
		}
		// An error: its sample names the path, with the secret in it.
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	t.Cleanup(srv.Close)

	bin, s := upFleet(t, 2)
	spec := filepath.Join(t.TempDir(), "secret.yaml")
	if err := os.WriteFile(spec, []byte(fmt.Sprintf(`name: secret
target: %s
duration: 3s
load: {rate: 20, min_delivered: 0.5}
requests:
  - name: a
    path: "/items/{{ env.API_TOKEN }}?region={{ env.REGION }}"
    headers: {Authorization: "Bearer {{ env.API_TOKEN }}"}
`, srv.URL)), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	report := filepath.Join(dir, "report.html")
	cmd := exec.Command(bin, "run", "--api", s.Nodes[0].API, "--json", "-e", "REGION=eu", "-s", "API_TOKEN", "--report", report, spec)
	cmd.Env = append(os.Environ(), "API_TOKEN="+secret)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	_ = cmd.Run() // every request fails (500): the exit code does not matter here
	if authorized.Load() == 0 {
		t.Fatalf("the target never saw the secret (%d requests)\n%s\n%s", requests.Load(), out.String(), errOut.String())
	}
	var tests string
	_, tests, _ = runSwarm(t, bin, "tests", "--api", s.Nodes[1].API, "--json")
	id := strings.TrimSpace(strings.SplitN(strings.SplitN(tests, `"id": "`, 2)[1], `"`, 2)[0])
	_, results, _ := runSwarm(t, bin, "results", id, "--api", s.Nodes[1].API, "--json", "--by", "region,node,step", "--exemplars")
	if !strings.Contains(results, "/items/"+scenarios.Redacted) {
		t.Errorf("the error samples do not show the hidden secret as %s:\n%s", scenarios.Redacted, results)
	}
	// Everything a user or an operator can read.
	places := map[string]string{"swarm run --json": out.String(), "swarm run stderr": errOut.String(),
		"swarm tests --json": tests, "swarm results --json": results}
	if b, err := os.ReadFile(report); err != nil {
		t.Fatalf("no report: %v\n%s", err, errOut.String())
	} else {
		places["report"] = string(b)
	}
	for where, text := range places {
		if strings.Contains(text, secret) {
			t.Errorf("%s holds the secret", where)
		}
	}
	// Every file of the testnet: data directories (the stores are not
	// compressed: a value would be there as written) and logs.
	if err := s.Down(context.Background(), DownOptions{}); err != nil { // stopped: the stores are closed and flushed
		t.Fatal(err)
	}
	files := 0
	_ = filepath.WalkDir(s.Dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		files++
		if bytes.Contains(b, []byte(secret)) || bytes.Contains(b, []byte("tok-7f3a9c41")) {
			t.Errorf("%s holds the secret", path)
		}
		return nil
	})
	if files < 4 {
		t.Fatalf("only %d files under %s: nothing was checked", files, s.Dir)
	}
}
