// Command turnbench measures the TURN relay path: N allocations send
// ChannelData through the relay to a UDP echo peer, at a fixed rate, and
// it reports relayed packets per second and per server CPU-second, loss,
// round-trip times through the relay (client → relay → echo peer → relay
// → client; p50 and p99, in µs) and resident memory per allocation. It
// runs icebox and, when `turnserver` (coturn) is installed, coturn with
// equivalent settings, in the same run, alternating. -coturn417 adds a
// coturn built from source, run with its default flags and with
// --multiplex-peer --udp-gso; its batch occupancy log lines are printed.
// icebox's occupancy histograms (datagrams per receive and send call, GSO
// runs per send) are printed after each of its rounds.
//
//	go run ./bench/turnbench -allocs 100 -rate 20000 -duration 10s -rounds 2
//
// -video is the video-like load: 20 allocations, each with an echo peer
// of its own, sending bursts of 8 datagrams of 1100 bytes.
//
//	go run ./bench/turnbench -video -rate 16000 -coturn417 /path/to/turnserver
//
// -floor adds the floor server (floor_linux.go): icebox's relay sockets,
// loops, system calls and offloads with none of TURN's work, the most
// packets per CPU-second this machine's kernel gives that socket layout.
// It runs as this program started again with -serve-floor.
//
// Everything stays on 127.0.0.1.
package main

import (
	"bufio"
	"cmp"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"maps"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pion/stun/v3"

	"github.com/icebox-project/icebox/bench/internal/proc"
	"github.com/icebox-project/icebox/internal/turntest"
	"github.com/icebox-project/icebox/turnsrv"
)

const (
	secret = "turnbench-secret-0123456789"
	realm  = "icebox"
)

func main() {
	allocs := flag.Int("allocs", 100, "allocations sending traffic")
	rate := flag.Int("rate", 20000, "ChannelData packets per second offered, all allocations together")
	size := flag.Int("size", 200, "payload bytes per packet")
	duration := flag.Duration("duration", 10*time.Second, "traffic duration per round")
	rounds := flag.Int("rounds", 2, "rounds per server, alternating")
	burst := flag.Int("burst", 1, "packets an allocation sends back to back (a video frame is several), at the same average rate")
	memAllocs := flag.Int("mem-allocs", 2000, "allocations for the memory measurement (0 skips it)")
	binary := flag.String("icebox", "", "icebox binary (default: build ./cmd/icebox)")
	flag.IntVar(&udpSockets, "udp-sockets", 0, "icebox turn.udp_sockets (0: icebox's default, one per core)")
	flag.BoolVar(&peerPerAlloc, "peer-per-alloc", false, "give each allocation an echo peer of its own (default: one shared)")
	video := flag.Bool("video", false, "video-like load: -allocs 20 -peer-per-alloc -burst 8 -size 1100")
	flag.StringVar(&coturn417, "coturn417", "", "a coturn 4.17 turnserver binary: also run it with default flags and with --multiplex-peer --udp-gso")
	flag.BoolVar(&noDebian, "no-debian-coturn", false, "leave out the installed turnserver")
	flag.BoolVar(&floor, "floor", false, "also run the floor server: icebox's socket layout, system calls and offloads with none of TURN's work (UDP only)")
	serve := flag.String("serve-floor", "", "run only the floor server on this IPv4 address and port, with -floor-loops loops (what -floor starts)")
	flag.IntVar(&floorLoops, "floor-loops", runtime.NumCPU(), "the floor server's loops and listener sockets (icebox's default turn.udp_sockets: one per core)")
	flag.StringVar(&uclient, "uclient", "", "tcp or tls: relay coturn's turnutils_uclient (-allocs clients, -size bytes, -rate messages/s in all) over TURN over TCP or TLS to turnutils_peer instead")
	flag.Parse()
	if *serve != "" {
		if err := serveFloor(*serve, floorLoops); err != nil {
			fmt.Fprintln(os.Stderr, "turnbench:", err)
			os.Exit(1)
		}
		return
	}
	if *video {
		*allocs, peerPerAlloc, *burst, *size = 20, true, 8, 1100
	}
	if *size < 8 || *size > 1400 {
		fmt.Fprintln(os.Stderr, "turnbench: -size must be 8 to 1400 bytes (the payload carries its send time)")
		os.Exit(2)
	}
	if err := run(*allocs, *rate, *size, *burst, *duration, *rounds, *memAllocs, *binary); err != nil {
		fmt.Fprintln(os.Stderr, "turnbench:", err)
		os.Exit(1)
	}
}

