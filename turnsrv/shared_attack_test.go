package turnsrv

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	"github.com/pion/turn/v4"

	"github.com/icebox-project/icebox/internal/testenv"
	"github.com/icebox-project/icebox/internal/turntest"
)

// Attacks on the listener TURN shares with HTTP, each a door a client on
// the open internet could try; every test fails if its door is open.

// attackServer runs a TURN server whose only listener shares HTTP
// (network "tls" or "tcp"; conf nil: a self-signed certificate offering
// stun.turn, h2 and http/1.1) with FirstMessageTimeout 1 s, and an
// http.Server on its HTTPListener that answers each request with
// "METHOD path proto body" and reports that line on the returned channel.
func attackServer(t *testing.T, network string, conf *tls.Config, mod func(*Config)) (*testServer, string, <-chan string) {
	t.Helper()
	if conf == nil {
		conf = selfSigned(t)
		conf.NextProtos = []string{ALPNTURN, "h2", "http/1.1"}
	}
	s := startServer(t, func(c *Config) {
		c.Listeners = []Listener{{Network: network, Addr: "127.0.0.1:0", TLS: conf, ShareHTTP: true}}
		c.FirstMessageTimeout = time.Second
		if mod != nil {
			mod(c)
		}
	})
	seen := make(chan string, 100)
	hs := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			line := fmt.Sprintf("%s %s %s %s", r.Method, r.URL.Path, r.Proto, body)
			select {
			case seen <- line:
			default:
				t.Errorf("request %q not recorded", line)
			}
			io.WriteString(w, line)
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	done := make(chan error, 1)
	go func() { done <- hs.Serve(s.HTTPListener()) }()
	t.Cleanup(func() {
		hs.Close()
		<-done
	})
	return s, s.Addrs()[0].String(), seen
}

// noRequest fails the test if the web server has handled a request.
func noRequest(t *testing.T, seen <-chan string) {
	t.Helper()
	select {
	case r := <-seen:
		t.Errorf("the web server handled %q", r)
	default:
	}
}

// tlsClient completes a TLS handshake on a new connection to addr,
// offering alpn (nil: no ALPN).
func tlsClient(t *testing.T, addr string, alpn []string) *tls.Conn {
	t.Helper()
	c := tls.Client(dialTCP(t, addr), &tls.Config{InsecureSkipVerify: true, NextProtos: alpn}) //nolint:gosec // the test's own certificate.
	_ = c.SetDeadline(time.Now().Add(closeGuard))
	if err := c.Handshake(); err != nil {
		t.Fatalf("TLS handshake offering %q: %v", alpn, err)
	}
	_ = c.SetDeadline(time.Time{})
	t.Cleanup(func() { c.Close() })
	return c
}

// readUntilClosed reads c until the server closes it and returns all it
// sent; it fails the test if the server keeps it open past closeGuard.
func readUntilClosed(t *testing.T, c net.Conn) []byte {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(closeGuard))
	var out bytes.Buffer
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		out.Write(buf[:n])
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection still open after %s; it sent %q", closeGuard, out.Bytes())
		}
		return out.Bytes()
	}
}

// writeBytewise writes b one byte per Write: over TLS one record each.
func writeBytewise(t *testing.T, c net.Conn, b string) {
	t.Helper()
	for i := range len(b) {
		if _, err := c.Write([]byte{b[i]}); err != nil {
			t.Fatalf("write byte %d: %v", i, err)
		}
	}
}

