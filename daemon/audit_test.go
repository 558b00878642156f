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
	if n := len(a.again); n != 1 {
		t.Errorf("%d runs asked for, want 1", n)
	}
}
