package turnsrv

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/pion/stun/v3"

	"github.com/icebox-project/icebox/internal/testenv"
	"github.com/icebox-project/icebox/internal/turntest"
)

// relayPorts is the number of relayed addresses udprelay's loops hold (0
// where pion/turn relays).
func relayPorts(s *Server) int {
	n := 0
	for _, k := range s.udp.Loops() {
		n += k
	}
	return n
}

func lifetime(seconds uint32) stun.RawAttribute {
	v := make([]byte, 4)
	binary.BigEndian.PutUint32(v, seconds)
	return stun.RawAttribute{Type: stun.AttrLifetime, Value: v}
}

// TestPionCoupling checks what udprelay relies on in pion/turn
// (udprelay.PionTurnVersion; see udprelay's endPionReader): the reader
// pion/turn starts per allocation ends at its first read, and everything
// else still happens through pion/turn's manager and timers. If a
// pion/turn upgrade moves any of it into that reader, a subtest here
// fails.
func TestPionCoupling(t *testing.T) {
	echo := turntest.UDPEcho(t)
	echoAP := echo.(*net.UDPAddr).AddrPort()
	frame := make([]byte, 4+20)
	binary.BigEndian.PutUint16(frame[0:2], 0x4000)
	binary.BigEndian.PutUint16(frame[2:4], 20)

	// call allocates, binds channel 0x4000 to the echo peer and relays
	// one datagram both ways.
	call := func(t *testing.T, s *testServer) *rawSession {
		t.Helper()
		user, pass, _ := s.cfg.Credentials.Mint("pion", time.Now())
		sess := newRawSession(t, s.udp, user, pass)
		if code := sess.request(stun.MethodAllocate, udpTransport, lifetime(600)); code != 0 {
			t.Fatalf("Allocate: %d", code)
		}
		if code := sess.request(stun.MethodChannelBind, peerAddr(echoAP), channelNumber(0x4000)); code != 0 {
			t.Fatalf("ChannelBind: %d", code)
		}
		buf := make([]byte, 1500)
		_ = sess.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := sess.c.Write(frame); err != nil {
			t.Fatal(err)
		}
		if n, err := sess.c.Read(buf); err != nil || n != len(frame) {
			t.Fatalf("echo through the relay: %d bytes, %v", n, err)
		}
		if got := s.Stats().PermissionsActive.Load(); got != 1 {
			t.Fatalf("permissions active: got %d, want 1", got)
		}
		return sess
	}
	// gone waits until the allocation is deleted everywhere: in pion/turn's
	// manager, through OnAllocationDeleted (the quota's count), through
	// OnPermissionDeleted and OnChannelDeleted, and in udprelay.
	gone := func(t *testing.T, s *testServer) {
		t.Helper()
		testenv.Eventually(t, closeGuard, "allocation deleted in pion/turn", func() bool { return s.AllocationCount() == 0 })
		testenv.Eventually(t, closeGuard, "OnAllocationDeleted", func() bool { return s.Stats().AllocationsActive.Load() == 0 })
		testenv.Eventually(t, closeGuard, "OnPermissionDeleted", func() bool { return s.Stats().PermissionsActive.Load() == 0 })
		testenv.Eventually(t, closeGuard, "OnChannelDeleted", func() bool { return s.Stats().ChannelBindingsActive.Load() == 0 })
		testenv.Eventually(t, closeGuard, "relay port released", func() bool { return relayPorts(s.Server) == 0 })
	}

	t.Run("refresh 0", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, nil)
		sess := call(t, s)
		if code := sess.request(stun.MethodRefresh, lifetime(0)); code != 0 {
			t.Fatalf("Refresh 0: %d", code)
		}
		gone(t, s)
	})
	t.Run("expiry", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, nil)
		sess := call(t, s)
		// pion/turn grants any lifetime under an hour.
		if code := sess.request(stun.MethodRefresh, lifetime(1)); code != 0 {
			t.Fatalf("Refresh 1 s: %d", code)
		}
		gone(t, s)
	})
	t.Run("channel binding timer", func(t *testing.T) {
		t.Parallel()
		// Long enough for call's echo on a loaded machine.
		s := startServer(t, func(c *Config) { c.channelBindTimeout = 3 * time.Second })
		sess := call(t, s)
		testenv.Eventually(t, closeGuard, "channel binding expired", func() bool { return s.Stats().ChannelBindingsActive.Load() == 0 })
		if s.AllocationCount() != 1 || s.Stats().PermissionsActive.Load() != 1 {
			t.Fatalf("after the channel binding expired: %d allocations, %d permissions, want 1 and 1",
				s.AllocationCount(), s.Stats().PermissionsActive.Load())
		}
		// The relay saw the binding go: the peer's datagrams now come as
		// Data indications (RFC 8656 §11.4) under the permission.
		peer, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(sess.relayed))
		if err != nil {
			t.Fatal(err)
		}
		defer peer.Close()
		if _, err := peer.Write([]byte("after the binding")); err != nil {
			t.Fatal(err)
		}
		// The permission is for the echo peer's address (127.0.0.1), which
		// this socket shares.
		buf := make([]byte, 1500)
		_ = sess.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := sess.c.Read(buf)
		if err != nil {
			t.Fatalf("no datagram from the peer: %v", err)
		}
		m := &stun.Message{Raw: buf[:n]}
		if err := m.Decode(); err != nil || m.Type != stun.NewType(stun.MethodData, stun.ClassIndication) {
			t.Fatalf("got % x, want a Data indication", buf[:min(n, 8)])
		}
	})
}

