package turnsrv

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/stun/v3"

	"github.com/icebox-project/icebox/internal/testenv"
)

// Attacks on the framing the guard and pion/turn share (framing.go): a
// request the guard never judged must never reach pion/turn, on any
// transport. Each test fails if its door is open.

// wrapped hides req behind 24 bytes that a framer looking at the first
// byte cuts as 8 bytes of ChannelData and a 16+len(req)-byte message
// without the magic cookie, while pion's STUNConn, which looks for the
// cookie first, cuts them as one 24-byte STUN message and reads req as
// the next frame.
func wrapped(req []byte) []byte {
	b := []byte{0x40, 0x00, 0x00, 0x04, 0x21, 0x12, 0xA4, 0x42, 0x00, 0x01, 0, 0, 'X', 'X', 'X', 'X', 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(b[10:12], uint16(len(req)-4))
	return append(b, req...)
}

// signed is a request of s's credential, not sent.
func (s *rawSession) signed(method stun.Method, attrs ...stun.Setter) *stun.Message {
	setters := append([]stun.Setter{stun.TransactionID, stun.NewType(method, stun.ClassRequest)}, attrs...)
	setters = append(setters, stun.NewUsername(s.username), stun.NewRealm(s.realm), stun.NewNonce(s.nonce),
		stun.MessageIntegrity(s.key), stun.Fingerprint)
	return stun.MustBuild(setters...)
}

// clockServer is startServer with credentials that expire after 2 s of
// the guard's clock, which runs ahead by what ahead holds.
func clockServer(t *testing.T, ahead *atomic.Int64, mod func(*Config)) *testServer {
	t.Helper()
	creds, err := NewCredentials(realm, []string{secretA}, 2*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	return startServer(t, func(c *Config) {
		c.Credentials = creds
		c.now = func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
		if mod != nil {
			mod(c)
		}
	})
}

// desyncServer is a clockServer with a UDP, a TCP, a TLS and a TLS
// listener shared with HTTP.
func desyncServer(t *testing.T, ahead *atomic.Int64) (*testServer, map[string]func(t *testing.T) net.Conn) {
	t.Helper()
	conf := selfSigned(t)
	conf.NextProtos = []string{ALPNTURN, "h2", "http/1.1"}
	s := clockServer(t, ahead, func(c *Config) {
		c.Listeners = []Listener{{Network: "udp", Addr: "127.0.0.1:0"}, {Network: "tcp", Addr: "127.0.0.1:0"},
			{Network: "tls", Addr: "127.0.0.1:0", TLS: conf}, {Network: "tls", Addr: "127.0.0.1:0", TLS: conf, ShareHTTP: true}}
	})
	addrs := s.Addrs()
	dial := map[string]func(t *testing.T) net.Conn{
		"tcp":    func(t *testing.T) net.Conn { return dialTCP(t, addrs[1].String()) },
		"tls":    func(t *testing.T) net.Conn { return tlsClient(t, addrs[2].String(), []string{ALPNTURN}) },
		"shared": func(t *testing.T) net.Conn { return tlsClient(t, addrs[3].String(), []string{ALPNTURN}) },
	}
	return s, dial
}

// refusedAtFrame sends b on c and checks that the server closes c at the
// first frame, having answered nothing.
func refusedAtFrame(t *testing.T, s *testServer, c net.Conn, b []byte) {
	t.Helper()
	before := s.Stats().TCPClosedBadFrame.Load()
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	if got := readUntilClosed(t, c); len(got) != 0 {
		t.Errorf("the server answered %d bytes before it closed: %x", len(got), got)
	}
	testenv.Eventually(t, closeGuard, "the close counted as a bad frame", func() bool { return s.Stats().TCPClosedBadFrame.Load() > before })
}

// TestWrappedRequestsRefused: over TCP, TLS and the port TURN shares with
// HTTP, an Allocate or a ChannelBind hidden behind a frame the guard and
// pion/turn would cut differently never reaches pion/turn: the connection
// is closed at that frame. The credentials are ones pion/turn's key cache
// still holds: expired, revoked by a reload, or another user's on an
// allocation that is not theirs.
func TestWrappedRequestsRefused(t *testing.T) {
	t.Parallel()
	for _, transport := range []string{"tcp", "tls", "shared"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			t.Run("allocate with an expired credential", func(t *testing.T) {
				var ahead atomic.Int64
				s, dial := desyncServer(t, &ahead)
				user, pass, _ := s.cfg.Credentials.Mint("expired", time.Now())
				if code := newRawSession(t, s.udp, user, pass).request(stun.MethodAllocate, udpTransport); code != 0 {
					t.Fatalf("Allocate while the credential is valid: %d", code)
				}
				ahead.Store(int64(3 * time.Second))
				sess := newRawSessionOn(t, dial[transport](t), user, pass)
				if code := sess.request(stun.MethodAllocate, udpTransport); code != 401 {
					t.Fatalf("plain Allocate with the expired credential: got %d, want 401", code)
				}
				refusedAtFrame(t, s, sess.c, wrapped(sess.signed(stun.MethodAllocate, udpTransport).Raw))
				if got := s.Stats().AllocationsActive.Load(); got != 1 {
					t.Errorf("%d allocations, want the 1 made while the credential was valid", got)
				}
			})
			t.Run("allocate with a revoked credential", func(t *testing.T) {
				var ahead atomic.Int64
				s, dial := desyncServer(t, &ahead)
				user, pass, _ := s.cfg.Credentials.Mint("revoked", time.Now())
				if code := newRawSession(t, s.udp, user, pass).request(stun.MethodAllocate, udpTransport); code != 0 {
					t.Fatalf("Allocate before the reload: %d", code)
				}
				revoke(t, s)
				sess := newRawSessionOn(t, dial[transport](t), user, pass)
				if code := sess.request(stun.MethodAllocate, udpTransport); code != 401 {
					t.Fatalf("plain Allocate with the revoked credential: got %d, want 401", code)
				}
				refusedAtFrame(t, s, sess.c, wrapped(sess.signed(stun.MethodAllocate, udpTransport).Raw))
			})
			t.Run("channel bind on another user's allocation", func(t *testing.T) {
				var ahead atomic.Int64
				s, dial := desyncServer(t, &ahead)
				attacker, attackerPass, _ := s.cfg.Credentials.Mint("attacker", time.Now())
				if code := newRawSession(t, s.udp, attacker, attackerPass).request(stun.MethodAllocate, udpTransport); code != 0 {
					t.Fatalf("the attacker's own Allocate: %d", code)
				}
				ahead.Store(int64(3 * time.Second)) // the attacker's credential expires
				victim, victimPass, _ := s.cfg.Credentials.Mint("victim", time.Now().Add(time.Hour))
				sess := newRawSessionOn(t, dial[transport](t), victim, victimPass)
				if code := sess.request(stun.MethodAllocate, udpTransport); code != 0 {
					t.Fatalf("the victim's Allocate: %d", code)
				}
				sess.username, sess.key = attacker, LongTermKey(attacker, realm, attackerPass)
				peer := peerAddr(netip.MustParseAddrPort("127.0.0.1:25000"))
				refusedAtFrame(t, s, sess.c, wrapped(sess.signed(stun.MethodChannelBind, peer, channelNumber(0x4001)).Raw))
				if got := s.Stats().ChannelBindingsActive.Load(); got != 0 {
					t.Errorf("%d channel bindings, want 0", got)
				}
			})
		})
	}
}

