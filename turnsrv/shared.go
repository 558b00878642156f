package turnsrv

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/icebox-project/icebox/internal/connlimit"
)

// A listener shared with HTTP (Listener.ShareHTTP) is one TCP socket that
// serves TURN over TLS (or TCP) and the web server, so that a client on a
// network that lets only TCP 443 out reaches both. Each connection goes
// through:
//
//  1. accept (acceptor: retried with backoff, shed at the descriptor
//     limit), then the caps on connections not yet told apart, per client
//     address and in total (Config.MaxTCPConnectionsPerIP,
//     MaxTCPConnections; refusals counted as for TURN);
//  2. within Config.FirstMessageTimeout of accept: the TLS handshake, if
//     any, and then the choice (demux.go): the negotiated ALPN protocol,
//     else the first bytes, at most classifyBytes of them;
//  3. TURN: a guardConn, under the TURN connection caps and deadlines like
//     any TURN TCP connection, handed to pion/turn; HTTP: counted until
//     it closes under caps of its own with the same limits (per client
//     address and in total, refusals counted as for TURN), and handed,
//     with no deadline of its own, to whoever accepts from
//     Server.HTTPListener (net/http sets its own); ICE-TCP (with
//     Listener.ICETCP; icetcp.go): its whole first frame read, then
//     counted until it closes under caps of its own with the same limits,
//     and handed, framed and checked, to whoever accepts from
//     Server.ICETCPListener (the SFU's ICE TCP mux); neither: closed.
//
// A client that stalls or sends garbage holds only its own connection and
// its slot under the caps, for at most FirstMessageTimeout. One that
// holds idle HTTP connections (keep-alive, HTTP/2) holds at most
// MaxTCPConnectionsPerIP of them, and all clients together at most
// MaxTCPConnections, so HTTP cannot take the descriptors TURN needs; nor
// can either take the other's places under the caps.

// sharedListener serves one shared TCP socket.
type sharedListener struct {
	acc   *connlimit.Acceptor
	tls   *tls.Config // nil: plain TCP
	g     *guard
	conns *connSet
	turn  *connQueue // for pion/turn
	http  *connQueue // for Server.HTTPListener
	ice   *connQueue // for Server.ICETCPListener; nil: ICE-TCP is neither
	// iceIdle closes an ICE-TCP connection that sends nothing for this
	// long (Config.ICETCPIdleTimeout).
	iceIdle time.Duration

	pending *connlimit.Set // not yet told apart; evicting
	web     *connlimit.Set // handed to HTTP, until closed; evicting (HTTPConnState)
	iceSet  *connlimit.Set // handed to ICE-TCP, until closed; not evicting
	wg      sync.WaitGroup
	once    sync.Once
}

// newSharedListener starts accepting on raw; tlsConf nil means plain TCP.
// With iceIdle > 0 it takes ICE-TCP too, closing such a connection idle
// for iceIdle.
func newSharedListener(raw *net.TCPListener, tlsConf *tls.Config, g *guard, conns *connSet, iceIdle time.Duration) *sharedListener {
	return newSharedListenerOn(raw, raw, tlsConf, g, conns, iceIdle)
}

// newSharedListenerOn starts accepting on ln, which is raw or (in tests)
// a listener of connections that are not TCP, with raw nil.
func newSharedListenerOn(ln net.Listener, raw *net.TCPListener, tlsConf *tls.Config, g *guard, conns *connSet, iceIdle time.Duration) *sharedListener {
	l := &sharedListener{
		acc: newAcceptor(ln, raw, conns), tls: tlsConf, g: g, conns: conns,
		turn: newConnQueue(), http: newConnQueue(), iceIdle: iceIdle,
		pending: connlimit.NewSet(true), web: connlimit.NewSet(true), iceSet: connlimit.NewSet(false),
	}
	if iceIdle > 0 {
		l.ice = newConnQueue()
	}
	l.wg.Add(1)
	go l.serve()
	return l
}