type server struct {
	name    string
	cmd     *exec.Cmd
	addr    string // UDP (and TCP for coturn)
	tcpPort int    // TURN over TCP
	tlsPort int    // TURN over TLS
	metrics string // icebox's metrics address
	log     string // coturn's log file
}

func (s *server) stop() { s.cmd.Process.Signal(syscall.SIGTERM); s.cmd.Wait() }

// freePort returns a free UDP port on 127.0.0.1 outside the relay ports
// (50000-59999): icebox refuses a listener inside its relay range.
func freePort() int {
	c, err := turntest.ListenUDPIn(40000, 49999)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// The flags run reads beside its arguments.
var (
	udpSockets   int    // icebox's turn.udp_sockets
	peerPerAlloc bool   // an echo peer per allocation
	coturn417    string // a coturn 4.17 binary, or ""
	noDebian     bool   // leave out the installed turnserver
	floor        bool   // also run the floor server
	floorLoops   int    // its loops
	uclient      string // "tcp" or "tls": turnutils_uclient's load
	certFile     string // the servers' TLS certificate (uclient tls)
	keyFile      string
)

func startIcebox(binary, dir string) (*server, error) {
	port, mport, tcpPort, tlsPort := freePort(), freeTCPPort(), freeTCPPort(), freeTCPPort()
	cfg := filepath.Join(dir, "icebox.yaml")
	listen, tls := fmt.Sprintf(`"udp://127.0.0.1:%d"`, port), "{}"
	if uclient != "" {
		listen += fmt.Sprintf(`, "tcp://127.0.0.1:%d", "tls://127.0.0.1:%d"`, tcpPort, tlsPort)
		tls = fmt.Sprintf(`{cert_file: %q, key_file: %q}`, certFile, keyFile)
	}
	yml := fmt.Sprintf(`public_ip: 127.0.0.1
http: {listen: "127.0.0.1:0", tls: `+tls+`}
turn:
  listen: [`+listen+`]
  relay_ports: "50000-59999"
  secrets: [%q]
  allow_peers: [127.0.0.0/8]
  max_allocations_per_user: -1
  max_allocations_per_ip: -1
  max_allocations: -1
  udp_sockets: %d
metrics: {listen: "127.0.0.1:%d"}
log: {level: warn}
shutdown_grace: 0s
state_dir: %q
`, secret, udpSockets, mport, dir)
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(binary, "-config", cfg)
	logFile, err := os.Create(filepath.Join(dir, "icebox.log"))
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd.Stderr = logFile
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{name: "icebox", cmd: cmd, addr: fmt.Sprintf("127.0.0.1:%d", port), metrics: fmt.Sprintf("127.0.0.1:%d", mport),
		tcpPort: tcpPort, tlsPort: tlsPort}
	if err := waitSTUN(s.addr); err != nil {
		s.stop()
		log, _ := os.ReadFile(logFile.Name())
		return nil, fmt.Errorf("%w; icebox's log:\n%s", err, log)
	}
	return s, nil
}

// startFloor runs this program as the floor server (serveFloor) on a
// free port.
func startFloor() (*server, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort())
	cmd := exec.Command(exe, "-serve-floor", addr, "-floor-loops", strconv.Itoa(floorLoops))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{name: "floor", cmd: cmd, addr: addr}
	if err := waitSTUN(addr); err != nil {
		s.stop()
		return nil, fmt.Errorf("floor: %w", err)
	}
	return s, nil
}

