package sfu

import (
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"

	"github.com/icebox-project/icebox/internal/testenv"
)

// wait is how long a test waits for media on loopback.
const wait = 15 * time.Second

// publisher joins room with a simulcast camera and a microphone at level.
func publisher(t *testing.T, s *SFU, room, name string, level *atomic.Int32) *testClient {
	t.Helper()
	c := newTestClient(t, s, room, name)
	c.publishCamera()
	c.publishMicrophone(level)
	c.offer(nil)
	return c
}

func quiet() *atomic.Int32 { l := &atomic.Int32{}; l.Store(127); return l }

// checkContinuous fails for every break in sequence numbers or
// timestamps the client saw.
func checkContinuous(t *testing.T, c *testClient) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, r := range c.recv {
		r.mu.Lock()
		if len(r.bad) > 0 {
			t.Errorf("%s, track %s: %v", c.name, id, r.bad)
		}
		r.mu.Unlock()
	}
}

// TestRoomForwardsEveryPublisher: three pion peers each publish a VP8
// simulcast camera and an Opus microphone; each receives the other two's
// camera and microphone over its one peer connection, starting on a
// keyframe, with audio levels, and the tracks event names each owner.
func TestRoomForwardsEveryPublisher(t *testing.T) {
	s := newTestSFU(t, Config{})
	var cs []*testClient
	for i := range 3 {
		cs = append(cs, publisher(t, s, "r", fmt.Sprintf("p%d", i), quiet()))
	}
	for _, c := range cs {
		for _, o := range cs {
			if o == c {
				continue
			}
			for _, src := range []Source{SourceCamera, SourceMicrophone} {
				id := o.name + "-" + string(src)
				testenv.Eventually(t, wait, c.name+" receives "+id, func() bool { return c.packets(id) >= 20 })
			}
		}
	}
	// A layer found after the first tracks event comes in a later one.
	for _, c := range cs {
		testenv.Eventually(t, wait, c.name+"'s tracks event lists q, h and f of each camera", func() bool {
			list := c.tracks.Load()
			if list == nil || len(*list) != 4 {
				return false
			}
			for _, ti := range *list {
				if ti.Kind == "video" && len(ti.Layers) != 3 {
					return false
				}
			}
			return true
		})
	}
	for _, c := range cs {
		list := c.tracks.Load()
		if list == nil || len(*list) != 4 {
			t.Fatalf("%s: tracks event %v, want 4 tracks", c.name, list)
		}
		for _, ti := range *list {
			if want := ti.Track[:2]; ti.Peer != want || ti.Stream != want {
				t.Errorf("%s: track %+v, want peer and stream %s", c.name, ti, want)
			}
			if ti.Kind == "video" && len(ti.Layers) != 3 {
				t.Errorf("%s: track %s layers %v, want q h f", c.name, ti.Track, ti.Layers)
			}
			r := c.got(ti.Track)
			r.mu.Lock()
			if r.track.StreamID() != ti.Stream {
				t.Errorf("%s: track %s in stream %q, tracks event says %q", c.name, ti.Track, r.track.StreamID(), ti.Stream)
			}
			if ti.Kind == "video" && r.keyframes == 0 {
				t.Errorf("%s: no keyframe on %s", c.name, ti.Track)
			}
			if ti.Kind == "audio" && r.levels == 0 {
				t.Errorf("%s: no audio level on %s", c.name, ti.Track)
			}
			r.mu.Unlock()
		}
		checkContinuous(t, c)
	}
	if rooms, ps, tracks := s.Counts(); rooms != 1 || ps != 3 || tracks != 6 {
		t.Errorf("counts: %d rooms, %d participants, %d tracks; want 1, 3, 6", rooms, ps, tracks)
	}
	cs[2].close()
	testenv.Eventually(t, wait, "p0's tracks event drops p2", func() bool { return len(*cs[0].tracks.Load()) == 2 })
	if _, _, tracks := s.Counts(); tracks != 4 {
		t.Errorf("after p2 left: %d tracks, want 4", tracks)
	}
}

