// Package mintlimit limits how many TURN credentials one client may be
// handed: a token bucket (golang.org/x/time/rate) per client key, shared
// by every place that mints (the call page, /ws welcomes and ice-servers
// refreshes, the API), so a client cannot take from one source what
// another refuses. Keys come from internal/clientaddr (an IPv4 address or
// an IPv6 /64), so one subscriber is one client. An IPv6 key also takes
// from the bucket of its aggregate prefix (a /48 by default), which has
// the rate and burst times the aggregate factor (8 by default), so a
// client holding a /56 does not get 256 buckets' worth (SetKeyer).
//
// The map of buckets is bounded: a bucket idle long enough to have
// refilled is forgotten (it is then no different from a new one), and
// past MaxKeys random buckets are dropped.
package mintlimit

import (
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/icebox-project/icebox/internal/clientaddr"
)

// Sources of minted credentials, the label refusals are counted under.
const (
	SourcePage = "page" // GET /r/<room>
	SourceWS   = "ws"   // welcome and ice-servers on /ws
	SourceAPI  = "api"  // GET /api/v1/ice-servers
	// SourceSFUCheck is no credential but costs as much: a probe of the
	// SFU's media sockets from /check (POST /check/sfu).
	SourceSFUCheck = "sfu-check"
)

// Sources lists every source, in a fixed order (for metrics).
var Sources = []string{SourcePage, SourceWS, SourceAPI, SourceSFUCheck}

// DefaultMaxKeys bounds the buckets kept at once.
const DefaultMaxKeys = 100_000

// Limiter is a token bucket per client key. A nil *Limiter allows
// everything. It is safe for concurrent use.
type Limiter struct {
	// MaxKeys bounds the buckets kept; set before first use. Zero:
	// DefaultMaxKeys.
	MaxKeys int
	// Now is the clock; set before first use. Nil: time.Now.
	Now func() time.Time

	mu        sync.Mutex
	limit     rate.Limit // tokens per second; 0 with off
	burst     int
	off       bool
	keyer     clientaddr.Keyer // the aggregate prefix and factor
	buckets   map[string]*bucket
	lastSweep time.Time
	refused   map[string]int64
	// refusedAgg counts the refusals by the IPv6 aggregate's bucket.
	refusedAgg map[string]int64
}

type bucket struct {
	lim  *rate.Limiter
	last time.Time // last Take
	agg  bool      // an IPv6 aggregate's: rate and burst × the factor
}

// aggPrefix marks the map keys of aggregate buckets, so that none is
// ever taken for a client's own bucket whatever the prefixes.
const aggPrefix = "aggregate "

// factor is what a bucket's rate and burst are multiplied by: 1, or the
// aggregate factor. Called with mu held.
func (l *Limiter) factor(agg bool) int {
	if !agg {
		return 1
	}
	return l.keyer.KeysOf("").Factor
}

// tune sets b's rate and burst from l's. Called with mu held.
func (l *Limiter) tune(b *bucket) {
	f := l.factor(b.agg)
	b.lim.SetLimit(l.limit * rate.Limit(f))
	b.lim.SetBurst(l.burst * f)
}

// New returns a Limiter allowing perMinute credentials a minute per key
// with bursts of burst (at least 1). perMinute <= 0: no limit.
func New(perMinute float64, burst int) *Limiter {
	l := &Limiter{buckets: map[string]*bucket{}, refused: map[string]int64{}, refusedAgg: map[string]int64{}}
	l.Set(perMinute, burst)
	return l
}

// Set changes the rate (per minute; <= 0: no limit) and burst (at least
// 1) of every bucket, existing ones included, as a reload does.
func (l *Limiter) Set(perMinute float64, burst int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.off = perMinute <= 0
	l.limit = rate.Limit(perMinute / 60)
	l.burst = max(burst, 1)
	if l.off {
		clear(l.buckets)
		return
	}
	for _, b := range l.buckets {
		l.tune(b)
	}
}

// SetKeyer sets how keys are grouped in the second tier: the IPv6
// aggregate prefix and factor of k (its IPv6Prefix is not used: keys come
// already made). The zero Keyer, the default, is a /48 with factor 8.
// Existing aggregate buckets take the new factor; those of another prefix
// are left to be forgotten when idle.
func (l *Limiter) SetKeyer(k clientaddr.Keyer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.keyer = k
	for _, b := range l.buckets {
		l.tune(b)
	}
}