// freeTCPPort returns a free TCP port on 127.0.0.1.
func freeTCPPort() int {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startCoturn runs the coturn at path (the installed turnserver when
// ""), named name, with equivalent settings and extra flags; with
// occupancy logs when it has them (4.17).
func startCoturn(dir, name, path string, extra ...string) (*server, error) {
	if path == "" {
		var err error
		if path, err = exec.LookPath("turnserver"); err != nil {
			return nil, err
		}
	}
	port, tlsPort := freePort(), freeTCPPort()
	logFile := filepath.Join(dir, name+".log")
	_ = os.Remove(logFile)
	args := append([]string{"-n", "--listening-ip=127.0.0.1", "--listening-port=" + strconv.Itoa(port),
		"--relay-ip=127.0.0.1", "--min-port=50000", "--max-port=59999",
		"--use-auth-secret", "--static-auth-secret=" + secret, "--realm=" + realm,
		"--allow-loopback-peers", "--no-dtls", "--no-cli",
		"--log-file=" + logFile, "--simple-log", "--no-stdout-log", "--pidfile=" + filepath.Join(dir, name+".pid")}, extra...)
	if uclient != "" {
		args = append(args, "--tls-listening-port="+strconv.Itoa(tlsPort), "--cert="+certFile, "--pkey="+keyFile)
	} else {
		args = append(args, "--no-tcp", "--no-tls")
	}
	cmd := exec.Command(path, args...)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{name: name, cmd: cmd, addr: fmt.Sprintf("127.0.0.1:%d", port), log: logFile, tcpPort: port, tlsPort: tlsPort}
	if err := waitSTUN(s.addr); err != nil {
		s.stop()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return s, nil
}

func waitSTUN(addr string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.Dial("udp4", addr)
		if err == nil {
			req := stun.MustBuild(stun.TransactionID, stun.BindingRequest)
			_, _ = c.Write(req.Raw)
			_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			buf := make([]byte, 1500)
			_, err = c.Read(buf)
			c.Close()
			if err == nil {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("no STUN answer from %s", addr)
}

// alloc is one raw TURN client: a UDP socket with an allocation and a
// channel bound to the echo peer.
type alloc struct {
	conn  *net.UDPConn
	frame []byte // ChannelData to send; its payload starts with the send time
	got   atomic.Int64
	rtts  []int32       // round-trip times in µs, written by receive
	done  chan struct{} // closed when receive returns
}

// epoch is the base of the send times carried in payloads.
var epoch = time.Now()

func roundTrip(c *net.UDPConn, m *stun.Message) (*stun.Message, error) {
	buf := make([]byte, 1500)
	for try := 0; try < 10; try++ {
		if _, err := c.Write(m.Raw); err != nil {
			return nil, err
		}
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		n, err := c.Read(buf)
		if err != nil {
			continue
		}
		resp := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
		if err := resp.Decode(); err == nil && resp.TransactionID == m.TransactionID {
			return resp, nil
		}
	}
	return nil, errors.New("no answer")
}

func newAlloc(server string, peer *net.UDPAddr, user string, size int) (*alloc, error) {
	raddr, _ := net.ResolveUDPAddr("udp4", server)
	c, err := net.DialUDP("udp4", nil, raddr)
	if err != nil {
		return nil, err
	}
	transport := stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}}
	resp, err := roundTrip(c, stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), transport))
	if err != nil {
		c.Close()
		return nil, err
	}
	var nonce stun.Nonce
	if err := nonce.GetFrom(resp); err != nil {
		c.Close()
		return nil, fmt.Errorf("no nonce: %w", err)
	}
	username, password, _ := mint(user)
	key := turnsrv.LongTermKey(username, realm, password)
	auth := []stun.Setter{stun.NewUsername(username), stun.NewRealm(realm), nonce, stun.MessageIntegrity(key)}
	resp, err = roundTrip(c, stun.MustBuild(append([]stun.Setter{stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest), transport}, auth...)...))
	if err != nil || resp.Type.Class != stun.ClassSuccessResponse {
		c.Close()
		return nil, fmt.Errorf("allocate: %v %v", resp, err)
	}
	peerAttr := setterFunc(func(m *stun.Message) error {
		return (&stun.XORMappedAddress{IP: peer.IP, Port: peer.Port}).AddToAs(m, stun.AttrXORPeerAddress)
	})
	channel := stun.RawAttribute{Type: stun.AttrChannelNumber, Value: []byte{0x40, 0x00, 0, 0}}
	resp, err = roundTrip(c, stun.MustBuild(append([]stun.Setter{stun.TransactionID, stun.NewType(stun.MethodChannelBind, stun.ClassRequest), channel, peerAttr}, auth...)...))
	if err != nil || resp.Type.Class != stun.ClassSuccessResponse {
		c.Close()
		return nil, fmt.Errorf("channel bind: %v %v", resp, err)
	}
	frame := make([]byte, 4+size)
	binary.BigEndian.PutUint16(frame[0:2], 0x4000)
	binary.BigEndian.PutUint16(frame[2:4], uint16(size))
	return &alloc{conn: c, frame: frame, done: make(chan struct{})}, nil
}

