//go:build linux && (amd64 || arm64)

package udprelay

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/icebox-project/icebox/turnsrv/internal/bitrate"
	"github.com/icebox-project/icebox/turnsrv/internal/sockbuf"
)

const (
	batch      = 32   // datagrams per recvmmsg
	maxDrain   = 4    // recvmmsg calls per ready socket per wake-up, for fairness
	headroom   = 36   // STUN header + XOR-PEER-ADDRESS (IPv4) + DATA header
	maxPayload = 1500 // MTU-sized datagrams; longer ones are truncated and dropped
	maxRetries = 64   // random ports tried per allocation
)

// relay is the Linux Relay: the loops, and the relay sockets by port and
// by client.
type relay struct {
	cfg   Config
	stats *Counters
	log   *slog.Logger
	loops []*loop
	next  atomic.Uint32
	ids   atomic.Int32
	// peersGen counts PeersChanged calls (relaySock.current).
	peersGen atomic.Uint64
	// off is the UDP offload in use (GSO, GRO).
	off offload

	mu     sync.RWMutex
	byPort map[uint16]*relaySock
	// clients holds, by listener address, the allocations made through
	// it (clientMap); the SO_REUSEPORT sockets of one address share one,
	// so a client is known whichever of them the kernel hands its
	// datagrams to.
	clients   map[string]*clientMap
	listeners map[*listener]struct{} // open listener sockets
	closed    bool
}

// clientMap maps a client's address (unmapped IPv4) → *relaySock for
// the client → peer path of one listener address: with the listener
// address and UDP, the key completes RFC 8656's 5-tuple. turnsrv names a
// 5-tuple with one struct (fiveTuple); here the listener address picks
// the map, so the per-datagram lookup hashes the client's address alone
// (a sync.Map Load among 1000 clients: ~32 ns so, ~43 ns with the former
// {listener id, client} key, ~67 ns with a key of all three). It is read
// for every datagram and written per allocation, so it is a sync.Map:
// lookups take no lock. Writes happen under relay.mu.
type clientMap = sync.Map

// New starts cfg.Loops relay loops, each on a thread of its own waiting
// in epoll_wait. It does not change GOMAXPROCS: a loop blocked in
// epoll_wait holds its thread, and the daemon decides whether Go gets
// Ps to match. Errors: epoll or eventfd creation failing.
func New(cfg Config) (Relay, error) {
	if cfg.Loops <= 0 {
		cfg.Loops = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.PeerAllowed == nil {
		cfg.PeerAllowed = func(netip.AddrPort) bool { return true }
	}
	if cfg.PeerAddrAllowed == nil {
		cfg.PeerAddrAllowed = func(netip.Addr) bool { return true }
	}
	if cfg.Bitrate == nil {
		cfg.Bitrate = func() int64 { return 0 }
	}
	if cfg.BatchWindow == 0 {
		cfg.BatchWindow = DefaultBatchWindow
	}
	if cfg.Counters == nil {
		cfg.Counters = new(Counters)
	}
	r := &relay{cfg: cfg, stats: cfg.Counters, log: cfg.Logger, byPort: map[uint16]*relaySock{},
		clients: map[string]*clientMap{}, listeners: map[*listener]struct{}{}}
	gso, gro := probeOffload()
	r.off.gso.Store(gso && !cfg.NoGSO)
	r.off.gro = gro && !cfg.NoGRO
	r.log.Info("turn relay UDP offload", "gso", r.off.gso.Load(), "gro", r.off.gro,
		"gso_supported", gso, "gro_supported", gro)
	for i := 0; i < cfg.Loops; i++ {
		l, err := newLoop(r)
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("udprelay: %w", err)
		}
		r.loops = append(r.loops, l)
		go l.run()
	}
	r.logBuffers()
	return r, nil
}

// logBuffers asks a throwaway socket for the receive buffer every relay
// socket asks for (sockbuf.Size) and logs what the kernel grants, once at
// start rather than once per allocation.
func (r *relay) logBuffers() {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		r.log.Warn("relay socket buffers unknown", "error", err)
		return
	}
	defer unix.Close(fd)
	sizes, err := sockbuf.Set(fd, sockbuf.Size, 0)
	if err != nil {
		r.log.Warn("relay socket buffers unknown", "error", err)
		return
	}
	sizes.Log(r.log, "turn relay")
}

// Loops returns the relay sockets each loop serves.
func (r *relay) Loops() []int {
	out := make([]int, len(r.loops))
	for i, l := range r.loops {
		l.mu.RLock()
		out[i] = len(l.socks)
		l.mu.RUnlock()
	}
	return out
}

// Close closes every relay socket and listener socket still open, then
// stops the loops and closes their epoll and eventfd descriptors.
func (r *relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	socks := make([]*relaySock, 0, len(r.byPort))
	for _, rs := range r.byPort {
		socks = append(socks, rs)
	}
	lns := make([]*listener, 0, len(r.listeners))
	for ln := range r.listeners {
		lns = append(lns, ln)
	}
	r.mu.Unlock()
	for _, rs := range socks {
		rs.Close()
	}
	for _, ln := range lns {
		ln.Close()
	}
	for _, l := range r.loops {
		l.stop()
	}
	return nil
}