// Grant is one credential taken from a bucket (and its aggregate's).
// Return gives it back when the credential was minted but never handed
// out (a join that failed).
type Grant struct {
	r, agg *rate.Reservation
	at     time.Time
}

// Return puts the token back, as far as later takes allow. The zero Grant
// does nothing.
func (g Grant) Return() {
	for _, r := range []*rate.Reservation{g.r, g.agg} {
		if r != nil {
			r.CancelAt(g.at)
		}
	}
}

// Take takes one token from key's bucket for source, and for an IPv6 key
// one from its aggregate's. When either bucket is empty it takes none,
// returns ok false and how long until a token is there, and counts a
// refusal for source (in RefusedIPv6Aggregate too when the aggregate's
// was the empty one).
func (l *Limiter) Take(key, source string) (g Grant, retryAfter time.Duration, ok bool) {
	if l == nil {
		return Grant{}, 0, true
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.off {
		return Grant{}, 0, true
	}
	r, d, ok := l.reserve(key, false, now)
	if !ok {
		l.refused[source]++
		return Grant{}, d, false
	}
	g = Grant{r: r, at: now}
	if agg := l.keyer.KeysOf(key).Agg; agg != "" {
		if g.agg, d, ok = l.reserve(aggPrefix+agg, true, now); !ok {
			r.CancelAt(now)
			l.refused[source]++
			l.refusedAgg[source]++
			return Grant{}, d, false
		}
	}
	return g, 0, true
}

// reserve takes a token from the bucket of key, made if missing, or
// returns how long until there is one. Called with mu held.
func (l *Limiter) reserve(key string, agg bool, now time.Time) (*rate.Reservation, time.Duration, bool) {
	b := l.buckets[key]
	if b == nil {
		l.makeRoom(now)
		f := l.factor(agg)
		b = &bucket{lim: rate.NewLimiter(l.limit*rate.Limit(f), l.burst*f), agg: agg}
		l.buckets[key] = b
	}
	b.last = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); !r.OK() || d > 0 {
		r.CancelAt(now)
		if !r.OK() || d == rate.InfDuration {
			d = time.Minute
		}
		return nil, d, false
	}
	return r, 0, true
}

// refill is how long an untouched bucket takes to fill up again; a bucket
// idle that long is forgotten. Called with mu held.
func (l *Limiter) refill() time.Duration {
	secs := float64(l.burst) / float64(l.limit)
	if math.IsInf(secs, 0) || secs > 24*3600 {
		return 24 * time.Hour
	}
	return time.Duration(secs * float64(time.Second))
}

// makeRoom forgets idle buckets once per refill period, and drops
// buckets while the map is at MaxKeys. Called with mu held.
func (l *Limiter) makeRoom(now time.Time) {
	maxKeys := l.MaxKeys
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	idle := l.refill()
	if now.Sub(l.lastSweep) >= idle || len(l.buckets) >= maxKeys {
		l.lastSweep = now
		for k, b := range l.buckets {
			if now.Sub(b.last) >= idle {
				delete(l.buckets, k)
			}
		}
	}
	// Still full: every bucket was used within one refill period, so the
	// map is being flooded with keys. Drop a tenth, in map order (random):
	// those clients start afresh, memory stays bounded.
	if len(l.buckets) >= maxKeys {
		for k := range l.buckets {
			if len(l.buckets) < maxKeys*9/10 {
				break
			}
			delete(l.buckets, k)
		}
	}
}

// Len is the number of buckets kept.
func (l *Limiter) Len() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// Refused returns the refusals so far by source, by either tier.
func (l *Limiter) Refused() map[string]int64 {
	return l.copy(func() map[string]int64 { return l.refused })
}

// RefusedIPv6Aggregate returns the refusals so far by source that were
// the IPv6 aggregate's bucket's (also in Refused).
func (l *Limiter) RefusedIPv6Aggregate() map[string]int64 {
	return l.copy(func() map[string]int64 { return l.refusedAgg })
}

func (l *Limiter) copy(m func() map[string]int64) map[string]int64 {
	out := map[string]int64{}
	if l == nil {
		return out
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for s, n := range m() {
		out[s] = n
	}
	return out
}

func (l *Limiter) now() time.Time {
	if l.Now != nil {
		return l.Now()
	}
	return time.Now()
}
