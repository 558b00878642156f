// Command soak runs icebox under churn for a long time and fails if its
// resident memory, open descriptors, goroutines or live heap grow
// without bound.
//
//	go run ./bench/soak -icebox bin/icebox -duration 60m              # one node
//	go run ./bench/soak -icebox bin/icebox -duration 60m -nodes 3     # a cluster
//	go run ./bench/soak -icebox bin/icebox -duration 3m -nodes 1,3    # both, side by side
//
// -nodes lists setups that run side by side, each a number of icebox
// processes (more than 1 forms a cluster) with churn of its own.
// Churn of each setup, all on 127.0.0.1: -clients WebSocket clients,
// each in a loop that joins a room of its group of 4 (spread over the
// setup's nodes), signals,
// then leaves (1 in 2), drops its connection without a word (1 in 6:
// the peer stays suspended for the 30 s resume window, so rooms hold up
// to 100), or drops it and resumes on any node (1 in 3); -allocs TURN
// clients that allocate, refresh (1 in 2), and then delete their
// allocation or abandon it to expire (1 in 4; lifetime 10 min, at most
// 16 of a setup waiting to expire at once);
// SIGHUP to every node every -hup (credential rotation: the reload
// re-reads the secrets); and a restart of one node of each setup
// (SIGTERM, start again with the same state) every -restart (at most
// half -duration, so a short run restarts once).
//
// Every -sample it reads each node's RSS and open descriptors (/proc)
// and its goroutines and live heap (/metrics: go_goroutines,
// go_gc_heap_live_bytes, the heap the last collection kept), and
// prints a line. At the end, for
// each node's process life, its first fifth (at least a minute) is
// taken for warm-up and the rest, if 5 samples or more, cut in halves: a metric fails when it
// rises over the last half by more than noise (10% of its mean, and at
// least a floor: 16 MiB RSS, 8 MiB heap, 32 descriptors, 64 goroutines)
// without levelling off, at least half as fast as over the first half
// (warm-up slows down; a leak does not). An ERROR line in a node's log
// fails the run too. The table prints each node's values at the start,
// the middle and the end.
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/stun/v3"
	"github.com/pion/turn/v4"

	"github.com/icebox-project/icebox/bench/internal/proc"
	"github.com/icebox-project/icebox/turnsrv"
)

const turnSecret = "soak-turn-secret-0123456789"

func main() {
	duration := flag.Duration("duration", 60*time.Minute, "how long to run")
	nodesFlag := flag.String("nodes", "1", "setups run side by side, comma-separated: each the number of its icebox processes (more than 1 forms a cluster)")
	clients := flag.Int("clients", 64, "WebSocket clients churning at once")
	allocs := flag.Int("allocs", 8, "TURN clients churning at once")
	sample := flag.Duration("sample", 10*time.Second, "sampling period")
	hup := flag.Duration("hup", time.Minute, "SIGHUP period")
	restart := flag.Duration("restart", 10*time.Minute, "period of restarting one node (0: never)")
	binary := flag.String("icebox", "", "icebox binary (default: build ./cmd/icebox)")
	flag.Parse()
	if *restart > *duration/2 {
		// A short run restarts a node once, half way.
		*restart = *duration / 2
	}
	var sizes []int
	for _, f := range strings.Split(*nodesFlag, ",") {
		k, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || k < 1 || k > 9 {
			fmt.Fprintf(os.Stderr, "soak: -nodes %q: a comma-separated list of node counts from 1 to 9\n", *nodesFlag)
			os.Exit(2)
		}
		sizes = append(sizes, k)
	}
	if err := run(*duration, sizes, *clients, *allocs, *sample, *hup, *restart, *binary); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(1)
	}
}

// node is one icebox process (restarted in place: same ports, same state).
type node struct {
	name, cfg                    string
	http, metrics, turn, cluster string
	mu                           sync.Mutex
	cmd                          *exec.Cmd
	life                         int
	// gen counts stops and starts, so it is even while the node stops or
	// is down: an operation that sees it change, or sees it even, met a
	// restart of the node (a stopping node drains: 508 to an Allocate).
	gen  int
	errs []string // unexpected error lines
}

// generation is nd.gen.
func (nd *node) generation() int {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.gen
}

// restartedSince reports whether nd stopped or started since it was at
// generation gen, or is stopping now.
func (nd *node) restartedSince(gen int) bool {
	now := nd.generation()
	return now != gen || now%2 == 0
}

