package cli

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/loadswarm/loadswarm/scenarios"
)

// Params are a run's parameters from the command line: -e KEY=VALUE,
// --env-file FILE and -s KEY=VALUE (a secret). A KEY without =VALUE takes
// its value from this process's environment, so that a CI secret never
// shows on a command line.
type Params struct {
	Env      []string
	EnvFiles []string
	Secrets  []string
}

func (p *Params) addFlags(f *pflag.FlagSet) {
	f.StringArrayVarP(&p.Env, "env", "e", nil, "a parameter the test reads as env.KEY: KEY=VALUE, or KEY to take $KEY (repeat)")
	f.StringArrayVar(&p.EnvFiles, "env-file", nil, "read parameters from a file of KEY=VALUE lines (# comments; repeat)")
	f.StringArrayVarP(&p.Secrets, "secret", "s", nil, "a secret parameter: KEY=VALUE or KEY (from $KEY); used, never stored nor shown (repeat)")
}

// resolve returns the parameters and the names of the secret ones.
func (p *Params) resolve() (env map[string]string, secret []string, err error) {
	env = map[string]string{}
	for _, file := range p.EnvFiles {
		if err := readEnvFile(file, env); err != nil {
			return nil, nil, err
		}
	}
	for _, kv := range p.Env {
		k, v, err := param("-e", kv)
		if err != nil {
			return nil, nil, err
		}
		env[k] = v
	}
	for _, kv := range p.Secrets {
		k, v, err := param("-s", kv)
		if err != nil {
			return nil, nil, err
		}
		env[k] = v
		secret = append(secret, k)
	}
	return env, secret, nil
}

// param reads one KEY=VALUE (or KEY, from the environment).
func param(flag, kv string) (string, string, error) {
	k, v, ok := strings.Cut(kv, "=")
	if k == "" {
		return "", "", fmt.Errorf("%s %q: want KEY=VALUE", flag, kv)
	}
	if !ok {
		val, set := os.LookupEnv(k)
		if !set {
			return "", "", fmt.Errorf("%s %s: no =VALUE, and $%s is not set", flag, k, k)
		}
		v = val
	}
	return k, v, nil
}

// readEnvFile reads KEY=VALUE lines: blank lines and # comments are
// skipped, "export " is allowed, and matching quotes around a value go.
func readEnvFile(path string, env map[string]string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("--env-file: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return fmt.Errorf("--env-file %s:%d: want KEY=VALUE", path, n)
		}
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		env[k] = v
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("--env-file %s: %w", path, err)
	}
	return nil
}

// compileFile reads and compiles a test file with a target and the run's
// parameters; errors name the file.
func compileFile(file, target string, env map[string]string, secret []string) (*scenarios.Scenario, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	spec, err := scenarios.DecodeSpec(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if target != "" {
		spec.Target = target
	}
	spec.Env = env
	spec.Secret = append(spec.Secret, secret...)
	sc, err := scenarios.Compile(spec)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return sc, nil
}