// TestSharedSlowloris: a client that keeps the TLS handshake going one
// byte per record (a ClientHello that claims 60,000 bytes), or sends the
// first bytes of a request one at a time and stalls, holds its place for
// FirstMessageTimeout from accept and no longer: the deadline is not
// renewed by progress. Counted as silent; nothing reaches the web server.
func TestSharedSlowloris(t *testing.T) {
	t.Parallel()
	for _, network := range []string{"tls", "tcp"} {
		t.Run(network, func(t *testing.T) {
			t.Parallel()
			s, addr, seen := attackServer(t, network, nil, nil)
			if network == "tls" {
				// Handshake bytes keep coming, one TLS record of one byte
				// every 20 ms, for far longer than the deadline.
				c := dialTCP(t, addr)
				stop := make(chan struct{})
				defer close(stop)
				go func() {
					// A handshake record holding a ClientHello header:
					// type 1, length 60,000.
					if _, err := c.Write([]byte{0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x00, 0xea, 0x60}); err != nil {
						return
					}
					tick := time.NewTicker(20 * time.Millisecond)
					defer tick.Stop()
					for {
						select {
						case <-stop:
							return
						case <-tick.C:
						}
						if _, err := c.Write([]byte{0x16, 0x03, 0x01, 0x00, 0x01, 0x03}); err != nil {
							return
						}
					}
				}()
				waitClosedByServer(t, c)
				testenv.Eventually(t, closeGuard, "the dribbling handshake counted silent", func() bool { return s.Stats().SharedSilent.Load() == 1 })
			}
			// The first bytes one at a time (over TLS one record each),
			// then nothing.
			var c net.Conn
			if network == "tls" {
				c = tlsClient(t, addr, nil)
			} else {
				c = dialTCP(t, addr)
			}
			writeBytewise(t, c, "GET")
			before := s.Stats().SharedSilent.Load()
			waitClosedByServer(t, c)
			testenv.Eventually(t, closeGuard, "the stalled request line counted silent", func() bool { return s.Stats().SharedSilent.Load() == before+1 })
			noRequest(t, seen)
			testenv.Eventually(t, closeGuard, "nothing pending", func() bool { return pendingCount(s) == 0 })
		})
	}
}

