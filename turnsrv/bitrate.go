package turnsrv

import (
	"sync/atomic"
	"time"
)

// bitrateBurst is how far ahead of the cap a flow may run: a burst of up
// to this long at the cap (for example a video key frame) passes whole.
const bitrateBurst = 500 * time.Millisecond

// fullDatagram is an MTU-sized UDP payload, in bytes.
const fullDatagram = 1500

// bitrateLimit caps one direction of one allocation's relayed traffic.
// It is a generic cell rate algorithm (a token bucket kept as a single
// timestamp, the theoretical arrival time): lock-free, safe for concurrent
// use, and it allocates nothing per datagram.
type bitrateLimit struct {
	psPerByte int64 // picoseconds of the cap one byte takes
	tolerance int64 // ns a flow may be ahead of the cap
	tat       atomic.Int64
}

// newBitrateLimit returns a limit of bitsPerSecond, or nil for no cap
// (bitsPerSecond <= 0).
func newBitrateLimit(bitsPerSecond int64) *bitrateLimit {
	if bitsPerSecond <= 0 {
		return nil
	}
	l := &bitrateLimit{psPerByte: max(1, 8e12/bitsPerSecond)}
	// At least one full-size datagram must fit in the tolerance, or a slow
	// cap would drop every MTU-sized packet.
	l.tolerance = max(int64(bitrateBurst), fullDatagram*l.psPerByte/1000)
	return l
}

// allow reports whether a datagram of size bytes (UDP payload) arriving
// at now (monotonicNow) fits under the cap, and if so charges it.
func (l *bitrateLimit) allow(now int64, size int) bool {
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

// allocationLimits are the caps of one allocation, one per direction
// (RFC 8656 leaves bandwidth policy to the server; like coturn's max-bps,
// each direction is capped on its own). A nil *allocationLimits caps
// nothing.
type allocationLimits struct {
	toPeer, fromPeer *bitrateLimit
}

func newAllocationLimits(bitsPerSecond int64) *allocationLimits {
	if bitsPerSecond <= 0 {
		return nil
	}
	return &allocationLimits{toPeer: newBitrateLimit(bitsPerSecond), fromPeer: newBitrateLimit(bitsPerSecond)}
}

// monotonicEpoch anchors monotonicNow.
var monotonicEpoch = time.Now()

// monotonicNow is nanoseconds on the monotonic clock since start-up.
func monotonicNow() int64 { return int64(time.Since(monotonicEpoch)) }

// allowToPeer charges a client → peer datagram, counting it when dropped.
func (a *allocationLimits) allowToPeer(size int, stats *Stats) bool {
	if a == nil || a.toPeer.allow(monotonicNow(), size) {
		return true
	}
	stats.DroppedToPeers.Add(1)
	return false
}

// allowFromPeer charges a peer → client datagram arriving at now,
// counting it when dropped.
func (a *allocationLimits) allowFromPeer(now int64, size int, stats *Stats) bool {
	if a == nil || a.fromPeer.allow(now, size) {
		return true
	}
	stats.DroppedFromPeers.Add(1)
	return false
}