// serve accepts until the listener closes, one goroutine per connection
// until it is told apart (bounded by the caps).
func (l *sharedListener) serve() {
	defer l.wg.Done()
	for {
		c, err := l.acc.Accept()
		if err != nil {
			return
		}
		lim := l.conns.limits.Load()
		evicted, why := l.pending.Add(c, lim.caps(), true)
		if evicted != nil {
			l.evict(evicted, "shared_evicted")
		}
		switch why {
		case "":
		case refusedClosed:
			c.Close()
			return
		default:
			l.conns.refused(why)
			abort(c)
			l.conns.logf(why, slog.LevelWarn, "turn tcp connection refused", "remote", c.RemoteAddr().String())
			continue
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			defer l.pending.Remove(c)
			l.handle(c, lim)
		}()
	}
}

// handle tells c apart and hands it on, or closes it.
func (l *sharedListener) handle(c net.Conn, lim *connLimits) {
	st := l.conns.stats
	deadline := time.Now().Add(lim.firstMsg)
	_ = c.SetDeadline(deadline)
	// Whatever wraps it later (TLS, the first bytes), closing the
	// connection closes wc, which counts it out of the HTTP caps.
	wc := &webConn{Conn: c, web: l.web}
	conn, kind := net.Conn(wc), kindMore
	if l.tls != nil && l.ice != nil {
		// ICE-TCP comes without TLS: look before the handshake.
		head, k, ok := l.readHead(c, wc, classifyRaw)
		if !ok {
			return
		}
		conn = &peekedConn{Conn: wc, head: head}
		if k == kindICE {
			kind = kindICE
		}
	}
	if l.tls != nil && kind == kindMore {
		tc := tls.Server(conn, l.tls)
		if err := tc.Handshake(); err != nil {
			if !l.pending.Remove(c) { // evicted to make room; counted there
				return
			}
			var ne net.Error
			if errors.Is(err, io.EOF) || errors.As(err, &ne) && ne.Timeout() {
				l.reject(c, &st.SharedSilent, "shared_silent", err)
			} else {
				l.reject(c, &st.SharedTLSFailed, "shared_tls_failed", err)
			}
			return
		}
		conn = tc
		// Done with TLS: no longer the cheap kind of connection that is
		// evicted to make room for fresh ones.
		l.pending.SetEvictable(c, false)
		switch tc.ConnectionState().NegotiatedProtocol {
		case ALPNTURN:
			kind = kindTURN
		case alpnACME:
			// A TLS-ALPN-01 validation: the certificate manager answered
			// in the handshake, and nothing follows it (RFC 8737 §3).
			tc.Close()
			return
		case "": // no ALPN: the first bytes tell
		default: // h2, http/1.1
			kind = kindHTTP
		}
	}
	if kind == kindMore {
		head, k, ok := l.readHead(c, conn, classify)
		if !ok {
			return
		}
		if _, isTLS := conn.(*tls.Conn); isTLS && k == kindICE {
			k = kindNeither // ICE-TCP is not spoken inside TLS
		}
		conn, kind = &peekedConn{Conn: conn, head: head}, k
	}
	if kind == kindICE && l.ice == nil {
		kind = kindNeither
	}
	if kind == kindNeither {
		l.pending.Remove(c)
		l.reject(conn, &st.SharedNeither, "shared_neither", nil)
		return
	}
	if kind == kindICE {
		l.handleICE(c, conn, lim)
		return
	}
	_ = conn.SetDeadline(time.Time{})
	// Told apart: out of the caps on connections not yet told apart
	// before it is counted under its kind's, or closed, so that a client
	// that sees it refused finds its place there free.
	l.pending.Remove(c)
	if kind == kindHTTP {
		// Evictable only once the web server says it is new or idle
		// (Server.HTTPConnState).
		evicted, why := l.web.Add(wc, lim.caps(), false)
		if evicted != nil {
			l.evict(evicted, "http_evicted")
		}
		switch why {
		case "":
		case refusedClosed:
			conn.Close()
			return
		default:
			l.conns.refused(why)
			abort(conn)
			l.conns.logf("http_"+why, slog.LevelWarn, "shared listener: http connection refused", "remote", conn.RemoteAddr().String(), "reason", why)
			return
		}
		st.SharedHTTP.Add(1)
		if !l.http.put(conn, l.acc.Done()) {
			conn.Close()
		}
		return
	}
	gc := newGuardConn(conn, l.g, l.conns)
	switch why := l.conns.add(gc); why {
	case "":
		// add started the first-message deadline afresh; the one from
		// accept stands, as on a TURN-only listener (the TLS handshake
		// and the first bytes count against it).
		_ = conn.SetDeadline(deadline)
	case refusedClosed:
		conn.Close()
		return
	default:
		abort(conn)
		l.conns.logf(why, slog.LevelWarn, "turn tcp connection refused", "remote", conn.RemoteAddr().String())
		return
	}
	st.SharedTURN.Add(1)
	if !l.turn.put(gc, l.acc.Done()) {
		gc.Close()
	}
}

