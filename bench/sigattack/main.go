// Command sigattack measures icebox's memory under an attack on
// held signaling queues: from one address, rooms of peers that join and
// drop without a close frame (suspended for the 30 s resume window, their
// signals held for a resume), and one sender a room that sends them
// signals of the largest size (64 KiB) as fast as the message rate
// allows. It starts the icebox binary, prints its resident memory before,
// every few seconds during the attack and at the end, and its peak.
//
//	go run ./bench/sigattack                       # the daemon's default limits
//	go run ./bench/sigattack -per-ip -1            # no per-address cap: the byte bounds alone
//	go run ./bench/sigattack -icebox /tmp/old/icebox
//
// Traffic stays on 127.0.0.1.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/icebox-project/icebox/bench/internal/proc"
	"github.com/icebox-project/icebox/signaling/sigclient"
	"github.com/icebox-project/icebox/signaling/wire"
)

func main() {
	rooms := flag.Int("rooms", 7, "rooms attacked")
	victims := flag.Int("victims", 7, "peers a room that join and drop")
	duration := flag.Duration("duration", 25*time.Second, "how long the senders send (keep it under the 30 s resume window)")
	perIP := flag.Int("per-ip", 0, "signaling.max_connections_per_ip (0: the default, 50; -1: no cap)")
	binary := flag.String("icebox", "", "icebox binary (default: build ./cmd/icebox)")
	flag.Parse()
	if err := run(*rooms, *victims, *duration, *perIP, *binary); err != nil {
		fmt.Fprintln(os.Stderr, "sigattack:", err)
		os.Exit(1)
	}
}

func run(rooms, victims int, duration time.Duration, perIP int, binary string) error {
	dir, err := os.MkdirTemp("", "sigattack")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if binary, err = proc.IceboxBinary(dir, binary); err != nil {
		return err
	}
	cfg := filepath.Join(dir, "icebox.yaml")
	yml := fmt.Sprintf(`public_ip: 127.0.0.1
http: {listen: "127.0.0.1:0"}
turn: {listen: ["udp://127.0.0.1:0"], secrets: ["sigattack-secret-0123456789"]}
signaling: {max_connections_per_ip: %d}
metrics: {listen: ""}
log: {level: warn}
state_dir: %q
`, perIP, dir)
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		return err
	}
	cmd := exec.Command(binary, "-config", cfg, "-log-level", "info")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	addr, err := proc.WaitHTTP(stderr)
	if err != nil {
		return err
	}
	pid := cmd.Process.Pid
	url := "ws://" + addr + "/ws"
	// The daemon has served nothing yet; let its start settle.
	time.Sleep(time.Second)
	fmt.Printf("icebox %s: RSS before the attack %.1f MB\n", binary, mb(proc.RSSKiB(pid)))

	// Victims join and drop without a close frame; one sender a room.
	var refused int
	targets := make([][]string, rooms)
	for r := range rooms {
		for v := range victims {
			c, id, err := join(url, fmt.Sprintf("attack%d", r), fmt.Sprintf("victim%d", v))
			if err != nil {
				refused++
				continue
			}
			targets[r] = append(targets[r], id)
			c.Conn().UnderlyingConn().Close() // a drop: no close frame
		}
	}
	var senders []*sigclient.Client
	var senderRoom []int
	for r := range rooms {
		c, _, err := join(url, fmt.Sprintf("attack%d", r), "sender")
		if err != nil {
			refused++
			continue
		}
		senders = append(senders, c)
		senderRoom = append(senderRoom, r)
	}
	fmt.Printf("joined: %d victims dropped, %d senders; %d joins refused\n", countAll(targets), len(senders), refused)

	var sent, dropped, limited atomic.Int64
	var wg sync.WaitGroup
	pad := strings.Repeat("x", 64<<10-200)
	stop := time.Now().Add(duration)
	for i, c := range senders {
		ids := targets[senderRoom[i]]
		if len(ids) == 0 {
			continue
		}
		wg.Add(2)
		go func() { // the sender reads what it is told
			defer wg.Done()
			for {
				m, err := c.Receive(context.Background())
				if errors.Is(err, wire.ErrMalformed) {
					continue
				}
				if err != nil {
					return
				}
				if e, ok := m.(*wire.Error); ok {
					switch e.Code {
					case wire.CodeSignalDropped:
						dropped.Add(1)
					case wire.CodeRateLimited:
						limited.Add(1)
					}
				}
			}
		}()
		go func() {
			defer wg.Done()
			// The burst of 200, then 50 a second: MessageBurst, MessageRate.
			tick := time.NewTicker(time.Second / 50)
			defer tick.Stop()
			for n := 0; time.Now().Before(stop); n++ {
				if n >= 190 {
					<-tick.C
				}
				data := fmt.Sprintf(`{"n":%d,"pad":%q}`, n, pad)
				if c.Signal(ids[n%len(ids)], json.RawMessage(data)) != nil {
					return
				}
				sent.Add(1)
			}
		}()
	}
	peak := 0
	for t0 := time.Now(); time.Now().Before(stop); {
		time.Sleep(5 * time.Second)
		rss := proc.RSSKiB(pid)
		peak = max(peak, rss)
		fmt.Printf("  %4.0fs: RSS %.1f MB, %d signals sent (%.0f MB), %d signal-dropped errors\n",
			time.Since(t0).Seconds(), mb(rss), sent.Load(), float64(sent.Load())*64/1024, dropped.Load())
	}
	time.Sleep(time.Second)
	rss := proc.RSSKiB(pid)
	fmt.Printf("after sending: RSS %.1f MB; peak RSS (VmHWM) %.1f MB; %d signals sent, %d signal-dropped, %d rate-limited\n",
		mb(rss), mb(hwmKiB(pid)), sent.Load(), dropped.Load(), limited.Load())
	for _, c := range senders {
		c.Close()
	}
	wg.Wait()
	return nil
}

func countAll(ids [][]string) (n int) {
	for _, r := range ids {
		n += len(r)
	}
	return n
}

func mb(kib int) float64 { return float64(kib) / 1024 }

// hwmKiB is the peak resident set size (VmHWM) of pid in KiB.
func hwmKiB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

// join connects to url and joins room as name; it returns the client
// and the peer id.
func join(url, room, name string) (*sigclient.Client, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := sigclient.Dial(ctx, url, sigclient.DialOptions{})
	if err != nil {
		return nil, "", err
	}
	w, err := c.Join(ctx, wire.Join{Room: room, Name: name})
	if err != nil {
		c.Close()
		return nil, "", err
	}
	return c, w.ID, nil
}
