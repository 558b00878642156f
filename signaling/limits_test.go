package signaling

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/icebox-project/icebox/internal/clientaddr"
	"github.com/icebox-project/icebox/internal/testenv"
	"github.com/icebox-project/icebox/signaling/sigclient"
	"github.com/icebox-project/icebox/signaling/wire"
)

// drop ends the TCP connection without a close frame, as a lost network
// does.
func (c *wsClient) drop() { c.Conn().UnderlyingConn().Close() }

// suspended is the number of peers waiting for a resume.
func (s *Server) suspendedPeers() int {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	return len(s.hub.suspended)
}

// waitSuspended waits until the server has noticed n dropped peers.
func waitSuspended(t *testing.T, s *Server, n int) {
	t.Helper()
	testenv.Eventually(t, 5*time.Second, fmt.Sprintf("%d suspended peers", n), func() bool { return s.suspendedPeers() == n })
}

func TestResume(t *testing.T) {
	s, url := startSignaling(t, func(c *Config) { c.ResumeWindow = 2 * time.Second })
	a, b := dial(t, url), dial(t, url)
	a.join("r", "alice")
	wb := b.join("r", "bob")
	expect[*wire.PeerJoined](a)
	token := wb.Resume
	if len(token) < 30 || wb.Resumed {
		t.Fatalf("welcome resume %q resumed %v", token, wb.Resumed)
	}

	b.drop()
	waitSuspended(t, s, 1)
	// Signals to the dropped peer are kept for it.
	a.signal(b.id, msg{"while": "away"})

	b2 := dial(t, url)
	b2.send(&wire.Join{Room: "r", Name: "ignored", Resume: token})
	w := expect[*wire.Welcome](b2)
	if w.ID != b.id || !w.Resumed {
		t.Fatalf("resumed welcome: got id %v resumed %v, want id %s resumed true", w.ID, w.Resumed, b.id)
	}
	if w.Resume == token || w.Resume == "" {
		t.Errorf("resume token not renewed")
	}
	if peers := w.Peers; len(peers) != 1 || peers[0].Name != "alice" {
		t.Errorf("resumed welcome peers: %v", peers)
	}
	if sig := expect[*wire.Signal](b2); sig.From != a.id || dataOf(t, sig)["while"] != "away" {
		t.Errorf("queued signal: got %v", sig)
	}
	// The room saw neither peer-left nor peer-joined: the next message to
	// alice after the drop and the resume is the answer to her ping.
	a.alive()
	// The same token does not work twice.
	b3 := dial(t, url)
	b3.send(&wire.Join{Room: "r", Name: "bob", Resume: token})
	b3.expectError(wire.CodeNameTaken)
	b2.signal(a.id, msg{"back": true})
	if sig := expect[*wire.Signal](a); sig.From != b.id {
		t.Errorf("signal after resume from %v, want %s", sig.From, b.id)
	}
}

// TestResumeAfterWindow: a dropped peer stays in its room until the
// resume window has passed, then leaves; its token then starts a fresh
// peer.
func TestResumeAfterWindow(t *testing.T) {
	s, url := startSignaling(t, func(c *Config) { c.ResumeWindow = 300 * time.Millisecond })
	clk := clockOf(s)
	a, b := dial(t, url), dial(t, url)
	a.join("r", "alice")
	token := b.join("r", "bob").Resume
	expect[*wire.PeerJoined](a)
	b.drop()
	waitSuspended(t, s, 1)
	clk.Advance(299 * time.Millisecond)
	a.alive() // no peer-left before the pong
	clk.Advance(time.Millisecond)
	if pl := expect[*wire.PeerLeft](a); pl.ID != b.id {
		t.Fatalf("peer-left: %v", pl)
	}
	b2 := dial(t, url)
	b2.send(&wire.Join{Room: "r", Name: "bob", Resume: token})
	w := expect[*wire.Welcome](b2)
	if w.ID == b.id || w.Resumed {
		t.Errorf("expired token: got id %v resumed %v, want a fresh id", w.ID, w.Resumed)
	}
	expect[*wire.PeerJoined](a)
}

func TestConnectionsPerIP(t *testing.T) {
	s, url := startSignaling(t, func(c *Config) { c.MaxConnectionsPerIP = 2 })
	a := dial(t, url)
	dial(t, url)
	if got := dialStatus(t, url, nil); got != http.StatusTooManyRequests {
		t.Fatalf("third connection: got %d, want 429", got)
	}
	a.Close()
	testenv.Eventually(t, 5*time.Second, "the closed connection's slot released", func() bool {
		s.perIP.mu.Lock()
		defer s.perIP.mu.Unlock()
		return s.perIP.n.Count("127.0.0.1/32") == 1 && s.perIP.n.Len() == 1
	})
	dial(t, url).alive() // a slot is free again
}

