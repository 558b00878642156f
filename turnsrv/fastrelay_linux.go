//go:build linux && (amd64 || arm64)

package turnsrv

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The fast relay is icebox's own data path for UDP clients (RFC 8656
// §11.3, §12.5, §12.6). pion/turn gives each allocation a goroutine
// blocked on its relay socket and reads listener sockets through Go's
// poller, so every datagram costs a trip through Go's scheduler, and under
// load that scheduling costs more than the relaying. Here listener and
// relay sockets are plain non-blocking sockets outside Go's poller, watched
// by one epoll loop per core, each waiting in epoll_wait on its own
// thread. A loop owns listener sockets (one SO_REUSEPORT socket each) and
// the relay sockets of the allocations made through them, so both
// directions of an allocation are served by one loop. It drains each
// ready socket with recvmmsg: ChannelData from a client goes straight to
// the bound peer; datagrams from peers go out as ChannelData (or a Data
// indication) with sendmmsg on the listener socket; everything else is
// queued for pion/turn, which keeps the control plane. Nothing is
// allocated per relayed datagram, and an allocation keeps no goroutine
// (see relaySock.ReadFrom). Permissions and channel bindings reach the
// fast relay through pion's allocation events.

const (
	batch      = 32   // datagrams per recvmmsg
	maxDrain   = 4    // recvmmsg calls per ready socket per wake-up, for fairness
	headroom   = 36   // STUN header + XOR-PEER-ADDRESS (IPv4) + DATA header
	maxPayload = 1500 // MTU-sized datagrams; longer ones are truncated and dropped
)

// mmsghdr is struct mmsghdr on 64-bit Linux.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
	_   [4]byte
}

type fastRelay struct {
	relayIP          net.IP
	minPort, maxPort uint16
	stats            *Stats
	policy           *atomic.Pointer[policy] // the bitrate cap for new allocations and the peer filter
	log              *slog.Logger
	loops            []*relayLoop
	next             atomic.Uint32
	ids              atomic.Int32

	mu     sync.RWMutex
	byPort map[uint16]*relaySock
	// byClient maps clientKey → *relaySock for the client → peer path.
	// It is read for every datagram and written per allocation, so it is
	// a sync.Map: lookups take no lock. Writes happen under mu.
	byClient  sync.Map
	listeners map[string]int // listener local address → socket fd
	procs     int            // Ps added to GOMAXPROCS for the loops
}

// procsMu serialises GOMAXPROCS changes by relays starting and closing.
var procsMu sync.Mutex

func addProcs(n int) {
	procsMu.Lock()
	defer procsMu.Unlock()
	runtime.GOMAXPROCS(max(1, runtime.GOMAXPROCS(0)+n))
}

// clientKey names an allocation's client side: the listener (by fd) and
// the client's address (RFC 8656's 5-tuple, UDP).
type clientKey struct {
	lfd    int
	client netip.AddrPort
}

// newFastRelay starts n epoll loops, and raises GOMAXPROCS by n: a loop
// holds its P while it waits in epoll_wait, and Go code keeps the Ps it
// had. close lowers it again.
func newFastRelay(relayIP net.IP, minPort, maxPort uint16, n int, stats *Stats, pol *atomic.Pointer[policy], log *slog.Logger) (*fastRelay, error) {
	f := &fastRelay{relayIP: relayIP, minPort: minPort, maxPort: maxPort, stats: stats, policy: pol, log: log,
		byPort: map[uint16]*relaySock{}, listeners: map[string]int{}}
	addProcs(n)
	f.procs = n
	for i := 0; i < n; i++ {
		l, err := newRelayLoop(f)
		if err != nil {
			f.close()
			return nil, err
		}
		f.loops = append(f.loops, l)
		go l.run()
	}
	return f, nil
}

// loopCount is the number of epoll loops (0 for a nil relay).
func (f *fastRelay) loopCount() int {
	if f == nil {
		return 0
	}
	return len(f.loops)
}

