package turnsrv

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/icebox-project/icebox/internal/testenv"
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
			testenv.Eventually(t, closeGuard, "the closed HTTP connection counted out", func() bool {
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

func webCount(s *testServer) int {
	return s.shared.web.Len()
}

// TestSharedHTTPCountedUntilClosed: an HTTP connection on the shared port
// stays counted for as long as it is open, whichever way it ends: an
// HTTP/2 connection closed by the client, an HTTP/1.1 connection the
// server closes (Connection: close), and a hijacked one (a WebSocket)
// closed by its handler.
func TestSharedHTTPCountedUntilClosed(t *testing.T) {
	t.Parallel()
	s, addr, seen := attackServer(t, "tls", nil, nil)
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}}, ForceAttemptHTTP2: true} //nolint:gosec // the test's own certificate.
	resp, err := (&http.Client{Transport: tr}).Get("https://" + addr + "/h2")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	<-seen
	if resp.ProtoMajor != 2 || webCount(s) != 1 {
		t.Fatalf("%s, %d counted; want HTTP/2 and 1", resp.Proto, webCount(s))
	}
	tr.CloseIdleConnections()
	testenv.Eventually(t, closeGuard, "the HTTP/2 connection counted out", func() bool { return webCount(s) == 0 })

	c := tlsClient(t, addr, []string{"http/1.1"})
	io.WriteString(c, "GET /close HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	readUntilClosed(t, c)
	<-seen
	testenv.Eventually(t, closeGuard, "the connection the server closed counted out", func() bool { return webCount(s) == 0 })

	// A handler that hijacks the connection and holds it until told.
	hs, haddr, release := hijackServer(t)
	h := tlsClient(t, haddr, nil)
	io.WriteString(h, "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n")
	if got := readLine(t, h); got != "hijacked" {
		t.Fatalf("hijacking handler said %q", got)
	}
	if webCount(hs) != 1 {
		t.Fatalf("%d counted while hijacked, want 1", webCount(hs))
	}
	close(release)
	readUntilClosed(t, h)
	testenv.Eventually(t, closeGuard, "the hijacked connection counted out", func() bool { return webCount(hs) == 0 })
}

// hijackServer is a shared TLS listener whose web server hijacks each
// connection, writes "hijacked\n" and closes it once release is closed.
func hijackServer(t *testing.T) (*testServer, string, chan struct{}) {
	t.Helper()
	conf := selfSigned(t)
	conf.NextProtos = []string{ALPNTURN, "http/1.1"}
	s := startServer(t, func(c *Config) {
		c.Listeners = []Listener{{Network: "tls", Addr: "127.0.0.1:0", TLS: conf, ShareHTTP: true}}
	})
	release := make(chan struct{})
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		c, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Errorf("Hijack: %v", err)
			return
		}
		io.WriteString(c, "hijacked\n")
		go func() {
			<-release
			c.Close()
		}()
	}), ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(s.HTTPListener())
	t.Cleanup(func() { hs.Close() })
	return s, s.Addrs()[0].String(), release
}

func readLine(t *testing.T, c net.Conn) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(closeGuard))
	defer c.SetReadDeadline(time.Time{})
	var b []byte
	one := make([]byte, 1)
	for {
		if _, err := c.Read(one); err != nil {
			t.Fatalf("reading a line: %v", err)
		}
		if one[0] == '\n' {
			return string(b)
		}
		b = append(b, one[0])
	}
}

