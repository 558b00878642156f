package turnsrv

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v3"

	"github.com/icebox-project/icebox/internal/testenv"
)

// framed is b with its RFC 4571 length in front.
func framed(b []byte) []byte {
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(b))), b...)
}

// iceCheck is a framed ICE connectivity check (RFC 8445 §7.2.2) as a
// browser sends it first on an ICE-TCP connection.
func iceCheck(t testing.TB, setters ...stun.Setter) []byte {
	t.Helper()
	if setters == nil {
		setters = []stun.Setter{stun.NewUsername("sfu1:cli1"), stun.MessageIntegrity("password-of-the-sfu-ufrag"), stun.Fingerprint}
	}
	m, err := stun.Build(append([]stun.Setter{stun.TransactionID, stun.BindingRequest}, setters...)...)
	if err != nil {
		t.Fatal(err)
	}
	return framed(m.Raw)
}

// iceServer is sharedServer with ICE-TCP on, and a channel of the
// connections accepted from ICETCPListener.
func iceServer(t *testing.T, network string, mod func(*Config)) (*testServer, string, <-chan net.Conn) {
	t.Helper()
	s, addr := sharedServer(t, network, func(c *Config) {
		c.Listeners[0].ICETCP = true
		if mod != nil {
			mod(c)
		}
	})
	ln := s.ICETCPListener()
	if ln == nil {
		t.Fatal("no ICETCPListener with ICETCP set")
	}
	if ln.Addr().String() != addr {
		t.Errorf("ICETCPListener address %s, want the shared port %s", ln.Addr(), addr)
	}
	accepted := make(chan net.Conn, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		close(accepted)
		for c := range accepted {
			c.Close()
		}
	})
	return s, addr, accepted
}

// acceptICE waits for the next ICE-TCP connection handed on.
func acceptICE(t *testing.T, accepted <-chan net.Conn) net.Conn {
	t.Helper()
	select {
	case c := <-accepted:
		t.Cleanup(func() { c.Close() })
		return c
	case <-time.After(closeGuard):
		t.Fatal("no ICE-TCP connection handed on")
		return nil
	}
}

// readFull reads len(want) bytes from c and compares them with want.
func readFull(t *testing.T, c net.Conn, want []byte, what string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(closeGuard))
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: got %x, want %x", what, got, want)
	}
}

// TestSharedICETCP: on a shared port over TLS and over plain TCP, a raw
// TCP stream that starts with a framed Binding request reaches
// ICETCPListener with its first frame replayed and later frames whole,
// both ways, while HTTPS and TURN go on on the same port. A client that
// sends a frame that is no WebRTC packet is closed and counted; another
// ICE-TCP client on the port carries on.
func TestSharedICETCP(t *testing.T) {
	for _, network := range []string{"tls", "tcp"} {
		t.Run(network, func(t *testing.T) {
			s, addr, accepted := iceServer(t, network, nil)
			check := iceCheck(t)
			rtp := framed(append([]byte{0x80, 0x60, 0, 1}, make([]byte, 100)...))
			a := dialTCP(t, addr)
			if _, err := a.Write(append(append([]byte{}, check...), rtp...)); err != nil {
				t.Fatal(err)
			}
			srvA := acceptICE(t, accepted)
			readFull(t, srvA, check, "first frame")
			readFull(t, srvA, rtp, "second frame")
			if srvA.LocalAddr().(*net.TCPAddr).Port != s.Addrs()[0].(*net.TCPAddr).Port {
				t.Errorf("local address %s, want the shared port", srvA.LocalAddr())
			}
			answer := framed(append([]byte{0x01, 0x01, 0, 0}, cookie...))
			if _, err := srvA.Write(answer); err != nil {
				t.Fatal(err)
			}
			readFull(t, a, answer, "the server's frame")

			// HTTP and TURN on the same port.
			alpn := []string{"http/1.1"}
			if network == "tcp" {
				alpn = nil
			}
			if got := get(t, addr, alpn); !strings.HasPrefix(got, "proto=HTTP/1.1") {
				t.Errorf("GET: %q", got)
			}
			if network == "tls" {
				tlsAllocate(t, addr, nil)
			} else {
				allocateOn(t, dialTCP(t, addr), addr)
			}

			b := dialTCP(t, addr)
			if _, err := b.Write(iceCheck(t)); err != nil {
				t.Fatal(err)
			}
			srvB := acceptICE(t, accepted)
			readFull(t, srvB, iceCheck(t)[:4], "b's first frame") // length and type
			// Garbage after the first frame: 0xff starts no STUN, DTLS or
			// RTP packet (RFC 7983).
			if _, err := a.Write(framed([]byte{0xff, 1, 2, 3})); err != nil {
				t.Fatal(err)
			}
			_ = srvA.SetReadDeadline(time.Now().Add(closeGuard))
			if _, err := srvA.Read(make([]byte, 100)); err == nil {
				t.Error("a garbage frame read as a frame")
			}
			readUntilClosed(t, a)
			if got := s.Stats().ICETCPClosedBadFrame.Load(); got != 1 {
				t.Errorf("ICETCPClosedBadFrame %d, want 1", got)
			}
			// b is unharmed.
			if _, err := b.Write(rtp); err != nil {
				t.Fatal(err)
			}
			_, _ = io.ReadFull(srvB, make([]byte, len(iceCheck(t))-4))
			readFull(t, srvB, rtp, "b's frame after a's garbage")
			if got := s.Stats().SharedICE.Load(); got != 2 {
				t.Errorf("SharedICE %d, want 2", got)
			}
		})
	}
}

