// Package sfutest drives pion/webrtc peers over icebox's WebSocket
// signaling (signaling/sigclient) into SFU rooms the way a page does, for
// the tests of the signaling server and the daemon.
package sfutest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
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

// TB is what a Peer needs of its test: testing.TB's failures, helper
// marking and cleanups. A *testing.T is one; so is a program's own, for
// peers run outside a test process.
type TB interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Errorf(format string, args ...any)
	Cleanup(func())
}

// Peer is a pion peer connection driven over a sigclient.Client the way
// a page drives one in an SFU room: it offers, answers nothing, and adds
// the recvonly sections the SFU asks for ({"renegotiate":…}).
type Peer struct {
	T  TB
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

	// Renewals counts the media events with renew followed (a new
	// peer connection to the SFU each).
	Renewals atomic.Int64
	networks []webrtc.NetworkType
	mux      ice.UDPMux // nil: ICE on sockets of its own
	// publish adds what the peer publishes to a new peer connection
	// (under negMu); nil until it publishes.
	publish func(pc *webrtc.PeerConnection)

	mu    sync.Mutex
	video map[string]int64 // video packets received, by stream id (the publisher's peer id)
	stop  chan struct{}    // closed at cleanup: a Camera stops
	wg    sync.WaitGroup
}

// Dial connects to the signaling URL, joins room as name and returns the
// peer and its welcome. Its ICE uses UDP over IPv4 on loopback.
func Dial(t TB, url, room, name string) (*Peer, *wire.Welcome) {
	t.Helper()
	return DialNetworks(t, url, room, name, webrtc.NetworkTypeUDP4)
}

// DialNetworks is Dial with ICE restricted to networks (NetworkTypeTCP4
// alone: ICE-TCP, dialling the SFU's passive candidates).
func DialNetworks(t TB, url, room, name string, networks ...webrtc.NetworkType) (*Peer, *wire.Welcome) {
	t.Helper()
	return DialWith(t, url, room, name, Options{Networks: networks})
}

// Options are DialWith's: where a Peer's WebSocket and ICE go.
type Options struct {
	// Networks restricts ICE (nil: UDP over IPv4).
	Networks []webrtc.NetworkType
	// Dialer opens the WebSocket (nil: websocket.DefaultDialer), say
	// from inside a network namespace.
	Dialer *websocket.Dialer
	// ICEConn, when set, is ICE's one UDP socket (a UDP mux, shared by
	// the peer connections a renew makes): its address is the peer's one
	// host candidate. Nil: loopback sockets.
	ICEConn net.PacketConn
}

// DialWith is Dial with o.
func DialWith(t TB, url, room, name string, o Options) (*Peer, *wire.Welcome) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := sigclient.Dial(ctx, url, sigclient.DialOptions{Buffer: 64, Dialer: o.Dialer})
	if err != nil {
		t.Fatal(err)
	}
	if o.Networks == nil {
		o.Networks = []webrtc.NetworkType{webrtc.NetworkTypeUDP4}
	}
	var mux ice.UDPMux
	if o.ICEConn != nil {
		m := ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: o.ICEConn})
		t.Cleanup(func() { _ = m.Close() })
		mux = m
	}
	p := &Peer{T: t, C: c, msgs: make(chan wire.Message, 64), done: make(chan struct{}),
		video: map[string]int64{}, stop: make(chan struct{}), networks: o.Networks, mux: mux}
	if p.PC, err = p.newPC(); err != nil {
		_ = c.Close()
		t.Fatal(err)
	}
	welcome, err := c.Join(ctx, wire.Join{Room: room, Name: name})
	if err != nil {
		_ = p.PC.Close()
		_ = c.Close()
		t.Fatalf("join %s as %s: %v", room, name, err)
	}
	p.ID = welcome.ID
	go p.read()
	t.Cleanup(func() {
		close(p.stop)
		p.negMu.Lock()
		_ = p.PC.Close()
		p.negMu.Unlock()
		_ = c.Close()
		<-p.done
		p.wg.Wait()
	})
	return p, welcome
}

