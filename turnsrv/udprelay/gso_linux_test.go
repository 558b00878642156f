//go:build linux && (amd64 || arm64)

package udprelay

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/pion/stun/v3"
	"golang.org/x/sys/unix"

	"github.com/icebox-project/icebox/internal/testenv"
)

// waitLimit bounds waits for datagrams on loopback: a failure guard,
// never a measure.
const waitLimit = 10 * time.Second

// offloadModes are the two data paths every test below runs on: UDP GSO
// and GRO where the kernel has them, and the fallback with both off
// (recvmmsg and sendmmsg of single datagrams).
var offloadModes = []struct {
	name    string
	offload bool
}{{"gso-gro", true}, {"fallback", false}}

// newTestRelay starts a relay of one loop for the tests, with offload on
// (skipped where the kernel lacks it) or forced off, and a peer filter
// allow may narrow (nil: every peer).
func newTestRelay(t *testing.T, offload bool, bitrate int64, allow *atomic.Pointer[netip.Addr]) *relay {
	t.Helper()
	cfg := Config{RelayIP: netipLoopback, MinPort: 20000, MaxPort: 29999, Loops: 1, Guard: passAll{},
		NoGSO: !offload, NoGRO: !offload, Bitrate: func() int64 { return bitrate }}
	if allow != nil {
		// The filter refuses the one address allow holds, if any.
		cfg.PeerAllowed = func(ap netip.AddrPort) bool { d := allow.Load(); return d == nil || ap.Addr() != *d }
		cfg.PeerAddrAllowed = func(a netip.Addr) bool { d := allow.Load(); return d == nil || a != *d }
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	rl := r.(*relay)
	if offload {
		gso, gro := probeOffload()
		testenv.Require(t, gso && gro, "this kernel has no UDP GSO or GRO")
		if !rl.off.gso.Load() || !rl.off.gro {
			t.Fatalf("offload probed (gso %v, gro %v) but not in use", gso, gro)
		}
	} else if rl.off.gso.Load() || rl.off.gro {
		t.Fatal("NoGSO and NoGRO set, but offload is in use")
	}
	return rl
}

// testCall is one allocation made directly on a relay: client is the
// client's socket, relayed the relayed transport address on 127.0.0.1,
// listener the listener socket's address.
type testCall struct {
	client   *net.UDPConn
	relayed  *net.UDPAddr
	listener *net.UDPAddr
	ctrl     net.PacketConn
	r        *relay
}

func openCall(t *testing.T, r *relay) testCall {
	t.Helper()
	client := listenLoopback(t)
	lc := listenLoopback(t)
	local := lc.LocalAddr()
	ctrl, gen, err := r.Adopt(lc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctrl.Close() })
	sock, relayed, err := gen.AllocatePacketConn("udp4", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sock.Close() })
	r.AllocationCreated(client.LocalAddr(), local, relayed)
	return testCall{client: client, ctrl: ctrl, r: r, listener: local.(*net.UDPAddr),
		relayed: &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: relayed.(*net.UDPAddr).Port}}
}

// permit gives the call a permission for peer's address and, when
// channel is not 0, binds channel to peer.
func (c testCall) permit(peer *net.UDPConn, channel uint16) {
	pa := peer.LocalAddr().(*net.UDPAddr)
	c.r.Permission(c.relayed, pa.IP, true)
	if channel != 0 {
		c.r.Channel(c.relayed, pa, channel, true)
	}
}