// revoke reloads s with a secret that is not the one its credentials were
// minted with.
func revoke(t *testing.T, s *testServer) {
	t.Helper()
	creds, err := NewCredentials(realm, []string{secretB}, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(Update{Credentials: creds, DenyPeers: s.cfg.DenyPeers, AllowPeers: s.cfg.AllowPeers}); err != nil {
		t.Fatal(err)
	}
}

// TestLeadingBitsNotIgnored: pion/turn's STUN decoder ignores the two
// leading bits of the message type, so a signed Allocate whose type has
// them set would be an Allocate to pion/turn; the guard drops it as
// neither STUN nor ChannelData, on the relay loops and where pion/turn
// reads the socket itself.
func TestLeadingBitsNotIgnored(t *testing.T) {
	t.Parallel()
	for _, pionUDP := range []bool{false, true} {
		t.Run(fmt.Sprintf("pion_reads_socket=%v", pionUDP), func(t *testing.T) {
			var ahead atomic.Int64
			s := clockServer(t, &ahead, func(c *Config) { c.pionUDP = pionUDP })
			user, pass, _ := s.cfg.Credentials.Mint("expired", time.Now())
			sess := newRawSession(t, s.udp, user, pass)
			if code := sess.request(stun.MethodAllocate, udpTransport); code != 0 {
				t.Fatalf("Allocate while the credential is valid: %d", code)
			}
			ahead.Store(int64(3 * time.Second))
			other := newRawSession(t, s.udp, user, pass) // a fresh 5-tuple
			if code := other.request(stun.MethodAllocate, udpTransport); code != 401 {
				t.Fatalf("plain Allocate with the expired credential: got %d, want 401", code)
			}
			// The request with its type's leading bits set, signed as sent.
			m := new(stun.Message)
			m.TransactionID = stun.NewTransactionID()
			m.Type = stun.NewType(stun.MethodAllocate, stun.ClassRequest)
			m.WriteHeader()
			m.Raw[0] |= 0x80
			for _, a := range []stun.Setter{udpTransport, stun.NewUsername(other.username), stun.NewRealm(realm),
				stun.NewNonce(other.nonce), stun.MessageIntegrity(other.key)} {
				if err := a.AddTo(m); err != nil {
					t.Fatal(err)
				}
			}
			dropped := s.Stats().DroppedNotSTUN.Load()
			if _, err := other.c.Write(m.Raw); err != nil {
				t.Fatal(err)
			}
			testenv.Eventually(t, closeGuard, "the datagram dropped", func() bool { return s.Stats().DroppedNotSTUN.Load() > dropped })
			// Datagrams from one client are handled in order: a response
			// to the hidden Allocate would come before the Binding's.
			binding := stun.MustBuild(stun.TransactionID, stun.BindingRequest)
			if _, err := other.c.Write(binding.Raw); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 1500)
			for {
				_ = other.c.SetReadDeadline(time.Now().Add(closeGuard))
				n, err := other.c.Read(buf)
				if err != nil {
					t.Fatalf("no Binding response: %v", err)
				}
				resp := &stun.Message{Raw: buf[:n]}
				if resp.Decode() != nil {
					continue
				}
				if resp.TransactionID == m.TransactionID {
					t.Fatalf("the hidden Allocate was answered: %s", resp)
				}
				if resp.TransactionID == binding.TransactionID {
					break
				}
			}
			if got := s.Stats().AllocationsActive.Load(); got != 1 {
				t.Errorf("%d allocations, want 1", got)
			}
		})
	}
}