var (
	errorLine = regexp.MustCompile(`level=ERROR`)
)

// relayBand holds every setup's turn.relay_ports (30000+1000*slot up,
// newNode); it overlaps the kernel's ephemeral range, and icebox refuses
// a listener inside its relay ports, so freePort never returns one of
// them.
const relayBandLow, relayBandHigh = 30000, 39999

// freePort is a port on 127.0.0.1 that was free for network ("udp" or
// "tcp") a moment ago, outside relayBand.
func freePort(network string) int {
	for {
		var port int
		if network == "udp" {
			c, err := net.ListenPacket("udp4", "127.0.0.1:0") //nolint:noctx
			if err != nil {
				panic(err)
			}
			port = c.LocalAddr().(*net.UDPAddr).Port
			c.Close()
		} else {
			l, err := net.Listen("tcp4", "127.0.0.1:0") //nolint:noctx
			if err != nil {
				panic(err)
			}
			port = l.Addr().(*net.TCPAddr).Port
			l.Close()
		}
		if port < relayBandLow || port > relayBandHigh {
			return port
		}
	}
}

// newNode writes the configuration of node name into dir, relaying on
// ports 30000+1000*slot up; nNodes > 1 makes it a cluster node with the
// secret in key, routed to seed.
func newNode(dir, key, name string, slot, nNodes int, seed *node) (*node, error) {
	nd := &node{name: name,
		http:    fmt.Sprintf("127.0.0.1:%d", freePort("tcp")),
		metrics: fmt.Sprintf("127.0.0.1:%d", freePort("tcp")),
		turn:    fmt.Sprintf("127.0.0.1:%d", freePort("udp")),
		cluster: fmt.Sprintf("127.0.0.1:%d", freePort("tcp"))}
	state := filepath.Join(dir, name)
	if err := os.MkdirAll(state, 0o700); err != nil {
		return nil, err
	}
	clusterYAML := ""
	if nNodes > 1 {
		routes := ""
		if seed != nil {
			routes = fmt.Sprintf("%q", "nats-route://"+seed.cluster)
		}
		clusterYAML = fmt.Sprintf("cluster: {node: %s, listen: %q, secret_file: %q, routes: [%s]}\n",
			name, nd.cluster, key, routes)
	}
	yml := fmt.Sprintf(`public_ip: 127.0.0.1
http: {listen: %q}
turn: {listen: ["udp://%s"], relay_ports: "%d-%d", secrets: [%q], credentials_per_minute: -1, max_allocations_per_user: 1000}
signaling: {max_peers_per_room: 100, max_connections_per_ip: -1}
metrics: {listen: %q}
shutdown_grace: 1s
log: {level: info}
state_dir: %q
%s`, nd.http, nd.turn, relayBandLow+1000*slot, relayBandLow+999+1000*slot, turnSecret, nd.metrics, state, clusterYAML)
	nd.cfg = filepath.Join(state, "icebox.yaml")
	return nd, os.WriteFile(nd.cfg, []byte(yml), 0o600)
}

// start runs the node and waits until it serves HTTP.
func (nd *node) start(binary string) error {
	cmd := exec.Command(binary, "-config", nd.cfg)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		return err
	}
	nd.mu.Lock()
	nd.cmd = cmd
	nd.life++
	nd.gen++
	nd.mu.Unlock()
	up, exited := make(chan struct{}), make(chan struct{})
	var once sync.Once
	var lastMu sync.Mutex
	var last []string // the log's last lines, for an error
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			lastMu.Lock()
			last = append(last[max(0, len(last)-9):], line)
			lastMu.Unlock()
			if strings.Contains(line, `msg="http listening"`) {
				once.Do(func() { close(up) })
			}
			if errorLine.MatchString(line) {
				nd.mu.Lock()
				nd.errs = append(nd.errs, line)
				nd.mu.Unlock()
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	tail := func() string {
		lastMu.Lock()
		defer lastMu.Unlock()
		return strings.Join(last, "\n")
	}
	select {
	case <-up:
		return nil
	case <-exited:
		return fmt.Errorf("node %s exited at start:\n%s", nd.name, tail())
	case <-time.After(30 * time.Second):
		return fmt.Errorf("node %s did not start within 30 s:\n%s", nd.name, tail())
	}
}

