package connlimit

import (
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/icebox-project/icebox/internal/ratelog"
)

// Stats counts what Listeners refused; several Listeners may share one.
type Stats struct {
	// Open is the number of connections accepted and not yet closed (a
	// gauge).
	Open atomic.Int64
	// RefusedPerIP and RefusedTotal count connections closed as soon as
	// they were accepted because their client address or the listener was
	// at its cap; RefusedFDLimit counts waiting connections accepted and
	// closed at once because the process was out of file descriptors;
	// Evicted counts connections that were new or idle (no request under
	// way, no WebSocket) and were closed to make room at the total cap.
	RefusedPerIP, RefusedTotal, RefusedFDLimit, Evicted atomic.Int64
	// RefusedPerIPv6Aggregate counts connections refused because their
	// client's IPv6 aggregate prefix was at its cap (Caps).
	RefusedPerIPv6Aggregate atomic.Int64
	// AcceptErrors counts failed accepts (such as EMFILE), each retried.
	AcceptErrors atomic.Int64
}

// Listener is a net.Listener for a web server whose connections are
// within Caps: per client address (refused over it) and in total (the
// connection that has been new or idle longest is evicted to make room,
// if the web server reports its connections' states to ConnState; else
// refused). Accept never gives up while open (Acceptor). Refusals and
// evictions are counted in Stats and logged at a bounded rate.
type Listener struct {
	acc   *Acceptor
	set   *Set
	caps  atomic.Pointer[Caps]
	stats *Stats
	log   *ratelog.Logger
}

// NewListener accepts from ln, which is raw or a listener wrapping raw
// (raw nil turns descriptor shedding off), within caps. Refusals are
// counted in stats and logged to log with reasons prefixed "http_".
func NewListener(ln net.Listener, raw *net.TCPListener, caps Caps, stats *Stats, log *ratelog.Logger) *Listener {
	l := &Listener{set: NewSet(true), stats: stats, log: log}
	l.caps.Store(&caps)
	l.acc = NewAcceptor(ln, raw, Events{
		AcceptError: func(err error) {
			stats.AcceptErrors.Add(1)
			log.Warn("http_accept_error", "http accept failed; retrying", "error", err.Error())
		},
		Shed: func(c net.Conn) {
			log.Warn("http_"+RefusedFDLimit, "http connection refused", "remote", c.RemoteAddr().String())
			stats.RefusedFDLimit.Add(1)
		},
	})
	return l
}

// SetCaps replaces the caps for connections accepted from now on; open
// connections stay counted under the key they came in with.
func (l *Listener) SetCaps(c Caps) { l.caps.Store(&c) }

// Accept returns the next connection within the caps; net.ErrClosed
// after Close.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.acc.Accept()
		if err != nil {
			return nil, err
		}
		lc := &conn{Conn: c, l: l}
		// Evictable only once the web server says it is new (ConnState).
		evicted, why := l.set.Add(lc, l.caps.Load(), false)
		if evicted != nil {
			// Logged, then counted, then closed: whoever sees the close sees both.
			l.log.Info("http_"+Evicted, "http connection closed to make room", "remote", evicted.RemoteAddr().String())
			l.stats.Evicted.Add(1)
			l.stats.Open.Add(-1)
			Abort(evicted)
		}
		switch why {
		case "":
			l.stats.Open.Add(1)
			return lc, nil
		case RefusedClosed:
			c.Close()
			return nil, net.ErrClosed
		}
		l.log.Warn("http_"+why, "http connection refused", "remote", c.RemoteAddr().String())
		switch why {
		case RefusedPerIP:
			l.stats.RefusedPerIP.Add(1)
		case RefusedPerIPv6Aggregate:
			l.stats.RefusedPerIPv6Aggregate.Add(1)
		default:
			l.stats.RefusedTotal.Add(1)
		}
		Abort(c)
	}
}

// ConnState is for http.Server.ConnState: a connection with no request
// yet or idle between requests may be evicted, one serving a request or
// hijacked (a WebSocket) may not.
func (l *Listener) ConnState(c net.Conn, st http.ConnState) {
	if lc, ok := Unwrap[*conn](c); ok && lc.l == l {
		l.set.SetEvictable(lc, Evictable(st))
	}
}

// Evictable reports whether a web connection in state st may be evicted:
// one with no request yet or idle between requests; not one serving a
// request or hijacked (a WebSocket).
func Evictable(st http.ConnState) bool { return st == http.StateNew || st == http.StateIdle }

// Unwrap finds the connection of type T under c, following NetConn (a
// *tls.Conn's, for one); false when there is none.
func Unwrap[T net.Conn](c net.Conn) (T, bool) {
	for {
		if t, ok := c.(T); ok {
			return t, true
		}
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			var zero T
			return zero, false
		}
		c = u.NetConn()
	}
}

// Close stops Accept and closes the listener; accepted connections stay
// (http.Server.Shutdown ends them).
func (l *Listener) Close() error { return l.acc.Close() }

// Addr is the listener's address.
func (l *Listener) Addr() net.Addr { return l.acc.Addr() }

// conn is an accepted connection, counted in its Listener until closed.
type conn struct {
	net.Conn
	l    *Listener
	once sync.Once
}

// Close counts c out and closes it.
func (c *conn) Close() error {
	c.once.Do(func() {
		if c.l.set.Remove(c) {
			c.l.stats.Open.Add(-1)
		}
	})
	return c.Conn.Close()
}

// NetConn is the TCP connection under c.
func (c *conn) NetConn() net.Conn { return c.Conn }

// ErrorLog is a writer for net/http's ErrorLog (log.New(w, "", 0)) that
// passes each line to log at Warn, at most ratelog's budget per minute
// per kind (a TLS handshake error, an HTTP/2 error, anything else), so a
// client sending bad handshakes or bogus HTTP/2 prefaces cannot set the
// log's volume. Lines counts every line it was given.
type ErrorLog struct {
	log   *ratelog.Logger
	Lines atomic.Int64
}

// NewErrorLog writes to log.
func NewErrorLog(log *ratelog.Logger) *ErrorLog { return &ErrorLog{log: log} }

// Write logs p, one line of net/http's log, and never fails.
func (e *ErrorLog) Write(p []byte) (int, error) {
	msg := string(p)
	if n := len(msg); n > 0 && msg[n-1] == '\n' {
		msg = msg[:n-1]
	}
	reason := "http_error"
	switch {
	case strings.HasPrefix(msg, "http: TLS handshake error"):
		reason = "http_tls_handshake"
	case strings.HasPrefix(msg, "http2:"):
		reason = "http2_error"
	case strings.HasPrefix(msg, "http: Accept error"):
		reason = "http_accept_error"
	}
	if len(msg) > maxLoggedError {
		msg = msg[:maxLoggedError] + "…"
	}
	e.log.Log(slog.LevelWarn, reason, "http server error", "error", msg)
	e.Lines.Add(1)
	return len(p), nil
}

// maxLoggedError bounds the text of a line ErrorLog passes on: crypto/tls's
// errors can repeat what the client sent.
const maxLoggedError = 256
