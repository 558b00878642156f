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
	if got := a.start(); got != second {
		t.Error("the next run does not close the reloads' channel")
	}
	if n := len(a.again); n != 0 {
		t.Errorf("%d more runs asked for after the run that covers both reloads started, want 0", n)
	}
}

// TestSelfAuditReloadBeforeFirstRun: a reload before the start-up run has
// started is covered by that run; its wake-up must not start a second run
// that closes the start-up run's channel again (it did: "close of closed
// channel" in the audit loop).
func TestSelfAuditReloadBeforeFirstRun(t *testing.T) {
	a := newSelfAudit(&config.Config{})
	a.request(&config.Config{StateDir: "reloaded"})
	done := a.start()
	close(done)
	if n := len(a.again); n != 0 {
		t.Fatalf("%d more runs asked for, want 0: the start-up run covers the reload", n)
	}
	// A wake-up that arrives after the run started (request's send races
	// with start) gets a run with a channel of its own.
	a.again <- struct{}{}
	<-a.again
	extra := a.start()
	if extra == done {
		t.Fatal("an extra run reuses a closed done channel")
	}
	close(extra)
}
