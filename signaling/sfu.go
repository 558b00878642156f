package signaling

import (
	"encoding/json"
	"errors"

	"github.com/icebox-project/icebox/sfu"
	"github.com/icebox-project/icebox/signaling/wire"
)

// Media modes of a room (welcome's "media", docs/protocol.md).
const (
	// MediaMesh: every pair of peers has its own peer connection.
	MediaMesh = wire.MediaMesh
	// MediaSFU: every peer has one peer connection, to the SFU.
	MediaSFU = wire.MediaSFU
	// SFUPeer is the SFU's reserved peer id. Peer ids are 16
	// characters, so no peer can have it.
	SFUPeer = wire.SFUPeer
)

// SFUConfig puts rooms on the embedded SFU.
type SFUConfig struct {
	// Server forwards the media of SFU rooms.
	Server *sfu.SFU
	// Media returns MediaSFU or MediaMesh for a room, by name, when the
	// room opens. Nil: every room is an SFU room.
	Media func(room string) string
	// MaxPeersPerRoom caps an SFU room (wire.CodeRoomFull). Zero: 25.
	MaxPeersPerRoom int
}

// mediaOf is the media mode of a room opening now: "" without an SFU
// (welcome then carries no "media").
func (c *SFUConfig) mediaOf(room string) string {
	if c == nil || c.Server == nil {
		return ""
	}
	if c.Media == nil || c.Media(room) == MediaSFU {
		return MediaSFU
	}
	return MediaMesh
}

func (c *SFUConfig) maxPeers() int {
	if c == nil || c.MaxPeersPerRoom <= 0 {
		return 25
	}
	return c.MaxPeersPerRoom
}

// mediaOfPeer is the media mode of p's room ("" out of a room or
// without an SFU).
func (h *hub) mediaOfPeer(p *peer) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if p.room == nil {
		return ""
	}
	return p.room.media
}

// joinSFU makes p a participant of its SFU room, after its welcome. What
// the SFU says goes to p's queue, which follows p across a resume.
func (p *peer) joinSFU(s *Server, room string) {
	part, err := s.cfg.SFU.Server.Join(room, p.id, sfu.Events{
		Signal: func(data []byte) {
			p.enqueueSignal(encode(&wire.Signal{From: SFUPeer, Data: json.RawMessage(data)}), nil)
		},
		Tracks: func(list []sfu.TrackInfo) {
			m := &wire.Tracks{Tracks: make([]wire.TrackInfo, len(list))}
			for i, t := range list {
				m.Tracks[i] = wire.TrackInfo{Track: t.Track, Stream: t.Stream, Peer: t.Peer, Kind: t.Kind, Source: string(t.Source), Layers: t.Layers}
			}
			p.enqueue(encode(m))
		},
		Speaker: func(peer string) { p.enqueue(encode(&wire.Speaker{Peer: peer})) },
		Error: func(err error) {
			p.enqueue(encode(&wire.Error{Code: sfuErrorCode(err), Message: err.Error()}))
		},
	})
	if err != nil {
		p.enqueue(encode(&wire.Error{Code: wire.CodeSFUUnavailable, Message: err.Error()}))
		return
	}
	p.sfuMu.Lock()
	old := p.sfuPart
	p.sfuPart = part
	p.sfuMu.Unlock()
	if old != nil {
		_ = old.Close()
	}
}

// leaveSFU ends p's SFU participant, if it has one, on a goroutine of
// its own (the caller may hold the hub lock; closing a peer connection
// waits for its transports).
func (p *peer) leaveSFU() {
	p.sfuMu.Lock()
	part := p.sfuPart
	p.sfuPart = nil
	p.sfuMu.Unlock()
	if part != nil {
		go func() { _ = part.Close() }()
	}
}

func (p *peer) participant() *sfu.Participant {
	p.sfuMu.Lock()
	defer p.sfuMu.Unlock()
	return p.sfuPart
}

// signalSFU hands a signal to "sfu" to p's participant.
func (p *peer) signalSFU(data json.RawMessage) *wire.Error {
	part := p.participant()
	if part == nil {
		return &wire.Error{Code: wire.CodeUnknownPeer, Message: `no peer "sfu": this room is not an SFU room`}
	}
	if err := part.HandleSignal(data); err != nil {
		return &wire.Error{Code: sfuErrorCode(err), Message: err.Error()}
	}
	return nil
}

// layer takes {"type":"layer","track":…,"layer":"q"|"h"|"f"|"none"}.
func (p *peer) layer(m *wire.Layer) *wire.Error {
	part := p.participant()
	if part == nil {
		return &wire.Error{Code: wire.CodeBadMessage, Message: "layer is for SFU rooms only"}
	}
	if err := part.RequestLayer(m.Track, m.Layer); err != nil {
		return &wire.Error{Code: sfuErrorCode(err), Message: err.Error()}
	}
	return nil
}

// sfuErrorCode maps an sfu error to a protocol error code.
func sfuErrorCode(err error) string {
	switch {
	case errors.Is(err, sfu.ErrTooLarge):
		return wire.CodeTooLarge
	case errors.Is(err, sfu.ErrPublishLimit):
		return wire.CodePublishLimit
	case errors.Is(err, sfu.ErrUnknownTrack):
		return wire.CodeUnknownTrack
	case errors.Is(err, sfu.ErrRoomFull), errors.Is(err, sfu.ErrClosed):
		return wire.CodeSFUUnavailable
	}
	return wire.CodeBadMessage
}
