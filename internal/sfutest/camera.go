package sfutest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// LayerRIDs are a simulcast camera's RTP stream ids, smallest first, as
// the page sends them (protocol v1: q, h, f; sfu/testdata/<rid>.ivf).
var LayerRIDs = [3]string{"q", "h", "f"}

// Camera is a VP8 simulcast camera on a sendonly section of a pion peer
// connection, sending VP8 clips (by default sfu/testdata's q, h and f:
// 80×60, 160×120 and 320×240) at 15 frame/s. Each packet names its mid and RTP stream id
// in header extensions (RFC 8843, RFC 8852), as browsers do; on a PLI a
// layer restarts at its keyframe.
type Camera struct {
	Transceiver *webrtc.RTPTransceiver
	// Sent counts the RTP packets written, all layers.
	Sent atomic.Int64
}

// AddCamera adds a Camera sending the clips in sfu/testdata to pc (see
// NewCamera), failing t on an error.
func AddCamera(t TB, pc *webrtc.PeerConnection, streamID string, stop <-chan struct{}, wg *sync.WaitGroup) *Camera {
	t.Helper()
	var clips [3][][]byte
	for i, rid := range LayerRIDs {
		clips[i] = Clip(t, rid)
	}
	c, err := NewCamera(pc, streamID, clips, stop, wg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// NewCamera adds a Camera to pc sending clips (VP8 frames of layers q,
// h and f, each looped, the first frame a keyframe); it sends, once the
// section is negotiated, until stop is closed. wg counts its goroutines.
// The caller offers. Its stream id is streamID.
func NewCamera(pc *webrtc.PeerConnection, streamID string, clips [3][][]byte, stop <-chan struct{}, wg *sync.WaitGroup) (*Camera, error) {
	return NewCameraLayers(pc, streamID, clips, []int{0, 1, 2}, stop, wg)
}

// NewCameraLayers is NewCamera sending only the given layers (indexes
// into LayerRIDs and clips), in that order: in the offer's simulcast
// line and in each frame's packets.
func NewCameraLayers(pc *webrtc.PeerConnection, streamID string, clips [3][][]byte, layers []int, stop <-chan struct{}, wg *sync.WaitGroup) (*Camera, error) {
	if len(layers) == 0 {
		return nil, fmt.Errorf("camera: no layers")
	}
	codec := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	tracks := make([]*webrtc.TrackLocalStaticRTP, len(layers))
	packetizers := make([]rtp.Packetizer, len(layers))
	rids := make([]string, len(layers))
	for i, l := range layers {
		if l < 0 || l >= len(LayerRIDs) {
			return nil, fmt.Errorf("camera: no layer %d", l)
		}
		rids[i] = LayerRIDs[l]
		if len(clips[l]) == 0 {
			return nil, fmt.Errorf("camera: no frames for layer %s", rids[i])
		}
		tr, err := webrtc.NewTrackLocalStaticRTP(codec, "camera", streamID, webrtc.WithRTPStreamID(rids[i]))
		if err != nil {
			return nil, err
		}
		tracks[i] = tr
		packetizers[i] = rtp.NewPacketizer(1200, 0, 0, &codecs.VP8Payloader{EnablePictureID: true}, rtp.NewRandomSequencer(), 90000)
	}
	// Not AddTrack: it would take a recvonly section the SFU sends on.
	tr, err := pc.AddTransceiverFromTrack(tracks[0], webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly})
	if err != nil {
		return nil, err
	}
	for _, x := range tracks[1:] {
		if err := tr.Sender().AddEncoding(x); err != nil {
			return nil, err
		}
	}
	c := &Camera{Transceiver: tr}
	restart := make([]atomic.Bool, len(layers))
	for i, rid := range rids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				pkts, _, err := tr.Sender().ReadSimulcastRTCP(rid)
				if err != nil {
					return
				}
				for _, p := range pkts {
					if _, ok := p.(*rtcp.PictureLossIndication); ok {
						restart[i].Store(true)
					}
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second / 15)
		defer tick.Stop()
		next := make([]int, len(layers))
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			var midID, ridID uint8
			for _, e := range tr.Sender().GetParameters().HeaderExtensions {
				switch e.URI {
				case sdp.SDESMidURI:
					midID = uint8(e.ID)
				case sdp.SDESRTPStreamIDURI:
					ridID = uint8(e.ID)
				}
			}
			mid := tr.Mid()
			if midID == 0 || ridID == 0 || mid == "" {
				continue // not negotiated yet
			}
			for i := range tracks {
				if restart[i].Swap(false) {
					next[i] = 0
				}
				clip := clips[layers[i]]
				for _, p := range packetizers[i].Packetize(clip[next[i]], 90000/15) {
					_ = p.Header.SetExtension(midID, []byte(mid))
					_ = p.Header.SetExtension(ridID, []byte(rids[i]))
					if tracks[i].WriteRTP(p) == nil {
						c.Sent.Add(1)
					}
				}
				next[i] = (next[i] + 1) % len(clip)
			}
		}
	}()
	return c, nil
}
