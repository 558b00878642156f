package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/icebox-project/icebox/internal/rtc"
	"github.com/icebox-project/icebox/internal/testenv"
	"github.com/icebox-project/icebox/signaling/sigclient"
	"github.com/icebox-project/icebox/signaling/wire"
)

type msg map[string]any

// startSignaling serves a Server on 127.0.0.1 port 0, on a fakeClock
// (clockOf) and with wrong passwords answered at once (guesses.base 0).
// At the end of the test, Close must end every connection's goroutines
// and timers.
func startSignaling(t *testing.T, mod func(*Config)) (*Server, string) {
	t.Helper()
	cfg := Config{
		Limits: Limits{MaxPeersPerRoom: 3, AllowedOrigins: []string{"https://app.example.com"}},
		RoomPassword: func(room string) string {
			if room == "locked" {
				return "open-sesame"
			}
			return ""
		},
		ICEServers: func(user string) ([]rtc.ICEServer, time.Duration) {
			return []rtc.ICEServer{{URLs: []string{"turn:127.0.0.1:3478"}, Username: "u-" + user, Credential: "c"}}, time.Hour
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Clock:  newFakeClock(),
	}
	if mod != nil {
		mod(&cfg)
	}
	s := New(cfg)
	s.guesses.base = 0
	hs := httptest.NewServer(s)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
		hs.Close()
	})
	return s, "ws" + strings.TrimPrefix(hs.URL, "http")
}

// clockOf is the fakeClock of a Server from startSignaling.
func clockOf(s *Server) *fakeClock { return s.clock.(*fakeClock) }

type wsClient struct {
	t *testing.T
	*sigclient.Client
	id string
}

// readWait bounds each wait for a message in these tests: far above
// what a message takes on loopback, so reaching it means a message that
// never comes.
const readWait = 10 * time.Second

func dial(t *testing.T, url string) *wsClient {
	t.Helper()
	return dialWith(t, url, sigclient.DialOptions{})
}

func dialWith(t *testing.T, url string, opts sigclient.DialOptions) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readWait)
	defer cancel()
	c, err := sigclient.Dial(ctx, url, opts)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return &wsClient{t: t, Client: c}
}

// dialStatus dials url with hdr and returns the HTTP status of the
// upgrade: 101 when it succeeded (the connection is closed at the end
// of the test), the refusal's otherwise.
func dialStatus(t *testing.T, url string, hdr http.Header) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readWait)
	defer cancel()
	c, err := sigclient.Dial(ctx, url, sigclient.DialOptions{Header: hdr})
	if err == nil {
		t.Cleanup(func() { c.Close() })
		return http.StatusSwitchingProtocols
	}
	var de *sigclient.DialError
	if !errors.As(err, &de) || de.StatusCode == 0 {
		t.Fatalf("dial: %v", err)
	}
	return de.StatusCode
}

