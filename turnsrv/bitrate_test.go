package turnsrv

import (
	"net"
	"testing"
	"time"

	"github.com/icebox-project/icebox/internal/turntest"
)

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
