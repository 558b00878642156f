package sfu

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// captureWriter is a TrackLocalWriter that keeps the headers written.
type captureWriter struct{ headers []rtp.Header }

func (w *captureWriter) WriteRTP(h *rtp.Header, payload []byte) (int, error) {
	h2 := *h
	w.headers = append(w.headers, h2)
	return len(payload), nil
}
func (w *captureWriter) Write(b []byte) (int, error) { return len(b), nil }

// vp8Packet is a one-packet VP8 frame with a 15-bit picture id.
func vp8Packet(seq uint16, ts uint32, pid uint16, key bool) *rtp.Packet {
	tag := byte(0x01) // P set: interframe
	if key {
		tag = 0x00
	}
	return &rtp.Packet{Header: rtp.Header{SequenceNumber: seq, Timestamp: ts},
		Payload: []byte{0x90, 0x80, 0x80 | byte(pid>>8), byte(pid), tag, 0, 0}}
}

func TestParseVP8(t *testing.T) {
	p := vp8Packet(1, 1, 0x1234, true).Payload
	d, ok := parseVP8(p)
	if !ok || !d.start || d.pictureID != 0x1234 || !d.pidLong || d.headerSize != 4 {
		t.Fatalf("got %+v ok=%v, want start, picture id 0x1234 (15 bits), 4 bytes", d, ok)
	}
	if !isVP8Keyframe(p) || isVP8Keyframe(vp8Packet(1, 1, 1, false).Payload) {
		t.Error("keyframe flag misread")
	}
	for _, short := range [][]byte{nil, {0x80}, {0x90, 0x80}, {0x90, 0x80, 0x80}} {
		if _, ok := parseVP8(short); ok {
			t.Errorf("parseVP8(%x) ok, want a short descriptor refused", short)
		}
		_ = isVP8Keyframe(short)
	}
	setVP8PictureID(p, d, 0x0042)
	if d2, _ := parseVP8(p); d2.pictureID != 0x42 {
		t.Errorf("picture id after rewrite %#x, want 0x42", d2.pictureID)
	}
}

func TestH264Keyframe(t *testing.T) {
	for _, c := range []struct {
		p    []byte
		want bool
	}{
		{[]byte{0x65, 1}, true},                      // IDR
		{[]byte{0x67, 1}, true},                      // SPS
		{[]byte{0x41, 1}, false},                     // non-IDR slice
		{[]byte{0x78, 0, 2, 0x67, 1, 0, 1, 1}, true}, // STAP-A with SPS
		{[]byte{0x78, 0, 9, 0x67}, false},            // STAP-A, size past the end
		{[]byte{0x7c, 0x85}, true},                   // FU-A start of IDR
		{[]byte{0x7c, 0x05}, false},                  // FU-A middle
		{nil, false},
	} {
		if got := isH264Keyframe(c.p); got != c.want {
			t.Errorf("isH264Keyframe(%x) = %v, want %v", c.p, got, c.want)
		}
	}
}

// testDownTrack is a DownTrack of a VP8 track, bound to a capture writer,
// outside any peer connection.
func testDownTrack(clock *fakeClock) (*DownTrack, *captureWriter, *SFU) {
	s := &SFU{cfg: Config{Now: clock.Now}.withDefaults()}
	r := &Room{sfu: s}
	p := &Participant{room: r}
	pub := &publishedTrack{kind: webrtc.RTPCodecTypeVideo, vp8: true, owner: p,
		codec: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}}
	d := newDownTrack(pub, p)
	w := &captureWriter{}
	d.writer, d.ssrc, d.payloadType = w, 1234, 96
	return d, w, s
}