func (c *wsClient) send(m wire.Message) {
	c.t.Helper()
	if err := c.Send(m); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// signal sends data, an object, to peer to.
func (c *wsClient) signal(to string, data any) {
	c.t.Helper()
	if err := c.Signal(to, data); err != nil {
		c.t.Fatalf("signal: %v", err)
	}
}

// sendRaw writes a frame of kind (websocket.TextMessage, BinaryMessage)
// as it is: what the protocol forbids.
func (c *wsClient) sendRaw(kind int, b []byte) {
	c.t.Helper()
	if err := c.Conn().WriteMessage(kind, b); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// read returns the next message, failing after readWait.
func (c *wsClient) read() wire.Message {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readWait)
	defer cancel()
	m, err := c.Receive(ctx)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return m
}

// expect reads the next message and checks it is a T.
func expect[T wire.Message](c *wsClient) T {
	c.t.Helper()
	m := c.read()
	got, ok := m.(T)
	if !ok {
		var want T
		c.t.Fatalf("got %#v, want a %T", m, want)
	}
	return got
}

// expectError reads the next message and checks it is an error with
// code.
func (c *wsClient) expectError(code string) *wire.Error {
	c.t.Helper()
	e := expect[*wire.Error](c)
	if e.Code != code {
		c.t.Fatalf("got error %s (%s), want %s", e.Code, e.Message, code)
	}
	return e
}

func (c *wsClient) join(room, name string) *wire.Welcome {
	c.t.Helper()
	c.send(&wire.Join{Room: room, Name: name})
	w := expect[*wire.Welcome](c)
	c.id = w.ID
	return w
}

// alive checks the connection still answers ping with pong.
func (c *wsClient) alive() {
	c.t.Helper()
	c.send(&wire.Ping{})
	expect[*wire.Pong](c)
}

// dataOf decodes a signal's data into a map.
func dataOf(t *testing.T, s *wire.Signal) map[string]any {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal(s.Data, &d); err != nil {
		t.Fatalf("signal data %s: %v", s.Data, err)
	}
	return d
}

func TestJoinSignalLeave(t *testing.T) {
	_, url := startSignaling(t, nil)
	a, b := dial(t, url), dial(t, url)
	wa := a.join("room1", "alice")
	if peers := wa.Peers; peers == nil || len(peers) != 0 {
		t.Errorf("first welcome peers: got %v, want none", peers)
	}
	// Credentials are minted for the peer's own credential id, never its
	// peer id (TestCredentialIDNotPeerID).
	if servers := wa.ICEServers; len(servers) != 1 || !strings.HasPrefix(servers[0].Username, "u-peer:") {
		t.Errorf("welcome iceServers: got %v, want credentials minted for the peer", servers)
	}
	if wa.Room != "room1" {
		t.Errorf("welcome room: got %v", wa.Room)
	}
	wb := b.join("room1", "bob")
	peers := wb.Peers
	if len(peers) != 1 || peers[0] != (wire.PeerInfo{ID: a.id, Name: "alice"}) {
		t.Errorf("second welcome peers: got %v, want alice", peers)
	}
	pj := expect[*wire.PeerJoined](a)
	if pj.ID != b.id || pj.Name != "bob" {
		t.Errorf("peer-joined: got %v", pj)
	}

	// from is set by the server, whatever the client claims.
	a.send(&wire.Signal{To: b.id, From: "forged", Data: json.RawMessage(`{"description":{"type":"offer","sdp":"v=0"}}`)})
	sig := expect[*wire.Signal](b)
	if sig.From != a.id {
		t.Errorf("signal from: got %v, want %v", sig.From, a.id)
	}
	if d := dataOf(t, sig)["description"].(map[string]any); d["sdp"] != "v=0" {
		t.Errorf("signal data: got %v", d)
	}
	b.signal(a.id, msg{"candidate": msg{"candidate": "x"}})
	if got := expect[*wire.Signal](a); got.From != b.id {
		t.Errorf("signal from: got %v", got.From)
	}

	a.alive()
	b.send(&wire.Leave{})
	if pl := expect[*wire.PeerLeft](a); pl.ID != b.id {
		t.Errorf("peer-left: got %v", pl)
	}
	b.send(&wire.Leave{})
	b.expectError(wire.CodeNotJoined)

	// Closing the connection (with a close frame, as a closing tab does)
	// is a leave too.
	c := dial(t, url)
	c.join("room1", "carol")
	expect[*wire.PeerJoined](a)
	_ = c.Conn().WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, ""))
	if pl := expect[*wire.PeerLeft](a); pl.ID != c.id {
		t.Errorf("peer-left after close: got %v", pl)
	}
}

