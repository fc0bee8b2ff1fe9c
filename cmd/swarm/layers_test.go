package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/loadswarm/loadswarm"

// layers is DESIGN.md's package table: every package of the module, with
// the packages just below it. A package's non-test files may import what
// lies below it, directly or further down ("imports point down"): cmd/swarm
// may import storage, because cmd/swarm/cli -> testnet -> node -> storage;
// report may not import scheduler, a sibling; nothing imports a package
// above it. A package missing here fails the test: place it first.
var layers = map[string][]string{
	"cmd/swarm":         {"cmd/swarm/cli"},
	"cmd/swarm/cli":     {"testnet", "node", "scenarios"},
	"testnet":           {"node"},
	"node":              {"report", "report/web", "scheduler", "scenarios", "storage", "swarm"},
	"report":            {"scenarios", "storage"},
	"report/web":        nil, // the dashboard's and the HTML report's front end: a leaf
	"scheduler":         {"scenarios"},
	"scenarios":         {"scenarios/observe", "storage"},
	"scenarios/observe": nil, // reads the system under test's metrics: a leaf
	"storage":           nil,
	"swarm":             nil,

	"scripts/benchserver": nil, // the target of `make bench`: stands alone
}

// testHelpers are the packages that import package testing, with what lies
// below each. Only test files may import them, and only tests of a package
// that sits above everything the helper stands on (swarm's tests may use
// swarmtest; node's may not use fleettest, which stands on testnet).
var testHelpers = map[string][]string{
	"swarm/swarmtest":     {"swarm"},
	"testnet/fleettest":   {"testnet", "swarm/swarmtest"},
	"testnet/promtest":    {}, // a real Prometheus server for tests
	"testnet/otlptest":    {}, // a real OTLP receiver for tests
	"testnet/browsertest": {}, // a real headless Chromium for tests
}

// below returns every package under p in the tables: what p's non-test
// files may import.
func below(p string) map[string]bool {
	out := map[string]bool{}
	var walk func(string)
	walk = func(p string) {
		for _, q := range append(slices.Clone(layers[p]), testHelpers[p]...) {
			if !out[q] {
				out[q] = true
				walk(q)
			}
		}
	}
	walk(p)
	return out
}

// listedPackage is what `go list -json` says of a package.
type listedPackage struct {
	ImportPath   string
	DepOnly      bool     // a dependency, not one of the module's packages
	Imports      []string // of the non-test files
	TestImports  []string // of the package's own _test files
	XTestImports []string // of the package_test files
	Deps         []string // everything the non-test files link, transitively
}

// goList lists the module's packages and everything they depend on, with
// one `go list` run.
func goList(t *testing.T) map[string]*listedPackage {
	t.Helper()
	// `go test` puts the go binary that runs it first in PATH, so this is
	// the toolchain under test (runtime.GOROOT is deprecated for this).
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to list packages with: %v", err)
	}
	cmd := exec.Command(gobin, "list", "-deps",
		"-json=ImportPath,DepOnly,Imports,TestImports,XTestImports,Deps", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	pkgs := map[string]*listedPackage{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs[p.ImportPath] = &p
	}
	return pkgs
}

// ours returns the module-relative path of an import path of the module.
func ours(importPath string) (string, bool) {
	rel, ok := strings.CutPrefix(importPath, module+"/")
	return rel, ok
}

// chain returns the imports that lead from one package to another, e.g.
// [cmd/swarm testnet testing], for the failure message.
func chain(pkgs map[string]*listedPackage, from, to string) []string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p == to {
			var out []string
			for ; p != ""; p = prev[p] {
				out = append(out, strings.TrimPrefix(p, module+"/"))
			}
			slices.Reverse(out)
			return out
		}
		if lp := pkgs[p]; lp != nil {
			for _, q := range lp.Imports {
				if _, seen := prev[q]; !seen {
					prev[q] = p
					queue = append(queue, q)
				}
			}
		}
	}
	return []string{from, "...", to}
}

