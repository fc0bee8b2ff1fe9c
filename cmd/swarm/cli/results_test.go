package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestResultsFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		err  string // "" when accepted
	}{
		{[]string{"abc"}, ""},
		{[]string{"abc", "--by", "region,node", "--json"}, ""},
		{[]string{"abc", "--by", "color"}, `--by "color"`},
		{[]string{"abc", "--json", "--csv"}, "pick one"},
		{[]string{"abc", "--exemplars", "--slowest", "5"}, ""},
		{[]string{"abc", "--slowest", "5"}, "with --exemplars"},
		{[]string{"abc", "--exemplars", "--slowest", "-1"}, "N > 0"},
		{[]string{"abc", "--exemplars", "--slowest", "x"}, "invalid argument"},
		{[]string{}, "accepts 1 arg"},
	} {
		var got *ResultsOptions
		cmd := NewCmdResults(IO{}, func(_ context.Context, o *ResultsOptions) error { got = o; return nil })
		cmd.SetArgs(tc.args)
		cmd.SetErr(&bytes.Buffer{})
		cmd.SetOut(&bytes.Buffer{})
		err := cmd.Execute()
		switch {
		case tc.err == "" && (err != nil || got == nil || got.ID != "abc"):
			t.Errorf("%v: %v", tc.args, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%v: err %v, want %q", tc.args, err, tc.err)
		}
	}
}

func TestFleetCommandsNeedANode(t *testing.T) {
	// No node at this address: a clear error, exit code 1.
	for _, args := range [][]string{
		{"tests", "--api", "127.0.0.1:1"},
		{"stop", "abc", "--api", "127.0.0.1:1"},
		{"results", "abc", "--api", "127.0.0.1:1"},
		{"peers", "--api", "127.0.0.1:1"},
	} {
		code, _, errOut := execute(args...)
		if code != ExitError || !strings.Contains(errOut, "swarm join") {
			t.Errorf("%v: exit %d, %q", args, code, errOut)
		}
	}
}
