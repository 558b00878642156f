package turnsrv

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"

	"github.com/pion/turn/v4"

	"github.com/icebox-project/icebox/turnsrv/internal/bitrate"
	"github.com/icebox-project/icebox/turnsrv/internal/sockbuf"
	"github.com/icebox-project/icebox/turnsrv/udprelay"
)

// newUDPRelay chooses, once, the data path of UDP listeners: udprelay's
// loops (relayLoops of them) where the platform has them, else pion/turn's
// own sockets behind the guard (pionRelay). Errors: the loops failing to
// start.
func (s *Server) newUDPRelay(relayLoops int) (udprelay.Relay, error) {
	if s.cfg.pionUDP {
		return pionRelay{s: s}, nil
	}
	st := s.stats
	r, err := udprelay.New(udprelay.Config{
		RelayIP: s.cfg.PublicIP, MinPort: s.cfg.RelayMinPort, MaxPort: s.cfg.RelayMaxPort,
		Loops: relayLoops,
		Guard: s.guard,
		PeerAllowed: func(ap netip.AddrPort) bool {
			return s.policy.Load().peers.Check(ap) == PeerAllowed
		},
		PeerAddrAllowed: func(ip netip.Addr) bool { return s.policy.Load().peers.Allowed(ip) },
		Bitrate:         func() int64 { return s.policy.Load().maxBitrate },
		Counters:        &st.Counters,
		Logger:          s.log,
	})
	switch {
	case errors.Is(err, udprelay.ErrUnavailable):
		return pionRelay{s: s}, nil
	case err != nil:
		return nil, fmt.Errorf("turnsrv: relay loops: %w", err)
	}
	return r, nil
}

// pionRelay is the UDP data path where udprelay is unavailable: pion/turn
// reads the listener socket (through the guard) and relays with its own
// sockets from the relay port range (countingRelay). pion/turn keeps its
// own allocation state, so the events are not needed.
type pionRelay struct{ s *Server }

func (p pionRelay) Adopt(pc net.PacketConn) (net.PacketConn, turn.RelayAddressGenerator, error) {
	return udprelay.Guarded(pc, p.s.guard), p.s.portRange(), nil
}

func (pionRelay) AllocationCreated(_, _, _ net.Addr)      {}
func (pionRelay) Permission(net.Addr, net.IP, bool)       {}
func (pionRelay) Channel(_, _ net.Addr, _ uint16, _ bool) {}
func (pionRelay) Loops() []int                            { return nil }
func (pionRelay) PeersChanged()                           {}
func (pionRelay) Close() error                            { return nil }

// portRange is pion/turn's relay address generator for the relay port
// range, counted and capped (countingRelay): TCP and TLS listeners use
// it, and UDP listeners where udprelay is unavailable.
func (s *Server) portRange() turn.RelayAddressGenerator {
	return countingRelay{stats: s.stats, policy: &s.policy, RelayAddressGenerator: &turn.RelayAddressGeneratorPortRange{
		RelayAddress: net.IP(s.cfg.PublicIP.AsSlice()),
		Address:      "0.0.0.0",
		MinPort:      s.cfg.RelayMinPort,
		MaxPort:      s.cfg.RelayMaxPort,
		MaxRetries:   64,
	}}
}

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
	// A relayed transport address takes bursts from its peers (a video
	// frame) while its allocation's reader waits for the CPU: the receive
	// buffer the udprelay sockets get (sockbuf.Size, capped at
	// net.core.rmem_max; udprelay logs what is granted).
	if sc, ok := c.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			_ = raw.Control(func(fd uintptr) { _, _ = sockbuf.Set(int(fd), sockbuf.Size, 0) })
		}
	}
	return &countingConn{PacketConn: c, stats: r.stats, policy: r.policy, limits: bitrate.NewAllocation(r.policy.Load().maxBitrate)}, a, nil
}

// countingConn is a relayed transport address socket: what it reads came
// from peers, what it writes goes to peers.
type countingConn struct {
	net.PacketConn
	stats  *Stats
	policy *atomic.Pointer[policy]
	limits *bitrate.Allocation // nil: no bitrate cap
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
		// A peer a reload denied after its permission was made is dropped;
		// like the permission, this judges the address, not the port (RFC
		// 8656 §9).
		if ua, ok := addr.(*net.UDPAddr); !ok || !c.policy.Load().peers.Allowed(ua.AddrPort().Addr()) {
			c.stats.DroppedPeerDenied.Add(1)
			continue
		}
		if c.limits.AllowFromPeer(bitrate.Now(), n) {
			return n, addr, nil
		}
		c.stats.DroppedFromPeers.Add(1)
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
	if !c.limits.AllowToPeer(len(p)) {
		c.stats.DroppedToPeers.Add(1)
		return len(p), nil
	}
	n, err := c.PacketConn.WriteTo(p, addr)
	if err == nil {
		c.stats.PacketsToPeers.Add(1)
		c.stats.BytesToPeers.Add(int64(n))
	}
	return n, err
}
