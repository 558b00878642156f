package turnsrv

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/icebox-project/icebox/internal/clientaddr"
	"github.com/icebox-project/icebox/internal/ratelog"
)

// TURN over TCP and TLS (RFC 8656 §3.1) holds one descriptor per client
// for as long as the client likes, so the listener defends itself:
//   - Accept never gives up while the server runs: pion/turn's accept loop
//     (v4.1.4) ends at its first Accept error, which would leave TCP down
//     after one moment at the descriptor limit. Errors are retried with
//     backoff; at the descriptor limit one waiting connection is accepted
//     with a spare descriptor and closed, so the backlog does not fill
//     with clients that would only be served much later.
//   - Caps per client address (clientaddr keys: the IPv4 address or the
//     IPv6 prefix) and in total, below the descriptor limit; a connection
//     over a cap is closed at once.
//   - Deadlines: the first STUN message (TLS handshake included) within
//     FirstMessageTimeout, and an allocation at least once every
//     NoAllocationTimeout (guardConn).
// Refusals are counted always and logged at most once a minute per kind.

// Defaults of the TCP connection deadlines (Config).
const (
	// DefaultFirstMessageTimeout bounds a connection's TLS handshake and
	// its first STUN message: far above a real client's round trips, far
	// below what makes holding idle connections cheap.
	DefaultFirstMessageTimeout = 10 * time.Second
	// DefaultNoAllocationTimeout is how long a connection may hold no
	// allocation: ample for a Binding first, the 401 challenge, the
	// Allocate and retries after a 437 or 438 (RFC 8656 §7), and for
	// a client re-allocating after its allocation ended.
	DefaultNoAllocationTimeout = 60 * time.Second
)

// Accept backoff bounds. The cap puts service back within a quarter
// second of the pressure ending.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = 250 * time.Millisecond
)

// AutoMaxTCPConnections is the total TCP connection cap Config's zero
// MaxTCPConnections stands for: a quarter of the soft RLIMIT_NOFILE. A
// TCP client with an allocation holds two descriptors (its connection and
// the relayed socket); the other half is left for UDP allocations' relayed
// sockets, WebSockets, HTTP and files. Where the limit cannot be read:
// 1024.
func AutoMaxTCPConnections() int {
	n, ok := fdLimit()
	if !ok || n == 0 {
		return 1024
	}
	return max(int(min(n/4, 1<<30)), 1)
}

// acceptor accepts TCP connections for a TURN listener (guardListener)
// or a listener shared with HTTP (sharedListener): it never gives up while
// open, backing off after errors and shedding a waiting connection at the
// descriptor limit.
type acceptor struct {
	ln    net.Listener
	raw   *net.TCPListener // under ln (a TLS listener wraps it)
	conns *connSet         // counts and logs accept errors and sheds
	done  chan struct{}
	once  sync.Once

	spareMu sync.Mutex
	spare   *os.File // freed at the descriptor limit to shed one connection; nil: none
}

// newAcceptor accepts from ln, which is raw or a TLS listener on raw.
func newAcceptor(ln net.Listener, raw *net.TCPListener, conns *connSet) *acceptor {
	a := &acceptor{ln: ln, raw: raw, conns: conns, done: make(chan struct{})}
	a.spare, _ = os.Open(os.DevNull)
	return a
}

// accept returns the next connection. It retries every error but a closed
// listener, with backoff from 5 ms up to 250 ms, and returns
// net.ErrClosed only after close. It is not called concurrently.
func (a *acceptor) accept() (net.Conn, error) {
	var backoff time.Duration
	for {
		c, err := a.ln.Accept()
		if err == nil {
			return c, nil
		}
		if a.closed() || errors.Is(err, net.ErrClosed) {
			return nil, net.ErrClosed
		}
		a.conns.stats.TCPAcceptErrors.Add(1)
		a.conns.logf(logAcceptErrors, slog.LevelWarn, "turn tcp accept failed; retrying", "error", err.Error())
		if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
			a.shed()
		}
		backoff = min(max(2*backoff, acceptBackoffMin), acceptBackoffMax)
		t := time.NewTimer(backoff)
		select {
		case <-a.done:
			t.Stop()
			return nil, net.ErrClosed
		case <-t.C:
		}
	}
}

