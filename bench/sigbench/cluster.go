package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/icebox-project/icebox/bench/internal/proc"
)

// node is one icebox process of the cluster under test.
type node struct {
	name                  string
	cmd                   *exec.Cmd
	http, metrics, routes string
	base, held            int // RSS, KiB
	conns                 int
}

var (
	clusterLine   = regexp.MustCompile(`msg="cluster listening".* addr=(\S+)`)
	metricsAddrRe = regexp.MustCompile(`msg="metrics listening".* addr=(\S+)`)
	httpAddrRe    = regexp.MustCompile(`msg="http listening".* addr=(\S+)`)
)

// startNode runs one icebox node and waits for its listeners.
func startNode(binary, dir, name, route string, roomSize, relayMin int) (*node, error) {
	nd := &node{name: name}
	state := filepath.Join(dir, name)
	if err := os.MkdirAll(state, 0o700); err != nil {
		return nil, err
	}
	routes := ""
	if route != "" {
		routes = fmt.Sprintf("%q", "nats-route://"+route)
	}
	yml := fmt.Sprintf(`public_ip: 127.0.0.1
http: {listen: "127.0.0.1:0"}
turn: {listen: ["udp://127.0.0.1:0"], relay_ports: "%d-%d", secrets: ["sigbench-secret-0123456789"], credentials_per_minute: -1, max_tcp_connections_per_ip: -1, max_tcp_connections: -1}
signaling: {max_peers_per_room: %d, max_connections_per_ip: -1, max_rooms: -1}
metrics: {listen: "127.0.0.1:0"}
log: {level: info}
state_dir: %q
cluster: {node: %s, listen: "127.0.0.1:0", secret_file: %q, routes: [%s]}
`, relayMin, relayMin+999, roomSize, state, name, filepath.Join(dir, "cluster.key"), routes)
	cfg := filepath.Join(state, "icebox.yaml")
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		return nil, err
	}
	nd.cmd = exec.Command(binary, "-config", cfg)
	if *pprofDir != "" {
		nd.cmd.Env = append(os.Environ(), "ICEBOX_DEBUG_PPROF=1")
	}
	stderr, _ := nd.cmd.StderrPipe()
	if err := nd.cmd.Start(); err != nil {
		return nil, err
	}
	found := make(chan struct{})
	var once sync.Once
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if m := clusterLine.FindStringSubmatch(line); m != nil {
				nd.routes = m[1]
			}
			if m := metricsAddrRe.FindStringSubmatch(line); m != nil {
				nd.metrics = m[1]
			}
			if m := httpAddrRe.FindStringSubmatch(line); m != nil {
				nd.http = m[1]
				once.Do(func() { close(found) })
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	select {
	case <-found:
	case <-time.After(20 * time.Second):
		return nil, fmt.Errorf("node %s did not start", name)
	}
	return nd, nil
}

// ready asks the node's /cluster whether it is ready and sees n nodes.
func (nd *node) ready(n int) bool {
	resp, err := http.Get("http://" + nd.metrics + "/cluster")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var st struct {
		Ready bool `json:"ready"`
		Nodes []struct {
			Alive bool `json:"alive"`
		} `json:"nodes"`
	}
	if json.NewDecoder(resp.Body).Decode(&st) != nil || !st.Ready {
		return false
	}
	alive := 0
	for _, x := range st.Nodes {
		if x.Alive {
			alive++
		}
	}
	return alive == n
}