func TestJoinRefusals(t *testing.T) {
	_, url := startSignaling(t, nil)
	a := dial(t, url)
	a.join("r", "alice")

	tests := []struct {
		name string
		join *wire.Join
		code string
	}{
		{"name taken", &wire.Join{Room: "r", Name: "alice"}, wire.CodeNameTaken},
		{"bad room", &wire.Join{Room: "../etc", Name: "x"}, wire.CodeBadMessage},
		{"empty name", &wire.Join{Room: "r", Name: "  "}, wire.CodeBadMessage},
		{"control character in name", &wire.Join{Room: "r", Name: "a\u0007b"}, wire.CodeBadMessage},
		{"no password", &wire.Join{Room: "locked", Name: "x"}, wire.CodeBadPassword},
		{"wrong password", &wire.Join{Room: "locked", Name: "x", Password: "guess"}, wire.CodeBadPassword},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, url)
			c.send(tt.join)
			c.expectError(tt.code)
			c.alive()
		})
	}
	t.Run("right password", func(t *testing.T) {
		c := dial(t, url)
		c.send(&wire.Join{Room: "locked", Name: "x", Password: "open-sesame"})
		expect[*wire.Welcome](c)
	})
	t.Run("room full", func(t *testing.T) {
		dial(t, url).join("r", "bob")
		dial(t, url).join("r", "carol")
		d := dial(t, url)
		d.send(&wire.Join{Room: "r", Name: "dave"})
		d.expectError(wire.CodeRoomFull)
	})
	t.Run("join twice", func(t *testing.T) {
		c := dial(t, url)
		c.join("other", "x")
		c.send(&wire.Join{Room: "other2", Name: "x"})
		c.expectError(wire.CodeBadMessage)
	})
}

func TestBadMessagesKeepRoomGoing(t *testing.T) {
	_, url := startSignaling(t, nil)
	a, b := dial(t, url), dial(t, url)
	a.join("r", "alice")
	b.join("r", "bob")
	expect[*wire.PeerJoined](a)

	big := `{"type":"ping","pad":"` + strings.Repeat("x", MaxMessageSize) + `"}`
	tests := []struct {
		name string
		kind int
		data string
		code string
	}{
		{"not JSON", websocket.TextMessage, "hello", wire.CodeBadMessage},
		{"JSON but not an object", websocket.TextMessage, "[1,2]", wire.CodeBadMessage},
		{"missing type", websocket.TextMessage, `{"room":"r"}`, wire.CodeBadMessage},
		{"unknown type", websocket.TextMessage, `{"type":"dance"}`, wire.CodeBadMessage},
		{"binary frame", websocket.BinaryMessage, `{"type":"ping"}`, wire.CodeBadMessage},
		{"too large", websocket.TextMessage, big, wire.CodeTooLarge},
		{"signal without to", websocket.TextMessage, `{"type":"signal","data":{}}`, wire.CodeBadMessage},
		{"signal with non-object data", websocket.TextMessage, `{"type":"signal","to":"x","data":"s"}`, wire.CodeBadMessage},
		{"signal to unknown peer", websocket.TextMessage, `{"type":"signal","to":"nobody","data":{}}`, wire.CodeUnknownPeer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a.sendRaw(tt.kind, []byte(tt.data))
			a.expectError(tt.code)
			// The sender stays connected, and the room carries on.
			a.alive()
			b.signal(a.id, msg{"n": 1})
			expect[*wire.Signal](a)
		})
	}

	t.Run("signal before join", func(t *testing.T) {
		c := dial(t, url)
		c.signal(a.id, msg{})
		c.expectError(wire.CodeNotJoined)
	})
}

func TestRepeatedBadMessagesClose(t *testing.T) {
	_, url := startSignaling(t, nil)
	c := dial(t, url)
	for i := 0; i < maxStrikes; i++ {
		c.sendRaw(websocket.TextMessage, []byte("garbage"))
	}
	for i := 0; i < maxStrikes; i++ {
		c.expectError(wire.CodeBadMessage)
	}
	expectClose(t, c, websocket.ClosePolicyViolation)
}

func expectClose(t *testing.T, c *wsClient, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), readWait)
	defer cancel()
	for {
		_, err := c.Receive(ctx)
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != code {
			t.Fatalf("got %v, want close %d", err, code)
		}
		return
	}
}

