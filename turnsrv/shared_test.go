package turnsrv

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pion/turn/v4"

	"github.com/icebox-project/icebox/internal/testenv"
	"github.com/icebox-project/icebox/internal/turntest"
)

type tlsStateKey struct{}

// sharedServer runs a TURN server whose only listener shares HTTP
// (network "tls" or "tcp") and an http.Server on its HTTPListener whose
// handler answers "proto=<proto> tls=<bool>".
func sharedServer(t *testing.T, network string, mod func(*Config)) (*testServer, string) {
	t.Helper()
	conf := selfSigned(t)
	conf.NextProtos = []string{ALPNTURN, "h2", "http/1.1"}
	s := startServer(t, func(c *Config) {
		c.Listeners = []Listener{{Network: network, Addr: "127.0.0.1:0", TLS: conf, ShareHTTP: true}}
		c.FirstMessageTimeout = time.Second
		if mod != nil {
			mod(c)
		}
	})
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			secure := r.TLS != nil || r.Context().Value(tlsStateKey{}) != nil
			fmt.Fprintf(w, "proto=%s tls=%t", r.Proto, secure)
		}),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if st := TLSConnectionState(c); st != nil {
				return context.WithValue(ctx, tlsStateKey{}, st)
			}
			return ctx
		},
		ReadHeaderTimeout: 5 * time.Second,
	}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(s.HTTPListener()) }()
	t.Cleanup(func() {
		hs.Close()
		if err := <-done; err != http.ErrServerClosed && !errors.Is(err, net.ErrClosed) {
			t.Errorf("http Serve: %v", err)
		}
	})
	return s, s.Addrs()[0].String()
}

// get fetches / with an HTTP client offering alpn (nil: plain HTTP).
func get(t *testing.T, addr string, alpn []string) string {
	t.Helper()
	tr := &http.Transport{}
	url := "http://" + addr + "/"
	if alpn != nil {
		url = "https://" + addr + "/"
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true, NextProtos: alpn} //nolint:gosec // the test's own certificate.
		tr.ForceAttemptHTTP2 = slices.Contains(alpn, "h2")
	}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: closeGuard}).Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// tlsAllocate allocates over TLS offering alpn (nil: no ALPN).
func tlsAllocate(t *testing.T, addr string, alpn []string) {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: alpn}) //nolint:gosec // the test's own certificate.
	if err != nil {
		t.Fatal(err)
	}
	if alpn != nil && c.ConnectionState().NegotiatedProtocol != ALPNTURN {
		t.Errorf("negotiated %q, want %q", c.ConnectionState().NegotiatedProtocol, ALPNTURN)
	}
	allocateOn(t, c, addr)
}

func allocateOn(t *testing.T, c net.Conn, addr string) {
	t.Helper()
	client := newClientOn(t, turn.NewSTUNConn(c), addr, "static", "static-password")
	relay, err := client.Allocate()
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	echo := turntest.UDPEcho(t)
	msg := []byte("through the shared port")
	buf := make([]byte, 100)
	for try := 0; ; try++ {
		if _, err := relay.WriteTo(msg, echo); err != nil {
			t.Fatal(err)
		}
		_ = relay.SetReadDeadline(time.Now().Add(time.Second))
		if n, _, err := relay.ReadFrom(buf); err == nil && string(buf[:n]) == string(msg) {
			break
		}
		if try == 5 {
			t.Fatal("no echo through the relay")
		}
	}
	relay.Close()
}

// TestSharedTLSListener: one TLS port serves HTTPS (HTTP/2 and HTTP/1.1
// by ALPN, and HTTP/1.1 without ALPN, which still reads as TLS to the
// handler) and TURN over TLS (by ALPN stun.turn, and without ALPN by its
// first bytes), each counted.
func TestSharedTLSListener(t *testing.T) {
	s, addr := sharedServer(t, "tls", nil)
	for _, tt := range []struct {
		name string
		alpn []string
		want string
	}{
		{"h2", []string{"h2", "http/1.1"}, "proto=HTTP/2.0 tls=true"},
		{"http/1.1", []string{"http/1.1"}, "proto=HTTP/1.1 tls=true"},
	} {
		if got := get(t, addr, tt.alpn); got != tt.want {
			t.Errorf("GET with ALPN %s: got %q, want %q", tt.name, got, tt.want)
		}
	}
	// No ALPN: told apart by the request line.
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the test's own certificate.
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	c.Close()
	if want := "proto=HTTP/1.1 tls=true"; string(body) != want {
		t.Errorf("GET without ALPN: got %q, want %q", body, want)
	}

	tlsAllocate(t, addr, []string{ALPNTURN})
	tlsAllocate(t, addr, nil)
	// coturn's client offers HTTP/1.1 too: TURN wins.
	tlsAllocate(t, addr, []string{"http/1.1", ALPNTURN})
	st := s.Stats()
	if got, want := st.SharedHTTP.Load(), int64(3); got != want {
		t.Errorf("SharedHTTP: got %d, want %d", got, want)
	}
	if got, want := st.SharedTURN.Load(), int64(3); got != want {
		t.Errorf("SharedTURN: got %d, want %d", got, want)
	}
}

