package turnsrv

import (
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icebox-project/icebox/internal/clientaddr"
)

// quota enforces allocation caps per user and in total; pion/turn answers
// a refusal with 486 Allocation Quota Reached (RFC 8656 §7.2). Counts
// follow pion's allocation created and deleted events.
type quota struct {
	policy *atomic.Pointer[policy]
	stats  *Stats
	owners *owners

	// keyer maps a client address to its per-address keys (the IPv4
	// address, or the IPv6 /64 and its aggregate prefix).
	keyer clientaddr.Keyer

	mu      sync.Mutex
	perUser map[string]int
	perIP   clientaddr.Counter // MaxAllocationsPerIP, both tiers
	total   int
	// reserved are the Allocates allow let through that pion/turn has not
	// yet reported created, by 5-tuple: they count against the caps like
	// allocations, so Allocates that arrive together on several
	// connections cannot all pass before any is counted. created turns a
	// reservation into an allocation; one whose allocation failed expires
	// after reservationTTL.
	reserved map[fiveTuple]reservation
}

// reservationTTL is how long a reservation waits for its allocation: far
// longer than pion/turn takes from the quota check to the allocation
// event (binding a relay socket), short enough that an allocation that
// failed in between holds no place for long.
const reservationTTL = 5 * time.Second

// reservationKey is the 5-tuple of a client at src with the listener left
// out: pion/turn's QuotaHandler is not told the listener. Two Allocates
// from one client address and port to two listeners share it: the second
// takes the first's place until created counts the first.
func reservationKey(src net.Addr) fiveTuple {
	_, tcp := src.(*net.TCPAddr)
	return fiveTuple{tcp: tcp, client: addrPortOfAddr(src)}
}

// reservation is one Allocate let through by allow.
type reservation struct {
	user  string
	keys  clientaddr.Keys
	until time.Time
}

func (q *quota) ipOf(a net.Addr) clientaddr.Keys { return q.keyer.KeysAddr(a) }

// userOf is the quota identity of a username: "static:" and the static
// user name, or "rest:" and the id part of a REST username. The prefixes
// keep the two apart, so no REST id can count against a static user or
// the other way round.
func (q *quota) userOf(username string) string {
	if _, ok := q.policy.Load().creds.users[username]; ok {
		return "static:" + username
	}
	if _, user, ok := parseRESTUsername(username); ok {
		return "rest:" + user
	}
	return "other:" + username
}

func (q *quota) allow(username, _ string, src net.Addr) bool {
	user := q.userOf(username)
	keys := q.ipOf(src)
	pol := q.policy.Load()
	now := time.Now()
	q.mu.Lock()
	q.expireLocked(now)
	// A retransmitted Allocate on the same 5-tuple takes its own place
	// again, not a second one.
	q.unreserveLocked(reservationKey(src))
	full := q.perIP.Full(keys, pol.maxIP)
	ok := (pol.maxTotal <= 0 || q.total < pol.maxTotal) && (pol.maxUser <= 0 || q.perUser[user] < pol.maxUser) &&
		full == clientaddr.TierNone
	if ok {
		q.reserved[reservationKey(src)] = reservation{user: user, keys: keys, until: now.Add(reservationTTL)}
		q.countLocked(user, keys, 1)
	}
	q.mu.Unlock()
	if !ok {
		q.stats.QuotaRefusals.Add(1)
		if full == clientaddr.TierAggregate {
			q.stats.QuotaRefusedIPv6Aggregate.Add(1)
		}
	}
	return ok
}

// countLocked adds d (1 or -1) to the counts of user and keys.
func (q *quota) countLocked(user string, keys clientaddr.Keys, d int) {
	if q.perUser[user] += d; q.perUser[user] <= 0 {
		delete(q.perUser, user)
	}
	if d > 0 {
		q.perIP.Add(keys)
	} else {
		q.perIP.Remove(keys)
	}
	q.total += d
}

// unreserveLocked gives up the reservation of ft, if any.
func (q *quota) unreserveLocked(ft fiveTuple) bool {
	r, ok := q.reserved[ft]
	if ok {
		delete(q.reserved, ft)
		q.countLocked(r.user, r.keys, -1)
	}
	return ok
}

// expireLocked gives up the reservations whose allocation never came.
func (q *quota) expireLocked(now time.Time) {
	for ft, r := range q.reserved {
		if now.After(r.until) {
			delete(q.reserved, ft)
			q.countLocked(r.user, r.keys, -1)
		}
	}
}

func (q *quota) created(src, local net.Addr, _, username, _ string, _ net.Addr, _ int) {
	user := q.userOf(username)
	q.owners.set(src, local, username)
	q.mu.Lock()
	// The reservation allow made becomes the allocation; without one (its
	// reservation expired) the allocation is counted now.
	if r, ok := q.reserved[reservationKey(src)]; ok {
		delete(q.reserved, reservationKey(src))
		if r.user != user {
			q.countLocked(r.user, r.keys, -1)
			q.countLocked(user, q.ipOf(src), 1)
		}
	} else {
		q.countLocked(user, q.ipOf(src), 1)
	}
	q.mu.Unlock()
	q.stats.AllocationsActive.Add(1)
	q.stats.AllocationsCreated.Add(1)
}

func (q *quota) deleted(src, local net.Addr, _, username, _ string) {
	user := q.userOf(username)
	q.owners.remove(src, local)
	q.mu.Lock()
	q.countLocked(user, q.ipOf(src), -1)
	q.mu.Unlock()
	q.stats.AllocationsActive.Add(-1)
}