// TestLayerFollowsRequest: a subscriber that asks for q, then f, then q
// of a simulcast camera gets keyframes of that width (80, 320, 80 pixels)
// on one continuous stream; each switch asks the publisher for a PLI.
func TestLayerFollowsRequest(t *testing.T) {
	// The estimate is held at 2 Mbit/s or more, so that on a loaded
	// machine GCC's delay-based drops never keep f out: this tests the
	// request, TestEstimateCapsLayers the estimate.
	s := newTestSFU(t, Config{InitialBitrate: 2_000_000, MinBitrate: 2_000_000})
	pub := publisher(t, s, "r", "pub", quiet())
	sub := newTestClient(t, s, "r", "sub")
	const cam = "pub-camera"
	testenv.Eventually(t, wait, "sub receives the camera", func() bool { return sub.packets(cam) > 0 })
	for _, c := range []struct {
		layer string
		width int
	}{{"q", 80}, {"f", 320}, {"h", 160}, {"q", 80}} {
		if err := sub.part.RequestLayer(cam, c.layer); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, wait, fmt.Sprintf("keyframes %d wide after asking for %s", c.width, c.layer),
			func() bool { return sub.lastWidth(cam) == c.width })
	}
	checkContinuous(t, sub)
	if got := s.stats.LayerSwitches.Load(); got < 3 {
		t.Errorf("%d layer switches, want at least 3", got)
	}
	if got := s.stats.PLIs.Load(); got < 3 {
		t.Errorf("%d PLIs, want at least 3", got)
	}
	for _, bad := range []struct{ track, layer string }{{cam, "x"}, {"pub-microphone", "f"}, {"nobody-camera", "f"}} {
		if err := sub.part.RequestLayer(bad.track, bad.layer); err == nil {
			t.Errorf("RequestLayer(%q, %q) accepted", bad.track, bad.layer)
		}
	}
	if err := sub.part.RequestLayer(cam, "none"); err != nil {
		t.Fatal(err)
	}
	// Once the publisher has sent 30 packets more (2 s of its layers),
	// nothing sent before the pause is still on its way; over 30 more,
	// the subscriber must get nothing.
	sentAfter := func(n int64) func() bool { return func() bool { return pub.sentPackets() >= n } }
	testenv.Eventually(t, wait, "30 packets published", sentAfter(pub.sentPackets()+30))
	n := sub.packets(cam)
	testenv.Eventually(t, wait, "30 more packets published", sentAfter(pub.sentPackets()+30))
	if m := sub.packets(cam); m != n {
		t.Errorf("paused camera: %d packets more", m-n)
	}
}

// TestEstimateCapsLayers: with the subscriber's estimate held to 40
// kbit/s (GCC's upper bound), it gets layer q although it asked for f, and
// the microphone is still forwarded.
func TestEstimateCapsLayers(t *testing.T) {
	s := newTestSFU(t, Config{InitialBitrate: 40_000, MinBitrate: 20_000, MaxBitrate: 40_000})
	publisher(t, s, "r", "pub", quiet())
	sub := newTestClient(t, s, "r", "sub")
	if est := sub.part.Estimate(); est > 40_000 || est <= 0 {
		t.Fatalf("estimate %d bit/s, want in (0, 40000]", est)
	}
	testenv.Eventually(t, wait, "q keyframes and the microphone", func() bool {
		return sub.lastWidth("pub-camera") == 80 && sub.packets("pub-microphone") >= 50
	})
	if err := sub.part.RequestLayer("pub-camera", "f"); err != nil {
		t.Fatal(err)
	}
	before := sub.got("pub-camera")
	before.mu.Lock()
	k := before.keyframes
	before.mu.Unlock()
	testenv.Eventually(t, wait, "three more keyframes", func() bool {
		before.mu.Lock()
		defer before.mu.Unlock()
		return before.keyframes >= k+3
	})
	if w := sub.lastWidth("pub-camera"); w != 80 {
		t.Errorf("under a 40 kbit/s estimate the camera came %d wide, want 80 (q)", w)
	}
}