// listenOn binds a UDP socket on ip (a loopback address), port 0.
func listenOn(t *testing.T, ip string) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// sendRun sends segs from c to to: as one GSO run (one datagram each,
// one system call; a receiver with GRO gets them as one coalesced read)
// when gso, else one by one. All but the last must be of one size.
func sendRun(t *testing.T, c *net.UDPConn, to *net.UDPAddr, segs [][]byte, gso bool) {
	t.Helper()
	if !gso || len(segs) == 1 {
		for _, s := range segs {
			if _, err := c.WriteToUDP(s, to); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	var oob [oobSize]byte
	n := putSegmentSize(&oob, uint16(len(segs[0])))
	if _, _, err := c.WriteMsgUDP(bytes.Join(segs, nil), oob[:n], to); err != nil {
		t.Fatal(err)
	}
}

// payloads returns n payloads of size bytes, each filled with its own
// byte (tag + i), and a last one of last bytes when last > 0.
func payloads(tag byte, n, size, last int) [][]byte {
	var out [][]byte
	for i := 0; i < n; i++ {
		out = append(out, bytes.Repeat([]byte{tag + byte(i)}, size))
	}
	if last > 0 {
		out = append(out, bytes.Repeat([]byte{tag + byte(n)}, last))
	}
	return out
}

// channelData frames each payload as ChannelData on channel.
func channelData(channel uint16, ps [][]byte) [][]byte {
	var out [][]byte
	for _, p := range ps {
		f := make([]byte, 4+len(p))
		binary.BigEndian.PutUint16(f[0:2], channel)
		binary.BigEndian.PutUint16(f[2:4], uint16(len(p)))
		copy(f[4:], p)
		out = append(out, f)
	}
	return out
}

// read reads the next datagram from c.
func read(t *testing.T, c *net.UDPConn) []byte {
	t.Helper()
	buf := make([]byte, 1<<16)
	_ = c.SetReadDeadline(time.Now().Add(waitLimit))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("nothing arrived at %s: %v", c.LocalAddr(), err)
	}
	return buf[:n]
}

// expectNothing checks that nothing is waiting at c.
func expectNothing(t *testing.T, c *net.UDPConn, why string) {
	t.Helper()
	raw, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<16)
	var n int
	var rerr error
	if err := raw.Control(func(fd uintptr) { n, _, rerr = unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT) }); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(rerr, unix.EAGAIN) {
		t.Fatalf("%s: %s got % x (%v), want nothing", why, c.LocalAddr(), buf[:max(n, 0)], rerr)
	}
}

// expectChannelData reads len(want) datagrams at the client and checks
// each is ChannelData on channel carrying want[i], byte for byte.
func expectChannelData(t *testing.T, c *net.UDPConn, channel uint16, want [][]byte) {
	t.Helper()
	for i, p := range want {
		f := read(t, c)
		if len(f) != 4+len(p) || binary.BigEndian.Uint16(f[0:2]) != channel ||
			int(binary.BigEndian.Uint16(f[2:4])) != len(p) || !bytes.Equal(f[4:], p) {
			t.Fatalf("datagram %d: %d bytes, header % x, want ChannelData %#x of %d bytes of %#x",
				i, len(f), f[:min(4, len(f))], channel, len(p), p[0])
		}
	}
}

// expectData reads len(want) datagrams at the client and checks each is
// a Data indication (RFC 8656 §11.4) from peer carrying want[i].
func expectData(t *testing.T, c *net.UDPConn, peer *net.UDPAddr, want [][]byte) {
	t.Helper()
	for i, p := range want {
		f := read(t, c)
		if len(f) != 36+(len(p)+3)&^3 {
			t.Fatalf("datagram %d: %d bytes, want a Data indication of %d", i, len(f), 36+(len(p)+3)&^3)
		}
		m := &stun.Message{Raw: f}
		if err := m.Decode(); err != nil || m.Type != stun.NewType(stun.MethodData, stun.ClassIndication) {
			t.Fatalf("datagram %d: %v (%v), want a Data indication", i, m.Type, err)
		}
		var xpa stun.XORMappedAddress
		if err := xpa.GetFromAs(m, stun.AttrXORPeerAddress); err != nil || !xpa.IP.Equal(peer.IP) || xpa.Port != peer.Port {
			t.Fatalf("datagram %d: XOR-PEER-ADDRESS %v (%v), want %v", i, xpa, err, peer)
		}
		data, err := m.Get(stun.AttrData)
		if err != nil || !bytes.Equal(data, p) {
			t.Fatalf("datagram %d: DATA of %d bytes (%v), want %d bytes of %#x", i, len(data), err, len(p), p[0])
		}
		if pad := f[36+len(p):]; bytes.ContainsFunc(pad, func(r rune) bool { return r != 0 }) {
			t.Fatalf("datagram %d: padding % x, want zeros", i, pad)
		}
	}
}

// expectPayloads reads len(want) datagrams at the peer, each want[i].
func expectPayloads(t *testing.T, c *net.UDPConn, want [][]byte) {
	t.Helper()
	for i, p := range want {
		if got := read(t, c); !bytes.Equal(got, p) {
			t.Fatalf("datagram %d at %s: %d bytes of %#x, want %d bytes of %#x", i, c.LocalAddr(), len(got), got[0], len(p), p[0])
		}
	}
}

