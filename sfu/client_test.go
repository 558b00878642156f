package sfu

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/icebox-project/icebox/internal/sfutest"
)

// newTestSFU is an SFU with all media on one UDP port of 127.0.0.1, or
// on cfg.UDP when set.
func newTestSFU(t testing.TB, cfg Config) *SFU {
	t.Helper()
	if cfg.UDP == nil {
		conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		cfg.UDP = conn
		cfg.IncludeLoopback = true
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// received is what a test client got on one remote track.
type received struct {
	mu        sync.Mutex
	track     *webrtc.TrackRemote
	packets   int
	keyframes int
	widths    []int // width of each keyframe, in order
	lastSeq   uint16
	lastTS    uint32
	bad       []string // continuity breaks
	levels    int      // packets with an audio level
	mid       string   // the media section's mid
	badMid    int      // packets whose mid header extension is missing or names another section
	seen      map[uint16]int
	lastAt    time.Time     // when the last packet came
	maxGap    time.Duration // the longest time between two packets since the last resetGap
}

// resetGap starts measuring the longest time between two packets again.
func (r *received) resetGap() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.maxGap = 0
}

// testClient is a pion peer speaking to one Participant the way a page
// does: it offers what it publishes, answers the SFU's offers, and as the
// impolite peer ignores an offer that crosses its own.
type testClient struct {
	t    testing.TB
	name string
	pc   *webrtc.PeerConnection
	part *Participant

	signals chan []byte
	tracks  atomic.Pointer[[]TrackInfo]
	speaker atomic.Pointer[string]
	errs    chan error

	negMu   sync.Mutex               // one SDP step at a time
	want    [2]int                   // recvonly audio and video sections the SFU asked for
	screens []*webrtc.RTPTransceiver // sections declared "screen" in every offer, under negMu
	applied bool                     // tell the SFU each answer is applied ({"applied":true}), as the page does
	mu      sync.Mutex
	recv    map[string]*received // by track id

	iceConn net.PacketConn // when set, ICE's one socket (withICEConn)
	noRTX   bool           // VP8 and Opus only (withoutRTX)

	stop    chan struct{}
	closing atomic.Bool
	cameras []*sfutest.Camera
	wg      sync.WaitGroup
}

// withICEConn makes a test client's ICE use conn alone (a UDP mux), its
// address the one host candidate: a socket made in a network namespace
// puts the client's media there.
func withICEConn(conn net.PacketConn) func(*testClient) {
	return func(c *testClient) { c.iceConn = conn }
}

// withoutRTX makes a test client offer VP8 and Opus without RTX
// (sfutest.RegisterCodecs says why).
func withoutRTX(c *testClient) { c.noRTX = true }

// acksAnswers makes a test client tell the SFU each answer is applied
// ({"applied":true}), as the page does.
func acksAnswers(c *testClient) { c.applied = true }

func newTestClient(t testing.TB, s *SFU, room, name string, opts ...func(*testClient)) *testClient {
	t.Helper()
	c := &testClient{t: t, name: name, signals: make(chan []byte, 256),
		errs: make(chan error, 16), recv: map[string]*received{}, stop: make(chan struct{})}
	for _, o := range opts {
		o(c)
	}
	m := &webrtc.MediaEngine{}
	if c.noRTX {
		if err := sfutest.RegisterCodecs(m); err != nil {
			t.Fatal(err)
		}
	} else if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	if err := webrtc.ConfigureSimulcastExtensionHeaders(m); err != nil {
		t.Fatal(err)
	}
	if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.AudioLevelURI}, webrtc.RTPCodecTypeAudio); err != nil {
		t.Fatal(err)
	}
	// As browsers do, the mid on audio as well.
	if err := m.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.SDESMidURI}, webrtc.RTPCodecTypeAudio); err != nil {
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
	if c.iceConn != nil {
		// Its one host candidate is the socket's address.
		mux := ice.NewUDPMuxDefault(ice.UDPMuxParams{UDPConn: c.iceConn})
		t.Cleanup(func() { _ = mux.Close() })
		se.SetICEUDPMux(mux)
	}
	// A packet sent again after a NACK reaches the track (the NACK test
	// asks for one it already has).
	se.DisableSRTPReplayProtection(true)
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir), webrtc.WithSettingEngine(se))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	c.pc = pc
	pc.OnTrack(c.onTrack)
	c.part, err = s.Join(room, name, Events{
		Signal: c.fromSFU,
		Tracks: func(l []TrackInfo) { c.tracks.Store(&l) },
		Speaker: func(p string) {
			c.speaker.Store(&p)
		},
		Error: func(err error) {
			select {
			case c.errs <- err:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	c.wg.Add(1)
	go c.handleSignals()
	t.Cleanup(c.close)
	return c
}

// fromSFU takes a signal from the SFU. The answer comes back inside the
// HandleSignal call that sent the offer, with negMu held, and is applied
// there, before any media on the sections it opens (pion ignores a
// stream that comes before the answer describing it); requests for an
// offer go to handleSignals.
func (c *testClient) fromSFU(b []byte) {
	var s struct{ SDP *webrtc.SessionDescription }
	if json.Unmarshal(b, &s) == nil && s.SDP != nil && s.SDP.Type == webrtc.SDPTypeAnswer {
		if err := c.pc.SetRemoteDescription(*s.SDP); err != nil {
			// close shuts the peer connection while an answer may be
			// on its way back.
			if !c.closing.Load() {
				c.t.Errorf("%s: the SFU's answer: %v", c.name, err)
			}
		} else if c.applied {
			// On another goroutine: the answer came inside HandleSignal.
			go func() { _ = c.part.HandleSignal([]byte(`{"applied":true}`)) }()
		}
		return
	}
	c.signals <- b
}

func (c *testClient) close() {
	if !c.closing.CompareAndSwap(false, true) {
		return
	}
	close(c.stop)
	_ = c.part.Close()
	_ = c.pc.Close()
	c.wg.Wait()
}

func (c *testClient) handleSignals() {
	defer c.wg.Done()
	for {
		var b []byte
		select {
		case <-c.stop:
			return
		case b = <-c.signals:
		}
		if !c.handleSignal(b) {
			return
		}
	}
}

// handleSignal takes one signal from the SFU; false on a failure.
func (c *testClient) handleSignal(b []byte) bool {
	c.negMu.Lock()
	defer c.negMu.Unlock()
	var s struct {
		SDP         *webrtc.SessionDescription
		Renegotiate *struct{ Audio, Video int }
	}
	if err := json.Unmarshal(b, &s); err != nil {
		c.t.Errorf("%s: signal from the SFU: %v", c.name, err)
		return false
	}
	switch {
	case s.Renegotiate != nil:
		c.want[0], c.want[1] = s.Renegotiate.Audio, s.Renegotiate.Video
	default:
		c.t.Errorf("%s: unexpected signal %s", c.name, b)
		return false
	}
	// {"audio":0,"video":0} asks for an offer as well: a section changed
	// direction.
	if c.pc.SignalingState() == webrtc.SignalingStateStable {
		c.offerLocked(nil)
	}
	return true
}

// sendLocal applies desc and hands it, with candidates, to the SFU.
func (c *testClient) sendLocal(desc webrtc.SessionDescription, sources map[string]Source) {
	gathered := webrtc.GatheringCompletePromise(c.pc)
	if err := c.pc.SetLocalDescription(desc); err != nil {
		if !c.closing.Load() { // close shuts the peer connection under a signal being handled
			c.t.Errorf("%s: local description: %v", c.name, err)
		}
		return
	}
	<-gathered
	b, _ := json.Marshal(map[string]any{"sdp": c.pc.LocalDescription(), "sources": sources})
	if err := c.part.HandleSignal(b); err != nil && !c.closing.Load() {
		c.t.Errorf("%s: HandleSignal: %v", c.name, err)
	}
}

// offer sends the client's offer (after tracks were added).
func (c *testClient) offer(sources map[string]Source) {
	c.negMu.Lock()
	defer c.negMu.Unlock()
	c.offerLocked(sources)
}

// offerLocked adds the recvonly sections the SFU asked for and offers.
func (c *testClient) offerLocked(sources map[string]Source) {
	for i, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		for range c.want[i] {
			if _, err := c.pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil && !c.closing.Load() {
				c.t.Errorf("%s: recvonly %s: %v", c.name, kind, err)
			}
		}
	}
	c.want = [2]int{}
	offer, err := c.pc.CreateOffer(nil)
	if err != nil {
		if !c.closing.Load() {
			c.t.Errorf("%s: offer: %v", c.name, err)
		}
		return
	}
	for _, tr := range c.screens {
		if sources == nil {
			sources = map[string]Source{}
		}
		sources[tr.Mid()] = SourceScreen // CreateOffer gave it a mid
	}
	c.sendLocal(offer, sources)
}

// publishScreen adds a screen share, one VP8 layer (the h clip at
// 15 frame/s) on a sendonly section of its own, and offers it as
// "screen"; stopScreen ends it.
func (c *testClient) publishScreen() *webrtc.RTPTransceiver {
	c.t.Helper()
	track, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, "screen", c.name+"-screen")
	if err != nil {
		c.t.Fatal(err)
	}
	clip := sfutest.Clip(c.t, "h")
	c.negMu.Lock()
	tr, err := c.pc.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		c.negMu.Unlock()
		c.t.Fatal(err)
	}
	c.screens = append(c.screens, tr)
	c.offerLocked(nil)
	c.negMu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		tick := time.NewTicker(time.Second / 15)
		defer tick.Stop()
		for i := 0; ; i = (i + 1) % len(clip) {
			select {
			case <-c.stop:
				return
			case <-tick.C:
			}
			if s := tr.Sender(); s == nil || s.Track() == nil {
				return // stopScreen
			}
			_ = track.WriteSample(media.Sample{Data: clip[i], Duration: time.Second / 15})
		}
	}()
	return tr
}