// TestDownTrackContinuity: across switches between layers with unrelated
// sequence numbers, timestamps and picture ids, the subscriber sees one
// SSRC whose sequence numbers and picture ids step by one and whose
// timestamps follow the wall clock; a switch waits for a keyframe.
func TestDownTrackContinuity(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	d, w, s := testDownTrack(clock)
	d.setTarget(0)
	type src struct {
		seq uint16
		ts  uint32
		pid uint16
	}
	layers := []*src{{seq: 65530, ts: 4e9, pid: 32760}, {seq: 100, ts: 7, pid: 5}}
	send := func(l int, key bool) {
		s := layers[l]
		d.write(l, vp8Packet(s.seq, s.ts, s.pid, key), key, nil)
		s.seq++
		s.ts += 6000
		s.pid = (s.pid + 1) & 0x7fff
	}
	send(0, false) // no keyframe yet: nothing
	if len(w.headers) != 0 {
		t.Fatalf("%d packets forwarded before a keyframe", len(w.headers))
	}
	for i := range 10 {
		clock.Add(66 * time.Millisecond)
		send(0, i == 0)
		send(1, false)
	}
	d.setTarget(1)
	clock.Add(66 * time.Millisecond)
	send(1, false) // still layer 0 until layer 1's keyframe
	send(0, false)
	clock.Add(66 * time.Millisecond)
	send(1, true)
	send(0, false) // old layer: dropped
	for range 5 {
		clock.Add(66 * time.Millisecond)
		send(1, false)
	}
	if got := len(w.headers); got != 17 {
		t.Fatalf("forwarded %d packets, want 17 (11 of layer 0, 6 of layer 1)", got)
	}
	for i, h := range w.headers {
		if h.SSRC != 1234 || h.PayloadType != 96 {
			t.Errorf("packet %d: SSRC %d PT %d, want 1234 and 96", i, h.SSRC, h.PayloadType)
		}
		if i == 0 {
			continue
		}
		prev := w.headers[i-1]
		if h.SequenceNumber != prev.SequenceNumber+1 {
			t.Errorf("packet %d: sequence number %d after %d", i, h.SequenceNumber, prev.SequenceNumber)
		}
		if dt := h.Timestamp - prev.Timestamp; dt < 5000 || dt > 7000 {
			t.Errorf("packet %d: timestamp step %d, want about 6000 (66 ms at 90 kHz)", i, dt)
		}
	}
	if got := s.stats.LayerSwitches.Load(); got != 1 {
		t.Errorf("layer switches %d, want 1", got)
	}
}

// TestDownTrackPictureID: the VP8 picture id steps by one across a switch.
func TestDownTrackPictureID(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	d, _, _ := testDownTrack(clock)
	var pids []uint16
	d.writer = writerFunc(func(h *rtp.Header, p []byte) {
		v, _ := parseVP8(p)
		pids = append(pids, v.pictureID)
	})
	d.setTarget(0)
	d.write(0, vp8Packet(1, 1, 32766, true), true, nil)
	d.write(0, vp8Packet(2, 2, 32767, false), false, nil)
	d.setTarget(1)
	d.write(1, vp8Packet(900, 50, 17, true), true, nil)
	d.write(1, vp8Packet(901, 60, 18, false), false, nil)
	for i := 1; i < len(pids); i++ {
		if pids[i] != (pids[i-1]+1)&0x7fff {
			t.Fatalf("picture ids %v, want each one more than the last", pids)
		}
	}
	if len(pids) != 4 {
		t.Fatalf("got %d packets, want 4", len(pids))
	}
}

type writerFunc func(*rtp.Header, []byte)

func (f writerFunc) WriteRTP(h *rtp.Header, p []byte) (int, error) { f(h, p); return len(p), nil }
func (f writerFunc) Write(b []byte) (int, error)                   { return len(b), nil }