// close releases every relay socket still open, then stops the loops.
func (f *fastRelay) close() {
	f.mu.RLock()
	socks := make([]*relaySock, 0, len(f.byPort))
	for _, rs := range f.byPort {
		socks = append(socks, rs)
	}
	f.mu.RUnlock()
	for _, rs := range socks {
		rs.Close()
	}
	for _, l := range f.loops {
		l.stop()
	}
	addProcs(-f.procs)
	f.procs = 0
}

// allocate opens a relay socket on a free port of the range (or
// requestedPort) and hands it to loop.
func (f *fastRelay) allocate(network string, requestedPort int, loop *relayLoop) (net.PacketConn, net.Addr, error) {
	if network != "udp4" && network != "udp" {
		return nil, nil, fmt.Errorf("turnsrv: relay network %q", network)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	port, err := f.bind(fd, requestedPort)
	if err != nil {
		unix.Close(fd)
		return nil, nil, err
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, socketBuffer)
	rs := &relaySock{f: f, port: port, id: f.ids.Add(1), limits: newAllocationLimits(f.policy.Load().maxBitrate), loopFD: loopFD{fd: fd}}
	rs.loop = loop
	f.mu.Lock()
	f.byPort[port] = rs
	f.mu.Unlock()
	if err := rs.loop.add(rs); err != nil {
		rs.Close()
		return nil, nil, err
	}
	return rs, &net.UDPAddr{IP: f.relayIP, Port: int(port)}, nil
}

func (f *fastRelay) bind(fd, requested int) (uint16, error) {
	try := func(port int) error {
		return unix.Bind(fd, &unix.SockaddrInet4{Port: port})
	}
	if requested != 0 {
		return uint16(requested), try(requested)
	}
	span := int64(f.maxPort) - int64(f.minPort) + 1
	for i := 0; i < 64; i++ {
		n, err := rand.Int(rand.Reader, big.NewInt(span))
		if err != nil {
			return 0, err
		}
		port := int(f.minPort) + int(n.Int64())
		if err := try(port); err == nil {
			return uint16(port), nil
		}
	}
	return 0, fmt.Errorf("turnsrv: no free relay port in %d-%d", f.minPort, f.maxPort)
}

func (f *fastRelay) sock(relay net.Addr) *relaySock {
	a, ok := relay.(*net.UDPAddr)
	if !ok {
		return nil
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.byPort[uint16(a.Port)]
}

// The event handlers mirror pion's allocation state into the relay
// socket's copy-on-write state. Allocations of other listeners (TCP) have
// no relay socket here and are ignored.

func (f *fastRelay) allocationCreated(src, local net.Addr, relay net.Addr) {
	rs := f.sock(relay)
	ua, ok := src.(*net.UDPAddr)
	if rs == nil || !ok {
		return
	}
	f.mu.RLock()
	lfd, ok := f.listeners[local.String()]
	f.mu.RUnlock()
	if !ok {
		return
	}
	ap := ua.AddrPort()
	client := netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	// On a dual-stack IPv6 listener socket Linux sends to an AF_INET
	// address as IPv4, so IPv4 clients need no v4-mapping here.
	rs.update(func(st *relayState) {
		st.listenerFD = lfd
		st.client = toRaw(client)
	})
	key := clientKey{lfd: lfd, client: client}
	f.mu.Lock()
	if f.byPort[rs.port] == rs {
		f.byClient.Store(key, rs)
		rs.clientKey, rs.hasClient = key, true
	}
	f.mu.Unlock()
}

// hasClient reports whether client has an allocation through the
// listener socket lfd.
func (f *fastRelay) hasClient(lfd int, client netip.AddrPort) bool {
	_, ok := f.byClient.Load(clientKey{lfd: lfd, client: client})
	return ok
}

// forward relays ChannelData from a client straight to the bound peer.
// It returns false to leave the datagram to pion/turn (unknown client or
// channel); malformed ChannelData is dropped.
func (f *fastRelay) forward(lfd int, client netip.AddrPort, data []byte) bool {
	v, ok := f.byClient.Load(clientKey{lfd: lfd, client: client})
	if !ok {
		return false
	}
	rs := v.(*relaySock)
	st := rs.state.Load()
	if st == nil {
		return false
	}
	key, ok := st.peerOf(binary.BigEndian.Uint16(data[0:2]))
	if !ok {
		return false
	}
	peer := rawIPv4(key)
	size := int(binary.BigEndian.Uint16(data[2:4]))
	if 4+size > len(data) {
		return true // shorter than it says: drop (RFC 8656 §12.5)
	}
	if !rs.limits.allowToPeer(size, f.stats) {
		return true
	}
	rs.mu.RLock()
	defer rs.mu.RUnlock()
	if rs.fd < 0 {
		return true
	}
	if sendto(rs.fd, data[4:4+size], &peer) == nil {
		f.stats.PacketsToPeers.Add(1)
		f.stats.BytesToPeers.Add(int64(size))
	}
	return true
}

func (f *fastRelay) permission(relay net.Addr, peer net.IP, add bool) {
	rs := f.sock(relay)
	a, ok := netip.AddrFromSlice(peer)
	if rs == nil || !ok {
		return
	}
	ip, ok := ipv4Key(a)
	if !ok {
		return // an IPv4 relay socket never hears from IPv6 peers
	}
	rs.update(func(st *relayState) { st.setPermission(ip, add) })
}

func (f *fastRelay) channel(relay, peer net.Addr, number uint16, add bool) {
	rs := f.sock(relay)
	ua, ok := peer.(*net.UDPAddr)
	if rs == nil || !ok {
		return
	}
	ap := ua.AddrPort()
	ip, ok := ipv4Key(ap.Addr())
	if !ok {
		return
	}
	rs.update(func(st *relayState) { st.setChannel(peerKey(ip, ap.Port()), number, add) })
}

// rawAddr is a socket address ready for sendto.
type rawAddr struct {
	sa  unix.RawSockaddrInet6 // large enough for either family
	len uint32
}

// rawIPv4 is toRaw for a peer key (IPv4 address << 16 | port).
func rawIPv4(key uint64) rawAddr {
	var r rawAddr
	sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&r.sa))
	sa.Family = unix.AF_INET
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], uint16(key))
	binary.BigEndian.PutUint32(sa.Addr[:], uint32(key>>16))
	r.len = unix.SizeofSockaddrInet4
	return r
}

