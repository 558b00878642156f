package config

import (
	"strings"
	"testing"

	"github.com/icebox-project/icebox/turnsrv"
)

// TestRealmLength: turn.realm is refused past the length turnsrv serves,
// with the reason; the two bounds are one.
func TestRealmLength(t *testing.T) {
	if maxRealmLength != turnsrv.MaxRealmLength {
		t.Fatalf("config allows realms of %d bytes, turnsrv %d", maxRealmLength, turnsrv.MaxRealmLength)
	}
	ok := strings.Repeat("r", maxRealmLength)
	if _, err := FromBytes("icebox.yaml", []byte("turn:\n  realm: "+ok+"\n")); err != nil {
		t.Errorf("a realm of %d bytes: %v", len(ok), err)
	}
	_, err := FromBytes("icebox.yaml", []byte("turn:\n  realm: "+ok+"x\n"))
	if err == nil || !strings.Contains(err.Error(), "turn.realm") || !strings.Contains(err.Error(), "3 times") {
		t.Errorf("a realm of %d bytes: got %v, want an error naming turn.realm and why", len(ok)+1, err)
	}
}
