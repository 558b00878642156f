package turnsrv

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/icebox-project/icebox/internal/turntest"
)

// keepAliveGET sends a GET on a new connection to addr (TLS offering
// http/1.1, or plain) and reads the answer, leaving the connection open;
// it reports whether the request was served.
func keepAliveGET(t *testing.T, network, addr string) (net.Conn, bool) {
	t.Helper()
	var c net.Conn = dialTCP(t, addr)
	if network == "tls" {
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}) //nolint:gosec // the test's own certificate.
		_ = tc.SetDeadline(time.Now().Add(closeGuard))
		if err := tc.Handshake(); err != nil {
			return c, false
		}
		_ = tc.SetDeadline(time.Time{})
		c = tc
	}
	if _, err := io.WriteString(c, "GET /idle HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return c, false
	}
	_ = c.SetReadDeadline(time.Now().Add(closeGuard))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return c, false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	_ = c.SetReadDeadline(time.Time{})
	return c, resp.StatusCode == 200
}

// TestSharedHTTPConnectionCaps: HTTP connections of the shared port are
// held under the TCP connection caps too, apart from TURN's: one address
// cannot hold more than MaxTCPConnectionsPerIP idle keep-alive HTTP
// connections (which would cost the process a descriptor and buffers
// each, up to its limit, and starve TURN), nor all addresses together
// more than MaxTCPConnections; and HTTP connections at their caps leave
// TURN on the same port its own places, and the other way round.
func TestSharedHTTPConnectionCaps(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name         string
		network      string
		perIP, total int
		refused      func(*Stats) int64
	}{
		{"per address tls", "tls", 2, -1, func(s *Stats) int64 { return s.TCPRefusedPerIP.Load() }},
		{"per address tcp", "tcp", 2, -1, func(s *Stats) int64 { return s.TCPRefusedPerIP.Load() }},
		{"total tls", "tls", -1, 2, func(s *Stats) int64 { return s.TCPRefusedTotal.Load() }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, addr, seen := attackServer(t, tt.network, nil, func(c *Config) {
				c.MaxTCPConnectionsPerIP, c.MaxTCPConnections = tt.perIP, tt.total
				c.NoAllocationTimeout = time.Hour
			})
			var held []net.Conn
			for i := 0; i < 2; i++ {
				c, ok := keepAliveGET(t, tt.network, addr)
				if !ok {
					t.Fatalf("GET %d within the caps not served", i+1)
				}
				<-seen
				held = append(held, c)
			}
			// The attacker's third, fourth, ... idle connection.
			for i := 0; i < 3; i++ {
				if _, ok := keepAliveGET(t, tt.network, addr); ok {
					t.Fatalf("HTTP connection %d over the cap of 2 was served", i+3)
				}
			}
			if got := tt.refused(s.Stats()); got != 3 {
				t.Errorf("refusals counted: got %d, want 3", got)
			}
			// TURN on the same port from the same address still has its
			// places.
			var turnConn net.Conn = dialTCP(t, addr)
			if tt.network == "tls" {
				turnConn = handshake(t, turnConn, []string{ALPNTURN})
			}
			allocateOn(t, turnConn, addr)
			// A place freed by HTTP is given to the next HTTP client.
			held[0].Close()
			waitFor(t, "the closed HTTP connection counted out", func() bool {
				c, ok := keepAliveGET(t, tt.network, addr)
				if ok {
					<-seen
					c.Close()
				}
				return ok
			})
		})
	}

	t.Run("turn at its caps leaves http", func(t *testing.T) {
		t.Parallel()
		s, addr, seen := attackServer(t, "tls", nil, func(c *Config) {
			c.MaxTCPConnectionsPerIP, c.MaxTCPConnections = -1, 2
			c.NoAllocationTimeout = time.Hour
		})
		for i := 0; i < 2; i++ {
			c := tlsClient(t, addr, []string{ALPNTURN})
			if err := turntest.TCPBinding(c, closeGuard); err != nil {
				t.Fatalf("TURN connection %d: %v", i+1, err)
			}
		}
		c := tlsClient(t, addr, []string{ALPNTURN})
		if err := turntest.TCPBinding(c, closeGuard); err == nil {
			t.Fatal("a third TURN connection was served over a total cap of 2")
		}
		if _, ok := keepAliveGET(t, "tls", addr); !ok {
			t.Fatal("HTTP not served while TURN holds its places")
		}
		<-seen
		if got := s.Stats().TCPConnectionsOpen.Load(); got != 2 {
			t.Errorf("TCPConnectionsOpen: got %d, want 2", got)
		}
	})
}

// handshake completes a TLS handshake on c offering alpn.
func handshake(t *testing.T, c net.Conn, alpn []string) net.Conn {
	t.Helper()
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, NextProtos: alpn}) //nolint:gosec // the test's own certificate.
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	return tc
}
