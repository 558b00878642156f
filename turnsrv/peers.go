package turnsrv

import (
	"net"
	"net/netip"
	"slices"
)

// PeerFilter decides which peer transport addresses an allocation may get
// a permission or channel binding to, and send to (RFC 8656 §9: the
// server MAY refuse). It is immutable and safe for concurrent use.
//
// The decision, in order:
//
//  1. An IPv6 address that embeds an IPv4 address is judged as both: the
//     IPv4-mapped (::ffff:0:0/96, RFC 4291 §2.5.5.2) and IPv4-compatible
//     (::/96, §2.5.5.1) forms, NAT64 (64:ff9b::/96, RFC 6052, and the
//     local-use 64:ff9b:1::/48, RFC 8215, read as /96) and 6to4
//     (2002::/16, RFC 3056). Both forms must pass.
//  2. The server's own addresses (the relayed address, listener and
//     interface addresses, loopback and the unspecified "this host"
//     range) are peers only on relay ports that are not listener ports:
//     any other port of them is refused whatever AllowPeers says, so the
//     relay never reaches the TURN listeners (TURN-in-TURN) or another
//     local service.
//  3. The relayed address on a relay port is allowed, so two clients of
//     one server relay to each other even when it is a private address.
//  4. Otherwise AllowPeers wins over DenyPeers; an address in neither is
//     allowed.
//
// The other nodes of a cluster make no exception: their claimed relay
// ranges (RelayPeers) are validated against these rules and never widen
// them (an unchecked exception before rule 2 let a forged heartbeat open
// loopback on every port but the TURN listeners').
type PeerFilter struct {
	deny  []netip.Prefix
	allow []netip.Prefix
	own   OwnAddresses
}

// OwnAddresses are the server's own addresses, as PeerFilter rule 2
// needs them.
type OwnAddresses struct {
	// Relayed is the relayed address (public_ip): allowed on relay ports.
	Relayed netip.Addr
	// Others are further addresses of this host (listener and interface
	// addresses); loopback and 0.0.0.0/8 and :: are always included.
	Others []netip.Addr
	// RelayMin and RelayMax bound the relay ports, inclusive. Zero
	// values: no port of an own address is a peer.
	RelayMin, RelayMax uint16
	// ListenerPorts are the ports of the server's own listeners (UDP, TCP
	// and TLS), refused on own addresses even inside the relay range.
	ListenerPorts []uint16
	// SFUPort is the embedded SFU's UDP media port: the one exception to
	// rule 2 outside the relay range, so a client that must use TURN
	// relays to the SFU. Only on SFUAddrs (none: every own address, for
	// an SFU bound to the unspecified address) and the relayed address,
	// and never when it is a listener port. Zero: no exception.
	SFUPort  uint16
	SFUAddrs []netip.Addr
}

// hostRanges are addresses that always mean this host: loopback, and the
// unspecified "this network" range, which Linux delivers locally.
var hostRanges = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("::/128"),
}

// NewPeerFilter builds a filter from deny and allow lists and the
// server's own addresses.
func NewPeerFilter(deny, allow []netip.Prefix, own OwnAddresses) *PeerFilter {
	f := &PeerFilter{deny: deny, allow: allow, own: own}
	f.own.Relayed = own.Relayed.Unmap()
	f.own.SFUAddrs = nil
	for _, a := range own.SFUAddrs {
		f.own.SFUAddrs = append(f.own.SFUAddrs, a.Unmap().WithZone(""))
	}
	f.own.Others = nil
	for _, a := range own.Others {
		if a.IsValid() {
			f.own.Others = append(f.own.Others, a.Unmap().WithZone(""))
		}
	}
	return f
}

// PeerVerdict is why a peer was refused; "" means allowed. The strings
// are reason labels in logs and metrics.
type PeerVerdict string

const (
	PeerAllowed PeerVerdict = ""
	// PeerDenied: the address is in DenyPeers and not in AllowPeers.
	PeerDenied PeerVerdict = "denied"
	// PeerOwnPort: one of the server's own addresses on a port that is not
	// a relay port.
	PeerOwnPort PeerVerdict = "own-address"
)

// Check judges the peer transport address ap (rules in the type's doc).
func (f *PeerFilter) Check(ap netip.AddrPort) PeerVerdict {
	return f.judge(ap.Addr(), ap.Port(), true)
}

