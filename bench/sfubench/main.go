// Command sfubench measures icebox's SFU: it runs icebox with an sfu:
// section on 127.0.0.1, joins N pion publishers to one SFU room, each
// sending a VP8 simulcast camera (the q, h and f clips of sfu/testdata at
// 15 frame/s) and an Opus-like microphone (one 3-byte frame per 20 ms),
// and M subscribers, each taking layer f of one stage publisher and q of
// the rest through `layer` messages. It reports the server's CPU time per
// forwarded packet and per forwarded Mbit/s (from /proc/<pid>/stat and
// icebox_sfu_forwarded_{packets,bytes}_total), its resident memory per
// participant, and join → first frame: from a subscriber's welcome to its
// first RTP packet of each publisher's camera (p50, p95, max).
//
//	go run ./bench/sfubench -publishers 5 -subscribers 5 -duration 10s
//
// It also counts the RTP packets the subscribers received, and gives the
// server's CPU time per packet received: a figure it can give for any
// SFU. -galene runs Galène (built from its public source) after icebox on
// the same load, through Galène's protocol (galene-protocol.md): a
// publisher offers its camera and microphone as one stream, with two
// layers (f, then q: Galène forwards the first and the last), and each
// subscriber asks for every stream's low layer ("video-low") and for the
// stage publisher's high one ("video"). -layers qf makes icebox's
// publishers send those two layers too, for a like-for-like run.
//
// -meeting makes the publishers the room, as in a meeting where everyone
// has a camera: each also takes f of one stage publisher and q of the
// rest. -speakers K leaves K microphones speaking and the others silent
// with Opus DTX (a frame per 400 ms, as browsers send silence). The
// figure "received … of the N the streams they asked for carry" says
// whether the server kept up: N is what the subscribers' choices add up
// to, from the clips' packets. -server-cpu pins icebox to one CPU, so a
// run under taskset on the other CPU tells whether a room fits in one
// core:
//
//	go build -o /tmp/sfubench ./bench/sfubench
//	taskset -c 1 /tmp/sfubench -meeting -publishers 25 -subscribers 0 -speakers 2 -server-cpu 0
//
// Galène's ICE leaves out loopback addresses, so the Galène run needs an
// address of its own: run sfubench in a network namespace made for it,
// with an interface of its own (a veth pair with both ends inside it; a
// dummy interface does as well where the kernel has that module), and
// name that address with -galene-ip. Traffic then stays inside the
// namespace:
//
//	ip netns add sfubench
//	ip -n sfubench link set lo up
//	ip -n sfubench link add va type veth peer name vb
//	ip -n sfubench addr add 10.99.0.1/24 dev va
//	ip -n sfubench link set va up
//	ip -n sfubench link set vb up
//	ip netns exec sfubench go run ./bench/sfubench -layers qf \
//		-galene /path/to/galene -galene-ip 10.99.0.1
//
// Everything else stays on 127.0.0.1.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"

	"github.com/icebox-project/icebox/bench/internal/proc"
	"github.com/icebox-project/icebox/internal/sfutest"
	"github.com/icebox-project/icebox/signaling/sigclient"
	"github.com/icebox-project/icebox/signaling/wire"
)

const room = "bench"

