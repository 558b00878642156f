//go:build linux && (amd64 || arm64)

package udprelay

import "testing"

// TestRelayState checks the sorted permission and channel lists the relay
// loops read: rebinding a channel or a peer replaces the old binding, and
// removal takes only the exact binding.
func TestRelayState(t *testing.T) {
	var st *state
	st = st.clone()
	for _, ip := range []uint32{30, 10, 20, 10} {
		st.setPermission(ip, true)
	}
	if len(st.perms) != 3 || !st.permitted(10) || !st.permitted(30) || st.permitted(15) {
		t.Fatalf("perms %v", st.perms)
	}
	st.setPermission(20, false)
	if st.permitted(20) || len(st.perms) != 2 {
		t.Fatalf("perms after removal %v", st.perms)
	}
	a, b := peerKey(10, 1000), peerKey(30, 2000)
	st.setChannel(a, 0x4001, true)
	st.setChannel(b, 0x4000, true)
	if n, ok := st.channelTo(a); !ok || n != 0x4001 {
		t.Errorf("channel to a: %#x %v", n, ok)
	}
	if p, ok := st.peerOf(0x4000); !ok || p != b {
		t.Errorf("peer of 0x4000: %v %v", p, ok)
	}
	// Rebinding 0x4000 to a moves it; a's old channel 0x4001 goes.
	next := st.clone()
	next.setChannel(a, 0x4000, true)
	if _, ok := next.peerOf(0x4001); ok {
		t.Error("0x4001 still bound after its peer was rebound")
	}
	if _, ok := next.channelTo(b); ok {
		t.Error("b still has a channel after 0x4000 was rebound")
	}
	if len(next.channels) != 1 || len(next.byNumber) != 1 {
		t.Errorf("after rebinding: %v %v", next.channels, next.byNumber)
	}
	// The published state did not change.
	if n, ok := st.channelTo(b); !ok || n != 0x4000 {
		t.Error("clone shares its lists with the original")
	}
	next.setChannel(a, 0x4001, false) // not a's channel: nothing goes
	if _, ok := next.channelTo(a); !ok {
		t.Error("removing another number dropped a's binding")
	}
	next.setChannel(a, 0x4000, false)
	if len(next.channels) != 0 || len(next.byNumber) != 0 {
		t.Errorf("after removal: %v %v", next.channels, next.byNumber)
	}
}
