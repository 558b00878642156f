package connlimit

import (
	"container/list"
	"net"
	"sync"

	"github.com/icebox-project/icebox/internal/clientaddr"
)

// Reasons a connection is refused (Set.Add) or closed (Evicted), as
// counted and logged.
const (
	RefusedPerIP = "per_ip"
	// RefusedPerIPv6Aggregate: the client's IPv6 aggregate prefix (a /48)
	// holds its cap, Keyer's factor times PerIP (clientaddr's second tier).
	RefusedPerIPv6Aggregate = "per_ipv6_aggregate"
	RefusedTotal            = "total"
	RefusedFDLimit          = "fd_limit"
	RefusedClosed           = "closed"
	Evicted                 = "evicted"
)

// Caps are connection caps: PerIP per client key and Total in all; a cap
// <= 0 is no cap. Keyer makes the client keys (the IPv4 address, or the
// IPv6 prefix) and, for IPv6, the aggregate prefix, which holds PerIP
// times its factor (clientaddr.Keys).
type Caps struct {
	PerIP, Total int
	Keyer        clientaddr.Keyer
}

// Set counts open connections per client key and in total. A Set made
// with evict true makes room at the total cap by evicting the connection
// that has been evictable longest (SetEvictable): a connection still in
// its TLS handshake, or an idle one, is cheap to hold for whoever opens
// many, and evicting the oldest first means a fresh client is evicted
// only after everyone who came before it. Connections that are not
// evictable (done with TLS, serving a request, a WebSocket) are never
// evicted: they keep their places, and the room freed by evictions goes
// to them first. It is safe for concurrent use.
type Set struct {
	evict bool

	mu     sync.Mutex
	conns  map[net.Conn]*entry
	perKey clientaddr.Counter
	lru    list.List // of net.Conn, evictable ones, longest evictable at the front
	closed bool
}

type entry struct {
	key clientaddr.Keys
	el  *list.Element // in lru; nil: not evictable
}

// NewSet returns an empty Set; see Set for evict.
func NewSet(evict bool) *Set {
	return &Set{evict: evict, conns: map[net.Conn]*entry{}}
}

// Add counts c in, evictable or not, or returns why not: RefusedPerIP,
// RefusedPerIPv6Aggregate, RefusedTotal or RefusedClosed. At the total cap an evicting Set counts
// c in in place of the connection that has been evictable longest, which
// it counts out and returns for the caller to close (Abort); it refuses c
// only when no connection is evictable. The per-address cap never evicts:
// one address makes room only by closing its own connections.
func (s *Set) Add(c net.Conn, caps *Caps, evictable bool) (evicted net.Conn, why string) {
	key := caps.Keyer.KeysAddr(c.RemoteAddr())
	s.mu.Lock()
	defer s.mu.Unlock()
	full := s.perKey.Full(key, caps.PerIP)
	switch {
	case s.closed:
		return nil, RefusedClosed
	case full == clientaddr.TierAddress:
		return nil, RefusedPerIP
	case full == clientaddr.TierAggregate:
		return nil, RefusedPerIPv6Aggregate
	case caps.Total > 0 && len(s.conns) >= caps.Total:
		front := s.lru.Front()
		if !s.evict || front == nil {
			return nil, RefusedTotal
		}
		evicted = front.Value.(net.Conn)
		s.removeLocked(evicted)
	}
	e := &entry{key: key}
	if evictable {
		e.el = s.lru.PushBack(c)
	}
	s.conns[c] = e
	s.perKey.Add(key)
	return evicted, ""
}

// SetEvictable marks c as one Add may evict (to the back of the line) or
// not; a connection not in s is left alone.
func (s *Set) SetEvictable(c net.Conn, evictable bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.conns[c]
	if !ok {
		return
	}
	if e.el != nil {
		s.lru.Remove(e.el)
		e.el = nil
	}
	if evictable {
		e.el = s.lru.PushBack(c)
	}
}

// Remove counts c out and reports whether it was counted in.
func (s *Set) Remove(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.removeLocked(c)
}

func (s *Set) removeLocked(c net.Conn) bool {
	e, ok := s.conns[c]
	if !ok {
		return false
	}
	delete(s.conns, c)
	if e.el != nil {
		s.lru.Remove(e.el)
	}
	s.perKey.Remove(e.key)
	return true
}

// Has reports whether c is counted in: false once it is removed or
// evicted.
func (s *Set) Has(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.conns[c]
	return ok
}

// Len is the number of connections counted in.
func (s *Set) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Evictable is the number of connections counted in that Add may evict.
func (s *Set) Evictable() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lru.Len()
}

// CloseAll closes every connection and refuses new ones.
func (s *Set) CloseAll() {
	s.mu.Lock()
	s.closed = true
	conns := make([]net.Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}
