package turnsrv

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v3"
)

// FuzzListeners throws arbitrary bytes at a running server's UDP and TCP
// listeners; after each input the server must still answer a STUN
// Binding request.
func FuzzListeners(f *testing.F) {
	seed := stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	f.Add(seed.Raw)
	alloc := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest),
		stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}},
		stun.NewUsername("1:x"), stun.NewRealm(realm), stun.NewNonce("n"), stun.MessageIntegrity("k"))
	f.Add(alloc.Raw)
	f.Add([]byte{0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4})             // ChannelData
	f.Add([]byte{0x00, 0x01, 0xff, 0xff, 0x21, 0x12, 0xa4, 0x42}) // huge length
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))

	s := startServer(f, nil)
	probe, err := net.Dial("udp4", s.udp)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		u, err := net.Dial("udp4", s.udp)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = u.Write(data)
		u.Close()
		c, err := net.DialTimeout("tcp", s.tcp, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(200 * time.Millisecond))
		_, _ = c.Write(data)
		c.Close()
		roundTrip(t, probe, stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.Fingerprint))
	})
}

// FuzzPeerAddress decodes arbitrary XOR-PEER-ADDRESS values as the guard
// does: a value either fails to decode or names an address that
// pion/stun's encoder gives back byte for byte (an IPv4-mapped one as the
// IPv4 address it maps), and the peer filter judges
// it without panicking, never allowing a loopback or embedded-loopback
// peer on a port outside the relay range.
func FuzzPeerAddress(f *testing.F) {
	tid := [stun.TransactionIDSize]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	for _, ap := range []string{"127.0.0.1:3478", "[::7f00:1]:53", "[64:ff9b::a00:1]:5000", "[2002:7f00:1::]:161", "8.8.8.8:3478"} {
		a := netip.MustParseAddrPort(ap)
		m := stun.MustBuild(stun.NewTransactionIDSetter(tid), stun.BindingRequest, peerAddr(a))
		v, _ := m.Get(stun.AttrXORPeerAddress)
		f.Add(v)
	}
	f.Add([]byte{0, 1, 0})
	f.Add([]byte{0, 2, 0, 0, 1, 2, 3, 4})
	// Family 2 holding an IPv4-mapped address, [::ffff:57.58.59.60]:4386.
	f.Add([]byte{0x30, 0x02, 0x30, 0x30, 0x21, 0x12, 0xa4, 0x42, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0xf8, 0xf7, 0x30, 0x30, 0x30, 0x30})
	filter := NewPeerFilter(recommended(), []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")},
		OwnAddresses{Relayed: netip.MustParseAddr("198.51.100.7"), RelayMin: 40000, RelayMax: 49999})
	f.Fuzz(func(t *testing.T, v []byte) {
		ap, err := decodeXORAddress(v, tid)
		if err != nil {
			return
		}
		m := stun.MustBuild(stun.NewTransactionIDSetter(tid), stun.BindingRequest, peerAddr(ap))
		again, _ := m.Get(stun.AttrXORPeerAddress)
		if ap.Addr().Is4In6() {
			// pion/stun encodes an IPv4-mapped address as IPv4 (family 1),
			// which is where the relay sends: the two name one peer.
			back, err := decodeXORAddress(again, tid)
			if want := netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()); err != nil || back != want {
				t.Fatalf("%x decodes to %s, which encodes to %x, which decodes to %s (%v), not %s", v, ap, again, back, err, want)
			}
		} else if len(again) != len(v) || string(again[1:]) != string(v[1:]) { // byte 0 is reserved
			t.Fatalf("%x decodes to %s, which encodes to %x", v, ap, again)
		}
		verdict := filter.Check(ap)
		ip := ap.Addr().Unmap()
		if v4, ok := EmbeddedIPv4(ip); ok {
			ip = v4
		}
		if ip.IsLoopback() && (ap.Port() < 40000 || ap.Port() > 49999) && verdict == PeerAllowed {
			t.Fatalf("%s (loopback %s) allowed on a port outside the relay range", ap, ip)
		}
	})
}
