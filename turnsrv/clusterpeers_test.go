package turnsrv

import (
	"net/netip"
	"testing"
)

// TestClusterRelayPeers walks through the exception the other nodes'
// relays make: allowed on their relay ports only, never on this server's
// listener ports, and gone when the node is.
func TestClusterRelayPeers(t *testing.T) {
	var rp RelayPeers
	own := OwnAddresses{Relayed: netip.MustParseAddr("127.0.0.1"), RelayMin: 20000, RelayMax: 20999,
		ListenerPorts: []uint16{3478, 21500}, Cluster: &rp}
	f := NewPeerFilter(recommended(), nil, own)
	other := netip.MustParseAddr("10.0.0.2")     // a private address: denied by the recommended list
	sameHost := netip.MustParseAddr("127.0.0.1") // a node on this host (tests, one VM)
	if f.Allowed(other) || f.Check(netip.AddrPortFrom(sameHost, 21000)) == PeerAllowed {
		t.Fatal("another node's relay is allowed before it is known")
	}
	rp.Set([]RelayRange{{Addr: other, Min: 30000, Max: 30999}, {Addr: sameHost, Min: 21000, Max: 21999}})
	tests := []struct {
		name string
		peer netip.AddrPort
		want PeerVerdict
	}{
		{"other node, relay port", netip.AddrPortFrom(other, 30500), PeerAllowed},
		{"other node, first and last relay port", netip.AddrPortFrom(other, 30999), PeerAllowed},
		{"other node, IPv4-mapped", netip.AddrPortFrom(netip.MustParseAddr("::ffff:10.0.0.2"), 30000), PeerAllowed},
		{"other node, below its relay ports", netip.AddrPortFrom(other, 29999), PeerDenied},
		{"other node, its NATS route port", netip.AddrPortFrom(other, 6222), PeerDenied},
		{"same host, the other node's relay port", netip.AddrPortFrom(sameHost, 21000), PeerAllowed},
		{"same host, our listener inside the other's relay ports", netip.AddrPortFrom(sameHost, 21500), PeerOwnPort},
		{"same host, our TURN listener", netip.AddrPortFrom(sameHost, 3478), PeerOwnPort},
		{"same host, a port of neither", netip.AddrPortFrom(sameHost, 22000), PeerOwnPort},
		{"another private address on that port", netip.AddrPortFrom(netip.MustParseAddr("10.0.0.3"), 30500), PeerDenied},
	}
	for _, tt := range tests {
		if got := f.Check(tt.peer); got != tt.want {
			t.Errorf("%s (%s): got %q, want %q", tt.name, tt.peer, got, tt.want)
		}
	}
	if !f.Allowed(other) {
		t.Error("a permission for the other node's relayed address is refused")
	}
	rp.Set(nil) // the node is gone
	if f.Allowed(other) || f.Check(netip.AddrPortFrom(other, 30500)) != PeerDenied {
		t.Error("a gone node's relay is still allowed")
	}
}
