package scenarios

import (
	"fmt"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// A run's parameters: `swarm run -e KEY=VALUE` (and -s for secrets) give
// values that templates and checks read as env.KEY. The test file stays
// the same from run to run; a secret's value is sent to the nodes with the
// test and used, but never kept nor shown: results, records, logs, reports
// and the API see "***" (Redact).

// Limits on a run's parameters.
const (
	MaxEnvKeys   = 64
	MaxEnvValue  = 4096
	MinSecretLen = 4 // shorter values could not be told apart from other text when redacted
)

// Redacted is what a secret's value shows as.
const Redacted = "***"

var (
	envKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)
	// envRef finds env.KEY and env["KEY"] in expressions.
	envRef = regexp.MustCompile(`\benv(?:\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*["']([^"']*)["']\s*\])`)
)

// compileEnv checks a run's parameters against the file: every name it
// reads is given, every secret it names is given, and sizes are bounded.
func (sc *Scenario) compileEnv(errs *problems, spec *Spec) {
	if len(spec.Env) > MaxEnvKeys {
		errs.add("env", "%d parameters, over the limit of %d", len(spec.Env), MaxEnvKeys)
		return
	}
	for k, v := range spec.Env {
		switch {
		case !envKey.MatchString(k):
			errs.add("env."+k, "name must be letters, digits and _ (at most 64), not starting with a digit")
		case len(v) > MaxEnvValue:
			errs.add("env."+k, "value is %d bytes, over the limit of %d", len(v), MaxEnvValue)
		}
	}
	secret := map[string]bool{}
	for i, k := range spec.Secret {
		path := fmt.Sprintf("secret[%d]", i)
		v, ok := spec.Env[k]
		switch {
		case !envKey.MatchString(k):
			errs.add(path, "%q: a parameter name (letters, digits and _)", k)
		case !ok:
			errs.add(path, "%s is not given: pass it with swarm run -s %s=VALUE", k, k)
		case len(v) < MinSecretLen && v != Redacted:
			errs.add(path, "%s is %d characters: a secret needs at least %d, to be redacted reliably", k, len(v), MinSecretLen)
		default:
			secret[k] = true
		}
	}
	for _, k := range envRefs(spec) {
		if _, ok := spec.Env[k]; !ok {
			errs.add("env."+k, "the test reads env.%s but the run does not give it: swarm run -e %s=VALUE", k, k)
		}
	}
	sc.Env = map[string]string{}
	for k, v := range spec.Env {
		sc.Env[k] = v
		if secret[k] && v != Redacted {
			sc.secrets = append(sc.secrets, v)
		}
	}
	sc.SecretNames = slices.Sorted(func(yield func(string) bool) {
		for k := range secret {
			if !yield(k) {
				return
			}
		}
	})
	// The longest first: a secret that contains another is hidden whole.
	sort.Slice(sc.secrets, func(a, b int) bool { return len(sc.secrets[a]) > len(sc.secrets[b]) })
}

// envRefs lists the parameters the file's expressions and templates read:
// every string of the spec is searched (they are where expressions live).
func envRefs(spec *Spec) []string {
	seen := map[string]bool{}
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		switch v.Kind() {
		case reflect.String:
			for _, m := range envRef.FindAllStringSubmatch(v.String(), -1) {
				seen[m[1]+m[2]] = true
			}
		case reflect.Pointer, reflect.Interface:
			if !v.IsNil() {
				walk(v.Elem())
			}
		case reflect.Struct:
			for i := range v.NumField() {
				if v.Type().Field(i).IsExported() && v.Type().Field(i).Name != "Env" {
					walk(v.Field(i))
				}
			}
		case reflect.Slice, reflect.Array:
			for i := range v.Len() {
				walk(v.Index(i))
			}
		case reflect.Map:
			for _, k := range v.MapKeys() {
				walk(k)
				walk(v.MapIndex(k))
			}
		}
	}
	walk(reflect.ValueOf(spec).Elem())
	return slices.Sorted(func(yield func(string) bool) {
		for k := range seen {
			if !yield(k) {
				return
			}
		}
	})
}

// Redact hides the run's secrets in s: their values, and their URL-escaped
// forms (an error names the URL a secret went into).
func (sc *Scenario) Redact(s string) string {
	for _, v := range sc.secrets {
		s = strings.ReplaceAll(s, v, Redacted)
		if q := url.QueryEscape(v); q != v {
			s = strings.ReplaceAll(s, q, Redacted)
		}
		if p := url.PathEscape(v); p != v {
			s = strings.ReplaceAll(s, p, Redacted)
		}
	}
	return s
}

// PublicEnv is the run's parameters as they may be shown and kept: each
// secret's value is Redacted.
func (sc *Scenario) PublicEnv() map[string]string {
	out := make(map[string]string, len(sc.Env))
	for k, v := range sc.Env {
		out[k] = v
	}
	for _, k := range sc.SecretNames {
		out[k] = Redacted
	}
	return out
}
