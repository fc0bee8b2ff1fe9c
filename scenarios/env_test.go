package scenarios

import (
	"strings"
	"testing"

	"github.com/expr-lang/expr/vm"

	"github.com/loadswarm/loadswarm/storage"
)

func compileWithEnv(t *testing.T, file string, env map[string]string, secret ...string) (*Scenario, error) {
	t.Helper()
	spec, err := DecodeSpec([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	spec.Env = env
	spec.Secret = append(spec.Secret, secret...)
	return Compile(spec)
}

const envFile = `name: env
target: http://127.0.0.1:1
duration: 1s
load: {rate: 1}
requests:
  - name: a
    path: "/items?token={{ env.TOKEN }}"
    headers: {X-Region: '{{ env["REGION"] }}'}
    check: 'status == 200 && env.REGION != ""'
`

func TestEnvRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		file   string
		env    map[string]string
		secret []string
		want   string
	}{
		{"missing", envFile, map[string]string{"TOKEN": "abcd"}, nil, "env.REGION"},
		{"bad name", envFile, map[string]string{"TOKEN": "abcd", "REGION": "eu", "1X": "v"}, nil, "env.1X"},
		{"too long", envFile, map[string]string{"TOKEN": strings.Repeat("x", MaxEnvValue+1), "REGION": "eu"}, nil, "env.TOKEN: value is"},
		{"secret not given", envFile, map[string]string{"TOKEN": "abcd", "REGION": "eu"}, []string{"PASSWORD"}, "secret[0]: PASSWORD is not given"},
		{"secret too short", envFile, map[string]string{"TOKEN": "abc", "REGION": "eu"}, []string{"TOKEN"}, "at least 4"},
		{"secret list in the file", envFile + "secret: [NOPE]\n", map[string]string{"TOKEN": "abcd", "REGION": "eu"}, nil, "secret[0]: NOPE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := compileWithEnv(t, tc.file, tc.env, tc.secret...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one with %q", err, tc.want)
			}
		})
	}
	many := map[string]string{}
	for i := range MaxEnvKeys + 1 {
		many["K"+strings.Repeat("X", i)] = "v"
	}
	if _, err := compileWithEnv(t, envFile, many); err == nil || !strings.Contains(err.Error(), "over the limit") {
		t.Fatalf("too many parameters: %v", err)
	}
}

func TestEnvRendersAndRedacts(t *testing.T) {
	sc, err := compileWithEnv(t, envFile+"secret: [TOKEN]\n", map[string]string{"TOKEN": "s3cr et/+x", "REGION": "eu"})
	if err != nil {
		t.Fatal(err)
	}
	var m vm.VM
	got, err := sc.Steps[0].URL.Render(&m, &IterEnv{Env: sc.Env})
	if err != nil || got != "http://127.0.0.1:1/items?token=s3cr et/+x" {
		t.Fatalf("render: %q, %v", got, err)
	}
	for _, in := range []string{
		`Get "http://h/items?token=s3cr+et%2F%2Bx": EOF`, // query-escaped
		"token s3cr et/+x in a body",
		"/items/s3cr%20et%2F+x", // path-escaped
	} {
		if out := sc.Redact(in); strings.Contains(out, "s3cr") || !strings.Contains(out, Redacted) {
			t.Errorf("Redact(%q) = %q", in, out)
		}
	}
	if pub := sc.PublicEnv(); pub["TOKEN"] != Redacted || pub["REGION"] != "eu" {
		t.Fatalf("public env: %v", pub)
	}
	// A record keeps the public env: it compiles again, secret and all.
	if _, err := compileWithEnv(t, envFile+"secret: [TOKEN]\n", sc.PublicEnv()); err != nil {
		t.Fatalf("compile from the public env: %v", err)
	}
}

// TestEnvInRules: thresholds and distribution rules read the parameters
// too.
func TestEnvInRules(t *testing.T) {
	file := `name: rules
target: http://127.0.0.1:1
duration: 1s
load: {rate: 1}
requests: [{name: a}]
thresholds: ['p95 < float(env.P95_BUDGET)']
distribution: {select: 'node.region == env.REGION'}
`
	sc, err := compileWithEnv(t, file, map[string]string{"P95_BUDGET": "250", "REGION": "eu-west"})
	if err != nil {
		t.Fatal(err)
	}
	for p95, want := range map[float64]bool{200: true, 300: false} {
		env := sc.WithEnv(ThresholdEnv(storage.Summary{Latency: storage.Latency{P95: p95}}, nil))
		if res, pass := sc.Evaluate(env); pass != want {
			t.Errorf("p95 %v: pass %v, want %v (%+v)", p95, pass, want, res)
		}
	}
	for region, want := range map[string]bool{"eu-west": true, "us-east": false} {
		if ok, err := sc.Distribution.Select(NodeInfo{Name: "n", Region: region}); err != nil || ok != want {
			t.Errorf("select %s: %v %v", region, ok, err)
		}
	}
	if _, err := compileWithEnv(t, file, map[string]string{"REGION": "eu-west"}); err == nil || !strings.Contains(err.Error(), "env.P95_BUDGET") {
		t.Errorf("a threshold's missing parameter: %v", err)
	}
}