// TestSharedBytesReplayedOnce: the bytes read to tell a connection apart
// reach the web server exactly once and in order, however the client
// splits them (one byte per TLS record or TCP segment, or a whole 16 KB
// record at once), with pipelined requests and a body behind them: no
// request is lost, doubled or smuggled.
func TestSharedBytesReplayedOnce(t *testing.T) {
	t.Parallel()
	pad := strings.Repeat("p", 15000)
	reqs := "POST /one HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nGET " +
		"GET /two HTTP/1.1\r\nHost: x\r\nX-Pad: " + pad + "\r\n\r\n" +
		"GET /three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
	want := []string{"POST /one HTTP/1.1 GET ", "GET /two HTTP/1.1 ", "GET /three HTTP/1.1 "}
	for _, tt := range []struct {
		name, network string
		bytewise      int // how many first bytes go one per write
	}{
		{"tls one byte per record", "tls", 40},
		{"tls in one record", "tls", 0},
		{"tcp one byte per segment", "tcp", 40},
		{"tcp at once", "tcp", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, addr, seen := attackServer(t, tt.network, nil, nil)
			var c net.Conn
			if tt.network == "tls" {
				c = tlsClient(t, addr, nil)
			} else {
				c = dialTCP(t, addr)
			}
			writeBytewise(t, c, reqs[:tt.bytewise])
			if _, err := io.WriteString(c, reqs[tt.bytewise:]); err != nil {
				t.Fatal(err)
			}
			r := bufio.NewReader(c)
			for _, w := range want {
				resp, err := http.ReadResponse(r, nil)
				if err != nil {
					t.Fatalf("reading the response to %q: %v", w, err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(body) != w {
					t.Errorf("response %q, want %q", body, w)
				}
			}
			if rest := readUntilClosed(t, c); len(rest) != 0 {
				t.Errorf("after the last response: %q", rest)
			}
			for _, w := range want {
				if got := <-seen; got != w {
					t.Errorf("handled %q, want %q", got, w)
				}
			}
			noRequest(t, seen)
			if got := s.Stats().SharedHTTP.Load(); got != 1 {
				t.Errorf("SharedHTTP: got %d, want 1", got)
			}
		})
	}
}

// TestSharedProtocolConfusion: a client that names one protocol and
// speaks the other gets nothing from the other. ALPN stun.turn and an
// HTTP request: TURN, which closes it at the first-message deadline, no
// HTTP answer. ALPN h2 or http/1.1 and a STUN Binding: HTTP, which
// answers no STUN. ChannelData first on a connection without allocation:
// TURN drops it and closes the connection at the deadline. An ALPN the
// listener does not serve: no handshake. HTTP/2 by prior knowledge on a
// connection that chose no ALPN (TLS or plain TCP): HTTP/1.1 answers, no
// HTTP/2 frames.
func TestSharedProtocolConfusion(t *testing.T) {
	t.Parallel()
	binding := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	const preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"
	for _, tt := range []struct {
		name, network string
		alpn          []string
		send          string
		// check judges what the server sent before it closed.
		check func(t *testing.T, got []byte, st *Stats)
	}{
		{"stun.turn then HTTP", "tls", []string{ALPNTURN}, "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
			func(t *testing.T, got []byte, st *Stats) {
				if len(got) != 0 {
					t.Errorf("TURN answered an HTTP request with %q", got)
				}
				// "GE" is channel 0x4745 and "T " a length of 21,536 bytes,
				// more than pion/turn reads: closed at the first frame.
				testenv.Eventually(t, closeGuard, "closed at a frame pion/turn cannot read", func() bool { return st.TCPClosedBadFrame.Load() == 1 })
			}},
		{"h2 then STUN", "tls", []string{"h2"}, string(binding.Raw) + "\r\n\r\n", func(t *testing.T, got []byte, _ *Stats) {
			if bytes.Contains(got, binding.TransactionID[:]) {
				t.Errorf("HTTP/2 answered a STUN Binding: %q", got)
			}
		}},
		{"http/1.1 then STUN", "tls", []string{"http/1.1"}, string(binding.Raw) + "\r\n\r\n", func(t *testing.T, got []byte, _ *Stats) {
			if bytes.Contains(got, binding.TransactionID[:]) || !bytes.HasPrefix(got, []byte("HTTP/1.1 400")) {
				t.Errorf("HTTP/1.1 answered a STUN Binding with %q, want 400", got)
			}
		}},
		{"channel data first", "tls", nil, "\x40\x00\x00\x04abcd", func(t *testing.T, got []byte, st *Stats) {
			if len(got) != 0 {
				t.Errorf("ChannelData without allocation got %q", got)
			}
			testenv.Eventually(t, closeGuard, "closed by TURN's first-message deadline", func() bool { return st.TCPClosedFirstMessage.Load() == 1 })
		}},
		{"channel data first on tcp", "tcp", nil, "\x7f\xff\x00\x04abcd", func(t *testing.T, got []byte, st *Stats) {
			if len(got) != 0 {
				t.Errorf("ChannelData without allocation got %q", got)
			}
			testenv.Eventually(t, closeGuard, "closed by TURN's first-message deadline", func() bool { return st.TCPClosedFirstMessage.Load() == 1 })
		}},
		{"h2 prior knowledge without ALPN", "tls", nil, preface, func(t *testing.T, got []byte, _ *Stats) {
			if !bytes.HasPrefix(got, []byte("HTTP/1.1 ")) {
				t.Errorf("HTTP/2 preface without ALPN answered %q, want HTTP/1.1", got)
			}
		}},
		{"h2 prior knowledge on tcp", "tcp", nil, preface, func(t *testing.T, got []byte, _ *Stats) {
			if !bytes.HasPrefix(got, []byte("HTTP/1.1 ")) {
				t.Errorf("HTTP/2 preface on plain TCP answered %q, want HTTP/1.1", got)
			}
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, addr, seen := attackServer(t, tt.network, nil, nil)
			var c net.Conn
			if tt.network == "tls" {
				c = tlsClient(t, addr, tt.alpn)
			} else {
				c = dialTCP(t, addr)
			}
			if _, err := io.WriteString(c, tt.send); err != nil {
				t.Fatal(err)
			}
			tt.check(t, readUntilClosed(t, c), s.Stats())
			if tt.send != preface {
				noRequest(t, seen)
			}
		})
	}

	t.Run("unknown ALPN", func(t *testing.T) {
		t.Parallel()
		s, addr, seen := attackServer(t, "tls", nil, nil)
		c := tls.Client(dialTCP(t, addr), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"xmpp-client"}}) //nolint:gosec // the test's own certificate.
		if err := c.Handshake(); err == nil {
			t.Fatalf("handshake offering only xmpp-client succeeded with %q", c.ConnectionState().NegotiatedProtocol)
		}
		testenv.Eventually(t, closeGuard, "counted as a failed handshake", func() bool { return s.Stats().SharedTLSFailed.Load() == 1 })
		noRequest(t, seen)
	})
}

