package clientaddr

import (
	"net"
	"net/netip"
)

// The second tier. A subscriber is normally handed a /56 or a /48, not
// just a /64 (RFC 6177 §2), so one client holding a /56 has 256 /64s, and
// each would get a full per-address limit of its own. Every per-address
// limit therefore also counts an IPv6 client under its aggregate prefix
// (a /48 by default), with a cap of DefaultIPv6AggregateFactor times the
// per-address cap: a request is refused when either tier is full. IPv4
// clients have one tier only.

// DefaultIPv6AggregatePrefix is the prefix length of the second tier when
// none is configured: a /48, what RFC 6177 §2 says a site may be given,
// and so the largest block one subscriber normally holds.
const DefaultIPv6AggregatePrefix = 48

// DefaultIPv6AggregateFactor is how many times the per-address cap the
// aggregate prefix may hold when none is configured: 8. A /48 is a site;
// many users behind it at once (a campus, an office, a small ISP that
// hands /64s out of one /48) is rarer than many users behind one NATed
// IPv4 address, which share a single per-address cap, but it exists, so
// the aggregate gets room for eight subscribers each at its full cap,
// while a client with a /56 (256 /64s) gets 8×, not 256×, the cap.
const DefaultIPv6AggregateFactor = 8

// MaxIPv6AggregateFactor bounds IPv6AggregateFactor (configuration
// validation), so that cap × factor cannot overflow.
const MaxIPv6AggregateFactor = 1024

// Tier says which tier refused a client.
type Tier string

// The tiers. TierNone: not refused.
const (
	TierNone      Tier = ""
	TierAddress   Tier = "address"   // the IPv4 address or the IPv6 /64
	TierAggregate Tier = "aggregate" // the IPv6 aggregate prefix (/48)
)

// Keys are the keys one client counts under: Addr, its per-address key
// (Key as text, or the text itself when it is no address), and for an
// IPv6 client whose aggregate prefix is shorter than its per-address
// prefix, Agg, the aggregate prefix as text ("" otherwise).
type Keys struct {
	Addr, Agg string
	// Factor is the aggregate cap as a multiple of the per-address cap
	// (at least 1).
	Factor int
}

// AggregateCap is the aggregate tier's cap for a per-address cap of
// limit: limit × Factor; limit <= 0 (no cap) gives 0.
func (ks Keys) AggregateCap(limit int) int {
	if limit <= 0 {
		return 0
	}
	return limit * max(ks.Factor, 1)
}

func (k Keyer) aggBits() int {
	if k.IPv6AggregatePrefix <= 0 || k.IPv6AggregatePrefix > 128 {
		return DefaultIPv6AggregatePrefix
	}
	return k.IPv6AggregatePrefix
}

func (k Keyer) factor() int {
	if k.IPv6AggregateFactor <= 0 {
		return DefaultIPv6AggregateFactor
	}
	return min(k.IPv6AggregateFactor, MaxIPv6AggregateFactor)
}

// KeysOf is the Keys of a per-address key as Key's text or KeyString
// returns it ("2001:db8:1:2::/64", "192.0.2.1/32", or text that is no
// address, which has no aggregate).
func (k Keyer) KeysOf(key string) Keys {
	ks := Keys{Addr: key, Factor: k.factor()}
	p, err := netip.ParsePrefix(key)
	if err != nil || !p.Addr().Is6() || p.Addr().Is4In6() {
		return ks
	}
	if bits := k.aggBits(); bits < p.Bits() {
		agg, _ := p.Addr().Prefix(bits)
		ks.Agg = agg.String()
	}
	return ks
}

// Keys is the Keys of a client address (Key, then its aggregate).
func (k Keyer) Keys(a netip.Addr) Keys { return k.KeysOf(k.Key(a).String()) }

// KeysString is the Keys of a textual address (KeyString, then its
// aggregate).
func (k Keyer) KeysString(s string) Keys { return k.KeysOf(k.KeyString(s)) }

// KeysAddr is the Keys of a net.Addr (KeyAddr, then its aggregate).
func (k Keyer) KeysAddr(a net.Addr) Keys { return k.KeysOf(k.KeyAddr(a).String()) }

// Counter counts clients under both tiers of their Keys. The zero value
// is empty and ready; it is not safe for concurrent use (its owner's lock
// guards it).
type Counter struct {
	n map[string]int
}

// Full returns the tier that is full for a client with keys ks under a
// per-address cap of limit (its aggregate cap is ks.AggregateCap(limit)),
// TierAddress first; TierNone when neither is, or limit <= 0 (no cap).
func (c *Counter) Full(ks Keys, limit int) Tier {
	switch {
	case limit <= 0:
		return TierNone
	case c.n[ks.Addr] >= limit:
		return TierAddress
	case ks.Agg != "" && c.n[ks.Agg] >= ks.AggregateCap(limit):
		return TierAggregate
	}
	return TierNone
}

// Add counts one more client under ks.
func (c *Counter) Add(ks Keys) {
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[ks.Addr]++
	if ks.Agg != "" {
		c.n[ks.Agg]++
	}
}

// Acquire is Full, then Add when neither tier is full.
func (c *Counter) Acquire(ks Keys, limit int) Tier {
	t := c.Full(ks, limit)
	if t == TierNone {
		c.Add(ks)
	}
	return t
}

// Remove counts one client under ks out, as Add counted it in; a key
// that reaches 0 is forgotten.
func (c *Counter) Remove(ks Keys) {
	c.dec(ks.Addr)
	if ks.Agg != "" {
		c.dec(ks.Agg)
	}
}

func (c *Counter) dec(key string) {
	if c.n[key] <= 1 {
		delete(c.n, key)
	} else {
		c.n[key]--
	}
}

// Count is the number counted under key (a Keys' Addr or Agg).
func (c *Counter) Count(key string) int { return c.n[key] }

// Len is the number of keys with a count, of both tiers.
func (c *Counter) Len() int { return len(c.n) }
