package turnsrv

import (
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/stun/v3"

	"github.com/icebox-project/icebox/config"
)

// rawSession speaks STUN by hand so tests see exact error codes.
type rawSession struct {
	t                      *testing.T
	c                      net.Conn
	username, realm, nonce string
	key                    []byte
	// relayed is the XOR-RELAYED-ADDRESS of the last successful Allocate.
	relayed netip.AddrPort
}

func newRawSession(t *testing.T, server, username, password string) *rawSession {
	t.Helper()
	return newRawSessionNet(t, "udp4", server, username, password)
}

// newRawSessionNet is newRawSession over network ("udp4" or "udp6").
func newRawSessionNet(t *testing.T, network, server, username, password string) *rawSession {
	t.Helper()
	c, err := net.Dial(network, server)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	challenge := roundTrip(t, c, stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), udpTransport, stun.Fingerprint))
	var nonce stun.Nonce
	if err := nonce.GetFrom(challenge); err != nil {
		t.Fatalf("no nonce in challenge: %v", err)
	}
	return &rawSession{t: t, c: c, username: username, realm: realm, nonce: nonce.String(), key: LongTermKey(username, realm, password)}
}

var udpTransport = stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}}

// request sends an authenticated request and returns 0 on success or the
// error code.
func (s *rawSession) request(method stun.Method, attrs ...stun.Setter) int {
	s.t.Helper()
	resp := s.requestMsg(method, attrs...)
	if resp.Type.Class == stun.ClassSuccessResponse {
		return 0
	}
	var code stun.ErrorCodeAttribute
	if err := code.GetFrom(resp); err != nil {
		s.t.Fatalf("%s error response without ERROR-CODE", method)
	}
	return int(code.Code)
}

// requestMsg sends an authenticated request and returns the response.
func (s *rawSession) requestMsg(method stun.Method, attrs ...stun.Setter) *stun.Message {
	s.t.Helper()
	resp := roundTrip(s.t, s.c, s.signed(method, attrs...))
	var relayed stun.XORMappedAddress
	if method == stun.MethodAllocate && relayed.GetFromAs(resp, stun.AttrXORRelayedAddress) == nil {
		ip, _ := netip.AddrFromSlice(relayed.IP)
		s.relayed = netip.AddrPortFrom(ip.Unmap(), uint16(relayed.Port))
	}
	return resp
}

type peerAddr netip.AddrPort

func (p peerAddr) AddTo(m *stun.Message) error {
	a := netip.AddrPort(p)
	return (&stun.XORMappedAddress{IP: a.Addr().AsSlice(), Port: int(a.Port())}).AddToAs(m, stun.AttrXORPeerAddress)
}

func channelNumber(n uint16) stun.RawAttribute {
	return stun.RawAttribute{Type: stun.AttrChannelNumber, Value: []byte{byte(n >> 8), byte(n), 0, 0}}
}

