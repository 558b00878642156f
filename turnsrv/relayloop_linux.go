//go:build linux && (amd64 || arm64)

package turnsrv

import (
	"crypto/rand"
	"encoding/binary"
	"net/netip"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// relayLoop is one epoll loop over relay sockets. Its buffers are its
// own, so a datagram is received into place, framed in place and sent.
type relayLoop struct {
	f      *fastRelay
	epfd   int
	wakefd int // eventfd: written to stop the loop
	done   chan struct{}
	// pollable is the epoll fd registered with Go's own poller: the loop
	// parks there until epfd has events, then collects them without
	// blocking. A blocking epoll_wait would hand the thread's P to another
	// thread on every wake-up.
	pollable *os.File

	mu      sync.RWMutex
	socks   map[int32]*relaySock // by epoll id (never reused, unlike fds)
	stopped bool                 // epfd closed; guarded by mu

	// receive batch: buffer i holds headroom bytes of space for the
	// ChannelData or Data indication header, then the datagram.
	bufs  [batch][headroom + maxPayload + 4]byte
	iovs  [batch]unix.Iovec
	names [batch]unix.RawSockaddrInet6
	msgs  [batch]mmsghdr
	txid  [12]byte
	txn   uint64

	// send batch: frames for the client, sent with one sendmmsg.
	outIovs [batch]unix.Iovec
	outMsgs [batch]mmsghdr
}

func newRelayLoop(f *fastRelay) (*relayLoop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	l := &relayLoop{f: f, epfd: epfd, wakefd: wakefd, done: make(chan struct{}), socks: map[int32]*relaySock{}}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, err
	}
	l.pollable = os.NewFile(uintptr(epfd), "turn-relay-epoll")
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: -1}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, err
	}
	for i := range l.msgs {
		l.iovs[i] = unix.Iovec{Base: &l.bufs[i][headroom], Len: maxPayload}
		l.msgs[i].hdr.Name = (*byte)(unsafe.Pointer(&l.names[i]))
		l.msgs[i].hdr.Iov = &l.iovs[i]
		l.msgs[i].hdr.Iovlen = 1
	}
	if _, err := rand.Read(l.txid[:]); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, err
	}
	return l, nil
}

func (l *relayLoop) add(rs *relaySock) error {
	l.mu.Lock()
	l.socks[rs.id] = rs
	l.mu.Unlock()
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: rs.id}
	return unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, rs.fd, &ev)
}

func (l *relayLoop) remove(rs *relaySock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.socks, rs.id)
	rs.mu.RLock()
	if rs.fd >= 0 && !l.stopped {
		_ = unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, rs.fd, nil)
	}
	rs.mu.RUnlock()
}

func (l *relayLoop) stop() {
	var one [8]byte
	binary.LittleEndian.PutUint64(one[:], 1)
	_, _ = unix.Write(l.wakefd, one[:])
	<-l.done
	l.mu.Lock()
	l.stopped = true
	l.pollable.Close() // closes epfd
	unix.Close(l.wakefd)
	l.mu.Unlock()
}

func (l *relayLoop) run() {
	defer close(l.done)
	events := make([]unix.EpollEvent, 128)
	raw, err := l.pollable.SyscallConn()
	if err != nil {
		l.f.log.Error("turn relay loop stopped", "error", err)
		return
	}
	for {
		var n int
		var werr error
		err := raw.Read(func(uintptr) bool {
			n, werr = unix.EpollWait(l.epfd, events, 0)
			return werr != nil || n > 0 // false: park until readable
		})
		if err == nil && werr == unix.EINTR {
			continue
		}
		if err == nil {
			err = werr
		}
		if err != nil {
			l.f.log.Error("turn relay loop stopped", "error", err)
			return
		}
		for i := 0; i < n; i++ {
			id := events[i].Fd
			if id == -1 {
				return // stop
			}
			l.mu.RLock()
			rs := l.socks[id]
			l.mu.RUnlock()
			if rs != nil {
				l.drain(rs)
			}
		}
	}
}

