package turnsrv

import (
	"net/netip"
	"testing"

	"github.com/icebox-project/icebox/internal/relayrange"
)

// TestClusterRelayPeers walks through what another node's claimed relay
// range may open: nothing the filter's own rules refuse. A claim of this
// host's every port is clipped to the relay ports; one of loopback, of the metadata address or of a
// private address is refused (unless allow_peers names it), ports are
// clipped to this server's relay ports, and no verdict of Check changes
// whatever is claimed. (Before, the claims were an exception ahead of
// the own-address rule: 127.0.0.1:1-65535 opened every local service but
// the TURN listeners.)
func TestClusterRelayPeers(t *testing.T) {
	var rp RelayPeers
	own := OwnAddresses{Relayed: netip.MustParseAddr("127.0.0.1"), RelayMin: 20000, RelayMax: 20999,
		ListenerPorts: []uint16{3478, 20500}}
	allow := []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}
	f := NewPeerFilter(recommended(), allow, own)
	public := netip.MustParseAddr("93.184.216.34")
	rng := func(a netip.Addr, lo, hi uint16) relayrange.RelayRange {
		return relayrange.RelayRange{Addr: a, Min: lo, Max: hi}
	}
	var none relayrange.RelayRange
	claims := []struct {
		name string
		r    relayrange.RelayRange
		want PeerVerdict
		got  relayrange.RelayRange // the accepted range, when allowed
	}{
		{"this host's relayed address, every port", rng(netip.MustParseAddr("127.0.0.1"), 1, 65535), PeerAllowed, rng(netip.MustParseAddr("127.0.0.1"), 20000, 20999)},
		{"loopback, another address", rng(netip.MustParseAddr("127.0.0.2"), 20000, 20999), PeerOwnPort, none},
		{"loopback, IPv4-mapped", rng(netip.MustParseAddr("::ffff:127.0.0.3"), 1, 65535), PeerOwnPort, none},
		{"metadata", rng(netip.MustParseAddr("169.254.169.254"), 1, 65535), PeerDenied, none},
		{"private, not allowed", rng(netip.MustParseAddr("10.0.0.2"), 30000, 30999), PeerDenied, none},
		{"private, allow_peers names it", rng(netip.MustParseAddr("10.9.0.2"), 20100, 20200), PeerAllowed, rng(netip.MustParseAddr("10.9.0.2"), 20100, 20200)},
		{"public, clipped to our relay ports", rng(public, 1, 65535), PeerAllowed, rng(public, 20000, 20999)},
		{"public, outside our relay ports", rng(public, 30000, 30999), PeerOutsideRelayPorts, none},
		{"empty range", rng(public, 0, 0), PeerDenied, none},
	}
	// Verdicts before any claim, to compare with after.
	probes := []netip.AddrPort{
		netip.MustParseAddrPort("127.0.0.1:22"), netip.MustParseAddrPort("127.0.0.1:3478"),
		netip.MustParseAddrPort("127.0.0.1:20500"), netip.MustParseAddrPort("127.0.0.1:21000"),
		netip.MustParseAddrPort("127.0.0.1:20001"), netip.MustParseAddrPort("169.254.169.254:80"),
		netip.MustParseAddrPort("10.0.0.2:30500"), netip.MustParseAddrPort("[::ffff:127.0.0.1]:9464"),
	}
	before := map[netip.AddrPort]PeerVerdict{}
	for _, p := range probes {
		before[p] = f.Check(p)
	}
	var all []relayrange.RelayRange
	for _, c := range claims {
		all = append(all, c.r)
	}
	if rp.Set(all); len(rp.Ranges()) != 0 {
		t.Fatalf("ranges accepted before the server's filter is known: %v", rp.Ranges())
	}
	rp.use(f)
	for _, c := range claims {
		got, v := f.ClusterRange(c.r)
		if v != c.want {
			t.Errorf("%s (%v): got %q, want %q", c.name, c.r, v, c.want)
		}
		if v == PeerAllowed && got != c.got {
			t.Errorf("%s: accepted as %v, want %v", c.name, got, c.got)
		}
	}
	if got := rp.Ranges(); len(got) != 3 {
		t.Errorf("accepted ranges %v, want the three allowed claims", got)
	}
	refused := rp.Set(all)
	if len(refused) != len(claims)-3 {
		t.Errorf("refused %v, want %d", refused, len(claims)-3)
	}
	for _, p := range probes {
		if got := f.Check(p); got != before[p] {
			t.Errorf("%s: %q after the claims, %q before", p, got, before[p])
		}
	}
	if f.Check(netip.MustParseAddrPort("127.0.0.1:22")) != PeerOwnPort || f.Check(netip.MustParseAddrPort("127.0.0.1:21000")) != PeerOwnPort {
		t.Error("this host's ports outside the relay ports are peers")
	}
}
