package signaling

import (
	"encoding/json"
	"errors"
	"strings"
	"time"

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
	// MediaAuto is SFUConfig.Media's answer for a room that is a mesh up
	// to SFUConfig.MeshMax peers and moves to the SFU above (automedia.go).
	// It is never on the wire: welcome and media say mesh or sfu.
	MediaAuto = "auto"
	// DefaultMeshMax is SFUConfig.MeshMax's default.
	DefaultMeshMax = 4
	// DefaultMeshReturn is SFUConfig.MeshReturn's default.
	DefaultMeshReturn = 30 * time.Second
)

// SFUConfig puts rooms on the embedded SFU.
type SFUConfig struct {
	// Server forwards the media of SFU rooms.
	Server *sfu.SFU
	// Media returns MediaSFU, MediaMesh or MediaAuto for a room, by
	// name, when the room opens; a room keeps its mode until it closes.
	// Nil: every room is an SFU room.
	Media func(room string) string
	// MaxPeersPerRoom caps an SFU room, and an auto room (wire.CodeRoomFull).
	// Zero: 25.
	MaxPeersPerRoom int
	// MeshMax is the most peers an auto room holds as a mesh: the next
	// joiner moves it to the SFU. Zero: DefaultMeshMax; at least 2.
	MeshMax int
	// MeshReturn is how long an auto room on the SFU must have held two
	// peers or fewer before it goes back to a mesh. Zero:
	// DefaultMeshReturn.
	MeshReturn time.Duration
}

// mediaOf is the media mode of a room opening now ("" without an SFU:
// welcome then carries no "media"), and whether the room is auto (it
// opens as a mesh).
func (c *SFUConfig) mediaOf(room string) (media string, auto bool) {
	if c == nil || c.Server == nil {
		return "", false
	}
	if c.Media == nil {
		return MediaSFU, false
	}
	switch c.Media(room) {
	case MediaSFU:
		return MediaSFU, false
	case MediaAuto:
		return MediaMesh, true
	}
	return MediaMesh, false
}

func (c *SFUConfig) maxPeers() int {
	if c == nil || c.MaxPeersPerRoom <= 0 {
		return 25
	}
	return c.MaxPeersPerRoom
}

func (c *SFUConfig) meshMax() int {
	if c.MeshMax <= 0 {
		return DefaultMeshMax
	}
	return max(2, c.MeshMax)
}

func (c *SFUConfig) meshReturn() time.Duration {
	if c.MeshReturn <= 0 {
		return DefaultMeshReturn
	}
	return c.MeshReturn
}

// sfuRoomOf is p's room and its epoch when the room is on this node's
// SFU.
func (h *hub) sfuRoomOf(p *peer) (r *room, epoch uint64, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if p.room == nil || p.room.media != MediaSFU || !h.hostsLocked(p.room) {
		return nil, 0, false
	}
	return p.room, p.room.epoch, true
}

// joinSFU makes p a participant of r, its room, on the SFU, as r is in
// epoch (automedia.go). A participant made for an epoch that has passed
// (the room went back to a mesh meanwhile), or for a peer that left, is
// closed again. With tell, p is told by a media event once its
// participant is there (a member of a room that just moved; a joiner
// learns it from its welcome): a client that offers to "sfu" on that
// event always finds its participant. What the SFU says goes to p's
// queue, which follows p across a resume. No lock is held.
func (s *Server) joinSFU(p *peer, r *room, epoch uint64, tell bool) {
	// The participant of an earlier SFU period of the same peer id must
	// have left the SFU room first (sfu.ErrDuplicate).
	p.sfuMu.Lock()
	gone := p.sfuGone
	p.sfuMu.Unlock()
	if gone != nil {
		<-gone
	}
	part, err := s.cfg.SFU.Server.Join(r.name, p.id, sfuEvents(
		func(frame []byte) { p.enqueueSignal(frame, nil) }, p.enqueue))
	h := s.hub
	h.mu.Lock()
	current := p.room == r && r.media == MediaSFU && r.epoch == epoch && !h.closed
	if current && err != nil {
		p.enqueue(encode(&wire.Error{Code: wire.CodeSFUUnavailable, Message: err.Error()}))
	}
	if current && err == nil {
		p.leaveSFU() // none expected: every one was ended when the epoch began
		moved := tell && p.media != MediaSFU
		p.sfuMu.Lock()
		p.sfuPart = part
		if moved {
			p.replaceSFULocked()
		}
		p.sfuMu.Unlock()
		if moved {
			p.media = MediaSFU
			p.enqueue(encode(&wire.Media{Media: MediaSFU}))
		}
	}
	h.mu.Unlock()
	if !current && part != nil {
		_ = part.Close()
	}
}

