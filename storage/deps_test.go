package storage

import (
	"go/build"
	"strings"
	"testing"
)

// TestImportsNothingOfOurs keeps storage at the bottom of the module: it
// may import no other package of the module (see DESIGN.md).
func TestImportsNothingOfOurs(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	const module = "github.com/loadswarm/loadswarm"
	for _, imp := range append(pkg.Imports, pkg.TestImports...) {
		if imp == module || strings.HasPrefix(imp, module+"/") {
			t.Errorf("storage imports %s", imp)
		}
	}
}