func TestRateLimit(t *testing.T) {
	_, url := startSignaling(t, nil)
	c := dial(t, url)
	for i := 0; i < MessageBurst+maxStrikes+50; i++ {
		if err := c.Send(&wire.Ping{}); err != nil {
			break // closed by the server: expected once the flood goes on.
		}
	}
	limited := false
	ctx, cancel := context.WithTimeout(context.Background(), readWait)
	defer cancel()
	for {
		m, err := c.Receive(ctx)
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation {
				t.Fatalf("got %v, want close 1008 after the flood", err)
			}
			break
		}
		if e, ok := m.(*wire.Error); ok && e.Code == wire.CodeRateLimited {
			limited = true
		}
	}
	if !limited {
		t.Error("no rate-limited error before the close")
	}
}

func TestOrigin(t *testing.T) {
	_, url := startSignaling(t, nil)
	host := strings.TrimPrefix(url, "ws://")
	tests := []struct {
		origin string
		want   int
	}{
		{"http://" + host, http.StatusSwitchingProtocols},
		{"https://app.example.com", http.StatusSwitchingProtocols},
		{"https://evil.example.com", http.StatusForbidden},
		{"null", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.origin, func(t *testing.T) {
			if got := dialStatus(t, url, http.Header{"Origin": {tt.origin}}); got != tt.want {
				t.Errorf("got %d, want %d", got, tt.want)
			}
		})
	}
}

// TestJoinTimeout: a connection that has not joined within JoinTimeout
// is closed (1008); one that joined, even if it left since, is not.
func TestJoinTimeout(t *testing.T) {
	s, url := startSignaling(t, func(c *Config) { c.JoinTimeout = 300 * time.Millisecond })
	idle := dial(t, url)
	joined := dial(t, url)
	joined.join("r", "x")
	left := dial(t, url)
	left.join("r2", "y")
	left.send(&wire.Leave{})
	// A pong shows the reader runs, so its join timer is started.
	idle.alive()
	left.alive()
	clockOf(s).Advance(299 * time.Millisecond)
	idle.alive()
	clockOf(s).Advance(time.Millisecond)
	expectClose(t, idle, websocket.ClosePolicyViolation)
	joined.alive()
	left.alive()
}

// TestICEServersRefresh: fresh credentials are pushed at 80% of their
// ttl, and again at 80% of the fresh ones' ttl.
func TestICEServersRefresh(t *testing.T) {
	var n atomic.Int32
	s, url := startSignaling(t, func(c *Config) {
		c.ICEServers = func(user string) ([]rtc.ICEServer, time.Duration) {
			return []rtc.ICEServer{{URLs: []string{"turn:x"}, Username: fmt.Sprint(n.Add(1))}}, time.Second
		}
	})
	clk := clockOf(s)
	c := dial(t, url)
	w := c.join("r", "x")
	if w.TTL != 1 {
		t.Errorf("welcome ttl: got %v, want 1", w.TTL)
	}
	c.alive() // join has returned: the refresh is scheduled.
	clk.Advance(799 * time.Millisecond)
	c.alive() // nothing before the pong
	clk.Advance(time.Millisecond)
	m := expect[*wire.ICEServers](c)
	if len(m.ICEServers) != 1 || m.TTL != 1 || m.ICEServers[0].Username != "2" {
		t.Errorf("ice-servers: got %v, want the second credentials with ttl 1", m)
	}
	clk.Advance(800 * time.Millisecond)
	if m := expect[*wire.ICEServers](c); m.ICEServers[0].Username != "3" {
		t.Errorf("second refresh: got %v, want the third credentials", m)
	}
}

// TestCloseTellsClients: Close sends close 1001 and returns once the
// connection is gone from the hub.
func TestCloseTellsClients(t *testing.T) {
	s, url := startSignaling(t, nil)
	c := dial(t, url)
	c.join("r", "x")
	closed := make(chan error, 1)
	go func() { closed <- s.Close(context.Background()) }()
	expectClose(t, c, websocket.CloseGoingAway)
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if conns, rooms, peers := s.Counts(); conns != 0 || rooms != 0 || peers != 0 {
		t.Fatalf("after Close: %d connections, %d rooms, %d peers; want none", conns, rooms, peers)
	}
	// A connection opened after Close is told at once.
	expectClose(t, dial(t, url), websocket.CloseGoingAway)
}

