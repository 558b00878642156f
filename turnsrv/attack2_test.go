package turnsrv

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/stun/v3"

	"github.com/icebox-project/icebox/internal/testenv"
	"github.com/icebox-project/icebox/internal/turntest"
)

// Second round of outside attacks on the hardened TURN server
// (attack2). Tests marked REGRESSION GUARD pass on the code as it is and
// keep a door that held shut; the others fail while their door is open.

// TestQuotaRaceConcurrentAllocates: max_allocations_per_user is checked
// (quota.allow, pion's QuotaHandler) before the relay socket is bound and
// the allocation reported (quota.created), so each Allocate let through
// holds a reservation that counts like an allocation: Allocates of one
// user that arrive together on several TCP connections cannot all pass
// before any is counted. (Before reservations this let one credential
// hold 3 allocations under a cap of 2 on a loaded machine.)
func TestQuotaRaceConcurrentAllocates(t *testing.T) {
	t.Parallel()
	const capPerUser, conns = 2, 60
	s := startServer(t, func(c *Config) {
		c.MaxAllocationsPerUser = capPerUser
		c.MaxTCPConnectionsPerIP = 1000
	})
	user, pass, _ := s.cfg.Credentials.Mint("racer", time.Now())
	var sessions []*rawSession
	var reqs [][]byte
	for i := 0; i < conns; i++ {
		sess := newRawSessionOn(t, dialTCP(t, s.tcp), user, pass)
		sessions = append(sessions, sess)
		reqs = append(reqs, sess.signed(stun.MethodAllocate, udpTransport).Raw)
	}
	var start, done sync.WaitGroup
	start.Add(1)
	codes := make([]int, conns)
	for i, sess := range sessions {
		done.Add(1)
		go func(i int, c net.Conn) {
			defer done.Done()
			start.Wait()
			if _, err := c.Write(reqs[i]); err != nil {
				codes[i] = -1
				return
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 2048)
			n, err := c.Read(buf)
			if err != nil {
				codes[i] = -1
				return
			}
			m := &stun.Message{Raw: buf[:n]}
			if m.Decode() != nil {
				codes[i] = -1
				return
			}
			if m.Type.Class == stun.ClassSuccessResponse {
				codes[i] = 0
				return
			}
			var ec stun.ErrorCodeAttribute
			_ = ec.GetFrom(m)
			codes[i] = int(ec.Code)
		}(i, sess.c)
	}
	start.Done()
	done.Wait()
	ok := 0
	for _, c := range codes {
		if c == 0 {
			ok++
		}
	}
	t.Logf("codes: %v", codes)
	if got := s.Stats().AllocationsActive.Load(); ok > capPerUser || got > capPerUser {
		t.Errorf("one credential holds %d allocations (%d successes), cap per user %d", got, ok, capPerUser)
	}
}

// listenPeer binds a UDP socket on ip at a port inside the test server's
// relay range (20000-29999), where the peer filter judges it by the
// allow and deny lists.
func listenPeer(t *testing.T, ip string) *net.UDPConn {
	t.Helper()
	for port := 20000 + int(time.Now().UnixNano()%9000); port < 30000; port++ {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip), Port: port})
		if err == nil {
			t.Cleanup(func() { c.Close() })
			return c
		}
	}
	t.Fatal("no free port for the peer")
	return nil
}

// channelData frames data as ChannelData on channel ch (RFC 8656 §12.4),
// padded to 4 bytes.
func channelData(ch uint16, data []byte) []byte {
	b := make([]byte, 4+(len(data)+3)&^3)
	b[0], b[1] = byte(ch>>8), byte(ch)
	b[2], b[3] = byte(len(data)>>8), byte(len(data))
	copy(b[4:], data)
	return b
}

// arrives reports whether peer receives anything within wait.
func arrives(peer *net.UDPConn, wait time.Duration) bool {
	_ = peer.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 2048)
	_, _, err := peer.ReadFrom(buf)
	return err == nil
}

