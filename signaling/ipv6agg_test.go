package signaling

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/icebox-project/icebox/internal/clientaddr"
	"github.com/icebox-project/icebox/internal/testenv"
	"github.com/icebox-project/icebox/signaling/sigclient"
)

// TestConnectionsIPv6Aggregate: a client with a /56 opens WebSockets from
// its 256 /64s (through a trusted proxy, X-Forwarded-For), one each,
// under MaxConnectionsPerIP 1: the /48 holds 8 (8× the cap) and the rest
// get 429, counted as per_ipv6_aggregate; a closed connection frees its
// place in both tiers, and another /48 is untouched.
func TestConnectionsIPv6Aggregate(t *testing.T) {
	s, url := startSignaling(t, func(c *Config) { trustLoopback(c); c.MaxConnectionsPerIP = 1 })
	var open []*wsClient
	refused := 0
	for i := range 256 {
		hdr := http.Header{"X-Forwarded-For": {fmt.Sprintf("2001:db8:1:ff%02x::1", i)}}
		c, err := sigclient.Dial(context.Background(), url, sigclient.DialOptions{Header: hdr})
		var de *sigclient.DialError
		switch {
		case err == nil:
			t.Cleanup(func() { c.Close() })
			open = append(open, &wsClient{t: t, Client: c})
		case errors.As(err, &de) && de.StatusCode == http.StatusTooManyRequests:
			refused++
		default:
			t.Fatalf("/64 #%d: %v", i, err)
		}
	}
	if len(open) != 8 || refused != 248 {
		t.Errorf("256 /64s of one /56: got %d open and %d refused, want 8 and 248", len(open), refused)
	}
	if got := s.Stats().Refused()[RefusedPerIPv6Aggregate]; got != 248 {
		t.Errorf("refused per_ipv6_aggregate: got %d, want 248", got)
	}
	fromAddr(t, url, "2001:db8:2::1").alive() // another /48
	if len(open) > 0 {
		open[0].Close()
		testenv.Eventually(t, 5*time.Second, "the closed connection's place freed", func() bool {
			return dialStatus(t, url, http.Header{"X-Forwarded-For": {"2001:db8:1:ffee::1"}}) == http.StatusSwitchingProtocols
		})
	}
}

// TestGuessThrottleIPv6Aggregate: wrong passwords spread over the /64s of
// one /56, each /64 below maxAddrFails, block the whole /48 once it holds
// maxAddrFails × 8; another /48 may still guess.
func TestGuessThrottleIPv6Aggregate(t *testing.T) {
	g := newGuessThrottle(time.Now)
	k := clientaddr.Keyer{}
	perAddr := g.maxAddrFails - 1 // each /64 stays below its own block
	guesses := 0
	for i := 0; guesses < g.maxAddrFails*8; i++ {
		ks := k.KeysString(fmt.Sprintf("2001:db8:1:ff%02x::1", i))
		for j := 0; j < perAddr && guesses < g.maxAddrFails*8; j++ {
			if w := g.blocked(ks, "r"+fmt.Sprint(j)); w != 0 {
				t.Fatalf("blocked after %d guesses from the /56, want %d", guesses, g.maxAddrFails*8)
			}
			g.failed(ks, "r"+fmt.Sprint(j))
			guesses++
		}
	}
	if w := g.blocked(k.KeysString("2001:db8:1:ffee::1"), "fresh"); w <= 0 {
		t.Errorf("a fresh /64 of the /56 after %d guesses from it: not blocked, want blocked", guesses)
	}
	if w := g.blocked(k.KeysString("2001:db8:2::1"), "fresh"); w != 0 {
		t.Errorf("another /48: blocked %v", w)
	}
}