func main() {
	pubs := flag.Int("publishers", 5, "publishers (camera and microphone)")
	subs := flag.Int("subscribers", 5, "subscribers (f of the stage publisher, q of the rest)")
	duration := flag.Duration("duration", 10*time.Second, "measurement time, after every subscriber receives every camera")
	binary := flag.String("icebox", "", "icebox binary (default: build ./cmd/icebox)")
	layers := flag.String("layers", "qhf", "the camera layers icebox's publishers send: qhf, or qf (the two Galène takes)")
	galene := flag.String("galene", "", "a galene binary: also run Galène, after icebox, on the same load (needs -galene-ip)")
	galeneIP := flag.String("galene-ip", "", "the one address, not loopback, that Galène's and its clients' ICE may use: one inside a network namespace made for the run (see the package doc)")
	meeting := flag.Bool("meeting", false, "the publishers are the room: each also takes f of a stage publisher (pub-0's camera; pub-0 takes pub-1's) and q of the rest, and counts as a subscriber; -subscribers may be 0")
	speakers := flag.Int("speakers", -1, "how many publishers speak (a microphone frame every 20 ms); the others are silent, with Opus DTX (a frame every 400 ms); -1: all")
	serverCPU := flag.Int("server-cpu", -1, "run icebox on this CPU alone (taskset -c); run sfubench itself under taskset on the others, so that the clients leave that CPU to the server")
	flag.Parse()
	minSubs := 1
	if *meeting {
		minSubs = 0
	}
	if *pubs < 1 || *subs < minSubs || *pubs+*subs > 50 || (*meeting && *pubs < 2) {
		fmt.Fprintln(os.Stderr, "sfubench: -publishers at least 1 (2 with -meeting), -subscribers at least 1 (0 with -meeting), at most 50 together (sfu.max_peers_per_room)")
		os.Exit(2)
	}
	if *galene != "" && (*meeting || *speakers >= 0 || *serverCPU >= 0) {
		fmt.Fprintln(os.Stderr, "sfubench: -meeting, -speakers and -server-cpu are for icebox alone, not with -galene")
		os.Exit(2)
	}
	if *speakers < 0 || *speakers > *pubs {
		*speakers = *pubs
	}
	var order []int
	switch *layers {
	case "qhf":
		order = []int{0, 1, 2}
	case "qf":
		order = []int{0, 2}
	default:
		fmt.Fprintln(os.Stderr, "sfubench: -layers: qhf or qf")
		os.Exit(2)
	}
	if *galene != "" && net.ParseIP(*galeneIP).To4() == nil {
		fmt.Fprintln(os.Stderr, "sfubench: -galene needs -galene-ip, an IPv4 address of this namespace (Galène's ICE leaves out loopback)")
		os.Exit(2)
	}
	o := options{meeting: *meeting, speakers: *speakers, serverCPU: *serverCPU}
	if err := run(*pubs, *subs, *duration, *binary, order, *galene, *galeneIP, o); err != nil {
		fmt.Fprintln(os.Stderr, "sfubench:", err)
		os.Exit(1)
	}
}

