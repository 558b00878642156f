package sfu

import (
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
)

// Source says what a published track carries. Screen shares are forwarded
// before cameras when a subscriber's estimate is short.
type Source string

// Sources a client may declare for a media section it sends.
const (
	SourceCamera     Source = "camera"
	SourceScreen     Source = "screen"
	SourceMicrophone Source = "microphone"
)

// recentLayer is how long after its last packet a layer still counts as
// sent: a publisher that stopped sending "f" (its own uplink is short) is
// not waited for.
const recentLayer = 2 * time.Second

// rateSmoothing is the weight of the last allocation interval in a
// layer's rate, an exponentially weighted mean: at the default interval
// of 500 ms it remembers about 2 s, so that the interval holding a
// keyframe (several times a delta frame) does not make the layer look
// three times its size, nor the next one a third.
const rateSmoothing = 0.25

// nominalRates are the bitrates (bit/s) a layer is taken to need until
// it has been measured over an allocation interval: what browsers send
// at 320×180, 640×360 and 1280×720.
var nominalRates = [len(layerRIDs)]float64{150_000, 500_000, 1_500_000}

// layer is one simulcast layer (or the only one) of a published track.
type layer struct {
	remote *webrtc.TrackRemote
	ssrc   uint32
	bytes  atomic.Uint64 // RTP bytes received
	last   atomic.Int64  // Unix nanoseconds of the last packet

	// under publishedTrack.mu
	lastPLI   time.Time
	prevBytes uint64
	measured  bool    // prevBytes holds a count from an earlier interval
	rated     bool    // rate holds a measure
	rate      float64 // bit/s, a mean over the last intervals (rateSmoothing)
}

// publishedTrack is one track a participant sends: up to three layers,
// each read by its own goroutine and written to every subscriber's
// DownTrack.
type publishedTrack struct {
	id, streamID string
	kind         webrtc.RTPCodecType
	source       Source
	codec        webrtc.RTPCodecCapability
	vp8, h264    bool
	owner        *Participant
	audioLevelID uint8

	mu     sync.Mutex
	layers [len(layerRIDs)]*layer
	// reading counts the layers whose run has not returned: at 0 every
	// layer ended and the track is unpublished.
	reading int
	// capped is the highest layer forwarded under the owner's publish
	// bitrate cap; lower than the top layer while over it.
	capped atomic.Int32

	downs atomic.Pointer[[]*DownTrack] // copy on write, under mu
}

func newPublishedTrack(owner *Participant, remote *webrtc.TrackRemote, source Source, audioLevelID uint8) *publishedTrack {
	t := &publishedTrack{
		id:           owner.id + "-" + string(source),
		streamID:     owner.id,
		kind:         remote.Kind(),
		source:       source,
		codec:        remote.Codec().RTPCodecCapability,
		owner:        owner,
		audioLevelID: audioLevelID,
	}
	if source == SourceScreen {
		t.streamID = owner.id + "-screen"
	}
	t.vp8 = strings.EqualFold(t.codec.MimeType, webrtc.MimeTypeVP8)
	t.h264 = strings.EqualFold(t.codec.MimeType, webrtc.MimeTypeH264)
	t.capped.Store(int32(len(layerRIDs) - 1))
	t.downs.Store(&[]*DownTrack{})
	return t
}

// layerIndex maps a simulcast RTP stream id to its layer; "" (no
// simulcast) is layer 0.
func layerIndex(rid string) (int, bool) {
	if rid == "" {
		return 0, true
	}
	for i, r := range layerRIDs {
		if r == rid {
			return i, true
		}
	}
	return 0, false
}

// addLayer records remote as layer i; false if that layer exists.
func (t *publishedTrack) addLayer(i int, remote *webrtc.TrackRemote) (*layer, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.layers[i] != nil {
		return nil, false
	}
	l := &layer{remote: remote, ssrc: uint32(remote.SSRC())}
	t.layers[i] = l
	t.reading++
	return l, true
}

// run reads layer i until its track ends, and hands every packet to a
// forwarder of its own (forward), through a queue of forwardQueue
// packets. When the last layer ends (the client stopped sending on the
// section: a screen share that stopped), the owner unpublishes the track.
//
// Reading and forwarding are apart because pion's interceptors stamp a
// packet's arrival for transport-wide congestion control (the TWCC
// feedback the publisher's bandwidth estimate rests on) when it is read:
// read only after the previous packet went to every subscriber, a packet
// would seem to have queued on the path for that long, and in a room of
// many the publisher's estimate would fall for the SFU's own work.
func (t *publishedTrack) run(i int, l *layer) {
	q := make(chan *inPacket, forwardQueue)
	forwarded := make(chan struct{})
	go func() {
		defer close(forwarded)
		t.forward(i, l, q)
	}()
	defer func() {
		close(q)
		<-forwarded
		t.mu.Lock()
		t.reading--
		ended := t.reading == 0
		t.mu.Unlock()
		if ended {
			t.owner.unpublish(t)
		}
	}()
	now := t.owner.room.sfu.cfg.Now
	for {
		b := inPackets.Get().(*inPacket)
		n, _, err := l.remote.Read(b.buf[:])
		if err != nil {
			inPackets.Put(b)
			return
		}
		b.n = n
		l.bytes.Add(uint64(n))
		l.last.Store(now().UnixNano())
		select {
		case q <- b:
		default:
			// The forwarder is forwardQueue packets behind: this one is
			// lost, as on a full link.
			inPackets.Put(b)
			t.owner.room.sfu.stats.ForwardQueueDrops.Add(1)
		}
	}
}