// TestCloseEndsEveryGoroutine opens connections in every state — joined
// in shared rooms with signals in flight, not joined yet, dropped and
// waiting for a resume, waiting out a wrong password's delay — then
// closes the server: Close returns nil, every open connection is told
// 1001, and the process is back to the goroutines it had before.
func TestCloseEndsEveryGoroutine(t *testing.T) {
	s, url := startSignaling(t, func(c *Config) { c.MaxPeersPerRoom = 8 })
	s.guesses.base = time.Second
	baseline := runtime.NumGoroutine()

	var open []*wsClient
	for i := range 12 {
		c := dial(t, url)
		c.join(fmt.Sprintf("room%d", i%3), fmt.Sprintf("peer%d", i))
		open = append(open, c)
	}
	for i, c := range open[3:] {
		c.signal(open[i%3].id, msg{"n": i})
	}
	idle := dial(t, url)
	idle.alive()
	open = append(open, idle)
	gone := dial(t, url)
	gone.join("room0", "gone")
	gone.drop()
	waitSuspended(t, s, 1)
	guesser := dial(t, url)
	guesser.send(&wire.Join{Room: "locked", Name: "g", Password: "guess"})
	clockOf(s).waitTimer(t, time.Second)
	open = append(open, guesser)
	if s.tasks.count() == 0 {
		t.Fatal("no goroutines or timers counted for open connections")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- s.Close(ctx) }()
	for i, c := range open {
		for {
			_, err := c.Receive(ctx)
			if err == nil {
				continue // what was queued before the close frame
			}
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
				t.Errorf("connection %d: got %v, want close 1001", i, err)
			}
			break
		}
	}
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if n := s.tasks.count(); n != 0 {
		t.Errorf("after Close: %d goroutines and timers counted, want 0", n)
	}
	if conns, rooms, peers := s.Counts(); conns+rooms+peers != 0 {
		t.Errorf("after Close: %d connections, %d rooms, %d peers; want none", conns, rooms, peers)
	}
	if live, held, _ := s.QueuedBytes(); live != 0 || held != 0 {
		t.Errorf("after Close: %d bytes queued, %d held; want none", live, held)
	}
	testenv.Eventually(t, 5*time.Second, fmt.Sprintf("goroutines back to %d", baseline), func() bool { return runtime.NumGoroutine() <= baseline })
}

// TestCloseForced: when ctx ends before the peers answer the close
// frame, Close closes the sockets outright, still waits for every
// goroutine, and returns ctx's error.
func TestCloseForced(t *testing.T) {
	s, url := startSignaling(t, nil)
	// They never read, so never answer the close frame: raw WebSockets,
	// as a Client reads all the time.
	var silent []*websocket.Conn
	for i := range 3 {
		c, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if err := c.WriteJSON(&wire.Join{Room: "r", Name: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
		silent = append(silent, c)
	}
	testenv.Eventually(t, 5*time.Second, "3 peers joined", func() bool { _, _, peers := s.Counts(); return peers == 3 })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Close(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Close with an ended context: got %v, want context.Canceled", err)
	}
	if n := s.tasks.count(); n != 0 {
		t.Errorf("after a forced Close: %d goroutines and timers counted, want 0", n)
	}
	for i, c := range silent {
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		var err error
		for err == nil {
			_, _, err = c.ReadMessage()
		}
		var ne interface{ Timeout() bool }
		if errors.As(err, &ne) && ne.Timeout() {
			t.Errorf("connection %d still open after a forced Close", i)
		}
	}
}

// TestRateLimitRefills: past the burst, messages are refused until the
// clock has let the bucket refill at MessageRate a second.
func TestRateLimitRefills(t *testing.T) {
	s, url := startSignaling(t, nil)
	c := dial(t, url)
	for range MessageBurst {
		c.send(&wire.Ping{})
	}
	for range MessageBurst {
		expect[*wire.Pong](c)
	}
	c.send(&wire.Ping{})
	c.expectError(wire.CodeRateLimited)
	clockOf(s).Advance(time.Second / MessageRate)
	c.alive()
	c.send(&wire.Ping{})
	c.expectError(wire.CodeRateLimited)
}