// expectCount checks that counter reaches want and stays there: the
// loop counts a send after the kernel took it, so a peer may have the
// datagram before the count is made.
func expectCount(t *testing.T, what string, counter *atomic.Int64, want int64) {
	t.Helper()
	testenv.Eventually(t, waitLimit, what+" counted", func() bool { return counter.Load() >= want })
	if got := counter.Load(); got != want {
		t.Errorf("%s %d, want %d", what, got, want)
	}
}

// histogram reads a histogram's count and sum.
func histogram(h *Histogram) (count uint64, sum float64) {
	count, sum, _ = h.Snapshot()
	return count, sum
}

// TestPeerToClientRuns relays runs from a peer to the client, byte for
// byte, first as Data indications (odd sizes: padded), then as
// ChannelData: a run of 8 datagrams and a shorter last one, and counts
// each datagram. With offload, the peer's run reaches the relay socket
// as one coalesced GRO read, which the loop splits (8 segments and the
// shorter last), and goes to the client as one GSO run; on the fallback,
// as single datagrams.
func TestPeerToClientRuns(t *testing.T) {
	for _, mode := range offloadModes {
		t.Run(mode.name, func(t *testing.T) {
			r := newTestRelay(t, mode.offload, 0, nil)
			c := openCall(t, r)
			peer := listenLoopback(t)
			c.permit(peer, 0)
			occ := &r.stats.Occupancy

			indications := payloads(0x10, 8, 1001, 333)
			sendRun(t, peer, c.relayed, indications, mode.offload)
			expectData(t, c.client, peer.LocalAddr().(*net.UDPAddr), indications)

			c.permit(peer, 0x4000)
			data := payloads(0x40, 8, 1100, 300)
			sendRun(t, peer, c.relayed, data, mode.offload)
			expectChannelData(t, c.client, 0x4000, data)

			if got := r.stats.PacketsFromPeers.Load(); got != 18 {
				t.Errorf("PacketsFromPeers %d, want 18", got)
			}
			if got := r.stats.BytesFromPeers.Load(); got != 8*1001+333+8*1100+300 {
				t.Errorf("BytesFromPeers %d, want %d", got, 8*1001+333+8*1100+300)
			}
			runs, gsoRuns := histogram(&occ.GSORunsToClients)
			if !mode.offload {
				if gsoRuns != 0 {
					t.Errorf("%v GSO runs sent without GSO", gsoRuns)
				}
				return
			}
			// Each run was one coalesced read of 9 and one GSO run out.
			if n, sum := histogram(&occ.ReceivedFromPeers); n != 2 || sum != 18 {
				t.Errorf("receives from peers: %d calls of %v datagrams, want 2 calls of 18", n, sum)
			}
			if n, sum := histogram(&occ.SentToClients); n != 2 || sum != 18 {
				t.Errorf("sends to the client: %d calls of %v datagrams, want 2 calls of 18", n, sum)
			}
			if runs != 2 || gsoRuns != 2 {
				t.Errorf("%d sends with %v GSO runs, want 2 with 2", runs, gsoRuns)
			}
		})
	}
}

// TestClientToPeerRuns relays a client's ChannelData to two peers, byte
// for byte: frames of one size on channels A, A, A, B, B, A, then A, A
// and a shorter last one. Each peer gets its own in order; with offload
// the client's run arrives as one GRO read and leaves as one sendmmsg of
// three messages, two of them GSO runs (A×3, B×2), since a run has one
// destination; the second as one run with its shorter last.
func TestClientToPeerRuns(t *testing.T) {
	for _, mode := range offloadModes {
		t.Run(mode.name, func(t *testing.T) {
			r := newTestRelay(t, mode.offload, 0, nil)
			c := openCall(t, r)
			a, b := listenLoopback(t), listenOn(t, "127.0.0.2")
			c.permit(a, 0x4001)
			c.permit(b, 0x4002)
			occ := &r.stats.Occupancy

			pa, pb := payloads(0xA0, 4, 500, 0), payloads(0xB0, 2, 500, 0)
			frames := append(append(channelData(0x4001, pa[:3]), channelData(0x4002, pb)...), channelData(0x4001, pa[3:])...)
			sendRun(t, c.client, c.listener, frames, mode.offload)
			expectPayloads(t, a, pa)
			expectPayloads(t, b, pb)

			second := payloads(0xC0, 2, 700, 200)
			sendRun(t, c.client, c.listener, channelData(0x4001, second), mode.offload)
			expectPayloads(t, a, second)

			expectCount(t, "PacketsToPeers", &r.stats.PacketsToPeers, 9)
			expectCount(t, "BytesToPeers", &r.stats.BytesToPeers, 6*500+2*700+200)
			sends, gsoRuns := histogram(&occ.GSORunsToPeers)
			if !mode.offload {
				if gsoRuns != 0 {
					t.Errorf("%v GSO runs sent without GSO", gsoRuns)
				}
				return
			}
			if n, sum := histogram(&occ.SentToPeers); n != 2 || sum != 9 {
				t.Errorf("sends to peers: %d calls of %v datagrams, want 2 calls of 9", n, sum)
			}
			if sends != 2 || gsoRuns != 3 {
				t.Errorf("%d sends with %v GSO runs, want 2 with 3 (A×3, B×2; A×3)", sends, gsoRuns)
			}
		})
	}
}