// TestSharedKeepAliveThenSTUN: a connection told apart as HTTP stays
// HTTP: STUN sent after a served request is a bad request, never a STUN
// answer, whether the connection chose HTTP by ALPN or by its first
// bytes.
func TestSharedKeepAliveThenSTUN(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name, network string
		alpn          []string
	}{
		{"alpn http/1.1", "tls", []string{"http/1.1"}},
		{"tls first bytes", "tls", nil},
		{"tcp", "tcp", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, addr, seen := attackServer(t, tt.network, nil, nil)
			var c net.Conn
			if tt.network == "tls" {
				c = tlsClient(t, addr, tt.alpn)
			} else {
				c = dialTCP(t, addr)
			}
			io.WriteString(c, "GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
			r := bufio.NewReader(c)
			resp, err := http.ReadResponse(r, nil)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			<-seen
			binding := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
			// The blank line ends what HTTP reads as a request head.
			if _, err := c.Write(append(binding.Raw, "\r\n\r\n"...)); err != nil {
				t.Fatal(err)
			}
			rest, _ := io.ReadAll(r)
			if bytes.Contains(rest, binding.TransactionID[:]) || !bytes.HasPrefix(rest, []byte("HTTP/1.1 400")) {
				t.Errorf("STUN after an HTTP request got %q, want 400", rest)
			}
			if s.Stats().SharedTURN.Load() != 0 {
				t.Error("the connection reached TURN")
			}
			noRequest(t, seen)
		})
	}
}

// TestSharedHalfClose: a client that shuts down its sending side while
// the connection is being told apart is closed and counted silent, and
// one that half-closes after a whole HTTP request or STUN message still
// gets its answer; nothing is left pending.
func TestSharedHalfClose(t *testing.T) {
	t.Parallel()
	s, addr, seen := attackServer(t, "tcp", nil, nil)
	half := func(send string) *net.TCPConn {
		c := dialTCP(t, addr).(*net.TCPConn)
		if _, err := io.WriteString(c, send); err != nil {
			t.Fatal(err)
		}
		if err := c.CloseWrite(); err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := half("GE")
	if got := readUntilClosed(t, c); len(got) != 0 {
		t.Errorf("a half request got %q", got)
	}
	testenv.Eventually(t, closeGuard, "counted silent", func() bool { return s.Stats().SharedSilent.Load() == 1 })

	c = half("GET /h HTTP/1.1\r\nHost: x\r\n\r\n")
	if got := readUntilClosed(t, c); !bytes.HasPrefix(got, []byte("HTTP/1.1 200")) || !bytes.HasSuffix(got, []byte("GET /h HTTP/1.1 ")) {
		t.Errorf("a request then half-close got %q", got)
	}
	<-seen

	binding := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	c = half(string(binding.Raw))
	got := readUntilClosed(t, c)
	m := &stun.Message{Raw: got}
	if err := m.Decode(); err != nil || m.Type != stun.BindingSuccess || m.TransactionID != binding.TransactionID {
		t.Errorf("a Binding then half-close got %q (%v)", got, err)
	}

	testenv.Eventually(t, closeGuard, "nothing pending, no TURN connection open", func() bool {
		return pendingCount(s) == 0 && s.Stats().TCPConnectionsOpen.Load() == 0
	})
}

// TestSharedNoLeaks: connections that die at every step of being told
// apart (reset at once, mid-handshake, after it, after a few first
// bytes, after choosing HTTP or TURN by ALPN) leave no goroutine and no
// descriptor behind.
func TestSharedNoLeaks(t *testing.T) {
	if _, err := os.Stat("/proc/self/fd"); err != nil {
		t.Skip("no /proc/self/fd to count descriptors")
	}
	s, addr, seen := attackServer(t, "tls", nil, func(c *Config) { c.FirstMessageTimeout = time.Hour })
	// Warm up: the web server's and TLS's lazily started parts.
	if got := get(t, addr, []string{"http/1.1"}); !strings.HasPrefix(got, "GET /") {
		t.Fatalf("warm-up GET: %q", got)
	}
	<-seen
	fds := func() int {
		ents, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(ents)
	}
	settled := func() bool {
		return pendingCount(s) == 0 && s.Stats().TCPConnectionsOpen.Load() == 0
	}
	testenv.Eventually(t, closeGuard, "the warm-up settled", settled)
	goroutines, descriptors := runtime.NumGoroutine(), fds()

	reset := func(c net.Conn) {
		for {
			u, ok := c.(interface{ NetConn() net.Conn })
			if !ok {
				break
			}
			c = u.NetConn()
		}
		_ = c.(*net.TCPConn).SetLinger(0)
		c.Close()
	}
	deaths := []func(){
		func() { reset(dialTCP(t, addr)) },
		func() {
			c := dialTCP(t, addr)
			c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03})
			reset(c)
		},
		func() { reset(tlsClient(t, addr, nil)) },
		func() { tlsClient(t, addr, nil).Close() },
		func() {
			c := tlsClient(t, addr, nil)
			io.WriteString(c, "GE")
			reset(c)
		},
		func() { reset(tlsClient(t, addr, []string{"http/1.1"})) },
		func() { reset(tlsClient(t, addr, []string{"h2"})) },
		func() { reset(tlsClient(t, addr, []string{ALPNTURN})) },
		func() {
			c := tlsClient(t, addr, nil)
			c.Write(stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw[:12])
			reset(c)
		},
	}
	var wg sync.WaitGroup
	for range 5 {
		for _, die := range deaths {
			wg.Go(die)
		}
	}
	wg.Wait()
	testenv.Eventually(t, closeGuard, "every connection gone", settled)
	testenv.Eventually(t, closeGuard, "goroutines back to the baseline", func() bool { return runtime.NumGoroutine() <= goroutines })
	testenv.Eventually(t, closeGuard, "descriptors back to the baseline", func() bool { return fds() <= descriptors })
	noRequest(t, seen)
}