type setterFunc func(*stun.Message) error

func (f setterFunc) AddTo(m *stun.Message) error { return f(m) }

func mint(user string) (string, string, error) {
	username := fmt.Sprintf("%d:%s", time.Now().Add(time.Hour).Unix(), user)
	return username, turnsrv.RESTPassword([]byte(secret), username), nil
}

// receive counts echoed ChannelData and records each round trip, until
// the connection is closed.
func (a *alloc) receive() {
	defer close(a.done)
	buf := make([]byte, 2048)
	_ = a.conn.SetReadDeadline(time.Time{})
	for {
		n, err := a.conn.Read(buf)
		if err != nil {
			return
		}
		if n >= 12 && buf[0]&0xC0 == 0x40 {
			a.got.Add(1)
			sent := time.Duration(binary.BigEndian.Uint64(buf[4:12]))
			a.rtts = append(a.rtts, int32((time.Since(epoch)-sent)/time.Microsecond))
		}
	}
}

// stamp writes the send time into the frame's payload.
func (a *alloc) stamp() {
	binary.BigEndian.PutUint64(a.frame[4:12], uint64(time.Since(epoch)))
}

type result struct {
	sent, got int64
	cpu       float64
	elapsed   time.Duration
	rtts      []int32 // round trips through the relay, µs, sorted
	// rttAvg and rttMax are turnutils_uclient's round trips, µs (it
	// gives no quantiles).
	rttAvg, rttMax int
}

// rttAt is the q quantile (0 to 1) of the sorted round trips, in µs.
func (r result) rttAt(q float64) int32 {
	if len(r.rtts) == 0 {
		return 0
	}
	return r.rtts[min(len(r.rtts)-1, int(q*float64(len(r.rtts))))]
}

func traffic(s *server, nAllocs, rate, size, burst int, duration time.Duration) (result, error) {
	var peers []*net.UDPConn
	defer func() {
		for _, p := range peers {
			p.Close()
		}
	}()
	nPeers := 1
	if peerPerAlloc {
		nPeers = nAllocs
	}
	for range nPeers {
		peer, err := turntest.StartUDPEchoIn(50000, 59999) // the server's address: relay ports only
		if err != nil {
			return result{}, err
		}
		peers = append(peers, peer)
	}
	allocs := make([]*alloc, 0, nAllocs)
	defer func() {
		for _, a := range allocs {
			a.conn.Close()
		}
	}()
	for i := 0; i < nAllocs; i++ {
		a, err := newAlloc(s.addr, peers[i%len(peers)].LocalAddr().(*net.UDPAddr), fmt.Sprintf("u%d", i), size)
		if err != nil {
			return result{}, fmt.Errorf("%s: allocation %d: %w", s.name, i, err)
		}
		allocs = append(allocs, a)
		go a.receive()
	}
	// Warm up, then measure.
	time.Sleep(200 * time.Millisecond)
	cpu0 := proc.CPUSeconds(s.cmd.Process.Pid)
	start := time.Now()
	interval := time.Second / time.Duration(rate) * time.Duration(burst)
	var sent int64
	next := start
	for i := 0; time.Since(start) < duration; i++ {
		a := allocs[i%len(allocs)]
		for b := 0; b < burst; b++ {
			a.stamp()
			if _, err := a.conn.Write(a.frame); err == nil {
				sent++
			}
		}
		next = next.Add(interval)
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
	}
	elapsed := time.Since(start)
	time.Sleep(300 * time.Millisecond)
	cpu := proc.CPUSeconds(s.cmd.Process.Pid) - cpu0
	var got int64
	var rtts []int32
	for _, a := range allocs {
		a.conn.Close()
		<-a.done
		got += a.got.Load()
		rtts = append(rtts, a.rtts...)
	}
	slices.Sort(rtts)
	return result{sent: sent, got: got, cpu: cpu, elapsed: elapsed, rtts: rtts}, nil
}