// readHead reads the first bytes of conn (c, or what wraps it) until
// kindOf tells what they are; false when the client went silent or left
// first (rejected and counted here) or c was evicted meanwhile.
func (l *sharedListener) readHead(c, conn net.Conn, kindOf func([]byte) streamKind) ([]byte, streamKind, bool) {
	head := make([]byte, classifyBytes)
	n := 0
	for {
		m, err := conn.Read(head[n:])
		n += m
		kind := kindOf(head[:n])
		if kind != kindMore {
			return head[:n], kind, true
		}
		if err != nil {
			if l.pending.Remove(c) { // else evicted to make room; counted there
				l.reject(conn, &l.conns.stats.SharedSilent, "shared_silent", err)
			}
			return nil, kindMore, false
		}
	}
}

// evict closes a connection evicted to make room at the total cap,
// logging it at most once a minute per kind, and counting it.
func (l *sharedListener) evict(c net.Conn, kind string) {
	l.conns.logf(kind, slog.LevelInfo, "shared listener: connection closed to make room", "remote", c.RemoteAddr().String())
	l.conns.stats.SharedEvicted.Add(1)
	abort(c)
}

// maxLoggedError bounds the error text reject logs: crypto/tls's errors
// can repeat what the client sent, such as every ALPN name it offered (up
// to 64 KB).
const maxLoggedError = 256

// reject closes a connection that was not told apart, counting it in n
// and logging it at most once a minute per kind (silent ones at debug:
// health checks and port scanners connect and leave).
func (l *sharedListener) reject(c net.Conn, n interface{ Add(int64) int64 }, kind string, err error) {
	level := slog.LevelInfo
	if kind == "shared_silent" {
		level = slog.LevelDebug
	}
	args := []any{"remote", c.RemoteAddr().String()}
	if err != nil {
		msg := err.Error()
		if len(msg) > maxLoggedError {
			msg = msg[:maxLoggedError] + "…"
		}
		args = append(args, "error", msg)
	}
	l.conns.logf(kind, level, "shared listener: connection closed before it was told apart", args...)
	// Logged, then counted, then closed: whoever sees the count sees the
	// line, and whoever sees the close sees both.
	n.Add(1)
	abort(c)
}

// close stops accepting, ends the connections not yet told apart and
// both queues, and waits for the goroutines. Told-apart connections stay
// (Server.Close ends TURN's; the web server its own).
func (l *sharedListener) close() error {
	var err error
	l.once.Do(func() {
		err = l.acc.Close()
		l.pending.CloseAll()
		l.turn.close()
		l.http.close()
		if l.ice != nil {
			l.ice.close()
		}
		l.wg.Wait()
	})
	return err
}

