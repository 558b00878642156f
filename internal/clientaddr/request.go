package clientaddr

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// FromRequest is the address an HTTP request comes from: the TCP peer,
// or, when that peer is in trusted (reverse proxies), the last
// X-Forwarded-For entry that is not itself a trusted proxy. A malformed
// header is not trusted: the TCP peer is the client then.
func FromRequest(r *http.Request, trusted []netip.Prefix) string {
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

// RequestKey is the limit key of the client r comes from (FromRequest,
// then KeyString).
func (k Keyer) RequestKey(r *http.Request, trusted []netip.Prefix) string {
	return k.KeyString(FromRequest(r, trusted))
}
