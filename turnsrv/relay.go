package turnsrv

import (
	"net"
	"sync/atomic"

	"github.com/pion/turn/v4"
)

// countingRelay wraps a relay address generator so every relayed socket
// counts the packets and bytes it carries and applies the bitrate cap in
// force when the allocation was created.
type countingRelay struct {
	turn.RelayAddressGenerator
	stats  *Stats
	policy *atomic.Pointer[policy]
}

func (r countingRelay) AllocatePacketConn(network string, port int) (net.PacketConn, net.Addr, error) {
	c, a, err := r.RelayAddressGenerator.AllocatePacketConn(network, port)
	if err != nil {
		return nil, nil, err
	}
	return &countingConn{PacketConn: c, stats: r.stats, policy: r.policy, limits: newAllocationLimits(r.policy.Load().maxBitrate)}, a, nil
}

// countingConn is a relayed transport address socket: what it reads came
// from peers, what it writes goes to peers.
type countingConn struct {
	net.PacketConn
	stats  *Stats
	policy *atomic.Pointer[policy]
	limits *allocationLimits // nil: no bitrate cap
}

// ReadFrom returns the next datagram from a peer that fits under the
// bitrate cap; those over it are dropped and counted.
func (c *countingConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil {
			return n, addr, err
		}
		c.stats.PacketsFromPeers.Add(1)
		c.stats.BytesFromPeers.Add(int64(n))
		if c.limits.allowFromPeer(monotonicNow(), n, c.stats) {
			return n, addr, nil
		}
	}
}

// WriteTo sends p to a peer, or drops it (reporting success, as a lossy
// network would) when it is over the bitrate cap.
func (c *countingConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	// A permission covers a peer's address, not its port (RFC 8656 §9):
	// judge the port here too, so the server's own addresses are reached
	// only on relay ports.
	if ua, ok := addr.(*net.UDPAddr); !ok || c.policy.Load().peers.Check(ua.AddrPort()) != PeerAllowed {
		c.stats.DroppedPeerDenied.Add(1)
		return len(p), nil
	}
	if !c.limits.allowToPeer(len(p), c.stats) {
		return len(p), nil
	}
	n, err := c.PacketConn.WriteTo(p, addr)
	if err == nil {
		c.stats.PacketsToPeers.Add(1)
		c.stats.BytesToPeers.Add(int64(n))
	}
	return n, err
}