// shed frees the spare descriptor, accepts one waiting connection with it
// and closes that connection, then takes the spare back. Accept is not
// called concurrently (one loop per listener), so the waiting connection
// is not raced for by this listener; another socket of the process may
// take the freed descriptor first, which only makes this round shed
// nothing.
func (a *acceptor) shed() {
	a.spareMu.Lock()
	defer a.spareMu.Unlock()
	if a.spare == nil {
		a.spare, _ = os.Open(os.DevNull)
		return
	}
	a.spare.Close()
	a.spare = nil
	if tl := a.raw; tl != nil {
		// Only a connection already waiting: SetDeadline in the past would
		// fail the accept, so use a short one.
		_ = tl.SetDeadline(time.Now().Add(time.Millisecond))
		if c, err := tl.Accept(); err == nil {
			a.conns.logf(refusedFDLimit, slog.LevelWarn, "turn tcp connection refused", "remote", c.RemoteAddr().String())
			a.conns.stats.TCPRefusedFDLimit.Add(1)
			abort(c)
		}
		_ = tl.SetDeadline(time.Time{})
	}
	a.spare, _ = os.Open(os.DevNull)
}

func (a *acceptor) closed() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

// close stops accept and closes the listener; accepted connections stay.
func (a *acceptor) close() error {
	a.once.Do(func() {
		close(a.done)
		a.spareMu.Lock()
		if a.spare != nil {
			a.spare.Close()
			a.spare = nil
		}
		a.spareMu.Unlock()
	})
	return a.ln.Close()
}

// guardListener wraps accepted TCP (or TLS) connections in guardConn,
// enforces the connection caps and tracks the connections, since
// pion/turn's Close leaves accepted connections open.
type guardListener struct {
	acc *acceptor
	g   *guard
}

// newGuardListener serves ln, which is raw or a TLS listener on raw.
func newGuardListener(ln net.Listener, raw *net.TCPListener, g *guard, conns *connSet) *guardListener {
	return &guardListener{acc: newAcceptor(ln, raw, conns), g: g}
}

// Accept returns the next connection within the caps. It retries every
// error but a closed listener (acceptor.accept) and returns net.ErrClosed
// only after Close.
func (l *guardListener) Accept() (net.Conn, error) {
	for {
		c, err := l.acc.accept()
		if err != nil {
			return nil, err
		}
		gc := newGuardConn(c, l.g, l.acc.conns)
		switch why := l.acc.conns.add(gc); why {
		case "":
			return gc, nil
		case refusedClosed:
			c.Close()
			return nil, net.ErrClosed
		default:
			// Logged before the close: whoever sees the close sees the line.
			l.acc.conns.logf(why, slog.LevelWarn, "turn tcp connection refused", "remote", c.RemoteAddr().String())
			abort(c)
		}
	}
}

// Close stops Accept and closes the listener; accepted connections stay
// (Server.Close ends them).
func (l *guardListener) Close() error { return l.acc.close() }

// Addr is the listener's address.
func (l *guardListener) Addr() net.Addr { return l.acc.ln.Addr() }