func (nd *node) stop() {
	nd.mu.Lock()
	cmd := nd.cmd
	nd.gen++
	nd.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func (nd *node) pid() int {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.cmd.Process.Pid
}

// point is one sample of one node.
type point struct {
	at                      time.Time
	life                    int
	rssKiB, fds, goroutines int
	heapKiB                 int
}

var metricRe = regexp.MustCompile(`(?m)^(go_goroutines|go_gc_heap_live_bytes) (\S+)$`)

func (nd *node) sample() (point, error) {
	nd.mu.Lock()
	pid, life := nd.cmd.Process.Pid, nd.life
	nd.mu.Unlock()
	p := point{at: time.Now(), life: life, rssKiB: proc.RSSKiB(pid)}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return p, err
	}
	p.fds = len(ents)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+nd.metrics+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return p, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, m := range metricRe.FindAllSubmatch(b, -1) {
		v, _ := strconv.ParseFloat(string(m[2]), 64)
		switch string(m[1]) {
		case "go_goroutines":
			p.goroutines = int(v)
		case "go_gc_heap_live_bytes":
			p.heapKiB = int(v / 1024)
		}
	}
	return p, nil
}

// counters are the counts of one setup's churn, for the log.
type counters struct {
	joins, leaves, drops, resumes, refused, signals, allocs, refreshes, deletes, abandons, allocErrs, refreshErrs atomic.Int64

	mu sync.Mutex
	// failures counts failed allocations and Refreshes by what they met:
	// a restart of their node, or else their error.
	failures map[string]int
}

// failed records a failed operation: op ("allocation" or "refresh"),
// whether its node restarted meanwhile, and its error.
func (o *counters) failed(op string, restarted bool, err error) {
	why := err.Error()
	if restarted {
		why = "its node restarted"
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.failures == nil {
		o.failures = map[string]int{}
	}
	o.failures[op+": "+why]++
}

// failureReport lists the failures by count, most first, one per line.
func (o *counters) failureReport() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for why, n := range o.failures {
		out = append(out, fmt.Sprintf("%6d  %s", n, why))
	}
	slices.SortFunc(out, func(a, b string) int { return strings.Compare(b, a) })
	return out
}

// setup is one group of nodes under churn of its own: a single node or
// a cluster.
type setup struct {
	label    string
	nodes    []*node
	ops      counters
	series   [][]point // by node
	restarts int
	// abandonSlots holds a token per abandoned allocation not yet
	// expired (churnTURN).
	abandonSlots chan struct{}
}

func run(duration time.Duration, sizes []int, nClients, nAllocs int, sample, hup, restart time.Duration, binary string) error {
	proc.RaiseFDLimit(65536)
	dir, err := os.MkdirTemp("", "soak")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if binary, err = proc.IceboxBinary(dir, binary); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "cluster.key"), []byte("soak-cluster-secret-0123456789"), 0o600); err != nil {
		return err
	}
	var setups []*setup
	defer func() {
		for _, st := range setups {
			for _, nd := range st.nodes {
				nd.stop()
			}
		}
	}()
	slot := 0
	for k, size := range sizes {
		st := &setup{label: fmt.Sprintf("%d node", size), abandonSlots: make(chan struct{}, maxAbandoned)}
		if size > 1 {
			st.label += "s"
		}
		setups = append(setups, st)
		sdir := filepath.Join(dir, fmt.Sprintf("setup%d", k))
		for i := range size {
			var seed *node
			if i > 0 {
				seed = st.nodes[0]
			}
			if relayBandLow+999+1000*slot > relayBandHigh {
				return fmt.Errorf("-nodes: more than %d nodes in all", (relayBandHigh-relayBandLow+1)/1000)
			}
			nd, err := newNode(sdir, filepath.Join(dir, "cluster.key"), fmt.Sprintf("n%d", i), slot, size, seed)
			if err != nil {
				return err
			}
			slot++
			if err := nd.start(binary); err != nil {
				return fmt.Errorf("%s: %w", st.label, err)
			}
			st.nodes = append(st.nodes, nd)
		}
		st.series = make([][]point, size)
		if size > 1 {
			// The cluster takes a few seconds to be ready; joins meanwhile are
			// refused and retried by the churn.
			fmt.Printf("soak: a cluster of %d nodes started\n", size)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	var wg sync.WaitGroup
	for _, st := range setups {
		for i := range nClients {
			wg.Go(func() { churnWS(ctx, st.nodes, &st.ops, i) })
		}
		for i := range nAllocs {
			wg.Go(func() { churnTURN(ctx, st.nodes, &st.ops, st.abandonSlots, i) })
		}
	}
	tick := time.NewTicker(sample)
	defer tick.Stop()
	hupT := time.NewTicker(hup)
	defer hupT.Stop()
	var restartC <-chan time.Time
	if restart > 0 {
		rt := time.NewTicker(restart)
		defer rt.Stop()
		restartC = rt.C
	}
	start := time.Now()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-hupT.C:
			for _, st := range setups {
				for _, nd := range st.nodes {
					_ = syscall.Kill(nd.pid(), syscall.SIGHUP)
				}
			}
		case <-restartC:
			if err := restartOne(setups, binary); err != nil {
				cancel()
				wg.Wait()
				return err
			}
		case <-tick.C:
			for _, st := range setups {
				fmt.Println(st.sample(time.Since(start)))
			}
		}
	}
	wg.Wait()
	return judge(setups)
}

