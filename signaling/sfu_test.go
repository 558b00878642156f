package signaling

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"

	"github.com/icebox-project/icebox/internal/testenv"
	"github.com/icebox-project/icebox/sfu"
)

// startSFUSignaling serves signaling whose room "town" (and any room
// starting with "sfu-") is on an SFU with its media on one UDP port of
// 127.0.0.1.
func startSFUSignaling(t *testing.T) string {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := sfu.New(sfu.Config{UDP: conn, IncludeLoopback: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	_, url := startSignaling(t, func(c *Config) {
		c.SFU = &SFUConfig{Server: s, MaxPeersPerRoom: 4, Media: func(room string) string {
			if room == "town" || strings.HasPrefix(room, "sfu-") {
				return MediaSFU
			}
			return MediaMesh
		}}
	})
	t.Cleanup(func() { _ = s.Close() })
	return url
}

// rtcPeer is a pion peer connection driven over a WebSocket the way a
// page drives one in an SFU room: it offers, answers nothing, and adds
// the recvonly sections the SFU asks for.
type rtcPeer struct {
	t      *testing.T
	ws     *websocket.Conn
	pc     *webrtc.PeerConnection
	id     string
	wmu    sync.Mutex
	msgs   chan msg // everything but signals from the SFU
	frames atomic.Int64
	keys   atomic.Int64
	tracks atomic.Pointer[[]any]
	done   chan struct{}
}

func newRTCPeer(t *testing.T, url, room, name string) (*rtcPeer, msg) {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	p := &rtcPeer{t: t, ws: ws, pc: pc, msgs: make(chan msg, 64), done: make(chan struct{})}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			p.frames.Add(1)
			if len(pkt.Payload) > 4 && pkt.Payload[0]&0x10 != 0 && pkt.Payload[4]&1 == 0 {
				p.keys.Add(1)
			}
		}
	})
	p.send(msg{"type": "join", "room": room, "name": name})
	var welcome msg
	if err := ws.ReadJSON(&welcome); err != nil || welcome["type"] != "welcome" {
		t.Fatalf("join: %v %v", welcome, err)
	}
	p.id = welcome["id"].(string)
	go p.read()
	t.Cleanup(func() { _ = pc.Close(); _ = ws.Close(); <-p.done })
	return p, welcome
}

func (p *rtcPeer) send(m msg) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if err := p.ws.WriteJSON(m); err != nil {
		p.t.Errorf("send: %v", err)
	}
}

// read handles signals from the SFU and passes the rest on.
func (p *rtcPeer) read() {
	defer close(p.done)
	for {
		var m msg
		if err := p.ws.ReadJSON(&m); err != nil {
			return
		}
		switch {
		case m["type"] == "signal" && m["from"] == SFUPeer:
			p.fromSFU(m["data"].(map[string]any))
		case m["type"] == TypeTracks:
			list, _ := m["tracks"].([]any)
			p.tracks.Store(&list)
		default:
			p.msgs <- m
		}
	}
}

func (p *rtcPeer) fromSFU(data map[string]any) {
	if r, ok := data["renegotiate"].(map[string]any); ok {
		for kind, n := range map[webrtc.RTPCodecType]any{webrtc.RTPCodecTypeAudio: r["audio"], webrtc.RTPCodecTypeVideo: r["video"]} {
			for range int(n.(float64)) {
				_, _ = p.pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
			}
		}
		p.offer()
		return
	}
	b, _ := json.Marshal(data["sdp"])
	var answer webrtc.SessionDescription
	if err := json.Unmarshal(b, &answer); err != nil {
		p.t.Errorf("sdp from the SFU: %v", err)
		return
	}
	if err := p.pc.SetRemoteDescription(answer); err != nil {
		p.t.Errorf("the SFU's answer: %v", err)
	}
}

func (p *rtcPeer) offer() {
	offer, err := p.pc.CreateOffer(nil)
	if err != nil {
		p.t.Errorf("offer: %v", err)
		return
	}
	gathered := webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(offer); err != nil {
		p.t.Errorf("local description: %v", err)
		return
	}
	<-gathered
	p.send(msg{"type": "signal", "to": SFUPeer, "data": msg{"sdp": p.pc.LocalDescription()}})
}

// publish sends ../sfu/testdata/q.ivf in a loop as a VP8 camera without
// simulcast, until the peer connection closes.
func (p *rtcPeer) publish() {
	p.t.Helper()
	f, err := os.Open("../sfu/testdata/q.ivf")
	if err != nil {
		p.t.Fatal(err)
	}
	defer f.Close()
	r, _, err := ivfreader.NewWith(f)
	if err != nil {
		p.t.Fatal(err)
	}
	var clip [][]byte
	for {
		frame, _, err := r.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			p.t.Fatal(err)
		}
		clip = append(clip, frame)
	}
	tr, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "camera", "pion")
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		p.t.Fatal(err)
	}
	go func() {
		tick := time.NewTicker(time.Second / 15)
		defer tick.Stop()
		for i := 0; ; i++ {
			<-tick.C
			if err := tr.WriteSample(media.Sample{Data: clip[i%len(clip)], Duration: time.Second / 15}); errors.Is(err, io.ErrClosedPipe) || p.pc.ConnectionState() == webrtc.PeerConnectionStateClosed {
				return
			}
		}
	}()
	p.offer()
}