// leaveSFU ends p's SFU participant, if it has one, on a goroutine of
// its own (the caller may hold the hub lock; closing a peer connection
// waits for its transports); joinSFU waits for it to end.
func (p *peer) leaveSFU() {
	p.sfuMu.Lock()
	part := p.sfuPart
	p.sfuPart = nil
	if part != nil {
		gone := make(chan struct{})
		p.sfuGone = gone
		go func() {
			defer close(gone)
			_ = part.Close()
		}()
	}
	p.sfuMu.Unlock()
}

// participant is p's participant; while one is being made for a new
// host here (setHostLocked), it waits for it.
func (p *peer) participant() *sfu.Participant {
	p.sfuMu.Lock()
	ready := p.sfuReady
	p.sfuMu.Unlock()
	if ready != nil {
		<-ready
	}
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
	p.sfuMu.Lock()
	// The participant is checked again with the signal: one made since
	// came with the word to replace the connection.
	current := p.sfuPart == part && p.admitSFULocked(data)
	p.sfuMu.Unlock()
	if !current {
		return errStaleSFUSignal()
	}
	if err := part.HandleSignal(data); err != nil {
		return &wire.Error{Code: sfuErrorCode(err), Message: err.Error()}
	}
	return nil
}

// sdpSessionOf returns the session id in the SDP of data, a signal's
// payload {"sdp":{"type":…,"sdp":…}}: the second field of its o= line
// (RFC 8866 section 5.2), which a peer connection keeps in every offer
// and answer it makes (RFC 8829 sections 5.2.1, 5.2.2). ok is false for
// a signal with no SDP (a candidate, applied); id is "" for an SDP
// without an o= line.
func sdpSessionOf(data json.RawMessage) (id string, ok bool) {
	var m struct {
		SDP *struct {
			SDP string `json:"sdp"`
		} `json:"sdp"`
	}
	if json.Unmarshal(data, &m) != nil || m.SDP == nil {
		return "", false
	}
	for rest := m.SDP.SDP; rest != ""; {
		var line string
		line, rest, _ = strings.Cut(rest, "\n")
		if o, found := strings.CutPrefix(line, "o="); found {
			if f := strings.Fields(o); len(f) >= 2 {
				return f[1], true
			}
			break
		}
	}
	return "", true
}

// replaceSFULocked notes that p is being told to make a new connection
// to "sfu" (a renew, a move to the SFU): what its old connection still
// sends, crossing the word on the wire, must not reach the participant
// made for the new one, which would answer an offer of another
// connection. Nothing to drop for a peer that never sent an SDP there.
// p.sfuMu is held.
func (p *peer) replaceSFULocked() {
	if p.sfuSession != "" {
		p.sfuStale = p.sfuSession
	}
}

// admitSFULocked reports whether data, a signal to "sfu" from p, is from
// its current connection, and records the session of an SDP. After
// replaceSFULocked, every signal is dropped until an SDP of another
// session comes: the new connection's offer, which its candidates
// follow. p.sfuMu is held.
func (p *peer) admitSFULocked(data json.RawMessage) bool {
	id, sdp := sdpSessionOf(data)
	if p.sfuStale != "" {
		if !sdp || id == p.sfuStale {
			return false
		}
		p.sfuStale = ""
	}
	if sdp {
		p.sfuSession = id
	}
	return true
}

// errStaleSFUSignal tells a client that a signal of the connection to
// "sfu" it was told to replace was dropped.
func errStaleSFUSignal() *wire.Error {
	return &wire.Error{Code: wire.CodeSignalDropped, To: SFUPeer,
		Message: `dropped: a signal to "sfu" from the connection this peer was told to replace; the SFU waits for an offer from a new one`}
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
