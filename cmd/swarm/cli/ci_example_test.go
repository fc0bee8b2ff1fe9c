package cli

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestCIExampleCommandsParse: every swarm command in the CI example is one
// this binary takes, with flags it knows: the example cannot rot silently.
func TestCIExampleCommandsParse(t *testing.T) {
	b, err := os.ReadFile("../../../examples/ci/github-actions.yml")
	if err != nil {
		t.Fatal(err)
	}
	var wf struct {
		Jobs map[string]struct {
			Steps []struct {
				Run string `yaml:"run"`
			} `yaml:"steps"`
		} `yaml:"jobs"`
	}
	if err := yaml.Unmarshal(b, &wf); err != nil {
		t.Fatalf("the workflow is not YAML: %v", err)
	}
	seen := 0
	for job, j := range wf.Jobs {
		for _, st := range j.Steps {
			script := strings.ReplaceAll(st.Run, "\\\n", " ")
			for _, line := range strings.Split(script, "\n") {
				args := swarmArgs(line)
				if args == nil {
					continue
				}
				seen++
				root := NewCmdRoot(IO{In: strings.NewReader(""), Out: &bytes.Buffer{}, ErrOut: &bytes.Buffer{}})
				cmd, rest, err := root.Find(args)
				if err != nil || cmd == root {
					t.Errorf("%s: %q: no such command (%v)", job, line, err)
					continue
				}
				if err := cmd.ParseFlags(rest); err != nil {
					t.Errorf("%s: %q: %v", job, strings.TrimSpace(line), err)
				}
			}
		}
	}
	if seen < 6 {
		t.Fatalf("only %d swarm commands found in the example", seen)
	}
}

// swarmArgs returns the arguments of a "swarm ..." command in a shell
// line, up to the first redirection, pipe or separator; nil if the line
// runs no swarm command. Quotes go; $VARIABLES stay as values.
func swarmArgs(line string) []string {
	fields := strings.Fields(line)
	for i, f := range fields {
		f = strings.TrimLeft(f, "$(")
		if f != "swarm" {
			continue
		}
		var out []string
		for _, a := range fields[i+1:] {
			if strings.ContainsAny(a[:1], "|;&>") || a == "2>&1" {
				break
			}
			if strings.HasPrefix(a, "${") && strings.Contains(a, "//") {
				continue // ${SEEDS//,/ }: positional seeds
			}
			out = append(out, strings.Trim(a, `"'`))
		}
		return out
	}
	return nil
}