// stopScreen ends the share on tr the way a browser's removeTrack does:
// the section goes inactive, and the client offers.
func (c *testClient) stopScreen(tr *webrtc.RTPTransceiver) {
	c.t.Helper()
	c.negMu.Lock()
	defer c.negMu.Unlock()
	if err := c.pc.RemoveTrack(tr.Sender()); err != nil {
		c.t.Fatal(err)
	}
	c.offerLocked(nil)
}

// publishCamera adds a VP8 simulcast camera sending the clips in
// testdata (sfutest.AddCamera).
func (c *testClient) publishCamera() {
	c.t.Helper()
	cam := sfutest.AddCamera(c.t, c.pc, c.name, c.stop, &c.wg)
	c.cameras = append(c.cameras, cam)
}

// sentPackets counts the camera packets written, all layers.
func (c *testClient) sentPackets() int64 {
	var n int64
	for _, cam := range c.cameras {
		n += cam.Sent.Load()
	}
	return n
}

// publishMicrophone adds an Opus track of silent frames carrying the
// audio level *level (RFC 6464, -dBov), one every 20 ms.
func (c *testClient) publishMicrophone(level *atomic.Int32) {
	c.t.Helper()
	tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, "mic", c.name)
	if err != nil {
		c.t.Fatal(err)
	}
	// Not AddTrack: it would take a recvonly section the SFU sends on.
	tc, err := c.pc.AddTransceiverFromTrack(tr, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		c.t.Fatal(err)
	}
	sender := tc.Sender()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		var seq uint16
		var ts uint32
		for {
			select {
			case <-c.stop:
				return
			case <-tick.C:
			}
			var id uint8
			for _, e := range sender.GetParameters().HeaderExtensions {
				if e.URI == sdp.AudioLevelURI {
					id = uint8(e.ID)
				}
			}
			seq++
			ts += 960
			p := &rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: seq, Timestamp: ts},
				Payload: []byte{0xf8, 0xff, 0xfe}}
			if id != 0 {
				_ = p.Header.SetExtension(id, []byte{0x80 | byte(level.Load())})
			}
			_ = tr.WriteRTP(p)
		}
	}()
}

