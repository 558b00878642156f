package turnsrv

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/stun/v3"

	"github.com/icebox-project/icebox/internal/clientaddr"
)

// guardConn frames a TURN-over-TCP stream (RFC 8656 §12.5: STUN messages
// and ChannelData padded to 4 bytes) with tcpFrameLen, passes each frame
// through the guard, and hands pion/turn's STUNConn one whole frame per
// Read, which it cannot frame any other way (framing.go). It closes itself when no
// STUN message arrives within the first-message time (a read and write
// deadline, which also bounds a TLS handshake: it runs on the first Read)
// or when it has held no allocation for the no-allocation time (a timer
// that looks the 5-tuple up in the guard's owners).
type guardConn struct {
	net.Conn
	g       *guard
	fr      frameReader
	m       *stun.Message
	pending []byte
	conns   *connSet
	tuple   fiveTuple
	key     clientaddr.Keys // the client's limit keys, set by connSet.add
	// started is set at the first STUN message; only Read touches it.
	started bool
	closed  atomic.Bool

	mu       sync.Mutex
	timer    *time.Timer // the no-allocation check
	noAlloc  time.Duration
	lastHeld time.Time // when the connection last held an allocation, or was accepted
}

func newGuardConn(c net.Conn, g *guard, conns *connSet) *guardConn {
	gc := &guardConn{Conn: c, g: g, fr: newFrameReader(c), m: new(stun.Message), conns: conns,
		tuple: fiveTupleOf(c.RemoteAddr(), c.LocalAddr())}
	gc.fr.dropped = func() { conns.stats.DroppedNotSTUN.Add(1) }
	return gc
}

// start sets the first-message deadline and starts the no-allocation
// check.
func (c *guardConn) start(firstMsg, noAlloc time.Duration) {
	now := time.Now()
	_ = c.Conn.SetDeadline(now.Add(firstMsg))
	c.mu.Lock()
	c.noAlloc, c.lastHeld = noAlloc, now
	c.timer = time.AfterFunc(noAlloc, c.checkAllocation)
	c.mu.Unlock()
}

func (c *guardConn) setLastHeld(t time.Time) {
	c.mu.Lock()
	c.lastHeld = t
	c.mu.Unlock()
}

// checkAllocation closes the connection when it has held no allocation
// for noAlloc, and otherwise looks again when that could next be so.
func (c *guardConn) checkAllocation() {
	if c.closed.Load() {
		return
	}
	now := time.Now()
	_, held := c.conns.owners.get(c.Conn.RemoteAddr(), c.Conn.LocalAddr())
	c.mu.Lock()
	if held {
		c.lastHeld = now
	}
	idle := now.Sub(c.lastHeld)
	if held || idle < c.noAlloc {
		c.timer.Reset(c.noAlloc - idle)
		c.mu.Unlock()
		if held {
			c.conns.kept.Add(1)
		}
		return
	}
	c.mu.Unlock()
	c.conns.stats.TCPClosedNoAllocation.Add(1)
	c.conns.logf(closedNoAlloc, slog.LevelInfo, "turn tcp connection closed", "remote", c.Conn.RemoteAddr().String())
	c.Close()
}

// Close closes the connection and counts it out of the caps. It is safe
// to call more than once and from any goroutine.
func (c *guardConn) Close() error {
	if !c.closed.Swap(true) {
		c.mu.Lock()
		if c.timer != nil {
			c.timer.Stop()
		}
		c.mu.Unlock()
	}
	c.conns.remove(c)
	return c.Conn.Close()
}

func (c *guardConn) Read(p []byte) (int, error) {
	for len(c.pending) == 0 {
		frame, err := c.readFrame()
		if err != nil {
			var ne net.Error
			if !c.started && !c.closed.Load() && errors.As(err, &ne) && ne.Timeout() {
				c.conns.stats.TCPClosedFirstMessage.Add(1)
				c.conns.logf(closedFirstMsg, slog.LevelInfo, "turn tcp connection closed", "remote", c.Conn.RemoteAddr().String())
			}
			return 0, err
		}
		if !c.started && packetKind(frame) == kindSTUN {
			// A STUN message (RFC 8489 §5): the first-message deadline is met.
			c.started = true
			_ = c.Conn.SetDeadline(time.Time{})
		}
		reply, n, pass := c.g.Admit(c.m, frame, c.Conn.RemoteAddr(), c.Conn.LocalAddr())
		if reply != nil {
			if _, err := c.Conn.Write(reply); err != nil {
				return 0, err
			}
		}
		if pass {
			c.pending = frame[:n]
		}
	}
	// One frame per Read when p holds it (pion/turn's buffer holds
	// pionInboundMTU bytes, more than maxTCPFrame); a frame longer than p
	// is the rest of the next Reads.
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// readFrame reads the next frame (frameReader.next), counting and logging
// a frame that ends the connection.
func (c *guardConn) readFrame() ([]byte, error) {
	frame, err := c.fr.next()
	if err != nil && isFramingError(err) {
		c.conns.stats.TCPClosedBadFrame.Add(1)
		c.conns.logf(closedBadFrame, slog.LevelInfo, "turn tcp connection closed", "remote", c.Conn.RemoteAddr().String(), "reason", err.Error())
	}
	return frame, err
}
