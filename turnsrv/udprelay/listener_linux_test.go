//go:build linux && (amd64 || arm64)

package udprelay

import (
	"net/netip"
	"testing"
)

// TestControlQueueFull: datagrams for pion/turn past a full queue are
// dropped and counted, the queued ones are kept in order, and a full
// queue of strangers' datagrams leaves room for clients with allocations,
// which ReadFrom serves first.
func TestControlQueueFull(t *testing.T) {
	var stats Counters
	ln := &listener{known: make(chan ctrlPacket, ControlQueue), queue: make(chan ctrlPacket, ControlQueue),
		closed: make(chan struct{}), stats: &stats}
	from := netip.MustParseAddrPort("192.0.2.1:5000")
	for i := 0; i < ControlQueue+6; i++ {
		ln.deliver([]byte{byte(i), byte(i >> 8)}, from, false)
	}
	if got := ln.stats.DroppedControl.Load(); got != 6 {
		t.Errorf("%d dropped, want 6", got)
	}
	client := netip.MustParseAddrPort("192.0.2.2:6000")
	ln.deliver([]byte{0xAA, 0xBB}, client, true)
	if got := ln.stats.DroppedControl.Load(); got != 6 {
		t.Errorf("a client with an allocation was dropped behind a full queue: %d dropped, want 6", got)
	}
	buf := make([]byte, 64)
	n, addr, err := ln.ReadFrom(buf)
	if err != nil || n != 2 || buf[0] != 0xAA || addr.String() != client.String() {
		t.Errorf("first read: % x from %v (%v), want aa bb from %s", buf[:n], addr, err, client)
	}
	n, addr, err = ln.ReadFrom(buf)
	if err != nil || n != 2 || buf[0] != 0 || addr.String() != from.String() {
		t.Errorf("second read: % x from %v (%v), want 00 00 from %s", buf[:n], addr, err, from)
	}
}
