package sfutest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
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
// connection, sending the clips in sfu/testdata (320×180, 640×360 and
// 1280×720) at 15 frame/s. Each packet names its mid and RTP stream id
// in header extensions (RFC 8843, RFC 8852), as browsers do; on a PLI a
// layer restarts at its keyframe.
type Camera struct {
	Transceiver *webrtc.RTPTransceiver
	// Sent counts the RTP packets written, all layers.
	Sent atomic.Int64
}

// AddCamera adds a Camera sending the clips in sfu/testdata to pc (see
// NewCamera), failing t on an error.
func AddCamera(t testing.TB, pc *webrtc.PeerConnection, streamID string, stop <-chan struct{}, wg *sync.WaitGroup) *Camera {
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
	codec := webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}
	var tracks [3]*webrtc.TrackLocalStaticRTP
	var packetizers [3]rtp.Packetizer
	for i, rid := range LayerRIDs {
		if len(clips[i]) == 0 {
			return nil, fmt.Errorf("camera: no frames for layer %s", rid)
		}
		tr, err := webrtc.NewTrackLocalStaticRTP(codec, "camera", streamID, webrtc.WithRTPStreamID(rid))
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
	var restart [3]atomic.Bool
	for i, rid := range LayerRIDs {
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
		var next [3]int
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
				for _, p := range packetizers[i].Packetize(clips[i][next[i]], 90000/15) {
					_ = p.Header.SetExtension(midID, []byte(mid))
					_ = p.Header.SetExtension(ridID, []byte(LayerRIDs[i]))
					if tracks[i].WriteRTP(p) == nil {
						c.Sent.Add(1)
					}
				}
				next[i] = (next[i] + 1) % len(clips[i])
			}
		}
	}()
	return c, nil
}
