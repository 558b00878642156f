package turnsrv

import (
	"net"
	"sync"
	"sync/atomic"

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
	pol := q.policy.Load()
	q.mu.Lock()
	full := q.perIP.Full(q.ipOf(src), pol.maxIP)
	ok := (pol.maxTotal <= 0 || q.total < pol.maxTotal) && (pol.maxUser <= 0 || q.perUser[user] < pol.maxUser) &&
		full == clientaddr.TierNone
	q.mu.Unlock()
	if !ok {
		q.stats.QuotaRefusals.Add(1)
		if full == clientaddr.TierAggregate {
			q.stats.QuotaRefusedIPv6Aggregate.Add(1)
		}
	}
	return ok
}

func (q *quota) created(src, local net.Addr, _, username, _ string, _ net.Addr, _ int) {
	user := q.userOf(username)
	q.owners.set(src, local, username)
	q.mu.Lock()
	q.perUser[user]++
	q.perIP.Add(q.ipOf(src))
	q.total++
	q.mu.Unlock()
	q.stats.AllocationsActive.Add(1)
	q.stats.AllocationsCreated.Add(1)
}

func (q *quota) deleted(src, local net.Addr, _, username, _ string) {
	user := q.userOf(username)
	q.owners.remove(src, local)
	q.mu.Lock()
	if q.perUser[user]--; q.perUser[user] <= 0 {
		delete(q.perUser, user)
	}
	q.perIP.Remove(q.ipOf(src))
	q.total--
	q.mu.Unlock()
	q.stats.AllocationsActive.Add(-1)
}
