//go:build linux && (amd64 || arm64)

package udprelay

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/pion/turn/v4"
	"golang.org/x/sys/unix"
)

// ctrlPacket is a datagram for pion/turn: STUN requests and indications,
// and ChannelData the relay does not know yet.
type ctrlPacket struct {
	buf  *[listenBuf]byte
	n    int
	from netip.AddrPort
}

// ctrlBufs recycles control datagram buffers; it is immutable after
// package start-up (sync.Pool is safe for concurrent use).
var ctrlBufs = sync.Pool{New: func() any { return new([listenBuf]byte) }}

// listener is a UDP listener socket read by a relay loop: the loop
// receives with recvmmsg alongside the relay sockets of the allocations
// made through this socket, sends ChannelData from known allocations
// straight to the peer (RFC 8656 §12.5), and queues everything else for
// pion/turn, whose ReadFrom (through Guarded) passes it through the
// guard. The socket is outside Go's poller, so a datagram wakes only the
// loop. The listener owns its descriptor (loopFD); pion/turn closes it
// through the PacketConn Adopt returned, or Relay.Close does.
type listener struct {
	r    *relay
	loop *loop
	id   int32 // epoll id in the loop
	// clients are the allocations made through this listener address,
	// shared with its other SO_REUSEPORT sockets (relay.clients).
	clients *clientMap
	local   net.Addr
	stats   *Counters

	// known holds datagrams from clients that have an allocation through
	// this socket, queue the rest; ReadFrom serves known first, so a flood
	// of requests from elsewhere cannot starve calls in progress.
	known, queue chan ctrlPacket
	closed       chan struct{} // closed by Close; ends ReadFrom

	loopFD
}

// Adopt takes over pc's socket: a duplicate of its descriptor goes to a
// relay loop (listener sockets are spread over the loops in turn), and pc
// (with its registration in Go's poller) is closed. Errors: pc has no
// descriptor, or duplicating or registering it failed; pc is closed
// either way.
func (r *relay) Adopt(pc net.PacketConn) (net.PacketConn, turn.RelayAddressGenerator, error) {
	defer pc.Close()
	sc, ok := pc.(syscall.Conn)
	if !ok {
		return nil, nil, fmt.Errorf("%w: %s", errNoFD, pc.LocalAddr())
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, nil, err
	}
	fd, derr := -1, error(nil)
	if err := raw.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return nil, nil, err
	}
	if derr != nil {
		return nil, nil, fmt.Errorf("udprelay: listener %s: %w", pc.LocalAddr(), derr)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, nil, err
	}
	if r.off.gro {
		enableGRO(fd)
	}
	local := pc.LocalAddr()
	ln := &listener{
		r: r, loop: r.loops[int(r.next.Add(1))%len(r.loops)], id: r.ids.Add(1), local: local, stats: r.stats,
		known: make(chan ctrlPacket, ControlQueue), queue: make(chan ctrlPacket, ControlQueue), closed: make(chan struct{}),
		loopFD: loopFD{fd: fd},
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		unix.Close(fd)
		return nil, nil, net.ErrClosed
	}
	clients := r.clients[local.String()]
	if clients == nil {
		clients = new(clientMap)
		r.clients[local.String()] = clients
	}
	ln.clients = clients
	r.listeners[ln] = struct{}{}
	r.mu.Unlock()
	if err := ln.loop.addListener(ln); err != nil {
		ln.Close()
		return nil, nil, err
	}
	return Guarded(ln, r.cfg.Guard), generator{ln: ln}, nil
}

// deliver queues a datagram for pion/turn, in the known queue when its
// sender has an allocation, or drops it when that queue is full.
func (ln *listener) deliver(data []byte, from netip.AddrPort, known bool) {
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

// ReadFrom returns the next queued datagram, from clients with an
// allocation first. Guarded puts the guard in front of it. Errors:
// net.ErrClosed after Close.
func (ln *listener) ReadFrom(p []byte) (int, net.Addr, error) {
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
	return n, net.UDPAddrFromAddrPort(pkt.from), nil
}

// WriteTo sends p to a client (pion/turn's responses). A full socket
// buffer drops it, as the network would. Errors: a client address that
// is not UDP, net.ErrClosed, or sendto's.
func (ln *listener) WriteTo(p []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, fmt.Errorf("%w: %v", errNotUDP, addr)
	}
	ap := ua.AddrPort()
	// On a dual-stack IPv6 socket Linux sends to an AF_INET address as
	// IPv4, so IPv4 clients need no v4-mapping.
	ra := toRaw(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
	if full, err := ln.send(p, &ra); err != nil {
		return 0, err
	} else if full {
		ln.stats.DroppedSendBufferToClients.Add(1)
	}
	return len(p), nil
}

// Close stops reading and closes the socket, once.
func (ln *listener) Close() error {
	ln.close(func() {
		ln.loop.removeListener(ln)
		close(ln.closed)
		ln.r.mu.Lock()
		delete(ln.r.listeners, ln)
		ln.r.mu.Unlock()
	})
	return nil
}

// LocalAddr is the listener's bound address.
func (ln *listener) LocalAddr() net.Addr { return ln.local }

// Deadlines are not used: pion/turn reads until Close.
func (ln *listener) SetDeadline(time.Time) error      { return nil }
func (ln *listener) SetReadDeadline(time.Time) error  { return nil }
func (ln *listener) SetWriteDeadline(time.Time) error { return nil }

// generator hands out relay sockets for Allocates that come through ln,
// on ln's loop, so one loop serves both directions of an allocation
// (pion/turn asks the generator of the socket the Allocate came through).
type generator struct{ ln *listener }

// Validate has nothing to check: New took the port range.
func (g generator) Validate() error { return nil }

// AllocateConn is for TCP relayed addresses (RFC 6062), which icebox does
// not offer.
func (g generator) AllocateConn(string, int) (net.Conn, net.Addr, error) {
	return nil, nil, errTCP
}

// AllocatePacketConn opens a relayed transport address: a random free
// port of the range, or requestedPort.
func (g generator) AllocatePacketConn(network string, requestedPort int) (net.PacketConn, net.Addr, error) {
	return g.ln.r.allocate(network, requestedPort, g.ln)
}
