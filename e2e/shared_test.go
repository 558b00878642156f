package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/turn/v4"

	"github.com/icebox-project/icebox/config"
	"github.com/icebox-project/icebox/internal/turntest"
	"github.com/icebox-project/icebox/signaling/sigclient"
	"github.com/icebox-project/icebox/signaling/wire"
)

// TestSharedListener: one port (port 0 here, 443 in production) serves
// the page over HTTPS (HTTP/2 and HTTP/1.1), a WSS join, and TURN over
// TLS to pion's client and to coturn's turnutils_uclient -S; a client
// sending garbage after its handshake is closed and the others carry on.
// Then the same with plain HTTP and TURN over TCP on one port.
func TestSharedListener(t *testing.T) {
	lane(t, laneLight)
	const secret = "shared-listener-secret-0123456789"
	share := true
	ca := newTestCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca.issue(t, 7, certFile, keyFile)
	ib := startIcebox(t, func(c *config.Config) {
		c.HTTP.TLS.CertFile, c.HTTP.TLS.KeyFile = certFile, keyFile
		c.TURN.ShareHTTPListen = &share
		c.TURN.Secrets = []string{secret}
		c.TURN.MaxAllocationsPerUser = 20
	})
	addr := ib.HTTPAddr().String()
	_, port, _ := net.SplitHostPort(addr)
	turnAddrs := ib.TURN().Addrs()
	if got := turnAddrs[len(turnAddrs)-1].String(); got != addr {
		t.Fatalf("the last TURN listener is %s, want the HTTPS listener %s", got, addr)
	}
	tlsConf := &tls.Config{RootCAs: ca.pool, ServerName: "localhost"}

	// The page over HTTP/2 and HTTP/1.1; turns: on this port is the last
	// URL, after udp and tcp.
	var rc rtcConfiguration
	for _, h2 := range []bool{true, false} {
		tr := &http.Transport{TLSClientConfig: tlsConf.Clone(), ForceAttemptHTTP2: h2}
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("https://" + addr + "/r/shared-room")
		if err != nil {
			t.Fatalf("GET the page (h2 %t): %v", h2, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		tr.CloseIdleConnections()
		if want := map[bool]int{true: 2, false: 1}[h2]; resp.StatusCode != 200 || resp.ProtoMajor != want || resp.Header.Get("Strict-Transport-Security") == "" {
			t.Fatalf("GET the page (h2 %t): %d %s, HSTS %q", h2, resp.StatusCode, resp.Proto, resp.Header.Get("Strict-Transport-Security"))
		}
		m := iceConfigRe.FindSubmatch(body)
		if m == nil {
			t.Fatal("no ice-config on the page")
		}
		if err := json.Unmarshal(m[1], &rc); err != nil {
			t.Fatal(err)
		}
	}
	turnURLs := rc.ICEServers[len(rc.ICEServers)-1]
	want := "turns:localhost:" + port + "?transport=tcp"
	if urls := turnURLs.URLs; urls[len(urls)-1] != want || !strings.HasPrefix(urls[0], "turn:") || !strings.HasSuffix(urls[0], "?transport=udp") {
		t.Fatalf("TURN URLs %v: want udp first and %s last", urls, want)
	}

	// A WSS join on the same port.
	d := websocket.Dialer{TLSClientConfig: tlsConf.Clone(), HandshakeTimeout: 10 * time.Second}
	wsCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, err := sigclient.Dial(wsCtx, "wss://"+addr+"/ws", sigclient.DialOptions{Origin: "https://" + addr, Dialer: &d})
	if err != nil {
		t.Fatalf("WSS: %v", err)
	}
	defer ws.Close()
	send := func(m wire.Message, want string) {
		t.Helper()
		if err := ws.Send(m); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if got, err := ws.Receive(ctx); err != nil || got.MessageType() != want {
			t.Fatalf("WSS %s: got %#v %v, want %s", m.MessageType(), got, err, want)
		}
	}
	send(&wire.Join{Room: "shared-room", Name: "alice"}, wire.TypeWelcome)

	// pion's TURN client over TLS with the page's credential.
	echo := turntest.UDPEcho(t)
	pionOverTLS := func() {
		t.Helper()
		conn, err := tls.Dial("tcp", addr, tlsConf)
		if err != nil {
			t.Fatal(err)
		}
		relayOverStream(t, "TLS", conn, addr, turnURLs.Username, turnURLs.Credential, echo)
	}
	pionOverTLS()

	// coturn's client over TLS on the same port.
	uclientOverTCP(t, secret, port, "-S")

	// Garbage after a handshake is closed; everyone else carries on.
	g, err := tls.Dial("tcp", addr, tlsConf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Write([]byte("\xff\x00garbage\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = g.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := g.Read(make([]byte, 10)); err == nil {
		t.Fatalf("the garbage client got %d bytes back", n)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("the garbage client was not closed")
	}
	g.Close()
	if got := ib.TURN().Stats().SharedNeither.Load(); got != 1 {
		t.Errorf("connections of neither protocol: got %d, want 1", got)
	}
	send(&wire.Ping{}, wire.TypePong) // the WebSocket is still open
	pionOverTLS()
	resp, err := (&http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf.Clone()}}).Get("https://" + addr + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz after the garbage: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestSharedPlainListener: plain HTTP and TURN over TCP on one port.
func TestSharedPlainListener(t *testing.T) {
	lane(t, laneLight)
	const secret = "shared-plain-secret-0123456789"
	share := true
	ib := startIcebox(t, func(c *config.Config) {
		c.TURN.ShareHTTPListen = &share
		c.TURN.Secrets = []string{secret}
		c.TURN.MaxAllocationsPerUser = 20
	})
	addr := ib.HTTPAddr().String()
	_, port, _ := net.SplitHostPort(addr)
	rc := ib.pageConfig(t, "plain-room", "")
	turnURLs := rc.ICEServers[len(rc.ICEServers)-1]
	if urls := turnURLs.URLs; urls[len(urls)-1] != "turn:127.0.0.1:"+port+"?transport=tcp" {
		t.Fatalf("TURN URLs %v: want turn:127.0.0.1:%s?transport=tcp last", urls, port)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, err := sigclient.Dial(ctx, "ws://"+addr+"/ws", sigclient.DialOptions{Origin: ib.URL})
	if err != nil {
		t.Fatalf("WS: %v", err)
	}
	defer ws.Close()
	if _, err := ws.Join(ctx, wire.Join{Room: "plain-room", Name: "alice"}); err != nil {
		t.Fatalf("WS join: %v", err)
	}
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	relayOverStream(t, "TCP", conn, addr, turnURLs.Username, turnURLs.Credential, turntest.UDPEcho(t))
	uclientOverTCP(t, secret, port)
}

// echoThrough sends a datagram to echo through relay until it comes back.
func echoThrough(t *testing.T, relay net.PacketConn, echo net.Addr) {
	t.Helper()
	msg := []byte("one port for everything")
	buf := make([]byte, 100)
	for try := 0; try < 10; try++ {
		if _, err := relay.WriteTo(msg, echo); err != nil {
			t.Fatal(err)
		}
		_ = relay.SetReadDeadline(time.Now().Add(time.Second))
		if n, _, err := relay.ReadFrom(buf); err == nil && string(buf[:n]) == string(msg) {
			return
		}
	}
	t.Fatal("no echo through the relay")
}

// uclientOverTCP relays 2 × 100 messages with turnutils_uclient over TCP
// (and TLS with -S) on port and expects all back.
func uclientOverTCP(t *testing.T, secret, port string, flags ...string) {
	t.Helper()
	uclient := coturnTool(t, "turnutils_uclient")
	peerTool := coturnTool(t, "turnutils_peer")
	peerPort := freeUDPPort(t)
	peer := exec.Command(peerTool, "-L", "127.0.0.1", "-p", strconv.Itoa(peerPort))
	if err := peer.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { peer.Process.Kill(); peer.Wait() }()
	waitEcho(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(peerPort)))
	args := append([]string{"-t"}, flags...)
	args = append(args, "-W", secret, "-u", "uclient-shared", "-e", "127.0.0.1", "-r", strconv.Itoa(peerPort),
		"-c", "-X", "-n", "100", "-m", "2", "-z", "2", "-p", port, "127.0.0.1")
	out, err := exec.Command(uclient, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("turnutils_uclient %v: %v\n%s", args, err, tail(out))
	}
	if !strings.Contains(string(out), "tot_recv_msgs=200") || !strings.Contains(string(out), "Total lost packets 0 (0.000000%)") {
		t.Fatalf("want 200 messages back and 0%% loss:\n%s", tail(out))
	}
}

// relayOverStream allocates with pion's TURN client over conn, a TCP or
// TLS connection to the shared port at addr (over names it for errors),
// and relays a datagram to echo and back through the allocation.
func relayOverStream(t *testing.T, over string, conn net.Conn, addr, user, pass string, echo net.Addr) {
	t.Helper()
	client, err := turn.NewClient(&turn.ClientConfig{STUNServerAddr: addr, TURNServerAddr: addr,
		Conn: turn.NewSTUNConn(conn), Username: user, Password: pass, Realm: "icebox"})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if err := client.Listen(); err != nil {
		t.Fatal(err)
	}
	relay, err := client.Allocate()
	if err != nil {
		t.Fatalf("Allocate over %s on the shared port: %v", over, err)
	}
	defer relay.Close()
	echoThrough(t, relay, echo)
}
