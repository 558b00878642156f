package turnsrv

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	"github.com/pion/turn/v4"

	"github.com/icebox-project/icebox/internal/testenv"
	"github.com/icebox-project/icebox/internal/turntest"
)

// closeGuard bounds every wait for the server to close a connection. It
// is only a failure guard: the tests wait for the close itself.
const closeGuard = 10 * time.Second

// waitClosedByServer reads c until the server closes it (EOF or reset),
// failing the test when that takes longer than closeGuard.
func waitClosedByServer(t *testing.T, c net.Conn) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(closeGuard))
	buf := make([]byte, 1500)
	for {
		_, err := c.Read(buf)
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection still open after %s", closeGuard)
		}
		return // io.EOF, ECONNRESET: closed by the server.
	}
}

// expectRefused connects to addr and waits for the server to close the
// connection unserved. The server resets refused connections, so the
// reset may already fail the connect.
func expectRefused(t *testing.T, addr string) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if errors.Is(err, syscall.ECONNRESET) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitClosedByServer(t, c)
}

func dialTCP(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// selfSigned is a TLS server configuration with a fresh self-signed
// certificate for 127.0.0.1.
func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Hour),
		NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// TestTCPFirstMessageDeadline: a connection that sends no whole STUN
// message within FirstMessageTimeout is closed by the server, on tcp://
// and on tls:// (where the TLS handshake must fit in the same time).
func TestTCPFirstMessageDeadline(t *testing.T) {
	binding := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint).Raw
	tests := []struct {
		name    string
		network string
		send    []byte
	}{
		{"tcp silent", "tcp", nil},
		{"tcp half header", "tcp", binding[:10]},
		{"tcp header without its attributes", "tcp", binding[:len(binding)-4]},
		{"tcp channel data only", "tcp", []byte{0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4}},
		{"tls no handshake", "tls", nil},
		{"tls half client hello", "tls", []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, func(c *Config) {
				c.Listeners = []Listener{{Network: tt.network, Addr: "127.0.0.1:0", TLS: selfSigned(t)}}
				c.FirstMessageTimeout = 200 * time.Millisecond
			})
			c := dialTCP(t, s.Addrs()[0].String())
			if tt.send != nil {
				if _, err := c.Write(tt.send); err != nil {
					t.Fatal(err)
				}
			}
			waitClosedByServer(t, c)
			testenv.Eventually(t, closeGuard, "connection counted out", func() bool { return s.Stats().TCPConnectionsOpen.Load() == 0 })
			if got := s.Stats().TCPClosedFirstMessage.Load(); got != 1 {
				t.Errorf("TCPClosedFirstMessage: got %d, want 1", got)
			}
		})
	}
}

// TestTLSClientServedAfterHandshake: a TLS client that completes the
// handshake and sends a Binding request is served, so the first-message
// deadline does not cut off real clients.
func TestTLSClientServedAfterHandshake(t *testing.T) {
	s := startServer(t, func(c *Config) {
		c.Listeners = []Listener{{Network: "tls", Addr: "127.0.0.1:0", TLS: selfSigned(t)}}
		c.FirstMessageTimeout = 2 * time.Second
		c.NoAllocationTimeout = time.Hour
	})
	c, err := tls.Dial("tcp", s.Addrs()[0].String(), &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the test's own certificate.
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := turntest.TCPBinding(c, closeGuard); err != nil {
		t.Fatalf("Binding over TLS: %v", err)
	}
	if got := s.Stats().TCPConnectionsOpen.Load(); got != 1 {
		t.Errorf("TCPConnectionsOpen: got %d, want 1", got)
	}
}

// TestTCPNoAllocationDeadline: a connection that sent a valid Binding
// request but holds no allocation is closed after NoAllocationTimeout
// (and not by the first-message deadline, which its Binding met); a
// connection holding an allocation stays through several checks, and is
// closed NoAllocationTimeout after its allocation is deleted.
func TestTCPNoAllocationDeadline(t *testing.T) {
	s := startServer(t, func(c *Config) {
		c.FirstMessageTimeout = 100 * time.Millisecond
		c.NoAllocationTimeout = 300 * time.Millisecond
	})

	t.Run("binding only", func(t *testing.T) {
		c := dialTCP(t, s.tcp)
		if err := turntest.TCPBinding(c, closeGuard); err != nil {
			t.Fatalf("Binding: %v", err)
		}
		waitClosedByServer(t, c)
		if got := s.Stats().TCPClosedNoAllocation.Load(); got != 1 {
			t.Errorf("TCPClosedNoAllocation: got %d, want 1", got)
		}
		if got := s.Stats().TCPClosedFirstMessage.Load(); got != 0 {
			t.Errorf("TCPClosedFirstMessage: got %d, want 0 (the Binding came in time)", got)
		}
	})

	t.Run("holding an allocation", func(t *testing.T) {
		before := s.Stats().TCPClosedNoAllocation.Load()
		raw := dialTCP(t, s.tcp)
		client := newClientOn(t, turn.NewSTUNConn(raw), s.tcp, "static", "static-password")
		relay, err := client.Allocate()
		if err != nil {
			t.Fatalf("Allocate over TCP: %v", err)
		}
		// Three checks that found the allocation: more than three
		// NoAllocationTimeouts with it.
		kept := s.conns.kept.Load()
		testenv.Eventually(t, closeGuard, "three no-allocation checks", func() bool { return s.conns.kept.Load() >= kept+3 })
		if _, err := client.SendBindingRequest(); err != nil {
			t.Fatalf("the connection holding an allocation stopped serving: %v", err)
		}
		if got := s.Stats().TCPClosedNoAllocation.Load(); got != before {
			t.Errorf("TCPClosedNoAllocation: got %d, want %d", got, before)
		}
		// A Refresh with lifetime 0 deletes the allocation; the clock
		// starts again from then. (pion's client reads raw, so the test
		// waits on the server's counters rather than on a read.)
		if err := relay.Close(); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, closeGuard, "closed for holding no allocation", func() bool {
			return s.Stats().TCPClosedNoAllocation.Load() == before+1 && s.Stats().TCPConnectionsOpen.Load() == 0
		})
	})
}

