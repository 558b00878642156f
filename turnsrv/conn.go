package turnsrv

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"sync"

	"github.com/pion/stun/v3"
)

// guardPacketConn puts the guard in front of a UDP socket. pion/turn calls
// ReadFrom from one goroutine per socket, so the scratch message is not
// shared.
type guardPacketConn struct {
	net.PacketConn
	g *guard
	m *stun.Message
}

func newGuardPacketConn(c net.PacketConn, g *guard) *guardPacketConn {
	return &guardPacketConn{PacketConn: c, g: g, m: new(stun.Message)}
}

// ReadFrom returns the next packet pion/turn should handle, answering the
// ones the guard refuses.
func (c *guardPacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	for {
		n, addr, err := c.PacketConn.ReadFrom(p)
		if err != nil {
			return n, addr, err
		}
		reply, n, pass := c.g.admit(c.m, p[:n], addr, c.PacketConn.LocalAddr())
		if pass {
			return n, addr, nil
		}
		if reply != nil {
			_, _ = c.PacketConn.WriteTo(reply, addr)
		}
	}
}

// guardListener wraps accepted TCP connections in guardConn and tracks
// them, since pion/turn's Close leaves accepted connections open.
type guardListener struct {
	net.Listener
	g     *guard
	conns *connSet
}

func (l guardListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	gc := &guardConn{Conn: c, g: l.g, r: bufio.NewReaderSize(c, 4096), m: new(stun.Message), conns: l.conns}
	if !l.conns.add(gc) {
		c.Close()
		return nil, net.ErrClosed
	}
	return gc, nil
}

// connSet holds the open TCP connections so Close can end them.
type connSet struct {
	mu     sync.Mutex
	conns  map[*guardConn]struct{}
	closed bool
}

func newConnSet() *connSet { return &connSet{conns: map[*guardConn]struct{}{}} }

func (s *connSet) add(c *guardConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *connSet) remove(c *guardConn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *connSet) closeAll() {
	s.mu.Lock()
	s.closed = true
	conns := s.conns
	s.conns = map[*guardConn]struct{}{}
	s.mu.Unlock()
	for c := range conns {
		c.Conn.Close()
	}
}

// maxFrame is the longest STUN message: a 20-byte header and a 16-bit
// length (RFC 8489 §5).
const maxFrame = 20 + 0xFFFF

// guardConn frames a TURN-over-TCP stream (RFC 8656 §12.5: STUN messages
// and ChannelData padded to 4 bytes), passes each frame through the guard,
// and hands pion/turn's STUNConn whole frames.
type guardConn struct {
	net.Conn
	g       *guard
	r       *bufio.Reader
	m       *stun.Message
	frame   []byte
	pending []byte
	conns   *connSet
}

func (c *guardConn) Close() error {
	c.conns.remove(c)
	return c.Conn.Close()
}

func (c *guardConn) Read(p []byte) (int, error) {
	for len(c.pending) == 0 {
		frame, err := c.readFrame()
		if err != nil {
			return 0, err
		}
		reply, n, pass := c.g.admit(c.m, frame, c.Conn.RemoteAddr(), c.Conn.LocalAddr())
		if reply != nil {
			if _, err := c.Conn.Write(reply); err != nil {
				return 0, err
			}
		}
		if pass {
			c.pending = frame[:n]
		}
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// readFrame reads one STUN message or ChannelData frame. The returned
// slice is valid until the next call.
func (c *guardConn) readFrame() ([]byte, error) {
	hdr, err := c.r.Peek(4)
	if err != nil {
		return nil, err
	}
	length := int(binary.BigEndian.Uint16(hdr[2:4]))
	switch {
	case hdr[0]&0xC0 == 0: // STUN
		length += 20
	case hdr[0]&0xC0 == 0x40: // ChannelData, padded to 4 bytes over TCP
		length = 4 + (length+3)&^3
	default:
		return nil, ErrNotTURN
	}
	if length > maxFrame {
		return nil, ErrFrameTooLarge
	}
	if cap(c.frame) < length {
		c.frame = make([]byte, length, max(length, 2048))
	}
	c.frame = c.frame[:length]
	if _, err := io.ReadFull(c.r, c.frame); err != nil {
		return nil, err
	}
	return c.frame, nil
}
