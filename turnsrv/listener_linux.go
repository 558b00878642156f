//go:build linux && (amd64 || arm64)

package turnsrv

import (
	"encoding/binary"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// batchConn is a UDP listener socket read with recvmmsg through Go's
// poller. ChannelData from a client whose allocation the fast relay knows
// goes straight to the peer (RFC 8656 §12.5); everything else goes through
// the guard to pion/turn, one datagram per ReadFrom as before.
type batchConn struct {
	*guardPacketConn
	fast   *fastRelay
	raw    syscall.RawConn
	lfd    int // the fd the fast relay knows this listener address by
	readFn func(fd uintptr) bool
	rerr   error

	count, next int
	bufs        [batch][2048]byte
	iovs        [batch]unix.Iovec
	names       [batch]unix.RawSockaddrInet6
	msgs        [batch]mmsghdr
}

// newListenerConn wraps a UDP listener socket: batched and fast-relayed
// where the fast relay runs, plain otherwise.
func newListenerConn(pc net.PacketConn, g *guard, fast *fastRelay) net.PacketConn {
	gc := newGuardPacketConn(pc, g)
	sc, ok := pc.(syscall.Conn)
	if fast == nil || !ok {
		return gc
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return gc
	}
	fast.mu.RLock()
	lfd, known := fast.listeners[pc.LocalAddr().String()]
	fast.mu.RUnlock()
	if !known {
		return gc
	}
	b := &batchConn{guardPacketConn: gc, fast: fast, raw: raw, lfd: lfd}
	for i := range b.msgs {
		b.iovs[i] = unix.Iovec{Base: &b.bufs[i][0], Len: uint64(len(b.bufs[i]))}
		b.msgs[i].hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		b.msgs[i].hdr.Iov = &b.iovs[i]
		b.msgs[i].hdr.Iovlen = 1
	}
	b.readFn = func(fd uintptr) bool {
		for i := range b.msgs {
			b.msgs[i].hdr.Namelen = unix.SizeofSockaddrInet6
			b.msgs[i].hdr.Flags = 0
		}
		r, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&b.msgs[0])), batch, unix.MSG_DONTWAIT, 0, 0)
		switch errno {
		case 0:
			b.count, b.next, b.rerr = int(r), 0, nil
			return true
		case unix.EAGAIN:
			return false // park in the poller until readable
		default:
			b.count, b.next, b.rerr = 0, 0, errno
			return true
		}
	}
	return b
}

// ReadFrom returns the next datagram pion/turn should handle.
func (b *batchConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		if b.next >= b.count {
			if err := b.raw.Read(b.readFn); err != nil {
				return 0, nil, err
			}
			if b.rerr != nil {
				return 0, nil, b.rerr
			}
			continue
		}
		i := b.next
		b.next++
		if b.msgs[i].hdr.Flags&unix.MSG_TRUNC != 0 {
			continue // longer than any TURN message
		}
		data := b.bufs[i][:b.msgs[i].n]
		src, ok := addrPortOf(&b.names[i])
		if !ok {
			continue
		}
		if len(data) >= 4 && data[0]&0xC0 == 0x40 && b.fast.forward(b.lfd, src, data) {
			continue
		}
		addr := net.UDPAddrFromAddrPort(src)
		n := copy(p, data)
		reply, pass := b.g.admit(b.m, p[:n], addr, b.PacketConn.LocalAddr())
		if pass {
			return n, addr, nil
		}
		if reply != nil {
			_, _ = b.PacketConn.WriteTo(reply, addr)
		}
	}
}

// addrPortOf reads a socket address filled in by the kernel.
func addrPortOf(sa *unix.RawSockaddrInet6) (netip.AddrPort, bool) {
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
	switch sa.Family {
	case unix.AF_INET:
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(s4.Addr), port), true
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port), true
	}
	return netip.AddrPort{}, false
}