// TestReloadDeniedPeerUnreachable: an operator who adds a peer range to
// deny_peers and reloads means the relay stops reaching it, and it the
// client, at once: over UDP (the relay loops judge their permissions and
// channel bindings again after the reload, relaySock.current) and TCP
// (pion/turn's path judges every datagram, countingConn), on a channel
// bound before the reload, whose refresh is now refused with 403.
func TestReloadDeniedPeerUnreachable(t *testing.T) {
	t.Parallel()
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, nil) // 127.0.0.0/8 allowed (on relay ports)
			peer := listenPeer(t, "127.0.0.2")
			peerAP := peer.LocalAddr().(*net.UDPAddr).AddrPort()
			user, pass, _ := s.cfg.Credentials.Mint("alice", time.Now())
			var sess *rawSession
			if network == "udp" {
				sess = newRawSession(t, s.udp, user, pass)
			} else {
				sess = newRawSessionOn(t, dialTCP(t, s.tcp), user, pass)
			}
			if code := sess.request(stun.MethodAllocate, udpTransport); code != 0 {
				t.Fatalf("Allocate: %d", code)
			}
			if code := sess.request(stun.MethodChannelBind, peerAddr(peerAP), channelNumber(0x4001)); code != 0 {
				t.Fatalf("ChannelBind while the peer is allowed: %d", code)
			}
			if _, err := sess.c.Write(channelData(0x4001, []byte("before"))); err != nil {
				t.Fatal(err)
			}
			if !arrives(peer, 2*time.Second) {
				t.Fatal("ChannelData did not reach the allowed peer")
			}
			// The operator denies every peer but the relayed address.
			if err := s.Update(Update{Credentials: s.cfg.Credentials, DenyPeers: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}}); err != nil {
				t.Fatal(err)
			}
			if code := sess.request(stun.MethodChannelBind, peerAddr(peerAP), channelNumber(0x4001)); code != 403 {
				t.Fatalf("ChannelBind refresh after the reload: got %d, want 403", code)
			}
			before, denied := s.Stats().PacketsToPeers.Load(), s.Stats().DroppedPeerDenied.Load()
			for i := 0; i < 3; i++ {
				if _, err := sess.c.Write(channelData(0x4001, []byte("after the reload"))); err != nil {
					t.Fatal(err)
				}
			}
			// Each datagram is judged before it would be sent: once all
			// three are counted as denied, one that had been sent would
			// already wait in the peer's socket.
			testenv.Eventually(t, closeGuard, "three datagrams denied", func() bool { return s.Stats().DroppedPeerDenied.Load() >= denied+3 })
			if arrives(peer, time.Millisecond) {
				t.Errorf("over %s, ChannelData on a channel bound before the reload still reaches %s, denied since (%d packets to peers)",
					network, peerAP, s.Stats().PacketsToPeers.Load()-before)
			}
			// Nor does the denied peer reach the client: a marker from
			// another allocation's relayed address, a peer still allowed,
			// sent after the denied peer's datagram to the same relayed
			// address, is the first thing the client receives.
			marker := turntest.MustAllocate(t, s.udp, user, pass)
			markerAP := marker.Conn.LocalAddr().(*net.UDPAddr).AddrPort()
			if code := sess.request(stun.MethodCreatePermission, peerAddr(markerAP)); code != 0 {
				t.Fatalf("CreatePermission for the marker's relayed address: %d", code)
			}
			if _, err := peer.WriteToUDP([]byte("from the denied peer"), net.UDPAddrFromAddrPort(sess.relayed)); err != nil {
				t.Fatal(err)
			}
			if err := marker.Conn.SetWriteDeadline(time.Now().Add(closeGuard)); err != nil {
				t.Fatal(err)
			}
			if _, err := marker.Conn.WriteTo([]byte("marker"), net.UDPAddrFromAddrPort(sess.relayed)); err != nil {
				t.Fatal(err)
			}
			if got := firstRelayed(t, sess.c); got != "marker" {
				t.Errorf("over %s, the client received %q from a peer denied by the reload before the marker", network, got)
			}
		})
	}
}

// TestUnauthenticatedAnswersSmallOnAllocation: the amplification bound
// (an answer to an unauthenticated request at most 3× its size, as
// TestUnauthenticatedAnswersSmall checks on a fresh 5-tuple) must hold
// also from a 5-tuple that holds an allocation: an attacker forging the
// source address of a TURN client in a call (its address and port are in
// every ICE candidate it relays) sends bare 20-byte Refresh,
// CreatePermission and ChannelBind requests; the guard passes them to
// pion/turn (guard.unauthenticated: the 5-tuple has an allocation), which
// answers each with a 401 challenge carrying a NONCE and a REALM.
func TestUnauthenticatedAnswersSmallOnAllocation(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	user, pass, _ := s.cfg.Credentials.Mint("victim", time.Now())
	victim := newRawSession(t, s.udp, user, pass)
	if code := victim.request(stun.MethodAllocate, udpTransport); code != 0 {
		t.Fatalf("the victim's Allocate: %d", code)
	}
	// The forged requests come from the victim's 5-tuple: here, its socket.
	for _, method := range []stun.Method{stun.MethodRefresh, stun.MethodCreatePermission, stun.MethodChannelBind} {
		t.Run(method.String(), func(t *testing.T) {
			req := stun.MustBuild(stun.TransactionID, stun.NewType(method, stun.ClassRequest))
			resp := roundTrip(t, victim.c, req)
			if ratio := float64(len(resp.Raw)) / float64(len(req.Raw)); ratio > 3 {
				t.Errorf("%d-byte unauthenticated %s, %d-byte answer: ratio %.2f > 3", len(req.Raw), method, len(resp.Raw), ratio)
			}
		})
	}
}