// judge applies the rules to ip; with withPort, port is judged too
// (rule 2), otherwise only whether the address can be a peer on some
// relay port.
func (f *PeerFilter) judge(ip netip.Addr, port uint16, withPort bool) PeerVerdict {
	ip = ip.Unmap().WithZone("")
	if v4, ok := EmbeddedIPv4(ip); ok {
		if v := f.check(v4, port, withPort); v != PeerAllowed {
			return v
		}
	}
	return f.check(ip, port, withPort)
}

func (f *PeerFilter) check(ip netip.Addr, port uint16, withPort bool) PeerVerdict {
	if f.isOwn(ip) {
		if f.isSFUMedia(ip, port, withPort) {
			return PeerAllowed
		}
		if f.own.RelayMin == 0 {
			return PeerOwnPort
		}
		if withPort && (port < f.own.RelayMin || port > f.own.RelayMax || slices.Contains(f.own.ListenerPorts, port)) {
			return PeerOwnPort
		}
		if ip == f.own.Relayed {
			return PeerAllowed
		}
	}
	for _, p := range f.allow {
		if p.Contains(ip) {
			return PeerAllowed
		}
	}
	for _, p := range f.deny {
		if p.Contains(ip) {
			return PeerDenied
		}
	}
	return PeerAllowed
}

// isSFUMedia reports whether the own address ip is the SFU's media
// socket on port (on any port, without withPort: a permission).
func (f *PeerFilter) isSFUMedia(ip netip.Addr, port uint16, withPort bool) bool {
	o := &f.own
	if o.SFUPort == 0 || slices.Contains(o.ListenerPorts, o.SFUPort) || (withPort && port != o.SFUPort) {
		return false
	}
	return len(o.SFUAddrs) == 0 || ip == o.Relayed || slices.Contains(o.SFUAddrs, ip)
}

func (f *PeerFilter) isOwn(ip netip.Addr) bool {
	if ip == f.own.Relayed {
		return true
	}
	for _, p := range hostRanges {
		if p.Contains(ip) {
			return true
		}
	}
	for _, a := range f.own.Others {
		if a == ip {
			return true
		}
	}
	return false
}

// Allowed reports whether ip may be a peer on some relay port: the
// verdict for a permission, which covers an address whatever the port
// (RFC 8656 §9); the port of each request and of each Send indication is
// judged by Check.
func (f *PeerFilter) Allowed(ip netip.Addr) bool {
	return f.judge(ip, 0, false) == PeerAllowed
}

// permissionHandler adapts the filter to pion/turn's PermissionHandler, a
// second line behind the guard, which has already checked each peer's
// port.
func (f *PeerFilter) permissionHandler(_ net.Addr, peer net.IP) bool {
	ip, ok := netip.AddrFromSlice(peer)
	return ok && f.Allowed(ip)
}

// Prefixes of IPv6 forms that carry an IPv4 address.
var (
	nat64WellKnown = netip.MustParsePrefix("64:ff9b::/96")   // RFC 6052 §2.1
	nat64Local     = netip.MustParsePrefix("64:ff9b:1::/48") // RFC 8215
	sixToFour      = netip.MustParsePrefix("2002::/16")      // RFC 3056 §2
	v4Compatible   = netip.MustParsePrefix("::/96")          // RFC 4291 §2.5.5.1
)

// EmbeddedIPv4 returns the IPv4 address an IPv6 address carries: the
// IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d) forms,
// NAT64 (64:ff9b::/96, and 64:ff9b:1::/48 with the address in the last 32
// bits, the /96 layout of RFC 6052 §2.2) and 6to4 (2002:AABB:CCDD::/48).
// :: and ::1 are themselves, not IPv4-compatible forms. An IPv4 address
// gives false.
func EmbeddedIPv4(ip netip.Addr) (netip.Addr, bool) {
	if ip.Is4() {
		return netip.Addr{}, false
	}
	if ip.Is4In6() {
		return ip.Unmap(), true
	}
	b := ip.As16()
	last := netip.AddrFrom4([4]byte(b[12:16]))
	switch {
	case v4Compatible.Contains(ip):
		if ip == netip.IPv6Unspecified() || ip == netip.IPv6Loopback() {
			return netip.Addr{}, false
		}
		return last, true
	case nat64WellKnown.Contains(ip), nat64Local.Contains(ip):
		return last, true
	case sixToFour.Contains(ip):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}
