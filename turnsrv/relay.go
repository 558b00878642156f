package turnsrv

import (
	"net"

	"github.com/pion/turn/v4"
)

// countingRelay wraps a relay address generator so every relayed socket
// counts the packets and bytes it carries.
type countingRelay struct {
	turn.RelayAddressGenerator
	stats *Stats
}

func (r countingRelay) AllocatePacketConn(network string, port int) (net.PacketConn, net.Addr, error) {
	c, a, err := r.RelayAddressGenerator.AllocatePacketConn(network, port)
	if err != nil {
		return nil, nil, err
	}
	return &countingConn{PacketConn: c, stats: r.stats}, a, nil
}

// countingConn is a relayed transport address socket: what it reads came
// from peers, what it writes goes to peers.
type countingConn struct {
	net.PacketConn
	stats *Stats
}

func (c *countingConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, addr, err := c.PacketConn.ReadFrom(p)
	if err == nil {
		c.stats.PacketsFromPeers.Add(1)
		c.stats.BytesFromPeers.Add(int64(n))
	}
	return n, addr, err
}

func (c *countingConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	n, err := c.PacketConn.WriteTo(p, addr)
	if err == nil {
		c.stats.PacketsToPeers.Add(1)
		c.stats.BytesToPeers.Add(int64(n))
	}
	return n, err
}