func memory(s *server, n int) (float64, error) {
	peer, err := turntest.StartUDPEchoIn(50000, 59999)
	if err != nil {
		return 0, err
	}
	defer peer.Close()
	time.Sleep(300 * time.Millisecond)
	base := proc.RSSKiB(s.cmd.Process.Pid)
	var allocs []*alloc
	defer func() {
		for _, a := range allocs {
			a.conn.Close()
		}
	}()
	for i := 0; i < n; i++ {
		a, err := newAlloc(s.addr, peer.LocalAddr().(*net.UDPAddr), fmt.Sprintf("m%d", i), 100)
		if err != nil {
			return 0, fmt.Errorf("%s: allocation %d: %w", s.name, i, err)
		}
		allocs = append(allocs, a)
	}
	time.Sleep(time.Second)
	return float64(proc.RSSKiB(s.cmd.Process.Pid)-base) / float64(n), nil
}

func run(nAllocs, rate, size, burst int, duration time.Duration, rounds, memAllocs int, binary string) error {
	proc.RaiseFDLimit(1 << 20)
	dir, err := os.MkdirTemp("", "turnbench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if binary, err = proc.IceboxBinary(dir, binary); err != nil {
		return err
	}
	if uclient != "" {
		if uclient != "tcp" && uclient != "tls" {
			return fmt.Errorf("-uclient %q: want tcp or tls", uclient)
		}
		if certFile, keyFile, err = selfSigned(dir); err != nil {
			return err
		}
	}
	starters := []func() (*server, error){func() (*server, error) { return startIcebox(binary, dir) }}
	if _, err := exec.LookPath("turnserver"); err == nil && !noDebian {
		starters = append(starters, func() (*server, error) { return startCoturn(dir, "coturn", "") })
	} else if !noDebian {
		fmt.Println("turnserver (coturn) not installed")
	}
	if coturn417 != "" {
		starters = append(starters, func() (*server, error) { return startCoturn(dir, "c417", coturn417, "--udp-recvmmsg-log") })
	}
	if coturn417 != "" && uclient == "" {
		// With clients over TCP its multiplexed peer socket refuses
		// allocations (508), and its batching is for UDP.
		starters = append(starters,
			func() (*server, error) {
				return startCoturn(dir, "c417gso", coturn417, "--multiplex-peer", "--udp-gso",
					"--udp-recvmmsg-log", "--udp-sendmmsg-log")
			})
	}
	if floor && uclient == "" {
		starters = append(starters, startFloor)
	}
	fmt.Printf("machine: %s/%s, %d CPUs, %s; %d allocations, %d-byte payloads, %d packets/s offered in bursts of %d, %s per round\n",
		runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), nAllocs, size, rate, burst, duration)
	var occupancies []string
	fmt.Printf("%-7s %5s %12s %12s %9s %16s %7s %9s %9s\n", "server", "round", "relayed/s", "server CPU", "CPU used", "relayed/CPU-s", "loss", "RTT p50", "RTT p99")
	for r := 1; r <= rounds; r++ {
		for _, start := range starters {
			s, err := start()
			if err != nil {
				return err
			}
			before := s.occupancy()
			var res result
			if uclient != "" {
				res, err = uclientTraffic(s, nAllocs, rate, size, duration)
			} else {
				res, err = traffic(s, nAllocs, rate, size, burst, duration)
			}
			after := s.occupancy()
			s.stop()
			if err != nil {
				return err
			}
			relayed := float64(2 * res.got) // client→peer and peer→client
			rtt := fmt.Sprintf("%7dµs %7dµs", res.rttAt(0.5), res.rttAt(0.99))
			if uclient != "" {
				rtt = fmt.Sprintf("avg %dµs, max %dµs (turnutils_uclient)", res.rttAvg, res.rttMax)
			}
			fmt.Printf("%-7s %5d %12.0f %11.2fs %8.0f%% %16.0f %6.2f%% %s\n", s.name, r,
				relayed/res.elapsed.Seconds(), res.cpu, 100*res.cpu/res.elapsed.Seconds(),
				relayed/res.cpu, 100*float64(res.sent-res.got)/float64(res.sent), rtt)
			occupancies = append(occupancies, s.occupancyReport(r, before, after))
		}
	}
	for _, o := range occupancies {
		if o != "" {
			fmt.Print(o)
		}
	}
	for _, start := range starters {
		if memAllocs <= 0 {
			break
		}
		s, err := start()
		if err != nil {
			return err
		}
		kib, err := memory(s, memAllocs)
		s.stop()
		if err != nil {
			return err
		}
		fmt.Printf("%-7s memory: %.1f KiB per allocation at %d allocations\n", s.name, kib, memAllocs)
	}
	return nil
}