// onTrack reads a remote track and checks that its sequence numbers and
// timestamps run on without jumps.
func (c *testClient) onTrack(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
	r := &received{track: tr, seen: map[uint16]int{}}
	c.mu.Lock()
	c.recv[tr.ID()] = r
	c.mu.Unlock()
	var levelID, midID uint8
	for _, tc := range c.pc.GetTransceivers() {
		if tc.Receiver() != nil && tc.Receiver().Track() == tr {
			r.mid = tc.Mid()
			for _, e := range tc.Receiver().GetParameters().HeaderExtensions {
				switch e.URI {
				case sdp.AudioLevelURI:
					levelID = uint8(e.ID)
				case sdp.SDESMidURI:
					midID = uint8(e.ID)
				}
			}
		}
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		for {
			p, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			now := time.Now()
			r.mu.Lock()
			if r.packets > 0 {
				r.maxGap = max(r.maxGap, now.Sub(r.lastAt))
			}
			r.lastAt = now
			r.packets++
			r.seen[p.SequenceNumber]++
			// A packet at or before the last one is a retransmission
			// (NACK) or a reordering: continuity is judged on the packets
			// that move the stream on. Loss on a loaded machine skips a
			// few hundred packets or seconds at most; a switch without
			// rewriting jumps by a random offset, or backwards.
			if d := int16(p.SequenceNumber - r.lastSeq); r.packets == 1 || d > 0 {
				if r.packets > 1 && d > 1000 {
					r.bad = append(r.bad, "sequence number jumped "+itoa(int(d)))
				}
				if dt := int32(p.Timestamp - r.lastTS); r.packets > 1 && (dt > 30*int32(tr.Codec().ClockRate) || dt < 0) {
					r.bad = append(r.bad, "timestamp jumped "+itoa(int(dt)))
				}
				r.lastSeq, r.lastTS = p.SequenceNumber, p.Timestamp
			}
			if levelID != 0 && len(p.GetExtension(levelID)) == 1 {
				r.levels++
			}
			if midID == 0 || string(p.GetExtension(midID)) != r.mid {
				r.badMid++
			}
			if tr.Kind() == webrtc.RTPCodecTypeVideo && isVP8Keyframe(p.Payload) {
				r.keyframes++
				if d, ok := parseVP8(p.Payload); ok && len(p.Payload) >= d.headerSize+10 {
					r.widths = append(r.widths, int(binary.LittleEndian.Uint16(p.Payload[d.headerSize+6:])&0x3fff))
				}
			}
			r.mu.Unlock()
		}
	}()
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// got returns what the client received on track id, or nil.
func (c *testClient) got(id string) *received {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.recv[id]
}

// lastWidth is the width of the latest keyframe on track id (0: none).
func (c *testClient) lastWidth(id string) int {
	r := c.got(id)
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.widths) == 0 {
		return 0
	}
	return r.widths[len(r.widths)-1]
}

