package bitrate

import (
	"testing"
	"time"
)

func TestBitrateLimit(t *testing.T) {
	// 800 kbps is 100,000 bytes/s: a 1000-byte datagram takes 10 ms of the
	// cap, and 500 ms of burst is 50 of them.
	l := NewLimit(800_000)
	now := int64(time.Second)
	passed := 0
	for i := 0; i < 80; i++ {
		if l.Allow(now, 1000) {
			passed++
		}
	}
	if passed != 50 {
		t.Errorf("burst at once: %d datagrams passed, want 50", passed)
	}
	// 100 ms later, 10 more fit.
	now += int64(100 * time.Millisecond)
	passed = 0
	for i := 0; i < 20; i++ {
		if l.Allow(now, 1000) {
			passed++
		}
	}
	if passed != 10 {
		t.Errorf("after 100 ms: %d passed, want 10", passed)
	}
	// At exactly the cap, for 10 s, every datagram passes.
	for i := 0; i < 1000; i++ {
		now += int64(10 * time.Millisecond)
		if !l.Allow(now, 1000) {
			t.Fatalf("datagram %d at the cap was dropped", i)
		}
	}
	// A cap below one datagram per burst still passes a full-size one
	// when the bucket is full.
	slow := NewLimit(8_000)
	if !slow.Allow(0, FullDatagram) || slow.Allow(0, FullDatagram) {
		t.Error("8 kbps: want the first MTU-sized datagram to pass and the second to be dropped")
	}
	if NewLimit(0) != nil || NewAllocation(-1) != nil {
		t.Error("no cap should be a nil limit")
	}
}

func BenchmarkBitrateLimit(b *testing.B) {
	l := NewLimit(10_000_000_000)
	for i := 0; i < b.N; i++ {
		l.Allow(Now(), 1200)
	}
}

// TestBitrateCap: with a 160 kbps cap, a burst of 100 datagrams of 1000
// bytes gets about 500 ms worth (10) through in each direction, over UDP
// (icebox's relay path) and TCP (pion/turn's); the rest are dropped and
// counted, and after a pause the flow passes again.