// TestNACKAnsweredFromCache: a packet the subscriber says it lost is sent
// again from the SFU's packet cache, and the NACK is counted.
func TestNACKAnsweredFromCache(t *testing.T) {
	s := newTestSFU(t, Config{})
	publisher(t, s, "r", "pub", quiet())
	sub := newTestClient(t, s, "r", "sub")
	testenv.Eventually(t, wait, "camera packets", func() bool { return sub.packets("pub-camera") >= 10 })
	r := sub.got("pub-camera")
	r.mu.Lock()
	seq, ssrc := r.lastSeq-3, uint32(r.track.SSRC())
	r.mu.Unlock()
	nack := &rtcp.TransportLayerNack{MediaSSRC: ssrc, Nacks: []rtcp.NackPair{{PacketID: seq}}}
	if err := sub.pc.WriteRTCP([]rtcp.Packet{nack}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, wait, fmt.Sprintf("packet %d sent again", seq), func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.seen[seq] >= 2
	})
	if s.stats.NACKs.Load() == 0 {
		t.Error("the NACK was not counted")
	}
}

// TestActiveSpeaker: the participant whose audio level is loud is named
// speaker, and the floor moves when another speaks up and it falls quiet.
func TestActiveSpeaker(t *testing.T) {
	s := newTestSFU(t, Config{AllocateInterval: 100 * time.Millisecond})
	la, lb := quiet(), quiet()
	la.Store(20)
	a := newTestClient(t, s, "r", "a")
	a.publishMicrophone(la)
	a.offer(nil)
	b := newTestClient(t, s, "r", "b")
	b.publishMicrophone(lb)
	b.offer(nil)
	speaker := func() string {
		if p := b.speaker.Load(); p != nil {
			return *p
		}
		return ""
	}
	testenv.Eventually(t, wait, "a is the speaker", func() bool { return speaker() == "a" })
	la.Store(127)
	lb.Store(15)
	testenv.Eventually(t, wait, "b is the speaker", func() bool { return speaker() == "b" })
}

// TestTrackLimits: a second camera from one participant is refused with
// ErrPublishLimit, and the first goes on.
func TestTrackLimits(t *testing.T) {
	s := newTestSFU(t, Config{Limits: Limits{ParticipantsPerRoom: 2}})
	c := newTestClient(t, s, "r", "a")
	c.publishCamera()
	c.publishCamera()
	c.offer(nil)
	sub := newTestClient(t, s, "r", "sub")
	select {
	case err := <-c.errs:
		t.Logf("refused: %v", err)
	case <-time.After(wait):
		t.Fatal("a second camera was not refused")
	}
	testenv.Eventually(t, wait, "the first camera forwarded", func() bool { return sub.packets("a-camera") > 0 })
	if _, err := s.Join("r", "third", Events{}); err == nil {
		t.Error("a third participant joined a room capped at 2")
	}
}

// TestScreenShareEndsAndReturns: a screen share is forwarded as a track
// of its own ("<peer>-screen", source screen) beside the camera. When its
// publisher stops sending on its section (removeTrack: the section goes
// inactive), every subscriber's track list drops it; a second share, on
// a section of its own, is forwarded again (the stopped one does not
// count against the three tracks a participant may publish), and the
// camera goes on throughout.
func TestScreenShareEndsAndReturns(t *testing.T) {
	s := newTestSFU(t, Config{})
	a := publisher(t, s, "r", "a", quiet())
	sub := newTestClient(t, s, "r", "sub")
	dumpOnFailure(t, a, sub)
	listed := func() bool {
		for _, ti := range sub.part.Tracks() {
			if ti.Track == "a-screen" {
				return ti.Source == SourceScreen && ti.Stream == "a-screen"
			}
		}
		return false
	}
	var earlier *received
	for round := range 2 {
		tr := a.publishScreen()
		testenv.Eventually(t, wait, fmt.Sprintf("share %d reaches sub", round+1), func() bool {
			r := sub.got("a-screen")
			return listed() && r != nil && r != earlier && sub.packets("a-screen") > 10
		})
		earlier = sub.got("a-screen")
		a.stopScreen(tr)
		testenv.Eventually(t, wait, fmt.Sprintf("share %d leaves sub's tracks", round+1), func() bool { return !listed() })
	}
	cam := sub.packets("a-camera")
	testenv.Eventually(t, wait, "a's camera goes on", func() bool { return sub.packets("a-camera") > cam+10 })
	select {
	case err := <-a.errs:
		t.Errorf("a was refused: %v", err)
	default:
	}
	checkContinuous(t, sub)
}