// TestSharedGarbage: clients that send garbage after the TLS handshake,
// garbage instead of a handshake, or nothing are closed, each counted,
// while a TURN client and HTTPS on the same port carry on.
func TestSharedGarbage(t *testing.T) {
	s, addr := sharedServer(t, "tls", nil)
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the test's own certificate.
	if err != nil {
		t.Fatal(err)
	}
	client := newClientOn(t, turn.NewSTUNConn(c), addr, "static", "static-password")
	relay, err := client.Allocate()
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	defer relay.Close()

	st := s.Stats()
	for _, tt := range []struct {
		name    string
		tls     bool
		send    string
		counter func() int64
	}{
		{"garbage after the handshake", true, "\xff\xfe\xfd\xfc garbage", st.SharedNeither.Load},
		{"TLS inside TLS", true, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc", st.SharedNeither.Load},
		// 'g' is 0x67: ChannelData to TURN, whose length ("t ", 29,728
		// bytes) is more than pion/turn reads: closed at once.
		{"lower-case method", true, "get / HTTP/1.1\r\n", st.TCPClosedBadFrame.Load},
		{"garbage instead of a handshake", false, "\xff\xff\xff\xff\xff\xff\xff\xff", st.SharedTLSFailed.Load},
		{"silent after the handshake", true, "", st.SharedSilent.Load},
		{"silent", false, "", st.SharedSilent.Load},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := tt.counter()
			var conn net.Conn = dialTCP(t, addr)
			if tt.tls {
				tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // the test's own certificate.
				if err := tc.Handshake(); err != nil {
					t.Fatal(err)
				}
				conn = tc
			}
			if tt.send != "" {
				if _, err := io.WriteString(conn, tt.send); err != nil {
					t.Fatal(err)
				}
			}
			waitClosedByServer(t, conn)
			testenv.Eventually(t, closeGuard, "the close counted", func() bool { return tt.counter() == before+1 })
		})
	}
	// The TURN client and HTTPS are unharmed.
	if err := client.CreatePermission(turntest.UDPEcho(t)); err != nil {
		t.Errorf("CreatePermission after the garbage: %v", err)
	}
	if got := get(t, addr, []string{"http/1.1"}); got != "proto=HTTP/1.1 tls=true" {
		t.Errorf("GET after the garbage: %q", got)
	}
	if got := st.SharedTURN.Load(); got != 2 { // the client and the lower-case method
		t.Errorf("SharedTURN: got %d, want 2", got)
	}
}

// TestSharedPlainTCP: tcp:// TURN and plain HTTP on one port; a TLS
// client hello there is neither.
func TestSharedPlainTCP(t *testing.T) {
	s, addr := sharedServer(t, "tcp", nil)
	if got := get(t, addr, nil); got != "proto=HTTP/1.1 tls=false" {
		t.Errorf("GET: got %q", got)
	}
	allocateOn(t, dialTCP(t, addr), addr)
	c := dialTCP(t, addr)
	if _, err := c.Write([]byte{0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1}); err != nil {
		t.Fatal(err)
	}
	waitClosedByServer(t, c)
	st := s.Stats()
	testenv.Eventually(t, closeGuard, "counted", func() bool { return st.SharedNeither.Load() == 1 })
	if st.SharedHTTP.Load() != 1 || st.SharedTURN.Load() != 1 {
		t.Errorf("SharedHTTP %d, SharedTURN %d: want 1 and 1", st.SharedHTTP.Load(), st.SharedTURN.Load())
	}
}

// TestSharedPendingCaps: connections not yet told apart count under the
// per-address cap, so one address cannot hold the port with silent
// connections; a refused one is counted, and the slots come back when
// they close.
func TestSharedPendingCaps(t *testing.T) {
	s, addr := sharedServer(t, "tls", func(c *Config) {
		c.MaxTCPConnectionsPerIP = 2
		c.FirstMessageTimeout = time.Hour // they stay until closed
	})
	a, b := dialTCP(t, addr), dialTCP(t, addr)
	testenv.Eventually(t, closeGuard, "two pending", func() bool { return pendingCount(s) == 2 })
	expectRefused(t, addr)
	if got := s.Stats().TCPRefusedPerIP.Load(); got != 1 {
		t.Errorf("TCPRefusedPerIP: got %d, want 1", got)
	}
	a.Close()
	b.Close()
	testenv.Eventually(t, closeGuard, "none pending", func() bool { return pendingCount(s) == 0 })
	if got := get(t, addr, []string{"http/1.1"}); !strings.HasPrefix(got, "proto=HTTP/1.1") {
		t.Errorf("GET after the slots came back: %q", got)
	}
}

func pendingCount(s *testServer) int {
	return s.shared.pending.Len()
}

