package signaling

import (
	"encoding/json"
	"errors"

	"github.com/icebox-project/icebox/sfu"
)

// Media modes of a room (welcome's "media", docs/protocol.md).
const (
	// MediaMesh: every pair of peers has its own peer connection.
	MediaMesh = "mesh"
	// MediaSFU: every peer has one peer connection, to the SFU.
	MediaSFU = "sfu"
)

// SFUPeer is the reserved peer id of the SFU in an SFU room. Peer ids
// are 16 characters, so no peer can have it.
const SFUPeer = "sfu"

// Message types added for SFU rooms.
const (
	TypeMedia   = "media"   // server → client: the room's media mode changed
	TypeTracks  = "tracks"  // server → client: which peer owns which stream
	TypeLayer   = "layer"   // client → server: the largest layer shown of a track
	TypeSpeaker = "speaker" // server → client: the active speaker
)

// Error codes added for SFU rooms.
const (
	// CodePublishLimit: a track or bitrate over the SFU's caps.
	CodePublishLimit = "publish-limit"
	// CodeUnknownTrack: a layer request for a track the peer does not
	// receive.
	CodeUnknownTrack = "unknown-track"
	// CodeSFUUnavailable: the SFU refused the peer (server full).
	CodeSFUUnavailable = "sfu-unavailable"
)

// SFUConfig puts rooms on the embedded SFU.
type SFUConfig struct {
	// Server forwards the media of SFU rooms.
	Server *sfu.SFU
	// Media returns MediaSFU or MediaMesh for a room, by name, when the
	// room opens. Nil: every room is an SFU room.
	Media func(room string) string
	// MaxPeersPerRoom caps an SFU room ("room-full"). Zero: 25.
	MaxPeersPerRoom int
}

func (c *SFUConfig) mediaOf(room string) string {
	if c == nil || c.Server == nil {
		return MediaMesh
	}
	if c.Media == nil || c.Media(room) == MediaSFU {
		return MediaSFU
	}
	return MediaMesh
}

func (c *SFUConfig) maxPeers(mesh int) int {
	if c == nil || c.MaxPeersPerRoom <= 0 {
		return 25
	}
	return c.MaxPeersPerRoom
}

type tracksMsg struct {
	Type   string          `json:"type"`
	Tracks []sfu.TrackInfo `json:"tracks"`
}

type speakerMsg struct {
	Type string `json:"type"`
	Peer string `json:"peer"`
}

// joinSFU makes c a participant of its SFU room, after its welcome.
func (c *client) joinSFU(room string) {
	s := c.s.cfg.SFU
	p, err := s.Server.Join(room, c.id, sfu.Events{
		Signal: func(data []byte) {
			c.enqueueSignal(encode(signalMsg{Type: TypeSignal, From: SFUPeer, Data: json.RawMessage(data)}), nil)
		},
		Tracks: func(list []sfu.TrackInfo) { c.enqueue(encode(tracksMsg{Type: TypeTracks, Tracks: list})) },
		Speaker: func(peer string) {
			c.enqueue(encode(speakerMsg{Type: TypeSpeaker, Peer: peer}))
		},
		Error: func(err error) { c.enqueue(errorFrame(sfuErrorCode(err), err.Error())) },
	})
	if err != nil {
		c.reply(&protoError{CodeSFUUnavailable, err.Error()})
		return
	}
	c.sfuMu.Lock()
	old := c.sfuPart
	c.sfuPart = p
	c.sfuMu.Unlock()
	if old != nil {
		_ = old.Close()
	}
}

// leaveSFU ends c's SFU participant, if it has one.
func (c *client) leaveSFU() {
	c.sfuMu.Lock()
	p := c.sfuPart
	c.sfuPart = nil
	c.sfuMu.Unlock()
	if p != nil {
		c.s.tasks.goFunc(func() { _ = p.Close() })
	}
}

func (c *client) participant() *sfu.Participant {
	c.sfuMu.Lock()
	defer c.sfuMu.Unlock()
	return c.sfuPart
}

// signalSFU hands a signal to "sfu" to c's participant.
func (c *client) signalSFU(data json.RawMessage) *protoError {
	p := c.participant()
	if p == nil {
		return &protoError{CodeUnknownPeer, `no peer "sfu": this room is not an SFU room`}
	}
	if err := p.HandleSignal(data); err != nil {
		return &protoError{sfuErrorCode(err), err.Error()}
	}
	return nil
}

// layer takes {"type":"layer","track":…,"layer":"q"|"h"|"f"|"none"}.
func (c *client) layer(m *inbound) *protoError {
	p := c.participant()
	if p == nil {
		return &protoError{CodeBadMessage, "layer is for SFU rooms only"}
	}
	if err := p.RequestLayer(m.Track, m.Layer); err != nil {
		return &protoError{sfuErrorCode(err), err.Error()}
	}
	return nil
}

// sfuErrorCode maps an sfu error to a protocol error code.
func sfuErrorCode(err error) string {
	switch {
	case errors.Is(err, sfu.ErrTooLarge):
		return CodeTooLarge
	case errors.Is(err, sfu.ErrPublishLimit):
		return CodePublishLimit
	case errors.Is(err, sfu.ErrUnknownTrack):
		return CodeUnknownTrack
	case errors.Is(err, sfu.ErrRoomFull), errors.Is(err, sfu.ErrClosed):
		return CodeSFUUnavailable
	}
	return CodeBadMessage
}

// mediaOfPeer is the media mode of c's room ("" out of a room).
func (h *hub) mediaOfPeer(c *client) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c.room == nil {
		return ""
	}
	return c.room.media
}