// histogram is one Prometheus histogram series: cumulative counts by
// upper bound, count and sum.
type histogram struct {
	buckets    map[string]float64
	count, sum float64
}

// occupancy scrapes icebox's batch occupancy histograms, by series name
// and direction; nil for other servers.
func (s *server) occupancy() map[string]*histogram {
	if s.metrics == "" {
		return nil
	}
	resp, err := http.Get("http://" + s.metrics + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	out := map[string]*histogram{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		m := occLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		key := m[1] + " " + m[3]
		h := out[key]
		if h == nil {
			h = &histogram{buckets: map[string]float64{}}
			out[key] = h
		}
		v, _ := strconv.ParseFloat(m[5], 64)
		switch m[2] {
		case "_bucket":
			h.buckets[m[4]] = v
		case "_count":
			h.count = v
		case "_sum":
			h.sum = v
		}
	}
	return out
}

var occLine = regexp.MustCompile(`^icebox_turn_relay_(datagrams_per_receive|datagrams_per_send|gso_runs_per_send)(_bucket|_count|_sum)\{direction="(\w+)"(?:,le="([^"]+)")?\} (\S+)$`)

// occupancyReport describes the batching of round r: icebox's histograms
// (the difference of two scrapes), or the last occupancy lines of a
// coturn 4.17 log.
func (s *server) occupancyReport(r int, before, after map[string]*histogram) string {
	var b strings.Builder
	if after != nil {
		fmt.Fprintf(&b, "%s round %d occupancy (mean; calls by upper bound):\n", s.name, r)
		keys := slices.Sorted(maps.Keys(after))
		for _, k := range keys {
			a, o := after[k], before[k]
			if o == nil {
				o = &histogram{buckets: map[string]float64{}}
			}
			calls := a.count - o.count
			if calls == 0 {
				continue
			}
			fmt.Fprintf(&b, "  %-36s mean %6.2f over %8.0f calls:", k, (a.sum-o.sum)/calls, calls)
			bounds := slices.SortedFunc(maps.Keys(a.buckets), func(x, y string) int {
				fx, _ := strconv.ParseFloat(x, 64)
				fy, _ := strconv.ParseFloat(y, 64)
				return cmp.Compare(fx, fy)
			})
			prev := 0.0
			for _, le := range bounds {
				n := a.buckets[le] - o.buckets[le]
				if n-prev > 0 {
					fmt.Fprintf(&b, " ≤%s:%.0f", le, n-prev)
				}
				prev = n
			}
			b.WriteString("\n")
		}
		return b.String()
	}
	if s.log == "" {
		return ""
	}
	data, err := os.ReadFile(s.log)
	if err != nil {
		return ""
	}
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, "mmsg") || strings.Contains(l, "GSO") || strings.Contains(l, "gso") {
			lines = append(lines, "  "+strings.TrimSpace(l))
		}
	}
	if len(lines) == 0 {
		return ""
	}
	return fmt.Sprintf("%s round %d occupancy (its log, last lines):\n%s\n", s.name, r, strings.Join(lines[max(0, len(lines)-4):], "\n"))
}

