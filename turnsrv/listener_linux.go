//go:build linux && (amd64 || arm64)

package turnsrv

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/pion/stun/v3"
	"github.com/pion/turn/v4"
	"golang.org/x/sys/unix"
)

// udpListener wraps a UDP listener socket for pion/turn. Where the fast
// relay runs, an epoll loop owns the socket (see loopListener); elsewhere
// the guard reads it through Go's poller.
func udpListener(pc net.PacketConn, g *guard, fast *fastRelay, relay turn.RelayAddressGenerator) (net.PacketConn, turn.RelayAddressGenerator, error) {
	if fast == nil {
		return newGuardPacketConn(pc, g), relay, nil
	}
	ln, err := fast.adopt(pc, g)
	if err != nil {
		return nil, nil, err
	}
	return ln, loopRelay{f: fast, loop: ln.loop}, nil
}

// ctrlQueue is how many datagrams wait for pion/turn per listener socket
// in each of its two queues (from clients with an allocation, and from
// everyone else); past it they are dropped, as a full socket buffer would.
const ctrlQueue = 1024

// wellFormedSTUN reports whether b can be a STUN message (RFC 8489 §5):
// the two leading zero bits, the magic cookie, and a message length that
// is a multiple of 4 and matches the datagram. Anything else is dropped
// before it is queued for pion/turn, so a flood of junk cannot crowd out
// real requests.
func wellFormedSTUN(b []byte) bool {
	return len(b) >= 20 && b[0]&0xC0 == 0 && binary.BigEndian.Uint32(b[4:8]) == magicCookie &&
		int(binary.BigEndian.Uint16(b[2:4])) == len(b)-20 && len(b)%4 == 0
}

// ctrlPacket is a datagram for pion/turn: STUN requests and indications,
// and ChannelData the fast relay does not know yet.
type ctrlPacket struct {
	buf  *[listenBuf]byte
	n    int
	from netip.AddrPort
}

var ctrlBufs = sync.Pool{New: func() any { return new([listenBuf]byte) }}

// loopListener is a UDP listener socket read by a relay loop: the loop
// receives with recvmmsg alongside the relay sockets of the allocations
// made through this socket, sends ChannelData from known allocations
// straight to the peer (RFC 8656 §12.5), and queues everything else for
// pion/turn, whose ReadFrom passes it through the guard. The socket is
// outside Go's poller, so a datagram wakes only the loop.
type loopListener struct {
	loop  *relayLoop
	id    int32 // epoll id in the loop
	lfd   int   // the fd the fast relay knows this listener address by
	local net.Addr
	g     *guard
	stats *Stats
	m     *stun.Message // ReadFrom's scratch message: one reader, pion's read loop

	// known holds datagrams from clients that have an allocation through
	// this socket, queue the rest; ReadFrom serves known first, so a flood
	// of requests from elsewhere cannot starve calls in progress.
	known, queue chan ctrlPacket
	closed       chan struct{} // closed by Close; ends ReadFrom

	loopFD
}

// adopt takes over pc's socket: a duplicate of its descriptor goes to a
// relay loop, and pc (with its registration in Go's poller) is closed.
func (f *fastRelay) adopt(pc net.PacketConn, g *guard) (*loopListener, error) {
	sc, ok := pc.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("turnsrv: listener %s has no file descriptor", pc.LocalAddr())
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd, derr := -1, error(nil)
	if err := raw.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, err
	}
	if derr != nil {
		return nil, fmt.Errorf("turnsrv: listener %s: %w", pc.LocalAddr(), derr)
	}
	local := pc.LocalAddr()
	pc.Close()
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, err
	}
	f.mu.Lock()
	lfd, known := f.listeners[local.String()]
	if !known {
		lfd = fd
		f.listeners[local.String()] = fd
	}
	f.mu.Unlock()
	ln := &loopListener{
		loop: f.loops[int(f.next.Add(1))%len(f.loops)], id: f.ids.Add(1),
		lfd: lfd, local: local, g: g, stats: f.stats, m: new(stun.Message),
		known: make(chan ctrlPacket, ctrlQueue), queue: make(chan ctrlPacket, ctrlQueue), closed: make(chan struct{}),
		loopFD: loopFD{fd: fd},
	}
	if err := ln.loop.addListener(ln); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// deliver queues a datagram for pion/turn, in the known queue when its
// sender has an allocation, or drops it when that queue is full.
func (ln *loopListener) deliver(data []byte, from netip.AddrPort, known bool) {
	buf := ctrlBufs.Get().(*[listenBuf]byte)
	n := copy(buf[:], data)
	q := ln.queue
	if known {
		q = ln.known
	}
	select {
	case q <- ctrlPacket{buf: buf, n: n, from: from}:
	default:
		ctrlBufs.Put(buf)
		ln.stats.DroppedControl.Add(1)
	}
}

// ReadFrom returns the next datagram pion/turn should handle, answering
// the ones the guard refuses. Errors: net.ErrClosed after Close.
func (ln *loopListener) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		var pkt ctrlPacket
		select {
		case pkt = <-ln.known:
		default:
			select {
			case pkt = <-ln.known:
			case pkt = <-ln.queue:
			case <-ln.closed:
				return 0, nil, net.ErrClosed
			}
		}
		n := copy(p, pkt.buf[:pkt.n])
		ctrlBufs.Put(pkt.buf)
		addr := net.UDPAddrFromAddrPort(pkt.from)
		reply, n, pass := ln.g.admit(ln.m, p[:n], addr, ln.local)
		if pass {
			return n, addr, nil
		}
		if reply != nil {
			_, _ = ln.WriteTo(reply, addr)
		}
	}
}

// WriteTo sends p to a client. A full socket buffer drops it after a
// short wait, as the network would.
func (ln *loopListener) WriteTo(p []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, fmt.Errorf("turnsrv: client address %v is not UDP", addr)
	}
	ap := ua.AddrPort()
	// On a dual-stack IPv6 socket Linux sends to an AF_INET address as
	// IPv4, so IPv4 clients need no v4-mapping.
	ra := toRaw(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
	if err := ln.send(p, &ra); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close stops reading and closes the socket.
func (ln *loopListener) Close() error {
	ln.close(func() {
		ln.loop.removeListener(ln)
		close(ln.closed)
	})
	return nil
}

// LocalAddr is the listener's bound address.
func (ln *loopListener) LocalAddr() net.Addr { return ln.local }

// Deadlines are not used: pion/turn reads until Close.
func (ln *loopListener) SetDeadline(time.Time) error      { return nil }
func (ln *loopListener) SetReadDeadline(time.Time) error  { return nil }
func (ln *loopListener) SetWriteDeadline(time.Time) error { return nil }

// loopRelay hands out relay sockets on the loop of the listener socket
// the Allocate came through, so one loop serves both directions of an
// allocation.
type loopRelay struct {
	f    *fastRelay
	loop *relayLoop
}

func (r loopRelay) Validate() error { return nil }

func (r loopRelay) AllocateConn(string, int) (net.Conn, net.Addr, error) {
	return nil, nil, fmt.Errorf("turnsrv: TCP relayed addresses are not supported")
}

func (r loopRelay) AllocatePacketConn(network string, requestedPort int) (net.PacketConn, net.Addr, error) {
	return r.f.allocate(network, requestedPort, r.loop)
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
