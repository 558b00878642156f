package turnsrv

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/stun/v3"

	"github.com/icebox-project/icebox/internal/testenv"
	"github.com/icebox-project/icebox/internal/turntest"
)

// sendIndication is a Send indication (RFC 8656 §11.1) of data to peer.
func sendIndication(peer netip.AddrPort, data []byte) []byte {
	return stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodSend, stun.ClassIndication),
		peerAddr(peer), stun.RawAttribute{Type: stun.AttrData, Value: data}, stun.Fingerprint).Raw
}

// TestOwnAddressOnlyOnRelayPorts walks through the door finding 1 found:
// public_ip used to be a peer on every port, so a client could reach the
// TURN listener itself through its relay (TURN-in-TURN: a nested Allocate
// made "from" the server's own address) and any local UDP service. Now
// CreatePermission and ChannelBind to those ports get 403, a Send
// indication to them under a permission granted for the address (on a
// relay port) is dropped, nothing arrives, and two allocations of the
// same server still relay to each other.
func TestOwnAddressOnlyOnRelayPorts(t *testing.T) {
	s := startServer(t, func(c *Config) {
		c.DenyPeers = recommended() // the default: loopback denied, public_ip 127.0.0.1 is the exception
		c.AllowPeers = nil
	})
	listener := netip.MustParseAddrPort(s.udp)
	// A local service on a port of the public address outside the relay
	// range (DNS, NTP, statsd on 0.0.0.0 stand for it).
	service, err := turntest.ListenUDPIn(30000, 39999)
	if err != nil {
		t.Fatal(err)
	}
	defer service.Close()
	serviceAP := service.LocalAddr().(*net.UDPAddr).AddrPort()

	user, pass, _ := s.cfg.Credentials.Mint("attacker", time.Now())
	sess := newRawSession(t, s.udp, user, pass)
	if code := sess.request(stun.MethodAllocate, udpTransport); code != 0 {
		t.Fatalf("Allocate: %d", code)
	}
	for _, target := range []netip.AddrPort{listener, serviceAP, netip.MustParseAddrPort(s.tcp)} {
		if got := sess.request(stun.MethodCreatePermission, peerAddr(target)); got != 403 {
			t.Errorf("CreatePermission to own address %s: got %d, want 403", target, got)
		}
		if got := sess.request(stun.MethodChannelBind, peerAddr(target), channelNumber(0x4001)); got != 403 {
			t.Errorf("ChannelBind to own address %s: got %d, want 403", target, got)
		}
	}
	if got := s.Stats().PermissionsActive.Load(); got != 0 {
		t.Errorf("%d permissions installed after refusals", got)
	}

	// Another client of the same server: its relayed address is public_ip
	// on a relay port, a legitimate peer.
	u2, p2, _ := s.cfg.Credentials.Mint("friend", time.Now())
	friend := turntest.MustAllocate(t, s.udp, u2, p2)
	friendRelay := friend.Conn.LocalAddr().(*net.UDPAddr).AddrPort()
	if got := sess.request(stun.MethodCreatePermission, peerAddr(friendRelay)); got != 0 {
		t.Fatalf("CreatePermission to another allocation's relayed address %s: got %d, want 0", friendRelay, got)
	}
	// The friend permits the attacker's relayed address (pion's client
	// asks for a permission on its first send).
	if _, err := friend.Conn.WriteTo([]byte("hello"), net.UDPAddrFromAddrPort(sess.relayed)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, closeGuard, "the friend's permission", func() bool { return s.Stats().PermissionsActive.Load() == 2 })

	// TURN-in-TURN: an Allocate to the listener, sent through the relay
	// under the permission for 127.0.0.1; and a query to the service.
	inner := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), udpTransport, stun.Fingerprint).Raw
	for _, ind := range [][]byte{sendIndication(listener, inner), sendIndication(serviceAP, []byte("version.bind"))} {
		if _, err := sess.c.Write(ind); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, closeGuard, "both sends to be refused", func() bool { return s.Stats().DroppedPeerDenied.Load() == 2 })
	// What comes after them is relayed: the allowed peer hears it.
	if _, err := sess.c.Write(sendIndication(friendRelay, []byte("legit"))); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	_ = friend.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := friend.Conn.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "legit" || from.String() != sess.relayed.String() {
		t.Fatalf("relay between two allocations: got %q from %v (%v), want \"legit\" from %s", buf[:n], from, err, sess.relayed)
	}
	_ = service.SetReadDeadline(time.Now())
	if n, from, err := service.ReadFrom(buf); err == nil {
		t.Errorf("the local service received %q from %s through the relay", buf[:n], from)
	}
	if got := s.Stats().AllocationsActive.Load(); got != 2 {
		t.Errorf("%d allocations, want 2: a nested Allocate through the relay reached the listener", got)
	}
}

