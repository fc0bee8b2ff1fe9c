package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParams(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.env")
	_ = os.WriteFile(good, []byte("# comment\n\nexport A=1\nB = 'two words'\nC=\"x=y\"\n"), 0o644)
	bad := filepath.Join(dir, "bad.env")
	_ = os.WriteFile(bad, []byte("A=1\njust words\n"), 0o644)
	t.Setenv("FROM_ENV", "s3cret-value")

	p := Params{EnvFiles: []string{good}, Env: []string{"B=override", "D="}, Secrets: []string{"FROM_ENV"}}
	env, secret, err := p.resolve()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"A": "1", "B": "override", "C": "x=y", "D": "", "FROM_ENV": "s3cret-value"}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	if len(secret) != 1 || secret[0] != "FROM_ENV" {
		t.Errorf("secret: %v", secret)
	}
	for _, tc := range []struct {
		p    Params
		want string
	}{
		{Params{Env: []string{"=x"}}, `-e "=x": want KEY=VALUE`},
		{Params{Secrets: []string{"NOT_SET_ANYWHERE_42"}}, "$NOT_SET_ANYWHERE_42 is not set"},
		{Params{EnvFiles: []string{bad}}, "bad.env:2: want KEY=VALUE"},
		{Params{EnvFiles: []string{filepath.Join(dir, "none.env")}}, "--env-file"},
	} {
		if _, _, err := tc.p.resolve(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.p, err, tc.want)
		}
	}
	// A file that reads a parameter the run does not give: refused, named.
	file := writeFile(t, "name: p\ntarget: http://127.0.0.1:1\nduration: 1s\nload: {rate: 1}\nrequests: [{name: a, path: '/{{ env.MISSING }}'}]\n")
	code, _, errOut := execute("validate", file)
	if code != ExitError || !strings.Contains(errOut, "env.MISSING") {
		t.Errorf("validate: exit %d, %q", code, errOut)
	}
	if code, out, errOut := execute("validate", "-e", "MISSING=x", file); code != ExitOK {
		t.Errorf("validate -e: exit %d, %q %q", code, out, errOut)
	}
}
