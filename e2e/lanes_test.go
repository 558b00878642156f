package e2e

import (
	"context"
	"flag"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sync/semaphore"
)

// The tests of this package run side by side, within one budget of work
// the machine carries at once (sized for two cores): each takes its
// weight from the budget before it starts and gives it back when it
// ends. A test that waits on servers and sockets is light; a browser
// test weighs what its pages encode and decode; a test whose bounds are
// about time (video back within 10 s of a restart, the active speaker,
// six pages) takes the machine nearly to itself, leaving room only for
// a light test beside it.
//
// A test waiting for its weight holds one of `go test -parallel`'s slots,
// and a test's parallel subtests need slots too: with fewer slots than
// the package's tests plus their parallel subtests, the subtests of a
// test holding weight could wait for slots held by tests waiting for
// that weight. So tests run side by side only with -parallel
// laneSlots or more (the Makefile gives it), else one after another.
const laneSlots = 64
const laneBudget = 4

// Weights of a test (see laneBudget).
const (
	// laneLight: servers, sockets and pion or coturn clients, no browser.
	laneLight = 1
	// laneBrowser: two pages, or a page and a small lab.
	laneBrowser = 2
	// laneHeavy: bounds in time or three pages and more; one light test
	// may run beside it.
	laneHeavy = 3
	// laneAlone: six pages on two cores; nothing runs beside it.
	laneAlone = laneBudget
)

var lanes = semaphore.NewWeighted(laneBudget)

// longScenarios are the browser scenarios that take the most CPU (six
// pages in a mesh, restarts under time bounds, the NAT lab, Firefox's
// page): `make test` runs the package with -short, which skips them, so
// that it stays within a few minutes on two cores, and `make test-long`
// (CI runs both) runs them alone, with longEnv set.
var longScenarios = map[string]bool{
	"TestPageLayout":        true,
	"TestPageRelayRestarts": true,
	"TestPageMeshBitrate":   true,
	"TestFirefoxPage":       true,
	"TestNATLab":            true,
	"TestPageServerRestart": true,
	"TestPageTrust":         true,
}

// longEnv, set to 1, runs only the long scenarios.
const longEnv = "ICEBOX_E2E_LONG"

// lane runs t beside the package's other tests once weight of the budget
// is free; it is held until t and its cleanups end. Call it first. It
// skips t when t is a long scenario and the run is -short, or when t is
// not one and longEnv is set.
func lane(t *testing.T, weight int64) {
	t.Helper()
	switch long := longScenarios[t.Name()]; {
	case long && testing.Short():
		t.Skip("a long scenario: make test-long runs it")
	case !long && os.Getenv(longEnv) == "1":
		t.Skip("not a long scenario, and " + longEnv + "=1")
	}
	if f := flag.Lookup("test.parallel"); f == nil || f.Value.(flag.Getter).Get().(int) < laneSlots {
		return
	}
	t.Parallel()
	if err := lanes.Acquire(context.Background(), weight); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lanes.Release(weight) })
}

// TestLongScenariosExist: every name in longScenarios is a test of this
// package, so a misspelt one cannot leave a long scenario in `make test`.
func TestLongScenariosExist(t *testing.T) {
	lane(t, laneLight)
	files, err := filepath.Glob("*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string]bool{}
	fset := token.NewFileSet()
	for _, name := range files {
		f, err := parser.ParseFile(fset, name, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv == nil && strings.HasPrefix(fn.Name.Name, "Test") {
				tests[fn.Name.Name] = true
			}
		}
	}
	for name := range longScenarios {
		if !tests[name] {
			t.Errorf("longScenarios names %s, which is not a test of this package", name)
		}
	}
}
