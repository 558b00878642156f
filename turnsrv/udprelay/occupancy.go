package udprelay

import "sync/atomic"

// OccupancyBuckets are the upper bounds (inclusive) of the occupancy
// histograms' buckets: datagrams or GSO runs per system call. A receive
// call takes up to 32 messages, each up to 64 datagrams with GRO; past
// the last bound a call counts in the +Inf bucket only.
var OccupancyBuckets = [...]float64{0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}

// Histogram counts how full the relay's system calls were, lock-free (a
// few atomic adds per call, none per datagram). The zero value is ready;
// safe for concurrent use.
type Histogram struct {
	buckets [len(OccupancyBuckets)]atomic.Int64 // not cumulative
	count   atomic.Int64
	sum     atomic.Int64
}

// Observe counts one system call that carried v datagrams (or runs).
func (h *Histogram) Observe(v int) {
	h.count.Add(1)
	h.sum.Add(int64(v))
	for i, bound := range OccupancyBuckets {
		if float64(v) <= bound {
			h.buckets[i].Add(1)
			return
		}
	}
}

// Snapshot returns the calls counted, the sum of their values, and the
// cumulative count per bucket of OccupancyBuckets (Prometheus's shape).
// Taken while calls are counted, it is consistent to within those calls.
func (h *Histogram) Snapshot() (count uint64, sum float64, cumulative map[float64]uint64) {
	cumulative = make(map[float64]uint64, len(OccupancyBuckets))
	var acc int64
	for i, bound := range OccupancyBuckets {
		acc += h.buckets[i].Load()
		cumulative[bound] = uint64(acc)
	}
	return uint64(h.count.Load()), float64(h.sum.Load()), cumulative
}

// Occupancy shows whether batching engages on the relay loops (the model
// is coturn's --udp-recvmmsg-log and --udp-sendmmsg-log), by direction:
// from clients (listener sockets) and from peers (relay sockets) for
// receives, to peers and to clients for sends.
type Occupancy struct {
	// ReceivedFromClients and ReceivedFromPeers: datagrams per recvmmsg
	// call that returned any, after GRO's coalesced reads are split.
	ReceivedFromClients, ReceivedFromPeers Histogram
	// SentToPeers and SentToClients: datagrams per sendmmsg call.
	SentToPeers, SentToClients Histogram
	// GSORunsToPeers and GSORunsToClients: messages per sendmmsg call
	// that carried more than one datagram as one UDP_SEGMENT run.
	GSORunsToPeers, GSORunsToClients Histogram
}