func TestAllocate(t *testing.T) {
	all := [3]bool{true, true, true}
	rates := [3]float64{100e3, 300e3, 1000e3}
	// Each already has the layer it asked for, unless named otherwise.
	cam := func(req int) allocTrack {
		return allocTrack{requested: req, current: req, rates: rates, available: all}
	}
	at := func(req, current int) allocTrack {
		return allocTrack{requested: req, current: current, rates: rates, available: all}
	}
	for _, c := range []struct {
		name   string
		budget float64
		tracks []allocTrack
		want   []int
	}{
		{"plenty", 10e6, []allocTrack{cam(2), cam(0)}, []int{2, 0}},
		{"stage first", 1.1e6, []allocTrack{cam(0), cam(2), cam(0)}, []int{0, 1, 0}},
		{"stage gets f", 1.25e6, []allocTrack{cam(0), cam(2)}, []int{0, 2}},
		{"short: lowest layer still sent", 50e3, []allocTrack{cam(2), cam(2)}, []int{0, 0}},
		{"paused", 10e6, []allocTrack{cam(noLayer), cam(1)}, []int{noLayer, 1}},
		{"screen first", 1.1e6, []allocTrack{cam(2), {screen: true, requested: 2, rates: [3]float64{900e3}, available: [3]bool{true}}}, []int{0, 0}},
		{"missing layer skipped", 10e6, []allocTrack{{requested: 2, rates: rates, available: [3]bool{true, true, false}}}, []int{1}},
		{"nothing sent", 10e6, []allocTrack{{requested: 2, rates: rates}}, []int{noLayer}},
		// f takes 900 kbit/s more than q: with 1.1 Mbit/s left it is
		// kept, but not taken from q or h (it needs 1.125 Mbit/s).
		{"f kept", 1.2e6, []allocTrack{cam(2)}, []int{2}},
		{"up from q with headroom only", 1.2e6, []allocTrack{at(2, 0)}, []int{1}},
		{"up from h with headroom only", 1.2e6, []allocTrack{at(2, 1)}, []int{1}},
		{"up from none with headroom only", 1.2e6, []allocTrack{at(2, noLayer)}, []int{1}},
		{"up with headroom", 1.3e6, []allocTrack{at(2, 0)}, []int{2}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := allocate(c.budget, c.tracks); !slices.Equal(got, c.want) {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestSpeakers(t *testing.T) {
	var s speakers
	speak := func(peer string, level byte, n int) {
		for range n {
			s.observe(peer, level)
		}
	}
	speak("a", 127, 10)
	speak("b", 127, 10)
	if got, changed := s.tick(); changed || got != "" {
		t.Fatalf("silence: got %q changed=%v, want no speaker", got, changed)
	}
	for range speakerWindow {
		speak("a", 20, 10)
		speak("b", 120, 10)
		s.tick()
	}
	if s.current != "a" {
		t.Fatalf("speaker %q, want a", s.current)
	}
	// b slightly louder than a: a keeps the floor (margin).
	speak("a", 30, 10)
	speak("b", 28, 10)
	if got, _ := s.tick(); got != "a" {
		t.Errorf("speaker %q after a near tie, want a to keep it", got)
	}
	var got string
	for range speakerWindow {
		speak("a", 127, 10)
		speak("b", 10, 10)
		got, _ = s.tick()
	}
	if got != "b" {
		t.Errorf("speaker %q once a fell silent, want b", got)
	}
	s.forget("b")
	if s.current != "" {
		t.Errorf("speaker %q after it left", s.current)
	}
}

// TestPLIThrottle: a layer gets at most one PLI per PLIInterval, each
// layer on its own.
func TestPLIThrottle(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1e9, 0)}
	s := newTestSFU(t, Config{Now: clock.Now})
	r, err := s.Room("pli")
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.Join("pub", Events{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	pub := &publishedTrack{kind: webrtc.RTPCodecTypeVideo, owner: p}
	pub.layers[0], pub.layers[2] = &layer{ssrc: 1}, &layer{ssrc: 3}
	plis := func() uint64 { return s.stats.PLIs.Load() }
	for range 3 {
		pub.requestKeyframe(0)
	}
	if got := plis(); got != 1 {
		t.Fatalf("3 requests at once: %d PLIs, want 1", got)
	}
	pub.requestKeyframe(2)
	pub.requestKeyframe(1) // no such layer
	if got := plis(); got != 2 {
		t.Fatalf("another layer: %d PLIs, want 2", got)
	}
	clock.Add(DefaultPLIInterval - time.Millisecond)
	pub.requestKeyframe(0)
	if got := plis(); got != 2 {
		t.Fatalf("1 ms early: %d PLIs, want 2", got)
	}
	clock.Add(time.Millisecond)
	pub.requestKeyframe(0)
	if got := plis(); got != 3 {
		t.Fatalf("after the interval: %d PLIs, want 3", got)
	}
}
