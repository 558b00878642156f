package daemon

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/icebox-project/icebox/config"
	"github.com/icebox-project/icebox/internal/testenv"
)

// serveDaemon starts a daemon on loopback from yml (state_dir is added)
// and serves it until the test ends; its log goes to log (nil: nowhere).
func serveDaemon(t *testing.T, yml string, log io.Writer) *Daemon {
	t.Helper()
	if log == nil {
		log = io.Discard
	}
	yml += fmt.Sprintf("state_dir: %q\n", t.TempDir())
	cfg, err := config.FromBytes("caps.yaml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, cfg, Options{Logger: slog.New(slog.NewTextHandler(log, nil))})
}

// serve makes a Daemon of cfg and serves it until the test ends, when
// Serve must return nil.
func serve(t *testing.T, cfg *config.Config, opts Options) *Daemon {
	t.Helper()
	// A fixed port (one a key left out defaults to, such as metrics on
	// 9464) collides with whatever else holds it on the machine.
	addrs := []string{cfg.HTTP.Listen}
	if cfg.Metrics.Listen != nil {
		addrs = append(addrs, *cfg.Metrics.Listen)
	}
	addrs = append(addrs, cfg.TURN.Listen...)
	if cfg.SFU != nil {
		addrs = append(addrs, cfg.SFU.Listen...)
	}
	for _, a := range addrs {
		if _, rest, ok := strings.Cut(a, "://"); ok {
			a = rest
		}
		if _, port, err := net.SplitHostPort(a); err == nil && port != "0" {
			t.Fatalf("the test's daemon listens on %s: tests listen on port 0", a)
		}
	}
	d, err := New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- d.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return d
}

// getOn sends GET path on c (keep-alive) and returns the answer's status
// code, 0 when none came; c stays open.
func getOn(c net.Conn, path string) int {
	_ = c.SetDeadline(time.Now().Add(failGuard))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
		return 0
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return 0
	}
	return resp.StatusCode
}

// TestHTTPConnectionCapNotShared: 20,000 keep-alive connections from one
// address (127.0.0.1) to an HTTP listener that does not share its port
// with TURN are not all accepted and held (before the cap they were,
// and the daemon ran out of descriptors): at most
// turn.max_tcp_connections_per_ip (64 by default) are served, the rest
// refused and counted, and the page still answers a fresh client from
// another address. Refused connections are closed by the test as soon as
// they are refused, so the test holds few descriptors; before the fix
// both ends of every connection stayed open in this process, and it ran
// out of descriptors about half way (at a limit of 20,000).
func TestHTTPConnectionCapNotShared(t *testing.T) {
	d := serveDaemon(t, `public_ip: 127.0.0.1
http:
  listen: "127.0.0.1:0"
turn:
  listen: ["udp://127.0.0.1:0"]
metrics:
  listen: ""
`, nil)
	addr := d.HTTPAddr().String()
	const n = 20000
	var held []net.Conn
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})
	for i := range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			if errors.Is(err, syscall.ECONNRESET) {
				continue // refused before connect returned
			}
			if errors.Is(err, syscall.EMFILE) {
				t.Errorf("out of descriptors at connection %d, %d held", i+1, len(held))
				break
			}
			t.Fatalf("connection %d: %v", i+1, err)
		}
		if getOn(c, "/favicon.ico") != 0 {
			held = append(held, c)
		} else {
			c.Close()
		}
	}
	t.Logf("%d of %d idle keep-alive connections from 127.0.0.1 accepted and served; refused per address %d, in total %d, shed %d",
		len(held), n, d.httpStats.RefusedPerIP.Load(), d.httpStats.RefusedTotal.Load(), d.httpStats.RefusedFDLimit.Load())
	if want := config.DefaultMaxTCPConnectionsPerIP; len(held) > want {
		t.Errorf("accepted and served %d idle connections from one address, want at most %d", len(held), want)
	}
	if got, want := d.httpStats.RefusedPerIP.Load(), int64(n-len(held)); got < want {
		t.Errorf("refused per address: got %d, want at least %d", got, want)
	}
	dl := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.2")}, Timeout: failGuard}
	fresh, err := dl.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if code := getOn(fresh, "/r/fresh-room"); code != http.StatusOK {
		t.Errorf("the page for a fresh client from 127.0.0.2: status %d, want 200", code)
	}
}

// TestHTTPErrorLogBounded: net/http's error lines (a failed TLS handshake
// on an HTTPS listener not shared with TURN, a bogus HTTP/2 preface on
// the port shared with TURN) are logged at a bounded rate, not one line
// each (before: 1,000 handshakes gave 1,000 lines, 2,000 prefaces 2,000).
func TestHTTPErrorLogBounded(t *testing.T) {
	certFile, keyFile := testenv.SelfSignedFiles(t, "127.0.0.1", "localhost")
	for _, tt := range []struct {
		name  string
		turn  string // "shared": TURN over TLS shares http.listen (share_http_listen)
		flood func(addr string) error
	}{
		{"bad tls handshakes", "", func(addr string) error {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return err
			}
			defer c.Close()
			// A ClientHello record header with a version TLS rejects.
			if _, err := c.Write([]byte("\x16\x03\x09\x00\x05hello")); err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, c) // until the server closes
			return nil
		}},
		{"bogus h2 prefaces", "shared", func(addr string) error {
			c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}}) //nolint:gosec // the test's own certificate.
			if err != nil {
				return err
			}
			defer c.Close()
			if _, err := io.WriteString(c, "PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"); err != nil {
				return err
			}
			_, _ = io.Copy(io.Discard, c)
			return nil
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			const n = 1000
			// TURN over TLS shares HTTPS's socket, or has none.
			shared := tt.turn == "shared"
			log := &syncBuffer{}
			d := serveDaemon(t, fmt.Sprintf(`public_ip: 127.0.0.1
http:
  listen: "127.0.0.1:0"
  tls: {cert_file: %q, key_file: %q}
turn:
  listen: ["udp://127.0.0.1:0"]
  share_http_listen: %t
  max_tcp_connections_per_ip: -1
metrics:
  listen: ""
`, certFile, keyFile, shared), log)
			addr := d.HTTPAddr().String()
			for i := range n {
				if err := tt.flood(addr); err != nil {
					t.Fatalf("attempt %d: %v", i+1, err)
				}
			}
			// Every attempt reached net/http's error log: wait for that.
			testenv.Eventually(t, failGuard, fmt.Sprintf("net/http's error log reached for all %d attempts", n), func() bool {
				return d.httpErrors.Lines.Load() >= n
			})
			lines := 0
			for _, l := range strings.Split(log.String(), "\n") {
				if strings.Contains(l, "http server error") || strings.Contains(l, "http: TLS handshake error") || strings.Contains(l, "http2:") {
					lines++
				}
			}
			t.Logf("%d attempts, %d errors from net/http, %d log lines", n, d.httpErrors.Lines.Load(), lines)
			if lines > 3*10 { // ratelog's 10 a minute per kind; the minute may roll over once
				t.Errorf("%d log lines for %d attempts, want a bounded number", lines, n)
			}
		})
	}
}
