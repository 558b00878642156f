package main

// Galène side by side: the same pion publishers and subscribers, driven
// through Galène's own protocol (galene-protocol.md in its source: a
// WebSocket of JSON messages; each stream its own peer connection, the
// publisher offering its camera, the server offering each stream to each
// subscriber that asked for it).

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"

	"github.com/icebox-project/icebox/bench/internal/proc"
	"github.com/icebox-project/icebox/internal/sfutest"
)

// galeneServer is a Galène process serving the group "bench" to anyone
// (a wildcard user who may present), HTTP only, its media on one UDP
// port, its own TURN server off.
type galeneServer struct {
	cmd  *exec.Cmd
	ws   string // its WebSocket URL
	http string // its base URL
	logf string
}

// stats is Galène's own statistics (its administrative API), for a
// failure's message.
func (g *galeneServer) stats() string {
	req, _ := http.NewRequest("GET", g.http+"/galene-api/v0/.stats", nil)
	req.SetBasicAuth("sfubench", "sfubench")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func startGalene(binary, dir string) (*galeneServer, error) {
	for _, d := range []string{"groups", "data", "static"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	group := `{"wildcard-user": {"password": {"type": "wildcard"}, "permissions": "present"}, "codecs": ["vp8", "opus"], "max-clients": 100}`
	if err := os.WriteFile(filepath.Join(dir, "groups", room+".json"), []byte(group), 0o600); err != nil {
		return nil, err
	}
	// An administrator, for the statistics a failure prints.
	admin := `{"users": {"sfubench": {"password": "sfubench", "permissions": "admin"}}}`
	if err := os.WriteFile(filepath.Join(dir, "data", "config.json"), []byte(admin), 0o600); err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort("tcp"))
	logf := filepath.Join(dir, "galene.log")
	out, err := os.Create(logf)
	if err != nil {
		return nil, err
	}
	defer out.Close()
	cmd := exec.Command(binary, "-insecure", "-http", addr, "-turn", "",
		"-udp-range", fmt.Sprint(freePort("udp")),
		"-data", filepath.Join(dir, "data"), "-groups", filepath.Join(dir, "groups"), "-static", filepath.Join(dir, "static"))
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	g := &galeneServer{cmd: cmd, ws: "ws://" + addr + "/ws", logf: logf, http: "http://" + addr}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/group/" + room + "/.status")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return g, nil
			}
		}
		if time.Now().After(deadline) {
			g.stop()
			log, _ := os.ReadFile(logf)
			return nil, fmt.Errorf("galene did not serve %s within 20 s; its log:\n%s", room, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (g *galeneServer) stop() { g.cmd.Process.Signal(syscall.SIGTERM); g.cmd.Wait() }

// galeneMsg is a message of Galène's protocol (the fields used here).
type galeneMsg struct {
	Type      string                   `json:"type"`
	Kind      string                   `json:"kind,omitempty"`
	ID        string                   `json:"id,omitempty"`
	Source    string                   `json:"source,omitempty"`
	Label     string                   `json:"label,omitempty"`
	Group     string                   `json:"group,omitempty"`
	Username  string                   `json:"username,omitempty"`
	Password  string                   `json:"password,omitempty"`
	Version   []string                 `json:"version,omitempty"`
	SDP       string                   `json:"sdp,omitempty"`
	Candidate *webrtc.ICECandidateInit `json:"candidate,omitempty"`
	Request   any                      `json:"request,omitempty"`
	Value     any                      `json:"value,omitempty"`
	Error     string                   `json:"error,omitempty"`
}

// galeneClient is one participant: publisher (its camera stream up) or
// subscriber (a stream down per publisher, f of the stage publisher's
// camera, the low layer of the rest).
type galeneClient struct {
	name  string
	stage string // the publisher whose high layer this subscriber takes
	api   *webrtc.API
	conn  *websocket.Conn
	wmu   sync.Mutex
	stop  chan struct{}
	wg    sync.WaitGroup

	joined chan struct{}
	mu     sync.Mutex
	pcs    map[string]*webrtc.PeerConnection // by stream id, up and down
	start  time.Time
	first  map[string]time.Duration // by publisher
	got    *atomic.Int64            // RTP packets received, all subscribers
	cam    *sfutest.Camera          // a publisher's camera
	asked  atomic.Int64             // requests made again (requestUntil)
}

func galeneAPI(ip string) (*webrtc.API, error) {
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
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, err
	}
	se := webrtc.SettingEngine{}
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	want := net.ParseIP(ip)
	se.SetIPFilter(func(a net.IP) bool { return a.Equal(want) })
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)), nil
}