// TestSharedCertificateReload: a certificate changed while connections
// are open (GetCertificate answers the new one) is served to new
// connections, and the open ones, HTTP keep-alive and a TURN
// allocation, carry on under the old one.
func TestSharedCertificateReload(t *testing.T) {
	t.Parallel()
	first, second := selfSigned(t).Certificates[0], selfSigned(t).Certificates[0]
	var current atomic.Pointer[tls.Certificate]
	current.Store(&first)
	conf := &tls.Config{
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return current.Load(), nil },
		NextProtos:     []string{ALPNTURN, "h2", "http/1.1"},
	}
	_, addr, seen := attackServer(t, "tls", conf, func(c *Config) { c.NoAllocationTimeout = time.Hour })
	web := tlsClient(t, addr, []string{"http/1.1"})
	r := bufio.NewReader(web)
	getOn := func() {
		t.Helper()
		io.WriteString(web, "GET /kept HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(r, nil)
		if err != nil {
			t.Fatalf("GET on the open connection: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		<-seen
	}
	getOn()
	client := newClientOn(t, turn.NewSTUNConn(tlsClient(t, addr, []string{ALPNTURN})), addr, "static", "static-password")
	relay, err := client.Allocate()
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	defer relay.Close()

	current.Store(&second)
	fresh := tlsClient(t, addr, nil)
	if !bytes.Equal(fresh.ConnectionState().PeerCertificates[0].Raw, second.Certificate[0]) {
		t.Error("a new connection did not get the new certificate")
	}
	if !bytes.Equal(web.ConnectionState().PeerCertificates[0].Raw, first.Certificate[0]) {
		t.Error("the open connection's certificate changed")
	}
	getOn()
	if err := turntest.Echo(relay, turntest.UDPEcho(t)); err != nil {
		t.Errorf("the allocation made under the old certificate: %v", err)
	}
}

// newRawSessionOn is newRawSession on an open stream connection (TLS:
// the server answers each request in one record, read whole).
func newRawSessionOn(t *testing.T, c net.Conn, username, password string) *rawSession {
	t.Helper()
	challenge := roundTrip(t, c, stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), udpTransport, stun.Fingerprint))
	var nonce stun.Nonce
	if err := nonce.GetFrom(challenge); err != nil {
		t.Fatalf("no nonce in challenge: %v", err)
	}
	return &rawSession{t: t, c: c, username: username, realm: realm, nonce: nonce.String(), key: LongTermKey(username, realm, password)}
}