func freePort(network string) int {
	if network == "udp" {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// options shape icebox's run: see the flags.
type options struct {
	meeting   bool
	speakers  int
	serverCPU int // -1: anywhere
}

func run(nPubs, nSubs int, duration time.Duration, binary string, layers []int, galene, galeneIP string, o options) error {
	dir, err := os.MkdirTemp("", "sfubench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if binary, err = proc.IceboxBinary(dir, binary); err != nil {
		return err
	}
	clips, err := readClips()
	if err != nil {
		return err
	}
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", freePort("tcp"))
	yml := fmt.Sprintf(`public_ip: 127.0.0.1
http: {listen: "127.0.0.1:0"}
turn: {listen: ["udp://127.0.0.1:0"], secrets: ["sfubench-secret-0123456789"], credentials_per_minute: -1}
signaling: {max_peers_per_room: 50, max_connections_per_ip: -1, rooms: {%s: {media: sfu}}}
sfu: {listen: ["udp://127.0.0.1:%d"], max_peers_per_room: 50}
metrics: {listen: %q}
log: {level: warn}
state_dir: %q
`, room, freePort("udp"), metricsAddr, dir)
	cfg := filepath.Join(dir, "icebox.yaml")
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		return err
	}
	args := []string{binary, "-config", cfg, "-log-level", "info"}
	if o.serverCPU >= 0 {
		args = append([]string{"taskset", "-c", strconv.Itoa(o.serverCPU)}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
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
	baseRSS := proc.RSSKiB(pid)
	url := "ws://" + addr + "/ws"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	var all []*peer
	defer func() {
		for _, p := range all {
			p.close()
		}
	}()
	var pubIDs []string
	var pubsList, subsList []*peer
	var got atomic.Int64
	for i := range nPubs {
		p, err := dial(ctx, url, fmt.Sprintf("pub-%d", i), "")
		if err != nil {
			return err
		}
		all = append(all, p)
		pubsList = append(pubsList, p)
		pubIDs = append(pubIDs, p.id)
	}
	stage := pubIDs[0]
	if o.meeting {
		// Everyone is in the room to see the others: pub-0 has pub-1 on
		// its stage, the rest pub-0.
		for i, p := range pubsList {
			on := pubIDs[0]
			if i == 0 {
				on = pubIDs[1]
			}
			p.setStage(on, &got)
			subsList = append(subsList, p)
		}
	}
	for i, p := range pubsList {
		if err := p.publish(clips, layers, i < o.speakers); err != nil {
			return err
		}
	}
	for j := range nSubs {
		p, err := dial(ctx, url, fmt.Sprintf("sub-%d", j), stage)
		if err == nil {
			p.got = &got
		}
		if err != nil {
			return err
		}
		all = append(all, p)
		subsList = append(subsList, p)
	}
	cameras := func(p *peer) int {
		if p.publisher {
			return nPubs - 1
		}
		return nPubs
	}
	joins, err := awaitEveryCamera("icebox", subsList, cameras, func() string {
		var which []string
		for _, s := range subsList {
			for _, id := range pubIDs {
				if id != s.id && !s.hasFirst(id) {
					which = append(which, s.name+"←"+id)
				}
			}
		}
		return strings.Join(which[:min(len(which), 10)], " ")
	})
	if err != nil {
		return err
	}
	var receivers []receiver
	for _, p := range subsList {
		r := receiver{self: slices.Index(pubsList, p), stage: 0}
		if r.self == 0 {
			r.stage = 1
		}
		receivers = append(receivers, r)
	}
	expected := expectedRate(clips, layers, nPubs, o.speakers, receivers)
	err = measure("icebox", pid, baseRSS, nPubs, nSubs, duration, joins, expected, func() counters {
		c := scrape(metricsAddr)
		c.received = float64(got.Load())
		return c
	})
	if err != nil || galene == "" {
		return err
	}
	// Galène after icebox, with icebox and its clients gone.
	for _, p := range all {
		p.close()
	}
	all = nil
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	return runGalene(galene, galeneIP, nPubs, nSubs, duration, clips)
}

// measure waits for layer requests to settle, then measures server pid
// for duration and prints its CPU per packet the subscribers received
// (and, where the server counts them, per packet and per Mbit/s it
// forwarded), its memory per participant and the join → first camera
// packet times.
func measure(name string, pid, baseRSS, nPubs, nSubs int, duration time.Duration, joins []time.Duration, expected float64, count func() counters) error {
	slices.Sort(joins)
	time.Sleep(2 * time.Second)
	cpu0, m0 := proc.CPUSeconds(pid), count()
	t0 := time.Now()
	time.Sleep(duration)
	cpu1, m1 := proc.CPUSeconds(pid), count()
	elapsed := time.Since(t0).Seconds()
	rss := proc.RSSKiB(pid)

	pkts := m1.packets - m0.packets
	received := m1.received - m0.received
	mbits := (m1.bytes - m0.bytes) * 8 / 1e6
	cpu := cpu1 - cpu0
	var load string
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	fmt.Printf("%s: %d publishers x %d subscribers, %.1f s, load average %s\n", name, nPubs, nSubs, elapsed, load)
	fmt.Printf("  received by the subscribers: %.0f packet/s, %.1f%% of the %.0f the streams they asked for carry; server CPU %.1f%% of a core, %.1f µs per packet received\n",
		received/elapsed, 100*received/elapsed/expected, expected, 100*cpu/elapsed, cpu/max(received, 1)*1e6)
	if pkts > 0 && mbits > 0 {
		fmt.Printf("  forwarded (the server's count): %.0f packet/s, %.2f Mbit/s (RTP payload)\n", pkts/elapsed, mbits/elapsed)
		fmt.Printf("  CPU per forwarded packet: %.1f µs; per forwarded Mbit/s: %.1f%% of a core\n",
			cpu/pkts*1e6, 100*(cpu/elapsed)/(mbits/elapsed))
	}
	fmt.Printf("  RSS: %d KiB idle, %d KiB with %d participants: %.0f KiB per participant\n",
		baseRSS, rss, nPubs+nSubs, float64(rss-baseRSS)/float64(nPubs+nSubs))
	if len(joins) > 0 {
		fmt.Printf("  join -> first camera packet (%d pairs): p50 %s, p95 %s, max %s\n", len(joins),
			pct(joins, 50), pct(joins, 95), joins[len(joins)-1].Round(time.Millisecond))
	}
	return nil
}

func pct(d []time.Duration, p int) time.Duration {
	return d[min(len(d)-1, len(d)*p/100)].Round(time.Millisecond)
}

// counters are packets and bytes a server forwarded (by its own count),
// and RTP packets its subscribers received.
type counters struct{ packets, bytes, received float64 }

// scrape reads the SFU's forwarded packet and byte counters, audio and
// video together.
func scrape(addr string) counters {
	var c counters
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return c
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		v, _ := strconv.ParseFloat(f[1], 64)
		switch {
		case strings.HasPrefix(line, "icebox_sfu_forwarded_packets_total{"):
			c.packets += v
		case strings.HasPrefix(line, "icebox_sfu_forwarded_bytes_total{"):
			c.bytes += v
		}
	}
	return c
}

// readClips returns the frames of sfu/testdata/{q,h,f}.ivf.
func readClips() ([3][][]byte, error) {
	var clips [3][][]byte
	for i, rid := range sfutest.LayerRIDs {
		f, err := os.Open(filepath.Join("sfu", "testdata", rid+".ivf"))
		if err != nil {
			return clips, err
		}
		r, _, err := ivfreader.NewWith(f)
		if err != nil {
			f.Close()
			return clips, err
		}
		for {
			frame, _, err := r.ParseNextFrame()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				f.Close()
				return clips, err
			}
			clips[i] = append(clips[i], frame)
		}
		f.Close()
	}
	return clips, nil
}

// subscriber is what the wait for cameras reads of a subscriber, on
// either server.
type subscriber interface {
	// firstCount is how many cameras it has had a packet of.
	firstCount() int
	// firstFrames is, per camera, the time from its join to that packet.
	firstFrames() []time.Duration
}

// awaitEveryCamera waits up to 60 s for every one of subs to receive a
// packet of each of cameras(s) cameras, and returns the times from join
// to those first packets. On timeout the error names server and ends
// with which(), what is still missing.
func awaitEveryCamera[S subscriber](server string, subs []S, cameras func(S) int, which func() string) ([]time.Duration, error) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		missing := 0
		for _, s := range subs {
			missing += cameras(s) - s.firstCount()
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s: after 60 s, %d subscriber-camera pairs still without a packet: %s", server, missing, which())
		}
		time.Sleep(100 * time.Millisecond)
	}
	var joins []time.Duration
	for _, s := range subs {
		joins = append(joins, s.firstFrames()...)
	}
	return joins, nil
}

