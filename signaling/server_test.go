package signaling

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

type msg map[string]any

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
		ICEServers: func(user string) (any, time.Duration) {
			return []msg{{"urls": []string{"turn:127.0.0.1:3478"}, "username": "u-" + user, "credential": "c"}}, time.Hour
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if mod != nil {
		mod(&cfg)
	}
	s := New(cfg)
	hs := httptest.NewServer(s)
	t.Cleanup(func() { s.Close(); hs.Close() })
	return s, "ws" + strings.TrimPrefix(hs.URL, "http")
}

type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
	id   string
}

func dial(t *testing.T, url string) *wsClient {
	t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial: %v (%v)", err, resp)
	}
	t.Cleanup(func() { conn.Close() })
	return &wsClient{t: t, conn: conn}
}

func (c *wsClient) send(m msg) {
	c.t.Helper()
	if err := c.conn.WriteJSON(m); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *wsClient) sendRaw(kind int, b []byte) {
	c.t.Helper()
	if err := c.conn.WriteMessage(kind, b); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// read returns the next message, failing after 3 s.
func (c *wsClient) read() msg {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	var m msg
	if err := c.conn.ReadJSON(&m); err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return m
}

// expect reads the next message and checks its type (and error code).
func (c *wsClient) expect(typ string, code ...string) msg {
	c.t.Helper()
	m := c.read()
	if m["type"] != typ {
		c.t.Fatalf("got %v, want type %q", m, typ)
	}
	if len(code) > 0 && m["code"] != code[0] {
		c.t.Fatalf("got %v, want code %q", m, code[0])
	}
	return m
}

func (c *wsClient) join(room, name string) msg {
	c.t.Helper()
	c.send(msg{"type": "join", "room": room, "name": name})
	w := c.expect("welcome")
	c.id = w["id"].(string)
	return w
}

// alive checks the connection still answers ping with pong.
func (c *wsClient) alive() {
	c.t.Helper()
	c.send(msg{"type": "ping"})
	c.expect("pong")
}

func TestJoinSignalLeave(t *testing.T) {
	_, url := startSignaling(t, nil)
	a, b := dial(t, url), dial(t, url)
	wa := a.join("room1", "alice")
	if peers := wa["peers"].([]any); len(peers) != 0 {
		t.Errorf("first welcome peers: got %v, want none", peers)
	}
	// Credentials are minted for the peer's own credential id, never its
	// peer id (TestCredentialIDNotPeerID).
	if servers := wa["iceServers"].([]any); len(servers) != 1 || !strings.HasPrefix(servers[0].(map[string]any)["username"].(string), "u-peer:") {
		t.Errorf("welcome iceServers: got %v, want credentials minted for the peer", servers)
	}
	if wa["room"] != "room1" {
		t.Errorf("welcome room: got %v", wa["room"])
	}
	wb := b.join("room1", "bob")
	peers := wb["peers"].([]any)
	if len(peers) != 1 || peers[0].(map[string]any)["id"] != a.id || peers[0].(map[string]any)["name"] != "alice" {
		t.Errorf("second welcome peers: got %v, want alice", peers)
	}
	pj := a.expect("peer-joined")
	if pj["id"] != b.id || pj["name"] != "bob" {
		t.Errorf("peer-joined: got %v", pj)
	}

	// from is set by the server, whatever the client claims.
	a.send(msg{"type": "signal", "to": b.id, "from": "forged", "data": msg{"description": msg{"type": "offer", "sdp": "v=0"}}})
	sig := b.expect("signal")
	if sig["from"] != a.id {
		t.Errorf("signal from: got %v, want %v", sig["from"], a.id)
	}
	if d := sig["data"].(map[string]any)["description"].(map[string]any); d["sdp"] != "v=0" {
		t.Errorf("signal data: got %v", d)
	}
	b.send(msg{"type": "signal", "to": a.id, "data": msg{"candidate": msg{"candidate": "x"}}})
	if got := a.expect("signal"); got["from"] != b.id {
		t.Errorf("signal from: got %v", got["from"])
	}

	a.alive()
	b.send(msg{"type": "leave"})
	if pl := a.expect("peer-left"); pl["id"] != b.id {
		t.Errorf("peer-left: got %v", pl)
	}
	b.send(msg{"type": "leave"})
	b.expect("error", CodeNotJoined)

	// Closing the connection (with a close frame, as a closing tab does)
	// is a leave too.
	c := dial(t, url)
	c.join("room1", "carol")
	a.expect("peer-joined")
	_ = c.conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, ""))
	if pl := a.expect("peer-left"); pl["id"] != c.id {
		t.Errorf("peer-left after close: got %v", pl)
	}
}

func TestJoinRefusals(t *testing.T) {
	_, url := startSignaling(t, nil)
	a := dial(t, url)
	a.join("r", "alice")

	tests := []struct {
		name string
		join msg
		code string
	}{
		{"name taken", msg{"type": "join", "room": "r", "name": "alice"}, CodeNameTaken},
		{"bad room", msg{"type": "join", "room": "../etc", "name": "x"}, CodeBadMessage},
		{"empty name", msg{"type": "join", "room": "r", "name": "  "}, CodeBadMessage},
		{"control character in name", msg{"type": "join", "room": "r", "name": "a\u0007b"}, CodeBadMessage},
		{"no password", msg{"type": "join", "room": "locked", "name": "x"}, CodeBadPassword},
		{"wrong password", msg{"type": "join", "room": "locked", "name": "x", "password": "guess"}, CodeBadPassword},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, url)
			c.send(tt.join)
			c.expect("error", tt.code)
			c.alive()
		})
	}
	t.Run("right password", func(t *testing.T) {
		c := dial(t, url)
		c.send(msg{"type": "join", "room": "locked", "name": "x", "password": "open-sesame"})
		c.expect("welcome")
	})
	t.Run("room full", func(t *testing.T) {
		dial(t, url).join("r", "bob")
		dial(t, url).join("r", "carol")
		d := dial(t, url)
		d.send(msg{"type": "join", "room": "r", "name": "dave"})
		d.expect("error", CodeRoomFull)
	})
	t.Run("join twice", func(t *testing.T) {
		c := dial(t, url)
		c.join("other", "x")
		c.send(msg{"type": "join", "room": "other2", "name": "x"})
		c.expect("error", CodeBadMessage)
	})
}

