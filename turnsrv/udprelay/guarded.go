package udprelay

import (
	"net"

	"github.com/pion/stun/v3"
)

// Guarded puts g in front of pc: its ReadFrom returns only the datagrams
// g passes and answers the ones it refuses. It is the one accept-or-reply
// loop of every UDP listener, whether pion/turn reads the socket through
// Go's poller or a relay loop feeds it (Adopt). pion/turn calls ReadFrom
// from one goroutine per socket, so the scratch message is not shared.
func Guarded(pc net.PacketConn, g Guard) net.PacketConn {
	return &guardedConn{PacketConn: pc, g: g, m: new(stun.Message)}
}

type guardedConn struct {
	net.PacketConn
	g Guard
	m *stun.Message
}

// ReadFrom returns the next datagram pion/turn should handle. Errors:
// the underlying ReadFrom's (net.ErrClosed after Close).
func (c *guardedConn) ReadFrom(p []byte) (int, net.Addr, error) {
	local := c.PacketConn.LocalAddr()
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil {
			return n, addr, err
		}
		reply, n, pass := c.g.Admit(c.m, p[:n], addr, local)
		if pass {
			return n, addr, nil
		}
		if reply != nil {
			_, _ = c.PacketConn.WriteTo(reply, addr)
		}
	}
}