// TestEveryPeerAddressChecked (finding 4): a request with two
// XOR-PEER-ADDRESS attributes, the first allowed and the second denied,
// used to get an error response without ERROR-CODE while the first
// permission was installed. Now it is 403 with ERROR-CODE and nothing is
// installed; a request with none is 400.
func TestEveryPeerAddressChecked(t *testing.T) {
	s := startServer(t, func(c *Config) { c.DenyPeers, c.AllowPeers = recommended(), nil })
	user, pass, _ := s.cfg.Credentials.Mint("two-peers", time.Now())
	sess := newRawSession(t, s.udp, user, pass)
	if code := sess.request(stun.MethodAllocate, udpTransport); code != 0 {
		t.Fatalf("Allocate: %d", code)
	}
	allowed := peerAddr(netip.MustParseAddrPort("127.0.0.1:25000")) // public_ip on a relay port
	for _, denied := range []peerAddr{
		peerAddr(netip.MustParseAddrPort("10.0.0.1:5000")),
		peerAddr(netip.MustParseAddrPort("127.0.0.1:53")), // own address, not a relay port
	} {
		// request fails the test on an error response without ERROR-CODE.
		if got := sess.request(stun.MethodCreatePermission, allowed, denied); got != 403 {
			t.Errorf("CreatePermission %v then %v: got %d, want 403", allowed, denied, got)
		}
		if got := sess.request(stun.MethodChannelBind, channelNumber(0x4000), allowed, denied); got != 403 {
			t.Errorf("ChannelBind %v then %v: got %d, want 403", allowed, denied, got)
		}
	}
	if got := s.Stats().PermissionsActive.Load(); got != 0 {
		t.Errorf("%d permissions installed by refused requests, want 0", got)
	}
	if got := sess.request(stun.MethodCreatePermission); got != 400 {
		t.Errorf("CreatePermission without XOR-PEER-ADDRESS: got %d, want 400", got)
	}
	if got := sess.request(stun.MethodCreatePermission, allowed); got != 0 {
		t.Errorf("CreatePermission to the allowed peer alone: got %d, want 0", got)
	}
}

