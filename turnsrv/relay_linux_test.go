//go:build linux && (amd64 || arm64)

package turnsrv

import (
	"encoding/binary"
	"fmt"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/pion/stun/v3"

	"github.com/icebox-project/icebox/internal/testenv"
	"github.com/icebox-project/icebox/internal/turntest"
)

// TestRelayAllocatesNothingPerDatagram relays ChannelData both ways
// through icebox's UDP path and counts heap allocations in the whole
// process: the relay must make none per datagram, with or without a
// bitrate cap.
func TestRelayAllocatesNothingPerDatagram(t *testing.T) {
	t.Run("no cap", func(t *testing.T) { relayCountingAllocs(t, 0) })
	t.Run("1Gbps cap", func(t *testing.T) { relayCountingAllocs(t, 1_000_000_000) })
}

func relayCountingAllocs(t *testing.T, bitrate int64) {
	s := startServer(t, func(c *Config) { c.MaxBitratePerAllocation = bitrate })
	user, pass, _ := s.cfg.Credentials.Mint("zero", time.Now())
	sess := newRawSession(t, s.udp, user, pass)
	if code := sess.request(stun.MethodAllocate, udpTransport); code != 0 {
		t.Fatalf("Allocate: %d", code)
	}
	echo := turntest.UDPEcho(t) // allocates nothing per datagram either
	if code := sess.request(stun.MethodChannelBind, peerAddr(echo.(*net.UDPAddr).AddrPort()), channelNumber(0x4001)); code != 0 {
		t.Fatalf("ChannelBind: %d", code)
	}
	frame := make([]byte, 4+100)
	binary.BigEndian.PutUint16(frame[0:2], 0x4001)
	binary.BigEndian.PutUint16(frame[2:4], 100)
	buf := make([]byte, 1500)
	_ = sess.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	roundTrips := func(n int) {
		for i := 0; i < n; i++ {
			if _, err := sess.c.Write(frame); err != nil {
				t.Fatal(err)
			}
			if m, err := sess.c.Read(buf); err != nil || m != len(frame) {
				t.Fatalf("round trip %d: %d bytes, %v", i, m, err)
			}
		}
	}
	roundTrips(200) // the first datagrams may go through pion/turn
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	const n = 2000
	roundTrips(n)
	runtime.ReadMemStats(&after)
	perDatagram := float64(after.Mallocs-before.Mallocs) / (2 * n)
	t.Logf("%d heap allocations for %d relayed datagrams", after.Mallocs-before.Mallocs, 2*n)
	if perDatagram > 0.05 {
		t.Errorf("%.2f heap allocations per relayed datagram, want none", perDatagram)
	}
}

// TestAllocationHoldsNoGoroutine: the epoll loops read relay sockets, so
// a UDP allocation keeps no goroutine of its own (pion/turn's reader ends
// at its first read). Allocations still relay, and still go away through
// pion/turn: Refresh with lifetime 0 deletes them, fires the deletion
// events and releases their relay ports.
func TestAllocationHoldsNoGoroutine(t *testing.T) {
	s := startServer(t, nil)
	echo := turntest.UDPEcho(t)
	before := runtime.NumGoroutine()
	const n = 40
	frame := make([]byte, 4+20)
	binary.BigEndian.PutUint16(frame[0:2], 0x4000)
	binary.BigEndian.PutUint16(frame[2:4], 20)
	buf := make([]byte, 1500)
	var sessions []*rawSession
	for i := 0; i < n; i++ {
		user, pass, _ := s.cfg.Credentials.Mint(fmt.Sprintf("g%d", i), time.Now())
		sess := newRawSession(t, s.udp, user, pass)
		if code := sess.request(stun.MethodAllocate, udpTransport); code != 0 {
			t.Fatalf("Allocate %d: %d", i, code)
		}
		if code := sess.request(stun.MethodChannelBind, peerAddr(echo.(*net.UDPAddr).AddrPort()), channelNumber(0x4000)); code != 0 {
			t.Fatalf("ChannelBind %d: %d", i, code)
		}
		_ = sess.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := sess.c.Write(frame); err != nil {
			t.Fatal(err)
		}
		if m, err := sess.c.Read(buf); err != nil || m != len(frame) {
			t.Fatalf("allocation %d: echo through the relay: %d bytes, %v", i, m, err)
		}
		sessions = append(sessions, sess)
	}
	testenv.Eventually(t, closeGuard, fmt.Sprintf("%d allocations holding far fewer than a goroutine each", n), func() bool {
		return runtime.NumGoroutine()-before < n/4
	})
	if got := s.Stats().AllocationsActive.Load(); got != n {
		t.Fatalf("active allocations: got %d, want %d", got, n)
	}
	zero := stun.RawAttribute{Type: stun.AttrLifetime, Value: []byte{0, 0, 0, 0}}
	for i, sess := range sessions {
		if code := sess.request(stun.MethodRefresh, zero); code != 0 {
			t.Fatalf("Refresh 0 on allocation %d: %d", i, code)
		}
	}
	testenv.Eventually(t, closeGuard, "every allocation deleted after Refresh 0", func() bool {
		return s.Stats().AllocationsActive.Load() == 0 && s.AllocationCount() == 0
	})
	testenv.Eventually(t, closeGuard, "every relay port released", func() bool { return relayPorts(s.Server) == 0 })
}