// allocate opens a relay socket on a free port of the range (or
// requestedPort) for an Allocate that came through ln, and hands it to
// ln's loop, which then serves both directions of the allocation.
func (r *relay) allocate(network string, requestedPort int, ln *listener) (net.PacketConn, net.Addr, error) {
	if network != "udp4" && network != "udp" {
		return nil, nil, fmt.Errorf("%w: %q", errNetwork, network)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	port, err := r.bind(fd, requestedPort)
	if err != nil {
		unix.Close(fd)
		return nil, nil, err
	}
	_, _ = sockbuf.Set(fd, sockbuf.Size, 0) // New logged what the kernel grants
	if r.off.gro {
		enableGRO(fd)
	}
	rs := &relaySock{r: r, loop: ln.loop, ln: ln, port: port, id: r.ids.Add(1),
		limits: bitrate.NewAllocation(r.cfg.Bitrate()), loopFD: loopFD{fd: fd}}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		unix.Close(fd)
		return nil, nil, net.ErrClosed
	}
	r.byPort[port] = rs
	r.mu.Unlock()
	if err := rs.loop.add(rs); err != nil {
		rs.Close()
		return nil, nil, err
	}
	return rs, &net.UDPAddr{IP: r.cfg.RelayIP.AsSlice(), Port: int(port)}, nil
}

func (r *relay) bind(fd, requested int) (uint16, error) {
	try := func(port int) error {
		return unix.Bind(fd, &unix.SockaddrInet4{Port: port})
	}
	if requested != 0 {
		return uint16(requested), try(requested)
	}
	span := int64(r.cfg.MaxPort) - int64(r.cfg.MinPort) + 1
	for i := 0; i < maxRetries; i++ {
		n, err := rand.Int(rand.Reader, big.NewInt(span))
		if err != nil {
			return 0, err
		}
		port := int(r.cfg.MinPort) + int(n.Int64())
		if err := try(port); err == nil {
			return uint16(port), nil
		}
	}
	return 0, fmt.Errorf("%w in %d-%d", errNoPort, r.cfg.MinPort, r.cfg.MaxPort)
}

func (r *relay) sock(relayed net.Addr) *relaySock {
	a, ok := relayed.(*net.UDPAddr)
	if !ok {
		return nil
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.byPort[uint16(a.Port)]
}

// The event handlers mirror pion's allocation state into the relay
// socket's copy-on-write state. Allocations of other listeners (TCP) have
// no relay socket here and are ignored.

// AllocationCreated records the allocation's client, so that datagrams
// from peers go to it through the listener socket the Allocate came
// through.
func (r *relay) AllocationCreated(client, local, relayed net.Addr) {
	rs := r.sock(relayed)
	ua, ok := client.(*net.UDPAddr)
	if rs == nil || !ok || rs.ln.local.String() != local.String() {
		return
	}
	ap := ua.AddrPort()
	c := netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	// On a dual-stack IPv6 listener socket Linux sends to an AF_INET
	// address as IPv4, so IPv4 clients need no v4-mapping here.
	rs.update(func(st *state) {
		st.out = rs.ln
		st.client = toRaw(c)
	})
	r.mu.Lock()
	if r.byPort[rs.port] == rs {
		rs.ln.clients.Store(c, rs)
		rs.clients, rs.client = rs.ln.clients, c
	}
	r.mu.Unlock()
}

// hasClient reports whether client has an allocation through ln's
// listener address.
func (r *relay) hasClient(ln *listener, client netip.AddrPort) bool {
	_, ok := ln.clients.Load(client)
	return ok
}

// forward relays ChannelData from a client straight to the bound peer
// (RFC 8656 §12.5), queued for the end of the receive batch. It returns
// false to leave the datagram to pion/turn (unknown client or channel);
// malformed ChannelData is dropped.
func (l *loop) forward(ln *listener, client netip.AddrPort, data []byte) bool {
	v, ok := ln.clients.Load(client)
	if !ok {
		return false
	}
	rs := v.(*relaySock)
	st := rs.current()
	if st == nil {
		return false
	}
	key, ok := st.peerOf(binary.BigEndian.Uint16(data[0:2]))
	if !ok {
		return false
	}
	size := int(binary.BigEndian.Uint16(data[2:4]))
	if 4+size > len(data) {
		return true // shorter than it says: drop (RFC 8656 §12.5)
	}
	if !rs.limits.AllowToPeer(size) {
		l.r.stats.DroppedToPeers.Add(1)
		return true
	}
	e, _ := l.out.next()
	e.via, e.to, e.payload, e.size, e.niov = &rs.loopFD, rawIPv4(key), size, size, 0
	if size > 0 {
		e.iov[0] = unix.Iovec{Base: &data[4], Len: uint64(size)}
		e.niov = 1
	}
	l.out.push()
	return true
}

// PeersChanged makes every allocation judge its permissions and channel
// bindings again before its next datagram (relaySock.current).
func (r *relay) PeersChanged() { r.peersGen.Add(1) }

// Permission mirrors a permission into the allocation's state.
func (r *relay) Permission(relayed net.Addr, peer net.IP, add bool) {
	rs := r.sock(relayed)
	a, ok := netip.AddrFromSlice(peer)
	if rs == nil || !ok {
		return
	}
	ip, ok := ipv4Key(a)
	if !ok {
		return // an IPv4 relay socket never hears from IPv6 peers
	}
	rs.update(func(st *state) { st.setPermission(ip, add) })
}

// Channel mirrors a channel binding into the allocation's state.
func (r *relay) Channel(relayed, peer net.Addr, number uint16, add bool) {
	rs := r.sock(relayed)
	ua, ok := peer.(*net.UDPAddr)
	if rs == nil || !ok {
		return
	}
	ap := ua.AddrPort()
	ip, ok := ipv4Key(ap.Addr())
	if !ok {
		return
	}
	rs.update(func(st *state) { st.setChannel(peerKey(ip, ap.Port()), number, add) })
}
