//go:build linux && (amd64 || arm64)

package udprelay

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// queueCap is how many datagrams a loop gathers before it sends them: a
// receive batch's worth, or more when GRO coalesced its reads.
const queueCap = 128

// outDatagram is one datagram a loop will send: up to three pieces (a
// ChannelData or Data indication header, the payload where it was
// received, and a Data indication's padding), sent from via to to.
type outDatagram struct {
	via     *loopFD
	to      rawAddr
	iov     [3]unix.Iovec
	niov    int
	size    int // frame bytes: the sum of iov
	payload int // relayed payload bytes, for the counters
}

// sendQueue gathers one direction's datagrams while a loop works through
// a receive batch, then sends them (flush): per socket they leave by, in
// the order received, with one sendmmsg of GSO runs (consecutive
// datagrams to one destination of one size, the last maybe shorter) and
// single datagrams. Its memory is the loop's; nothing is allocated.
type sendQueue struct {
	r       *relay
	toPeers bool // direction, for the counters and histograms
	n       int
	out     [queueCap]outDatagram
	hdrs    [queueCap][headroom]byte // frame headers (peer → client)

	// flush scratch
	taken [queueCap]bool
	idx   [queueCap]uint16
	iovs  [3 * queueCap]unix.Iovec
	msgs  [queueCap]mmsghdr
	oobs  [queueCap][oobSize]byte
	first [queueCap]int // per message: its first datagram's position in idx
	segs  [queueCap]int // per message: datagrams
	bytes [queueCap]int // per message: payload bytes
}

// zeros pads Data indications to a multiple of 4 bytes (RFC 8489 §14);
// the kernel only reads it.
var zeros [3]byte

// next returns the slot for the next datagram and its header scratch;
// the caller fills it in and calls push. The queue is flushed first when
// full.
func (q *sendQueue) next() (*outDatagram, *[headroom]byte) {
	if q.n == queueCap {
		q.flush()
	}
	return &q.out[q.n], &q.hdrs[q.n]
}

// push adds the slot next returned.
func (q *sendQueue) push() { q.n++ }

// flush sends what the queue holds: stably grouped by the socket it
// leaves by, so each socket's datagrams keep their order.
func (q *sendQueue) flush() {
	if q.n == 0 {
		return
	}
	for i := 0; i < q.n; i++ {
		q.taken[i] = false
	}
	for i := 0; i < q.n; i++ {
		if q.taken[i] {
			continue
		}
		via, k := q.out[i].via, 0
		for j := i; j < q.n; j++ {
			if !q.taken[j] && q.out[j].via == via {
				q.taken[j] = true
				q.idx[k] = uint16(j)
				k++
			}
		}
		q.sendVia(via, q.idx[:k])
	}
	q.n = 0
}

// sendVia sends the datagrams idx through via, under its read lock, so
// never through a descriptor closed meanwhile (they are dropped then).
func (q *sendQueue) sendVia(via *loopFD, idx []uint16) {
	via.mu.RLock()
	defer via.mu.RUnlock()
	if via.fd < 0 {
		return
	}
	q.send(via.fd, idx, q.r.off.gso.Load())
}

// send builds the messages for the datagrams idx, as GSO runs when gso,
// and sends them with sendmmsg, retrying the rest after a partial send.
// A full socket buffer drops the rest, counted. A GSO run the kernel
// refuses with EIO (no segmentation offload on the device: GSO is then
// turned off for good) or EINVAL (a segment over the path MTU) is sent
// again as single datagrams, with the rest. Other errors drop one
// message, uncounted, as the network would.
func (q *sendQueue) send(fd int, idx []uint16, gso bool) {
	m := q.build(idx, gso)
	occ := &q.r.stats.Occupancy
	sentH, runsH := &occ.SentToClients, &occ.GSORunsToClients
	if q.toPeers {
		sentH, runsH = &occ.SentToPeers, &occ.GSORunsToPeers
	}
	for k := 0; k < m; {
		dgrams, runs := 0, 0
		for j := k; j < m; j++ {
			dgrams += q.segs[j]
			if q.segs[j] > 1 {
				runs++
			}
		}
		sentH.Observe(dgrams)
		runsH.Observe(runs)
		r, _, errno := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&q.msgs[k])),
			uintptr(m-k), unix.MSG_DONTWAIT, 0, 0)
		switch {
		case errno == 0:
			sent, bytes := 0, 0
			for j := k; j < k+int(r); j++ {
				sent, bytes = sent+q.segs[j], bytes+q.bytes[j]
			}
			q.sent(sent, bytes)
			k += int(r)
		case errno == unix.EAGAIN:
			q.full(dgrams)
			return
		case (errno == unix.EIO || errno == unix.EINVAL) && q.segs[k] > 1:
			if errno == unix.EIO && q.r.off.gso.CompareAndSwap(true, false) {
				q.r.log.Warn("turn relay: UDP segmentation offload failed (EIO); sending datagrams one by one from now on")
			}
			q.send(fd, idx[q.first[k]:], false)
			return
		default:
			k++
		}
	}
}

// build fills q.msgs for the datagrams idx and returns how many messages
// it made.
func (q *sendQueue) build(idx []uint16, gso bool) int {
	m, iv := 0, 0
	for p := 0; p < len(idx); {
		e := &q.out[idx[p]]
		start := iv
		q.first[m] = p
		iv += copy(q.iovs[iv:], e.iov[:e.niov])
		segs, total, bytes := 1, e.size, e.payload
		p++
		for gso && e.size > 0 && p < len(idx) && segs < maxSegments {
			f := &q.out[idx[p]]
			if f.to != e.to || f.size > e.size || f.size == 0 || total+f.size > maxGSOBytes {
				break
			}
			iv += copy(q.iovs[iv:], f.iov[:f.niov])
			segs, total, bytes = segs+1, total+f.size, bytes+f.payload
			p++
			if f.size < e.size {
				break // a shorter segment ends a run
			}
		}
		h := &q.msgs[m].hdr
		*h = unix.Msghdr{Name: (*byte)(unsafe.Pointer(&e.to.sa)), Namelen: e.to.len,
			Iov: &q.iovs[start], Iovlen: uint64(iv - start)}
		if segs > 1 {
			h.Control = &q.oobs[m][0]
			h.Controllen = putSegmentSize(&q.oobs[m], uint16(e.size))
		}
		q.segs[m], q.bytes[m] = segs, bytes
		m++
	}
	return m
}

// sent counts datagrams the kernel took.
func (q *sendQueue) sent(dgrams, bytes int) {
	if q.toPeers {
		q.r.stats.PacketsToPeers.Add(int64(dgrams))
		q.r.stats.BytesToPeers.Add(int64(bytes))
	}
}

// full counts datagrams a full socket buffer dropped.
func (q *sendQueue) full(dgrams int) {
	if q.toPeers {
		q.r.stats.DroppedSendBufferToPeers.Add(int64(dgrams))
	} else {
		q.r.stats.DroppedSendBufferToClients.Add(int64(dgrams))
	}
}
