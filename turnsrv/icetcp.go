package turnsrv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"time"

	"github.com/pion/stun/v3"
)

// ICE-TCP on the listener shared with HTTP (Listener.ICETCP). A browser
// allowed only TCP 443 out reaches the SFU without TURN through its
// passive TCP host candidate on that port (RFC 6544 §4.5): it connects,
// and every packet on the stream, STUN, DTLS, SRTP and SRTCP, is framed by
// a 2-byte length (RFC 4571 §2). Such a connection is told apart by its
// first frame, a Binding request (classify), read whole within the first
// message time, and handed to whoever accepts from Server.ICETCPListener:
// the SFU's ICE TCP mux, which groups connections by the STUN USERNAME's
// ufrag.

// DefaultICETCPIdleTimeout closes an ICE-TCP connection that sends nothing
// for this long: ICE consent (RFC 7675 §5.1) expires after 30 s without
// an answered check, and an ICE agent in use sends one every few seconds.
const DefaultICETCPIdleTimeout = 30 * time.Second

// maxICEFrame is the longest frame an ICE-TCP connection may send, bytes:
// pion's ICE TCP mux reads one into 8192 bytes (receiveMTU) and drops
// the connection at a longer one; media packets are under 1500.
const maxICEFrame = 8192

// closedICEBadFrame is why an ICE-TCP connection was closed at a frame
// that is not STUN, DTLS or RTP/RTCP, as logged.
const closedICEBadFrame = "ice_bad_frame"

// handleICE reads the rest of the first frame of conn (c under its first
// bytes), checks that it is a STUN Binding request with a USERNAME, counts
// the connection under the ICE-TCP caps and hands it on.
func (l *sharedListener) handleICE(c, conn net.Conn, lim *connLimits) {
	st := l.conns.stats
	var hdr [2]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		if l.pending.Remove(c) { // else evicted to make room; counted there
			l.reject(conn, &st.SharedSilent, "shared_silent", err)
		}
		return
	}
	frame := make([]byte, 2+int(binary.BigEndian.Uint16(hdr[:])))
	copy(frame, hdr[:])
	if _, err := io.ReadFull(conn, frame[2:]); err != nil {
		if l.pending.Remove(c) {
			l.reject(conn, &st.SharedSilent, "shared_silent", err)
		}
		return
	}
	// Told apart (shared.go's handle).
	l.pending.Remove(c)
	if err := checkICEFirstFrame(frame[2:]); err != nil {
		l.reject(conn, &st.SharedNeither, "shared_neither", err)
		return
	}
	_ = conn.SetDeadline(time.Time{})
	ic := &iceConn{Conn: conn, set: l.iceSet, stats: st, log: l.conns, idle: l.iceIdle, pending: frame}
	if _, why := l.iceSet.Add(ic, lim.caps(), false); why != "" {
		if why == refusedClosed {
			conn.Close()
			return
		}
		l.conns.refused(why)
		abort(conn)
		l.conns.logf("ice_"+why, slog.LevelWarn, "shared listener: ice-tcp connection refused", "remote", conn.RemoteAddr().String(), "reason", why)
		return
	}
	st.SharedICE.Add(1)
	if !l.ice.put(ic, l.acc.Done()) {
		ic.Close()
	}
}

// checkICEFirstFrame checks that b, a first frame's payload, is a STUN
// Binding request (RFC 8489 §5) that names a USERNAME (RFC 8445 §7.2.2:
// every connectivity check does), which the ICE TCP mux needs.
func checkICEFirstFrame(b []byte) error {
	m := &stun.Message{Raw: b}
	if err := m.Decode(); err != nil {
		return fmt.Errorf("ice-tcp first frame: %w", err)
	}
	if m.Type != stun.BindingRequest {
		return fmt.Errorf("ice-tcp first frame: %s, want a Binding request", m.Type)
	}
	if int(m.Length)+20 != len(b) {
		return errors.New("ice-tcp first frame: bytes after the STUN message")
	}
	if _, err := m.Get(stun.AttrUsername); err != nil {
		return errors.New("ice-tcp first frame: no USERNAME")
	}
	return nil
}