// TestEmbeddedIPv4Forms (finding 5): IPv6 forms that carry an IPv4
// address are judged by it, and the recommended list covers the special-
// purpose registries' blocks that are not globally reachable.
func TestEmbeddedIPv4Forms(t *testing.T) {
	own := OwnAddresses{Relayed: netip.MustParseAddr("198.51.100.7"), RelayMin: 40000, RelayMax: 49999}
	def := NewPeerFilter(recommended(), nil, own)
	open := NewPeerFilter(recommended(), []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}, own)
	tests := []struct {
		peer      string
		def, open PeerVerdict // with the recommended list; with allow_peers 0.0.0.0/0 and ::/0
	}{
		{"[::ffff:127.0.0.1]:45000", PeerDenied, PeerAllowed},
		{"[::7f00:2]:45000", PeerDenied, PeerAllowed},
		{"[::7f00:2]:53", PeerOwnPort, PeerOwnPort},
		{"[64:ff9b::a00:1]:5000", PeerDenied, PeerAllowed},
		{"[64:ff9b::7f00:1]:53", PeerOwnPort, PeerOwnPort},
		{"[64:ff9b:1::a00:1]:5000", PeerDenied, PeerAllowed},
		{"[64:ff9b:1::7f00:1]:3478", PeerOwnPort, PeerOwnPort},
		{"[2002:7f00:1::1]:3478", PeerOwnPort, PeerOwnPort},
		{"[2002:a00:1::1]:5000", PeerDenied, PeerAllowed},
		{"[64:ff9b::a9fe:a9fe]:80", PeerDenied, PeerAllowed},    // 169.254.169.254
		{"[64:ff9b::c633:6407]:3478", PeerOwnPort, PeerOwnPort}, // the relayed address itself
		{"[64:ff9b::808:808]:53", PeerAllowed, PeerAllowed},     // 8.8.8.8: a global address
		{"[::ffff:198.51.100.7]:45000", PeerAllowed, PeerAllowed},
		{"[::ffff:198.51.100.7]:3478", PeerOwnPort, PeerOwnPort},
		{"0.0.0.0:53", PeerOwnPort, PeerOwnPort},
		{"127.0.0.1:45000", PeerDenied, PeerAllowed},
		{"[::1]:53", PeerOwnPort, PeerOwnPort},
		// Registry blocks, IPv4 and IPv6.
		{"192.0.0.170:5000", PeerDenied, PeerAllowed},
		{"192.88.99.1:5000", PeerDenied, PeerAllowed},
		{"198.18.0.1:5000", PeerDenied, PeerAllowed},
		{"[100::1]:5000", PeerDenied, PeerAllowed},
		{"[100:0:0:1::1]:5000", PeerDenied, PeerAllowed},
		{"[2001:2::1]:5000", PeerDenied, PeerAllowed},
		{"[3fff::1]:5000", PeerDenied, PeerAllowed},
		{"[5f00::1]:5000", PeerDenied, PeerAllowed},
		{"[fec0::1]:5000", PeerDenied, PeerAllowed},
		{"8.8.8.8:3478", PeerAllowed, PeerAllowed},
		{"[2606:4700::1111]:3478", PeerAllowed, PeerAllowed},
	}
	for _, tt := range tests {
		ap := netip.MustParseAddrPort(tt.peer)
		if got := def.Check(ap); got != tt.def {
			t.Errorf("recommended list, %s: got %q, want %q", tt.peer, got, tt.def)
		}
		if got := open.Check(ap); got != tt.open {
			t.Errorf("allow_peers everything, %s: got %q, want %q", tt.peer, got, tt.open)
		}
	}

	// Through the server: the guard refuses these forms with 403.
	s := startServer(t, func(c *Config) { c.DenyPeers, c.AllowPeers = recommended(), nil })
	user, pass, _ := s.cfg.Credentials.Mint("forms", time.Now())
	sess := newRawSession(t, s.udp, user, pass)
	if code := sess.request(stun.MethodAllocate, udpTransport); code != 0 {
		t.Fatalf("Allocate: %d", code)
	}
	for _, p := range []string{"[::7f00:2]:25000", "[64:ff9b:1::a00:1]:5000", "[::ffff:10.0.0.1]:5000", "[2002:a9fe:a9fe::]:80"} {
		if got := sess.request(stun.MethodCreatePermission, peerAddr(netip.MustParseAddrPort(p))); got != 403 {
			t.Errorf("CreatePermission %s: got %d, want 403", p, got)
		}
	}
}