// drain reads what the socket holds (up to maxDrain batches) and relays it.
func (l *relayLoop) drain(rs *relaySock) {
	rs.mu.RLock()
	defer rs.mu.RUnlock()
	if rs.fd < 0 {
		return
	}
	for round := 0; round < maxDrain; round++ {
		for i := range l.msgs {
			l.msgs[i].hdr.Namelen = unix.SizeofSockaddrInet6
			l.msgs[i].hdr.Flags = 0
		}
		r, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(rs.fd), uintptr(unsafe.Pointer(&l.msgs[0])),
			batch, unix.MSG_DONTWAIT, 0, 0)
		if errno != 0 {
			return // EAGAIN: drained
		}
		n := int(r)
		st := rs.state.Load()
		var now int64
		if rs.limits != nil {
			now = monotonicNow()
		}
		out := 0
		for i := 0; i < n; i++ {
			if frame := l.relay(st, rs.limits, now, i); frame != nil {
				l.outIovs[out] = unix.Iovec{Base: &frame[0], Len: uint64(len(frame))}
				l.outMsgs[out].hdr = unix.Msghdr{Name: (*byte)(unsafe.Pointer(&st.client.sa)), Namelen: st.client.len,
					Iov: &l.outIovs[out], Iovlen: 1}
				out++
			}
		}
		if out > 0 {
			sendmmsg(st.listenerFD, l.outMsgs[:out])
		}
		if n < batch {
			return
		}
	}
}

// relay frames datagram i for the allocation's client, in place: as
// ChannelData when the peer has a channel binding (RFC 8656 §12.6), else as
// a Data indication (§11.4) when it has a permission. nil: drop it, also
// when it is over the allocation's bitrate cap (limits, at now).
func (l *relayLoop) relay(st *relayState, limits *allocationLimits, now int64, i int) []byte {
	size := int(l.msgs[i].n)
	stats := l.f.stats
	stats.PacketsFromPeers.Add(1)
	stats.BytesFromPeers.Add(int64(size))
	if st == nil || st.listenerFD < 0 || size > maxPayload || l.msgs[i].hdr.Flags&unix.MSG_TRUNC != 0 {
		return nil
	}
	name := &l.names[i]
	if name.Family != unix.AF_INET {
		return nil // relayed addresses are IPv4
	}
	sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(name))
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
	ip := netip.AddrFrom4(sa.Addr)
	if _, ok := st.perms[ip]; !ok {
		return nil
	}
	if !limits.allowFromPeer(now, size, stats) {
		return nil
	}
	buf := l.bufs[i][:]
	if ch, ok := st.channels[netip.AddrPortFrom(ip, port)]; ok {
		frame := buf[headroom-4 : headroom+size]
		binary.BigEndian.PutUint16(frame[0:2], ch)
		binary.BigEndian.PutUint16(frame[2:4], uint16(size))
		return frame
	}
	// Data indication: header, XOR-PEER-ADDRESS, DATA (padded to 4).
	padded := (size + 3) &^ 3
	for j := headroom + size; j < headroom+padded; j++ {
		buf[j] = 0
	}
	msg := buf[:headroom+padded]
	binary.BigEndian.PutUint16(msg[0:2], 0x0017) // Data indication
	binary.BigEndian.PutUint16(msg[2:4], uint16(12+4+padded))
	binary.BigEndian.PutUint32(msg[4:8], magicCookie)
	l.txn++
	copy(msg[8:20], l.txid[:])
	binary.BigEndian.PutUint64(msg[12:20], binary.BigEndian.Uint64(l.txid[4:12])^l.txn)
	binary.BigEndian.PutUint16(msg[20:22], 0x0012) // XOR-PEER-ADDRESS
	binary.BigEndian.PutUint16(msg[22:24], 8)
	msg[24], msg[25] = 0, 0x01 // family IPv4
	binary.BigEndian.PutUint16(msg[26:28], port^uint16(magicCookie>>16))
	a4 := ip.As4()
	binary.BigEndian.PutUint32(msg[28:32], binary.BigEndian.Uint32(a4[:])^magicCookie)
	binary.BigEndian.PutUint16(msg[32:34], 0x0013) // DATA
	binary.BigEndian.PutUint16(msg[34:36], uint16(size))
	return msg
}

// sendmmsg sends the messages, retrying the rest after a partial send and
// waiting once (up to sendWait) for room in a full socket buffer.
func sendmmsg(fd int, msgs []mmsghdr) {
	waited := false
	for len(msgs) > 0 {
		r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])),
			uintptr(len(msgs)), unix.MSG_DONTWAIT, 0, 0)
		switch {
		case errno == 0:
			msgs = msgs[r:]
		case errno == unix.EAGAIN && !waited:
			waited = true
			pfd := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
			_, _ = unix.Poll(pfd[:], sendWait)
		default:
			return // dropped, as the network would
		}
	}
}
