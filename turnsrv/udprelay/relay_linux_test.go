//go:build linux && (amd64 || arm64)

package udprelay

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	"golang.org/x/sys/unix"
)

var netipLoopback = netip.MustParseAddr("127.0.0.1")

// passAll is a Guard that lets every datagram through to pion/turn.
type passAll struct{}

func (passAll) Admit(_ *stun.Message, b []byte, _, _ net.Addr) ([]byte, int, bool) {
	return nil, len(b), true
}

func listenLoopback(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestNoSendAfterListenerClose: once a listener socket is closed, its
// loop sends nothing for the allocations made through it, even when the
// kernel has given the descriptor's number to a new socket (which would
// otherwise send relayed bytes from another address).
func TestNoSendAfterListenerClose(t *testing.T) {
	var stats Stats
	r, err := New(Config{RelayIP: netipLoopback, MinPort: 40000, MaxPort: 49999, Loops: 1, Guard: passAll{}, Stats: stats})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	st := &r.(*relay).cfg.Stats
	client, peer := listenLoopback(t), listenLoopback(t)
	lc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	local := lc.LocalAddr()
	ctrl, gen, err := r.Adopt(lc)
	if err != nil {
		t.Fatal(err)
	}
	sock, relayed, err := gen.AllocatePacketConn("udp4", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	r.AllocationCreated(client.LocalAddr(), local, relayed)
	r.Permission(relayed, net.IPv4(127, 0, 0, 1), true)
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: relayed.(*net.UDPAddr).Port}

	// Before the close: the peer's datagram reaches the client as a Data
	// indication.
	if _, err := peer.WriteTo([]byte("before"), to); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := client.Read(buf); err != nil {
		t.Fatalf("before the close: nothing relayed: %v", err)
	}

	ctrl.Close()
	// New sockets take the lowest free descriptor numbers: the closed
	// listener's among them.
	for i := 0; i < 4; i++ {
		listenLoopback(t)
	}
	if _, err := peer.WriteTo([]byte("after"), to); err != nil {
		t.Fatal(err)
	}
	// The loop counts a batch once it has been sent.
	deadline := time.Now().Add(5 * time.Second)
	for st.PacketsFromPeers.Load() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the peer's second datagram never reached the loop")
		}
		time.Sleep(time.Millisecond)
	}
	// Loopback delivers within the send: whatever was sent is queued.
	raw, err := client.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var from unix.Sockaddr
	var rerr error
	if err := raw.Control(func(fd uintptr) { n, from, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT) }); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(rerr, unix.EAGAIN) {
		t.Fatalf("after the listener closed, the client got % x from %v (%v), want nothing", buf[:max(n, 0)], from, rerr)
	}
}
