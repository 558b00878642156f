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
	r, err := New(Config{RelayIP: netipLoopback, MinPort: 20000, MaxPort: 29999, Loops: 1, Guard: passAll{}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	peer := listenLoopback(t)
	// Two listener sockets on the one loop, an allocation through each.
	type call struct {
		client *net.UDPConn
		ctrl   net.PacketConn
		to     *net.UDPAddr // the relayed address
	}
	open := func() call {
		client := listenLoopback(t)
		lc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		local := lc.LocalAddr()
		ctrl, gen, err := r.Adopt(lc)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ctrl.Close() })
		sock, relayed, err := gen.AllocatePacketConn("udp4", 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { sock.Close() })
		r.AllocationCreated(client.LocalAddr(), local, relayed)
		r.Permission(relayed, net.IPv4(127, 0, 0, 1), true)
		return call{client: client, ctrl: ctrl, to: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: relayed.(*net.UDPAddr).Port}}
	}
	// relayed sends from the peer to c and waits for the client to get it.
	relayed := func(c call, what string) {
		t.Helper()
		if _, err := peer.WriteTo([]byte(what), c.to); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1500)
		_ = c.client.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.client.Read(buf); err != nil {
			t.Fatalf("%s: nothing relayed: %v", what, err)
		}
	}
	closed, open2 := open(), open()
	relayed(closed, "before the close")

	closed.ctrl.Close()
	// New sockets take the lowest free descriptor numbers: the closed
	// listener's among them.
	for i := 0; i < 4; i++ {
		listenLoopback(t)
	}
	if _, err := peer.WriteTo([]byte("after the close"), closed.to); err != nil {
		t.Fatal(err)
	}
	// "after the close" is queued on its relay socket before "probe" is
	// sent; epoll reports sockets in the order they became ready, and the
	// loop handles one at a time: once probe arrives, the first was
	// handled.
	relayed(open2, "probe")
	raw, err := closed.client.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
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