// TestRevokedCredentialRefusedEverywhere: a credential whose secret a
// reload removed is refused on every request, on the allocation made with
// it too, over UDP and TCP; the allocation then ends at its lifetime.
func TestRevokedCredentialRefusedEverywhere(t *testing.T) {
	t.Parallel()
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			s := startServer(t, nil)
			user, pass, _ := s.cfg.Credentials.Mint("revoked", time.Now())
			var sess *rawSession
			if network == "udp" {
				sess = newRawSession(t, s.udp, user, pass)
			} else {
				sess = newRawSessionOn(t, dialTCP(t, s.tcp), user, pass)
			}
			peer := peerAddr(netip.MustParseAddrPort("127.0.0.1:25000"))
			if code := sess.request(stun.MethodAllocate, udpTransport); code != 0 {
				t.Fatalf("Allocate: %d", code)
			}
			if code := sess.request(stun.MethodCreatePermission, peer); code != 0 {
				t.Fatalf("CreatePermission: %d", code)
			}
			revoke(t, s)
			for _, req := range []struct {
				method stun.Method
				attrs  []stun.Setter
			}{
				{stun.MethodRefresh, []stun.Setter{lifetime(600)}},
				{stun.MethodCreatePermission, []stun.Setter{peer}},
				{stun.MethodChannelBind, []stun.Setter{peer, channelNumber(0x4001)}},
				{stun.MethodAllocate, []stun.Setter{udpTransport}},
			} {
				if code := sess.request(req.method, req.attrs...); code != 401 {
					t.Errorf("%s after the secret was removed: got %d, want 401", req.method, code)
				}
			}
		})
	}
}