// next returns the next message that is not a signal from the SFU.
func (p *rtcPeer) next() msg {
	p.t.Helper()
	select {
	case m := <-p.msgs:
		return m
	case <-time.After(10 * time.Second):
		p.t.Fatal("no message within 10 s")
		return nil
	}
}

// TestSFURoomOverSignaling: in an SFU room, welcome says media "sfu"; a
// peer publishes by signaling "sfu", another receives its camera over
// its one peer connection, and the tracks event names the publisher.
func TestSFURoomOverSignaling(t *testing.T) {
	url := startSFUSignaling(t)
	a, welcome := newRTCPeer(t, url, "town", "alice")
	if welcome["media"] != MediaSFU {
		t.Fatalf("welcome media %v, want sfu", welcome["media"])
	}
	a.publish()
	b, _ := newRTCPeer(t, url, "town", "bob")
	testenv.Eventually(t, 15*time.Second, "bob receives alice's camera from a keyframe", func() bool {
		return b.keys.Load() > 0 && b.frames.Load() > 20
	})
	list := b.tracks.Load()
	if list == nil || len(*list) != 1 {
		t.Fatalf("tracks event %v, want one track", list)
	}
	if tr := (*list)[0].(map[string]any); tr["peer"] != a.id || tr["kind"] != "video" {
		t.Errorf("track %v, want alice's (%s) video", tr, a.id)
	}
	// A mesh room has no "sfu" and takes no layer.
	c, w := newRTCPeer(t, url, "lobby", "carol")
	if w["media"] != MediaMesh {
		t.Errorf("mesh room: welcome media %v", w["media"])
	}
	c.send(msg{"type": "signal", "to": SFUPeer, "data": msg{"candidate": msg{"candidate": "x"}}})
	if m := c.next(); m["code"] != CodeUnknownPeer {
		t.Errorf("signal to sfu in a mesh room: %v, want unknown-peer", m)
	}
	c.send(msg{"type": "layer", "track": "x", "layer": "f"})
	if m := c.next(); m["code"] != CodeBadMessage {
		t.Errorf("layer in a mesh room: %v, want bad-message", m)
	}
}

// TestSFUHostileMessages: bad SDPs, candidates and layer requests get
// clear errors, the sender stays connected and the room's media goes on;
// a layer request cannot name a track of another room.
func TestSFUHostileMessages(t *testing.T) {
	url := startSFUSignaling(t)
	a, _ := newRTCPeer(t, url, "town", "alice")
	a.publish()
	b, _ := newRTCPeer(t, url, "town", "bob")
	testenv.Eventually(t, 15*time.Second, "bob receives alice", func() bool { return b.frames.Load() > 0 })
	m, _ := newRTCPeer(t, url, "sfu-other", "mallory")
	for _, c := range []struct {
		name string
		m    msg
		code string
	}{
		{"not an SDP", msg{"type": "signal", "to": SFUPeer, "data": msg{"sdp": msg{"type": "offer", "sdp": "hello"}}}, CodeBadMessage},
		{"answer with no offer", msg{"type": "signal", "to": SFUPeer, "data": msg{"sdp": msg{"type": "answer", "sdp": "v=0\r\n"}}}, CodeBadMessage},
		{"SDP over 32 KiB", msg{"type": "signal", "to": SFUPeer, "data": msg{"sdp": msg{"type": "offer", "sdp": strings.Repeat("a", 40<<10)}}}, CodeTooLarge},
		{"neither sdp nor candidate", msg{"type": "signal", "to": SFUPeer, "data": msg{"x": 1}}, CodeBadMessage},
		{"long candidate", msg{"type": "signal", "to": SFUPeer, "data": msg{"candidate": msg{"candidate": strings.Repeat("c", 600)}}}, CodeTooLarge},
		{"bad source", msg{"type": "signal", "to": SFUPeer, "data": msg{"sdp": msg{"type": "offer", "sdp": "v=0\r\n"}, "sources": msg{"0": "projector"}}}, CodeBadMessage},
		{"track of another room", msg{"type": "layer", "track": a.id + "-camera", "layer": "f"}, CodeUnknownTrack},
	} {
		t.Run(c.name, func(t *testing.T) {
			m.send(c.m)
			if got := m.next(); got["type"] != "error" || got["code"] != c.code {
				t.Errorf("got %v, want error %s", got, c.code)
			}
		})
	}
	b.send(msg{"type": "layer", "track": a.id + "-camera", "layer": "xl"})
	if got := b.next(); got["code"] != CodeBadMessage {
		t.Errorf("bad layer: %v, want bad-message", got)
	}
	n := b.frames.Load()
	testenv.Eventually(t, 10*time.Second, "bob still receives alice", func() bool { return b.frames.Load() > n+10 })
	m.send(msg{"type": "ping"})
	if got := m.next(); got["type"] != "pong" {
		t.Errorf("mallory after her errors: %v, want pong", got)
	}
}
