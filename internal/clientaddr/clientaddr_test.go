package clientaddr

import (
	"net"
	"net/netip"
	"testing"
)

func TestKey(t *testing.T) {
	tests := []struct {
		prefix int
		in     string
		want   string
	}{
		{0, "192.0.2.1", "192.0.2.1/32"},
		{0, "::ffff:192.0.2.1", "192.0.2.1/32"},
		{0, "2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"},
		{0, "2001:db8:1:2:bbbb::2", "2001:db8:1:2::/64"},
		{0, "fe80::1%eth0", "fe80::/64"},
		{48, "2001:db8:1:2::1", "2001:db8:1::/48"},
		{128, "2001:db8::1", "2001:db8::1/128"},
		{200, "2001:db8:1:2::1", "2001:db8:1:2::/64"},
	}
	for _, tt := range tests {
		got := Keyer{IPv6Prefix: tt.prefix}.Key(netip.MustParseAddr(tt.in))
		if got.String() != tt.want {
			t.Errorf("prefix %d, %s: got %s, want %s", tt.prefix, tt.in, got, tt.want)
		}
	}
}

// TestOneSubscriberOneKey: every address of one IPv6 /64 is one client,
// and a neighbouring /64 is another.
func TestOneSubscriberOneKey(t *testing.T) {
	var k Keyer
	a := k.KeyString("[2001:db8:0:1::1]:443")
	for _, s := range []string{"2001:db8:0:1:ffff:ffff:ffff:ffff", "[2001:db8:0:1:1234::]:1"} {
		if got := k.KeyString(s); got != a {
			t.Errorf("%s: got key %s, want %s", s, got, a)
		}
	}
	if got := k.KeyString("2001:db8:0:2::1"); got == a {
		t.Errorf("another /64 shares the key %s", got)
	}
	if got := k.KeyString("not an address"); got != "not an address" {
		t.Errorf("unparsable text: got %q", got)
	}
	if got := k.KeyAddr(&net.UDPAddr{IP: net.ParseIP("::ffff:10.1.2.3"), Port: 9}); got.String() != "10.1.2.3/32" {
		t.Errorf("KeyAddr of a v4-mapped UDP address: got %s", got)
	}
}