// TestFreshNonce (finding 6): a 401 for a request with a forged nonce
// and a bad MESSAGE-INTEGRITY carries a fresh nonce, not the forged one,
// and the fresh one works; a forged nonce with a good MESSAGE-INTEGRITY
// gets 438 Stale Nonce with a fresh one.
func TestFreshNonce(t *testing.T) {
	s := startServer(t, nil)
	user, pass, _ := s.cfg.Credentials.Mint("nonce", time.Now())
	c, err := net.Dial("udp4", s.udp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const forged = "forged-nonce-0123456789"
	build := func(key []byte) *stun.Message {
		return stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), udpTransport,
			stun.NewUsername(user), stun.NewRealm(realm), stun.NewNonce(forged), stun.MessageIntegrity(key), stun.Fingerprint)
	}
	for _, tc := range []struct {
		name string
		key  []byte
		code int
	}{
		{"bad integrity", LongTermKey(user, realm, "not-the-password"), 401},
		{"good integrity", LongTermKey(user, realm, pass), 438},
	} {
		resp := roundTrip(t, c, build(tc.key))
		var code stun.ErrorCodeAttribute
		var nonce stun.Nonce
		if err := code.GetFrom(resp); err != nil || int(code.Code) != tc.code {
			t.Fatalf("%s: got %v (%v), want %d", tc.name, code.Code, err, tc.code)
		}
		if err := nonce.GetFrom(resp); err != nil || nonce.String() == forged || nonce.String() == "" {
			t.Fatalf("%s: %d carries nonce %q (%v), want a fresh one", tc.name, tc.code, nonce, err)
		}
		sess := &rawSession{t: t, c: c, username: user, realm: realm, nonce: nonce.String(), key: LongTermKey(user, realm, pass)}
		if got := sess.request(stun.MethodAllocate, udpTransport); got != 0 && got != 437 {
			// 437: the first pass already allocated on this 5-tuple.
			t.Errorf("%s: Allocate with the nonce from the %d: got %d", tc.name, tc.code, got)
		}
	}
}

// countingHandler counts log records at Info and above.
type countingHandler struct{ n *atomic.Int64 }

func (h countingHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (h countingHandler) Handle(context.Context, slog.Record) error    { h.n.Add(1); return nil }
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler           { return h }
func (h countingHandler) WithGroup(string) slog.Handler                { return h }

// TestRefusalLogBounded (finding 7): 10,000 requests with a bad
// MESSAGE-INTEGRITY and attacker-chosen usernames write a few lines, and
// the metric counts all of them.
func TestRefusalLogBounded(t *testing.T) {
	var lines atomic.Int64
	s := startServer(t, func(c *Config) { c.Logger = slog.New(countingHandler{&lines}) })
	before := lines.Load() // start-up lines
	c, err := net.Dial("udp4", s.udp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 10000
	buf := make([]byte, 1500)
	for i := 0; i < n; i++ {
		user := "9999999999:flood-" + strings.Repeat("x", i%200)
		req := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), udpTransport,
			stun.NewUsername(user), stun.NewRealm(realm), stun.NewNonce("n"), stun.MessageIntegrity([]byte("wrong")), stun.Fingerprint)
		// Each request waits for its answer, retrying as a client would.
		for {
			if _, err := c.Write(req.Raw); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			if _, err := c.Read(buf); err == nil {
				break
			}
		}
	}
	if got := s.Stats().AuthFailures()["bad-integrity"]; got < n {
		t.Errorf("bad-integrity failures counted: got %d, want %d", got, n)
	}
	if got := lines.Load() - before; got > 40 {
		t.Errorf("%d log lines for %d refused requests, want a few dozen at most", got, n)
	}
}

// TestAllowedIgnoresListenerPorts: a permission covers an address on every
// port, so whether the relayed address may have one does not depend on
// which ports the listeners happen to have (a listener bound to port 0 may
// land on the first relay port); the port of each request and send is
// judged by Check.
func TestAllowedIgnoresListenerPorts(t *testing.T) {
	relayed := netip.MustParseAddr("127.0.0.1")
	f := NewPeerFilter(recommended(), nil, OwnAddresses{Relayed: relayed, RelayMin: 40000, RelayMax: 49999, ListenerPorts: []uint16{40000}})
	if !f.Allowed(relayed) {
		t.Error("the relayed address is refused a permission because a listener has the first relay port")
	}
	if got := f.Check(netip.AddrPortFrom(relayed, 40000)); got != PeerOwnPort {
		t.Errorf("the listener's port: got %q, want %q", got, PeerOwnPort)
	}
	if f := NewPeerFilter(nil, nil, OwnAddresses{Relayed: relayed}); f.Allowed(relayed) {
		t.Error("with no relay ports the server's own address is allowed")
	}
}
