package sfu

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// Layers of a simulcast camera, by RTP stream id (RFC 8851): index 0 is
// "q" (scaled down 4 times), 1 "h" (2 times), 2 "f" (full size). A track
// without simulcast has one layer, at index 0.
var layerRIDs = [...]string{"q", "h", "f"}

// noLayer is a down-track that forwards nothing (paused, or not started).
const noLayer = -1

// ParseLayer maps "q", "h", "f" to 0, 1, 2 and "none" to -1 (paused).
func ParseLayer(s string) (int, error) {
	for i, rid := range layerRIDs {
		if s == rid {
			return i, nil
		}
	}
	if s == "none" {
		return noLayer, nil
	}
	return 0, fmt.Errorf("%w: %q is not q, h, f or none", ErrBadLayer, s)
}

// DownTrack is one published track as one subscriber receives it: a
// webrtc.TrackLocal that rewrites SSRC, payload type, sequence numbers,
// timestamps and the VP8 picture id so the stream stays continuous
// whichever layer feeds it, and switches layers only on a keyframe.
type DownTrack struct {
	pub *publishedTrack
	sub *Participant
	now func() time.Time

	mu           sync.Mutex
	writer       webrtc.TrackLocalWriter
	ssrc         uint32
	payloadType  uint8
	audioLevelID uint8
	midID        uint8  // the mid header extension's id (RFC 8843 §15); 0: not negotiated
	mid          []byte // the media section's mid, once known
	exts         [2]rtp.Extension
	needMid      atomic.Bool // bound with a mid extension and its mid not yet known
	boundAt      time.Time
	answer       int64 // the number of the SFU's answer (Participant.answers) that opened its section

	requested int // largest layer the subscriber asked for; noLayer: paused
	target    int // layer the allocation chose
	current   int // layer being forwarded

	started   bool
	lastSeq   uint16
	lastTS    uint32
	lastPID   uint16
	lastWrite time.Time
	seqOff    uint16
	tsOff     uint32
	pidOff    uint16
	switchSeq uint16 // first sequence number (publisher's) of current
	buf       []byte
}

func newDownTrack(pub *publishedTrack, sub *Participant) *DownTrack {
	d := &DownTrack{pub: pub, sub: sub, now: sub.room.sfu.cfg.Now,
		requested: len(layerRIDs) - 1, target: noLayer, current: noLayer}
	if pub.kind == webrtc.RTPCodecTypeAudio {
		d.target = 0
	}
	return d
}

// ID is the track id the subscriber sees: "<publisher id>-<source>".
func (d *DownTrack) ID() string { return d.pub.id }

// RID is empty: a subscriber gets one stream per track.
func (d *DownTrack) RID() string { return "" }

// StreamID is the publisher's id for its camera and microphone (one
// stream, kept in sync), "<publisher id>-screen" for its screen share.
func (d *DownTrack) StreamID() string { return d.pub.streamID }

// Kind is the published track's kind.
func (d *DownTrack) Kind() webrtc.RTPCodecType { return d.pub.kind }

