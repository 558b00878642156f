package turnsrv

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/icebox-project/icebox/internal/testenv"
	"github.com/icebox-project/icebox/internal/turntest"
)

// Figures of TestBitrateCap: a 160 kbps cap is 20 datagrams of 1000 bytes
// a second, one each 50 ms, and its 500 ms burst is 10 of them.
const (
	capBitrate = 160_000
	capCost    = 50 * time.Millisecond // the cap's time for one datagram
	capBurst   = 10                    // datagrams the burst lets through at once
	capOffered = 60                    // datagrams offered per direction
	capEvery   = 10 * time.Millisecond // pacing: five times the cap
)

// TestBitrateCap measures the rate a capped allocation relays, in each
// direction, over UDP (udprelay's path, or pion/turn's off Linux) and TCP
// (pion/turn's). A flow offered at five times the cap, paced by a ticker,
// gets the burst through and then no more than the cap: within the time
// from its first datagram to the last decision, at most capBurst + 1 +
// elapsed/capCost pass, and, unless the machine stalls for most of
// the flow, well over the burst. Every other datagram is counted as
// dropped. After the flow, the cap lets datagrams through again.
func TestBitrateCap(t *testing.T) {
	for _, network := range []string{"udp", "tcp"} {
		t.Run(network, func(t *testing.T) {
			s := startServer(t, func(c *Config) { c.MaxBitratePerAllocation = capBitrate })
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

			// Client → peer: the permission is made by the first WriteTo.
			start := time.Now()
			sendTime := paced(t, func() error { _, err := relay.WriteTo(payload, peer.LocalAddr()); return err })
			got, relayed := countUntil(t, peer, func(n int) bool { return int(stats.DroppedToPeers.Load())+n >= capOffered })
			checkRate(t, "client → peer", got, sendTime, time.Since(start))
			if d := stats.DroppedToPeers.Load(); int(d)+got != capOffered {
				t.Errorf("client → peer: %d dropped and %d arrived, want %d in all", d, got, capOffered)
			}

			// Peer → client, on its own cap.
			fromPeers := stats.PacketsFromPeers.Load()
			start = time.Now()
			sendTime = paced(t, func() error { _, err := peer.WriteTo(payload, relayed); return err })
			testenv.Eventually(t, closeGuard, "peer → client: every datagram judged", func() bool {
				return stats.PacketsFromPeers.Load()-fromPeers >= capOffered
			})
			judged := time.Since(start)
			passed := capOffered - int(stats.DroppedFromPeers.Load())
			got = 0
			buf := make([]byte, 1500)
			for got < passed {
				_ = relay.SetReadDeadline(time.Now().Add(closeGuard))
				if _, _, err := relay.ReadFrom(buf); err != nil {
					t.Fatalf("peer → client: %d of %d passed datagrams arrived: %v", got, passed, err)
				}
				got++
			}
			checkRate(t, "peer → client", got, sendTime, judged)

			// The cap is a rate, not a ban: the flow passes again, a
			// datagram per capCost.
			tick := time.NewTicker(capCost)
			defer tick.Stop()
			dropped := stats.DroppedToPeers.Load()
			for n := 0; ; n++ {
				if _, err := relay.WriteTo(payload, peer.LocalAddr()); err != nil {
					t.Fatal(err)
				}
				_ = peer.SetReadDeadline(time.Now().Add(capCost))
				if _, _, err := peer.ReadFrom(buf); err == nil {
					break
				}
				if n == 40 {
					t.Fatalf("no datagram passed in %d tries over 2 s (%d more dropped)", n, stats.DroppedToPeers.Load()-dropped)
				}
				<-tick.C
			}
		})
	}
}

// paced calls send capOffered times, one per capEvery tick, and returns
// how long that took.
func paced(t *testing.T, send func() error) time.Duration {
	t.Helper()
	tick := time.NewTicker(capEvery)
	defer tick.Stop()
	start := time.Now()
	for i := 0; i < capOffered; i++ {
		if err := send(); err != nil {
			t.Fatal(err)
		}
		<-tick.C
	}
	return time.Since(start)
}

// checkRate checks that got datagrams passing a capped flow that was
// offered over sendTime, and judged within elapsed, is the cap's rate.
func checkRate(t *testing.T, dir string, got int, sendTime, elapsed time.Duration) {
	t.Helper()
	most := capBurst + 1 + int(elapsed/capCost)
	least := capBurst + int(sendTime/capCost)/3
	rate := float64(max(0, got-capBurst)) * 8000 / elapsed.Seconds()
	t.Logf("%s: %d of %d datagrams passed in %v (offered over %v): %.0f bit/s after the burst, cap %d",
		dir, got, capOffered, elapsed.Round(time.Millisecond), sendTime.Round(time.Millisecond), rate, capBitrate)
	if got > most || got < least {
		t.Errorf("%s: %d datagrams passed, want %d to %d", dir, got, least, most)
	}
}

// countUntil reads datagrams from c until done(count) holds, failing
// after closeGuard, and returns how many came, and from where.
func countUntil(t *testing.T, c *net.UDPConn, done func(int) bool) (int, net.Addr) {
	t.Helper()
	n := 0
	var from net.Addr
	buf := make([]byte, 1500)
	deadline := time.Now().Add(closeGuard)
	for !done(n) {
		if time.Now().After(deadline) {
			t.Fatalf("%d datagrams after %s, still waiting", n, closeGuard)
		}
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		_, a, err := c.ReadFrom(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			continue // look at the counters again
		}
		if err != nil {
			t.Fatal(err)
		}
		n, from = n+1, a
	}
	return n, from
}
