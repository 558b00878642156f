package turnsrv

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	"github.com/pion/turn/v4"

	"github.com/icebox-project/icebox/internal/testenv"
	"github.com/icebox-project/icebox/internal/turntest"
)

const (
	secretA = "first-secret-0123456789"
	secretB = "second-secret-0123456789"
	realm   = "icebox"
)

type testServer struct {
	*Server
	udp, tcp string
}

// startServer runs a Server on 127.0.0.1 port 0 with UDP and TCP
// listeners, secrets A and B, a static user and loopback peers allowed.
func startServer(t testing.TB, mod func(*Config)) *testServer {
	t.Helper()
	creds, err := NewCredentials(realm, []string{secretA, secretB}, time.Hour, map[string]string{"static": "static-password"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Realm:        realm,
		Listeners:    []Listener{{Network: "udp", Addr: "127.0.0.1:0"}, {Network: "tcp", Addr: "127.0.0.1:0"}},
		PublicIP:     netip.MustParseAddr("127.0.0.1"),
		RelayMinPort: 20000, RelayMaxPort: 29999,
		Credentials: creds,
		DenyPeers:   []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")},
		AllowPeers:  []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
		Logger:      slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	ts := &testServer{Server: s}
	for _, a := range s.Addrs() {
		if a.Network() == "udp" {
			ts.udp = a.String()
		} else {
			ts.tcp = a.String()
		}
	}
	return ts
}

// newClient returns a pion TURN client over UDP or TCP.
func newClient(t *testing.T, network, server, username, password string) *turn.Client {
	t.Helper()
	var conn net.PacketConn
	switch network {
	case "udp":
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		conn = c
	case "tcp":
		c, err := net.Dial("tcp", server)
		if err != nil {
			t.Fatal(err)
		}
		conn = turn.NewSTUNConn(c)
	}
	return newClientOn(t, conn, server, username, password)
}

// newClientOn returns a pion TURN client on conn.
func newClientOn(t *testing.T, conn net.PacketConn, server, username, password string) *turn.Client {
	t.Helper()
	client, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: server, TURNServerAddr: server,
		Conn: conn, Username: username, Password: password, Realm: realm,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); conn.Close() })
	return client
}

// relayRoundTrip allocates, sends a packet to the echo peer through the
// relay and waits for it to come back.
func relayRoundTrip(t *testing.T, client *turn.Client, peer net.Addr) {
	t.Helper()
	relay, err := client.Allocate()
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	defer relay.Close()
	if got := relay.LocalAddr().(*net.UDPAddr).IP.String(); got != "127.0.0.1" {
		t.Errorf("relayed address IP: got %s, want 127.0.0.1", got)
	}
	msg := []byte("hello through the relay")
	buf := make([]byte, 1500)
	for try := 0; try < 5; try++ {
		if _, err := relay.WriteTo(msg, peer); err != nil {
			t.Fatalf("WriteTo: %v", err)
		}
		_ = relay.SetReadDeadline(time.Now().Add(time.Second))
		n, from, err := relay.ReadFrom(buf)
		if err != nil {
			continue
		}
		if !bytes.Equal(buf[:n], msg) || from.String() != peer.String() {
			t.Fatalf("got %q from %s, want %q from %s", buf[:n], from, msg, peer)
		}
		return
	}
	t.Fatal("no echo through the relay")
}

func TestMintedCredentialsRelay(t *testing.T) {
	s := startServer(t, nil)
	peer := turntest.UDPEcho(t)
	user, pass, _ := s.cfg.Credentials.Mint("alice", time.Now())
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			addr := s.udp
			if network == "tcp" {
				addr = s.tcp
			}
			relayRoundTrip(t, newClient(t, network, addr, user, pass), peer)
		})
	}
}

// rawAllocate sends an Allocate with the long-term credential and
// returns the response's error code (0 on success). It first takes the
// nonce from the server's 401 challenge.
func rawAllocate(t *testing.T, server, username, password, realmName string) int {
	t.Helper()
	c, err := net.Dial("udp4", server)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	transport := stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}}
	challenge := roundTrip(t, c, stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), transport, stun.Fingerprint))
	var code stun.ErrorCodeAttribute
	var nonce stun.Nonce
	if err := code.GetFrom(challenge); err != nil || code.Code != stun.CodeUnauthorized {
		t.Fatalf("challenge: got %v, want 401", code.Code)
	}
	if err := nonce.GetFrom(challenge); err != nil {
		t.Fatalf("challenge has no nonce: %v", err)
	}
	key := LongTermKey(username, realmName, password)
	resp := roundTrip(t, c, stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), transport,
		stun.NewUsername(username), stun.NewRealm(realmName), nonce, stun.MessageIntegrity(key), stun.Fingerprint))
	if resp.Type.Class == stun.ClassSuccessResponse {
		return 0
	}
	if err := code.GetFrom(resp); err != nil {
		t.Fatalf("error response without ERROR-CODE: %v", resp)
	}
	return int(code.Code)
}

