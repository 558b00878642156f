//go:build linux && (amd64 || arm64)

package udprelay

import (
	"crypto/rand"
	"encoding/binary"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/icebox-project/icebox/internal/stunwire"
	"github.com/icebox-project/icebox/turnsrv/internal/bitrate"
)

// What an epoll event is about: its data holds a kind (Pad) and an id
// (Fd). Ids count up and may wrap; the kind keeps the sets apart.
const (
	evWake     int32 = iota // the eventfd that stops the loop
	evRelay                 // a relay socket, by relaySock.id
	evListener              // a listener socket, by listener.id
)

// listenBuf is the receive buffer per datagram on listener sockets: room
// for any TURN message over UDP with a full-size payload.
const listenBuf = 2048

// loop is one epoll loop over listener and relay sockets: it waits
// in epoll_wait on its own thread, so a datagram costs one thread wake-up
// and no trip through Go's scheduler. Its buffers are its own, so a
// datagram is received into place, framed in place and sent.
type loop struct {
	r      *relay
	epfd   int
	wakefd int // eventfd: written to stop the loop
	done   chan struct{}

	mu        sync.RWMutex
	socks     map[int32]*relaySock // by epoll id (counted up, unlike fds, which the kernel reuses)
	listeners map[int32]*listener  // by epoll id
	stopped   bool                 // epfd closed; guarded by mu

	// receive batch: message i is received into rx[i*rxSize:], its
	// sender's address into names[i] and, where GRO is on, the segment
	// size into oobs[i]. Listener and relay sockets share them: a loop
	// reads one socket at a time.
	rx     []byte
	rxSize int
	iovs   [batch]unix.Iovec
	names  [batch]unix.RawSockaddrInet6
	oobs   [batch][oobSize]byte
	msgs   [batch]mmsghdr
	txid   [12]byte
	txn    uint64

	// out gathers what a receive batch relays, sent once the batch is
	// done: to peers from a listener socket's batch, to clients from a
	// relay socket's.
	out sendQueue
}

func newLoop(r *relay) (*loop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	l := &loop{r: r, epfd: epfd, wakefd: wakefd, done: make(chan struct{}), socks: map[int32]*relaySock{},
		listeners: map[int32]*listener{}}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Pad: evWake}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, err
	}
	l.rxSize = listenBuf
	if r.off.gro {
		l.rxSize = groBuf
	}
	l.rx = make([]byte, batch*l.rxSize)
	l.out.r = r
	for i := range l.msgs {
		l.iovs[i] = unix.Iovec{Base: &l.rx[i*l.rxSize], Len: uint64(l.rxSize)}
		l.msgs[i].hdr.Name = (*byte)(unsafe.Pointer(&l.names[i]))
		l.msgs[i].hdr.Iov = &l.iovs[i]
		l.msgs[i].hdr.Iovlen = 1
		if r.off.gro {
			l.msgs[i].hdr.Control = &l.oobs[i][0]
		}
	}
	if _, err := rand.Read(l.txid[:]); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, err
	}
	return l, nil
}

// add watches a relay socket. Errors: the loop or the socket is closed,
// or epoll_ctl's.
func (l *loop) add(rs *relaySock) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.socks[rs.id] = rs
	return l.watch(&rs.loopFD, unix.EpollEvent{Events: unix.EPOLLIN, Fd: rs.id, Pad: evRelay})
}

// addListener watches a listener socket. Errors: as add.
func (l *loop) addListener(ln *listener) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.listeners[ln.id] = ln
	return l.watch(&ln.loopFD, unix.EpollEvent{Events: unix.EPOLLIN, Fd: ln.id, Pad: evListener})
}

// watch adds s to the epoll set, unless the loop has stopped (its epoll
// descriptor is closed, and its number may be another file's now) or s is
// closed. l.mu is held.
func (l *loop) watch(s *loopFD, ev unix.EpollEvent) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if l.stopped || s.fd < 0 {
		return net.ErrClosed
	}
	return unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, s.fd, &ev)
}

func (l *loop) removeListener(ln *listener) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.listeners, ln.id)
	l.unwatch(&ln.loopFD)
}

func (l *loop) remove(rs *relaySock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.socks, rs.id)
	l.unwatch(&rs.loopFD)
}

// unwatch takes s out of the epoll set, unless the loop has stopped (its
// epoll fd is closed). l.mu is held.
func (l *loop) unwatch(s *loopFD) {
	s.mu.RLock()
	if s.fd >= 0 && !l.stopped {
		_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, s.fd, nil)
	}
	s.mu.RUnlock()
}

