package cluster

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestRouteSendsNoSecret is a fake route: a plain TCP listener the node
// is told to route to. What the node sends must be a TLS handshake, and
// carry neither the secret nor anything derived from it but signatures.
// (Before routes used TLS by default, it read CONNECT {"user":"icebox",
// "pass":"<the secret>",…}.)
func TestRouteSendsNoSecret(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	emb, err := Embed(EmbedConfig{Name: "x", Listen: "127.0.0.1:0", Routes: []*url.URL{{Scheme: "nats-route", Host: l.Addr().String()}},
		Secret: testSecret, StoreDir: t.TempDir(), Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer emb.Shutdown()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	l.Close() // the node's next try is refused, not left in a handshake Shutdown waits for
	// Read the first thing the node says in full: a TLS record (5-byte
	// header and its length), or a protocol line up to CONNECT's end.
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got []byte
	buf := make([]byte, 4096)
	complete := func() bool {
		if len(got) >= 5 && got[0] == 0x16 {
			return len(got) >= 5+int(binary.BigEndian.Uint16(got[3:5]))
		}
		i := bytes.Index(got, []byte("CONNECT"))
		return i >= 0 && bytes.Contains(got[i:], []byte("\r\n"))
	}
	for !complete() {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			t.Fatalf("read %d bytes, then %v", len(got), err)
		}
	}
	for what, s := range map[string]string{"the secret": testSecret, "the client password": clientPassword(testSecret),
		"the route password": routePassword(testSecret), "a password field": `"pass"`} {
		if bytes.Contains(got, []byte(s)) {
			t.Errorf("the fake route read %s: %q", what, got)
		}
	}
	if got[0] != 0x16 {
		t.Errorf("the node's first bytes on a route are %q, want a TLS handshake record (0x16)", got[:min(len(got), 40)])
	}
}

// TestRouteNeedsTheSecret: a node with another secret routes to a node;
// the TLS handshake fails (its certificate is of another authority) and
// no route forms on either side.
func TestRouteNeedsTheSecret(t *testing.T) {
	refused := make(chan string, 16)
	log := slog.New(&funcHandler{f: func(msg string) {
		if strings.Contains(msg, "TLS") && strings.Contains(msg, "rror") {
			select {
			case refused <- msg:
			default:
			}
		}
	}})
	a, err := Embed(EmbedConfig{Name: "a", Listen: "127.0.0.1:0", Secret: testSecret, StoreDir: t.TempDir(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Shutdown()
	b, err := Embed(EmbedConfig{Name: "b", Listen: "127.0.0.1:0", Secret: "another-secret-0123456789abcdef",
		Routes: []*url.URL{{Scheme: "nats-route", Host: a.RouteAddr().String()}}, StoreDir: t.TempDir(), Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Shutdown()
	select {
	case msg := <-refused:
		t.Logf("a: %s", msg)
	case <-time.After(20 * time.Second):
		t.Fatal("a logged no TLS handshake error for b's route within 20 s")
	}
	if a.Routes() != 0 || b.Routes() != 0 {
		t.Errorf("routes a %d, b %d; want none between nodes of different secrets", a.Routes(), b.Routes())
	}
}

// funcHandler is a slog.Handler calling f with each record's message.
type funcHandler struct{ f func(string) }

func (h *funcHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *funcHandler) Handle(_ context.Context, r slog.Record) error {
	h.f(r.Message)
	return nil
}
func (h *funcHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *funcHandler) WithGroup(string) slog.Handler      { return h }
