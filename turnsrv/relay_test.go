package turnsrv

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v3"

	"github.com/icebox-project/icebox/internal/turntest"
)

// readFrame reads the next datagram from the server, skipping nothing.
func readFrame(t *testing.T, c net.Conn) []byte {
	t.Helper()
	buf := make([]byte, 1600)
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no datagram from the server: %v", err)
	}
	return buf[:n]
}

// TestRelayFrames checks the peer → client encodings byte by byte: a Data
// indication (RFC 8656 §11.4) before a channel is bound, ChannelData
// (§12.6) after, and nothing for a peer without a permission, on both
// UDP data paths: the default (udprelay's loops where they run) and
// pion/turn's own (what serves UDP where udprelay is unavailable), which
// pads ChannelData to 4 bytes over UDP too (RFC 8656 §12.5 allows it).
func TestRelayFrames(t *testing.T) {
	t.Run("default", func(t *testing.T) { relayFrames(t, false) })
	t.Run("pion", func(t *testing.T) { relayFrames(t, true) })
}

func relayFrames(t *testing.T, pionUDP bool) {
	s := startServer(t, func(c *Config) { c.pionUDP = pionUDP })
	user, pass, _ := s.cfg.Credentials.Mint("frames", time.Now())
	sess := newRawSession(t, s.udp, user, pass)
	if code := sess.request(stun.MethodAllocate, udpTransport); code != 0 {
		t.Fatalf("Allocate: %d", code)
	}
	peer, err := turntest.ListenUDPIn(turntest.RelayMin, turntest.RelayMax)
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	peerAP := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	if code := sess.request(stun.MethodCreatePermission, peerAddr(peerAP)); code != 0 {
		t.Fatalf("CreatePermission: %d", code)
	}

	// Client → peer with a Send indication; learn the relayed address.
	payload := []byte("odd-sized payload!") // 18 bytes: DATA needs padding
	send := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodSend, stun.ClassIndication),
		peerAddr(peerAP), stun.RawAttribute{Type: stun.AttrData, Value: payload})
	if _, err := sess.c.Write(send.Raw); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1600)
	_ = peer.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, relayed, err := peer.ReadFromUDP(buf)
	if err != nil || !bytes.Equal(buf[:n], payload) {
		t.Fatalf("peer got %q (%v), want %q", buf[:n], err, payload)
	}

	// Peer → client before a channel: a Data indication.
	reply := []byte("reply from the peer")
	if _, err := peer.WriteToUDP(reply, relayed); err != nil {
		t.Fatal(err)
	}
	m := &stun.Message{Raw: readFrame(t, sess.c)}
	if err := m.Decode(); err != nil {
		t.Fatalf("not a STUN message: %v", err)
	}
	if m.Type != stun.NewType(stun.MethodData, stun.ClassIndication) {
		t.Fatalf("got %s, want a Data indication", m.Type)
	}
	var xpa stun.XORMappedAddress
	if err := xpa.GetFromAs(m, stun.AttrXORPeerAddress); err != nil {
		t.Fatal(err)
	}
	if got := netip.AddrPortFrom(netip.MustParseAddr(xpa.IP.String()), uint16(xpa.Port)); got != peerAP {
		t.Errorf("XOR-PEER-ADDRESS %s, want %s", got, peerAP)
	}
	data, err := m.Get(stun.AttrData)
	if err != nil || !bytes.Equal(data, reply) {
		t.Errorf("DATA %q (%v), want %q", data, err, reply)
	}

	// After ChannelBind: ChannelData both ways.
	if code := sess.request(stun.MethodChannelBind, peerAddr(peerAP), channelNumber(0x4001)); code != 0 {
		t.Fatalf("ChannelBind: %d", code)
	}
	out := make([]byte, 4+len(payload))
	binary.BigEndian.PutUint16(out[0:2], 0x4001)
	binary.BigEndian.PutUint16(out[2:4], uint16(len(payload)))
	copy(out[4:], payload)
	if _, err := sess.c.Write(out); err != nil {
		t.Fatal(err)
	}
	_ = peer.SetReadDeadline(time.Now().Add(2 * time.Second))
	if n, _, err = peer.ReadFromUDP(buf); err != nil || !bytes.Equal(buf[:n], payload) {
		t.Fatalf("peer got %q over the channel (%v)", buf[:n], err)
	}
	if _, err := peer.WriteToUDP(reply, relayed); err != nil {
		t.Fatal(err)
	}
	frame := readFrame(t, sess.c)
	if s.RelayLoops() == 0 && len(frame) == 4+(len(reply)+3)&^3 && !bytes.ContainsFunc(frame[4+len(reply):], func(r rune) bool { return r != 0 }) {
		frame = frame[:4+len(reply)] // padded with zeros
	}
	if len(frame) != 4+len(reply) || binary.BigEndian.Uint16(frame[0:2]) != 0x4001 ||
		int(binary.BigEndian.Uint16(frame[2:4])) != len(reply) || !bytes.Equal(frame[4:], reply) {
		t.Fatalf("ChannelData % x, want channel 0x4001 with %q", frame, reply)
	}

	// A peer without a permission is dropped.
	stranger, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	before := s.Stats().PacketsFromPeers.Load()
	if _, err := stranger.WriteToUDP([]byte("let me in"), relayed); err != nil {
		t.Fatal(err)
	}
	_ = sess.c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := sess.c.Read(buf); err == nil {
		t.Errorf("a peer without a permission got through: % x", buf[:n])
	}
	if s.Stats().PacketsFromPeers.Load() != before+1 {
		t.Errorf("the dropped datagram was not counted as received")
	}
}

