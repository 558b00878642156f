package mintlimit

import (
	"testing"

	"github.com/icebox-project/icebox/internal/clientaddr"
)

// TestIPv6AggregateTier: refusals by the aggregate are counted apart; a
// Return gives back the token of both tiers; SetKeyer changes the
// aggregate's factor, and a prefix no shorter than the client's turns it
// off.
func TestIPv6AggregateTier(t *testing.T) {
	l, _ := newClocked(6, 1)
	keys := slash56Keys()
	for _, k := range keys[:9] {
		l.Take(k, SourceWS)
	}
	if got := l.RefusedIPv6Aggregate()[SourceWS]; got != 1 {
		t.Errorf("refused by the aggregate: got %d, want 1", got)
	}
	// A token returned to /64 #0 goes back to the /48 too: /64 #9 gets it.
	l2, _ := newClocked(6, 1)
	var first Grant
	for i, k := range keys[:8] {
		g, _, _ := l2.Take(k, SourceAPI)
		if i == 0 {
			first = g
		}
	}
	first.Return()
	if _, _, ok := l2.Take(keys[9], SourceAPI); !ok {
		t.Error("after a Return, the /48's token is still taken")
	}
	if got := l2.RefusedIPv6Aggregate()[SourceAPI]; got != 0 {
		t.Errorf("refused by the aggregate: got %d, want 0", got)
	}
	l.SetKeyer(clientaddr.Keyer{IPv6AggregateFactor: 16})
	granted := 0
	for _, k := range keys[20:] {
		if _, _, ok := l.Take(k, SourceWS); ok {
			granted++
		}
	}
	if granted != 8 { // 16 - the 8 already taken
		t.Errorf("factor 16: got %d more, want 8", granted)
	}
	l.SetKeyer(clientaddr.Keyer{IPv6AggregatePrefix: 64})
	for _, k := range keys[40:60] {
		if _, _, ok := l.Take(k, SourceWS); !ok {
			t.Fatalf("aggregate /64 (one tier): %s refused", k)
		}
	}
}