// TestSharedPendingTotalFromManyAddresses: silent connections from many
// addresses fill the total cap of connections not yet told apart; past
// it a fresh connection to the shared port is taken in place of the
// oldest silent one (evicted, counted, closed), and TURN connections
// already told apart on it and TURN on its other listeners carry on; the
// places come back when the silent ones leave.
func TestSharedPendingTotalFromManyAddresses(t *testing.T) {
	t.Parallel()
	conf := selfSigned(t)
	conf.NextProtos = []string{ALPNTURN, "http/1.1"}
	s := startServer(t, func(c *Config) {
		c.Listeners = []Listener{{Network: "tcp", Addr: "127.0.0.1:0"}, {Network: "tls", Addr: "127.0.0.1:0", TLS: conf, ShareHTTP: true}}
		c.MaxTCPConnectionsPerIP, c.MaxTCPConnections = 2, 4
		c.FirstMessageTimeout = time.Hour
		c.NoAllocationTimeout = time.Hour
	})
	tcpAddr, sharedAddr := s.Addrs()[0].String(), s.Addrs()[1].String()
	told := tlsClient(t, sharedAddr, []string{ALPNTURN})
	if err := turntest.TCPBinding(told, closeGuard); err != nil {
		t.Fatal(err)
	}
	var silent []net.Conn
	for i, from := range []string{"127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3"} {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.Dial("tcp", sharedAddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		silent = append(silent, c)
		// One at a time, so that they are accepted in this order.
		testenv.Eventually(t, closeGuard, "pending", func() bool { return pendingCount(s) == i+1 })
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.4")}, Timeout: closeGuard}
	fresh, err := tls.DialWithDialer(&d, "tcp", sharedAddr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{ALPNTURN}}) //nolint:gosec // the test's own certificate.
	if err != nil {
		t.Fatalf("a fresh client with the pending connections at their cap: %v", err)
	}
	if err := turntest.TCPBinding(fresh, closeGuard); err != nil {
		t.Fatalf("a fresh client with the pending connections at their cap: %v", err)
	}
	waitClosedByServer(t, silent[0])
	if got := s.Stats().SharedEvicted.Load(); got != 1 {
		t.Errorf("SharedEvicted: got %d, want 1", got)
	}
	if got := s.Stats().TCPRefusedTotal.Load(); got != 0 {
		t.Errorf("TCPRefusedTotal: got %d, want 0", got)
	}
	if err := turntest.TCPBinding(told, closeGuard); err != nil {
		t.Errorf("the TURN connection told apart before: %v", err)
	}
	fresh.Close()
	other := dialTCP(t, tcpAddr)
	if err := turntest.TCPBinding(other, closeGuard); err != nil {
		t.Errorf("TURN on the other TCP listener: %v", err)
	}
	other.Close() // 127.0.0.1's second TURN place, for the allocation below
	for _, c := range silent {
		c.Close()
	}
	testenv.Eventually(t, closeGuard, "the places back", func() bool { return pendingCount(s) == 0 && s.Stats().TCPConnectionsOpen.Load() == 1 })
	tlsAllocate(t, sharedAddr, []string{ALPNTURN})
}

// TestSharedPendingEvictionFromManyAddresses: many addresses (127.0.0.x)
// each holding as many idle connections as the per-address cap lets
// them, more than the total cap of connections not yet told apart, and
// opening a fresh round before each fresh client, do not stop a fresh TLS
// client from being served: the oldest connections that have not
// finished a TLS handshake make room (before: refused 4 times in 5).
// Connections done with TLS are never evicted, so when all the pending
// places hold such ones a fresh connection is refused.
func TestSharedPendingEvictionFromManyAddresses(t *testing.T) {
	t.Parallel()
	conf := selfSigned(t)
	conf.NextProtos = []string{ALPNTURN, "http/1.1"}
	const addrs, perIP, total = 20, 8, 64
	s := startServer(t, func(c *Config) {
		c.Listeners = []Listener{{Network: "tls", Addr: "127.0.0.1:0", TLS: conf, ShareHTTP: true}}
		c.MaxTCPConnectionsPerIP, c.MaxTCPConnections = perIP, total
		c.FirstMessageTimeout = time.Hour
		c.NoAllocationTimeout = time.Hour
	})
	addr := s.Addrs()[0].String()
	idle := func(from string) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			return // refused, or evicted, before connect returned
		}
		t.Cleanup(func() { c.Close() })
	}
	const rounds = 5
	for round := range rounds {
		// The attackers open a connection from every address, up to the
		// per-address cap, each round: addrs*perIP (160) > total (64).
		for a := range addrs {
			for range perIP {
				idle(fmt.Sprintf("127.0.0.%d", 10+a))
			}
		}
		testenv.Eventually(t, closeGuard, "the pending places full", func() bool { return pendingCount(s) == total })
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(fmt.Sprintf("127.0.1.%d", 1+round))}, Timeout: closeGuard}
		c, err := tls.DialWithDialer(&d, "tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{ALPNTURN}}) //nolint:gosec // the test's own certificate.
		if err != nil {
			t.Fatalf("round %d: a fresh TLS client: %v", round+1, err)
		}
		if err := turntest.TCPBinding(c, closeGuard); err != nil {
			t.Fatalf("round %d: a fresh TLS client's Binding: %v", round+1, err)
		}
		c.Close()
	}
	if got := s.Stats().SharedEvicted.Load(); got == 0 {
		t.Errorf("SharedEvicted: got 0, want evictions")
	}
	t.Logf("evicted %d, refused per address %d, in total %d", s.Stats().SharedEvicted.Load(),
		s.Stats().TCPRefusedPerIP.Load(), s.Stats().TCPRefusedTotal.Load())
}

// TestSharedPendingDoneWithTLSKept: connections not yet told apart that
// finished their TLS handshake (no ALPN: their first bytes tell) are not
// evicted; with the pending places all held by such ones a fresh
// connection is refused and counted.
func TestSharedPendingDoneWithTLSKept(t *testing.T) {
	t.Parallel()
	conf := selfSigned(t)
	s := startServer(t, func(c *Config) {
		c.Listeners = []Listener{{Network: "tls", Addr: "127.0.0.1:0", TLS: conf, ShareHTTP: true}}
		c.MaxTCPConnectionsPerIP, c.MaxTCPConnections = -1, 2
		c.FirstMessageTimeout = time.Hour
	})
	addr := s.Addrs()[0].String()
	done := []*tls.Conn{tlsClient(t, addr, nil), tlsClient(t, addr, nil)}
	testenv.Eventually(t, closeGuard, "two pending done with TLS", func() bool { return pendingCount(s) == 2 && s.shared.pending.Evictable() == 0 })
	if c, err := net.Dial("tcp", addr); err == nil { // or reset before connect returned
		waitClosedByServer(t, c)
		c.Close()
	}
	if got := s.Stats().TCPRefusedTotal.Load(); got != 1 {
		t.Errorf("TCPRefusedTotal: got %d, want 1", got)
	}
	if got := s.Stats().SharedEvicted.Load(); got != 0 {
		t.Errorf("SharedEvicted: got %d, want 0", got)
	}
	for i, c := range done {
		if err := turntest.TCPBinding(c, closeGuard); err != nil {
			t.Errorf("connection %d done with TLS: %v", i+1, err)
		}
	}
}