func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	tests := []struct {
		remote, xff, want string
	}{
		{"203.0.113.5:1234", "", "203.0.113.5"},
		{"203.0.113.5:1234", "198.51.100.1", "203.0.113.5"}, // untrusted peer: header ignored
		{"10.0.0.2:1234", "198.51.100.1", "198.51.100.1"},
		{"10.0.0.2:1234", "198.51.100.9, 198.51.100.1, 10.0.0.3", "198.51.100.1"}, // rightmost untrusted
		{"10.0.0.2:1234", "garbage", "10.0.0.2"},
		{"10.0.0.2:1234", "", "10.0.0.2"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/ws", nil)
		r.RemoteAddr = tt.remote
		if tt.xff != "" {
			r.Header.Set("X-Forwarded-For", tt.xff)
		}
		if got := clientIP(r, trusted); got != tt.want {
			t.Errorf("%s with X-Forwarded-For %q: got %s, want %s", tt.remote, tt.xff, got, tt.want)
		}
	}
}

// TestPasswordThrottle: after maxFails wrong guesses an address is
// refused even the right password, for block; another address is not;
// once block has passed the address may join.
func TestPasswordThrottle(t *testing.T) {
	s, url := startSignaling(t, trustLoopback)
	s.guesses.maxFails = 3
	guesser := fromAddr(t, url, "198.51.100.66")
	for i := 0; i < 3; i++ {
		guesser.send(&wire.Join{Room: "locked", Name: "g", Password: "guess"})
		guesser.expectError(wire.CodeBadPassword)
	}
	guesser.send(&wire.Join{Room: "locked", Name: "g", Password: "open-sesame"})
	e := guesser.expectError(wire.CodeRateLimited)
	if !strings.Contains(e.Message, "wrong passwords") || !strings.Contains(e.Message, "in 300s") {
		t.Errorf("refusal message: got %v, want wrong passwords, try again in 300s", e.Message)
	}
	// Another address is unaffected.
	other := fromAddr(t, url, "198.51.100.77")
	other.send(&wire.Join{Room: "locked", Name: "o", Password: "open-sesame"})
	expect[*wire.Welcome](other)

	// New connections: the guesser's own has passed its join timeout.
	clockOf(s).Advance(s.guesses.block - time.Second)
	late := fromAddr(t, url, "198.51.100.66")
	late.send(&wire.Join{Room: "locked", Name: "g", Password: "open-sesame"})
	if e := late.expectError(wire.CodeRateLimited); !strings.Contains(e.Message, "in 1s") {
		t.Errorf("refusal a second before the end: got %v, want try again in 1s", e.Message)
	}
	clockOf(s).Advance(time.Second)
	late.send(&wire.Join{Room: "locked", Name: "g", Password: "open-sesame"})
	expect[*wire.Welcome](late)
}

// TestWrongPasswordDelay: the answer to the n-th wrong guess from an
// address waits base·2^(n-1) on the server's clock; the connection
// answers nothing meanwhile.
func TestWrongPasswordDelay(t *testing.T) {
	s, url := startSignaling(t, trustLoopback)
	s.guesses.base = 250 * time.Millisecond
	clk := clockOf(s)
	g := fromAddr(t, url, "198.51.100.66")
	for _, delay := range []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, time.Second} {
		g.send(&wire.Join{Room: "locked", Name: "g", Password: "guess"})
		g.send(&wire.Ping{})
		clk.waitTimer(t, delay)
		clk.Advance(delay)
		g.expectError(wire.CodeBadPassword)
		expect[*wire.Pong](g) // the ping waited behind the wrong guess
	}
}

// TestGuessThrottleDelays: the delays double from base up to base·32.
func TestGuessThrottleDelays(t *testing.T) {
	g := newGuessThrottle(newFakeClock().Now)
	g.maxFails, g.maxAddrFails = 100, 100
	for i, want := range []time.Duration{250, 500, 1000, 2000, 4000, 8000, 8000, 8000} {
		if got := g.failed(clientaddr.Keys{Addr: "198.51.100.1/32"}, "r"); got != want*time.Millisecond {
			t.Errorf("wrong guess %d: delay %v, want %v", i+1, got, want*time.Millisecond)
		}
	}
}

func TestRoomLimit(t *testing.T) {
	_, url := startSignaling(t, func(c *Config) { c.MaxRooms = 1 })
	dial(t, url).join("one", "a")
	b := dial(t, url)
	b.send(&wire.Join{Room: "two", Name: "b"})
	b.expectError(wire.CodeRoomLimit)
	dial(t, url).join("one", "c") // the open room still takes peers
}

