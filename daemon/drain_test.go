package daemon

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icebox-project/icebox/config"
	"github.com/icebox-project/icebox/internal/testenv"
	"github.com/icebox-project/icebox/internal/turntest"
)

// syncBuffer is a log destination safe for the daemon's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fakeClock is the drain's clock: sleep moves it on without waiting.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	slept  time.Duration
	sleeps int
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.slept += d
	c.sleeps++
}

// drainDaemon is a daemon on loopback (not serving HTTP: the drain needs
// only TURN) with one allocation, and a log.
func drainDaemon(t *testing.T) (*Daemon, *turntest.Relay, *syncBuffer) {
	t.Helper()
	yml := fmt.Sprintf(`public_ip: 127.0.0.1
http:
  listen: "127.0.0.1:0"
turn:
  listen: ["udp://127.0.0.1:0"]
  relay_ports: "20000-29999"
  allow_peers: [127.0.0.0/8]
metrics:
  listen: ""
state_dir: %q
`, t.TempDir())
	cfg, err := config.FromBytes("drain.yaml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	log := &syncBuffer{}
	d, err := New(cfg, Options{Logger: slog.New(slog.NewTextHandler(log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.turn.Close(); d.httpLn.Close() })
	username, password, _ := d.turn.Mint("drain")
	relay := turntest.MustAllocate(t, d.turn.Addrs()[0].String(), username, password)
	return d, relay, log
}

// relayOnce sends a datagram to an echo peer through relay, waits for it
// to come back, and then for d's TURN server to have counted it (the
// loop that sent it counts once the kernel took it, and the echo may
// come back through another loop first).
func relayOnce(t *testing.T, d *Daemon, relay *turntest.Relay) {
	t.Helper()
	echo := turntest.UDPEcho(t)
	buf := make([]byte, 64)
	for try := 0; ; try++ {
		if _, err := relay.Conn.WriteTo([]byte("ping"), echo); err != nil {
			t.Fatal(err)
		}
		_ = relay.Conn.SetReadDeadline(time.Now().Add(time.Second))
		if n, _, err := relay.Conn.ReadFrom(buf); err == nil && string(buf[:n]) == "ping" {
			testenv.Eventually(t, 5*time.Second, "the relayed datagram counted", func() bool { return d.turn.Stats().PacketsToPeers.Load() > 0 })
			return
		}
		if try == 5 {
			t.Fatal("no echo through the relay")
		}
	}
}

// TestDrainSkipsIdleAllocations: on shutdown, allocations while the relay
// has carried nothing for IdleDrain are closed at once, not held for the
// grace period; a relay that carried something lately holds them for the
// grace, and stops holding once it has been idle for IdleDrain. The
// clock is the test's: no waiting.
func TestDrainSkipsIdleAllocations(t *testing.T) {
	t.Run("nothing ever relayed", func(t *testing.T) {
		d, _, log := drainDaemon(t)
		clock := &fakeClock{now: time.Now()}
		d.now, d.sleep = clock.Now, clock.Sleep
		d.drainAllocations(5 * time.Minute)
		if clock.sleeps != 0 {
			t.Errorf("waited %s for an allocation that never relayed anything", clock.slept)
		}
		if !strings.Contains(log.String(), `msg="shutdown: allocations relayed nothing lately; closing them at once" allocations=1 last_relayed_ago=never`) {
			t.Errorf("log does not say why it did not wait:\n%s", log)
		}
	})
	t.Run("relaying holds the grace", func(t *testing.T) {
		d, relay, log := drainDaemon(t)
		relayOnce(t, d, relay)
		clock := &fakeClock{now: time.Now()}
		d.now, d.sleep = clock.Now, clock.Sleep
		d.drainAllocations(10 * time.Second)
		if clock.slept < 10*time.Second {
			t.Errorf("waited %s, want the whole 10s grace for a relay that just carried a datagram", clock.slept)
		}
		if !strings.Contains(log.String(), `msg="shutdown grace over; closing allocations" allocations=1`) {
			t.Errorf("log does not say the grace ran out:\n%s", log)
		}
	})
	t.Run("idle for 30s within the grace", func(t *testing.T) {
		d, relay, log := drainDaemon(t)
		relayOnce(t, d, relay)
		last := d.turn.LastRelayed()
		clock := &fakeClock{now: last.Add(20 * time.Second)}
		d.now, d.sleep = clock.Now, clock.Sleep
		d.drainAllocations(time.Minute)
		if clock.slept < 10*time.Second-100*time.Millisecond || clock.slept > 10*time.Second+100*time.Millisecond {
			t.Errorf("waited %s, want about 10s: until 30s after the last datagram, not the 1m grace", clock.slept)
		}
		if !strings.Contains(log.String(), `msg="shutdown: allocations relayed nothing lately; closing them at once" allocations=1 last_relayed_ago=30s`) {
			t.Errorf("log does not say why it stopped waiting:\n%s", log)
		}
	})
}

// TestSelfTestEndsBeforeShutdown: Serve waits for the start-up self-test
// before it shuts TURN down, so a self-test that shutdown cuts short says
// so and never reports the relay as failing: when Serve returns, the log
// holds the self-test's outcome, and it is not a failure.
func TestSelfTestEndsBeforeShutdown(t *testing.T) {
	d, _, log := drainDaemon(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // shut down at once, with the self-test under way
	if err := d.Serve(ctx); err != nil {
		t.Fatalf("Serve: %v", err)
	}
	out := log.String()
	if strings.Contains(out, "self-test failed") {
		t.Errorf("the self-test reported a failure during shutdown:\n%s", out)
	}
	if !strings.Contains(out, "self-test cut short by shutdown") && !strings.Contains(out, "self-test passed") {
		t.Errorf("Serve returned before the self-test ended:\n%s", out)
	}
}