func (l *loop) stop() {
	var one [8]byte
	binary.LittleEndian.PutUint64(one[:], 1)
	_, _ = unix.Write(l.wakefd, one[:])
	<-l.done
	l.mu.Lock()
	l.stopped = true
	unix.Close(l.epfd)
	unix.Close(l.wakefd)
	l.mu.Unlock()
}

func (l *loop) run() {
	defer close(l.done)
	events := make([]unix.EpollEvent, 128)
	lastYield := bitrate.Now()
	busy := false
	for {
		// The loop's one wait: a blocking system call, on this
		// goroutine's thread. Busy, it sleeps the batch window first and
		// then takes what arrived meanwhile (see Config.BatchWindow).
		timeout := -1
		if busy {
			ts := unix.NsecToTimespec(int64(l.r.cfg.BatchWindow))
			_ = unix.Nanosleep(&ts, nil)
			timeout = 0
		}
		n, err := unix.EpollWait(l.epfd, events, timeout)
		busy = l.r.cfg.BatchWindow > 0 && n > 0 && err == nil
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			l.r.log.Error("turn relay loop stopped", "error", err)
			return
		}
		for i := 0; i < n; i++ {
			id := events[i].Fd
			switch events[i].Pad {
			case evWake:
				return // stop
			case evListener:
				l.mu.RLock()
				ln := l.listeners[id]
				l.mu.RUnlock()
				if ln != nil {
					l.drainListener(ln)
				}
			case evRelay:
				l.mu.RLock()
				rs := l.socks[id]
				l.mu.RUnlock()
				if rs != nil {
					l.drain(rs)
				}
			}
		}
		// Go's scheduler sees a goroutine that never yields as running
		// too long and preempts it (taking its P) every 10 ms, which
		// also sets its monitor polling at full rate. Yielding now and
		// then costs less.
		if now := bitrate.Now(); now-lastYield > yieldEvery {
			lastYield = now
			runtime.Gosched()
		}
	}
}

// yieldEvery is how often, in ns, a busy relay loop yields to Go's
// scheduler: well inside its 10 ms preemption limit.
const yieldEvery = int64(5 * time.Millisecond)

// received returns message i of the last receive batch, or false when
// it is to be dropped: truncated (longer than the buffer), or with
// control data that does not parse. gso is the segment size of a read
// GRO coalesced (0: one datagram).
func (l *loop) received(i int) (b []byte, gso int, ok bool) {
	m := &l.msgs[i]
	if m.hdr.Flags&unix.MSG_TRUNC != 0 {
		return nil, 0, false
	}
	if m.hdr.Controllen > 0 {
		if gso, ok = groSize(l.oobs[i][:min(m.hdr.Controllen, oobSize)]); !ok {
			return nil, 0, false
		}
	}
	return l.rx[i*l.rxSize : i*l.rxSize+int(m.n)], gso, true
}

// drainListener reads what a listener socket holds (up to maxDrain
// batches): ChannelData from known allocations goes to the peer (sent
// once the batch is done), the rest to pion/turn.
func (l *loop) drainListener(ln *listener) {
	ln.mu.RLock()
	defer ln.mu.RUnlock()
	if ln.fd < 0 {
		return
	}
	l.out.toPeers = true
	for round := 0; round < maxDrain; round++ {
		n, ok := recvmmsg(ln.fd, l.msgs[:])
		if !ok {
			return // EAGAIN: drained
		}
		dgrams := 0
		for i := 0; i < n; i++ {
			b, gso, ok := l.received(i)
			if !ok {
				continue
			}
			src, ok := addrPortOf(&l.names[i])
			if !ok {
				continue
			}
			for seg, rest := nextSegment(b, gso); ; seg, rest = nextSegment(rest, gso) {
				dgrams++
				if len(seg) <= listenBuf { // longer than any TURN message: dropped
					l.fromClient(ln, src, seg)
				}
				if len(rest) == 0 {
					break
				}
			}
		}
		l.r.stats.Occupancy.ReceivedFromClients.Observe(dgrams)
		l.out.flush()
		if n < batch {
			return
		}
	}
}

// fromClient handles one datagram from a client at a listener socket.
func (l *loop) fromClient(ln *listener, src netip.AddrPort, data []byte) {
	if len(data) >= 4 && data[0]&0xC0 == 0x40 {
		if l.forward(ln, src, data) {
			return
		}
		// ChannelData the loop does not know yet is pion's, but only from
		// a client that has an allocation.
		if l.r.hasClient(ln, src) {
			ln.deliver(data, src, true)
		} else {
			l.r.stats.DroppedNotSTUN.Add(1)
		}
		return
	}
	if !WellFormedSTUN(data) {
		l.r.stats.DroppedNotSTUN.Add(1)
		return
	}
	ln.deliver(data, src, l.r.hasClient(ln, src))
}