// recommended is the default deny list, as the config ships it.
func recommended() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range config.RecommendedDenyPeers {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestPeerFilter(t *testing.T) {
	denied := []string{"127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "100.64.0.1", "169.254.169.254", "224.0.0.1", "::1", "fe80::1", "fc00::1"}
	for _, allow := range []bool{false, true} {
		name := "default deny"
		if allow {
			name = "allow_peers covers them"
		}
		t.Run(name, func(t *testing.T) {
			s := startServer(t, func(c *Config) {
				c.PublicIP = netip.MustParseAddr("198.51.100.1")
				c.RelayMinPort, c.RelayMaxPort = 20000, 29999
				c.DenyPeers = recommended()
				c.AllowPeers = nil
				if allow {
					for _, d := range denied {
						c.AllowPeers = append(c.AllowPeers, netip.PrefixFrom(netip.MustParseAddr(d), netip.MustParseAddr(d).BitLen()))
					}
				}
			})
			user, pass, _ := s.cfg.Credentials.Mint("filter", time.Now())
			sess := newRawSession(t, s.udp, user, pass)
			if code := sess.request(stun.MethodAllocate, udpTransport); code != 0 {
				t.Fatalf("Allocate: %d", code)
			}
			for i, d := range denied {
				// A relay port: the verdict is about the address (loopback
				// is one of the server's own addresses, a peer only on
				// relay ports).
				peer := peerAddr(netip.AddrPortFrom(netip.MustParseAddr(d), 25000))
				want := 403
				if allow {
					want = 0
					if netip.MustParseAddr(d).Is6() {
						continue // the allocation is IPv4; pion refuses IPv6 peers itself.
					}
				}
				if got := sess.request(stun.MethodCreatePermission, peer); got != want {
					t.Errorf("CreatePermission %s: got %d, want %d", d, got, want)
				}
				if got := sess.request(stun.MethodChannelBind, peer, channelNumber(0x4000+uint16(i))); got != want {
					t.Errorf("ChannelBind %s: got %d, want %d", d, got, want)
				}
			}
			if !allow {
				if got := s.Stats().PeerDenials.Load(); got != int64(2*len(denied)) {
					t.Errorf("peer denials counted: got %d, want %d", got, 2*len(denied))
				}
				// A peer outside the denied ranges is allowed (a permission
				// sends no packet).
				if got := sess.request(stun.MethodCreatePermission, peerAddr(netip.MustParseAddrPort("8.8.8.8:5000"))); got != 0 {
					t.Errorf("CreatePermission to a peer outside the deny list: got %d, want 0", got)
				}
			}
		})
	}
}

func TestQuotas(t *testing.T) {
	s := startServer(t, func(c *Config) {
		c.MaxAllocationsPerUser = 2
		c.MaxAllocations = 3
	})
	alloc := func(user string) int {
		u, p, _ := s.cfg.Credentials.Mint(user, time.Now())
		return newRawSession(t, s.udp, u, p).request(stun.MethodAllocate, udpTransport)
	}
	steps := []struct {
		user string
		want int
	}{
		{"alice", 0}, {"alice", 0}, {"alice", 486}, // per user
		{"bob", 0},      // another user still allocates
		{"carol", 486},  // total cap of 3
		{"static", 486}, // static users count too
	}
	for i, st := range steps {
		var got int
		if st.user == "static" {
			got = newRawSession(t, s.udp, "static", "static-password").request(stun.MethodAllocate, udpTransport)
		} else {
			got = alloc(st.user)
		}
		if got != st.want {
			t.Errorf("step %d, %s: got %d, want %d", i, st.user, got, st.want)
		}
	}
	if got := s.Stats().QuotaRefusals.Load(); got != 3 {
		t.Errorf("quota refusals: got %d, want 3", got)
	}
	if got := s.Stats().AllocationsActive.Load(); got != 3 {
		t.Errorf("active allocations: got %d, want 3", got)
	}
}

// TestCallOutlivesCredential: expiry is checked when an allocation is
// created; the allocation keeps refreshing and adding permissions after
// its credential expires, while a new allocation with it gets 401.
func TestCallOutlivesCredential(t *testing.T) {
	// The guard's clock: the credential expires when it is moved on.
	var ahead atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
	s := clockServer(t, &ahead, nil)
	creds := s.cfg.Credentials
	user, pass, _ := creds.Mint("caller", time.Now())
	call := newRawSession(t, s.udp, user, pass)
	if code := call.request(stun.MethodAllocate, udpTransport); code != 0 {
		t.Fatalf("Allocate: %d", code)
	}
	ahead.Store(int64(3 * time.Second))
	lifetime := stun.RawAttribute{Type: stun.AttrLifetime, Value: []byte{0, 0, 2, 88}} // 600 s
	if code := call.request(stun.MethodRefresh, lifetime); code != 0 {
		t.Errorf("Refresh after expiry: got %d, want 0", code)
	}
	peer := peerAddr(netip.MustParseAddrPort("127.0.0.1:25000")) // a relay port
	if code := call.request(stun.MethodCreatePermission, peer); code != 0 {
		t.Errorf("CreatePermission after expiry: got %d, want 0", code)
	}
	if code := call.request(stun.MethodChannelBind, peer, channelNumber(0x4001)); code != 0 {
		t.Errorf("ChannelBind after expiry: got %d, want 0", code)
	}
	if code := newRawSession(t, s.udp, user, pass).request(stun.MethodAllocate, udpTransport); code != 401 {
		t.Errorf("new Allocate with the expired credential: got %d, want 401", code)
	}
	// Another valid credential on the same allocation: 441 (RFC 8656 §5).
	other, otherPass, _ := creds.Mint("someone-else", clock())
	call.username, call.key = other, LongTermKey(other, realm, otherPass)
	if code := call.request(stun.MethodRefresh, lifetime); code != 441 {
		t.Errorf("Refresh under another username: got %d, want 441", code)
	}
}

func TestQuotaPerIP(t *testing.T) {
	s := startServer(t, func(c *Config) { c.MaxAllocationsPerIP = 2 })
	for i, want := range []int{0, 0, 486} {
		u, p, _ := s.cfg.Credentials.Mint(fmt.Sprintf("user%d", i), time.Now())
		if got := newRawSession(t, s.udp, u, p).request(stun.MethodAllocate, udpTransport); got != want {
			t.Errorf("allocation %d from 127.0.0.1: got %d, want %d", i+1, got, want)
		}
	}
}

// TestOwnerKey: a UDP and a TCP allocation from the same client address
// and port to the same listener port are different 5-tuples, and a
// v4-mapped address names the same client as its IPv4 form.
func TestOwnerKey(t *testing.T) {
	udp := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 5000}
	tcp := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 5000}
	local := &net.UDPAddr{IP: net.IPv4zero, Port: 3478}
	o := &owners{m: map[fiveTuple]string{}}
	o.set(udp, local, "udp-user")
	if _, ok := o.get(tcp, &net.TCPAddr{IP: net.IPv4zero, Port: 3478}); ok {
		t.Error("a TCP client found the UDP allocation's owner")
	}
	mapped := &net.UDPAddr{IP: net.ParseIP("::ffff:192.0.2.7"), Port: 5000}
	if u, ok := o.get(mapped, local); !ok || u != "udp-user" {
		t.Errorf("v4-mapped client: got %q %v", u, ok)
	}
	o.remove(udp, local)
	if len(o.m) != 0 {
		t.Errorf("%d owners left after remove", len(o.m))
	}
}
