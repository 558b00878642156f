// Package bitrate caps the rate of one allocation's relayed traffic, each
// direction on its own (RFC 8656 leaves bandwidth policy to the server;
// like coturn's max-bps). It is shared by turnsrv's pion/turn relay path
// and udprelay's loops, and allocates nothing per datagram.
package bitrate

import (
	"sync/atomic"
	"time"
)

// Burst is how far ahead of the cap a flow may run: a burst of up to this
// long at the cap (for example a video key frame) passes whole.
const Burst = 500 * time.Millisecond

// FullDatagram is an MTU-sized UDP payload, in bytes.
const FullDatagram = 1500

// Limit caps one direction of one allocation's relayed traffic. It is a
// generic cell rate algorithm (a token bucket kept as a single timestamp,
// the theoretical arrival time): lock-free, safe for concurrent use, and
// it allocates nothing per datagram.
type Limit struct {
	psPerByte int64 // picoseconds of the cap one byte takes
	tolerance int64 // ns a flow may be ahead of the cap
	tat       atomic.Int64
}

// NewLimit returns a limit of bitsPerSecond, or nil for no cap
// (bitsPerSecond <= 0).
func NewLimit(bitsPerSecond int64) *Limit {
	if bitsPerSecond <= 0 {
		return nil
	}
	l := &Limit{psPerByte: max(1, 8e12/bitsPerSecond)}
	// At least one full-size datagram must fit in the tolerance, or a slow
	// cap would drop every MTU-sized packet.
	l.tolerance = max(int64(Burst), FullDatagram*l.psPerByte/1000)
	return l
}

// Allow reports whether a datagram of size bytes (UDP payload) arriving
// at now (Now) fits under the cap, and if so charges it.
func (l *Limit) Allow(now int64, size int) bool {
	cost := int64(size) * l.psPerByte / 1000
	for {
		tat := l.tat.Load()
		next := max(tat, now) + cost
		if next-now > l.tolerance {
			return false
		}
		if l.tat.CompareAndSwap(tat, next) {
			return true
		}
	}
}

// Allocation holds the caps of one allocation, one per direction. A nil
// *Allocation caps nothing.
type Allocation struct {
	toPeer, fromPeer *Limit
}

// NewAllocation returns the caps of an allocation at bitsPerSecond each
// way, or nil for no cap (bitsPerSecond <= 0).
func NewAllocation(bitsPerSecond int64) *Allocation {
	if bitsPerSecond <= 0 {
		return nil
	}
	return &Allocation{toPeer: NewLimit(bitsPerSecond), fromPeer: NewLimit(bitsPerSecond)}
}

// AllowToPeer charges a client → peer datagram of size bytes arriving
// now; false: drop it.
func (a *Allocation) AllowToPeer(size int) bool {
	return a == nil || a.toPeer.Allow(Now(), size)
}

// AllowFromPeer charges a peer → client datagram of size bytes arriving
// at now (Now); false: drop it.
func (a *Allocation) AllowFromPeer(now int64, size int) bool {
	return a == nil || a.fromPeer.Allow(now, size)
}

// monotonicEpoch anchors Now. It is set once, at package start-up.
var monotonicEpoch = time.Now()

// Now is nanoseconds on the monotonic clock since start-up.
func Now() int64 { return int64(time.Since(monotonicEpoch)) }
