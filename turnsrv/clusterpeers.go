package turnsrv

import (
	"net/netip"
	"sync/atomic"
)

// RelayRange is another TURN server's relayed address and relay ports
// (inclusive): a node of the same cluster, whose clients' relayed
// transport addresses this server's clients must reach.
type RelayRange struct {
	Addr     netip.Addr
	Min, Max uint16
}

// RelayPeers is the set of other servers' relay ranges the PeerFilter
// allows: a peer at such an address is allowed on its relay ports only,
// even where deny_peers (or rule 2, for an address this host shares)
// would refuse it. Set may be called at any time; filters built with it
// see the change at once. The zero value allows nothing. Safe for
// concurrent use.
type RelayPeers struct {
	p atomic.Pointer[[]RelayRange]
}

// Set replaces the ranges (addresses are unmapped; invalid ones dropped).
func (r *RelayPeers) Set(ranges []RelayRange) {
	out := make([]RelayRange, 0, len(ranges))
	for _, x := range ranges {
		if x.Addr.IsValid() && x.Min != 0 && x.Min <= x.Max {
			x.Addr = x.Addr.Unmap().WithZone("")
			out = append(out, x)
		}
	}
	r.p.Store(&out)
}

// Ranges returns the current ranges.
func (r *RelayPeers) Ranges() []RelayRange {
	if r == nil {
		return nil
	}
	if p := r.p.Load(); p != nil {
		return *p
	}
	return nil
}

// allowed reports whether ip (with port, when withPort) is another
// server's relayed address (on one of its relay ports).
func (r *RelayPeers) allowed(ip netip.Addr, port uint16, withPort bool) bool {
	for _, x := range r.Ranges() {
		if x.Addr == ip && (!withPort || port >= x.Min && port <= x.Max) {
			return true
		}
	}
	return false
}
