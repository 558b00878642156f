// Command sigbench measures icebox's signaling: it starts the icebox
// binary, holds N WebSocket clients joined to rooms of 4, and reports the
// server's resident memory per connection and the delivery latency of
// signals sent at a fixed aggregate rate (p50, p99, max).
//
//	go run ./bench/sigbench -conns 10000 -rate 2000 -duration 10s
//	go run ./bench/sigbench -nodes 3 -conns 10000 -rate 2000 -duration 10s
//
// With -nodes above 1 it starts that many icebox processes as a cluster
// (embedded NATS, routes to the first) and connects client i to node i
// mod nodes, so rooms span the nodes; memory is reported per node.
//
// Traffic stays on 127.0.0.1. Each signal carries its send time; the
// receiver records now − sent.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/icebox-project/icebox/bench/internal/proc"
	"github.com/icebox-project/icebox/signaling/sigclient"
	"github.com/icebox-project/icebox/signaling/wire"
)

// pprofDir is -pprof.
var pprofDir *string

func main() {
	conns := flag.Int("conns", 10000, "WebSocket connections to hold")
	roomSize := flag.Int("room", 4, "peers per room")
	rate := flag.Int("rate", 2000, "signals per second, all clients together")
	duration := flag.Duration("duration", 10*time.Second, "how long to send signals")
	binary := flag.String("icebox", "", "icebox binary (default: build ./cmd/icebox)")
	pprofDir = flag.String("pprof", "", "with -nodes > 1: run the nodes with ICEBOX_DEBUG_PPROF=1 and save each node's heap profile, metrics and nats-server varz/jsz into this directory, idle and holding the connections")
	nodes := flag.Int("nodes", 1, "icebox processes; more than 1 forms a cluster, clients spread across the nodes")
	flag.Parse()
	var err error
	if *nodes > 1 {
		err = runCluster(*nodes, *conns, *roomSize, *rate, *duration, *binary)
	} else {
		err = run(*conns, *roomSize, *rate, *duration, *binary)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sigbench:", err)
		os.Exit(1)
	}
}

type client struct {
	sig  *sigclient.Client
	id   string
	mate []*client
	node int // index of the node it is connected to (cluster mode)
}

