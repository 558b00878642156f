package turnsrv

import (
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/icebox-project/icebox/internal/relayrange"
)

// RelayPeers holds the other cluster nodes' relay ranges as this server
// accepts them. A claimed range is no exception to the peer filter: it is
// validated against the filter's own rules (ClusterRange) and never
// widens them, so a node's claim (forged or not) cannot open this host's
// listeners or other services, loopback, or an address of deny_peers
// that allow_peers does not name. Clients of two nodes relay to each
// other when each node's relayed address is a peer under those rules: a
// public address, one allow_peers names, or this host's relayed address
// on this node's relay ports (nodes sharing a host share turn.relay_ports).
// The accepted ranges are what Ranges reports; refused ones are returned
// by Set so that the caller can say why relaying to that node fails.
// The zero value accepts nothing until a Server uses it. Safe for
// concurrent use.
type RelayPeers struct {
	mu     sync.Mutex
	claims []relayrange.RelayRange // as last Set, validated again when the filter changes
	p      atomic.Pointer[[]relayrange.RelayRange]
	filter atomic.Pointer[PeerFilter]
}

// Set replaces the ranges with those of ranges this server accepts
// (ClusterRange: clipped to this server's relay ports); it returns the
// refused ones with the reason.
func (r *RelayPeers) Set(ranges []relayrange.RelayRange) (refused map[relayrange.RelayRange]PeerVerdict) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.claims = append([]relayrange.RelayRange(nil), ranges...)
	return r.validateLocked()
}

func (r *RelayPeers) validateLocked() (refused map[relayrange.RelayRange]PeerVerdict) {
	f := r.filter.Load()
	out := make([]relayrange.RelayRange, 0, len(r.claims))
	for _, x := range r.claims {
		v := PeerVerdict(PeerNoServer)
		if f != nil {
			x, v = f.ClusterRange(x)
		}
		if v != PeerAllowed {
			if refused == nil {
				refused = map[relayrange.RelayRange]PeerVerdict{}
			}
			refused[x] = v
			continue
		}
		out = append(out, x)
	}
	r.p.Store(&out)
	return refused
}

// Ranges returns the accepted ranges.
func (r *RelayPeers) Ranges() []relayrange.RelayRange {
	if r == nil {
		return nil
	}
	if p := r.p.Load(); p != nil {
		return *p
	}
	return nil
}

// use makes r validate against f (the Server's filter, new at start and
// at each reload) and validates the claims again.
func (r *RelayPeers) use(f *PeerFilter) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.filter.Store(f)
	r.validateLocked()
}

// PeerNoServer: a relay range claimed before the TURN server started.
const PeerNoServer PeerVerdict = "no-server"

// PeerOutsideRelayPorts: a claimed relay range with no port inside this
// server's relay ports.
const PeerOutsideRelayPorts PeerVerdict = "outside-relay-ports"

// ClusterRange validates another node's claimed relay range: its address
// must be a peer under this filter's rules (never loopback, this host's
// other addresses or an address of deny_peers unless allow_peers names
// it; rules in PeerFilter's doc; an IPv6 form carrying an IPv4 address
// is judged as both), and its ports are clipped to this
// server's relay ports (turn.relay_ports), none of which is a listener
// port of an own address (PeerFilter.Check refuses those whatever the
// range). This server's own relayed address is accepted so clipped: rule
// 3 allows it there anyway (nodes sharing a host). It returns the
// clipped range and PeerAllowed, or why not.
func (f *PeerFilter) ClusterRange(x relayrange.RelayRange) (relayrange.RelayRange, PeerVerdict) {
	x.Addr = x.Addr.Unmap().WithZone("")
	if !x.Addr.IsValid() || x.Min == 0 || x.Min > x.Max {
		return x, PeerDenied
	}
	if f.isOwn(x.Addr) && x.Addr != f.own.Relayed && !f.allowed(x.Addr) {
		return x, PeerOwnPort // loopback or this host: its rules are rule 2's alone
	}
	if v := f.judge(x.Addr, 0, false); v != PeerAllowed {
		return x, v
	}
	if f.own.RelayMin == 0 || x.Max < f.own.RelayMin || x.Min > f.own.RelayMax {
		return x, PeerOutsideRelayPorts
	}
	x.Min, x.Max = max(x.Min, f.own.RelayMin), min(x.Max, f.own.RelayMax)
	return x, PeerAllowed
}

func (f *PeerFilter) allowed(ip netip.Addr) bool {
	for _, p := range f.allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
