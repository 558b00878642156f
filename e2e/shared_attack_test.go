package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/icebox-project/icebox/config"
	"github.com/icebox-project/icebox/signaling/sigclient"
)

// TestSharedPortWebLimits: the web server's limits hold on the port it
// shares with TURN as on a port of its own, however the connection was
// told apart: WebSockets past signaling.max_connections_per_ip get 429
// (over ALPN http/1.1 and over TLS without ALPN, told apart by its first
// bytes), a foreign Origin gets 403, and /metrics, after all of it, holds
// no TURN secret, API key or room password.
func TestSharedPortWebLimits(t *testing.T) {
	lane(t, laneLight)
	const (
		secret   = "shared-attack-secret-0123456789"
		apiKey   = "shared-attack-api-key-0123456789"
		roomPass = "shared-attack-room-password"
	)
	share := true
	ca := newTestCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca.issue(t, 7, certFile, keyFile)
	ib := startIcebox(t, func(c *config.Config) {
		c.HTTP.TLS.CertFile, c.HTTP.TLS.KeyFile = certFile, keyFile
		c.TURN.ShareHTTPListen = &share
		c.TURN.Secrets = []string{secret}
		c.HTTP.APIKeys = []string{apiKey}
		c.Signaling.MaxConnectionsPerIP = 2
		c.Signaling.DefaultRoomPassword = roomPass
	})
	addr := ib.HTTPAddr().String()
	origin := http.Header{"Origin": {"https://" + addr}}
	dial := func(alpn []string, h http.Header) (*sigclient.Client, int, error) {
		d := websocket.Dialer{TLSClientConfig: &tls.Config{RootCAs: ca.pool, ServerName: "localhost", NextProtos: alpn}, HandshakeTimeout: 10 * time.Second}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ws, err := sigclient.Dial(ctx, "wss://"+addr+"/ws", sigclient.DialOptions{Header: h, Dialer: &d})
		var de *sigclient.DialError
		if errors.As(err, &de) {
			return nil, de.StatusCode, err
		}
		return ws, http.StatusSwitchingProtocols, err
	}
	for _, alpn := range [][]string{{"http/1.1"}, nil} {
		ws, _, err := dial(alpn, origin)
		if err != nil {
			t.Fatalf("WSS offering ALPN %q: %v", alpn, err)
		}
		defer ws.Close()
	}
	for _, alpn := range [][]string{{"http/1.1"}, nil} {
		if ws, code, _ := dial(alpn, origin); code != http.StatusTooManyRequests {
			if ws != nil {
				ws.Close()
			}
			t.Errorf("a third WSS from one address offering ALPN %q: status %d, want 429", alpn, code)
		}
	}
	if ws, code, _ := dial(nil, http.Header{"Origin": {"https://evil.example"}}); code != http.StatusForbidden {
		if ws != nil {
			ws.Close()
		}
		t.Errorf("WSS from a foreign origin: status %d, want 403", code)
	}
	if got := ib.TURN().Stats().SharedTURN.Load(); got != 0 {
		t.Errorf("SharedTURN: got %d, want 0", got)
	}

	resp, err := http.Get("http://" + ib.MetricsAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "icebox_shared_connections_total") {
		t.Fatalf("no shared listener metrics:\n%s", body)
	}
	for _, s := range []string{secret, apiKey, roomPass} {
		if strings.Contains(string(body), s) {
			t.Errorf("/metrics holds the secret %q", s)
		}
	}
}

// TestSharedPlainNoH2PriorKnowledge: on plain HTTP shared with TURN over
// TCP, a client speaking HTTP/2 by prior knowledge (RFC 9113 §3.3) is
// answered in HTTP/1.1 with an error and closed: the web server neither
// serves HTTP/2 without TLS nor reads the frames after the preface as
// requests.
func TestSharedPlainNoH2PriorKnowledge(t *testing.T) {
	lane(t, laneLight)
	share := true
	ib := startIcebox(t, func(c *config.Config) { c.TURN.ShareHTTPListen = &share })
	c, err := net.Dial("tcp", ib.HTTPAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The preface, an empty SETTINGS frame, and a HEADERS frame.
	if _, err := io.WriteString(c, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"+
		"\x00\x00\x05\x01\x05\x00\x00\x00\x01\x82\x84\x86\x41\x00"); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("no HTTP/1.1 answer to the HTTP/2 preface: %v", err)
	}
	resp.Body.Close()
	if resp.ProtoMajor != 1 || resp.StatusCode < 400 {
		t.Errorf("the HTTP/2 preface got %s %d, want an HTTP/1.1 error", resp.Proto, resp.StatusCode)
	}
	rest, err := io.ReadAll(r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the connection stayed open after the HTTP/2 preface")
	}
	if n := strings.Count(string(rest), "HTTP/1.1 2"); n != 0 {
		t.Errorf("%d success answers after the preface: %q", n, rest)
	}
}
