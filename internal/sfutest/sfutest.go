// Package sfutest drives pion/webrtc peers over icebox's WebSocket
// signaling (signaling/sigclient) into SFU rooms the way a page does, for
// the tests of the signaling server and the daemon.
package sfutest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"

	"github.com/icebox-project/icebox/signaling/sigclient"
	"github.com/icebox-project/icebox/signaling/wire"
)

// SFUPeer is the SFU's reserved peer id.
const SFUPeer = wire.SFUPeer

// Peer is a pion peer connection driven over a sigclient.Client the way
// a page drives one in an SFU room: it offers, answers nothing, and adds
// the recvonly sections the SFU asks for ({"renegotiate":…}).
type Peer struct {
	T  testing.TB
	C  *sigclient.Client
	PC *webrtc.PeerConnection
	ID string

	msgs chan wire.Message // everything but signals from the SFU and tracks
	// Packets and Keyframes count the RTP packets received on every
	// remote track, and the VP8 keyframes among them.
	Packets, Keyframes atomic.Int64
	tracks             atomic.Pointer[[]wire.TrackInfo]
	done               chan struct{}

	negMu sync.Mutex // one offer at a time
	again bool       // under negMu: offer again once the answer comes

	mu    sync.Mutex
	video map[string]int64 // video packets received, by stream id (the publisher's peer id)
	stop  chan struct{}    // closed at cleanup: a Camera stops
	wg    sync.WaitGroup
}

// Dial connects to the signaling URL, joins room as name and returns the
// peer and its welcome. Its ICE uses UDP over IPv4 on loopback.
func Dial(t testing.TB, url, room, name string) (*Peer, *wire.Welcome) {
	t.Helper()
	return DialNetworks(t, url, room, name, webrtc.NetworkTypeUDP4)
}

// DialNetworks is Dial with ICE restricted to networks (NetworkTypeTCP4
// alone: ICE-TCP, dialling the SFU's passive candidates).
func DialNetworks(t testing.TB, url, room, name string, networks ...webrtc.NetworkType) (*Peer, *wire.Welcome) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := sigclient.Dial(ctx, url, sigclient.DialOptions{Buffer: 64})
	if err != nil {
		t.Fatal(err)
	}
	m := &webrtc.MediaEngine{}
	if err := RegisterCodecs(m); err != nil {
		t.Fatal(err)
	}
	// The mid and RTP stream id header extensions a simulcast Camera
	// names its layers with.
	if err := webrtc.ConfigureSimulcastExtensionHeaders(m); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		t.Fatal(err)
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes(networks)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	p := &Peer{T: t, C: c, PC: pc, msgs: make(chan wire.Message, 64), done: make(chan struct{}),
		video: map[string]int64{}, stop: make(chan struct{})}
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			p.Packets.Add(1)
			if tr.Kind() == webrtc.RTPCodecTypeVideo {
				p.mu.Lock()
				p.video[tr.StreamID()]++
				p.mu.Unlock()
			}
			if len(pkt.Payload) > 4 && pkt.Payload[0]&0x10 != 0 && pkt.Payload[4]&1 == 0 {
				p.Keyframes.Add(1)
			}
		}
	})
	welcome, err := c.Join(ctx, wire.Join{Room: room, Name: name})
	if err != nil {
		_ = pc.Close()
		_ = c.Close()
		t.Fatalf("join %s as %s: %v", room, name, err)
	}
	p.ID = welcome.ID
	go p.read()
	t.Cleanup(func() { close(p.stop); _ = pc.Close(); _ = c.Close(); <-p.done; p.wg.Wait() })
	return p, welcome
}

// RegisterCodecs registers VP8 (payload type 96) and Opus (111) in m,
// without RTX: pion's NACK responder copies a packet's header extensions
// into its retransmission, so a Camera's RTX packets would carry the
// layer's rid where a repaired rid belongs (RFC 8852 §3.2), and pion at
// the SFU would take the RTX stream for that layer, which then stops.
func RegisterCodecs(m *webrtc.MediaEngine) error {
	for _, c := range []struct {
		p webrtc.RTPCodecParameters
		k webrtc.RTPCodecType
	}{
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, PayloadType: 96}, webrtc.RTPCodecTypeVideo},
		{webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, PayloadType: 111}, webrtc.RTPCodecTypeAudio},
	} {
		if err := m.RegisterCodec(c.p, c.k); err != nil {
			return err
		}
	}
	return nil
}

// Send writes m.
func (p *Peer) Send(m wire.Message) {
	if err := p.C.Send(m); err != nil {
		p.T.Errorf("send: %v", err)
	}
}

// Signal sends data (encoded as JSON) to the SFU.
func (p *Peer) Signal(data any) {
	if err := p.C.Signal(SFUPeer, data); err != nil {
		p.errorf("signal: %v", err)
	}
}

// errorf reports a failure of the exchange with the SFU, unless cleanup
// has begun: a peer connection closed under an offer is not one (the SFU
// asks for offers when others leave, as they do at cleanup).
func (p *Peer) errorf(format string, args ...any) {
	select {
	case <-p.stop:
	default:
		p.T.Errorf(format, args...)
	}
}

