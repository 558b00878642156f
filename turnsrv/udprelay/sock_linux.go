//go:build linux && (amd64 || arm64)

package udprelay

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icebox-project/icebox/turnsrv/internal/bitrate"
)

// relaySock is one relayed transport address. As a net.PacketConn it is
// what pion/turn holds: WriteTo sends to peers (Send indications, and
// ChannelData the loop left to pion/turn); ReadFrom ends pion/turn's
// reader (endPionReader), since the loop does the reading; Close, called
// by pion/turn when the allocation ends, releases the port.
type relaySock struct {
	r     *relay
	loop  *loop
	ln    *listener // the listener socket the Allocate came through
	id    int32
	port  uint16
	state atomic.Pointer[state]
	// limits is the allocation's bitrate cap; nil: none.
	limits *bitrate.Allocation
	smu    sync.Mutex // serialises state updates; readers use the atomic pointer
	// clients and client are this socket's entry in a clientMap (nil
	// clients: none yet); guarded by relay.mu.
	clients *clientMap
	client  netip.AddrPort

	loopFD
}

// current is the allocation's state, judged under the peer filter in
// force: after PeersChanged, the first reader drops the permissions and
// channel bindings the filter now refuses, so a peer a reload denies is
// cut off from its next datagram on, both ways: datagrams from it are
// dropped, and ChannelData to it goes to pion/turn, whose WriteTo here
// refuses it (Counters.DroppedPeerDenied). Nil before the allocation has
// any state.
func (rs *relaySock) current() *state {
	st := rs.state.Load()
	if st == nil {
		return nil
	}
	if gen := rs.r.peersGen.Load(); st.gen != gen {
		rs.update(func(next *state) {
			next.prune(rs.r.cfg.PeerAllowed, rs.r.cfg.PeerAddrAllowed)
			next.gen = gen
		})
		st = rs.state.Load()
	}
	return st
}

func (rs *relaySock) update(change func(*state)) {
	rs.smu.Lock()
	defer rs.smu.Unlock()
	next := rs.state.Load().clone()
	change(next)
	rs.state.Store(next)
}

// ReadFrom is called once, by the reader pion/turn starts for each
// allocation, and never returns: see endPionReader.
func (rs *relaySock) ReadFrom([]byte) (int, net.Addr, error) {
	endPionReader()
	return 0, nil, net.ErrClosed
}

// WriteTo sends p to a peer (client → peer relaying, RFC 8656 §11.3). A
// full socket buffer drops the datagram, as the network would, and counts
// it (Counters.DroppedSendBufferToPeers). Errors: a peer that is not UDP
// over IPv4, net.ErrClosed, or sendto's.
func (rs *relaySock) WriteTo(p []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, fmt.Errorf("%w: %v", errNotUDP, addr)
	}
	ap := ua.AddrPort()
	ip := ap.Addr().Unmap()
	if !ip.Is4() {
		return 0, fmt.Errorf("%w: %s", errNotIPv4, ip)
	}
	stats := rs.r.stats
	// A permission covers a peer's address, not its port (RFC 8656 §9),
	// so a Send indication is judged again with its port here: the server's
	// own addresses are peers only on relay ports.
	peer := netip.AddrPortFrom(ip, ap.Port())
	if !rs.r.cfg.PeerAllowed(peer) {
		stats.DroppedPeerDenied.Add(1)
		return len(p), nil
	}
	if !rs.limits.AllowToPeer(len(p)) {
		stats.DroppedToPeers.Add(1)
		return len(p), nil // dropped, as a lossy network would
	}
	ra := toRaw(peer)
	full, err := rs.send(p, &ra)
	switch {
	case err != nil:
		return 0, err
	case full:
		stats.DroppedSendBufferToPeers.Add(1)
	default:
		stats.PacketsToPeers.Add(1)
		stats.BytesToPeers.Add(int64(len(p)))
	}
	return len(p), nil
}

// Close stops relaying and releases the port.
func (rs *relaySock) Close() error {
	rs.close(func() {
		rs.loop.remove(rs)
		rs.r.mu.Lock()
		if rs.r.byPort[rs.port] == rs {
			delete(rs.r.byPort, rs.port)
		}
		if rs.clients != nil {
			rs.clients.CompareAndDelete(rs.client, rs)
		}
		rs.r.mu.Unlock()
	})
	return nil
}

// LocalAddr is the bound address, 0.0.0.0 and the relayed port.
func (rs *relaySock) LocalAddr() net.Addr {
	return &net.UDPAddr{IP: net.IPv4zero, Port: int(rs.port)}
}

// Deadlines are not used: pion/turn's reader has ended.
func (rs *relaySock) SetDeadline(time.Time) error      { return nil }
func (rs *relaySock) SetReadDeadline(time.Time) error  { return nil }
func (rs *relaySock) SetWriteDeadline(time.Time) error { return nil }
