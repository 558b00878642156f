package turnsrv

import (
	"net"
	"sync"
	"sync/atomic"
)

// quota enforces allocation caps per user and in total; pion/turn answers
// a refusal with 486 Allocation Quota Reached (RFC 8656 §7.2). Counts
// follow pion's allocation created and deleted events.
type quota struct {
	policy *atomic.Pointer[policy]
	stats  *Stats
	owners *owners

	mu      sync.Mutex
	perUser map[string]int
	perIP   map[string]int
	total   int
}

func ipOf(a net.Addr) string {
	if h, _, err := net.SplitHostPort(a.String()); err == nil {
		return h
	}
	return a.String()
}

// userOf is the quota identity of a username: the static user name, or
// the id part of a REST username.
func (q *quota) userOf(username string) string {
	if _, ok := q.policy.Load().creds.users[username]; ok {
		return username
	}
	if _, user, ok := parseRESTUsername(username); ok {
		return user
	}
	return username
}

func (q *quota) allow(username, _ string, src net.Addr) bool {
	user := q.userOf(username)
	pol := q.policy.Load()
	q.mu.Lock()
	ok := (pol.maxTotal <= 0 || q.total < pol.maxTotal) && (pol.maxUser <= 0 || q.perUser[user] < pol.maxUser) &&
		(pol.maxIP <= 0 || q.perIP[ipOf(src)] < pol.maxIP)
	q.mu.Unlock()
	if !ok {
		q.stats.QuotaRefusals.Add(1)
	}
	return ok
}

func (q *quota) created(src, local net.Addr, _, username, _ string, _ net.Addr, _ int) {
	user := q.userOf(username)
	q.owners.set(src, local, username)
	q.mu.Lock()
	q.perUser[user]++
	q.perIP[ipOf(src)]++
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
	if ip := ipOf(src); q.perIP[ip] <= 1 {
		delete(q.perIP, ip)
	} else {
		q.perIP[ip]--
	}
	q.total--
	q.mu.Unlock()
	q.stats.AllocationsActive.Add(-1)
}