// iceConn is an ICE-TCP connection handed on: each Read returns bytes of
// whole RFC 4571 frames (the first one replayed), each frame checked to
// carry STUN, DTLS or RTP/RTCP by its first byte (RFC 7983 §7) and to be
// at most maxICEFrame bytes long. It closes itself at a frame that is not
// (Stats.ICETCPClosedBadFrame), and a read waits at most idle for the
// next frame. It is counted in set until closed.
type iceConn struct {
	net.Conn
	set     interface{ Remove(net.Conn) bool }
	stats   *Stats
	log     *connSet
	idle    time.Duration
	pending []byte // what is left of the frame being read
	buf     [2 + maxICEFrame]byte
	closed  atomic.Bool
}

func (c *iceConn) Read(p []byte) (int, error) {
	if len(c.pending) == 0 {
		if err := c.next(); err != nil {
			return 0, err
		}
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// next reads the next frame into pending.
func (c *iceConn) next() error {
	_ = c.Conn.SetReadDeadline(time.Now().Add(c.idle))
	if _, err := io.ReadFull(c.Conn, c.buf[:2]); err != nil {
		return err
	}
	n := int(binary.BigEndian.Uint16(c.buf[:2]))
	if n == 0 || n > maxICEFrame {
		return c.bad(fmt.Errorf("frame of %d bytes", n))
	}
	if _, err := io.ReadFull(c.Conn, c.buf[2:2+n]); err != nil {
		return err
	}
	if !iceMedia(c.buf[2]) {
		return c.bad(fmt.Errorf("frame starting 0x%02x, neither STUN, DTLS nor RTP", c.buf[2]))
	}
	c.pending = c.buf[:2+n]
	return nil
}

// bad closes the connection at a bad frame, counting and logging it.
func (c *iceConn) bad(err error) error {
	c.stats.ICETCPClosedBadFrame.Add(1)
	c.log.logf(closedICEBadFrame, slog.LevelInfo, "ice-tcp connection closed", "remote", c.Conn.RemoteAddr().String(), "reason", err.Error())
	if !c.closed.Swap(true) {
		c.set.Remove(c)
	}
	abort(c.Conn)
	return err
}

// iceMedia says whether a packet's first byte b is STUN (0-3), DTLS
// (20-63) or RTP/RTCP (128-191), the packets of a WebRTC transport (RFC
// 7983 §7).
func iceMedia(b byte) bool {
	return b <= 3 || b >= 20 && b <= 63 || b >= 128 && b <= 191
}

// Close counts the connection out of the ICE-TCP caps and closes it.
func (c *iceConn) Close() error {
	if !c.closed.Swap(true) {
		c.set.Remove(c)
	}
	return c.Conn.Close()
}

// NetConn is the connection under c.
func (c *iceConn) NetConn() net.Conn { return c.Conn }

// sharedICE is the net.Listener of a shared listener's ICE-TCP
// connections (Server.ICETCPListener). Closing it refuses ICE-TCP
// connections from then on (closed once told apart); TURN and HTTP go on.
type sharedICE struct{ l *sharedListener }

func (s sharedICE) Accept() (net.Conn, error) { return s.l.ice.accept() }
func (s sharedICE) Close() error              { s.l.ice.close(); return nil }
func (s sharedICE) Addr() net.Addr            { return s.l.acc.Addr() }

// ICETCPListener is the listener of ICE-TCP connections (RFC 6544, RFC
// 4571 framing) arriving at the listener shared with HTTP when it takes
// them (Listener.ICETCP): the SFU's ICE TCP mux accepts from it. Its Addr
// is the shared listener's bound address. Each connection's first Reads
// return its first frame, a STUN Binding request with a USERNAME; a read
// returns whole frames. Nil without such a listener.
func (s *Server) ICETCPListener() net.Listener {
	if s.shared == nil || s.shared.ice == nil {
		return nil
	}
	return sharedICE{s.shared}
}