// Bind is called by pion when the subscriber's answer names the codecs:
// it picks the publisher's codec among them.
func (d *DownTrack) Bind(ctx webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	var codec *webrtc.RTPCodecParameters
	for _, c := range ctx.CodecParameters() {
		if strings.EqualFold(c.MimeType, d.pub.codec.MimeType) {
			codec = &c
			break
		}
	}
	if codec == nil {
		return webrtc.RTPCodecParameters{}, fmt.Errorf("sfu: subscriber does not take %s", d.pub.codec.MimeType)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.writer = ctx.WriteStream()
	d.boundAt, d.answer = d.now(), d.sub.answers.Load()
	d.ssrc = uint32(ctx.SSRC())
	d.payloadType = uint8(codec.PayloadType)
	d.audioLevelID, d.midID, d.mid = 0, 0, nil
	for _, e := range ctx.HeaderExtensions() {
		switch e.URI {
		case sdp.AudioLevelURI:
			d.audioLevelID = uint8(e.ID)
		case sdp.SDESMidURI:
			d.midID = uint8(e.ID)
		}
	}
	d.needMid.Store(d.midID != 0)
	return *codec, nil
}

// Unbind stops writing until the next Bind.
func (d *DownTrack) Unbind(webrtc.TrackLocalContext) error {
	d.mu.Lock()
	d.writer = nil
	d.mu.Unlock()
	return nil
}

// setRequested records the largest layer the subscriber shows.
func (d *DownTrack) setRequested(layer int) {
	d.mu.Lock()
	d.requested = layer
	d.mu.Unlock()
}

func (d *DownTrack) layers() (requested, target, current int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.requested, d.target, d.current
}

// setTarget makes layer the one to forward from its next keyframe on
// (noLayer: stop now), and asks its publisher for that keyframe.
func (d *DownTrack) setTarget(layer int) {
	d.mu.Lock()
	changed := d.target != layer
	d.target = layer
	if layer == noLayer {
		d.current = noLayer
	}
	waiting := layer != noLayer && layer != d.current
	d.mu.Unlock()
	if changed && waiting {
		d.pub.requestKeyframe(layer)
	}
}

// keyframeWanted asks the publisher for a keyframe of the layer being
// forwarded (the subscriber lost one: a PLI or FIR came back).
func (d *DownTrack) keyframeWanted() {
	d.mu.Lock()
	layer := d.current
	if layer == noLayer {
		layer = d.target
	}
	d.mu.Unlock()
	if layer != noLayer {
		d.pub.requestKeyframe(layer)
	}
}

// write forwards pkt, read from layer of the published track, if that is
// the layer this subscriber gets; keyframe says pkt starts a keyframe.
// level is the RFC 6464 audio level byte to send (0 with no level).
func (d *DownTrack) write(layer int, pkt *rtp.Packet, keyframe bool, level []byte) {
	if d.needMid.Load() {
		// Outside mu: pion may hold its own locks while it calls Bind.
		if mid := d.sub.midOf(d); mid != nil {
			d.mu.Lock()
			d.mid = mid
			d.mu.Unlock()
			d.needMid.Store(false)
		}
	}
	d.mu.Lock()
	if d.writer == nil || (!d.started && d.sub.applied.Load() < d.answer && d.now().Sub(d.boundAt) < d.sub.room.sfu.cfg.StartDelay) {
		d.mu.Unlock()
		return
	}
	if layer != d.current {
		if layer != d.target {
			d.mu.Unlock()
			return
		}
		if !keyframe {
			d.mu.Unlock()
			d.pub.requestKeyframe(layer)
			return
		}
		if d.current != noLayer {
			d.sub.room.sfu.stats.LayerSwitches.Add(1)
		}
		d.switchTo(layer, pkt)
	} else if int16(pkt.SequenceNumber-d.switchSeq) < 0 {
		d.mu.Unlock() // sent before the switch: its frame was never started
		return
	}
	h := rtp.Header{
		Version:        2,
		Marker:         pkt.Marker,
		PayloadType:    d.payloadType,
		SequenceNumber: pkt.SequenceNumber - d.seqOff,
		Timestamp:      pkt.Timestamp - d.tsOff,
		SSRC:           d.ssrc,
	}
	// Every packet names its media section (BUNDLE demultiplexing, RFC
	// 8843 §9.2): a browser that has not yet applied the answer giving
	// this SSRC still routes it to its transceiver; without it, Chromium
	// drops the stream for good.
	h.Extensions = d.exts[:0] // room for both, no allocation
	if d.midID != 0 && len(d.mid) > 0 {
		_ = h.SetExtension(d.midID, d.mid)
	}
	if level != nil && d.audioLevelID != 0 {
		_ = h.SetExtension(d.audioLevelID, level)
	}
	payload := pkt.Payload
	if d.pub.vp8 {
		if v, ok := parseVP8(payload); ok && v.pidOffset != 0 {
			d.buf = append(d.buf[:0], payload...)
			payload = d.buf
			pid := (v.pictureID - d.pidOff) & 0x7fff
			setVP8PictureID(payload, v, pid)
			if ahead := (pid - d.lastPID) & 0x7fff; ahead != 0 && ahead < 0x4000 {
				d.lastPID = pid
			}
		}
	}
	if int16(h.SequenceNumber-d.lastSeq) > 0 {
		d.lastSeq = h.SequenceNumber
	}
	if int32(h.Timestamp-d.lastTS) > 0 {
		d.lastTS = h.Timestamp
	}
	d.lastWrite = d.now()
	_, err := d.writer.WriteRTP(&h, payload)
	probes := 0
	if err == nil && d.pub.kind == webrtc.RTPCodecTypeVideo && !keyframe && d.sub.probe.active() {
		// Probe copies (probe_bwe.go): the same packet again, which the
		// subscriber drops as a duplicate; a keyframe's first packet is
		// never copied.
		for n := d.sub.probe.copies(h.MarshalSize()+len(payload), d.lastWrite); probes < n; probes++ {
			if _, err := d.writer.WriteRTP(&h, payload); err != nil {
				break
			}
		}
	}
	d.mu.Unlock()
	if err == nil {
		st := &d.sub.room.sfu.stats
		if d.pub.kind == webrtc.RTPCodecTypeAudio {
			st.ForwardedAudioBytes.Add(uint64(len(payload)))
			st.ForwardedAudioPackets.Add(1)
		} else {
			st.ForwardedVideoBytes.Add(uint64(len(payload)))
			st.ForwardedVideoPackets.Add(1)
		}
		if probes > 0 {
			st.ProbeBytes.Add(uint64(probes * len(payload)))
		}
	}
}

// switchTo makes layer current from pkt on: the next sequence number,
// picture id and a timestamp advanced by the wall clock time since the
// last packet written continue the stream the subscriber has seen.
func (d *DownTrack) switchTo(layer int, pkt *rtp.Packet) {
	now := d.now()
	seq, ts, pid := uint16(rand.Uint32()), rand.Uint32(), uint16(rand.Uint32())&0x7fff
	if d.started {
		seq = d.lastSeq + 1
		step := uint32(now.Sub(d.lastWrite).Seconds() * float64(d.pub.codec.ClockRate))
		ts = d.lastTS + max(step, 1)
		pid = (d.lastPID + 1) & 0x7fff
	}
	d.seqOff = pkt.SequenceNumber - seq
	d.tsOff = pkt.Timestamp - ts
	if v, ok := parseVP8(pkt.Payload); ok && d.pub.vp8 {
		d.pidOff = v.pictureID - pid
		d.lastPID = (pid - 1) & 0x7fff
	}
	d.lastSeq, d.lastTS = seq-1, ts
	d.switchSeq = pkt.SequenceNumber
	d.current = layer
	d.started = true
}
