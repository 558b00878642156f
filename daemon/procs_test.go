package daemon

import (
	"runtime"
	"testing"
)

// TestRelayPlan: turn.udp_sockets sets the sockets per UDP listener and
// the relay loops, one per socket (udp_sockets: 1 runs one loop); 0 means
// one per core.
func TestRelayPlan(t *testing.T) {
	for _, tc := range []struct{ udpSockets, cores, sockets, loops int }{
		{0, 4, 4, 4},
		{1, 4, 1, 1},
		{3, 8, 3, 3},
		{0, 0, 1, 1},
	} {
		sockets, loops := relayPlan(tc.udpSockets, tc.cores)
		if sockets != tc.sockets || loops != tc.loops {
			t.Errorf("relayPlan(%d, %d): got %d sockets, %d loops, want %d, %d",
				tc.udpSockets, tc.cores, sockets, loops, tc.sockets, tc.loops)
		}
	}
}

// TestSetProcs: GOMAXPROCS is set to cores + loops, the same however often
// it is called, and left alone without cores or loops.
func TestSetProcs(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(before) })
	setProcs(before, 2)
	setProcs(before, 2)
	if got := runtime.GOMAXPROCS(0); got != before+2 {
		t.Errorf("after setProcs(%d, 2) twice: GOMAXPROCS %d, want %d", before, got, before+2)
	}
	setProcs(0, 3)
	setProcs(before, 0)
	if got := runtime.GOMAXPROCS(0); got != before+2 {
		t.Errorf("setProcs without cores or loops changed GOMAXPROCS to %d", got)
	}
}