// newPC makes a peer connection that counts what it receives.
func (p *Peer) newPC() (*webrtc.PeerConnection, error) {
	m := &webrtc.MediaEngine{}
	if err := RegisterCodecs(m); err != nil {
		return nil, err
	}
	// The mid and RTP stream id header extensions a simulcast Camera
	// names its layers with.
	if err := webrtc.ConfigureSimulcastExtensionHeaders(m); err != nil {
		return nil, err
	}
	ir := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(m, ir); err != nil {
		return nil, err
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes(p.networks)
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	if p.mux != nil {
		se.SetICEUDPMux(p.mux)
	}
	pc, err := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
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
	return pc, nil
}

// renew starts over with the SFU, as a page does on a media event with
// renew: a new peer connection, the camera published on it again, and
// an offer; the old connection closes.
func (p *Peer) renew() {
	pc, err := p.newPC()
	if err != nil {
		p.errorf("renew: %v", err)
		return
	}
	p.negMu.Lock()
	old := p.PC
	p.PC, p.again = pc, false
	publish := p.publish
	p.negMu.Unlock()
	_ = old.Close()
	p.Renewals.Add(1)
	if publish != nil {
		publish(pc)
	}
	p.Offer()
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

// Signal sends data (encoded as JSON) to the SFU. A signal that finds
// the connection closed by the server (its node stopped) is no failure:
// the peer is gone from the room.
func (p *Peer) Signal(data any) {
	if err := p.C.Signal(SFUPeer, data); err != nil && !errors.Is(err, websocket.ErrCloseSent) && !errors.Is(err, net.ErrClosed) {
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
		case *wire.Media:
			if m.Renew && m.Media == wire.MediaSFU {
				p.renew()
				continue
			}
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
		p.negMu.Lock()
		for kind, n := range map[webrtc.RTPCodecType]int{webrtc.RTPCodecTypeAudio: r.Audio, webrtc.RTPCodecTypeVideo: r.Video} {
			for range n {
				_, _ = p.PC.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly})
			}
		}
		p.negMu.Unlock()
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
	} else {
		// As a page does: the SFU sends on the sections it opened at once.
		p.Signal(map[string]any{"applied": true})
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
func Clip(t TB, rid string) [][]byte {
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
	p.negMu.Lock()
	pc := p.PC
	p.negMu.Unlock()
	if _, err := pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		p.T.Fatal(err)
	}
	go func() {
		tick := time.NewTicker(time.Second / 15)
		defer tick.Stop()
		for i := 0; pc.ConnectionState() != webrtc.PeerConnectionStateClosed; i++ {
			<-tick.C
			_ = tr.WriteSample(media.Sample{Data: clip[i%len(clip)], Duration: time.Second / 15})
		}
	}()
	p.Offer()
}

// PublishSimulcast sends a VP8 simulcast camera (AddCamera: the q, h and
// f clips), named after the peer's id, and offers it. A renew publishes
// it again on the new peer connection.
func (p *Peer) PublishSimulcast() *Camera {
	p.T.Helper()
	var clips [3][][]byte
	for i, rid := range LayerRIDs {
		clips[i] = Clip(p.T, rid)
	}
	p.negMu.Lock()
	c, err := NewCamera(p.PC, p.ID, clips, p.stop, &p.wg)
	p.publish = func(pc *webrtc.PeerConnection) {
		if _, err := NewCamera(pc, p.ID, clips, p.stop, &p.wg); err != nil {
			p.errorf("camera on a renewed connection: %v", err)
		}
	}
	p.negMu.Unlock()
	if err != nil {
		p.T.Fatal(err)
	}
	p.Offer()
	return c
}

// SelectedRemote is the IP address of the remote candidate of the peer
// connection's selected ICE candidate pair: where its media goes. ""
// before a pair is selected.
func (p *Peer) SelectedRemote() string {
	p.negMu.Lock()
	pc := p.PC
	p.negMu.Unlock()
	pair, err := pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		return ""
	}
	return pair.Remote.Address
}

// State describes the peer's connection to the SFU, for a failure's
// message: its connection and signaling states and the tracks it was
// told of.
func (p *Peer) State() string {
	p.negMu.Lock()
	pc := p.PC
	p.negMu.Unlock()
	return fmt.Sprintf("%s/%s, %d tracks, %d transceivers", pc.ConnectionState(), pc.SignalingState(), len(p.Tracks()), len(pc.GetTransceivers()))
}

// VideoFrom counts the video packets received on the stream of peer id
// (the SFU names a publisher's camera stream after its peer id).
func (p *Peer) VideoFrom(id string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.video[id]
}

// Video counts the video packets received, by stream id (each
// publisher's peer id), as VideoFrom does one.
func (p *Peer) Video() map[string]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.video)
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
