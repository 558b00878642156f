package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/pion/webrtc/v4/pkg/media/ivfreader"

	"github.com/icebox-project/icebox/signaling/wire"
)

// In an SFU room (-sfu) natpeer does what the page does there
// (docs/protocol.md, "SFU rooms"): one peer connection to the peer "sfu",
// on which it is the only offerer; it publishes the VP8 frames of -ivf in
// a loop on a sendonly transceiver, adds the recvonly transceivers the
// SFU asks for ({"renegotiate":…}) and offers again, and reports once it
// has received sfuPackets RTP packets from the SFU (someone else's
// camera).

// sfuPackets is how many RTP packets from the SFU make a call: a few
// seconds of the other's video.
const sfuPackets = 30

// parseNetworks reads -networks: "" (pion's default) or a comma list of
// udp4, udp6, tcp4, tcp6.
func parseNetworks(s string) ([]webrtc.NetworkType, error) {
	if s == "" {
		return nil, nil
	}
	var out []webrtc.NetworkType
	for _, n := range strings.Split(s, ",") {
		t, err := webrtc.NewNetworkType(n)
		if err != nil {
			return nil, fmt.Errorf("-networks %q: %w", s, err)
		}
		out = append(out, t)
	}
	return out, nil
}

// readIVF returns the frames of the IVF file at path.
func readIVF(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, _, err := ivfreader.NewWith(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var frames [][]byte
	for {
		frame, _, err := r.ParseNextFrame()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		frames = append(frames, frame)
	}
	if len(frames) == 0 {
		return nil, fmt.Errorf("%s: no frames", path)
	}
	return frames, nil
}

// runSFU publishes to the SFU and waits for sfuPackets packets from it.
func (p *peer) runSFU(ctx context.Context, cfg rtcConfiguration, welcome *wire.Welcome, frames [][]byte) error {
	if welcome.Media != wire.MediaSFU {
		return fmt.Errorf("welcome media %q, want sfu", welcome.Media)
	}
	p.other(wire.SFUPeer)
	if err := p.newPeerConnection(cfg); err != nil {
		return err
	}
	var packets atomic.Int64
	enough := make(chan struct{})
	p.pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		for {
			if _, _, err := tr.ReadRTP(); err != nil {
				return
			}
			if packets.Add(1) == sfuPackets {
				close(enough)
			}
		}
	})
	track, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8}, "camera", p.rep.Name)
	if err != nil {
		return err
	}
	if _, err := p.pc.AddTransceiverFromTrack(track, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionSendonly}); err != nil {
		return err
	}
	if err := p.offerSFU(); err != nil {
		return err
	}
	go func() {
		tick := time.NewTicker(time.Second / 15)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
			_ = track.WriteSample(media.Sample{Data: frames[i%len(frames)], Duration: time.Second / 15})
		}
	}()
	sigErr := make(chan error, 1)
	go func() { sigErr <- p.serveSFU(ctx) }()
	select {
	case <-enough:
	case err := <-sigErr:
		return fmt.Errorf("signaling ended before media came (%d packets): %w", packets.Load(), err)
	case <-ctx.Done():
		return fmt.Errorf("%d RTP packets from the SFU, want %d: %w", packets.Load(), sfuPackets, ctx.Err())
	}
	p.rep.Received = []string{fmt.Sprintf("%d rtp packets", packets.Load())}
	return p.selected()
}

// offerSFU sends an offer for the peer connection as it is.
func (p *peer) offerSFU() error {
	offer, err := p.pc.CreateOffer(nil)
	if err == nil {
		err = p.pc.SetLocalDescription(offer)
	}
	if err != nil {
		return fmt.Errorf("offer: %w", err)
	}
	return p.signal(map[string]any{"sdp": p.pc.LocalDescription()})
}

// serveSFU handles the SFU's signals until the socket closes or ctx
// ends: answers, and requests to offer again with more recvonly
// sections.
func (p *peer) serveSFU(ctx context.Context) error {
	// The SFU may ask for an offer while the last one is unanswered: the
	// sections are added at once, the offer waits for the answer.
	again := false
	for {
		msg, err := p.sig.Receive(ctx)
		if err != nil {
			return err
		}
		switch m := msg.(type) {
		case *wire.Error:
			return m
		case *wire.Signal:
			if m.From != wire.SFUPeer {
				continue
			}
			var data struct {
				Renegotiate *struct {
					Audio int `json:"audio"`
					Video int `json:"video"`
				} `json:"renegotiate"`
				SDP *webrtc.SessionDescription `json:"sdp"`
			}
			if err := json.Unmarshal(m.Data, &data); err != nil {
				return fmt.Errorf("signal from the SFU: %w", err)
			}
			if r := data.Renegotiate; r != nil {
				for kind, n := range map[webrtc.RTPCodecType]int{webrtc.RTPCodecTypeAudio: r.Audio, webrtc.RTPCodecTypeVideo: r.Video} {
					for range n {
						if _, err := p.pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
							return err
						}
					}
				}
				again = true
			}
			if data.SDP != nil {
				if err := p.pc.SetRemoteDescription(*data.SDP); err != nil {
					return fmt.Errorf("the SFU's answer: %w", err)
				}
			}
			if again && p.pc.SignalingState() == webrtc.SignalingStateStable {
				again = false
				if err := p.offerSFU(); err != nil {
					return err
				}
			}
		}
	}
}