func TestBadMessagesKeepRoomGoing(t *testing.T) {
	_, url := startSignaling(t, nil)
	a, b := dial(t, url), dial(t, url)
	a.join("r", "alice")
	b.join("r", "bob")
	a.expect("peer-joined")

	big := `{"type":"ping","pad":"` + strings.Repeat("x", MaxMessageSize) + `"}`
	tests := []struct {
		name string
		kind int
		data string
		code string
	}{
		{"not JSON", websocket.TextMessage, "hello", CodeBadMessage},
		{"JSON but not an object", websocket.TextMessage, "[1,2]", CodeBadMessage},
		{"missing type", websocket.TextMessage, `{"room":"r"}`, CodeBadMessage},
		{"unknown type", websocket.TextMessage, `{"type":"dance"}`, CodeBadMessage},
		{"binary frame", websocket.BinaryMessage, `{"type":"ping"}`, CodeBadMessage},
		{"too large", websocket.TextMessage, big, CodeTooLarge},
		{"signal without to", websocket.TextMessage, `{"type":"signal","data":{}}`, CodeBadMessage},
		{"signal with non-object data", websocket.TextMessage, `{"type":"signal","to":"x","data":"s"}`, CodeBadMessage},
		{"signal to unknown peer", websocket.TextMessage, `{"type":"signal","to":"nobody","data":{}}`, CodeUnknownPeer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a.sendRaw(tt.kind, []byte(tt.data))
			a.expect("error", tt.code)
			// The sender stays connected, and the room carries on.
			a.alive()
			b.send(msg{"type": "signal", "to": a.id, "data": msg{"n": 1}})
			a.expect("signal")
		})
	}

	t.Run("signal before join", func(t *testing.T) {
		c := dial(t, url)
		c.send(msg{"type": "signal", "to": a.id, "data": msg{}})
		c.expect("error", CodeNotJoined)
	})
}

func TestRepeatedBadMessagesClose(t *testing.T) {
	_, url := startSignaling(t, nil)
	c := dial(t, url)
	for i := 0; i < maxStrikes; i++ {
		c.sendRaw(websocket.TextMessage, []byte("garbage"))
	}
	for i := 0; i < maxStrikes; i++ {
		c.expect("error", CodeBadMessage)
	}
	expectClose(t, c, websocket.ClosePolicyViolation)
}

func expectClose(t *testing.T, c *wsClient, code int) {
	t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	for {
		_, _, err := c.conn.ReadMessage()
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
	ping, _ := json.Marshal(msg{"type": "ping"})
	for i := 0; i < MessageBurst+maxStrikes+50; i++ {
		if err := c.conn.WriteMessage(websocket.TextMessage, ping); err != nil {
			break // closed by the server: expected once the flood goes on.
		}
	}
	limited := false
	_ = c.conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	for {
		var m msg
		err := c.conn.ReadJSON(&m)
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation {
				t.Fatalf("got %v, want close 1008 after the flood", err)
			}
			break
		}
		if m["type"] == "error" && m["code"] == CodeRateLimited {
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
			conn, resp, err := websocket.DefaultDialer.Dial(url, http.Header{"Origin": {tt.origin}})
			if conn != nil {
				conn.Close()
			}
			if resp == nil {
				t.Fatalf("no response: %v", err)
			}
			if resp.StatusCode != tt.want {
				t.Errorf("got %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}

func TestJoinTimeout(t *testing.T) {
	_, url := startSignaling(t, func(c *Config) { c.JoinTimeout = 300 * time.Millisecond })
	idle := dial(t, url)
	joined := dial(t, url)
	joined.join("r", "x")
	expectClose(t, idle, websocket.ClosePolicyViolation)
	time.Sleep(400 * time.Millisecond)
	joined.alive()
}

func TestICEServersRefresh(t *testing.T) {
	_, url := startSignaling(t, func(c *Config) {
		c.ICEServers = func(user string) (any, time.Duration) {
			return []msg{{"urls": []string{"turn:x"}, "username": time.Now().String()}}, time.Second
		}
	})
	c := dial(t, url)
	w := c.join("r", "x")
	if w["ttl"].(float64) != 1 {
		t.Errorf("welcome ttl: got %v, want 1", w["ttl"])
	}
	start := time.Now()
	m := c.expect("ice-servers")
	if el := time.Since(start); el < 500*time.Millisecond {
		t.Errorf("ice-servers after %v, want about 800ms (80%% of the ttl)", el)
	}
	if len(m["iceServers"].([]any)) != 1 || m["ttl"].(float64) != 1 {
		t.Errorf("ice-servers: got %v", m)
	}
}

func TestCloseTellsClients(t *testing.T) {
	s, url := startSignaling(t, nil)
	c := dial(t, url)
	c.join("r", "x")
	s.Close()
	expectClose(t, c, websocket.CloseGoingAway)
	// The server's reader unregisters once the socket is closed.
	deadline := time.Now().Add(3 * time.Second)
	for {
		conns, rooms, peers := s.Counts()
		if conns == 0 && rooms == 0 && peers == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after Close: %d connections, %d rooms, %d peers; want none", conns, rooms, peers)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