// uclientTraffic relays coturn's turnutils_uclient through s over TCP or
// TLS (uclient), to turnutils_peer: clients sessions (each a channel),
// size-byte messages, rate messages a second in all, for about duration,
// and measures the server's CPU meanwhile (set-up included).
func uclientTraffic(s *server, clients, rate, size int, duration time.Duration) (result, error) {
	uc, err := coturnTool("turnutils_uclient")
	if err != nil {
		return result{}, err
	}
	peerTool, err := coturnTool("turnutils_peer")
	if err != nil {
		return result{}, err
	}
	pc, err := turntest.ListenUDPIn(50000, 59999) // the server's address: relay ports only
	if err != nil {
		return result{}, err
	}
	peerPort := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()
	peer := exec.Command(peerTool, "-L", "127.0.0.1", "-p", strconv.Itoa(peerPort))
	if err := peer.Start(); err != nil {
		return result{}, err
	}
	defer func() { peer.Process.Kill(); peer.Wait() }()
	perClient := max(1, rate/clients)                                 // messages a second per session
	interval := max(1, 1000/perClient)                                // ms between a session's messages
	n := int(duration / (time.Duration(interval) * time.Millisecond)) // messages per session
	args := []string{"-t", "-c", "-W", secret, "-u", "bench", "-e", "127.0.0.1", "-r", strconv.Itoa(peerPort),
		"-X", "-n", strconv.Itoa(n), "-m", strconv.Itoa(clients), "-l", strconv.Itoa(size), "-z", strconv.Itoa(interval),
		"-p", strconv.Itoa(s.tcpPort)}
	if uclient == "tls" {
		args[len(args)-1] = strconv.Itoa(s.tlsPort)
		args = append(args, "-S")
	}
	args = append(args, "127.0.0.1")
	cpu0 := proc.CPUSeconds(s.cmd.Process.Pid)
	start := time.Now()
	out, err := exec.Command(uc, args...).CombinedOutput()
	elapsed := time.Since(start)
	cpu := proc.CPUSeconds(s.cmd.Process.Pid) - cpu0
	text := string(out)
	if err != nil && !strings.Contains(text, "tot_recv_msgs") {
		return result{}, fmt.Errorf("%s: turnutils_uclient %v: %v\n%s", s.name, args, err, text[max(0, len(text)-2000):])
	}
	num := func(re *regexp.Regexp) float64 {
		m := re.FindAllStringSubmatch(text, -1)
		if m == nil {
			return 0
		}
		v, _ := strconv.ParseFloat(m[len(m)-1][1], 64)
		return v
	}
	res := result{sent: int64(num(totSent)), got: int64(num(totRecv)), cpu: cpu, elapsed: elapsed,
		rttAvg: int(1000 * num(avgRTT)), rttMax: int(1000 * num(maxRTT))}
	return res, nil
}

var (
	totSent = regexp.MustCompile(`tot_send_msgs=(\d+)`)
	totRecv = regexp.MustCompile(`tot_recv_msgs=(\d+)`)
	avgRTT  = regexp.MustCompile(`Average round trip delay ([\d.]+) ms`)
	maxRTT  = regexp.MustCompile(`Average round trip delay [\d.]+ ms; min = \d+ ms, max = (\d+) ms`)
)

// selfSigned writes a self-signed certificate for 127.0.0.1 into dir.
func selfSigned(dir string) (cert, key string, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "turnbench"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return "", "", err
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		return "", "", err
	}
	cert, key = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return "", "", err
	}
	return cert, key, os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
}

// coturnTool finds one of coturn's tools: beside -coturn417 when it is
// there (4.17's uclient binds channels in RFC 8656's range, which 4.17
// insists on), else on PATH.
func coturnTool(name string) (string, error) {
	if coturn417 != "" {
		p := filepath.Join(filepath.Dir(coturn417), name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return exec.LookPath(name)
}
