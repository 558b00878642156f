package signaling

import (
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/icebox-project/icebox/internal/clientaddr"
)

// Limits are the settings Update can change on a running Server.
type Limits struct {
	// MaxPeersPerRoom caps a room ("room-full"). Zero: 8.
	MaxPeersPerRoom int
	// MaxRooms caps the rooms open at once ("room-limit"). Zero: no cap.
	MaxRooms int
	// MaxConnectionsPerIP caps open WebSockets per client address (an
	// IPv4 address or an IPv6 prefix of IPv6ClientPrefix bits), and an
	// IPv6 client's aggregate prefix (IPv6AggregatePrefix) at
	// IPv6AggregateFactor times as many; past either the upgrade gets 429
	// (Stats.Refused: RefusedPerIP, RefusedPerIPv6Aggregate). A suspended peer (its connection dropped,
	// within the resume window) keeps its connection's place until it
	// resumes or its window ends, so dropping connections does not let
	// an address hold more peers, and what is held for them. Zero: no
	// cap.
	MaxConnectionsPerIP int
	// IPv6ClientPrefix is the prefix length IPv6 clients are counted by,
	// in the connection cap and the password throttle. Zero:
	// clientaddr.DefaultIPv6Prefix (64).
	IPv6ClientPrefix int
	// IPv6AggregatePrefix is the prefix length of the second tier IPv6
	// clients are also counted by in the connection cap; not shorter than
	// IPv6ClientPrefix: one tier. Zero:
	// clientaddr.DefaultIPv6AggregatePrefix (48).
	IPv6AggregatePrefix int
	// IPv6AggregateFactor is the second tier's cap as a multiple of
	// MaxConnectionsPerIP. Zero: clientaddr.DefaultIPv6AggregateFactor
	// (8).
	IPv6AggregateFactor int
	// AllowedOrigins lists Origin values ("https://app.example.com")
	// allowed besides the request's own host.
	AllowedOrigins []string
}

// limits is Limits prepared for use; replaced whole by Update.
type limits struct {
	maxPeers, maxRooms, maxPerIP int
	origins                      map[string]bool
	keyer                        clientaddr.Keyer
}

// DefaultResumeWindow is how long a peer whose connection dropped keeps
// its id and place in its room, waiting for a join with its resume token.
const DefaultResumeWindow = 30 * time.Second

// guessThrottle slows and then refuses wrong room passwords. It counts
// per client address (a clientaddr key) and per (address, room): the n-th
// wrong guess in a row from an address is answered after base·2^(n-1)
// (at most base·32); after maxFails wrong guesses at one room the address
// is refused for that room, and after maxAddrFails at any rooms for every
// room, for block. An IPv6 client's aggregate prefix (clientaddr.Keys)
// is counted too, across rooms: past maxAddrFails × its factor wrong
// guesses from anywhere in it, every address of it is refused for every
// room, so a client holding a /56 does not get 256 addresses' guesses. A
// correct password clears only that room's count, so joining a room one
// knows the password of never buys more guesses at another. A count is
// forgotten block after its last wrong guess.
type guessThrottle struct {
	mu           sync.Mutex
	fails        map[guessKey]*guessState
	base         time.Duration
	maxFails     int
	maxAddrFails int
	block        time.Duration
	now          func() time.Time
}

// guessKey is an address's count at one room, or with room "" its count
// across rooms.
type guessKey struct{ addr, room string }

type guessState struct {
	n     int
	last  time.Time
	until time.Time
}

// newGuessThrottle returns the throttle with its defaults: answers
// delayed from 250 ms, 5 wrong guesses at a room or 20 at any rooms
// blocked for 5 minutes; now is its clock.
func newGuessThrottle(now func() time.Time) *guessThrottle {
	return &guessThrottle{fails: map[guessKey]*guessState{}, base: 250 * time.Millisecond,
		maxFails: 5, maxAddrFails: 20, block: 5 * time.Minute, now: now}
}

// maxTracked bounds the counts remembered; past it expired counts are
// dropped, and if that is not enough all are forgotten (an attacker with
// that many addresses gains little from a reset).
const maxTracked = 100_000

// blocked returns how long the client with keys ks must still wait
// before guessing at room, 0 when it may try.
func (g *guessThrottle) blocked(ks clientaddr.Keys, room string) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	var wait time.Duration
	for _, k := range []guessKey{{ks.Addr, ""}, {ks.Addr, room}, {ks.Agg, ""}} {
		if k.addr == "" {
			continue // no aggregate
		}
		if st := g.fails[k]; st != nil {
			wait = max(wait, st.until.Sub(now))
		}
	}
	return wait
}

// failed records a wrong guess by the client with keys ks at room and
// returns how long to delay the answer.
func (g *guessThrottle) failed(ks clientaddr.Keys, room string) time.Duration {
	addr := ks.Addr
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	count := func(k guessKey, limit int) int {
		st := g.fails[k]
		if st == nil || now.Sub(st.last) > g.block {
			if len(g.fails) >= maxTracked {
				g.forget(now)
			}
			st = &guessState{}
			g.fails[k] = st
		}
		st.n++
		st.last = now
		if st.n >= limit {
			st.until = now.Add(g.block)
		}
		return st.n
	}
	count(guessKey{addr, room}, g.maxFails)
	if ks.Agg != "" {
		count(guessKey{ks.Agg, ""}, ks.AggregateCap(g.maxAddrFails))
	}
	n := count(guessKey{addr, ""}, g.maxAddrFails)
	return g.base << min(n-1, 5)
}

// forget drops expired counts, or all of them when none has expired.
// Called with mu held.
func (g *guessThrottle) forget(now time.Time) {
	for k, st := range g.fails {
		if now.Sub(st.last) > g.block && !now.Before(st.until) {
			delete(g.fails, k)
		}
	}
	if len(g.fails) >= maxTracked {
		clear(g.fails)
	}
}

// succeeded clears the client's count at room; its counts across rooms
// (its aggregate's too) and at other rooms stay.
func (g *guessThrottle) succeeded(ks clientaddr.Keys, room string) {
	g.mu.Lock()
	delete(g.fails, guessKey{ks.Addr, room})
	g.mu.Unlock()
}

// clientIP is the address a request comes from (clientaddr.FromRequest).
func clientIP(r *http.Request, trusted []netip.Prefix) string {
	return clientaddr.FromRequest(r, trusted)
}

// ipCount counts open connections per client address and IPv6
// aggregate prefix.
type ipCount struct {
	mu sync.Mutex
	n  clientaddr.Counter
}

// acquire counts a connection from ks in, or returns the tier that is
// full under a per-address cap of max (<= 0: no cap).
func (c *ipCount) acquire(ks clientaddr.Keys, max int) clientaddr.Tier {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n.Acquire(ks, max)
}

func (c *ipCount) release(ks clientaddr.Keys) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n.Remove(ks)
}