func roundTrip(t *testing.T, c net.Conn, req *stun.Message) *stun.Message {
	t.Helper()
	buf := make([]byte, 1500)
	for try := 0; try < 3; try++ {
		if _, err := c.Write(req.Raw); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		n, err := c.Read(buf)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		m := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
		if err := m.Decode(); err != nil {
			t.Fatalf("decoding response: %v", err)
		}
		if m.TransactionID != req.TransactionID {
			t.Fatalf("response for another transaction")
		}
		return m
	}
	t.Fatal("no response")
	return nil
}

func TestCredentialVerdicts(t *testing.T) {
	s := startServer(t, nil)
	now := time.Now()
	future := strconv.FormatInt(now.Add(time.Hour).Unix(), 10) + ":bob"
	past := strconv.FormatInt(now.Add(-time.Minute).Unix(), 10) + ":bob"
	minted, mintedPass, _ := s.cfg.Credentials.Mint("carol", now)
	tests := []struct {
		name, username, password, realm string
		want                            int
	}{
		{"minted by first secret", minted, mintedPass, realm, 0},
		{"signed by second secret", future, RESTPassword([]byte(secretB), future), realm, 0},
		{"static user", "static", "static-password", realm, 0},
		{"expired", past, RESTPassword([]byte(secretA), past), realm, 401},
		{"forged password", future, "Zm9yZ2VkIHBhc3N3b3Jk", realm, 401},
		{"unknown secret", future, RESTPassword([]byte("some-other-secret-xyz"), future), realm, 401},
		{"static user wrong password", "static", "nope", realm, 401},
		{"not a REST username", "mallory", "whatever", realm, 401},
		{"wrong realm", minted, mintedPass, "elsewhere", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rawAllocate(t, s.udp, tt.username, tt.password, tt.realm); got != tt.want {
				t.Errorf("Allocate: got code %d, want %d", got, tt.want)
			}
		})
	}
	if got := s.Stats().AuthFailures()["expired"]; got != 1 {
		t.Errorf("expired auth failures: got %d, want 1", got)
	}
}

func TestPionClientSeesUnauthorized(t *testing.T) {
	s := startServer(t, nil)
	future := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10) + ":eve"
	client := newClient(t, "udp", s.udp, future, "Zm9yZ2Vk")
	_, err := client.Allocate()
	if err == nil {
		t.Fatal("Allocate with a forged password succeeded")
	}
	if !bytes.Contains([]byte(err.Error()), []byte("401")) {
		t.Errorf("got %v, want a 401 error", err)
	}
}

// TestReusePortSockets: with four SO_REUSEPORT sockets on one port (and
// so four relay loops), a dozen clients (spread over them by the kernel,
// by the hash of their address) all allocate and relay, and their
// allocations are spread over more than one loop.
func TestReusePortSockets(t *testing.T) {
	s := startServer(t, func(c *Config) { c.UDPSockets = 4 })
	peer := turntest.UDPEcho(t)
	for i := 0; i < 12; i++ {
		user, pass, _ := s.cfg.Credentials.Mint(fmt.Sprintf("spread%d", i), time.Now())
		client := newClient(t, "udp", s.udp, user, pass)
		relayRoundTrip(t, client, peer)
		// relayRoundTrip closes its allocation; this one stays open.
		relay, err := client.Allocate()
		if err != nil {
			t.Fatalf("Allocate: %v", err)
		}
		t.Cleanup(func() { relay.Close() })
	}
	if got := s.Stats().AllocationsCreated.Load(); got != 24 {
		t.Errorf("allocations created: got %d, want 24", got)
	}
	loops := s.Server.udp.Loops()
	if len(loops) == 0 {
		t.Skip("no relay loops on this platform: pion/turn relays")
	}
	if len(loops) != 4 {
		t.Fatalf("%d relay loops, want 4 (one per socket)", len(loops))
	}
	testenv.Eventually(t, closeGuard, "closed allocations released", func() bool { return relayPorts(s.Server) == 12 })
	loops = s.Server.udp.Loops()
	t.Logf("live allocations per loop: %v", loops)
	used := 0
	for _, n := range loops {
		if n > 0 {
			used++
		}
	}
	// Twelve clients all hashed to one of four sockets: odds 4^-11.
	if used < 2 {
		t.Errorf("allocations per loop %v: want them spread over more than one loop", loops)
	}
}