// Tracks is the last tracks event's list.
func (p *Peer) Tracks() []wire.TrackInfo {
	if l := p.tracks.Load(); l != nil {
		return *l
	}
	return nil
}

// read handles signals from the SFU and passes the rest on.
func (p *Peer) read() {
	defer close(p.done)
	for {
		m, err := p.C.Receive(context.Background())
		if errors.Is(err, wire.ErrMalformed) {
			p.T.Errorf("a frame from the server: %v", err)
			continue
		}
		if err != nil {
			return
		}
		switch m := m.(type) {
		case *wire.Signal:
			if m.From == SFUPeer {
				p.fromSFU(m.Data)
				continue
			}
		case *wire.Tracks:
			list := m.Tracks
			p.tracks.Store(&list)
			continue
		}
		p.msgs <- m
	}
}

// fromSFU handles the data of a signal from the SFU: a renegotiate
// request or an answer.
func (p *Peer) fromSFU(raw json.RawMessage) {
	var data struct {
		Renegotiate *struct {
			Audio int `json:"audio"`
			Video int `json:"video"`
		} `json:"renegotiate"`
		SDP *webrtc.SessionDescription `json:"sdp"`
	}
	if err := json.Unmarshal(raw, &data); err != nil {
		p.errorf("signal from the SFU: %v: %s", err, raw)
		return
	}
	if r := data.Renegotiate; r != nil {
		for kind, n := range map[webrtc.RTPCodecType]int{webrtc.RTPCodecTypeAudio: r.Audio, webrtc.RTPCodecTypeVideo: r.Video} {
			for range n {
				_, _ = p.PC.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
			}
		}
		p.Offer()
		return
	}
	if data.SDP == nil {
		return
	}
	p.negMu.Lock()
	err := p.PC.SetRemoteDescription(*data.SDP)
	again := p.again
	p.again = false
	p.negMu.Unlock()
	if err != nil {
		p.errorf("the SFU's answer: %v", err)
	}
	if again {
		p.Offer()
	}
}

// Offer sends an offer for the peer connection as it is to "sfu", or,
// while one awaits its answer, once the answer comes.
func (p *Peer) Offer() {
	p.negMu.Lock()
	defer p.negMu.Unlock()
	if p.PC.SignalingState() != webrtc.SignalingStateStable {
		p.again = true
		return
	}
	offer, err := p.PC.CreateOffer(nil)
	if err != nil {
		p.errorf("offer: %v", err)
		return
	}
	gathered := webrtc.GatheringCompletePromise(p.PC)
	if err := p.PC.SetLocalDescription(offer); err != nil {
		p.errorf("local description: %v", err)
		return
	}
	<-gathered
	p.Signal(map[string]any{"sdp": p.PC.LocalDescription()})
}

// Clip returns the frames of sfu/testdata/<rid>.ivf.
func Clip(t testing.TB, rid string) [][]byte {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	f, err := os.Open(filepath.Join(filepath.Dir(file), "..", "..", "sfu", "testdata", rid+".ivf"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, _, err := ivfreader.NewWith(f)
	if err != nil {
		t.Fatal(err)
	}
	var clip [][]byte
	for {
		frame, _, err := r.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			return clip
		}
		if err != nil {
			t.Fatal(err)
		}
		clip = append(clip, frame)
	}
}

// Publish sends the q clip in a loop as a VP8 camera without simulcast,
// until the peer connection closes, and offers it.
func (p *Peer) Publish() {
	p.T.Helper()
	clip := Clip(p.T, "q")
	tr, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "camera", "pion")
	if err != nil {
		p.T.Fatal(err)
	}
	if _, err := p.PC.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		p.T.Fatal(err)
	}
	go func() {
		tick := time.NewTicker(time.Second / 15)
		defer tick.Stop()
		for i := 0; p.PC.ConnectionState() != webrtc.PeerConnectionStateClosed; i++ {
			<-tick.C
			_ = tr.WriteSample(media.Sample{Data: clip[i%len(clip)], Duration: time.Second / 15})
		}
	}()
	p.Offer()
}

// PublishSimulcast sends a VP8 simulcast camera (AddCamera: the q, h and
// f clips), named after the peer's id, and offers it.
func (p *Peer) PublishSimulcast() *Camera {
	p.T.Helper()
	c := AddCamera(p.T, p.PC, p.ID, p.stop, &p.wg)
	p.Offer()
	return c
}

// VideoFrom counts the video packets received on the stream of peer id
// (the SFU names a publisher's camera stream after its peer id).
func (p *Peer) VideoFrom(id string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.video[id]
}

// Next returns the next message that is not a signal from the SFU or a
// tracks event, failing the test after 10 s.
func (p *Peer) Next() wire.Message {
	p.T.Helper()
	select {
	case m := <-p.msgs:
		return m
	case <-time.After(10 * time.Second):
		p.T.Fatal("no message within 10 s")
		return nil
	}
}