// sharedTURN is the net.Listener pion/turn accepts TURN connections of a
// shared listener from; closing it closes the shared listener.
type sharedTURN struct{ l *sharedListener }

func (s sharedTURN) Accept() (net.Conn, error) { return s.l.turn.accept() }
func (s sharedTURN) Close() error              { return s.l.close() }
func (s sharedTURN) Addr() net.Addr            { return s.l.acc.Addr() }

// sharedHTTP is the net.Listener of a shared listener's HTTP connections
// (Server.HTTPListener). Closing it refuses HTTP connections from then on
// (closed once told apart); TURN goes on.
type sharedHTTP struct{ l *sharedListener }

func (s sharedHTTP) Accept() (net.Conn, error) { return s.l.http.accept() }
func (s sharedHTTP) Close() error              { s.l.http.close(); return nil }
func (s sharedHTTP) Addr() net.Addr            { return s.l.acc.Addr() }

// HTTPConnState is for the http.Server.ConnState of the web server that
// serves Server.HTTPListener: an HTTP connection of the shared listener
// with no request yet or idle between requests may be evicted to make
// room for a fresh one at the total cap; one serving a request or
// hijacked (a WebSocket) may not. Without it no HTTP connection is
// evicted, and one over the cap is refused.
func (s *Server) HTTPConnState(c net.Conn, st http.ConnState) {
	if s.shared == nil {
		return
	}
	if wc, ok := connlimit.Unwrap[*webConn](c); ok {
		wc.web.SetEvictable(wc, connlimit.Evictable(st))
	}
}

// connQueue hands told-apart connections to an accepting goroutine.
type connQueue struct {
	ch   chan net.Conn // unbuffered: a connection is handed over only to an Accept
	done chan struct{}
	once sync.Once
}

func newConnQueue() *connQueue {
	return &connQueue{ch: make(chan net.Conn), done: make(chan struct{})}
}

// put hands c to an Accept; false when the queue or stop closed first
// (the caller closes c).
func (q *connQueue) put(c net.Conn, stop <-chan struct{}) bool {
	select {
	case q.ch <- c:
		return true
	case <-q.done:
	case <-stop:
	}
	return false
}

// accept waits for a connection; net.ErrClosed once the queue is closed.
func (q *connQueue) accept() (net.Conn, error) {
	select {
	case <-q.done:
		return nil, net.ErrClosed
	default:
	}
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

func (q *connQueue) close() { q.once.Do(func() { close(q.done) }) }

// webConn is an accepted connection of a shared listener, under TLS and
// the first bytes if any; once it is handed to HTTP it is counted in web
// until closed.
type webConn struct {
	net.Conn
	web *connlimit.Set
}

// Close counts c out of web (if it was counted) and closes it.
func (c *webConn) Close() error {
	c.web.Remove(c)
	return c.Conn.Close()
}

// NetConn is the TCP connection under c.
func (c *webConn) NetConn() net.Conn { return c.Conn }

// peekedConn is a connection whose first bytes were read to tell it
// apart; Read returns them first.
type peekedConn struct {
	net.Conn
	head []byte
}

func (c *peekedConn) Read(p []byte) (int, error) {
	if len(c.head) > 0 {
		n := copy(p, c.head)
		c.head = c.head[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// NetConn is the connection under c (a *tls.Conn or a *webConn).
func (c *peekedConn) NetConn() net.Conn { return c.Conn }

// TLSConnectionState is the TLS state of a connection from
// Server.HTTPListener whose first bytes were read to tell it apart (a
// client that offered no ALPN), which net/http cannot see since the
// connection is not a *tls.Conn; nil for any other connection. The web
// server sets it as the request's TLS (http.Server.ConnContext).
func TLSConnectionState(c net.Conn) *tls.ConnectionState {
	p, ok := c.(*peekedConn)
	if !ok {
		return nil
	}
	tc, ok := p.Conn.(*tls.Conn)
	if !ok {
		return nil
	}
	st := tc.ConnectionState()
	return &st
}