func run(nConns, roomSize, rate int, duration time.Duration, binary string) error {
	proc.RaiseFDLimit(uint64(nConns*2 + 1000))
	dir, err := os.MkdirTemp("", "sigbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if binary, err = proc.IceboxBinary(dir, binary); err != nil {
		return err
	}
	cfg := filepath.Join(dir, "icebox.yaml")
	metricsAddr := ""
	if *pprofDir != "" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		metricsAddr = l.Addr().String()
		l.Close()
	}
	yml := fmt.Sprintf(`public_ip: 127.0.0.1
http: {listen: "127.0.0.1:0"}
turn: {listen: ["udp://127.0.0.1:0"], secrets: ["sigbench-secret-0123456789"], credentials_per_minute: -1, max_tcp_connections_per_ip: -1, max_tcp_connections: -1}
signaling: {max_peers_per_room: %d, max_connections_per_ip: -1, max_rooms: -1}
metrics: {listen: %q}
log: {level: warn}
state_dir: %q
`, roomSize, metricsAddr, dir)
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		return err
	}
	cmd := exec.Command(binary, "-config", cfg, "-log-level", "info")
	if *pprofDir != "" {
		cmd.Env = append(os.Environ(), "ICEBOX_DEBUG_PPROF=1")
	}
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	addr, err := proc.WaitHTTP(stderr)
	if err != nil {
		return err
	}
	time.Sleep(300 * time.Millisecond)
	base := proc.RSSKiB(cmd.Process.Pid)

	// Connect and join: rooms of roomSize.
	url := "ws://" + addr + "/ws"
	clients := make([]*client, nConns)
	lat := make(chan time.Duration, 1<<16)
	start := time.Now()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	var connErr error
	var errMu sync.Mutex
	for i := range clients {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := connect(url, fmt.Sprintf("room%d", i/roomSize), fmt.Sprintf("p%d", i))
			if err != nil {
				errMu.Lock()
				connErr = err
				errMu.Unlock()
				return
			}
			clients[i] = c
		}(i)
	}
	wg.Wait()
	if connErr != nil {
		return fmt.Errorf("connecting: %w", connErr)
	}
	connectTime := time.Since(start)
	for i, c := range clients {
		r := i / roomSize * roomSize
		for j := r; j < min(r+roomSize, nConns); j++ {
			if j != i {
				c.mate = append(c.mate, clients[j])
			}
		}
		go c.read(lat)
	}
	time.Sleep(2 * time.Second) // let peer-joined traffic settle and memory stabilise
	runtime.GC()
	held := proc.RSSKiB(cmd.Process.Pid)
	if *pprofDir != "" {
		(&node{name: "single", metrics: metricsAddr}).saveDebug(*pprofDir, "held")
	}

	// Send signals at the rate; collect latencies.
	var samples []time.Duration
	done := make(chan struct{})
	go func() {
		for d := range lat {
			samples = append(samples, d)
		}
		close(done)
	}()
	interval := time.Second / time.Duration(rate)
	sent := 0
	t0 := time.Now()
	for next := t0; time.Since(t0) < duration; next = next.Add(interval) {
		time.Sleep(time.Until(next))
		c := clients[rand.IntN(nConns)]
		if len(c.mate) == 0 {
			continue
		}
		to := c.mate[rand.IntN(len(c.mate))]
		data := fmt.Sprintf(`{"t":%d,"candidate":{"candidate":"candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host","sdpMid":"0"}}`, time.Now().UnixNano())
		if err := c.sig.Signal(to.id, json.RawMessage(data)); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		sent++
	}
	time.Sleep(time.Second)
	for _, c := range clients {
		c.sig.Close()
	}
	close(lat)
	<-done
	slices.Sort(samples)
	pct := func(p float64) time.Duration {
		if len(samples) == 0 {
			return 0
		}
		return samples[min(len(samples)-1, int(float64(len(samples))*p))]
	}
	fmt.Printf("machine: %s/%s, %d CPUs, %s\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
	fmt.Printf("connections held: %d in rooms of %d (connected and joined in %s)\n", nConns, roomSize, connectTime.Round(time.Millisecond))
	fmt.Printf("server RSS: %d KiB idle, %d KiB holding them: %.1f KiB per connection\n", base, held, float64(held-base)/float64(nConns))
	fmt.Printf("signals: %d sent at %d/s for %s, %d delivered\n", sent, rate, duration, len(samples))
	fmt.Printf("delivery latency: p50 %s, p99 %s, max %s\n", pct(0.50).Round(time.Microsecond), pct(0.99).Round(time.Microsecond), pct(1).Round(time.Microsecond))
	return nil
}

// connect dials url and joins room as name. The client's buffers are
// small: the bench holds tens of thousands.
func connect(url, room, name string) (*client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 1024, WriteBufferSize: 1024}
	c, err := sigclient.Dial(ctx, url, sigclient.DialOptions{Dialer: &d, Buffer: 4})
	if err != nil {
		return nil, err
	}
	w, err := c.Join(ctx, wire.Join{Room: room, Name: name})
	if err != nil {
		c.Close()
		return nil, err
	}
	return &client{sig: c, id: w.ID}, nil
}

// signalData is the part of a benchmark signal's data the receiver
// reads: T, the send time (Unix ns), and N, the sender's node.
type signalData struct {
	T int64
	N int
}

// receive calls f with the data of each benchmark signal c receives,
// until the connection ends.
func (c *client) receive(f func(signalData)) {
	for {
		m, err := c.sig.Receive(context.Background())
		if err != nil {
			if errors.Is(err, wire.ErrMalformed) {
				continue
			}
			return
		}
		var d signalData
		if s, ok := m.(*wire.Signal); ok && json.Unmarshal(s.Data, &d) == nil && d.T > 0 {
			f(d)
		}
	}
}

func (c *client) read(lat chan<- time.Duration) {
	c.receive(func(d signalData) {
		select {
		case lat <- time.Duration(time.Now().UnixNano() - d.T):
		default:
		}
	})
}