// TestSharedHTTPClosed: closing the HTTP side (the web server shutting
// down) leaves TURN on the port serving; HTTP clients are closed.
func TestSharedHTTPClosed(t *testing.T) {
	s, addr := sharedServer(t, "tls", nil)
	if err := s.HTTPListener().Close(); err != nil {
		t.Fatal(err)
	}
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}}) //nolint:gosec // the test's own certificate.
	if err != nil {
		t.Fatal(err)
	}
	waitClosedByServer(t, c)
	tlsAllocate(t, addr, nil)
}

// TestOneSharedListener: two listeners sharing HTTP is an error.
func TestOneSharedListener(t *testing.T) {
	creds, _ := NewCredentials(realm, []string{secretA}, time.Hour, nil)
	_, err := New(Config{Realm: realm, Credentials: creds, Listeners: []Listener{
		{Network: "tcp", Addr: "127.0.0.1:0", ShareHTTP: true}, {Network: "tcp", Addr: "127.0.0.1:0", ShareHTTP: true},
	}})
	if err == nil || !strings.Contains(err.Error(), ErrSharedTwice.Error()) {
		t.Fatalf("got %v, want %v", err, ErrSharedTwice)
	}
}

// TestClassify checks the first-bytes classifier's edges.
func TestClassify(t *testing.T) {
	stunHdr := []byte{0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42}
	for _, tt := range []struct {
		in   string
		want streamKind
	}{
		{"", kindMore},
		{"G", kindMore},
		{"GET", kindMore},
		{"GET ", kindHTTP},
		{"OPTIONS ", kindHTTP},
		{"PRI * HTTP/2.0", kindHTTP},
		{"ABCDEFGH", kindTURN}, // no method is 8 letters: ChannelData
		{"G\x00\x00\x04", kindTURN},
		{"@\x00\x00\x04", kindTURN},
		{"\x7f\xff", kindTURN},
		{string(stunHdr[:7]), kindMore},
		{string(stunHdr), kindTURN},
		{"\x00\x01\x00\x00\x00\x00\x00\x00", kindNeither},
		{"\x16\x03\x01\x02\x00\x01\x00\x01", kindNeither},
		{"\x80", kindNeither},
		{"get ", kindTURN}, // 'g' is 0x67: ChannelData, not a method
	} {
		if got := classify([]byte(tt.in)); got != tt.want {
			t.Errorf("classify(%q): got %s, want %s", tt.in, got, tt.want)
		}
	}
}

// FuzzClassify: the classifiers never need more than classifyBytes
// bytes, adding bytes never changes a decision made, and no stream is
// misrouted: ICE-TCP is exactly a framed Binding request header (length
// 20 to 512, a multiple of 4, the message length agreeing, the cookie in
// bytes 6 to 9), TURN has the cookie in bytes 4 to 7 or a ChannelData
// first byte, HTTP an upper-case method and a space, and before TLS a
// TLS record never reads as ICE-TCP.
func FuzzClassify(f *testing.F) {
	check := iceCheck(f)
	for _, s := range []string{"GET / HTTP/1.1", "\x00\x01\x00\x00\x21\x12\xa4\x42", "\x40\x00\x00\x04", "PRI * HTTP/2.0", "\x16\x03\x01",
		string(check), string(check[2:]), "\x00\x14\x00\x01\x00\x00\x21\x12\xa4\x42"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for name, kindOf := range map[string]func([]byte) streamKind{"classify": classify, "classifyRaw": classifyRaw} {
			k := kindOf(b)
			if len(b) >= classifyBytes && k == kindMore {
				t.Fatalf("%s(%q) wants more after %d bytes", name, b, len(b))
			}
			for i := 0; i <= len(b); i++ {
				if first := kindOf(b[:i]); first != kindMore {
					if k != first {
						t.Fatalf("%s(%q) = %s but its first %d bytes gave %s", name, b, k, i, first)
					}
					break
				}
			}
			if k == kindMore {
				continue
			}
			isICE := len(b) >= 10 && b[2] == 0 && b[3] == 1 && string(b[6:10]) == string(cookie) &&
				func(n int) bool {
					return n >= 20 && n <= 512 && n%4 == 0 && int(binary.BigEndian.Uint16(b[4:])) == n-20
				}(int(binary.BigEndian.Uint16(b)))
			if (k == kindICE) != isICE {
				t.Fatalf("%s(%x) = %s; a framed Binding request: %v", name, b, k, isICE)
			}
			if name == "classifyRaw" {
				if k != kindICE && k != kindTLS {
					t.Fatalf("classifyRaw(%x) = %s", b, k)
				}
				continue
			}
			switch k {
			case kindTURN:
				if b[0]&0xC0 == 0 && (len(b) < 8 || string(b[4:8]) != string(cookie)) || b[0]&0xC0 != 0 && b[0]&0xC0 != 0x40 {
					t.Fatalf("classify(%x) = turn without the cookie or ChannelData", b)
				}
			case kindHTTP:
				sp := bytes.IndexByte(b, ' ')
				if sp < 1 || sp >= httpMethodBytes || strings.Trim(string(b[:sp]), "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
					t.Fatalf("classify(%q) = http without a method", b)
				}
			}
		}
	})
}
