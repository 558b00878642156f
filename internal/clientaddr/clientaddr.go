// Package clientaddr turns a client's address into the key that
// per-address limits count under: the IPv4 address itself, or the IPv6
// prefix the address belongs to (a /64 by default), since one IPv6
// subscriber is normally given a whole /64 (RFC 6177) and could otherwise
// walk around every per-address limit by changing its interface
// identifier.
package clientaddr

import (
	"net"
	"net/netip"
)

// DefaultIPv6Prefix is the prefix length an IPv6 client is counted by
// when none is configured: a /64, the smallest block a subscriber is
// normally assigned (RFC 6177 §2).
const DefaultIPv6Prefix = 64

// Keyer maps client addresses to limit keys. The zero value counts IPv6
// clients per DefaultIPv6Prefix, and in the second tier (tier.go) per
// DefaultIPv6AggregatePrefix with DefaultIPv6AggregateFactor. It is
// immutable and safe for concurrent use.
type Keyer struct {
	// IPv6Prefix is the prefix length (1-128) IPv6 clients are grouped by.
	// Zero: DefaultIPv6Prefix.
	IPv6Prefix int
	// IPv6AggregatePrefix is the prefix length (1-128) of the second tier
	// IPv6 clients are also counted by; not shorter than IPv6Prefix: no
	// second tier. Zero: DefaultIPv6AggregatePrefix.
	IPv6AggregatePrefix int
	// IPv6AggregateFactor is the second tier's cap as a multiple of the
	// per-address cap; at most MaxIPv6AggregateFactor. Zero:
	// DefaultIPv6AggregateFactor.
	IPv6AggregateFactor int
}

// Key returns the limit key of a: the IPv4 address as a /32 (IPv4-mapped
// IPv6 addresses are unmapped first), or a's IPv6 prefix. An invalid
// address gives the zero Prefix.
func (k Keyer) Key(a netip.Addr) netip.Prefix {
	if !a.IsValid() {
		return netip.Prefix{}
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	bits := k.IPv6Prefix
	if bits <= 0 || bits > 128 {
		bits = DefaultIPv6Prefix
	}
	p, _ := a.Prefix(bits)
	return p
}

// KeyString is Key for a textual address ("192.0.2.1", "2001:db8::1",
// "[2001:db8::1]:443" or "192.0.2.1:5000"); text that is no address is its
// own key, so it is still counted, never exempt.
func (k Keyer) KeyString(s string) string {
	host := s
	if h, _, err := net.SplitHostPort(s); err == nil {
		host = h
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return s
	}
	return k.Key(a).String()
}

// KeyAddr is Key for a net.Addr (*net.UDPAddr, *net.TCPAddr, or anything
// whose String is host:port).
func (k Keyer) KeyAddr(a net.Addr) netip.Prefix {
	switch a := a.(type) {
	case *net.UDPAddr:
		return k.Key(a.AddrPort().Addr())
	case *net.TCPAddr:
		return k.Key(a.AddrPort().Addr())
	case nil:
		return netip.Prefix{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Prefix{}
	}
	return k.Key(ap.Addr())
}