// TestPermissionPerSegment tries to slip datagrams through inside runs:
// a peer without a permission (127.0.0.2) sends runs to the relayed
// address between runs of a permitted peer, and the client gets exactly
// the permitted peer's, in order; and the client's run of ChannelData
// mixes a channel to a permitted peer with one to a peer the filter
// refuses after PeersChanged, and only the permitted peer's datagrams
// leave, none to the refused one: the refused one's go to the control
// plane.
func TestPermissionPerSegment(t *testing.T) {
	for _, mode := range offloadModes {
		t.Run(mode.name, func(t *testing.T) {
			var deny atomic.Pointer[netip.Addr]
			r := newTestRelay(t, mode.offload, 0, &deny)
			c := openCall(t, r)
			good, stranger := listenLoopback(t), listenOn(t, "127.0.0.2")
			c.permit(good, 0x4000)

			var want [][]byte
			for i := 0; i < 3; i++ {
				sendRun(t, stranger, c.relayed, payloads(0xE0, 4, 900, 0), mode.offload)
				run := payloads(byte(0x10*i), 4, 900, 0)
				sendRun(t, good, c.relayed, run, mode.offload)
				want = append(want, run...)
			}
			expectChannelData(t, c.client, 0x4000, want)
			expectNothing(t, c.client, "after the permitted peer's datagrams")
			if got := r.stats.PacketsFromPeers.Load(); got != 24 {
				t.Errorf("PacketsFromPeers %d, want 24 (all received, the stranger's dropped)", got)
			}

			// Client → peers: one channel to a peer the filter now refuses.
			refused := listenOn(t, "127.0.0.3")
			c.permit(refused, 0x4001)
			addr := netip.MustParseAddr("127.0.0.3")
			deny.Store(&addr)
			r.PeersChanged()
			pg, pr := payloads(0x50, 3, 600, 0), payloads(0x60, 3, 600, 0)
			var frames [][]byte
			for i := range pg {
				frames = append(frames, channelData(0x4000, pg[i:i+1])[0], channelData(0x4001, pr[i:i+1])[0])
			}
			sendRun(t, c.client, c.listener, frames, mode.offload)
			expectPayloads(t, good, pg)
			// The refused peer's datagrams would have left in the same
			// send as the last of good's, or before it.
			expectNothing(t, refused, "a peer the filter refuses")
			expectCount(t, "PacketsToPeers", &r.stats.PacketsToPeers, 3)
			// They went to the control plane instead, whose relay socket
			// WriteTo judges them again (and counts them as
			// DroppedPeerDenied in turnsrv).
			buf := make([]byte, 2048)
			for i := range pr {
				n, _, err := c.ctrl.ReadFrom(buf)
				if err != nil || !bytes.Equal(buf[:n], channelData(0x4001, pr[i:i+1])[0]) {
					t.Fatalf("control plane datagram %d: % x (%v), want the refused peer's ChannelData", i, buf[:min(n, 8)], err)
				}
			}
		})
	}
}