// peer is one participant: a sigclient connection and a pion peer
// connection that offers, adding the recvonly sections the SFU asks for.
type peer struct {
	name  string
	id    string
	c     *sigclient.Client
	pc    *webrtc.PeerConnection
	stage string        // under mu: the publisher whose camera this subscriber takes at f
	got   *atomic.Int64 // RTP packets received, all subscribers (nil: a publisher not in -meeting)
	// publisher: it publishes (its own camera is not among those it
	// receives).
	publisher bool
	stop      chan struct{}
	wg        sync.WaitGroup

	negMu   sync.Mutex
	pending bool   // an offer awaits its answer
	want    [2]int // audio and video sections asked for while pending

	mu       sync.Mutex
	joined   time.Time
	first    map[string]time.Duration // by publisher peer id
	layerSet map[string]bool          // video tracks a layer was sent for
}

func dial(ctx context.Context, url, name, stage string) (*peer, error) {
	c, err := sigclient.Dial(ctx, url, sigclient.DialOptions{Buffer: 256})
	if err != nil {
		return nil, err
	}
	// VP8 and Opus only, as a page that sets its codec preferences: with
	// pion's default codecs a subscriber's offer for 24 publishers' 48
	// media sections is over the 64 KiB message limit of /ws.
	m := &webrtc.MediaEngine{}
	fb := []webrtc.RTCPFeedback{{Type: "goog-remb"}, {Type: "ccm", Parameter: "fir"}, {Type: "nack"}, {Type: "nack", Parameter: "pli"}}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000, RTCPFeedback: fb}, PayloadType: 96}, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, err
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}, PayloadType: 111}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(m); err != nil {
		return nil, err
	}
	if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.AudioLevelURI}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, err
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	p := &peer{name: name, c: c, pc: pc, stage: stage, stop: make(chan struct{}),
		first: map[string]time.Duration{}, layerSet: map[string]bool{}}
	pc.OnTrack(p.onTrack)
	p.joined = time.Now()
	w, err := c.Join(ctx, wire.Join{Room: room, Name: name})
	if err != nil {
		pc.Close()
		c.Close()
		return nil, fmt.Errorf("join as %s: %w", name, err)
	}
	if w.Media != wire.MediaSFU {
		return nil, fmt.Errorf("room %s: media %q, want sfu", room, w.Media)
	}
	p.id = w.ID
	p.wg.Add(1)
	go p.read(ctx)
	return p, nil
}

