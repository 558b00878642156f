package turnsrv

import (
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icebox-project/icebox/internal/clientaddr"
	"github.com/icebox-project/icebox/internal/connlimit"
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

// newAcceptor accepts from ln, which is raw or a TLS listener on raw,
// counting and logging accept errors and sheds in conns.
func newAcceptor(ln net.Listener, raw *net.TCPListener, conns *connSet) *connlimit.Acceptor {
	return connlimit.NewAcceptor(ln, raw, connlimit.Events{
		AcceptError: func(err error) {
			conns.stats.TCPAcceptErrors.Add(1)
			conns.logf(logAcceptErrors, slog.LevelWarn, "turn tcp accept failed; retrying", "error", err.Error())
		},
		Shed: func(c net.Conn) {
			conns.logf(refusedFDLimit, slog.LevelWarn, "turn tcp connection refused", "remote", c.RemoteAddr().String())
			conns.stats.TCPRefusedFDLimit.Add(1)
		},
	})
}

// guardListener wraps accepted TCP (or TLS) connections in guardConn,
// enforces the connection caps and tracks the connections, since
// pion/turn's Close leaves accepted connections open.
type guardListener struct {
	acc   *connlimit.Acceptor
	g     *guard
	conns *connSet
}

// newGuardListener serves ln, which is raw or a TLS listener on raw.
func newGuardListener(ln net.Listener, raw *net.TCPListener, g *guard, conns *connSet) *guardListener {
	return &guardListener{acc: newAcceptor(ln, raw, conns), g: g, conns: conns}
}

// Accept returns the next connection within the caps. It retries every
// error but a closed listener (connlimit.Acceptor) and returns net.ErrClosed
// only after Close.
func (l *guardListener) Accept() (net.Conn, error) {
	for {
		c, err := l.acc.Accept()
		if err != nil {
			return nil, err
		}
		gc := newGuardConn(c, l.g, l.conns)
		switch why := l.conns.add(gc); why {
		case "":
			return gc, nil
		case refusedClosed:
			c.Close()
			return nil, net.ErrClosed
		default:
			// Logged before the close: whoever sees the close sees the line.
			l.conns.logf(why, slog.LevelWarn, "turn tcp connection refused", "remote", c.RemoteAddr().String())
			abort(c)
		}
	}
}

// Close stops Accept and closes the listener; accepted connections stay
// (Server.Close ends them).
func (l *guardListener) Close() error { return l.acc.Close() }

// Addr is the listener's address.
func (l *guardListener) Addr() net.Addr { return l.acc.Addr() }

// abort closes a refused connection with a reset (connlimit.Abort).
func abort(c net.Conn) { connlimit.Abort(c) }

// Reasons a connection is refused or closed, as counted and logged.
const (
	refusedPerIP            = connlimit.RefusedPerIP
	refusedPerIPv6Aggregate = connlimit.RefusedPerIPv6Aggregate
	refusedTotal            = connlimit.RefusedTotal
	refusedFDLimit          = connlimit.RefusedFDLimit
	refusedClosed           = connlimit.RefusedClosed
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

// caps are the connection caps in connlimit's terms.
func (l *connLimits) caps() *connlimit.Caps {
	return &connlimit.Caps{PerIP: l.perIP, Total: l.total, Keyer: l.keyer}
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
	byTuple map[fiveTuple]*guardConn
	perKey  clientaddr.Counter // per client address and IPv6 aggregate
	closed  bool
}

func newConnSet(lim connLimits, stats *Stats, own *owners, log *slog.Logger) *connSet {
	s := &connSet{
		stats: stats, owners: own, log: log,
		conns: map[*guardConn]struct{}{}, byTuple: map[fiveTuple]*guardConn{},
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
	case refusedPerIPv6Aggregate:
		s.stats.TCPRefusedPerIPv6Aggregate.Add(1)
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
	c := s.byTuple[fiveTupleOf(src, local)]
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