// TestBitrateCapPerSegment: the bitrate cap judges each datagram of a
// coalesced read. At 88 kbit/s a 1100-byte datagram costs 100 ms of the
// cap's 500 ms burst; a run of 20 from the peer, judged at one instant
// (a receive batch), lets exactly 5 through and drops 15, counted; the
// client's run of 20 to the peer is judged datagram by datagram, as time
// passes, so at least 5 pass, and every datagram is either relayed or
// counted as dropped.
func TestBitrateCapPerSegment(t *testing.T) {
	for _, mode := range offloadModes {
		t.Run(mode.name, func(t *testing.T) {
			r := newTestRelay(t, mode.offload, 88_000, nil)
			c := openCall(t, r)
			peer := listenLoopback(t)
			c.permit(peer, 0x4000)

			start := time.Now()
			sendRun(t, c.client, c.listener, channelData(0x4000, payloads(0, 20, 1100, 0)), mode.offload)
			testenv.Eventually(t, waitLimit, "every datagram to the peer judged", func() bool {
				return r.stats.PacketsToPeers.Load()+r.stats.DroppedToPeers.Load() == 20
			})
			elapsed := time.Since(start)
			passed := int(r.stats.PacketsToPeers.Load())
			for i := 0; i < passed; i++ {
				read(t, peer)
			}
			if passed < 5 || passed > 6+int(elapsed/(100*time.Millisecond)) {
				t.Errorf("%d of 20 passed to the peer in %v, want the 5 of the burst and at most one per 100 ms more", passed, elapsed)
			}

			if !mode.offload {
				return // single datagrams are judged as they come, at different instants
			}
			sendRun(t, peer, c.relayed, payloads(0, 20, 1100, 0), true)
			testenv.Eventually(t, waitLimit, "every datagram from the peer judged", func() bool {
				return r.stats.PacketsFromPeers.Load() == 20
			})
			if got := r.stats.DroppedFromPeers.Load(); got != 15 {
				t.Errorf("DroppedFromPeers %d, want 15", got)
			}
			expectChannelData(t, c.client, 0x4000, payloads(0, 5, 1100, 0))
			expectNothing(t, c.client, "past the cap")
		})
	}
}

// TestGSORefusedFallsBack: a GSO run the kernel refuses (here EINVAL: a
// relay socket with SO_NO_CHECK cannot segment) is sent again as single
// datagrams, all of them, counted once; GSO stays on for other sockets
// (EIO alone turns it off).
func TestGSORefusedFallsBack(t *testing.T) {
	r := newTestRelay(t, true, 0, nil)
	c := openCall(t, r)
	peer := listenLoopback(t)
	c.permit(peer, 0x4000)
	rs := r.sock(c.relayed)
	rs.mu.RLock()
	err := unix.SetsockoptInt(rs.fd, unix.SOL_SOCKET, unix.SO_NO_CHECK, 1)
	rs.mu.RUnlock()
	if err != nil {
		t.Fatal(err)
	}
	ps := payloads(0x30, 6, 800, 100)
	sendRun(t, c.client, c.listener, channelData(0x4000, ps), true)
	expectPayloads(t, peer, ps)
	expectCount(t, "PacketsToPeers", &r.stats.PacketsToPeers, 7)
	if !r.off.gso.Load() {
		t.Error("GSO turned off after EINVAL")
	}
}