func toRaw(ap netip.AddrPort) rawAddr {
	var r rawAddr
	if ap.Addr().Is4() {
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&r.sa))
		sa.Family = unix.AF_INET
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], ap.Port())
		sa.Addr = ap.Addr().As4()
		r.len = unix.SizeofSockaddrInet4
		return r
	}
	r.sa.Family = unix.AF_INET6
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&r.sa.Port))[:], ap.Port())
	r.sa.Addr = ap.Addr().As16()
	r.len = unix.SizeofSockaddrInet6
	return r
}

// relaySock is one relayed transport address. As a net.PacketConn it is
// what pion/turn holds: WriteTo sends to peers; ReadFrom ends its caller,
// since the epoll loop does the reading.
type relaySock struct {
	f     *fastRelay
	loop  *relayLoop
	id    int32
	port  uint16
	state atomic.Pointer[relayState]
	// limits is the allocation's bitrate cap; nil: none.
	limits *allocationLimits
	smu    sync.Mutex // serialises state updates; readers use the atomic pointer
	// clientKey is this socket's entry in fastRelay.byClient; guarded by
	// fastRelay.mu.
	clientKey clientKey
	hasClient bool

	loopFD
}

func (rs *relaySock) update(change func(*relayState)) {
	rs.smu.Lock()
	defer rs.smu.Unlock()
	next := rs.state.Load().clone()
	change(next)
	rs.state.Store(next)
}