func (p *peer) close() {
	close(p.stop)
	p.pc.Close()
	p.c.Close()
	p.wg.Wait()
}

func (p *peer) onTrack(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	owner := strings.TrimSuffix(tr.ID(), "-camera")
	p.mu.Lock()
	got := p.got
	p.mu.Unlock()
	for first := true; ; first = false {
		if _, _, err := tr.ReadRTP(); err != nil {
			return
		}
		if got != nil {
			got.Add(1)
		}
		if first && tr.Kind() == webrtc.RTPCodecTypeVideo {
			p.mu.Lock()
			if _, ok := p.first[owner]; !ok {
				p.first[owner] = time.Since(p.joined)
			}
			p.mu.Unlock()
		}
	}
}

func (p *peer) firstCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.first)
}

func (p *peer) hasFirst(id string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.first[id]
	return ok
}

func (p *peer) firstFrames() []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	var d []time.Duration
	for _, v := range p.first {
		d = append(d, v)
	}
	return d
}

func (p *peer) read(ctx context.Context) {
	defer p.wg.Done()
	for {
		m, err := p.c.Receive(ctx)
		if errors.Is(err, wire.ErrMalformed) {
			continue
		}
		if err != nil {
			return
		}
		switch m := m.(type) {
		case *wire.Signal:
			if m.From == wire.SFUPeer {
				p.fromSFU(m.Data)
			}
		case *wire.Tracks:
			p.chooseLayers(m.Tracks)
		case *wire.Error:
			fmt.Fprintf(os.Stderr, "sfubench: %s: %s: %s\n", p.name, m.Code, m.Message)
		}
	}
}

// chooseLayers asks for f of the stage publisher's camera and q of the
// others', once per track.
func (p *peer) chooseLayers(tracks []wire.TrackInfo) {
	for _, t := range tracks {
		if t.Kind != "video" {
			continue
		}
		p.mu.Lock()
		done := p.layerSet[t.Track]
		p.layerSet[t.Track] = true
		p.mu.Unlock()
		if done {
			continue
		}
		p.mu.Lock()
		layer := "q"
		if t.Peer == p.stage {
			layer = "f"
		}
		p.mu.Unlock()
		_ = p.c.Send(&wire.Layer{Track: t.Track, Layer: layer})
	}
}

func (p *peer) fromSFU(raw json.RawMessage) {
	var data struct {
		Renegotiate *struct {
			Audio int `json:"audio"`
			Video int `json:"video"`
		} `json:"renegotiate"`
		SDP *webrtc.SessionDescription `json:"sdp"`
	}
	if json.Unmarshal(raw, &data) != nil {
		return
	}
	p.negMu.Lock()
	defer p.negMu.Unlock()
	if r := data.Renegotiate; r != nil {
		p.want[0] += r.Audio
		p.want[1] += r.Video
		if !p.pending {
			p.offerLocked()
		}
		return
	}
	if data.SDP == nil {
		return
	}
	if err := p.pc.SetRemoteDescription(*data.SDP); err != nil {
		fmt.Fprintf(os.Stderr, "sfubench: %s: the SFU's answer: %v\n", p.name, err)
	}
	p.pending = false
	if p.want != [2]int{} {
		p.offerLocked()
	}
}

// offerLocked adds the recvonly sections asked for and offers.
func (p *peer) offerLocked() {
	for i, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		for range p.want[i] {
			_, _ = p.pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
		}
	}
	p.want = [2]int{}
	offer, err := p.pc.CreateOffer(nil)
	if err != nil {
		fmt.Fprintf(os.Stderr, "sfubench: %s: offer: %v\n", p.name, err)
		return
	}
	gathered := webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(offer); err != nil {
		fmt.Fprintf(os.Stderr, "sfubench: %s: local description: %v\n", p.name, err)
		return
	}
	<-gathered
	p.pending = true
	_ = p.c.Signal(wire.SFUPeer, map[string]any{"sdp": p.pc.LocalDescription()})
}

