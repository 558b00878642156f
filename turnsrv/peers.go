package turnsrv

import (
	"net"
	"net/netip"
)

// PeerFilter decides which peer addresses an allocation may get a
// permission or channel binding to (RFC 8656 §9: the server MAY refuse;
// icebox refuses private, loopback, link-local and reserved ranges by
// default, the coturn CVE-2020-26262 class). Allow wins over Deny. It is
// immutable and safe for concurrent use.
type PeerFilter struct {
	deny  []netip.Prefix
	allow []netip.Prefix
}

// NewPeerFilter builds a filter. always lists addresses allowed whatever
// deny says: icebox's own relayed addresses, so two clients of one icebox
// can relay to each other even when public_ip is private.
func NewPeerFilter(deny, allow []netip.Prefix, always ...netip.Addr) *PeerFilter {
	f := &PeerFilter{deny: deny, allow: append([]netip.Prefix(nil), allow...)}
	for _, a := range always {
		if a.IsValid() {
			f.allow = append(f.allow, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return f
}

// Allowed reports whether ip may be a peer. IPv4-mapped IPv6 addresses
// are judged as IPv4.
func (f *PeerFilter) Allowed(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range f.allow {
		if p.Contains(ip) {
			return true
		}
	}
	for _, p := range f.deny {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// permissionHandler adapts the filter to pion/turn's PermissionHandler, a
// second line behind the guard.
func (f *PeerFilter) permissionHandler(_ net.Addr, peer net.IP) bool {
	ip, ok := netip.AddrFromSlice(peer)
	return ok && f.Allowed(ip)
}