// syncBuffer is a log destination tests can read while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestTCPConnectionCaps: past the per-address or total cap a connection
// is closed by the server at once and counted; a flood of refusals is
// logged once; the connections within the cap keep serving, and a freed
// place is given to the next client.
func TestTCPConnectionCaps(t *testing.T) {
	tests := []struct {
		name         string
		perIP, total int
		counter      func(*Stats) int64
		reason       string
	}{
		{"per address", 2, -1, func(s *Stats) int64 { return s.TCPRefusedPerIP.Load() }, "reason=per_ip"},
		{"total", 0, 2, func(s *Stats) int64 { return s.TCPRefusedTotal.Load() }, "reason=total"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs syncBuffer
			s := startServer(t, func(c *Config) {
				c.MaxTCPConnectionsPerIP, c.MaxTCPConnections = tt.perIP, tt.total
				c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			})
			first, second := dialTCP(t, s.tcp), dialTCP(t, s.tcp)
			for _, c := range []net.Conn{first, second} {
				if err := turntest.TCPBinding(c, closeGuard); err != nil {
					t.Fatalf("Binding within the cap: %v", err)
				}
			}
			const flood = 20
			for i := 0; i < flood; i++ {
				expectRefused(t, s.tcp)
			}
			if got := tt.counter(s.Stats()); got != flood {
				t.Errorf("refusals counted: got %d, want %d", got, flood)
			}
			if got := strings.Count(logs.String(), "turn tcp connection refused"); got != 1 {
				t.Errorf("refusal log lines: got %d, want 1 for %d refusals:\n%s", got, flood, logs.String())
			}
			if !strings.Contains(logs.String(), tt.reason) {
				t.Errorf("log has no %s:\n%s", tt.reason, logs.String())
			}
			for _, c := range []net.Conn{first, second} {
				if err := turntest.TCPBinding(c, closeGuard); err != nil {
					t.Fatalf("a connection within the cap stopped serving: %v", err)
				}
			}
			if got := s.Stats().TCPConnectionsOpen.Load(); got != 2 {
				t.Errorf("TCPConnectionsOpen: got %d, want 2", got)
			}
			first.Close()
			testenv.Eventually(t, closeGuard, "the closed connection counted out", func() bool { return s.Stats().TCPConnectionsOpen.Load() == 1 })
			if err := turntest.TCPBinding(dialTCP(t, s.tcp), closeGuard); err != nil {
				t.Fatalf("a connection in the freed place: %v", err)
			}
		})
	}
}

// TestTCPCapsReload: Update changes the caps for connections accepted
// afterwards.
func TestTCPCapsReload(t *testing.T) {
	s := startServer(t, func(c *Config) { c.MaxTCPConnectionsPerIP = 1 })
	if err := turntest.TCPBinding(dialTCP(t, s.tcp), closeGuard); err != nil {
		t.Fatal(err)
	}
	expectRefused(t, s.tcp)
	if err := s.Update(Update{Credentials: s.cfg.Credentials, MaxTCPConnectionsPerIP: 2}); err != nil {
		t.Fatal(err)
	}
	if err := turntest.TCPBinding(dialTCP(t, s.tcp), closeGuard); err != nil {
		t.Fatalf("second connection after raising the cap to 2: %v", err)
	}
	expectRefused(t, s.tcp)
	if got := s.Stats().TCPRefusedPerIP.Load(); got != 2 {
		t.Errorf("TCPRefusedPerIP: got %d, want 2", got)
	}
}

// addrConn is one end of a net.Pipe that claims to come from remote, for
// counting clients the loopback interface cannot stand for.
type addrConn struct {
	net.Conn
	remote net.Addr
}

func (c addrConn) RemoteAddr() net.Addr { return c.remote }