// TestCloseWithManyAllocations: Server.Close returns in bounded time with
// 2,000 live allocations (pion/turn closes each through its manager; no
// reader of theirs is left to wait for), and leaves no relay port,
// goroutine or descriptor behind.
func TestCloseWithManyAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("2,000 allocations")
	}
	fds := openFDs(t)
	goroutines := runtime.NumGoroutine()
	s := startServer(t, nil)
	user, pass, _ := s.cfg.Credentials.Mint("many", time.Now())
	const n = 2000
	conns := make([]net.Conn, 0, n)
	for i := 0; i < n; i++ {
		sess := newRawSession(t, s.udp, user, pass)
		if code := sess.request(stun.MethodAllocate, udpTransport); code != 0 {
			t.Fatalf("Allocate %d: %d", i, code)
		}
		conns = append(conns, sess.c)
	}
	if got := s.AllocationCount(); got != n {
		t.Fatalf("live allocations: got %d, want %d", got, n)
	}
	start := time.Now()
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
		t.Logf("Close with %d allocations took %v", n, time.Since(start))
	case <-time.After(closeGuard):
		t.Fatalf("Close with %d live allocations did not return within %s", n, closeGuard)
	}
	if got := relayPorts(s.Server); got != 0 {
		t.Errorf("%d relay ports still open after Close", got)
	}
	for _, c := range conns {
		c.Close()
	}
	testenv.Eventually(t, closeGuard, "goroutines ended", func() bool { return runtime.NumGoroutine() <= goroutines })
	if fds >= 0 {
		testenv.Eventually(t, closeGuard, "descriptors closed", func() bool { return openFDs(t) <= fds })
	}
}

// openFDs counts the process's open descriptors (-1 where /proc is
// missing).
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

// TestServersLeaveNothing starts and closes 50 Servers, each relaying one
// allocation, in one process: GOMAXPROCS is unchanged (a Server never
// sets it) and no goroutine or descriptor is left.
func TestServersLeaveNothing(t *testing.T) {
	run := func() {
		s := startServer(t, nil)
		user, pass, _ := s.cfg.Credentials.Mint("one", time.Now())
		sess := newRawSession(t, s.udp, user, pass)
		if code := sess.request(stun.MethodAllocate, udpTransport); code != 0 {
			t.Fatalf("Allocate: %d", code)
		}
		if code := sess.request(stun.MethodCreatePermission, peerAddr(netip.MustParseAddrPort("127.0.0.1:25000"))); code != 0 {
			t.Fatalf("CreatePermission: %d", code)
		}
		sess.c.Close()
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	run() // lazily started parts of the runtime (the netpoller) stay
	procs, goroutines, fds := runtime.GOMAXPROCS(0), runtime.NumGoroutine(), openFDs(t)
	for i := 0; i < 50; i++ {
		run()
		if got := runtime.GOMAXPROCS(0); got != procs {
			t.Fatalf("server %d: GOMAXPROCS %d, want %d", i, got, procs)
		}
	}
	testenv.Eventually(t, closeGuard, "goroutines ended", func() bool { return runtime.NumGoroutine() <= goroutines })
	if fds >= 0 {
		testenv.Eventually(t, closeGuard, "descriptors closed", func() bool { return openFDs(t) <= fds })
	}
}

// TestPionUDPPath runs UDP through the fallback path, pion/turn's own
// sockets behind the guard (what serves UDP where udprelay is
// unavailable): it has no relay loops, relays and counts, and still
// refuses a forged credential.
func TestPionUDPPath(t *testing.T) {
	s := startServer(t, func(c *Config) { c.pionUDP = true; c.MaxBitratePerAllocation = capBitrate })
	if n := s.RelayLoops(); n != 0 {
		t.Errorf("relay loops on pion/turn's path: got %d, want 0", n)
	}
	peer := turntest.UDPEcho(t)
	user, pass, _ := s.cfg.Credentials.Mint("fallback", time.Now())
	relayRoundTrip(t, newClient(t, "udp", s.udp, user, pass), peer)
	if _, err := newClient(t, "udp", s.udp, user, "forged").Allocate(); err == nil {
		t.Error("Allocate with a forged password succeeded")
	}
	// The relay counts a datagram after sending it, so the peer's echo
	// may be back before the count.
	testenv.Eventually(t, 5*time.Second, "a packet to the peer counted", func() bool {
		return s.Stats().PacketsToPeers.Load() >= 1
	})
}