func (c *testClient) packets(id string) int {
	r := c.got(id)
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.packets
}

// dumpOnFailure logs, if the test failed, what each client received and
// its peer connection's media sections on both sides.
func dumpOnFailure(t *testing.T, clients ...*testClient) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, c := range clients {
			c.mu.Lock()
			got := map[string]string{}
			for id, r := range c.recv {
				r.mu.Lock()
				got[id] = fmt.Sprint(r.packets)
				if n := len(r.widths); n > 0 {
					got[id] += fmt.Sprintf(" (keyframe widths, last %d: %v)", min(n, 12), r.widths[max(0, n-12):])
				}
				r.mu.Unlock()
			}
			c.mu.Unlock()
			_, _, tracks := c.part.room.sfu.Counts()
			t.Logf("%s: %s, signaling %s, received %v; the SFU has %d tracks, %d down-tracks for it", c.name, c.pc.ConnectionState(), c.pc.SignalingState(), got, tracks, len(c.part.Tracks()))
			for _, tr := range c.part.pc.GetTransceivers() {
				id := ""
				if s := tr.Sender(); s != nil && s.Track() != nil {
					id = s.Track().ID()
				}
				t.Logf("  sfu side: mid %q %s %s", tr.Mid(), tr.Direction(), id)
			}
		}
	})
}