// TestUnauthenticatedAnswersSmallLongRealm: pion/turn's 401 challenge to
// a 28-byte Allocate with REQUESTED-TRANSPORT, the smallest request the
// guard hands to it unauthenticated, carries the REALM: with the longest
// realm icebox serves (MaxRealmLength) the answer is at most 3× the
// request, from any forged source address, and a longer realm is refused.
func TestUnauthenticatedAnswersSmallLongRealm(t *testing.T) {
	t.Parallel()
	if _, err := New(Config{Realm: strings.Repeat("r", MaxRealmLength+1), Listeners: []Listener{{Network: "udp", Addr: "127.0.0.1:0"}}}); !errors.Is(err, ErrRealmTooLong) {
		t.Errorf("a realm of %d bytes: got %v, want ErrRealmTooLong", MaxRealmLength+1, err)
	}
	long := "turn.video.example.co.uk" // 24 bytes
	s := startServer(t, func(c *Config) { c.Realm = long })
	c, err := net.Dial("udp4", s.udp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), udpTransport)
	resp := roundTrip(t, c, req)
	if ratio := float64(len(resp.Raw)) / float64(len(req.Raw)); ratio > 3 {
		t.Errorf("realm of %d bytes: %d-byte Allocate, %d-byte answer: ratio %.2f > 3", len(long), len(req.Raw), len(resp.Raw), ratio)
	}
}

// REGRESSION GUARD (held): TestWrappedRequestBytewise: the framing
// desync of TestWrappedRequestsRefused, with every byte in its own TCP
// write (over TLS, its own record), so that the guard's frame reader and
// pion/turn's STUNConn both see the frames split across many reads. The
// hidden Allocate with an expired credential never reaches pion/turn:
// the connection is closed at the wrapping frame.
func TestWrappedRequestBytewise(t *testing.T) {
	t.Parallel()
	for _, transport := range []string{"tcp", "tls"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			var ahead atomic.Int64
			s, dial := desyncServer(t, &ahead)
			user, pass, _ := s.cfg.Credentials.Mint("bytewise", time.Now())
			ahead.Store(int64(3 * time.Second)) // expired
			sess := newRawSessionOn(t, dial[transport](t), user, pass)
			before := s.Stats().TCPClosedBadFrame.Load()
			// The server may close before the last byte: a failed write ends it.
			for _, b := range wrapped(sess.signed(stun.MethodAllocate, udpTransport).Raw) {
				if _, err := sess.c.Write([]byte{b}); err != nil {
					break
				}
			}
			if got := readUntilClosed(t, sess.c); len(got) != 0 {
				t.Errorf("the server answered %d bytes: %x", len(got), got)
			}
			testenv.Eventually(t, closeGuard, "the close counted as a bad frame", func() bool { return s.Stats().TCPClosedBadFrame.Load() > before })
			if got := s.Stats().AllocationsActive.Load(); got != 0 {
				t.Errorf("%d allocations with an expired credential", got)
			}
		})
	}
}

// REGRESSION GUARD (held): TestSHA256IntegrityOnlyNotTrusted: a request
// carrying MESSAGE-INTEGRITY-SHA256 (RFC 8489 §14.6) but no
// MESSAGE-INTEGRITY is unauthenticated to the guard and to pion/turn
// alike (neither checks the SHA-256 form): a revoked credential signing
// that way gets a 401 challenge and no allocation, on UDP and TCP.
func TestSHA256IntegrityOnlyNotTrusted(t *testing.T) {
	t.Parallel()
	s := startServer(t, nil)
	user, pass, _ := s.cfg.Credentials.Mint("sha256", time.Now())
	revoke(t, s)
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			var sess *rawSession
			if network == "udp" {
				sess = newRawSession(t, s.udp, user, pass)
			} else {
				sess = newRawSessionOn(t, dialTCP(t, s.tcp), user, pass)
			}
			mac := stun.RawAttribute{Type: stun.AttrType(0x001C), Value: make([]byte, 32)}
			req := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), udpTransport,
				stun.NewUsername(sess.username), stun.NewRealm(sess.realm), stun.NewNonce(sess.nonce), mac, stun.Fingerprint)
			resp := roundTrip(t, sess.c, req)
			var ec stun.ErrorCodeAttribute
			if resp.Type.Class == stun.ClassSuccessResponse || ec.GetFrom(resp) != nil || ec.Code != 401 {
				t.Errorf("Allocate signed with MESSAGE-INTEGRITY-SHA256 only: %s %v, want a 401", resp.Type, ec.Code)
			}
		})
	}
	if got := s.Stats().AllocationsActive.Load(); got != 0 {
		t.Errorf("%d allocations", got)
	}
}