// TestRelayIPv6Listener relays ChannelData through IPv6 listener sockets:
// an IPv6 client on [::1], and an IPv4 client on a dual-stack socket
// (udp://:port), which the fast relay must answer at its v4-mapped
// address. Relayed addresses and peers stay IPv4.
func TestRelayIPv6Listener(t *testing.T) {
	probe, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback:", err)
	}
	probe.Close()
	for _, tc := range []struct{ name, listen, network, host string }{
		{"IPv6 client", "[::1]:0", "udp6", "::1"},
		{"IPv4 client on a dual-stack socket", ":0", "udp4", "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) { relayChannelDataVia(t, tc.listen, tc.network, tc.host) })
	}
}

func relayChannelDataVia(t *testing.T, listen, network, host string) {
	s := startServer(t, func(c *Config) {
		c.Listeners = []Listener{{Network: "udp", Addr: listen}}
	})
	_, port, _ := net.SplitHostPort(s.Addrs()[0].String())
	user, pass, _ := s.cfg.Credentials.Mint("six", time.Now())
	sess := newRawSessionNet(t, network, net.JoinHostPort(host, port), user, pass)
	if code := sess.request(stun.MethodAllocate, udpTransport); code != 0 {
		t.Fatalf("Allocate over IPv6: %d", code)
	}
	echo := turntest.UDPEcho(t).(*net.UDPAddr).AddrPort()
	if code := sess.request(stun.MethodChannelBind, peerAddr(echo), channelNumber(0x4002)); code != 0 {
		t.Fatalf("ChannelBind: %d", code)
	}
	payload := []byte("over six")
	out := make([]byte, 4+len(payload))
	binary.BigEndian.PutUint16(out[0:2], 0x4002)
	binary.BigEndian.PutUint16(out[2:4], uint16(len(payload)))
	copy(out[4:], payload)
	for try := 0; try < 5; try++ {
		if _, err := sess.c.Write(out); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1600)
		_ = sess.c.SetReadDeadline(time.Now().Add(time.Second))
		n, err := sess.c.Read(buf)
		if err != nil {
			continue
		}
		if n != len(out) || !bytes.Equal(buf[:n], out) {
			t.Fatalf("got % x, want % x", buf[:n], out)
		}
		return
	}
	t.Fatal("no ChannelData back over the IPv6 listener")
}
