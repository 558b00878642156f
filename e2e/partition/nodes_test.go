//go:build linux

package partition

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/icebox-project/icebox/internal/netlab"
	"github.com/icebox-project/icebox/internal/testenv"
)

// iceboxBin is the icebox binary, built once by TestMain.
var iceboxBin string

func TestMain(m *testing.M) {
	flag.Parse()
	// The schedules run side by side: each is mostly waiting for faults
	// to take effect. -test.parallel defaults to GOMAXPROCS (2 in CI).
	if f := flag.Lookup("test.parallel"); f != nil && f.Value.String() == f.DefValue {
		_ = f.Value.Set("8")
	}
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "icebox-partition-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if os.Geteuid() == 0 {
		iceboxBin = filepath.Join(dir, "icebox")
		out, err := exec.Command("go", "build", "-o", iceboxBin, "../../cmd/icebox").CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "go build icebox: %v\n%s", err, out)
			return 1
		}
	}
	return m.Run()
}

// Timings of the cluster as configured in every test node (the
// defaults: signaling/cluster DefaultHeartbeatInterval and
// DefaultDeadAfter). The guarantee windows are counted in them.
const (
	heartbeat = time.Second
	deadAfter = 5 * time.Second
)

// healWindow is how long after a heal the cluster may take to agree
// again (docs/GUARANTEES.md). Most runs agreed within 10 s: one
// DeadAfter for the nodes to hear each other and NATS to re-form its
// routes. The longest measured on a loaded 2-core machine was 30.9 s
// (and 28.6 s for a client's view after flap, cause not found): a node
// cut off or paused for longer than JetStream's election timeout
// (4 to 9 s) stood for election meanwhile, and nats-server's raft has no
// pre-vote, so its return makes the bucket's leader step down, once or
// twice, each time for an election of up to 9 s; and a node reading a
// lagging replica retries its compare-and-sets until it catches up.
const healWindow = 45 * time.Second

// node is one icebox running in a host of the fabric.
type node struct {
	name string
	host *netlab.Host
	// clockOffset, when set, starts the process in a time namespace
	// whose CLOCK_MONOTONIC and CLOCK_BOOTTIME are shifted by it.
	clockOffset time.Duration
	cfg         string
	cmd         *exec.Cmd
	mu          sync.Mutex
	log         bytes.Buffer
	done        chan struct{}
}

// cluster is three icebox nodes on a fabric of their own.
type cluster struct {
	fab   *netlab.Fabric
	nodes []*node
}

// subnets hands each cluster of one test process a /24 of its own:
// namespaces separate them anyway, but a distinct subnet keeps logs
// unambiguous.
var (
	subnetMu sync.Mutex
	subnet   = 10
)

// startCluster makes a fabric of three hosts (a, b, c) and runs a node in
// each, routed to the other two; it returns once every node is ready
// and sees the other two alive. offsets[i], when given, is node i's
// clock offset.
func startCluster(t *testing.T, offsets ...time.Duration) *cluster {
	t.Helper()
	return startClusterWith(t, "", "", offsets...)
}

