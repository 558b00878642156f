package turnsrv

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v3"

	"github.com/icebox-project/icebox/internal/testenv"
	"github.com/icebox-project/icebox/internal/turntest"
)

// TestSFUPortIsTheOneException walks through the own-address rule's one
// exception: a client relays to the SFU's media port on the server's own
// address, but not to the port next to it, not to a listener, and not
// to the SFU port when that is a listener's port.
func TestSFUPortIsTheOneException(t *testing.T) {
	sfuConn, err := turntest.ListenUDPIn(30000, 39999)
	if err != nil {
		t.Fatal(err)
	}
	defer sfuConn.Close()
	sfuAP := sfuConn.LocalAddr().(*net.UDPAddr).AddrPort()
	neighbour, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(sfuAP.Addr(), sfuAP.Port()+1)))
	if err != nil {
		t.Skipf("port next to the SFU's is taken: %v", err)
	}
	defer neighbour.Close()
	s := startServer(t, func(c *Config) {
		c.DenyPeers = recommended()
		c.AllowPeers = nil
		c.SFUPort = sfuAP.Port()
	})
	listener := netip.MustParseAddrPort(s.udp)
	user, pass, _ := s.cfg.Credentials.Mint("client", time.Now())
	sess := newRawSession(t, s.udp, user, pass)
	if code := sess.request(stun.MethodAllocate, udpTransport); code != 0 {
		t.Fatalf("Allocate: %d", code)
	}
	if got := sess.request(stun.MethodChannelBind, peerAddr(sfuAP), channelNumber(0x4001)); got != 0 {
		t.Fatalf("ChannelBind to the SFU port %s: got %d, want 0", sfuAP, got)
	}
	neighbourAP := neighbour.LocalAddr().(*net.UDPAddr).AddrPort()
	for _, target := range []netip.AddrPort{neighbourAP, listener} {
		if got := sess.request(stun.MethodChannelBind, peerAddr(target), channelNumber(0x4002)); got != 403 {
			t.Errorf("ChannelBind to own address %s: got %d, want 403", target, got)
		}
	}
	// A permission for the address (granted for the SFU port) does not
	// carry a Send to its other ports.
	for _, ind := range [][]byte{sendIndication(neighbourAP, []byte("probe")), sendIndication(listener, []byte("probe"))} {
		if _, err := sess.c.Write(ind); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, closeGuard, "both sends refused", func() bool { return s.Stats().DroppedPeerDenied.Load() == 2 })
	if _, err := sess.c.Write(sendIndication(sfuAP, []byte("media"))); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	_ = sfuConn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := sfuConn.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "media" {
		t.Fatalf("the SFU got %q from %v (%v), want \"media\" from the relay", buf[:n], from, err)
	}
	_ = neighbour.SetReadDeadline(time.Now())
	if n, _, err := neighbour.ReadFrom(buf); err == nil {
		t.Errorf("the port next to the SFU's received %q", buf[:n])
	}

	// The exception never opens a listener's port.
	f := NewPeerFilter(nil, nil, OwnAddresses{Relayed: netip.MustParseAddr("192.0.2.1"), RelayMin: 49152, RelayMax: 65535,
		ListenerPorts: []uint16{3478}, SFUPort: 3478})
	if v := f.Check(netip.MustParseAddrPort("192.0.2.1:3478")); v != PeerOwnPort {
		t.Errorf("SFU port on a listener port: %q, want own-address", v)
	}
	// Bound to one address, the SFU opens its port there and on the
	// relayed address only.
	f = NewPeerFilter(nil, nil, OwnAddresses{Relayed: netip.MustParseAddr("192.0.2.1"), Others: []netip.Addr{netip.MustParseAddr("10.0.0.5")},
		RelayMin: 49152, RelayMax: 65535, SFUPort: 3480, SFUAddrs: []netip.Addr{netip.MustParseAddr("10.0.0.5")}})
	for ap, want := range map[string]PeerVerdict{"192.0.2.1:3480": PeerAllowed, "10.0.0.5:3480": PeerAllowed,
		"127.0.0.1:3480": PeerOwnPort, "10.0.0.5:3481": PeerOwnPort} {
		if v := f.Check(netip.MustParseAddrPort(ap)); v != want {
			t.Errorf("%s: %q, want %q", ap, v, want)
		}
	}
}
