package mintlimit

import (
	"fmt"
	"testing"
	"time"

	"github.com/icebox-project/icebox/internal/clientaddr"
)

// slash56Keys are the clientaddr keys of the 256 /64s of one /56.
func slash56Keys() []string {
	keys := make([]string, 256)
	for i := range keys {
		keys[i] = clientaddr.Keyer{}.KeyString(fmt.Sprintf("2001:db8:1:ff%02x::1", i))
	}
	return keys
}

// TestIPv6AggregateBurst: a client with a /56 takes credentials from its
// 256 /64s, one each (within each /64's burst): the /48's bucket, 8× the
// burst, runs dry after 8, and refills 8× as fast.
func TestIPv6AggregateBurst(t *testing.T) {
	l, c := newClocked(6, 1) // per /64: one token per 10 s, burst 1
	granted := 0
	for _, k := range slash56Keys() {
		if _, _, ok := l.Take(k, SourcePage); ok {
			granted++
		}
	}
	if granted != 8 {
		t.Errorf("credentials for 256 /64s of one /56: got %d, want 8 (8 × credentials_burst)", granted)
	}
	if got := l.Refused()[SourcePage]; got != 248 {
		t.Errorf("refused: got %d, want 248", got)
	}
	c.add(10 * time.Second) // 8 tokens for the /48 (8 × 6 a minute)
	granted = 0
	for _, k := range slash56Keys()[100:] {
		if _, _, ok := l.Take(k, SourcePage); ok {
			granted++
		}
	}
	if granted != 8 {
		t.Errorf("10 s later: got %d, want 8", granted)
	}
	if _, _, ok := l.Take(clientaddr.Keyer{}.KeyString("2001:db8:2::1"), SourcePage); !ok {
		t.Error("a client of another /48 was refused")
	}
}