// ReadFrom ends the goroutine that calls it, with runtime.Goexit, and
// never returns: the epoll loop reads this socket. Its one caller is the
// reader pion/turn v4 starts for each allocation (Allocation.packetHandler),
// which would otherwise hold a 2 KiB stack and a 1.6 KiB buffer for the
// allocation's life while waiting for a datagram that never comes to it.
// That reader has no deferred work; its only other duty, deleting the
// allocation when the relay socket fails, cannot arise here, since this
// socket is closed only by the allocation's own Close or at shutdown.
// Expiry and Refresh with lifetime 0 still delete allocations through
// pion's timers and manager, and Server.Close still closes them.
func (rs *relaySock) ReadFrom([]byte) (int, net.Addr, error) {
	runtime.Goexit()
	return 0, nil, net.ErrClosed
}

// WriteTo sends p to a peer (client → peer relaying). A full socket buffer
// drops the datagram, as the network would.
func (rs *relaySock) WriteTo(p []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, fmt.Errorf("turnsrv: peer address %v is not UDP", addr)
	}
	ap := ua.AddrPort()
	ip := ap.Addr().Unmap()
	if !ip.Is4() {
		return 0, fmt.Errorf("turnsrv: peer %s is not IPv4", ip)
	}
	// A permission covers a peer's address, not its port (RFC 8656 §9),
	// so a Send indication is judged again with its port here: the server's
	// own addresses are peers only on relay ports.
	if rs.f.policy.Load().peers.Check(netip.AddrPortFrom(ip, ap.Port())) != PeerAllowed {
		rs.f.stats.DroppedPeerDenied.Add(1)
		return len(p), nil
	}
	if !rs.limits.allowToPeer(len(p), rs.f.stats) {
		return len(p), nil // dropped, as a lossy network would
	}
	ra := toRaw(netip.AddrPortFrom(ip, ap.Port()))
	if err := rs.send(p, &ra); err != nil {
		return 0, err
	}
	rs.f.stats.PacketsToPeers.Add(1)
	rs.f.stats.BytesToPeers.Add(int64(len(p)))
	return len(p), nil
}

// Close stops relaying and releases the port.
func (rs *relaySock) Close() error {
	rs.close(func() {
		rs.loop.remove(rs)
		rs.f.mu.Lock()
		if rs.f.byPort[rs.port] == rs {
			delete(rs.f.byPort, rs.port)
		}
		if rs.hasClient {
			rs.f.byClient.CompareAndDelete(rs.clientKey, rs)
		}
		rs.f.mu.Unlock()
	})
	return nil
}

func (rs *relaySock) LocalAddr() net.Addr {
	return &net.UDPAddr{IP: net.IPv4zero, Port: int(rs.port)}
}

func (rs *relaySock) SetDeadline(time.Time) error      { return nil }
func (rs *relaySock) SetReadDeadline(time.Time) error  { return nil }
func (rs *relaySock) SetWriteDeadline(time.Time) error { return nil }

// sendWait bounds how long a send waits for room in a full socket buffer
// before the datagram is dropped.
const sendWait = 5 // milliseconds

// sendto sends p without blocking; when the socket buffer is full it waits
// up to sendWait for room once, as a blocking send would, then drops.
func sendto(fd int, p []byte, to *rawAddr) error {
	if len(p) == 0 {
		return nil
	}
	for try := 0; ; try++ {
		_, _, errno := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
			unix.MSG_DONTWAIT, uintptr(unsafe.Pointer(&to.sa)), uintptr(to.len))
		switch {
		case errno == 0:
			return nil
		case errno == unix.EAGAIN && try == 0:
			pfd := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
			_, _ = unix.Poll(pfd[:], sendWait)
		default:
			return errno
		}
	}
}
