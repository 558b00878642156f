package sfu

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// Probe limits: a probe is the connectivity check page's test that a
// browser reaches the SFU's media sockets (GET /check).
const (
	// MaxProbes is the most probes open at once; past it Probe fails
	// with ErrProbeBusy.
	MaxProbes = 16
	// ProbeLife bounds a probe's life, from its answer.
	ProbeLife = 30 * time.Second
	// ProbeSDPSize caps a probe's offer, bytes.
	ProbeSDPSize = 16 << 10
	// probeMessageSize caps what a probe echoes, bytes per message.
	probeMessageSize = 1024
)

// ErrProbeBusy is a probe past MaxProbes open at once.
var ErrProbeBusy = errors.New("sfu: too many connectivity probes")

// probes are the open probes' peer connections (under SFU.mu).
type probes map[*webrtc.PeerConnection]struct{}

// Probe answers offer, the SDP of a peer connection that has one data
// channel and no media, from the SFU's media sockets: the answer's
// candidates are the ones participants get (UDP on the SFU's port, and
// TCP on the shared port with ICE-TCP), so a browser that opens the
// channel knows it reaches the SFU that way. The SFU echoes every message
// of up to 1 KiB on the channel. The probe ends when the channel or the
// connection closes or fails, or ProbeLife after the answer; it is no
// participant and holds no place in a room. Errors: ErrTooLarge (over
// ProbeSDPSize), ErrBadSignal (not an offer of exactly one data channel
// section), ErrProbeBusy, ErrClosed.
func (s *SFU) Probe(ctx context.Context, offer string) (answer string, err error) {
	if len(offer) > ProbeSDPSize {
		return "", fmt.Errorf("%w: probe offer of %d bytes, at most %d", ErrTooLarge, len(offer), ProbeSDPSize)
	}
	var parsed sdp.SessionDescription
	if err := parsed.UnmarshalString(offer); err != nil {
		return "", fmt.Errorf("%w: probe offer: %v", ErrBadSignal, err)
	}
	if n := len(parsed.MediaDescriptions); n != 1 || parsed.MediaDescriptions[0].MediaName.Media != "application" {
		return "", fmt.Errorf("%w: a probe offers one data channel section and no media, not %d sections", ErrBadSignal, n)
	}
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(s.settings)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return "", fmt.Errorf("sfu: probe: %w", err)
	}
	s.mu.Lock()
	switch {
	case s.closed:
		err = ErrClosed
	case len(s.probes) >= MaxProbes:
		err = fmt.Errorf("%w: %d open, at most %d", ErrProbeBusy, len(s.probes), MaxProbes)
	default:
		if s.probes == nil {
			s.probes = probes{}
		}
		s.probes[pc] = struct{}{}
	}
	s.mu.Unlock()
	if err != nil {
		_ = pc.Close()
		return "", err
	}
	var once sync.Once
	end := func() {
		once.Do(func() {
			s.mu.Lock()
			delete(s.probes, pc)
			s.mu.Unlock()
			go func() { _ = pc.Close() }() // not on pion's own callbacks
		})
	}
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateFailed || st == webrtc.PeerConnectionStateClosed {
			end()
		}
	})
	pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		dc.OnMessage(func(m webrtc.DataChannelMessage) {
			switch {
			case len(m.Data) > probeMessageSize:
			case m.IsString:
				_ = dc.SendText(string(m.Data))
			default:
				_ = dc.Send(m.Data)
			}
		})
		dc.OnClose(end)
	})
	if err := s.answerProbe(ctx, pc, offer); err != nil {
		end()
		return "", err
	}
	t := time.AfterFunc(ProbeLife, end)
	pc.OnSignalingStateChange(func(st webrtc.SignalingState) {
		if st == webrtc.SignalingStateClosed {
			t.Stop()
		}
	})
	return pc.LocalDescription().SDP, nil
}

// answerProbe sets offer, and an answer holding every candidate, on pc.
func (s *SFU) answerProbe(ctx context.Context, pc *webrtc.PeerConnection, offer string) error {
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return fmt.Errorf("%w: probe offer: %v", ErrBadSignal, err)
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return fmt.Errorf("%w: probe answer: %v", ErrBadSignal, err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		return fmt.Errorf("sfu: probe answer: %w", err)
	}
	select {
	case <-gathered:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("sfu: probe answer: candidates: %w", ctx.Err())
	}
}

// closeProbes ends every open probe (Close).
func (s *SFU) closeProbes() {
	s.mu.Lock()
	list := s.probes
	s.probes = nil
	s.mu.Unlock()
	for pc := range list {
		_ = pc.Close()
	}
}