// TestSharedTURNPeerFilter: TURN on the shared port obeys the peer filter
// like every other listener: with the recommended deny list, permissions
// and channels to the server's own listeners (the shared port itself and
// the UDP one), to private, loopback, shared, link-local (metadata) and
// "this network" addresses are refused with 403 and nothing is
// installed; another allocation's relayed address is allowed, and a Send
// indication to the shared port under that permission is dropped. The
// relay range spans every port, the shared one too, so only its being
// one of the server's listeners keeps it out.
func TestSharedTURNPeerFilter(t *testing.T) {
	t.Parallel()
	conf := selfSigned(t)
	conf.NextProtos = []string{ALPNTURN, "h2", "http/1.1"}
	s := startServer(t, func(c *Config) {
		c.Listeners = []Listener{{Network: "udp", Addr: "127.0.0.1:0"}, {Network: "tls", Addr: "127.0.0.1:0", TLS: conf, ShareHTTP: true}}
		c.DenyPeers, c.AllowPeers = recommended(), nil
		c.RelayMinPort, c.RelayMaxPort = 1024, 65535
	})
	udpAddr, sharedAddr := s.Addrs()[0].String(), s.Addrs()[1].String()
	user, pass, _ := s.cfg.Credentials.Mint("attacker", time.Now())
	sess := newRawSessionOn(t, tlsClient(t, sharedAddr, []string{ALPNTURN}), user, pass)
	if code := sess.request(stun.MethodAllocate, udpTransport); code != 0 {
		t.Fatalf("Allocate over the shared port: %d", code)
	}
	for i, target := range []string{sharedAddr, udpAddr, "127.0.0.2:8080", "10.1.2.3:3478", "172.16.0.1:22",
		"192.168.1.1:80", "100.64.0.1:53", "169.254.169.254:80", "0.0.0.1:9"} {
		ap := netip.MustParseAddrPort(target)
		if got := sess.request(stun.MethodCreatePermission, peerAddr(ap)); got != 403 {
			t.Errorf("CreatePermission to %s: got %d, want 403", target, got)
		}
		if got := sess.request(stun.MethodChannelBind, peerAddr(ap), channelNumber(0x4000+uint16(i))); got != 403 {
			t.Errorf("ChannelBind to %s: got %d, want 403", target, got)
		}
	}
	if got := s.Stats().PermissionsActive.Load(); got != 0 {
		t.Errorf("%d permissions installed after refusals", got)
	}
	u2, p2, _ := s.cfg.Credentials.Mint("friend", time.Now())
	friend := turntest.MustAllocate(t, udpAddr, u2, p2)
	defer friend.Close()
	if got := sess.request(stun.MethodCreatePermission, peerAddr(friend.Conn.LocalAddr().(*net.UDPAddr).AddrPort())); got != 0 {
		t.Fatalf("CreatePermission to another allocation's relayed address: got %d, want 0", got)
	}
	inner := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), udpTransport, stun.Fingerprint).Raw
	if _, err := sess.c.Write(sendIndication(netip.MustParseAddrPort(sharedAddr), inner)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, closeGuard, "the Send to the shared port dropped", func() bool { return s.Stats().DroppedPeerDenied.Load() == 1 })
}

