package signaling

import (
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icebox-project/icebox/internal/clientaddr"
	"github.com/icebox-project/icebox/internal/mintlimit"
	"github.com/icebox-project/icebox/signaling/sigclient"
	"github.com/icebox-project/icebox/signaling/wire"
)

// TestCredentialIDNotPeerID: welcome credentials are minted for a random
// "peer:" id that is not the peer id the room sees, different per peer.
func TestCredentialIDNotPeerID(t *testing.T) {
	_, url := startSignaling(t, nil)
	a, b := dial(t, url), dial(t, url)
	wa, wb := a.join("r", "alice"), b.join("r", "bob")
	var users []string
	for _, w := range []*wire.Welcome{wa, wb} {
		u := w.ICEServers[0].Username
		user := strings.TrimPrefix(u, "u-")
		if !strings.HasPrefix(user, "peer:") || len(user) < len("peer:")+32 {
			t.Errorf("credential user %q, want peer:<32+ random characters>", user)
		}
		if strings.Contains(user, w.ID) {
			t.Errorf("credential user %q holds the peer id %v", user, w.ID)
		}
		users = append(users, user)
	}
	if users[0] == users[1] {
		t.Errorf("two peers share the credential user %q", users[0])
	}
}

// fromAddr dials url as the client address ip, through a trusted proxy
// (127.0.0.0/8) naming it in X-Forwarded-For.
func fromAddr(t *testing.T, url, ip string) *wsClient {
	t.Helper()
	return dialWith(t, url, sigclient.DialOptions{Header: http.Header{"X-Forwarded-For": {ip}}})
}

func trustLoopback(c *Config) {
	c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
}

// TestMintingLimitWS: joins take credentials from the client address's
// bucket; past it a join gets rate-limited (no credentials), a failed
// join gives its token back, addresses in one IPv6 /64 share the bucket,
// and refusals are counted under "ws".
func TestMintingLimitWS(t *testing.T) {
	lim := mintlimit.New(1, 2)
	_, url := startSignaling(t, func(c *Config) {
		trustLoopback(c)
		c.Minting = lim
		c.MaxPeersPerRoom = 8
	})
	// A wrong password costs no credential.
	g := fromAddr(t, url, "2001:db8:5:6::1")
	g.send(&wire.Join{Room: "locked", Name: "g", Password: "wrong"})
	g.expectError(wire.CodeBadPassword)
	fromAddr(t, url, "2001:db8:5:6::2").join("r", "one")
	fromAddr(t, url, "2001:db8:5:6:1::3").join("r", "two")
	third := fromAddr(t, url, "2001:db8:5:6:ffff::4")
	third.send(&wire.Join{Room: "r", Name: "three"})
	e := third.expectError(wire.CodeRateLimited)
	// No credentials: a refusal is a *wire.Error, which has no member
	// for them.
	if !strings.Contains(e.Message, "TURN credentials") {
		t.Errorf("refusal: got %v", e)
	}
	fromAddr(t, url, "2001:db8:5:7::1").join("r", "other-64") // another /64
	if got := lim.Refused()["ws"]; got != 1 {
		t.Errorf("ws refusals: got %d, want 1", got)
	}
}

// TestPasswordThrottleKeys: a correct join of room B does not reset the
// count of wrong guesses at room A, and addresses in one IPv6 /64 are one
// guesser.
func TestPasswordThrottleKeys(t *testing.T) {
	tests := []struct {
		name  string
		addrs []string // each guess comes from the next address, cycling
	}{
		{"one IPv4 address", []string{"198.51.100.66"}},
		{"one IPv6 /64", []string{"2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:aaaa::3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, url := startSignaling(t, func(c *Config) {
				trustLoopback(c)
				c.MaxPeersPerRoom = 100
				c.RoomPassword = func(room string) string {
					return map[string]string{"a": "pw-a", "b": "pw-b"}[room]
				}
			})
			s.guesses.maxFails = 3
			for i := 0; i < 3; i++ {
				ip := tt.addrs[i%len(tt.addrs)]
				g := fromAddr(t, url, ip)
				g.send(&wire.Join{Room: "a", Name: "g", Password: "guess"})
				g.expectError(wire.CodeBadPassword)
				// The attacker knows room b's password and joins it between guesses.
				b := fromAddr(t, url, ip)
				b.send(&wire.Join{Room: "b", Name: "b" + string(rune('0'+i)), Password: "pw-b"})
				expect[*wire.Welcome](b)
			}
			g := fromAddr(t, url, tt.addrs[len(tt.addrs)-1])
			g.send(&wire.Join{Room: "a", Name: "g", Password: "pw-a"})
			if e := g.expectError(wire.CodeRateLimited); !strings.Contains(e.Message, "wrong passwords") {
				t.Errorf("refusal message: %v", e.Message)
			}
			// Room b, where this address guessed nothing wrong, stays open.
			b := fromAddr(t, url, tt.addrs[0])
			b.send(&wire.Join{Room: "b", Name: "late", Password: "pw-b"})
			expect[*wire.Welcome](b)
			// Another address, or another /64, is unaffected.
			o := fromAddr(t, url, "203.0.113.9")
			o.send(&wire.Join{Room: "a", Name: "o", Password: "pw-a"})
			expect[*wire.Welcome](o)
		})
	}
}

