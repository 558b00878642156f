package clientaddr

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
)

func TestKeys(t *testing.T) {
	tests := []struct {
		keyer     Keyer
		in        string
		addr, agg string
		factor    int
	}{
		{Keyer{}, "192.0.2.1", "192.0.2.1/32", "", 8},
		{Keyer{}, "::ffff:192.0.2.1", "192.0.2.1/32", "", 8},
		{Keyer{}, "[2001:db8:1:2::1]:443", "2001:db8:1:2::/64", "2001:db8:1::/48", 8},
		{Keyer{}, "2001:db8:1:ff00::9", "2001:db8:1:ff00::/64", "2001:db8:1::/48", 8},
		{Keyer{IPv6AggregatePrefix: 56}, "2001:db8:1:ff42::9", "2001:db8:1:ff42::/64", "2001:db8:1:ff00::/56", 8},
		{Keyer{IPv6AggregateFactor: 4}, "2001:db8:1:2::1", "2001:db8:1:2::/64", "2001:db8:1::/48", 4},
		{Keyer{IPv6Prefix: 48}, "2001:db8:1:2::1", "2001:db8:1::/48", "", 8}, // aggregate not shorter: one tier
		{Keyer{IPv6Prefix: 56, IPv6AggregatePrefix: 64}, "2001:db8:1:2::1", "2001:db8:1::/56", "", 8},
		{Keyer{IPv6Prefix: 128, IPv6AggregatePrefix: 64}, "2001:db8::1", "2001:db8::1/128", "2001:db8::/64", 8},
		{Keyer{IPv6AggregatePrefix: 300, IPv6AggregateFactor: 5000}, "2001:db8:1:2::1", "2001:db8:1:2::/64", "2001:db8:1::/48", MaxIPv6AggregateFactor},
		{Keyer{}, "fe80::1%eth0", "fe80::/64", "fe80::/48", 8},
		{Keyer{}, "not an address", "not an address", "", 8},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%+v/%s", tt.keyer, tt.in), func(t *testing.T) {
			got := tt.keyer.KeysString(tt.in)
			if got.Addr != tt.addr || got.Agg != tt.agg || got.Factor != tt.factor {
				t.Errorf("got %+v, want {Addr:%s Agg:%s Factor:%d}", got, tt.addr, tt.agg, tt.factor)
			}
			if a, err := netip.ParseAddr(tt.in); err == nil {
				if k := tt.keyer.Keys(a); k != got {
					t.Errorf("Keys: got %+v, want %+v", k, got)
				}
			}
		})
	}
	if got := (Keyer{}).KeysAddr(&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2::1"), Port: 9}); got.Agg != "2001:db8:1::/48" {
		t.Errorf("KeysAddr: got %+v", got)
	}
}

// TestCounterTiers: 256 /64s of one /56 each stay under the per-address
// cap, and together fill the aggregate at cap × factor; a neighbouring
// /48 and IPv4 clients are untouched, and Remove undoes Add.
func TestCounterTiers(t *testing.T) {
	const limit = 2
	k := Keyer{IPv6AggregateFactor: 4}
	var c Counter
	admitted, byAggregate := 0, 0
	for i := range 256 {
		ks := k.KeysString(fmt.Sprintf("2001:db8:1:%x::1", i))
		for range limit {
			switch c.Acquire(ks, limit) {
			case TierNone:
				admitted++
			case TierAggregate:
				byAggregate++
			case TierAddress:
				t.Fatalf("%s refused by the address tier at its first %d", ks.Addr, limit)
			}
		}
	}
	if want := limit * 4; admitted != want {
		t.Errorf("admitted %d from one /56, want %d (cap × factor)", admitted, want)
	}
	if byAggregate != 256*limit-admitted {
		t.Errorf("refused by the aggregate: got %d, want %d", byAggregate, 256*limit-admitted)
	}
	other := k.KeysString("2001:db8:2::1")
	if got := c.Acquire(other, limit); got != TierNone {
		t.Errorf("another /48: got %q", got)
	}
	if got := c.Acquire(other, limit); got != TierNone {
		t.Errorf("another /48, second: got %q", got)
	}
	if got := c.Acquire(other, limit); got != TierAddress {
		t.Errorf("another /48 over its address cap: got %q, want %q", got, TierAddress)
	}
	v4 := k.KeysString("192.0.2.1")
	for i := range limit {
		if got := c.Acquire(v4, limit); got != TierNone {
			t.Errorf("IPv4 #%d: got %q", i, got)
		}
	}
	if got := c.Acquire(v4, limit); got != TierAddress {
		t.Errorf("IPv4 over cap: got %q", got)
	}
	if got := c.Full(v4, 0); got != TierNone {
		t.Errorf("no cap: got %q", got)
	}
	// Free one place of the /56 and it is taken again, by another /64.
	c.Remove(k.KeysString("2001:db8:1:0::1"))
	if got := c.Acquire(k.KeysString("2001:db8:1:ff::1"), limit); got != TierNone {
		t.Errorf("after a Remove: got %q", got)
	}
	if got := c.Count("2001:db8:1::/48"); got != limit*4 {
		t.Errorf("aggregate count: got %d, want %d", got, limit*4)
	}
	c.Remove(k.KeysString("2001:db8:1:0::1"))
	for i := 1; i < 4; i++ {
		for range limit {
			c.Remove(k.KeysString(fmt.Sprintf("2001:db8:1:%x::1", i)))
		}
	}
	c.Remove(k.KeysString("2001:db8:1:ff::1"))
	c.Remove(other)
	c.Remove(other)
	c.Remove(v4)
	c.Remove(v4)
	if c.Len() != 0 {
		t.Errorf("after removing everything: %d keys left: %v", c.Len(), c.n)
	}
}
