// Package connlimit defends a TCP listener that holds one descriptor per
// client for as long as the client likes (TURN over TCP and TLS, HTTP
// keep-alive and WebSockets):
//   - Acceptor never gives up while open: accept errors are retried with
//     backoff, and at the descriptor limit one waiting connection is
//     accepted with a spare descriptor and closed, so the backlog does not
//     fill with clients that would only be served much later.
//   - Set counts connections per client address (internal/clientaddr
//     keys: the IPv4 address or the IPv6 prefix) and in total, and says
//     which one to refuse, or to evict, at a cap.
//   - Listener puts both in front of a web server: a net.Listener whose
//     connections are within the caps, refusals counted (Stats) and
//     logged at a bounded rate (internal/ratelog).
//
// turnsrv uses Acceptor and Set for its TCP and TLS listeners and the
// port it shares with HTTP; the daemon uses Listener for every HTTP
// listener of its own.
package connlimit

import (
	"errors"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// Accept backoff bounds. The cap puts service back within a quarter
// second of the pressure ending.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = 250 * time.Millisecond
)

// Events are an Acceptor's callbacks, for counting and logging. A nil
// field is not called.
type Events struct {
	// AcceptError is called with each failed accept, before it is retried.
	AcceptError func(err error)
	// Shed is called with each waiting connection accepted at the
	// descriptor limit, before it is closed with a reset.
	Shed func(c net.Conn)
}

// Acceptor accepts TCP connections and never gives up while open,
// backing off after errors and shedding a waiting connection at the
// descriptor limit.
type Acceptor struct {
	ln   net.Listener
	raw  *net.TCPListener // under ln (a TLS listener wraps it); nil: no shedding
	ev   Events
	done chan struct{}
	once sync.Once

	spareMu sync.Mutex
	spare   *os.File // freed at the descriptor limit to shed one connection; nil: none
}

// NewAcceptor accepts from ln, which is raw or a listener wrapping raw
// (TLS); raw nil (a listener of connections that are not TCP, in tests)
// turns shedding off.
func NewAcceptor(ln net.Listener, raw *net.TCPListener, ev Events) *Acceptor {
	a := &Acceptor{ln: ln, raw: raw, ev: ev, done: make(chan struct{})}
	a.spare, _ = os.Open(os.DevNull)
	return a
}

// Accept returns the next connection. It retries every error but a closed
// listener, with backoff from 5 ms up to 250 ms, and returns
// net.ErrClosed only after Close. It is not called concurrently.
func (a *Acceptor) Accept() (net.Conn, error) {
	var backoff time.Duration
	for {
		c, err := a.ln.Accept()
		if err == nil {
			return c, nil
		}
		if a.Closed() || errors.Is(err, net.ErrClosed) {
			return nil, net.ErrClosed
		}
		if a.ev.AcceptError != nil {
			a.ev.AcceptError(err)
		}
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
func (a *Acceptor) shed() {
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
			if a.ev.Shed != nil {
				a.ev.Shed(c)
			}
			Abort(c)
		}
		_ = tl.SetDeadline(time.Time{})
	}
	a.spare, _ = os.Open(os.DevNull)
}

// Closed reports whether Close was called.
func (a *Acceptor) Closed() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

// Done is closed by Close.
func (a *Acceptor) Done() <-chan struct{} { return a.done }

// Addr is the listener's address.
func (a *Acceptor) Addr() net.Addr { return a.ln.Addr() }

// Close stops Accept and closes the listener; accepted connections stay.
func (a *Acceptor) Close() error {
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

// Abort closes a refused connection with a reset (SO_LINGER 0), so a
// flood of refusals leaves no TIME_WAIT sockets behind on the server. It
// looks through wrappers with a NetConn method (TLS, a connection whose
// first bytes were read) for the TCP connection.
func Abort(c net.Conn) {
	closer := c
	for {
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