// TestSharedICETCPRefused walks through the doors next to ICE-TCP: each
// connection is closed before anything is handed on, and counted.
func TestSharedICETCPRefused(t *testing.T) {
	t.Run("ICE-TCP off", func(t *testing.T) {
		s, addr := sharedServer(t, "tls", nil)
		if s.ICETCPListener() != nil {
			t.Error("ICETCPListener without ICETCP")
		}
		c := dialTCP(t, addr)
		_, _ = c.Write(iceCheck(t))
		readUntilClosed(t, c)
		if got := s.Stats().SharedTLSFailed.Load(); got != 1 {
			t.Errorf("SharedTLSFailed %d, want 1 (without ICE-TCP a TLS port takes only TLS)", got)
		}
		s2, addr2 := sharedServer(t, "tcp", nil)
		c = dialTCP(t, addr2)
		_, _ = c.Write(iceCheck(t))
		readUntilClosed(t, c)
		if got := s2.Stats().SharedNeither.Load(); got != 1 {
			t.Errorf("plain TCP: SharedNeither %d, want 1", got)
		}
	})
	s, addr, accepted := iceServer(t, "tls", nil)
	for _, tt := range []struct {
		name  string
		conn  func() net.Conn
		bytes []byte
	}{
		{"inside TLS", func() net.Conn { return tlsClient(t, addr, nil) }, iceCheck(t)},
		{"no USERNAME", func() net.Conn { return dialTCP(t, addr) }, iceCheck(t, stun.Fingerprint)},
		{"a Binding response", func() net.Conn { return dialTCP(t, addr) },
			framed(stun.MustBuild(stun.TransactionID, stun.BindingSuccess, stun.NewUsername("a:b")).Raw)},
		{"first frame cut short, then silence", func() net.Conn { return dialTCP(t, addr) }, iceCheck(t)[:30]},
	} {
		t.Run(tt.name, func(t *testing.T) {
			refused := func() int64 {
				return s.Stats().SharedNeither.Load() + s.Stats().SharedSilent.Load() + s.Stats().SharedTLSFailed.Load()
			}
			before := refused()
			c := tt.conn()
			if _, err := c.Write(tt.bytes); err != nil {
				t.Fatal(err)
			}
			readUntilClosed(t, c)
			if got := refused(); got != before+1 {
				t.Errorf("neither, silent or TLS failed: %d, want %d", got, before+1)
			}
		})
	}
	select {
	case c := <-accepted:
		t.Errorf("a connection from %s was handed on", c.RemoteAddr())
	default:
	}
	if got := s.Stats().SharedICE.Load(); got != 0 {
		t.Errorf("SharedICE %d, want 0", got)
	}
}

// TestSharedICETCPCaps: ICE-TCP connections handed on count under the
// per-address cap until closed (a client over it is refused after its
// first frame), and one that sends nothing for ICETCPIdleTimeout gets a
// timeout on its next read (the ICE TCP mux then closes it).
func TestSharedICETCPCaps(t *testing.T) {
	s, addr, accepted := iceServer(t, "tcp", func(c *Config) {
		c.MaxTCPConnectionsPerIP = 2
		c.ICETCPIdleTimeout = 300 * time.Millisecond
	})
	var held []net.Conn
	for range 2 {
		c := dialTCP(t, addr)
		_, _ = c.Write(iceCheck(t))
		held = append(held, acceptICE(t, accepted))
	}
	over := dialTCP(t, addr)
	_, _ = over.Write(iceCheck(t))
	readUntilClosed(t, over)
	if got := s.Stats().TCPRefusedPerIP.Load(); got != 1 {
		t.Errorf("TCPRefusedPerIP %d, want 1", got)
	}
	held[0].Close()
	testenv.Eventually(t, closeGuard, "one place free", func() bool { return s.shared.iceSet.Len() == 1 })
	c := dialTCP(t, addr)
	_, _ = c.Write(iceCheck(t))
	idle := acceptICE(t, accepted)
	_ = idle.SetReadDeadline(time.Now().Add(closeGuard)) // overridden by the idle timeout per frame
	_, _ = io.ReadFull(idle, make([]byte, len(iceCheck(t))))
	_, err := idle.Read(make([]byte, 10))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("read on an idle ICE-TCP connection: %v, want a timeout", err)
	}
}

// TestClassifyRaw: before TLS, only a framed Binding request is ICE-TCP;
// a TLS record and anything else go to the handshake.
func TestClassifyRaw(t *testing.T) {
	check := iceCheck(t)
	for _, tt := range []struct {
		in   []byte
		want streamKind
	}{
		{nil, kindMore},
		{[]byte{0x16}, kindTLS},
		{[]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03}, kindTLS},
		{check[:9], kindMore},
		{check[:10], kindICE},
		{[]byte("GET / HTTP/1.1"), kindTLS},
		{[]byte{0x00, 0x03, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42}, kindTLS}, // bare STUN
		{[]byte{0x02, 0x04}, kindTLS},                                     // a first frame over 512 bytes
		{[]byte{0x00, 0x15}, kindTLS},                                     // not a multiple of 4
	} {
		if got := classifyRaw(tt.in); got != tt.want {
			t.Errorf("classifyRaw(%x): got %s, want %s", tt.in, got, tt.want)
		}
	}
	// A framed Binding request in plain TCP is ICE, and a bare one TURN.
	if got := classify(check); got != kindICE {
		t.Errorf("classify(framed check): %s, want ice", got)
	}
	if got := classify(check[2:]); got != kindTURN {
		t.Errorf("classify(bare check): %s, want turn", got)
	}
}