// TestExpiredCredentialOnlyOnItsAllocation: an expired credential still
// serves the allocation it created (TestCallOutlivesCredential), and
// nothing else: on another user's allocation and on a 5-tuple without one,
// Refresh, CreatePermission and ChannelBind are refused.
func TestExpiredCredentialOnlyOnItsAllocation(t *testing.T) {
	t.Parallel()
	var ahead atomic.Int64
	s := clockServer(t, &ahead, nil)
	creds := s.cfg.Credentials
	expired, expiredPass, _ := creds.Mint("expired", time.Now())
	ahead.Store(int64(3 * time.Second))
	valid, validPass, _ := creds.Mint("valid", time.Now().Add(time.Hour))
	onOther := newRawSession(t, s.udp, valid, validPass)
	if code := onOther.request(stun.MethodAllocate, udpTransport); code != 0 {
		t.Fatalf("the valid user's Allocate: %d", code)
	}
	onOther.username, onOther.key = expired, LongTermKey(expired, realm, expiredPass)
	bare := newRawSession(t, s.udp, expired, expiredPass)
	peer := peerAddr(netip.MustParseAddrPort("127.0.0.1:25000"))
	for _, req := range []struct {
		method stun.Method
		attrs  []stun.Setter
	}{
		{stun.MethodRefresh, []stun.Setter{lifetime(600)}},
		{stun.MethodCreatePermission, []stun.Setter{peer}},
		{stun.MethodChannelBind, []stun.Setter{peer, channelNumber(0x4001)}},
	} {
		if code := onOther.request(req.method, req.attrs...); code != 401 {
			t.Errorf("%s with an expired credential on another user's allocation: got %d, want 401", req.method, code)
		}
		if code := bare.request(req.method, req.attrs...); code == 0 {
			t.Errorf("%s with an expired credential without an allocation: succeeded", req.method)
		}
	}
	if got := s.Stats().AuthFailures()["expired"]; got < 3 {
		t.Errorf("expired auth failures: got %d, want at least 3", got)
	}
}

// TestUnauthenticatedAnswersSmall: no request without MESSAGE-INTEGRITY,
// the smallest an attacker can forge included, gets an answer more than
// three times its size (the bound icebox audit checks).
func TestUnauthenticatedAnswersSmall(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	c, err := net.Dial("udp4", s.udp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	peer := peerAddr(netip.MustParseAddrPort("127.0.0.1:25000"))
	for _, tt := range []struct {
		name   string
		method stun.Method
		attrs  []stun.Setter
		code   int
	}{
		{"bare allocate", stun.MethodAllocate, nil, 400},
		{"allocate", stun.MethodAllocate, []stun.Setter{udpTransport}, 401},
		{"bare refresh", stun.MethodRefresh, nil, 437},
		{"create permission", stun.MethodCreatePermission, []stun.Setter{peer}, 437},
		{"channel bind", stun.MethodChannelBind, []stun.Setter{peer, channelNumber(0x4001)}, 437},
		{"bare binding", stun.MethodBinding, nil, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req := stun.MustBuild(append([]stun.Setter{stun.TransactionID, stun.NewType(tt.method, stun.ClassRequest)}, tt.attrs...)...)
			resp := roundTrip(t, c, req)
			code := 0
			var ec stun.ErrorCodeAttribute
			if ec.GetFrom(resp) == nil {
				code = int(ec.Code)
			}
			if code != tt.code {
				t.Errorf("got %d, want %d", code, tt.code)
			}
			if ratio := float64(len(resp.Raw)) / float64(len(req.Raw)); ratio > 3 {
				t.Errorf("%d-byte request, %d-byte answer: ratio %.2f > 3", len(req.Raw), len(resp.Raw), ratio)
			}
		})
	}
}

// TestAmbiguousChannelDataDropped: ChannelData that pion/turn's STUNConn
// would read as a STUN message (the magic cookie in its bytes 4 to 7), or
// frame by the bytes after it (empty), is dropped, and the connection goes
// on: the request after it is answered on its own.
func TestAmbiguousChannelDataDropped(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	user, pass, _ := s.cfg.Credentials.Mint("ambiguous", time.Now())
	sess := newRawSessionOn(t, dialTCP(t, s.tcp), user, pass)
	if code := sess.request(stun.MethodAllocate, udpTransport); code != 0 {
		t.Fatalf("Allocate: %d", code)
	}
	for _, frame := range [][]byte{
		{0x40, 0x00, 0x00, 0x04, 0x21, 0x12, 0xA4, 0x42},
		{0x40, 0x00, 0x00, 0x01, 0x21, 0x12, 0xA4, 0x42},
		{0x40, 0x00, 0x00, 0x00},
	} {
		before := s.Stats().DroppedNotSTUN.Load()
		if _, err := sess.c.Write(frame); err != nil {
			t.Fatal(err)
		}
		if code := sess.request(stun.MethodRefresh, lifetime(600)); code != 0 {
			t.Errorf("Refresh after %x: got %d, want 0", frame, code)
		}
		if got := s.Stats().DroppedNotSTUN.Load(); got != before+1 {
			t.Errorf("after %x: %d frames dropped, want %d", frame, got, before+1)
		}
	}
}
