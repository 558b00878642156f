package daemon

import (
	"testing"

	"github.com/icebox-project/icebox/config"
)

// TestSelfAuditRequests: reloads that come before a run starts share its
// done channel; a reload during a run gets a channel of its own, closed by
// the next run.
func TestSelfAuditRequests(t *testing.T) {
	a := newSelfAudit(&config.Config{})
	first := a.done
	if got := a.start(); got != first {
		t.Fatal("the start-up run does not close the first done channel")
	}
	a.request(&config.Config{StateDir: "one"})
	second := a.done
	a.request(&config.Config{StateDir: "two"})
	if second == first || a.done != second {
		t.Fatal("two reloads before the next run should share one new done channel")
	}
	if got := a.config.Load().StateDir; got != "two" {
		t.Errorf("the next run uses config %q, want the last reload's", got)
	}
	if n := len(a.again); n != 1 {
		t.Errorf("%d runs asked for, want 1", n)
	}
	if got := a.start(); got != second {
		t.Error("the next run does not close the reloads' channel")
	}
	if n := len(a.again); n != 0 {
		t.Errorf("%d runs still asked for after the run that serves the reloads started, want 0", n)
	}
}

// TestSelfAuditReloadBeforeFirstRun: a reload before the start-up run has
// started is served by that run; no second run is asked for that would
// close the same done channel again (a panic, seen with SIGHUP at once
// after start).
func TestSelfAuditReloadBeforeFirstRun(t *testing.T) {
	a := newSelfAudit(&config.Config{})
	a.request(&config.Config{StateDir: "early"})
	first := a.start()
	close(first) // the run ends
	if n := len(a.again); n != 0 {
		t.Fatalf("%d runs asked for after the run that served the reload, want 0", n)
	}
	a.request(&config.Config{StateDir: "later"})
	if a.done == first || len(a.again) != 1 {
		t.Fatal("a reload after the run does not ask for a run with a done channel of its own")
	}
}
