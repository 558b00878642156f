package sigclient_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/icebox-project/icebox/signaling"
	"github.com/icebox-project/icebox/signaling/sigclient"
	"github.com/icebox-project/icebox/signaling/wire"
)

// serve runs a signaling server on 127.0.0.1 port 0 and returns its /ws
// URL.
func serve(t *testing.T) string {
	t.Helper()
	s := signaling.New(signaling.Config{
		Limits:       signaling.Limits{MaxPeersPerRoom: 2},
		RoomPassword: func(room string) string { return map[string]string{"locked": "sesame"}[room] },
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	hs := httptest.NewServer(s)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.Close(ctx)
		hs.Close()
	})
	return "ws" + strings.TrimPrefix(hs.URL, "http")
}

func dial(t *testing.T, ctx context.Context, url string) *sigclient.Client {
	t.Helper()
	c, err := sigclient.Dial(ctx, url, sigclient.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestCall: two clients join a room and signal each other; every
// message arrives as its wire type.
func TestCall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url := serve(t)
	a, b := dial(t, ctx, url), dial(t, ctx, url)
	wa, err := a.Join(ctx, wire.Join{Room: "r", Name: "alice"})
	if err != nil || len(wa.Peers) != 0 || wa.Room != "r" || wa.Resume == "" {
		t.Fatalf("alice's join: got %+v %v", wa, err)
	}
	wb, err := b.Join(ctx, wire.Join{Room: "r", Name: "bob"})
	if err != nil || len(wb.Peers) != 1 || wb.Peers[0] != (wire.PeerInfo{ID: wa.ID, Name: "alice"}) {
		t.Fatalf("bob's join: got %+v %v", wb, err)
	}
	if m, err := a.Receive(ctx); err != nil || *m.(*wire.PeerJoined) != (wire.PeerJoined{ID: wb.ID, Name: "bob"}) {
		t.Fatalf("alice: got %#v %v, want peer-joined bob", m, err)
	}
	if err := b.Signal(wa.ID, map[string]any{"call": "ring"}); err != nil {
		t.Fatal(err)
	}
	m, err := a.Receive(ctx)
	if s, ok := m.(*wire.Signal); err != nil || !ok || s.From != wb.ID || string(s.Data) != `{"call":"ring"}` {
		t.Fatalf("alice: got %#v %v, want bob's signal", m, err)
	}
	if err := b.Send(&wire.Leave{}); err != nil {
		t.Fatal(err)
	}
	if m, err := a.Receive(ctx); err != nil || *m.(*wire.PeerLeft) != (wire.PeerLeft{ID: wb.ID}) {
		t.Fatalf("alice: got %#v %v, want peer-left bob", m, err)
	}
}

// TestJoinRefused: a refused join is a *wire.Error carrying the code;
// the connection stays usable.
func TestJoinRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url := serve(t)
	c := dial(t, ctx, url)
	_, err := c.Join(ctx, wire.Join{Room: "locked", Name: "x"})
	var e *wire.Error
	if !errors.As(err, &e) || e.Code != wire.CodeBadPassword {
		t.Fatalf("join without the password: got %v, want a *wire.Error %s", err, wire.CodeBadPassword)
	}
	if _, err := c.Join(ctx, wire.Join{Room: "locked", Name: "x", Password: "sesame"}); err != nil {
		t.Fatalf("join with the right password: %v", err)
	}
}

// TestReceiveContext: a Receive whose context ends returns its error and
// leaves the connection usable; messages that came meanwhile are kept.
func TestReceiveContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := dial(t, ctx, serve(t))
	ended, end := context.WithCancel(ctx)
	end()
	if m, err := c.Receive(ended); !errors.Is(err, context.Canceled) {
		t.Fatalf("Receive with an ended context: got %#v %v", m, err)
	}
	if err := c.Send(&wire.Ping{}); err != nil {
		t.Fatal(err)
	}
	if m, err := c.Receive(ctx); err != nil || m.MessageType() != wire.TypePong {
		t.Fatalf("after: got %#v %v, want pong", m, err)
	}
}

// TestDialRefused: a refused upgrade is a *DialError with the HTTP
// status.
func TestDialRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := sigclient.Dial(ctx, serve(t), sigclient.DialOptions{Origin: "https://evil.example"})
	var de *sigclient.DialError
	if !errors.As(err, &de) || de.StatusCode != http.StatusForbidden {
		t.Fatalf("dial from a foreign origin: got %v, want a DialError with 403", err)
	}
}

// TestUnknownAndMalformed: a type the client does not know comes back as
// *wire.Unknown, a frame that is no message as an error wrapping
// wire.ErrMalformed, a binary frame too, all in order and with the
// connection still open; the server's close frame ends Receive with its
// code, for every later call.
func TestUnknownAndMalformed(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		for _, f := range []string{`{"type":"x-future","id":"A1"}`, `not json`, "\x00binary", `{"type":"pong"}`} {
			kind := websocket.TextMessage
			if f[0] == 0 {
				kind = websocket.BinaryMessage
			}
			_ = conn.WriteMessage(kind, []byte(f))
		}
		_ = conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "bye"))
		_, _, _ = conn.ReadMessage()
	}))
	defer hs.Close()
	c := dial(t, ctx, "ws"+strings.TrimPrefix(hs.URL, "http"))
	m, err := c.Receive(ctx)
	if u, ok := m.(*wire.Unknown); err != nil || !ok || u.Type != "x-future" || string(u.Raw) != `{"type":"x-future","id":"A1"}` {
		t.Fatalf("unknown type: got %#v %v, want *wire.Unknown", m, err)
	}
	for _, what := range []string{"not JSON", "binary frame"} {
		if m, err := c.Receive(ctx); !errors.Is(err, wire.ErrMalformed) {
			t.Fatalf("%s: got %#v %v, want ErrMalformed", what, m, err)
		}
	}
	if m, err := c.Receive(ctx); err != nil || m.MessageType() != wire.TypePong {
		t.Fatalf("after them: got %#v %v, want pong", m, err)
	}
	for range 2 {
		_, err := c.Receive(ctx)
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation {
			t.Fatalf("after the close frame: got %v, want close 1008", err)
		}
	}
}