// TestForwardedPacketsNameTheirMid: every packet the SFU forwards, audio
// and video, carries the mid header extension naming the subscriber's
// media section it belongs to (RFC 8843 §9.2), so a browser that has not
// yet applied the answer giving its SSRC still routes it there.
func TestForwardedPacketsNameTheirMid(t *testing.T) {
	s := newTestSFU(t, Config{})
	publisher(t, s, "r", "a", quiet())
	sub := newTestClient(t, s, "r", "sub")
	for _, id := range []string{"a-camera", "a-microphone"} {
		testenv.Eventually(t, wait, "sub receives "+id, func() bool { return sub.packets(id) > 10 })
		r := sub.got(id)
		r.mu.Lock()
		if r.badMid > 0 || r.mid == "" {
			t.Errorf("%s: %d of %d packets without the mid %q", id, r.badMid, r.packets, r.mid)
		}
		r.mu.Unlock()
	}
}

// TestAppliedStartsAtOnce: a subscriber that says it applied the SFU's
// answer ({"applied":true}, as the page does) gets media at once; one
// that does not waits out StartDelay (a minute here).
func TestAppliedStartsAtOnce(t *testing.T) {
	s := newTestSFU(t, Config{StartDelay: time.Minute})
	publisher(t, s, "r", "a", quiet())
	slow := newTestClient(t, s, "r", "slow")
	quick := newTestClient(t, s, "r", "quick", acksAnswers)
	testenv.Eventually(t, wait, "quick receives a's camera", func() bool { return quick.packets("a-camera") > 10 })
	if n := slow.packets("a-camera"); n > 0 {
		t.Errorf("slow received %d packets of a's camera within its start delay", n)
	}
}

// TestRTXNegotiated: the SFU answers a publisher's VP8 and its RTX
// stream (RFC 4588), which a browser's retransmissions and bandwidth
// probes ride on; without it Chromium probes with padding on the media
// streams, and its estimate of the uplink grows slowly.
func TestRTXNegotiated(t *testing.T) {
	s := newTestSFU(t, Config{})
	c := publisher(t, s, "r", "pub", quiet())
	testenv.Eventually(t, wait, "the SFU's answer", func() bool { return c.pc.RemoteDescription() != nil })
	var d sdp.SessionDescription
	if err := d.UnmarshalString(c.pc.RemoteDescription().SDP); err != nil {
		t.Fatal(err)
	}
	for _, m := range d.MediaDescriptions {
		if m.MediaName.Media != "video" {
			continue
		}
		rtx := map[string]string{} // rtx payload type → the one it repairs
		for _, a := range m.Attributes {
			if a.Key == "rtpmap" && strings.Contains(a.Value, " rtx/90000") {
				rtx[strings.Fields(a.Value)[0]] = ""
			}
		}
		for _, a := range m.Attributes {
			if f := strings.Fields(a.Value); a.Key == "fmtp" && len(f) == 2 {
				if _, ok := rtx[f[0]]; ok {
					rtx[f[0]] = strings.TrimPrefix(f[1], "apt=")
				}
			}
		}
		var vp8 string
		for _, a := range m.Attributes {
			if a.Key == "rtpmap" && strings.Contains(a.Value, " VP8/90000") {
				vp8 = strings.Fields(a.Value)[0]
			}
		}
		found := false
		for _, apt := range rtx {
			found = found || (apt == vp8 && vp8 != "")
		}
		if !found {
			t.Errorf("video section %v: no RTX for VP8 (payload type %q) in the answer: rtx %v", m.MediaName.Formats, vp8, rtx)
		}
	}
}