// TestSlowConsumer: a peer that stops reading is dropped once its queue
// fills; the rest of its room keeps getting messages meanwhile.
func TestSlowConsumer(t *testing.T) {
	_, url := startSignaling(t, func(c *Config) { c.MaxPeersPerRoom = 8 })
	// The slow peer reads one message at a time, through a small socket
	// buffer, and never takes any of them.
	slow := dialWith(t, url, sigclient.DialOptions{Buffer: 1})
	if tcp, ok := slow.Conn().UnderlyingConn().(interface{ SetReadBuffer(int) error }); ok {
		_ = tcp.SetReadBuffer(4096)
	}
	slow.join("r", "slow")
	watcher := dial(t, url)
	watcher.join("r", "watcher")
	var senders []*wsClient
	for i := 0; i < 3; i++ {
		s := dial(t, url)
		s.join("r", "sender"+string(rune('a'+i)))
		senders = append(senders, s)
	}
	big := strings.Repeat("x", 60<<10)
	done := make(chan struct{})
	for _, s := range senders {
		go func(s *wsClient) {
			defer func() { done <- struct{}{} }() // also after a failed write
			for i := 0; i < MessageBurst-10; i++ {
				if s.Signal(slow.id, msg{"pad": big}) != nil {
					return
				}
			}
		}(s)
	}
	// The watcher sees the slow peer leave, and keeps answering pings.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		m, err := watcher.Receive(ctx)
		if err != nil {
			t.Fatalf("watcher: %v (the slow peer was never dropped)", err)
		}
		if pl, ok := m.(*wire.PeerLeft); ok && pl.ID == slow.id {
			break
		}
	}
	watcher.alive()
	for range senders {
		<-done
	}
}

// TestResumeDefaultWindow runs with the default 30 s window: a peer that
// dropped is still in its room at 25 s (resumable, nobody told), and has
// left at 30 s, after which its token starts a fresh peer.
func TestResumeDefaultWindow(t *testing.T) {
	s, url := startSignaling(t, nil)
	clk := clockOf(s)
	a, b, c := dial(t, url), dial(t, url), dial(t, url)
	a.join("r", "alice")
	tokB := b.join("r", "bob").Resume
	expect[*wire.PeerJoined](a)
	tokC := c.join("r", "carol").Resume
	expect[*wire.PeerJoined](a)
	b.drop()
	c.drop()
	waitSuspended(t, s, 2)

	clk.Advance(25 * time.Second)
	a.alive() // no peer-left before the pong
	b2 := dial(t, url)
	b2.send(&wire.Join{Room: "r", Name: "bob", Resume: tokB})
	if w := expect[*wire.Welcome](b2); w.ID != b.id || !w.Resumed {
		t.Fatalf("resume at 25 s: got %v", w)
	}

	clk.Advance(DefaultResumeWindow - 25*time.Second - time.Nanosecond)
	a.alive()
	clk.Advance(time.Nanosecond)
	if pl := expect[*wire.PeerLeft](a); pl.ID != c.id {
		t.Fatalf("peer-left: got %v, want carol's", pl)
	}
	c2 := dial(t, url)
	c2.send(&wire.Join{Room: "r", Name: "carol", Resume: tokC})
	if w := expect[*wire.Welcome](c2); w.ID == c.id || w.Resumed {
		t.Errorf("token after the window: got %v, want a fresh peer", w)
	}
}

// TestCloseTellsNoPeerLeft: a server shutting down closes every
// connection with 1001 and sends no peer-left before it, for a suspended
// peer or one whose connection closed first. A page that heard peer-left
// during the shutdown dropped a peer connection it meant to keep across
// the restart (relayed calls renegotiated from scratch).
func TestCloseTellsNoPeerLeft(t *testing.T) {
	s, url := startSignaling(t, func(c *Config) { c.ResumeWindow = 10 * time.Second })
	a, b := dial(t, url), dial(t, url)
	a.join("r", "alice")
	b.join("r", "bob")
	expect[*wire.PeerJoined](a)
	b.drop()
	waitSuspended(t, s, 1)
	closed := make(chan error, 1)
	go func() { closed <- s.Close(context.Background()) }()
	ctx, cancel := context.WithTimeout(context.Background(), readWait)
	defer cancel()
	for {
		m, err := a.Receive(ctx)
		if err == nil {
			t.Errorf("during shutdown: got %v, want only close 1001", m)
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
			t.Fatalf("got %v, want close 1001", err)
		}
		break
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
}
