package turnsrv

import (
	"net"
	"testing"
	"time"

	"github.com/icebox-project/icebox/internal/turntest"
)

func TestBitrateLimit(t *testing.T) {
	// 800 kbps is 100,000 bytes/s: a 1000-byte datagram takes 10 ms of the
	// cap, and 500 ms of burst is 50 of them.
	l := newBitrateLimit(800_000)
	now := int64(time.Second)
	passed := 0
	for i := 0; i < 80; i++ {
		if l.allow(now, 1000) {
			passed++
		}
	}
	if passed != 50 {
		t.Errorf("burst at once: %d datagrams passed, want 50", passed)
	}
	// 100 ms later, 10 more fit.
	now += int64(100 * time.Millisecond)
	passed = 0
	for i := 0; i < 20; i++ {
		if l.allow(now, 1000) {
			passed++
		}
	}
	if passed != 10 {
		t.Errorf("after 100 ms: %d passed, want 10", passed)
	}
	// At exactly the cap, for 10 s, every datagram passes.
	for i := 0; i < 1000; i++ {
		now += int64(10 * time.Millisecond)
		if !l.allow(now, 1000) {
			t.Fatalf("datagram %d at the cap was dropped", i)
		}
	}
	// A cap below one datagram per burst still passes a full-size one
	// when the bucket is full.
	slow := newBitrateLimit(8_000)
	if !slow.allow(0, fullDatagram) || slow.allow(0, fullDatagram) {
		t.Error("8 kbps: want the first MTU-sized datagram to pass and the second to be dropped")
	}
	if newBitrateLimit(0) != nil || newAllocationLimits(-1) != nil {
		t.Error("no cap should be a nil limit")
	}
}

func BenchmarkBitrateLimit(b *testing.B) {
	l := newBitrateLimit(10_000_000_000)
	for i := 0; i < b.N; i++ {
		l.allow(monotonicNow(), 1200)
	}
}

// TestBitrateCap: with a 160 kbps cap, a burst of 100 datagrams of 1000
// bytes gets about 500 ms worth (10) through in each direction, over UDP
// (icebox's relay path) and TCP (pion/turn's); the rest are dropped and
// counted, and after a pause the flow passes again.
func TestBitrateCap(t *testing.T) {
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			s := startServer(t, func(c *Config) { c.MaxBitratePerAllocation = 160_000 })
			addr := s.udp
			if network == "tcp" {
				addr = s.tcp
			}
			user, pass, _ := s.cfg.Credentials.Mint("capped", time.Now())
			relay, err := newClient(t, network, addr, user, pass).Allocate()
			if err != nil {
				t.Fatalf("Allocate: %v", err)
			}
			defer relay.Close()
			peer, err := turntest.ListenUDPIn(turntest.RelayMin, turntest.RelayMax)
			if err != nil {
				t.Fatal(err)
			}
			defer peer.Close()
			stats := s.Stats()
			payload := make([]byte, 1000)

			// Client → peer.
			for i := 0; i < 100; i++ {
				if _, err := relay.WriteTo(payload, peer.LocalAddr()); err != nil {
					t.Fatal(err)
				}
				if i%10 == 9 {
					time.Sleep(time.Millisecond)
				}
			}
			got, relayed := countDatagrams(peer)
			if got < 8 || got > 13 {
				t.Errorf("client → peer: %d of 100 datagrams arrived, want about 10", got)
			}
			if d := stats.DroppedToPeers.Load(); int(d)+got != 100 {
				t.Errorf("client → peer: %d dropped and %d arrived, want 100 in all", d, got)
			}

			// Peer → client, on its own cap.
			for i := 0; i < 100; i++ {
				if _, err := peer.WriteTo(payload, relayed); err != nil {
					t.Fatal(err)
				}
				if i%10 == 9 {
					time.Sleep(time.Millisecond)
				}
			}
			got = 0
			buf := make([]byte, 1500)
			for {
				_ = relay.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
				if _, _, err := relay.ReadFrom(buf); err != nil {
					break
				}
				got++
			}
			if got < 8 || got > 13 {
				t.Errorf("peer → client: %d of 100 datagrams arrived, want about 10", got)
			}
			if d := stats.DroppedFromPeers.Load(); d < 100-13 {
				t.Errorf("peer → client: %d counted as dropped, want at least 87", d)
			}

			// The cap is a rate, not a ban: 100 ms of it passes one datagram.
			time.Sleep(200 * time.Millisecond)
			if _, err := relay.WriteTo(payload, peer.LocalAddr()); err != nil {
				t.Fatal(err)
			}
			if n, _ := countDatagrams(peer); n != 1 {
				t.Errorf("after a pause, %d datagrams arrived, want 1", n)
			}
		})
	}
}

// countDatagrams reads from c until it is quiet for 500 ms and returns how
// many datagrams came, and from where.
func countDatagrams(c *net.UDPConn) (int, net.Addr) {
	n := 0
	var from net.Addr
	buf := make([]byte, 1500)
	for {
		_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		_, a, err := c.ReadFrom(buf)
		if err != nil {
			return n, from
		}
		n, from = n+1, a
	}
}