// TestBuildRuns checks how queued datagrams become messages: a GSO run
// takes consecutive datagrams to one destination of one size, ends after
// a shorter one, never takes a longer one or an empty one, and holds at
// most maxSegments datagrams and maxGSOBytes bytes; without GSO every
// datagram is its own message.
func TestBuildRuns(t *testing.T) {
	a, b := toRaw(netip.MustParseAddrPort("192.0.2.1:1000")), toRaw(netip.MustParseAddrPort("192.0.2.2:1000"))
	type dg struct {
		to   rawAddr
		size int
	}
	many := func(to rawAddr, size, n int) []dg {
		out := make([]dg, n)
		for i := range out {
			out[i] = dg{to, size}
		}
		return out
	}
	cat := func(parts ...[]dg) []dg {
		var out []dg
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		in   []dg
		gso  bool
		want []int // datagrams per message
	}{
		{"one destination, one size", many(a, 1000, 5), true, []int{5}},
		{"shorter last ends the run", cat(many(a, 1000, 3), many(a, 400, 1), many(a, 1000, 2)), true, []int{4, 2}},
		{"longer starts a run", cat(many(a, 400, 2), many(a, 1000, 2)), true, []int{2, 2}},
		{"destinations apart", cat(many(a, 1000, 2), many(b, 1000, 2), many(a, 1000, 1)), true, []int{2, 2, 1}},
		{"segment cap", many(a, 100, 70), true, []int{64, 6}},
		{"byte cap", many(a, 1400, 60), true, []int{46, 14}},
		{"empty datagrams alone", many(a, 0, 3), true, []int{1, 1, 1}},
		{"no GSO", many(a, 1000, 3), false, []int{1, 1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := &sendQueue{}
			idx := make([]uint16, len(tc.in))
			for i, d := range tc.in {
				q.out[i] = outDatagram{to: d.to, size: d.size, payload: d.size}
				idx[i] = uint16(i)
			}
			m := q.build(idx, tc.gso)
			got := append([]int(nil), q.segs[:m]...)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("datagrams per message %v, want %v", got, tc.want)
			}
			for i := 0; i < m; i++ {
				gso := q.msgs[i].hdr.Controllen > 0
				if gso != (got[i] > 1) {
					t.Errorf("message %d of %d datagrams: UDP_SEGMENT %v", i, got[i], gso)
				}
				if gso {
					if size := binary.NativeEndian.Uint16(q.oobs[i][unix.SizeofCmsghdr:]); int(size) != tc.in[q.first[i]].size {
						t.Errorf("message %d: segment size %d, want %d", i, size, tc.in[q.first[i]].size)
					}
				}
			}
		})
	}
}

// TestGROSize reads the segment size out of control data as the kernel
// writes it, after another control message, and refuses malformed ones.
func TestGROSize(t *testing.T) {
	gro := func(size int32) []byte {
		b := make([]byte, unix.CmsgSpace(4))
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
		h.Level, h.Type = unix.SOL_UDP, unix.UDP_GRO
		h.SetLen(unix.CmsgLen(4))
		binary.NativeEndian.PutUint32(b[unix.SizeofCmsghdr:], uint32(size))
		return b
	}
	other := make([]byte, unix.CmsgSpace(4))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&other[0]))
	h.Level, h.Type = unix.SOL_IP, unix.IP_TOS
	h.SetLen(unix.CmsgLen(4))
	for _, tc := range []struct {
		name    string
		control []byte
		size    int
		ok      bool
	}{
		{"none", nil, 0, true},
		{"gro", gro(1100), 1100, true},
		{"after another", append(append([]byte(nil), other...), gro(512)...), 512, true},
		{"only another", other, 0, true},
		{"negative", gro(-1), 0, false},
		{"length past the end", gro(1100)[:unix.CmsgLen(4)-1], 0, false},
		{"length below the header", make([]byte, 16), 0, false},
	} {
		size, ok := groSize(tc.control)
		if size != tc.size || ok != tc.ok {
			t.Errorf("%s: %d %v, want %d %v", tc.name, size, ok, tc.size, tc.ok)
		}
	}
}

// FuzzGROSplit: whatever the read and the segment size, nextSegment's
// segments put back together are the read, all of the segment size but
// a last one no longer, and groSize never panics on control data.
func FuzzGROSplit(f *testing.F) {
	f.Add(bytes.Repeat([]byte{1}, 2500), 1000, []byte{})
	f.Add([]byte{1, 2, 3}, 0, []byte{20, 0, 0, 0, 0, 0, 0, 0, 17, 0, 0, 0, 104, 0, 0, 0, 4, 0, 0, 0})
	f.Add([]byte{}, 5, []byte{255, 255, 255, 255, 255, 255, 255, 255})
	f.Fuzz(func(t *testing.T, b []byte, gso int, control []byte) {
		_, _ = groSize(control)
		var joined []byte
		n := 0
		for seg, rest := nextSegment(b, gso); ; seg, rest = nextSegment(rest, gso) {
			n++
			joined = append(joined, seg...)
			if gso > 0 && (len(seg) > gso || (len(rest) > 0 && len(seg) != gso)) {
				t.Fatalf("segment %d of %d bytes, segment size %d, %d left", n, len(seg), gso, len(rest))
			}
			if len(rest) == 0 {
				break
			}
		}
		if !bytes.Equal(joined, b) {
			t.Fatal("segments do not add up to the read")
		}
		if gso > 0 && len(b) > 0 && n != (len(b)+gso-1)/gso {
			t.Fatalf("%d segments of %d bytes at %d, want %d", n, len(b), gso, (len(b)+gso-1)/gso)
		}
	})
}
