package audit

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/icebox-project/icebox/internal/connlimit"
	"github.com/icebox-project/icebox/internal/ratelog"
)

// webServer serves /healthz on 127.0.0.1:0, its listener under a cap of
// perIP connections per address (connlimit.Listener, as icebox's), or
// under none when perIP is 0.
func webServer(t *testing.T, perIP int) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })}
	var serve net.Listener = ln
	if perIP > 0 {
		quiet := ratelog.New(slog.New(slog.NewTextHandler(io.Discard, nil)), 0, nil)
		cl := connlimit.NewListener(ln, ln.(*net.TCPListener), connlimit.Caps{PerIP: perIP}, &connlimit.Stats{}, quiet)
		srv.ConnState = cl.ConnState
		serve = cl
	}
	go srv.Serve(serve)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// TestHTTPCap: a web server that caps connections per address passes, one
// that holds every idle connection fails, and the check is skipped in the
// start-up subset and without an address.
func TestHTTPCap(t *testing.T) {
	for _, tt := range []struct {
		name  string
		perIP int
		want  Status
		held  string
	}{
		{"capped", 16, Pass, "16 of 64 idle connections"},
		{"uncapped", 0, Fail, "all 64 idle connections"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			addr := webServer(t, tt.perIP)
			r := httpCap(context.Background(), Config{HTTP: addr, HTTPConnections: 64})
			t.Log(r)
			if r.Status != tt.want || !strings.Contains(r.Evidence, tt.held) {
				t.Errorf("got %s, want %s with %q", r, tt.want, tt.held)
			}
		})
	}
	if r := httpCap(context.Background(), Config{HTTP: "127.0.0.1:1", NoIdleWait: true, HTTPConnections: 1}); r.Status != Skip {
		t.Errorf("start-up subset: got %s, want SKIP", r)
	}
	if r := httpCap(context.Background(), Config{HTTPConnections: 1}); r.Status != Skip {
		t.Errorf("no address: got %s, want SKIP", r)
	}
}