func dialGalene(ctx context.Context, url, name, stage, ip string, got *atomic.Int64) (*galeneClient, error) {
	api, err := galeneAPI(ip)
	if err != nil {
		return nil, err
	}
	conn, _, err := websocket.DefaultDialer.DialContext(ctx, url, nil)
	if err != nil {
		return nil, err
	}
	c := &galeneClient{name: name, stage: stage, api: api, conn: conn, stop: make(chan struct{}), joined: make(chan struct{}),
		pcs: map[string]*webrtc.PeerConnection{}, first: map[string]time.Duration{}, got: got, start: time.Now()}
	c.wg.Add(1)
	go c.read()
	if err := c.send(galeneMsg{Type: "handshake", Version: []string{"2"}, ID: name}); err != nil {
		c.close()
		return nil, err
	}
	if err := c.send(galeneMsg{Type: "join", Kind: "join", Group: room, Username: name, Password: "x"}); err != nil {
		c.close()
		return nil, err
	}
	select {
	case <-c.joined:
	case <-time.After(10 * time.Second):
		c.close()
		return nil, fmt.Errorf("galene: %s not joined within 10 s", name)
	}
	if stage != "" { // a subscriber: the low layer of every camera, with audio
		if err := c.request(); err != nil {
			c.close()
			return nil, err
		}
	}
	return c, nil
}

// request asks for the low layer of every camera, with audio.
func (c *galeneClient) request() error {
	return c.send(galeneMsg{Type: "request", Request: map[string][]string{"": {"audio", "video-low"}}})
}

// requestUntil asks again, each second, until c has a stream of each of
// n publishers: Galène sometimes offers nothing after a request made
// just after joining (a close for each stream, then no offer; seen with
// two publishers or more), and answers a later one.
func (c *galeneClient) requestUntil(n int) {
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-c.stop:
				return
			case <-t.C:
			}
			c.mu.Lock()
			have := len(c.pcs)
			c.mu.Unlock()
			if have >= n {
				return
			}
			c.asked.Add(1)
			_ = c.request()
		}
	}()
}

func (c *galeneClient) send(m galeneMsg) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.conn.WriteJSON(m)
}

func (c *galeneClient) close() {
	select {
	case <-c.stop:
		return
	default:
	}
	close(c.stop)
	c.conn.Close()
	c.mu.Lock()
	for _, pc := range c.pcs {
		pc.Close()
	}
	c.mu.Unlock()
	c.wg.Wait()
}

func (c *galeneClient) read() {
	defer c.wg.Done()
	for {
		var m galeneMsg
		if err := c.conn.ReadJSON(&m); err != nil {
			return
		}
		switch m.Type {
		case "joined":
			if m.Kind == "join" {
				close(c.joined)
			} else if m.Kind == "fail" {
				fmt.Fprintf(os.Stderr, "sfubench: galene: %s could not join: %v\n", c.name, m.Value)
			}
		case "ping":
			_ = c.send(galeneMsg{Type: "pong"})
		case "offer":
			// Here, not on a goroutine: the candidates that follow it
			// need its remote description.
			c.answer(m)
		case "answer":
			if pc := c.pc(m.ID); pc != nil {
				if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m.SDP}); err != nil {
					fmt.Fprintf(os.Stderr, "sfubench: galene: %s: answer: %v\n", c.name, err)
				}
			}
		case "ice":
			if pc := c.pc(m.ID); pc != nil && m.Candidate != nil {
				_ = pc.AddICECandidate(*m.Candidate)
			}
		case "close":
			c.mu.Lock()
			pc := c.pcs[m.ID]
			delete(c.pcs, m.ID)
			c.mu.Unlock()
			if pc != nil {
				pc.Close()
			}
		case "usermessage":
			if m.Kind == "error" || m.Kind == "warning" {
				fmt.Fprintf(os.Stderr, "sfubench: galene: %s: %s: %v\n", c.name, m.Kind, m.Value)
			}
		}
	}
}

func (c *galeneClient) pc(id string) *webrtc.PeerConnection {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pcs[id]
}

// answer takes a stream the server offers: a publisher's camera and
// microphone, on a peer connection of its own.
func (c *galeneClient) answer(m galeneMsg) {
	pc := c.pc(m.ID)
	if pc == nil {
		var err error
		if pc, err = c.api.NewPeerConnection(webrtc.Configuration{}); err != nil {
			fmt.Fprintf(os.Stderr, "sfubench: galene: %s: %v\n", c.name, err)
			return
		}
		source := m.Source
		pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
			for first := true; ; first = false {
				if _, _, err := tr.ReadRTP(); err != nil {
					return
				}
				c.got.Add(1)
				if first && tr.Kind() == webrtc.RTPCodecTypeVideo {
					c.mu.Lock()
					if _, ok := c.first[source]; !ok {
						c.first[source] = time.Since(c.start)
					}
					c.mu.Unlock()
				}
			}
		})
		id := m.ID
		pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
			if cand != nil {
				init := cand.ToJSON()
				_ = c.send(galeneMsg{Type: "ice", ID: id, Candidate: &init})
			}
		})
		c.mu.Lock()
		c.pcs[m.ID] = pc
		c.mu.Unlock()
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: m.SDP}); err != nil {
		fmt.Fprintf(os.Stderr, "sfubench: galene: %s: offer: %v\n", c.name, err)
		return
	}
	answer, err := pc.CreateAnswer(nil)
	if err == nil {
		err = pc.SetLocalDescription(answer)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "sfubench: galene: %s: answer: %v\n", c.name, err)
		return
	}
	_ = c.send(galeneMsg{Type: "answer", ID: m.ID, SDP: pc.LocalDescription().SDP})
	if m.Source == c.stage {
		_ = c.send(galeneMsg{Type: "requestStream", ID: m.ID, Request: []string{"audio", "video"}})
	}
}

