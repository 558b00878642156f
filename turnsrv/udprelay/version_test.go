package udprelay

import (
	"os"
	"regexp"
	"testing"
)

// TestPionVersionPinned fails when go.mod requires another pion/turn than
// the one this package was checked against: re-check what endPionReader's
// doc lists, run turnsrv's TestPionCoupling, then update PionTurnVersion.
func TestPionVersionPinned(t *testing.T) {
	mod, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*github\.com/pion/turn/v4 (\S+)`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod does not require github.com/pion/turn/v4")
	}
	if got := string(m[1]); got != PionTurnVersion {
		t.Fatalf("go.mod requires pion/turn %s, udprelay was checked against %s: re-check endPionReader's list and TestPionCoupling before changing PionTurnVersion",
			got, PionTurnVersion)
	}
}