// TestLayers keeps the imports of the module's packages pointing down the
// package table of DESIGN.md, and testing code out of everything but
// tests: the `swarm` binary must not link package testing.
func TestLayers(t *testing.T) {
	pkgs := goList(t)
	var names []string
	for ip, p := range pkgs {
		if _, ok := ours(ip); ok && !p.DepOnly {
			names = append(names, ip)
		}
	}
	slices.Sort(names)
	if !slices.Contains(names, module+"/cmd/swarm") {
		t.Fatalf("go list did not list cmd/swarm: %v", names)
	}
	for _, ip := range names {
		p := pkgs[ip]
		rel, _ := ours(ip)
		t.Run(rel, func(t *testing.T) {
			_, isLayer := layers[rel]
			_, isHelper := testHelpers[rel]
			if !isLayer && !isHelper {
				t.Fatalf("%s is in neither table of layers_test.go: place it in DESIGN.md's order first", rel)
			}
			if !isHelper && strings.HasSuffix(path.Base(rel), "test") {
				t.Errorf("%s is named as a test helper: list it in testHelpers, or rename it", rel)
			}
			down := below(rel)

			// (a) Non-test files import only what lies below.
			for _, imp := range p.Imports {
				q, ok := ours(imp)
				switch {
				case imp == "testing" && !isHelper:
					t.Errorf("%s imports package testing in a non-test file", rel)
				case !ok:
				case !isHelper && testHelpers[q] != nil:
					t.Errorf("%s imports the test helper %s in a non-test file", rel, q)
				case !down[q]:
					t.Errorf("%s imports %s, which is not below it (DESIGN.md: imports point down)", rel, q)
				}
			}
			// Tests import the package, what lies below it, and the test
			// helpers that stand on nothing above it.
			for _, imp := range append(slices.Clone(p.TestImports), p.XTestImports...) {
				q, ok := ours(imp)
				if !ok || q == rel || down[q] {
					continue
				}
				if testHelpers[q] == nil {
					t.Errorf("tests of %s import %s, which is not below it", rel, q)
					continue
				}
				for h := range below(q) {
					if testHelpers[h] == nil && h != rel && !down[h] {
						t.Errorf("tests of %s import the test helper %s, which stands on %s, not below %s", rel, q, h, rel)
					}
				}
			}

			// (b) What a package links holds no testing code: not package
			// testing, not a test helper of ours.
			if isHelper {
				return
			}
			for _, d := range p.Deps {
				q, mine := ours(d)
				if d == "testing" || (mine && testHelpers[q] != nil) {
					t.Errorf("%s links %s: %s", rel, strings.TrimPrefix(d, module+"/"), strings.Join(chain(pkgs, ip, d), " -> "))
				}
			}
		})
	}
}

// TestBelow: the table's closure, read aloud.
func TestBelow(t *testing.T) {
	for _, tc := range []struct {
		pkg, other string
		below      bool
	}{
		{"cmd/swarm", "storage", true},          // cmd/swarm -> cli -> testnet -> node -> storage
		{"cmd/swarm", "swarm/swarmtest", false}, // a test helper is below nothing but tests
		{"testnet", "swarm", true},              // testnet -> node -> swarm
		{"node", "testnet", false},              // testnet is above node
		{"scheduler", "storage", true},          // scheduler -> scenarios -> storage
		{"scheduler", "node", false},            // node is above scheduler
		{"report", "scheduler", false},          // siblings
		{"swarm", "storage", false},             // swarm imports nothing of ours
		{"storage", "scenarios", false},         // storage imports nothing of ours
		{"testnet/fleettest", "swarm/swarmtest", true},
	} {
		if got := below(tc.pkg)[tc.other]; got != tc.below {
			t.Errorf("%s below %s: %v, want %v", tc.other, tc.pkg, got, tc.below)
		}
	}
}