// forward forwards the packets of layer i that run queued, in order,
// until q is closed.
func (t *publishedTrack) forward(i int, l *layer, q <-chan *inPacket) {
	var pkt rtp.Packet
	for b := range q {
		if pkt.Unmarshal(b.buf[:b.n]) != nil {
			inPackets.Put(b)
			continue
		}
		var level []byte
		keyframe := true
		switch {
		case t.kind == webrtc.RTPCodecTypeAudio:
			if t.audioLevelID != 0 {
				if e := pkt.GetExtension(t.audioLevelID); len(e) >= 1 {
					level = e[:1]
					t.owner.room.speakers.observe(t.owner.id, e[0]&0x7f)
				}
			}
		case t.vp8:
			keyframe = isVP8Keyframe(pkt.Payload)
		case t.h264:
			keyframe = isH264Keyframe(pkt.Payload)
		}
		if h := t.owner.room.sfu.forwardHook; h != nil {
			h()
		}
		if int32(i) <= t.capped.Load() {
			for _, d := range *t.downs.Load() {
				d.write(i, &pkt, keyframe, level)
			}
		}
		inPackets.Put(b)
	}
}

// forwardQueue is how many packets of one layer wait between its reader
// and its forwarder: about half a second of a 720p layer.
const forwardQueue = 512

// inPacket is one packet read from a publisher.
type inPacket struct {
	buf [1500]byte
	n   int
}

// inPackets recycles inPackets: a packet's buffer is used again once it
// went to every subscriber.
var inPackets = sync.Pool{New: func() any { return new(inPacket) }}

// requestKeyframe sends the publisher a PLI for layer i, unless one went
// out less than PLIInterval ago.
func (t *publishedTrack) requestKeyframe(i int) {
	if t.kind != webrtc.RTPCodecTypeVideo || i < 0 || i >= len(t.layers) {
		return
	}
	cfg := &t.owner.room.sfu.cfg
	t.mu.Lock()
	l := t.layers[i]
	if l == nil || cfg.Now().Sub(l.lastPLI) < cfg.PLIInterval {
		t.mu.Unlock()
		return
	}
	l.lastPLI = cfg.Now()
	t.mu.Unlock()
	t.owner.room.sfu.stats.PLIs.Add(1)
	_ = t.owner.pc.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: l.ssrc}})
}

func (t *publishedTrack) addDown(d *DownTrack) {
	t.mu.Lock()
	old := *t.downs.Load()
	next := make([]*DownTrack, len(old), len(old)+1)
	copy(next, old)
	next = append(next, d)
	t.downs.Store(&next)
	t.mu.Unlock()
}

func (t *publishedTrack) removeDown(d *DownTrack) {
	t.mu.Lock()
	old := *t.downs.Load()
	next := make([]*DownTrack, 0, len(old))
	for _, x := range old {
		if x != d {
			next = append(next, x)
		}
	}
	t.downs.Store(&next)
	t.mu.Unlock()
}

// measure updates each layer's bitrate over the elapsed interval.
func (t *publishedTrack) measure(elapsed time.Duration) {
	if elapsed <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, l := range t.layers {
		if l == nil {
			continue
		}
		// A layer that started during the interval has no rate yet: its
		// bytes would be divided by an interval it was not there for.
		b := l.bytes.Load()
		if l.measured {
			r := float64(b-l.prevBytes) * 8 / elapsed.Seconds()
			if l.rated {
				l.rate += rateSmoothing * (r - l.rate)
			} else {
				l.rate, l.rated = r, true
			}
		}
		l.prevBytes, l.measured = b, true
	}
}

// layerRates returns each layer's bitrate (bit/s) and whether it is sent
// and forwarded now.
func (t *publishedTrack) layerRates() (rates [len(layerRIDs)]float64, available [len(layerRIDs)]bool) {
	now := t.owner.room.sfu.cfg.Now().UnixNano()
	capped := int(t.capped.Load())
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, l := range t.layers {
		if l == nil {
			continue
		}
		rates[i] = l.rate
		if !l.measured {
			rates[i] = nominalRates[i]
		}
		available[i] = i <= capped && now-l.last.Load() < int64(recentLayer)
	}
	return rates, available
}

// info describes the track for a subscriber's tracks event.
func (t *publishedTrack) info() TrackInfo {
	ti := TrackInfo{Track: t.id, Stream: t.streamID, Peer: t.owner.id,
		Kind: t.kind.String(), Source: t.source}
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, l := range t.layers {
		if l != nil && l.remote.RID() != "" {
			ti.Layers = append(ti.Layers, layerRIDs[i])
		}
	}
	return ti
}

// TrackInfo is one track a subscriber receives, for the "tracks" event:
// which peer owns which stream.
type TrackInfo struct {
	Track  string   `json:"track"`            // track id (the MediaStreamTrack id the subscriber sees)
	Stream string   `json:"stream"`           // stream id (msid)
	Peer   string   `json:"peer"`             // publisher's peer id
	Kind   string   `json:"kind"`             // "audio" or "video"
	Source Source   `json:"source"`           // camera, screen or microphone
	Layers []string `json:"layers,omitempty"` // simulcast layers sent, of q, h, f
}