// runCluster is the benchmark on nNodes nodes: client i connects to node
// i mod nNodes, so a room of 4 spans the nodes.
func runCluster(nNodes, nConns, roomSize, rate int, duration time.Duration, binary string) error {
	proc.RaiseFDLimit(uint64(nConns*2 + 1000))
	dir, err := os.MkdirTemp("", "sigbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if binary, err = proc.IceboxBinary(dir, binary); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "cluster.key"), []byte("sigbench-cluster-secret-0123456789"), 0o600); err != nil {
		return err
	}
	var nodes []*node
	defer func() {
		for _, nd := range nodes {
			_ = nd.cmd.Process.Signal(syscall.SIGTERM)
		}
		for _, nd := range nodes {
			_ = nd.cmd.Wait()
		}
	}()
	for i := range nNodes {
		route := ""
		if i > 0 {
			route = nodes[0].routes
		}
		nd, err := startNode(binary, dir, fmt.Sprintf("n%d", i), route, roomSize, 20000+1000*i)
		if err != nil {
			return err
		}
		nodes = append(nodes, nd)
	}
	t0 := time.Now()
	for _, nd := range nodes {
		for !nd.ready(nNodes) {
			if time.Since(t0) > 90*time.Second {
				return fmt.Errorf("node %s not ready with %d nodes", nd.name, nNodes)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	formed := time.Since(t0)
	time.Sleep(time.Second)
	for _, nd := range nodes {
		nd.base = proc.RSSKiB(nd.cmd.Process.Pid)
	}
	if *pprofDir != "" {
		for _, nd := range nodes {
			nd.saveDebug(*pprofDir, "idle")
		}
	}

	clients := make([]*client, nConns)
	nodeOf := func(i int) int { return i % nNodes }
	lat := make(chan sample, 1<<16)
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
			c, err := connect("ws://"+nodes[nodeOf(i)].http+"/ws", fmt.Sprintf("room%d", i/roomSize), fmt.Sprintf("p%d", i))
			if err != nil {
				errMu.Lock()
				connErr = err
				errMu.Unlock()
				return
			}
			c.node = nodeOf(i)
			clients[i] = c
		}(i)
	}
	wg.Wait()
	if connErr != nil {
		return fmt.Errorf("connecting: %w", connErr)
	}
	connectTime := time.Since(start)
	for i, c := range clients {
		nodes[c.node].conns++
		r := i / roomSize * roomSize
		for j := r; j < min(r+roomSize, nConns); j++ {
			if j != i {
				c.mate = append(c.mate, clients[j])
			}
		}
		go c.readCluster(lat)
	}
	time.Sleep(3 * time.Second) // let peer-joined traffic settle and memory stabilise
	for _, nd := range nodes {
		nd.held = proc.RSSKiB(nd.cmd.Process.Pid)
	}
	if *pprofDir != "" {
		for _, nd := range nodes {
			nd.saveDebug(*pprofDir, "held")
		}
	}

	var all, cross []time.Duration
	done := make(chan struct{})
	go func() {
		for s := range lat {
			all = append(all, s.d)
			if s.cross {
				cross = append(cross, s.d)
			}
		}
		close(done)
	}()
	interval := time.Second / time.Duration(rate)
	sent, sentCross := 0, 0
	ts := time.Now()
	for next := ts; time.Since(ts) < duration; next = next.Add(interval) {
		time.Sleep(time.Until(next))
		c := clients[rand.IntN(nConns)]
		if len(c.mate) == 0 {
			continue
		}
		to := c.mate[rand.IntN(len(c.mate))]
		data := fmt.Sprintf(`{"t":%d,"n":%d,"candidate":{"candidate":"candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host","sdpMid":"0"}}`, time.Now().UnixNano(), c.node)
		if err := c.sig.Signal(to.id, json.RawMessage(data)); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		sent++
		if to.node != c.node {
			sentCross++
		}
	}
	time.Sleep(2 * time.Second)
	for _, c := range clients {
		c.sig.Close()
	}
	close(lat)
	<-done
	slices.Sort(all)
	slices.Sort(cross)
	pct := func(s []time.Duration, p float64) time.Duration {
		if len(s) == 0 {
			return 0
		}
		return s[min(len(s)-1, int(float64(len(s))*p))].Round(time.Microsecond)
	}
	fmt.Printf("machine: %s/%s, %d CPUs, %s\n", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())
	fmt.Printf("cluster: %d nodes as processes on this machine, formed (ready, all seen) in %s\n", nNodes, formed.Round(100*time.Millisecond))
	fmt.Printf("connections held: %d in rooms of %d spanning the nodes (connected and joined in %s)\n", nConns, roomSize, connectTime.Round(time.Millisecond))
	for _, nd := range nodes {
		fmt.Printf("node %s: %d connections, RSS %d KiB idle, %d KiB holding them: %.1f KiB per connection\n",
			nd.name, nd.conns, nd.base, nd.held, float64(nd.held-nd.base)/float64(max(1, nd.conns)))
	}
	fmt.Printf("signals: %d sent at %d/s for %s (%d to a peer on another node), %d delivered (%d across nodes)\n",
		sent, rate, duration, sentCross, len(all), len(cross))
	fmt.Printf("delivery latency, all: p50 %s, p99 %s, max %s\n", pct(all, 0.5), pct(all, 0.99), pct(all, 1))
	fmt.Printf("delivery latency, across nodes: p50 %s, p99 %s, max %s\n", pct(cross, 0.5), pct(cross, 0.99), pct(cross, 1))
	return nil
}

type sample struct {
	d     time.Duration
	cross bool
}

func (c *client) readCluster(lat chan<- sample) {
	c.receive(func(d signalData) {
		select {
		case lat <- sample{d: time.Duration(time.Now().UnixNano() - d.T), cross: d.N != c.node}:
		default:
		}
	})
}

// saveDebug stores the node's heap profile, Go and process metrics and
// nats-server's varz and jsz in dir as <node>-<stage>-<what> (the nodes
// run with ICEBOX_DEBUG_PPROF=1 under -pprof).
func (nd *node) saveDebug(dir, stage string) {
	// The heap profile first, after a collection (gc=1): the metrics
	// that follow then tell live heap (heap_alloc) from the free space in
	// spans still in use (heap_inuse - heap_alloc).
	for _, x := range [][2]string{
		{"heap.pprof", "/debug/pprof/heap?gc=1"}, {"metrics.txt", "/metrics"},
		{"varz.json", "/debug/nats/varz"}, {"jsz.json", "/debug/nats/jsz"},
	} {
		what, path := x[0], x[1]
		resp, err := http.Get("http://" + nd.metrics + path)
		if err != nil {
			fmt.Fprintf(os.Stderr, "sigbench: %s %s: %v\n", nd.name, path, err)
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		_ = os.WriteFile(filepath.Join(dir, nd.name+"-"+stage+"-"+what), b, 0o644)
	}
}
