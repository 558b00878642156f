//go:build linux && (amd64 || arm64)

package udprelay

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v3"
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
	open := func() testCall {
		c := openCall(t, r.(*relay))
		c.permit(peer, 0)
		return c
	}
	// relayed sends from the peer to c and waits for the client to get it.
	relayed := func(c testCall, what string) {
		t.Helper()
		if _, err := peer.WriteTo([]byte(what), c.relayed); err != nil {
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
	if _, err := peer.WriteTo([]byte("after the close"), closed.relayed); err != nil {
		t.Fatal(err)
	}
	// "after the close" is queued on its relay socket before "probe" is
	// sent; epoll reports sockets in the order they became ready, and the
	// loop handles one at a time: once probe arrives, the first was
	// handled.
	relayed(open2, "probe")
	expectNothing(t, closed.client, "after the listener closed")
}