// TestSectionsReusedAcrossChurn: a subscriber in a room where publishers
// come and go one at a time keeps as many media sections as the tracks it
// receives at once: each departed track's section goes inactive and the
// next publisher's track of that kind takes it again, and media flows
// there. Without reuse the sections grow by two per publisher until the
// offer passes Limits.MediaSections.
func TestSectionsReusedAcrossChurn(t *testing.T) {
	s := newTestSFU(t, Config{})
	sub := newTestClient(t, s, "r", "sub", acksAnswers)
	dumpOnFailure(t, sub)
	listed := func(id string) bool {
		for _, ti := range sub.part.Tracks() {
			if ti.Track == id {
				return true
			}
		}
		return false
	}
	sections := func() int {
		sub.negMu.Lock()
		defer sub.negMu.Unlock()
		return len(sub.pc.GetTransceivers())
	}
	const rounds = 6
	most := 0
	for i := range rounds {
		name := fmt.Sprintf("p%d", i)
		p := publisher(t, s, "r", name, quiet())
		for _, id := range []string{name + "-camera", name + "-microphone"} {
			testenv.Eventually(t, wait, "sub receives "+id, func() bool { return sub.packets(id) > 10 })
		}
		most = max(most, sections())
		p.close()
		testenv.Eventually(t, wait, name+" leaves sub's tracks", func() bool { return !listed(name + "-camera") })
	}
	t.Logf("the subscriber held up to %d media sections over %d publishers", most, rounds)
	// Two live sections, and at most two more whose inactive answer was
	// still on its way when the next publisher came.
	if most > 4 {
		t.Errorf("after %d publishers the subscriber held up to %d media sections, want at most 4", rounds, most)
	}
	checkContinuous(t, sub)
}

// TestReadingGoesOnWhileForwardingWaits: a publisher's packets are read
// (and so stamped for its transport-wide congestion control feedback)
// as they arrive, even while their forwarding to subscribers is held up;
// read only after the previous packet was forwarded, they would seem to
// have queued on the path, and the publisher's estimate would fall for
// the SFU's own work.
func TestReadingGoesOnWhileForwardingWaits(t *testing.T) {
	s := newTestSFU(t, Config{})
	var holding atomic.Bool
	held, release := make(chan struct{}, 1), make(chan struct{})
	s.forwardHook = func() {
		if holding.Load() {
			select {
			case held <- struct{}{}:
			default:
			}
			<-release
		}
	}
	// Registered after newTestSFU, so it runs before the SFU closes.
	t.Cleanup(func() { holding.Store(false); close(release) })
	a := newTestClient(t, s, "r", "a")
	a.publishMicrophone(quiet())
	a.offer(nil)
	sub := newTestClient(t, s, "r", "sub")
	testenv.Eventually(t, wait, "a's microphone reaches sub", func() bool { return sub.packets("a-microphone") > 5 })
	read := func() uint64 {
		a.part.mu.Lock()
		defer a.part.mu.Unlock()
		var n uint64
		if tr := a.part.published[SourceMicrophone]; tr != nil {
			tr.mu.Lock()
			for _, l := range tr.layers {
				if l != nil {
					n += l.bytes.Load()
				}
			}
			tr.mu.Unlock()
		}
		return n
	}
	holding.Store(true)
	select {
	case <-held:
	case <-time.After(wait):
		t.Fatal("the forwarder never reached the hook")
	}
	before := read()
	// The microphone sends 50 packets a second of about 24 bytes.
	testenv.Eventually(t, wait, "a's packets read while their forwarding waits", func() bool { return read() > before+240 })
}
