package sfu

import (
	"testing"
	"time"
)

// TestProbeRate: probes only while a subscriber gets less than it asked
// for, on a path without loss or overuse, up to probeFill of the
// estimate or the rate asked for, whichever is less.
func TestProbeRate(t *testing.T) {
	for _, c := range []struct {
		name                  string
		estimate, media, need float64
		loss                  float64
		overusing             bool
		want                  float64
	}{
		{"gets what it asked for", 2e6, 500e3, 500e3, 0, false, 0},
		{"held below, estimate stalled", 350e3, 234e3, 900e3, 0, false, 0.9*350e3 - 234e3},
		{"held below, near what it asked for", 2e6, 400e3, 600e3, 0, false, 200e3},
		{"media already fills the estimate", 100e3, 234e3, 900e3, 0, false, 0},
		{"loss", 350e3, 234e3, 900e3, 0.05, false, 0},
		{"overuse", 350e3, 234e3, 900e3, 0, true, 0},
	} {
		if got := probeRate(c.estimate, c.media, c.need, c.loss, c.overusing); got != c.want {
			t.Errorf("%s: probeRate = %.0f, want %.0f", c.name, got, c.want)
		}
	}
}

// TestProber: copies are due at the probe rate, at most probeCopies per
// packet and probeBurst's worth after a pause, and none at rate 0.
func TestProber(t *testing.T) {
	var p prober
	at := time.Unix(0, 0)
	p.setRate(80_000, at) // 10 kB/s: one 1,000-byte copy per 100 ms
	var copies int
	for i := 1; i <= 100; i++ { // a 1,000-byte packet every 10 ms for 1 s
		copies += p.copies(1000, at.Add(time.Duration(i)*10*time.Millisecond))
	}
	if copies != 10 {
		t.Errorf("%d copies in 1 s at 80 kbit/s of 1,000-byte packets, want 10", copies)
	}
	// After 5 s without a packet, at most probeBurst's worth (1 copy)
	// is due, and never more than probeCopies for one packet.
	if n := p.copies(1000, at.Add(6*time.Second)); n != 1 {
		t.Errorf("after a pause: %d copies, want 1", n)
	}
	p.setRate(8_000_000, at.Add(7*time.Second))
	if n := p.copies(100, at.Add(8*time.Second)); n != probeCopies {
		t.Errorf("a small packet at a high rate: %d copies, want %d", n, probeCopies)
	}
	p.setRate(0, at.Add(9*time.Second))
	if n := p.copies(100, at.Add(10*time.Second)); n != 0 {
		t.Errorf("rate 0: %d copies", n)
	}
}