// startClusterWith is startCluster with rooms, the YAML of
// signaling.rooms ("": none), and extra, more top-level YAML, in every
// node's configuration.
func startClusterWith(t *testing.T, rooms, extra string, offsets ...time.Duration) *cluster {
	t.Helper()
	testenv.Tool(t, "apt-get install iproute2", "tc")
	lab := netlab.New(t)
	subnetMu.Lock()
	subnet++
	prefix := netip.MustParsePrefix(fmt.Sprintf("10.%d.0.0/24", subnet))
	subnetMu.Unlock()
	c := &cluster{fab: lab.Fabric(t, prefix, "a", "b", "c")}
	key := filepath.Join(t.TempDir(), "cluster.key")
	if err := os.WriteFile(key, []byte("partition-cluster-secret-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for i, h := range c.fab.Hosts() {
		n := &node{name: string(rune('a' + i)), host: h}
		if i < len(offsets) {
			n.clockOffset = offsets[i]
		}
		var routes []string
		for _, o := range c.fab.Hosts() {
			if o != h {
				routes = append(routes, fmt.Sprintf("%q", "nats-route://"+o.Addr.String()+":6222"))
			}
		}
		n.cfg = filepath.Join(t.TempDir(), "icebox.yaml")
		yml := fmt.Sprintf(`public_ip: %[1]s
http: {listen: "%[1]s:8080"}
turn:
  listen: ["udp://%[1]s:3478"]
  relay_ports: "40000-40999"
  secrets: ["partition-turn-secret-0123456789"]
  credentials_per_minute: 100000
  credentials_burst: 10000
signaling:
  max_connections_per_ip: 10000
  max_peers_per_room: 50
  rooms: {%[7]s}
metrics: {listen: "127.0.0.1:9464"}
shutdown_grace: 1s
log: {level: %[6]s}
state_dir: %[2]q
cluster:
  node: %[3]s
  listen: "%[1]s:6222"
  secret_file: %[4]q
  routes: [%[5]s]
%[8]s
`, h.Addr, t.TempDir(), n.name, key, strings.Join(routes, ", "), logLevel(), rooms, extra)
		if err := os.WriteFile(n.cfg, []byte(yml), 0o600); err != nil {
			t.Fatal(err)
		}
		n.start(t)
		c.nodes = append(c.nodes, n)
	}
	c.waitHealthy(t, 90*time.Second)
	return c
}

// logLevel is the nodes' log level: debug, or ICEBOX_PARTITION_LOG.
// Debug holds each change to a node's view of the others' peers
// ("cluster view: …"), nats-server's notices and the cluster's retries,
// about 50 KB a node a run: a failure prints it whole, so a schedule
// that fails once in many runs says how. ICEBOX_PARTITION_LOGDIR, when
// set, is a folder each node's whole log is written to at the end, pass
// or fail.
func logLevel() string {
	if l := os.Getenv("ICEBOX_PARTITION_LOG"); l != "" {
		return l
	}
	return "debug"
}

// start runs the node's icebox until t ends.
func (n *node) start(t *testing.T) {
	t.Helper()
	args := []string{iceboxBin, "-config", n.cfg}
	if n.clockOffset != 0 {
		s := fmt.Sprint(int64(n.clockOffset / time.Second))
		args = append([]string{"unshare", "--time", "--monotonic", s, "--boottime", s}, args...)
	}
	cmd := n.host.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=2")
	pr, pw := io.Pipe()
	cmd.Stderr, cmd.Stdout = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n.mu.Lock()
	n.cmd, n.done = cmd, make(chan struct{})
	n.mu.Unlock()
	done := n.done
	go func() {
		buf := make([]byte, 32<<10)
		for {
			k, err := pr.Read(buf)
			n.mu.Lock()
			n.log.Write(buf[:k])
			n.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() {
		_ = cmd.Wait()
		pw.Close()
		close(done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGCONT)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("node %s did not stop on SIGTERM", n.name)
		}
		if dir := os.Getenv("ICEBOX_PARTITION_LOGDIR"); dir != "" {
			name := strings.ReplaceAll(t.Name(), "/", "-") + "-" + n.name + ".log"
			if err := os.WriteFile(filepath.Join(dir, name), []byte(n.logText()), 0o644); err != nil {
				t.Error(err)
			}
		}
		if t.Failed() {
			lines := 200
			if logLevel() != "info" {
				lines = math.MaxInt32
			}
			t.Logf("node %s log:\n%s", n.name, n.logTail(lines))
		}
	})
}

// signal sends sig to the node's process.
func (n *node) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("node %s: %s: %v", n.name, sig, err)
	}
}

func (n *node) logText() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.log.String()
}

func (n *node) logTail(lines int) string {
	l := strings.Split(n.logText(), "\n")
	return strings.Join(l[max(0, len(l)-lines):], "\n")
}

// status is the node's GET /cluster (its metrics listener, on the
// node's own loopback).
type status struct {
	Ready    bool `json:"ready"`
	Replicas int  `json:"replicas"`
	InSync   int  `json:"in_sync"`
	Nodes    []struct {
		Name  string `json:"name"`
		Self  bool   `json:"self"`
		Alive bool   `json:"alive"`
	} `json:"nodes"`
}

func (n *node) status() (status, error) {
	var st status
	// The node gives JetStream 2 s to answer within its status.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:9464/cluster", nil)
	resp, err := n.host.HTTPClient(nil).Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	return st, json.NewDecoder(resp.Body).Decode(&st)
}

// metric is the value of the metric named name (no labels) on the
// node's /metrics, -1 when it cannot be read.
func (n *node) metric(name string) float64 {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://127.0.0.1:9464/metrics", nil)
	resp, err := n.host.HTTPClient(nil).Do(req)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

// alive is the names of the nodes n takes for alive, itself included,
// and whether n is ready with the rooms bucket on three replicas, all
// three in sync.
func (n *node) alive() ([]string, bool) {
	st, err := n.status()
	if err != nil {
		return nil, false
	}
	st.Ready = st.Ready && st.Replicas == 3 && st.InSync == 3
	var names []string
	for _, o := range st.Nodes {
		if o.Alive || o.Self {
			names = append(names, o.Name)
		}
	}
	slices.Sort(names)
	return names, st.Ready
}

// waitHealthy waits until every node is ready, sees all three alive and
// has the rooms bucket on three replicas in sync (a bucket on one node
// stops with that node, and one whose third copy is still catching up
// loses its quorum when either other node is cut off).
func (c *cluster) waitHealthy(t *testing.T, within time.Duration) {
	t.Helper()
	testenv.EventuallyWhy(t, within, "every node ready and seeing a, b and c alive", c.unhealthy)
}

// unhealthy describes the first node that is not ready with the bucket
// on three replicas in sync, or does not see all three alive; "" when
// none.
func (c *cluster) unhealthy() string {
	for _, n := range c.nodes {
		if names, ready := n.alive(); !ready || !slices.Equal(names, []string{"a", "b", "c"}) {
			return fmt.Sprintf("node %s ready %v, sees %v", n.name, ready, names)
		}
	}
	return ""
}

// waitSees waits until n takes exactly names (itself included) for alive.
func (c *cluster) waitSees(t *testing.T, n *node, within time.Duration, names ...string) {
	t.Helper()
	slices.Sort(names)
	testenv.Eventually(t, within, fmt.Sprintf("node %s seeing %v alive", n.name, names), func() bool {
		got, _ := n.alive()
		return slices.Equal(got, names)
	})
}
