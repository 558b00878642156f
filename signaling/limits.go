package signaling

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Limits are the settings Update can change on a running Server.
type Limits struct {
	// MaxPeersPerRoom caps a room ("room-full"). Zero: 8.
	MaxPeersPerRoom int
	// MaxRooms caps the rooms open at once ("room-limit"). Zero: no cap.
	MaxRooms int
	// MaxConnectionsPerIP caps open WebSockets per client IP; past it the
	// upgrade gets 429. Zero: no cap.
	MaxConnectionsPerIP int
	// AllowedOrigins lists Origin values ("https://app.example.com")
	// allowed besides the request's own host.
	AllowedOrigins []string
}

// limits is Limits prepared for use; replaced whole by Update.
type limits struct {
	maxPeers, maxRooms, maxPerIP int
	origins                      map[string]bool
}

// DefaultResumeWindow is how long a peer whose connection dropped keeps
// its id and place in its room, waiting for a join with its resume token.
const DefaultResumeWindow = 30 * time.Second

// guessThrottle slows and then refuses wrong room passwords per client IP:
// the n-th wrong guess in a row is answered after base·2^(n-1), and after
// maxFails the address is refused for block.
type guessThrottle struct {
	mu       sync.Mutex
	fails    map[string]*guessState
	base     time.Duration
	maxFails int
	block    time.Duration
}

type guessState struct {
	n     int
	last  time.Time
	until time.Time
}

func newGuessThrottle() *guessThrottle {
	return &guessThrottle{fails: map[string]*guessState{}, base: 250 * time.Millisecond, maxFails: 5, block: 5 * time.Minute}
}

// maxTracked bounds the addresses remembered; past it the oldest record
// is forgotten wholesale (an attacker with that many addresses gains
// little from a reset).
const maxTracked = 100_000

// blocked returns how long ip must still wait, 0 when it may try.
func (g *guessThrottle) blocked(ip string) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	st := g.fails[ip]
	if st == nil {
		return 0
	}
	return time.Until(st.until)
}

// failed records a wrong guess and returns how long to delay the answer.
func (g *guessThrottle) failed(ip string) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	st := g.fails[ip]
	if st == nil || now.Sub(st.last) > g.block {
		if len(g.fails) >= maxTracked {
			g.fails = map[string]*guessState{}
		}
		st = &guessState{}
		g.fails[ip] = st
	}
	st.n++
	st.last = now
	if st.n >= g.maxFails {
		st.until = now.Add(g.block)
	}
	return g.base << min(st.n-1, 5)
}

func (g *guessThrottle) succeeded(ip string) {
	g.mu.Lock()
	delete(g.fails, ip)
	g.mu.Unlock()
}

// clientIP is the address a request comes from: the TCP peer, or, when
// that peer is a trusted proxy, the last X-Forwarded-For entry not itself
// a trusted proxy.
func clientIP(r *http.Request, trusted []netip.Prefix) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	isTrusted := func(s string) bool {
		a, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			return false
		}
		for _, p := range trusted {
			if p.Contains(a.Unmap()) {
				return true
			}
		}
		return false
	}
	if len(trusted) == 0 || !isTrusted(host) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		if _, err := netip.ParseAddr(hop); err != nil {
			return host // malformed: do not trust the header.
		}
		if !isTrusted(hop) {
			return hop
		}
	}
	return host
}

// ipCount counts open connections per client IP.
type ipCount struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *ipCount) acquire(ip string, max int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if max > 0 && c.n[ip] >= max {
		return false
	}
	c.n[ip]++
	return true
}

func (c *ipCount) release(ip string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[ip]--; c.n[ip] <= 0 {
		delete(c.n, ip)
	}
}