// abort closes a refused connection with a reset (SO_LINGER 0), so a
// flood of refusals leaves no TIME_WAIT sockets behind on the server.
func abort(c net.Conn) {
	closer := c
	for { // under TLS, or a connection whose first bytes were read
		u, ok := c.(interface{ NetConn() net.Conn })
		if !ok {
			break
		}
		c = u.NetConn()
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	closer.Close()
}

// Reasons a connection is refused or closed, as counted and logged.
const (
	refusedPerIP            = "per_ip"
	refusedPerIPv6Aggregate = "per_ipv6_aggregate"
	refusedTotal            = "total"
	refusedFDLimit          = "fd_limit"
	refusedClosed           = "closed"
	closedFirstMsg          = "first_message_timeout"
	closedNoAlloc           = "no_allocation"
	closedBadFrame          = "bad_frame"
	logAcceptErrors         = "accept_error"
)

// connLimits are the TCP connection caps and deadlines, resolved: a cap
// <= 0 is no cap, the deadlines are > 0.
type connLimits struct {
	perIP, total      int
	firstMsg, noAlloc time.Duration
	keyer             clientaddr.Keyer
}

// tuple is a TCP connection's client and listener address.
type tuple struct{ remote, local netip.AddrPort }

func tupleOf(remote, local net.Addr) tuple {
	ap := func(a net.Addr) netip.AddrPort {
		if t, ok := a.(*net.TCPAddr); ok {
			p := t.AddrPort()
			return netip.AddrPortFrom(p.Addr().Unmap(), p.Port())
		}
		return netip.AddrPort{}
	}
	return tuple{ap(remote), ap(local)}
}

// connSet holds the open TCP connections: the caps count them, Close ends
// them, and the allocation events reach them by 5-tuple.
type connSet struct {
	stats  *Stats
	owners *owners
	log    *slog.Logger
	limits atomic.Pointer[connLimits]
	// kept counts no-allocation checks that found an allocation, for tests.
	kept atomic.Int64
	// refusals logs refusals and deadline closes once a minute per kind.
	refusals *ratelog.Logger

	mu      sync.Mutex
	conns   map[*guardConn]struct{}
	byTuple map[tuple]*guardConn
	perKey  clientaddr.Counter // per client address and IPv6 aggregate
	closed  bool
}

func newConnSet(lim connLimits, stats *Stats, own *owners, log *slog.Logger) *connSet {
	s := &connSet{
		stats: stats, owners: own, log: log,
		conns: map[*guardConn]struct{}{}, byTuple: map[tuple]*guardConn{},
		refusals: ratelog.New(log, 1, nil),
	}
	s.limits.Store(&lim)
	return s
}

// setCaps replaces the caps and the client keys for connections accepted
// from now on; open connections stay counted under the key they came in
// with.
func (s *connSet) setCaps(perIP, total int, keyer clientaddr.Keyer) {
	lim := *s.limits.Load()
	lim.perIP, lim.total, lim.keyer = perIP, total, keyer
	s.limits.Store(&lim)
}

// add counts c in, or returns why it is refused: refusedPerIP,
// refusedPerIPv6Aggregate, refusedTotal (counted in Stats) or
// refusedClosed.
func (s *connSet) add(c *guardConn) string {
	lim := s.limits.Load()
	key := lim.keyer.KeysAddr(c.Conn.RemoteAddr())
	s.mu.Lock()
	defer s.mu.Unlock()
	switch full := s.perKey.Full(key, lim.perIP); {
	case s.closed:
		return refusedClosed
	case full == clientaddr.TierAddress:
		s.stats.TCPRefusedPerIP.Add(1)
		return refusedPerIP
	case full == clientaddr.TierAggregate:
		s.stats.TCPRefusedPerIPv6Aggregate.Add(1)
		return refusedPerIPv6Aggregate
	case lim.total > 0 && len(s.conns) >= lim.total:
		s.stats.TCPRefusedTotal.Add(1)
		return refusedTotal
	}
	c.key = key
	s.conns[c] = struct{}{}
	s.byTuple[c.tuple] = c
	s.perKey.Add(key)
	s.stats.TCPConnectionsOpen.Add(1)
	c.start(lim.firstMsg, lim.noAlloc)
	return ""
}

// refused counts a refusal by the caps (refusedPerIP or refusedTotal)
// made outside add (a shared listener's connections not yet told apart).
func (s *connSet) refused(why string) {
	switch why {
	case refusedPerIP:
		s.stats.TCPRefusedPerIP.Add(1)
	case refusedTotal:
		s.stats.TCPRefusedTotal.Add(1)
	}
}

// remove counts c out; removing it again does nothing.
func (s *connSet) remove(c *guardConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.conns[c]; !ok {
		return
	}
	delete(s.conns, c)
	if s.byTuple[c.tuple] == c {
		delete(s.byTuple, c.tuple)
	}
	s.perKey.Remove(c.key)
	s.stats.TCPConnectionsOpen.Add(-1)
}

// allocationEnded restarts the no-allocation clock of the connection with
// this 5-tuple, if it is a TCP one still open.
func (s *connSet) allocationEnded(src, local net.Addr) {
	if _, ok := src.(*net.TCPAddr); !ok {
		return
	}
	s.mu.Lock()
	c := s.byTuple[tupleOf(src, local)]
	s.mu.Unlock()
	if c != nil {
		c.setLastHeld(time.Now())
	}
}

// closeAll closes every connection and refuses new ones.
func (s *connSet) closeAll() {
	s.mu.Lock()
	s.closed = true
	conns := make([]*guardConn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// logf logs msg at most once a minute per kind, with a summary of the
// lines left out (internal/ratelog).
func (s *connSet) logf(kind string, level slog.Level, msg string, args ...any) {
	s.refusals.Log(level, kind, msg, args...)
}