// TestSharedLogsKeepSecrets: at debug level, with allocations by minted
// and static credentials, a wrong password, failed handshakes and
// garbage on the shared port, the logs hold no secret, password or key.
func TestSharedLogsKeepSecrets(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	s, addr, seen := attackServer(t, "tls", nil, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	user, pass, _ := s.cfg.Credentials.Mint("someone", time.Now())
	for _, up := range [][2]string{{user, pass}, {"static", "static-password"}} {
		client := newClientOn(t, turn.NewSTUNConn(tlsClient(t, addr, []string{ALPNTURN})), addr, up[0], up[1])
		relay, err := client.Allocate()
		if err != nil {
			t.Fatalf("Allocate as %s: %v", up[0], err)
		}
		relay.Close()
	}
	bad := newClientOn(t, turn.NewSTUNConn(tlsClient(t, addr, nil)), addr, "static", "wrong-"+pass)
	if _, err := bad.Allocate(); err == nil {
		t.Fatal("Allocate with a wrong password succeeded")
	}
	c := dialTCP(t, addr)
	c.Write([]byte("\x16\x03\x01\x00\x05" + secretA))
	waitClosedByServer(t, c)
	g := tlsClient(t, addr, nil)
	io.WriteString(g, "\xff"+secretB)
	waitClosedByServer(t, g)
	if got := get(t, addr, []string{"http/1.1"}); !strings.HasPrefix(got, "GET /") {
		t.Fatalf("GET: %q", got)
	}
	<-seen
	testenv.Eventually(t, closeGuard, "the refusals counted", func() bool {
		st := s.Stats()
		return st.SharedTLSFailed.Load() == 1 && st.SharedNeither.Load() == 1
	})
	out := logs.String()
	if !strings.Contains(out, "shared listener") {
		t.Fatalf("nothing logged about the shared listener:\n%s", out)
	}
	key := LongTermKey("static", realm, "static-password")
	for _, secret := range []string{secretA, secretB, "static-password", pass, string(key), fmt.Sprintf("%x", key)} {
		if strings.Contains(out, secret) {
			t.Errorf("the log holds the secret %q", secret)
		}
	}
}

// TestSharedRenegotiation: a client that asks to renegotiate TLS 1.2
// after the handshake (openssl s_client's R command) is refused and
// closed before it is told apart; whatever it sends afterwards reaches
// neither HTTP nor TURN.
func TestSharedRenegotiation(t *testing.T) {
	t.Parallel()
	openssl := testenv.Tool(t, "apt-get install openssl", "openssl")
	s, addr, seen := attackServer(t, "tls", nil, nil)
	cmd := exec.Command(openssl, "s_client", "-connect", addr, "-tls1_2", "-no_ign_eof")
	cmd.Stdin = strings.NewReader("R\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(closeGuard):
		cmd.Process.Kill()
		<-done
		t.Fatalf("openssl still connected after %s:\n%s", closeGuard, out.String())
	}
	if !strings.Contains(out.String(), "RENEGOTIATING") {
		t.Fatalf("openssl did not try to renegotiate:\n%s", out.String())
	}
	testenv.Eventually(t, closeGuard, "closed before told apart", func() bool { return pendingCount(s) == 0 })
	st := s.Stats()
	if st.SharedHTTP.Load() != 0 || st.SharedTURN.Load() != 0 {
		t.Errorf("after renegotiation: SharedHTTP %d, SharedTURN %d; want 0", st.SharedHTTP.Load(), st.SharedTURN.Load())
	}
	noRequest(t, seen)
}

// TestSharedLogLinesBounded: what a client chooses cannot blow up the
// shared listener's log: a handshake offering 200 unserved ALPN names of
// 255 bytes each (whose error repeats them all) is logged in a line of
// bounded length.
func TestSharedLogLinesBounded(t *testing.T) {
	t.Parallel()
	var logs syncBuffer
	s, addr, _ := attackServer(t, "tls", nil, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	var protos []string
	for i := range 200 {
		protos = append(protos, fmt.Sprintf("%03d", i)+strings.Repeat("x", 252))
	}
	c := tls.Client(dialTCP(t, addr), &tls.Config{InsecureSkipVerify: true, NextProtos: protos}) //nolint:gosec // the test's own certificate.
	if err := c.Handshake(); err == nil {
		t.Fatal("a handshake offering only unserved protocols succeeded")
	}
	testenv.Eventually(t, closeGuard, "counted as a failed handshake", func() bool { return s.Stats().SharedTLSFailed.Load() == 1 })
	var line string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, "shared listener") {
			line = l
		}
	}
	if !strings.Contains(line, "unsupported application protocols") {
		t.Fatalf("no log line of the failed handshake:\n%s", logs.String())
	}
	if len(line) > 1024 {
		t.Errorf("a log line of %d bytes for one handshake", len(line))
	}
}
