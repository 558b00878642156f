package daemon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/icebox-project/icebox/signaling"
	"github.com/icebox-project/icebox/signaling/sigclient"
	"github.com/icebox-project/icebox/signaling/wire"
	"github.com/icebox-project/icebox/turnsrv"
)

// failGuard bounds each wait in these tests; it is only a failure guard,
// the tests wait for the events themselves.
const failGuard = 10 * time.Second

// TestRequestDeadlines: on the port the web server shares with TURN, a
// client that announces a body and sends none, or asks for an answer it
// never reads, no longer holds its connection for ever: the server closes
// it at the request's deadline. A WebSocket opened before outlives both
// deadlines.
func TestRequestDeadlines(t *testing.T) {
	creds, err := turnsrv.NewCredentials("icebox", []string{"deadline-secret-0123456789"}, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ts, err := turnsrv.New(turnsrv.Config{Realm: "icebox", Credentials: creds, PublicIP: netip.MustParseAddr("127.0.0.1"),
		Listeners: []turnsrv.Listener{{Network: "tcp", Addr: "127.0.0.1:0", ShareHTTP: true}}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ts.Close() })
	sig := signaling.New(signaling.Config{Logger: quiet})
	t.Cleanup(func() { sig.Close(context.Background()) })
	writeFailed := make(chan error, 1)
	mux := http.NewServeMux()
	mux.Handle("GET /ws", sig)
	mux.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("GET /big", func(w http.ResponseWriter, _ *http.Request) {
		chunk := []byte(strings.Repeat("x", 64<<10))
		for range 1 << 10 { // 64 MB, far more than the sockets buffer
			if _, err := w.Write(chunk); err != nil {
				writeFailed <- err
				return
			}
		}
		writeFailed <- nil
	})
	const deadline = 200 * time.Millisecond
	web := &http.Server{Handler: withRequestDeadlines(mux, deadline, deadline), ReadHeaderTimeout: failGuard, ErrorLog: slog.NewLogLogger(quiet.Handler(), slog.LevelError)}
	go web.Serve(ts.HTTPListener())
	t.Cleanup(func() { web.Close() })
	addr := ts.Addrs()[0].String()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	// A WebSocket in a room, before either deadline can pass.
	wsCtx, cancel := context.WithTimeout(context.Background(), failGuard)
	defer cancel()
	ws, err := sigclient.Dial(wsCtx, "ws://"+addr+"/ws", sigclient.DialOptions{Origin: "http://" + addr})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	exchange := func(m wire.Message, want string) {
		t.Helper()
		if err := ws.Send(m); err != nil {
			t.Fatalf("WebSocket write: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), failGuard)
		defer cancel()
		if got, err := ws.Receive(ctx); err != nil || got.MessageType() != want {
			t.Fatalf("WebSocket %s: got %#v, %v; want %s", m.MessageType(), got, err, want)
		}
	}
	exchange(&wire.Join{Room: "deadlines", Name: "alice"}, wire.TypeWelcome)

	// A whole body is served.
	c := dial()
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody")
	_ = c.SetReadDeadline(time.Now().Add(failGuard))
	if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != 200 {
		t.Fatalf("POST with its body: %v %v", resp, err)
	}

	// A body announced and never sent.
	c = dial()
	fmt.Fprintf(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
	_ = c.SetReadDeadline(time.Now().Add(failGuard))
	if _, err := io.ReadAll(c); isTimeout(err) {
		t.Fatal("a request whose body never came held its connection")
	}

	// An answer never read: the client's receive buffer is small and it
	// reads nothing.
	c = dial()
	_ = c.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
	select {
	case err := <-writeFailed:
		if err == nil {
			t.Fatal("64 MB written to a client that reads nothing")
		}
	case <-time.After(failGuard):
		t.Fatal("the answer to a client that reads nothing is still being written")
	}

	// Both deadlines have passed: the WebSocket carries on.
	exchange(&wire.Ping{}, wire.TypePong)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() && !errors.Is(err, syscall.ECONNRESET)
}