// TestTCPCapKeys: the per-address cap counts an IPv4 client by its
// address (mapped or not) and an IPv6 client by its /64, so changing the
// interface identifier does not buy more connections.
func TestTCPCapKeys(t *testing.T) {
	tests := []struct {
		remote string
		want   string // "" admitted, else the refusal
	}{
		{"192.0.2.1:1000", ""},
		{"192.0.2.1:1001", refusedPerIP},
		{"[::ffff:192.0.2.1]:1002", refusedPerIP},
		{"192.0.2.2:1000", ""},
		{"[2001:db8::1]:1000", ""},
		{"[2001:db8::2]:1000", refusedPerIP},
		{"[2001:db8::ffff:1]:1000", refusedPerIP},
		{"[2001:db8:0:1::1]:1000", ""},
	}
	set := newConnSet(connLimits{perIP: 1, firstMsg: time.Hour, noAlloc: time.Hour},
		&Stats{}, &owners{m: map[fiveTuple]string{}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer set.closeAll()
	for _, tt := range tests {
		a, b := net.Pipe()
		defer b.Close()
		c := newGuardConn(addrConn{Conn: a, remote: net.TCPAddrFromAddrPort(netip.MustParseAddrPort(tt.remote))}, nil, set)
		if got := set.add(c); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.remote, got, tt.want)
		}
	}
}

// flakyListener fails its first Accepts with errs, then hands out conns.
type flakyListener struct {
	net.Listener
	mu   sync.Mutex
	errs []error
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.mu.Lock()
	if len(l.errs) > 0 {
		err := l.errs[0]
		l.errs = l.errs[1:]
		l.mu.Unlock()
		return nil, err
	}
	l.mu.Unlock()
	return l.Listener.Accept()
}

// TestAcceptOutlivesErrors: Accept retries what pion's accept loop would
// die of (descriptor limits, aborted connections, anything but a closed
// listener), counts each error, then returns the next connection; after
// Close it returns net.ErrClosed.
func TestAcceptOutlivesErrors(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	errs := []error{
		&net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE},
		&net.OpError{Op: "accept", Net: "tcp", Err: syscall.ENFILE},
		&net.OpError{Op: "accept", Net: "tcp", Err: syscall.ECONNABORTED},
		&net.OpError{Op: "accept", Net: "tcp", Err: syscall.ENOBUFS},
		&net.OpError{Op: "accept", Net: "tcp", Err: syscall.ENOMEM},
		errors.New("something else"),
	}
	stats := &Stats{}
	set := newConnSet(connLimits{firstMsg: time.Hour, noAlloc: time.Hour}, stats,
		&owners{m: map[fiveTuple]string{}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer set.closeAll()
	// No raw listener: nothing to shed with (TestAcceptShedsAtFDLimit).
	l := newGuardListener(&flakyListener{Listener: inner, errs: errs}, nil, nil, set)
	client := dialTCP(t, inner.Addr().String())
	c, err := l.Accept()
	if err != nil {
		t.Fatalf("Accept: %v, want the connection after %d errors", err, len(errs))
	}
	defer c.Close()
	if c.RemoteAddr().String() != client.LocalAddr().String() {
		t.Errorf("accepted %s, want %s", c.RemoteAddr(), client.LocalAddr())
	}
	if got := stats.TCPAcceptErrors.Load(); got != int64(len(errs)) {
		t.Errorf("TCPAcceptErrors: got %d, want %d", got, len(errs))
	}
	done := make(chan error, 1)
	go func() {
		_, err := l.Accept()
		done <- err
	}()
	l.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close: got %v, want net.ErrClosed", err)
		}
	case <-time.After(closeGuard):
		t.Fatal("Accept did not return after Close")
	}
}

// TestAcceptShedsAtFDLimit: at the descriptor limit (EMFILE) a waiting
// connection is accepted with the spare descriptor and closed at once,
// and counted, instead of waiting in the backlog; the next connection is
// served.
func TestAcceptShedsAtFDLimit(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	stats := &Stats{}
	set := newConnSet(connLimits{firstMsg: time.Hour, noAlloc: time.Hour}, stats,
		&owners{m: map[fiveTuple]string{}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer set.closeAll()
	fl := &flakyListener{Listener: inner, errs: []error{&net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}}}
	l := newGuardListener(fl, inner.(*net.TCPListener), nil, set)
	defer l.Close()
	waiting := dialTCP(t, inner.Addr().String())
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			t.Errorf("Accept: %v", err)
		}
		accepted <- c
	}()
	waitClosedByServer(t, waiting)
	if got := stats.TCPRefusedFDLimit.Load(); got != 1 {
		t.Errorf("TCPRefusedFDLimit: got %d, want 1", got)
	}
	next := dialTCP(t, inner.Addr().String())
	select {
	case c := <-accepted:
		if c == nil {
			return
		}
		defer c.Close()
		if c.RemoteAddr().String() != next.LocalAddr().String() {
			t.Errorf("accepted %s, want %s", c.RemoteAddr(), next.LocalAddr())
		}
	case <-time.After(closeGuard):
		t.Fatal("the connection after the shed one was not accepted")
	}
}