// REGRESSION GUARD (held): TestBindingAmplificationIPv6: a Binding
// request over IPv6 gets the longest XOR-MAPPED-ADDRESS (20 bytes) and a
// FINGERPRINT: 52 bytes for 20, within the 3× bound.
func TestBindingAmplificationIPv6(t *testing.T) {
	t.Parallel()
	s := startServer(t, func(c *Config) {
		c.Listeners = []Listener{{Network: "udp", Addr: "[::1]:0"}}
	})
	c, err := net.Dial("udp6", s.Addrs()[0].String())
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	defer c.Close()
	req := stun.MustBuild(stun.TransactionID, stun.BindingRequest)
	resp := roundTrip(t, c, req)
	if ratio := float64(len(resp.Raw)) / float64(len(req.Raw)); ratio > 3 {
		t.Errorf("%d-byte Binding, %d-byte answer: ratio %.2f > 3", len(req.Raw), len(resp.Raw), ratio)
	}
}

// firstRelayed reads c until a Data indication or ChannelData arrives
// and returns its data; STUN responses before it are skipped.
func firstRelayed(t *testing.T, c net.Conn) string {
	t.Helper()
	buf := make([]byte, 0, 4096)
	tmp := make([]byte, 2048)
	_ = c.SetReadDeadline(time.Now().Add(closeGuard))
	defer c.SetReadDeadline(time.Time{})
	for {
		for len(buf) >= 4 {
			if buf[0]&0xC0 == 0x40 { // ChannelData
				n := int(buf[2])<<8 | int(buf[3])
				if len(buf) < 4+n {
					break
				}
				return string(buf[4 : 4+n])
			}
			if len(buf) < 20 {
				break
			}
			n := 20 + (int(buf[2])<<8 | int(buf[3]))
			if len(buf) < n {
				break
			}
			m := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			buf = buf[n:]
			if m.Decode() == nil && m.Type == stun.NewType(stun.MethodData, stun.ClassIndication) {
				data, err := m.Get(stun.AttrData)
				if err != nil {
					t.Fatalf("Data indication without DATA: %v", err)
				}
				return string(data)
			}
		}
		n, err := c.Read(tmp)
		if err != nil {
			t.Fatalf("nothing relayed to the client: %v", err)
		}
		buf = append(buf, tmp[:n]...)
	}
}

// TestQuotaReservations: an Allocate let through holds its place until
// its allocation is reported, so a second one of the same user from
// another address is refused under a cap of 1 before the first is counted;
// the report takes the reservation's place instead of a second one, and a
// retransmission from the same address takes its own place again.
func TestQuotaReservations(t *testing.T) {
	s := startServer(t, func(c *Config) { c.MaxAllocationsPerUser = 1 })
	q := s.quota
	user, _, _ := s.cfg.Credentials.Mint("reserver", time.Now())
	a := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 5000}
	b := &net.UDPAddr{IP: net.IPv4(192, 0, 2, 2), Port: 5000}
	local := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 3478}
	if !q.allow(user, realm, a) {
		t.Fatal("the first Allocate was refused")
	}
	if !q.allow(user, realm, a) {
		t.Error("a retransmission from the same 5-tuple was refused")
	}
	if q.allow(user, realm, b) {
		t.Error("a second Allocate was let through while the first held the only place")
	}
	q.created(a, local, "udp", user, realm, nil, 0)
	if q.allow(user, realm, b) {
		t.Error("a second Allocate was let through after the first was created")
	}
	q.mu.Lock()
	n, held := q.perUser[q.userOf(user)], len(q.reserved)
	q.mu.Unlock()
	if n != 1 || held != 0 {
		t.Errorf("after the allocation was reported: %d counted, %d reservations, want 1 and 0", n, held)
	}
	q.deleted(a, local, "udp", user, realm)
	if !q.allow(user, realm, b) {
		t.Error("an Allocate was refused after the only allocation was deleted")
	}
}