// restartOne restarts one node of each setup, the setups side by side.
func restartOne(setups []*setup, binary string) error {
	errs := make([]error, len(setups))
	var wg sync.WaitGroup
	for k, st := range setups {
		nd := st.nodes[st.restarts%len(st.nodes)]
		st.restarts++
		wg.Go(func() {
			nd.stop()
			errs[k] = nd.start(binary)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// sample samples every node of st and describes them and st's churn in
// a line.
func (st *setup) sample(since time.Duration) string {
	var line strings.Builder
	fmt.Fprintf(&line, "%6.0fs %-7s", since.Seconds(), st.label)
	for i, nd := range st.nodes {
		p, err := nd.sample()
		if err != nil {
			fmt.Fprintf(&line, "  %s: %v", nd.name, err)
			continue
		}
		st.series[i] = append(st.series[i], p)
		fmt.Fprintf(&line, "  %s rss %6d KiB fds %4d gor %5d live %6d KiB", nd.name, p.rssKiB, p.fds, p.goroutines, p.heapKiB)
	}
	o := &st.ops
	fmt.Fprintf(&line, "  | joins %d leaves %d drops %d resumes %d refused %d signals %d allocs %d refreshes %d deletes %d abandoned %d alloc-errors %d refresh-errors %d",
		o.joins.Load(), o.leaves.Load(), o.drops.Load(), o.resumes.Load(), o.refused.Load(), o.signals.Load(),
		o.allocs.Load(), o.refreshes.Load(), o.deletes.Load(), o.abandons.Load(), o.allocErrs.Load(), o.refreshErrs.Load())
	return line.String()
}

// judge prints the table and checks each process life's growth (growth).
func judge(setups []*setup) error {
	var failures []string
	fmt.Println("\nsetup    node  when    RSS KiB  fds  goroutines  live heap KiB")
	for _, st := range setups {
		if r := st.ops.failureReport(); len(r) > 0 {
			fmt.Printf("%s: failed allocations and Refreshes, by what they met:\n%s\n", st.label, strings.Join(r, "\n"))
		}
		for i, nd := range st.nodes {
			name := st.label + " " + nd.name
			s := st.series[i]
			if len(s) == 0 {
				failures = append(failures, name+": no samples")
				continue
			}
			for _, k := range []struct {
				label string
				p     point
			}{{"start", s[0]}, {"mid", s[len(s)/2]}, {"end", s[len(s)-1]}} {
				fmt.Printf("%-8s %-5s %-6s %8d %4d %11d %14d\n", st.label, nd.name, k.label, k.p.rssKiB, k.p.fds, k.p.goroutines, k.p.heapKiB)
			}
			fails, notes := growth(name, s)
			failures = append(failures, fails...)
			for _, n := range notes {
				fmt.Println("soak: " + n)
			}
			nd.mu.Lock()
			for _, e := range nd.errs {
				failures = append(failures, name+": error line: "+e)
			}
			nd.mu.Unlock()
		}
	}
	if len(failures) > 0 {
		return errors.New(strings.Join(failures, "\n"))
	}
	fmt.Println("soak: nothing grew past noise; no error lines")
	return nil
}

// metrics are what growth judges, each with its noise floor.
var metrics = []struct {
	name  string
	get   func(point) int
	floor float64
}{
	// RSS's floor is above the collector's swing: in 3-minute runs a
	// node of 70 MiB stood up to 11-14 MiB above its trailing low (nine
	// clean-clone runs), and once its lows rose 12 MiB over the last
	// minute with its live heap flat. A leak of 16 MiB shows in the
	// hour-long soak as well.
	{"RSS KiB", func(p point) int { return p.rssKiB }, 16 << 10},
	{"descriptors", func(p point) int { return p.fds }, 32},
	{"goroutines", func(p point) int { return p.goroutines }, 64},
	{"live heap KiB", func(p point) int { return p.heapKiB }, 8 << 10},
}

// warmUp is the least of a process life's start left out as warm-up:
// the resume window (30 s) fills with suspended peers, and a restarted
// node's clients come back, over about a minute.
const warmUp = time.Minute

// lowsWindow bounds how far back a sample's low reaches: growth judges
// the least value of each metric over a trailing window, what the
// collector leaves, not where a sample fell in its cycle (RSS follows
// the heap, which swings by half its level between collections under
// churn; the live heap rises and falls with the peers suspended in the
// 30 s resume window). The window is an eighth of the life's judged
// span, at least minLowsWindow (one resume window) and at most
// lowsWindow; it reaches into the warm-up, so every judged sample's
// window is full.
const (
	lowsWindow    = time.Minute
	minLowsWindow = 30 * time.Second
)

// life is one process life's samples: all of them, for the lows' windows,
// and judged, those past its warm-up (a suffix of all).
type life struct {
	n           int
	all, judged []point
}

// growth judges each process life of one node's samples s, metric by
// metric, on the lows (lowsOf: the least value over a trailing window):
//
//   - Past its warm-up (its first fifth, at least warmUp; lives with
//     fewer than 5 samples after it are not judged), a life's metric
//     grows when it rises over the last half by more than noise (10% of
//     its mean, at least the metric's floor) and does not level off: its
//     slope over the last half is at least half that over the first.
//   - A run with restarts (several judged lives) compares lives with
//     each other: a growing life is let off when its highest low over its
//     last half is within noise of the highest such low of a life whose
//     metric did not grow. That is a slow warm-up, or a recovery from a
//     stretch of less work (a machine busy elsewhere), to the level the
//     steady lives hold; a leak climbs past it. When every life grows,
//     none is let off.
//
// It returns one line per failure, and one note per life let off.
func growth(name string, s []point) (failures, notes []string) {
	lives := judgedLives(s)
	type verdict struct {
		grows                    bool
		rise, first, last, noise float64
		held                     float64
	}
	for _, m := range metrics {
		vs := make([]verdict, len(lives))
		steadyHeld, haveSteady := 0.0, false
		for i, l := range lives {
			lows := lowsOf(l.all, len(l.all)-len(l.judged), m.get)
			ps := l.judged
			half := len(ps) / 2
			v := &vs[i]
			v.first, v.last = slope(ps[:half], lows[:half]), slope(ps[half:], lows[half:])
			v.rise = v.last * ps[len(ps)-1].at.Sub(ps[half].at).Seconds()
			v.noise = max(m.floor, 0.1*mean(lows))
			v.grows = v.rise > v.noise && v.last >= v.first/2
			v.held = slices.Max(lows[half:])
			if !v.grows {
				steadyHeld, haveSteady = max(steadyHeld, v.held), true
			}
		}
		for i, v := range vs {
			if !v.grows {
				continue
			}
			what := fmt.Sprintf("%s life %d: %s grows %.0f over the last half (%.3f/s; first half %.3f/s), past noise %.0f",
				name, lives[i].n, m.name, v.rise, v.last, v.first, v.noise)
			if haveSteady && v.held <= steadyHeld+v.noise {
				notes = append(notes, fmt.Sprintf("%s, but its highest low %.0f is within noise of the %.0f a steady life held: let off", what, v.held, steadyHeld))
				continue
			}
			failures = append(failures, what)
		}
	}
	return failures, notes
}

// judgedLives splits s by process life, in order, marks each life's
// samples past its warm-up as judged, and keeps the lives with at least
// 5 of them.
func judgedLives(s []point) []life {
	var lives []life
	for _, p := range s {
		if len(lives) == 0 || lives[len(lives)-1].n != p.life {
			lives = append(lives, life{n: p.life})
		}
		l := &lives[len(lives)-1]
		l.all = append(l.all, p)
	}
	judged := lives[:0]
	for _, l := range lives {
		ps := l.all
		from := ps[0].at.Add(max(warmUp, ps[len(ps)-1].at.Sub(ps[0].at)/5))
		for len(ps) > 0 && ps[0].at.Before(from) {
			ps = ps[1:]
		}
		if len(ps) >= 5 {
			l.judged = ps
			judged = append(judged, l)
		}
	}
	return judged
}

// lowsOf is get of each of ps[from:] as its least over a trailing window
// (lowsWindow), which may reach back before from.
func lowsOf(ps []point, from int, get func(point) int) []float64 {
	judged := ps[from:]
	window := min(lowsWindow, max(minLowsWindow, judged[len(judged)-1].at.Sub(judged[0].at)/8))
	lows := make([]float64, len(judged))
	start := 0
	for i, p := range judged {
		for ps[start].at.Before(p.at.Add(-window)) {
			start++
		}
		lo := get(ps[start])
		for _, q := range ps[start+1 : from+i+1] {
			lo = min(lo, get(q))
		}
		lows[i] = float64(lo)
	}
	return lows
}

// slope is the least-squares slope of ys over ps's times, per second.
func slope(ps []point, ys []float64) float64 {
	if len(ps) < 2 {
		return 0
	}
	t0 := ps[0].at
	var sx, sy, sxx, sxy float64
	for i, p := range ps {
		x, y := p.at.Sub(t0).Seconds(), ys[i]
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	n := float64(len(ps))
	d := n*sxx - sx*sx
	if d == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / d
}

func mean(ys []float64) float64 {
	t := 0.0
	for _, y := range ys {
		t += y
	}
	return t / float64(len(ys))
}

// churnWS is one WebSocket client's loop.
func churnWS(ctx context.Context, nodes []*node, ops *counters, i int) {
	rng := rand.New(rand.NewPCG(uint64(i), 7))
	room := fmt.Sprintf("soak-%d", i/4)
	var token string
	for ctx.Err() == nil {
		nd := nodes[rng.IntN(len(nodes))]
		d := websocket.Dialer{HandshakeTimeout: 5 * time.Second}
		conn, _, err := d.DialContext(ctx, "ws://"+nd.http+"/ws", nil)
		if err != nil {
			pause(ctx, 200*time.Millisecond)
			continue
		}
		join := map[string]string{"type": "join", "room": room, "name": fmt.Sprintf("p%d-%d", i, rng.IntN(1000))}
		if token != "" {
			join["resume"] = token
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_ = conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
		var w struct {
			Type, ID, Resume string
			Resumed          bool
			Peers            []struct{ ID string }
		}
		if conn.WriteJSON(join) != nil || conn.ReadJSON(&w) != nil || w.Type != "welcome" {
			ops.refused.Add(1)
			_ = conn.Close()
			token = ""
			pause(ctx, 200*time.Millisecond)
			continue
		}
		if w.Resumed {
			ops.resumes.Add(1)
		} else {
			ops.joins.Add(1)
		}
		token = ""
		for _, p := range w.Peers {
			if conn.WriteJSON(map[string]any{"type": "signal", "to": p.ID, "data": map[string]int{"n": 1}}) == nil {
				ops.signals.Add(1)
			}
		}
		// Read what comes (peer events, signals) while staying a moment.
		_ = conn.SetReadDeadline(time.Now().Add(time.Duration(100+rng.IntN(900)) * time.Millisecond))
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				break
			}
		}
		switch rng.IntN(6) {
		case 0, 1, 2:
			_ = conn.WriteJSON(map[string]string{"type": "leave"})
			_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
			ops.leaves.Add(1)
		case 3:
			ops.drops.Add(1) // abrupt: no close frame, no leave
		default:
			ops.drops.Add(1)
			token = w.Resume // resume, on any node
		}
		_ = conn.UnderlyingConn().Close()
	}
}

// churnTURN is one TURN client's loop: allocate, refresh, then delete or
// abandon. An abandoned allocation lives out its 10-minute lifetime, so
// at most maxAbandoned of a setup's wait to expire at once (an
// abandonment takes a slot, given back when the allocation has
// expired); past it, the allocation is deleted instead. Otherwise they
// would pile up for the first 10 minutes of every process life, and
// past the default cap of 100 allocations per address (every client is
// on 127.0.0.1) nearly every attempt would be refused.
func churnTURN(ctx context.Context, nodes []*node, ops *counters, abandonSlots chan struct{}, i int) {
	rng := rand.New(rand.NewPCG(uint64(i), 11))
	creds, err := turnsrv.NewCredentials("icebox", []string{turnSecret}, time.Hour, nil)
	if err != nil {
		panic(err)
	}
	for ctx.Err() == nil {
		nd := nodes[rng.IntN(len(nodes))]
		gen := nd.generation()
		user, pass, _ := creds.Mint(fmt.Sprintf("soak%d", i), time.Now())
		conn, err := net.ListenPacket("udp4", "127.0.0.1:0") //nolint:noctx
		if err != nil {
			pause(ctx, time.Second)
			continue
		}
		cl, err := turn.NewClient(&turn.ClientConfig{STUNServerAddr: nd.turn, TURNServerAddr: nd.turn, Conn: conn,
			Username: user, Password: pass, Realm: "icebox"})
		if err == nil {
			err = cl.Listen()
		}
		var relay net.PacketConn
		if err == nil {
			relay, err = cl.Allocate()
		}
		if err != nil {
			ops.allocErrs.Add(1)
			ops.failed("allocation", nd.restartedSince(gen), err)
			if cl != nil {
				cl.Close()
			}
			conn.Close()
			pause(ctx, time.Second)
			continue
		}
		ops.allocs.Add(1)
		pause(ctx, time.Duration(1+rng.IntN(5))*time.Second)
		// The client refreshes only at half the lifetime, which the
		// churn never reaches: a Refresh of its own, half the time.
		if rng.IntN(2) == 0 {
			if err := refresh(cl, user, pass); err != nil {
				ops.refreshErrs.Add(1)
				ops.failed("refresh", nd.restartedSince(gen), err)
			} else {
				ops.refreshes.Add(1)
			}
		}
		if rng.IntN(4) == 0 && takeSlot(abandonSlots) {
			// Abandoned: the socket goes, the allocation expires on the
			// server at its lifetime.
			ops.abandons.Add(1)
			cl.Close()
			conn.Close()
			time.AfterFunc(allocationLifetime+10*time.Second, func() { <-abandonSlots })
			continue
		}
		_ = relay.Close() // a Refresh with lifetime 0: deleted
		ops.deletes.Add(1)
		cl.Close()
		conn.Close()
	}
}

// refresh sends a Refresh request for cl's allocation (RFC 8656 §7)
// asking for the default lifetime, authenticated with user and pass: the
// first with a nonce the server did not give, which it answers with 438
// (Stale Nonce) and a nonce of its own (RFC 8489 §9.2.4), then with that.
func refresh(cl *turn.Client, user, pass string) error {
	lifetime := &stun.RawAttribute{Type: stun.AttrLifetime, Value: binary.BigEndian.AppendUint32(nil, 600)}
	realm := cl.Realm()
	nonce := stun.NewNonce("soak")
	for range 2 {
		msg, err := stun.Build(stun.TransactionID, stun.NewType(stun.MethodRefresh, stun.ClassRequest),
			lifetime, stun.Username(user), realm, nonce,
			stun.NewLongTermIntegrity(user, realm.String(), pass), stun.Fingerprint)
		if err != nil {
			return err
		}
		res, err := cl.PerformTransaction(msg, cl.TURNServerAddr(), false)
		if err != nil {
			return err
		}
		if res.Msg.Type.Class == stun.ClassSuccessResponse {
			return nil
		}
		var code stun.ErrorCodeAttribute
		_ = code.GetFrom(res.Msg)
		if code.Code != stun.CodeStaleNonce || nonce.GetFrom(res.Msg) != nil {
			return fmt.Errorf("refresh: %v", code)
		}
	}
	return errors.New("refresh: stale nonce twice")
}

// maxAbandoned is how many abandoned allocations of a setup may wait to
// expire at once; allocationLifetime is how long they wait (RFC 8656
// §7.2: the default lifetime, which the churn's allocations get).
const (
	maxAbandoned       = 16
	allocationLifetime = 10 * time.Minute
)

// takeSlot takes a slot for an abandoned allocation, if one is free.
func takeSlot(slots chan struct{}) bool {
	select {
	case slots <- struct{}{}:
		return true
	default:
		return false
	}
}

func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