// setStage makes p, a publisher, a subscriber too (-meeting), taking f
// of stage's camera; it counts what it receives in got.
func (p *peer) setStage(stage string, got *atomic.Int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stage, p.got = stage, got
}

// publish adds a VP8 simulcast camera of layers (indexes into
// sfutest.LayerRIDs; mid and RTP stream id in header extensions, RFC 8843
// and RFC 8852, as browsers send them) and an Opus microphone, speaking
// or silent, and offers them.
func (p *peer) publish(clips [3][][]byte, layers []int, speaking bool) error {
	p.publisher = true
	if _, err := sfutest.NewCameraLayers(p.pc, p.name, clips, layers, p.stop, &p.wg); err != nil {
		return err
	}
	if err := addMicrophone(p.pc, p.name, speaking, p.stop, &p.wg); err != nil {
		return err
	}
	p.negMu.Lock()
	defer p.negMu.Unlock()
	p.offerLocked()
	return nil
}

// Microphone packet rates: speaking, a frame per 20 ms; silent, Opus's
// discontinuous transmission (DTX, RFC 7587 §3.1.3) keeps one frame per
// 400 ms.
const (
	speakingPerSecond = 50
	silentPerSecond   = 2.5
)

// addMicrophone adds an Opus-like microphone to pc on a sendonly
// section, until stop is closed: speaking, one 3-byte frame per 20 ms at
// audio level -40 dBov (RFC 6464); silent, one per 400 ms at -127 dBov.
func addMicrophone(pc *webrtc.PeerConnection, streamID string, speaking bool, stop <-chan struct{}, wg *sync.WaitGroup) error {
	mic, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "mic", streamID)
	if err != nil {
		return err
	}
	micTr, err := pc.AddTransceiverFromTrack(mic, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		return err
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		every, level := 20*time.Millisecond, byte(40)
		if !speaking {
			every, level = 400*time.Millisecond, 127
		}
		tick := time.NewTicker(every)
		defer tick.Stop()
		var seq uint16
		var ts uint32
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			seq++
			ts += uint32(48 * every.Milliseconds())
			pk := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: ts}, Payload: []byte{0xf8, 0xff, 0xfe}}
			if id := extID(micTr.Sender(), sdp.AudioLevelURI); id != 0 {
				_ = pk.Header.SetExtension(id, []byte{0x80 | level})
			}
			_ = mic.WriteRTP(pk)
		}
	}()
	return nil
}

// extID is the negotiated id of the header extension uri on s, 0 before
// negotiation.
func extID(s *webrtc.RTPSender, uri string) uint8 {
	for _, e := range s.GetParameters().HeaderExtensions {
		if e.URI == uri {
			return uint8(e.ID)
		}
	}
	return 0
}

// receiver is a subscriber, for expectedRate: the index of the publisher
// it is (-1: none) and of its stage publisher.
type receiver struct{ self, stage int }

// expectedRate is how many RTP packets per second receivers should get
// in all: from each of nPubs publishers but itself, the packets of the
// camera layer it asked for (f of its stage, q of the rest; a layer's
// rate is its clip's at 15 frame/s, packetized as the publishers
// packetize it) and of its microphone (the first speakers speak).
func expectedRate(clips [3][][]byte, layers []int, nPubs, speakers int, receivers []receiver) float64 {
	perSecond := func(l int) float64 {
		pk := rtp.NewPacketizer(1200, 0, 0, &codecs.VP8Payloader{EnablePictureID: true}, rtp.NewRandomSequencer(), 90000)
		n := 0
		for _, f := range clips[l] {
			n += len(pk.Packetize(f, 90000/15))
		}
		return 15 * float64(n) / float64(len(clips[l]))
	}
	q, f := perSecond(slices.Min(layers)), perSecond(slices.Max(layers))
	var total float64
	for _, r := range receivers {
		for i := range nPubs {
			switch {
			case i == r.self:
				continue
			case i == r.stage:
				total += f
			default:
				total += q
			}
			if i < speakers {
				total += speakingPerSecond
			} else {
				total += silentPerSecond
			}
		}
	}
	return total
}