// drain reads what the socket holds (up to maxDrain batches) and relays
// it to the client through the allocation's listener socket, a batch's
// worth at a time. It holds one socket's lock at a time: rs's while
// receiving, the listener's while sending.
func (l *loop) drain(rs *relaySock) {
	stats := l.r.stats
	l.out.toPeers = false
	for round := 0; round < maxDrain; round++ {
		rs.mu.RLock()
		n, ok := 0, false
		if rs.fd >= 0 {
			n, ok = recvmmsg(rs.fd, l.msgs[:])
		}
		rs.mu.RUnlock()
		if !ok {
			return // EAGAIN: drained (or closed)
		}
		st := rs.current()
		var now int64
		if rs.limits != nil {
			now = bitrate.Now()
		}
		dgrams, bytes := 0, 0
		for i := 0; i < n; i++ {
			b, gso, ok := l.received(i)
			if !ok {
				// Truncated or unreadable: counted as received, dropped.
				dgrams++
				bytes += int(l.msgs[i].n)
				continue
			}
			for seg, rest := nextSegment(b, gso); ; seg, rest = nextSegment(rest, gso) {
				dgrams++
				bytes += len(seg)
				l.fromPeer(st, rs.limits, now, i, seg)
				if len(rest) == 0 {
					break
				}
			}
		}
		// Counted once per batch: the counters are shared by every loop.
		stats.PacketsFromPeers.Add(int64(dgrams))
		stats.BytesFromPeers.Add(int64(bytes))
		stats.Occupancy.ReceivedFromPeers.Observe(dgrams)
		l.out.flush()
		if n < batch {
			return
		}
	}
}

// fromPeer queues datagram data of receive message i for the
// allocation's client: as ChannelData when the peer has a channel
// binding (RFC 8656 §12.6), else as a Data indication (§11.4) when it has
// a permission. Otherwise it is dropped, also when it is over the
// allocation's bitrate cap (limits, at now). The payload is sent from
// where it was received; the header is written beside it.
func (l *loop) fromPeer(st *state, limits *bitrate.Allocation, now int64, i int, data []byte) {
	size := len(data)
	if st == nil || st.out == nil || size > maxPayload {
		return
	}
	name := &l.names[i]
	if name.Family != unix.AF_INET {
		return // relayed addresses are IPv4
	}
	sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(name))
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
	ip := binary.BigEndian.Uint32(sa.Addr[:])
	if !st.permitted(ip) {
		return
	}
	if !limits.AllowFromPeer(now, size) {
		l.r.stats.DroppedFromPeers.Add(1)
		return
	}
	e, hdr := l.out.next()
	e.via, e.to, e.payload = &st.out.loopFD, st.client, size
	var h []byte
	pad := 0
	if ch, ok := st.channelTo(peerKey(ip, port)); ok {
		h = hdr[:4]
		binary.BigEndian.PutUint16(h[0:2], ch)
		binary.BigEndian.PutUint16(h[2:4], uint16(size))
	} else {
		// Data indication: header, XOR-PEER-ADDRESS, DATA (padded to 4).
		pad = (4 - size%4) % 4
		h = hdr[:headroom]
		binary.BigEndian.PutUint16(h[0:2], 0x0017) // Data indication
		binary.BigEndian.PutUint16(h[2:4], uint16(12+4+size+pad))
		binary.BigEndian.PutUint32(h[4:8], stunwire.MagicCookie)
		l.txn++
		copy(h[8:20], l.txid[:])
		binary.BigEndian.PutUint64(h[12:20], binary.BigEndian.Uint64(l.txid[4:12])^l.txn)
		binary.BigEndian.PutUint16(h[20:22], 0x0012) // XOR-PEER-ADDRESS
		binary.BigEndian.PutUint16(h[22:24], 8)
		h[24], h[25] = 0, 0x01 // family IPv4
		binary.BigEndian.PutUint16(h[26:28], port^uint16(stunwire.MagicCookie>>16))
		binary.BigEndian.PutUint32(h[28:32], ip^stunwire.MagicCookie)
		binary.BigEndian.PutUint16(h[32:34], 0x0013) // DATA
		binary.BigEndian.PutUint16(h[34:36], uint16(size))
	}
	e.iov[0] = unix.Iovec{Base: &h[0], Len: uint64(len(h))}
	e.niov = 1
	if size > 0 {
		e.iov[1] = unix.Iovec{Base: &data[0], Len: uint64(size)}
		e.niov++
	}
	if pad > 0 {
		e.iov[e.niov] = unix.Iovec{Base: &zeros[0], Len: uint64(pad)}
		e.niov++
	}
	e.size = len(h) + size + pad
	l.out.push()
}
