package e2e

import (
	"context"
	"flag"
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

// lane runs t beside the package's other tests once weight of the budget
// is free; it is held until t and its cleanups end. Call it first.
func lane(t *testing.T, weight int64) {
	t.Helper()
	if f := flag.Lookup("test.parallel"); f == nil || f.Value.(flag.Getter).Get().(int) < laneSlots {
		return
	}
	t.Parallel()
	if err := lanes.Acquire(context.Background(), weight); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lanes.Release(weight) })
}