// TestGuessThrottleAcrossRooms: wrong guesses spread over many rooms
// block the address at maxAddrFails, for every room, and a success
// anywhere does not reset that.
func TestGuessThrottleAcrossRooms(t *testing.T) {
	g := newGuessThrottle(time.Now)
	k := clientaddr.Keyer{}.KeysString("2001:db8::1")
	for i := 0; i < g.maxAddrFails-1; i++ {
		room := "room" + string(rune('a'+i))
		g.failed(k, room)
		g.succeeded(k, "mine")
		if w := g.blocked(k, "elsewhere"); w != 0 {
			t.Fatalf("after %d wrong guesses in different rooms: blocked %v, want not yet", i+1, w)
		}
	}
	g.failed(k, "last")
	g.succeeded(k, "last")
	if w := g.blocked(k, "any"); w <= 0 {
		t.Errorf("after %d wrong guesses: not blocked, want blocked everywhere", g.maxAddrFails)
	}
	if w := g.blocked(clientaddr.Keyer{}.KeysString("2001:db8:0:0:ffff::1"), "any"); w <= 0 {
		t.Errorf("another address in the /64: not blocked, want blocked")
	}
	if w := g.blocked(clientaddr.Keyer{}.KeysString("2001:db8:0:1::1"), "any"); w != 0 {
		t.Errorf("another /64: blocked %v, want not", w)
	}
}

// TestGuessThrottleBounded: the throttle forgets expired counts first
// when full.
func TestGuessThrottleBounded(t *testing.T) {
	g := newGuessThrottle(time.Now)
	var mu sync.Mutex
	now := time.Unix(1_700_000_000, 0)
	g.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	g.failed(clientaddr.Keys{Addr: "old"}, "r")
	mu.Lock()
	now = now.Add(2 * g.block)
	mu.Unlock()
	for i := 0; len(g.fails) < maxTracked; i++ {
		g.fails[guessKey{addr: "filler", room: string(rune(i))}] = &guessState{n: 1, last: now}
	}
	g.failed(clientaddr.Keys{Addr: "new"}, "r")
	if _, ok := g.fails[guessKey{"old", "r"}]; ok {
		t.Error("an expired count survived a full map")
	}
	if len(g.fails) > maxTracked {
		t.Errorf("tracked %d counts, past %d", len(g.fails), maxTracked)
	}
}

// TestEmptyPasswordIsNoGuess: a join without a password to a passworded
// room is answered bad-password at once and not counted as a wrong guess,
// so a page that learns the room needs one is not throttled for it.
func TestEmptyPasswordIsNoGuess(t *testing.T) {
	s, url := startSignaling(t, func(c *Config) {
		trustLoopback(c)
		c.RoomPassword = func(room string) string { return map[string]string{"a": "pw-a"}[room] }
	})
	s.guesses.maxFails = 2
	for i := 0; i < 5; i++ {
		g := fromAddr(t, url, "198.51.100.77")
		g.send(&wire.Join{Room: "a", Name: "g"})
		g.expectError(wire.CodeBadPassword)
	}
	g := fromAddr(t, url, "198.51.100.77")
	g.send(&wire.Join{Room: "a", Name: "g", Password: "pw-a"})
	expect[*wire.Welcome](g)
}