// publish sends a camera (VP8 simulcast, layers f then q: Galène takes
// the first and the last, in decreasing order) and a microphone, as one
// stream labelled "camera".
func (c *galeneClient) publish(clips [3][][]byte) error {
	pc, err := c.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return err
	}
	id := c.name + "-camera"
	c.mu.Lock()
	c.pcs[id] = pc
	c.mu.Unlock()
	cam, err := sfutest.NewCameraLayers(pc, c.name, clips, []int{2, 0}, c.stop, &c.wg)
	if err != nil {
		return err
	}
	c.cam = cam
	if err := addMicrophone(pc, c.name, true, c.stop, &c.wg); err != nil {
		return err
	}
	pc.OnICECandidate(func(cand *webrtc.ICECandidate) {
		if cand != nil {
			init := cand.ToJSON()
			_ = c.send(galeneMsg{Type: "ice", ID: id, Candidate: &init})
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return err
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		return err
	}
	return c.send(galeneMsg{Type: "offer", ID: id, Label: "camera", Username: c.name, SDP: offer.SDP})
}

// describe says, for a failure, which cameras c received and the state
// of each of its peer connections.
func (c *galeneClient) describe() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "  %s: first video from %d:", c.name, len(c.first))
	if c.cam != nil {
		fmt.Fprintf(&b, " (camera sent %d packets)", c.cam.Sent.Load())
	}
	fmt.Fprintf(&b, " (asked again %d times)", c.asked.Load())
	for src := range c.first {
		fmt.Fprintf(&b, " %s", src)
	}
	b.WriteString("\n")
	for id, pc := range c.pcs {
		fmt.Fprintf(&b, "    stream %s: %s, ICE %s, %d transceivers\n", id, pc.ConnectionState(), pc.ICEConnectionState(), len(pc.GetTransceivers()))
	}
	return b.String()
}

func (c *galeneClient) firstCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.first)
}

func (c *galeneClient) firstFrames() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var d []time.Duration
	for _, v := range c.first {
		d = append(d, v)
	}
	return d
}

// runGalene measures Galène on the load run measured icebox on, and
// prints the same lines.
func runGalene(binary, ip string, nPubs, nSubs int, duration time.Duration, clips [3][][]byte) error {
	dir, err := os.MkdirTemp("", "sfubench-galene")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	g, err := startGalene(binary, dir)
	if err != nil {
		return err
	}
	defer g.stop()
	pid := g.cmd.Process.Pid
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var got atomic.Int64
	var all []*galeneClient
	defer func() {
		for _, c := range all {
			c.close()
		}
	}()
	baseRSS := proc.RSSKiB(pid)
	for i := range nPubs {
		c, err := dialGalene(ctx, g.ws, fmt.Sprintf("pub-%d", i), "", ip, &got)
		if err != nil {
			return err
		}
		all = append(all, c)
		if err := c.publish(clips); err != nil {
			return err
		}
	}
	var subs []*galeneClient
	for j := range nSubs {
		c, err := dialGalene(ctx, g.ws, fmt.Sprintf("sub-%d", j), "pub-0", ip, &got)
		if err != nil {
			return err
		}
		all = append(all, c)
		subs = append(subs, c)
		c.requestUntil(nPubs)
	}
	joins, err := awaitEveryCamera("galene", subs, func(*galeneClient) int { return nPubs }, func() string {
		log, _ := os.ReadFile(g.logf)
		var b strings.Builder
		for _, c := range all {
			b.WriteString(c.describe())
		}
		return "the participants:\n" + b.String() + "its statistics: " + g.stats() + "\nits log:\n" + tail(string(log), 60)
	})
	if err != nil {
		return err
	}
	receivers := make([]receiver, nSubs)
	for i := range receivers {
		receivers[i] = receiver{self: -1, stage: 0}
	}
	expected := expectedRate(clips, []int{2, 0}, nPubs, nPubs, receivers)
	return measure("galene", pid, baseRSS, nPubs, nSubs, duration, joins, expected, func() counters { return counters{received: float64(got.Load())} })
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
