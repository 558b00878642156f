package signaling

import (
	"encoding/json"
	"sync"

	"github.com/icebox-project/icebox/sfu"
	"github.com/icebox-project/icebox/signaling/wire"
)

// SFU rooms on a cluster. A room whose media is sfu (not auto: a move
// would need every node to agree) is hosted by one node, which the
// cluster names (Admission.Host, Cluster.Successor): that node's SFU
// forwards the media of every member. A member on another node keeps its
// signaling on its own node; what it says to "sfu" (signal, layer) goes
// to the host through Cluster.SFU, where a participant is made for it on
// its first message (remoteParticipant); what that participant says
// (signal from "sfu", tracks, speaker, error) comes back the same way
// and is queued for the peer (Server.RemoteSFU). Its media goes to the
// host's address, as the host's SFU gives it in its candidates.
//
// When the host is gone (Server.NodeGone) every node holding members of
// the room takes the successor as host and tells its members
// {"type":"media","media":"sfu","renew":true}: the client closes its
// connection to "sfu" and offers on a new one, which reaches the new
// host. On the new host itself the participants are made first, and a
// peer's messages to "sfu" wait for its participant.

// maxRemoteSFUBytes bounds the frames waiting for one remote participant
// (a client's offers and candidates while its participant is made).
const maxRemoteSFUBytes = 1 << 20

// sfuOnCluster reports whether room, on this cluster node, is an SFU
// room hosted by one node.
func (h *hub) sfuOnCluster(room string) bool {
	if h.cl == nil {
		return false
	}
	media, auto := h.sfu.mediaOf(room)
	return media == wire.MediaSFU && !auto
}

// hostsLocked reports whether r's SFU is this node's: always on a single
// node. h.mu is held.
func (h *hub) hostsLocked(r *room) bool {
	return r.host == "" || h.cl == nil || r.host == h.cl.ID()
}

// setHostLocked records host as the node hosting r's SFU. When r's
// members here were on another host's SFU, they move: on this node each
// gets a participant before it is told to renew its connection; on
// another, each is told at once. h.mu is held.
func (s *Server) setHostLocked(r *room, host string) {
	h := s.hub
	old := r.host
	if old == host || host == "" {
		return
	}
	r.host = host
	if old == "" {
		return
	}
	r.epoch++
	epoch := r.epoch
	renew := encode(&wire.Media{Media: wire.MediaSFU, Renew: true})
	here := h.hostsLocked(r)
	if h.log != nil {
		h.log.Info("sfu room host moved", "room", r.name, "from", old, "to", host, "here", here, "peers", len(r.peers))
	}
	for _, p := range r.peers {
		p.leaveSFU()
		s.renewLocked(p, r, epoch, renew)
	}
}

// renewLocked tells p, a member of SFU room r on a cluster, to renew its
// connection to "sfu" (the frame renew). On the node hosting r a new
// participant is made first, and p's messages to "sfu" wait for it. h.mu
// is held; p has no participant here.
func (s *Server) renewLocked(p *peer, r *room, epoch uint64, renew []byte) {
	p.sfuMu.Lock()
	p.replaceSFULocked()
	p.sfuMu.Unlock()
	if !s.hub.hostsLocked(r) {
		p.enqueue(renew)
		return
	}
	ready := make(chan struct{})
	p.sfuMu.Lock()
	p.sfuReady = ready
	p.sfuMu.Unlock()
	// Queued before the participant can say anything: the client takes
	// what follows on its new connection.
	p.enqueue(renew)
	s.tasks.goFunc(func() {
		defer close(ready)
		s.joinSFU(p, r, epoch, false)
	})
}

// handOverSFULocked ends the participant here of old, a peer of an SFU
// room on a cluster handed over to another node, and reports whether it
// had one: its client must then renew its connection to "sfu" there. The
// participant the host makes for it on its new node's word waits for
// this one to end. h.mu is held.
func (h *hub) handOverSFULocked(old *peer) bool {
	old.sfuMu.Lock()
	had := old.sfuPart != nil
	old.sfuMu.Unlock()
	if !had {
		return false
	}
	old.leaveSFU()
	old.sfuMu.Lock()
	gone := old.sfuGone
	old.sfuMu.Unlock()
	if h.rpEnding == nil {
		h.rpEnding = map[string]<-chan struct{}{}
	}
	h.rpEnding[old.id] = gone
	go func() {
		<-gone
		h.mu.Lock()
		if h.rpEnding[old.id] == (<-chan struct{})(gone) {
			delete(h.rpEnding, old.id)
		}
		h.mu.Unlock()
	}()
	return true
}

// resumedSFULocked follows p, handed over from another node (ho) into SFU
// room r: when its participant at the host ended with the hand-over (it
// was on the old node's SFU) or was one made here for it as a remote
// peer, p renews its connection to "sfu"; its participant on a third
// node's SFU carries on. h.mu is held.
func (s *Server) resumedSFULocked(p *peer, r *room, ho Handover) {
	h := s.hub
	renew := ho.SFURenew
	if rp := h.rparts[p.id]; rp != nil {
		h.endRemoteParticipantLocked(p.id)
		p.sfuMu.Lock()
		p.sfuGone = rp.done
		p.sfuMu.Unlock()
		renew = true
	}
	if renew {
		s.renewLocked(p, r, r.epoch, encode(&wire.Media{Media: wire.MediaSFU, Renew: true}))
	}
}

// remoteHostLocked returns the node hosting p's room's SFU when it is another
// node, and p's room. h.mu is held.
func (h *hub) remoteHostLocked(p *peer) (host string, r *room) {
	if p.room == nil || p.room.media != wire.MediaSFU || h.hostsLocked(p.room) {
		return "", nil
	}
	return p.room.host, p.room
}

// signalSFU hands a signal to "sfu" from p to its room's SFU: here, or
// on the node hosting it. A signal of a connection p was told to replace
// is dropped (admitSFULocked).
func (s *Server) signalSFU(p *peer, data json.RawMessage) *wire.Error {
	h := s.hub
	h.mu.Lock()
	host, r := h.remoteHostLocked(p)
	if host == "" {
		h.mu.Unlock()
		return p.signalSFU(data)
	}
	defer h.mu.Unlock()
	p.sfuMu.Lock()
	current := p.admitSFULocked(data)
	p.sfuMu.Unlock()
	if !current {
		return errStaleSFUSignal()
	}
	h.cl.SFU(host, r.name, p.id, encode(&wire.Signal{To: SFUPeer, Data: data}))
	return nil
}

// layerSFU hands p's layer request to its room's SFU: here, or on the
// node hosting it.
func (s *Server) layerSFU(p *peer, m *wire.Layer) *wire.Error {
	if s.toRemoteSFU(p, m) {
		return nil
	}
	return p.layer(m)
}

// toRemoteSFU sends m, from p, to the node hosting p's room's SFU, and
// reports whether that is another node.
func (s *Server) toRemoteSFU(p *peer, m wire.Message) bool {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	host, r := h.remoteHostLocked(p)
	if host == "" {
		return false
	}
	h.cl.SFU(host, r.name, p.id, encode(m))
	return true
}

// RemoteSFU takes frame, a protocol v1 frame that node sent for peer of
// room (Cluster.SFU). For a peer of this node, it is the SFU's message
// from the room's host (a signal from "sfu", tracks, speaker, error) and
// is queued for the peer. For a peer of node in an SFU room, it is the
// client's message to "sfu" (signal, layer): node takes this one for the
// room's host, and it is handed to the peer's participant here, made on
// its first message. false, and nothing done, for anything else: a peer
// not in room, a node that is not the peer's or (for a peer here) not
// the host, another kind of frame.
func (s *Server) RemoteSFU(roomName, peer, node string, frame []byte) bool {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[roomName]
	if r == nil || h.closed || h.sfu == nil || h.sfu.Server == nil {
		return false
	}
	if target := r.peers[peer]; target != nil {
		if r.media != wire.MediaSFU || r.host != node {
			return false
		}
		var head struct {
			Type string `json:"type"`
			From string `json:"from"`
		}
		if json.Unmarshal(frame, &head) != nil {
			return false
		}
		switch head.Type {
		case wire.TypeSignal:
			if head.From != SFUPeer {
				return false
			}
			target.enqueueSignal(frame, nil)
		case wire.TypeTracks, wire.TypeSpeaker, wire.TypeError:
			target.enqueue(frame)
		default:
			return false
		}
		return true
	}
	// The peer's node took this node for the host. This node may not yet
	// (it takes the old host for gone a heartbeat later, or its record
	// named another): the peer's node decides where its peers' media goes,
	// and a message refused here would leave its client's offer
	// unanswered.
	rp, ok := r.remoteOf(peer)
	if !ok || rp.hidden || rp.node != node || !h.sfuOnCluster(roomName) {
		return false
	}
	part := h.rparts[peer]
	if part == nil || part.room != roomName {
		h.endRemoteParticipantLocked(peer)
		part = &remoteParticipant{s: s, room: roomName, id: peer, node: rp.node,
			prev: h.rpEnding[peer], done: make(chan struct{}), wake: make(chan struct{}, 1)}
		if h.rparts == nil {
			h.rparts = map[string]*remoteParticipant{}
		}
		h.rparts[peer] = part
		s.tasks.goFunc(part.run)
	}
	return part.push(frame)
}

// endRemoteParticipantLocked ends the participant made here for the
// remote peer id, if any. h.mu is held.
func (h *hub) endRemoteParticipantLocked(id string) {
	rp := h.rparts[id]
	if rp == nil {
		return
	}
	delete(h.rparts, id)
	if h.rpEnding == nil {
		h.rpEnding = map[string]<-chan struct{}{}
	}
	h.rpEnding[id] = rp.done
	rp.close()
}

// remoteParticipant is the SFU participant of a peer on another node, in
// a room this node hosts. Its frames are applied in order on a goroutine
// of its own: making a participant and answering an offer take
// milliseconds, which the cluster's receiver must not wait for.
type remoteParticipant struct {
	s        *Server
	room, id string
	// prev closes once the previous participant of this id has left the
	// SFU (a peer keeps its id across a leave and a join).
	prev <-chan struct{}
	done chan struct{}
	wake chan struct{}

	mu     sync.Mutex
	node   string // the peer's node, where what the SFU says goes
	frames [][]byte
	bytes  int
	closed bool
}

func (rp *remoteParticipant) setNode(node string) {
	rp.mu.Lock()
	rp.node = node
	rp.mu.Unlock()
}

// push queues frame; false when the participant is closed or holds
// maxRemoteSFUBytes already.
func (rp *remoteParticipant) push(frame []byte) bool {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if rp.closed || rp.bytes+len(frame) > maxRemoteSFUBytes {
		return false
	}
	rp.frames = append(rp.frames, frame)
	rp.bytes += len(frame)
	select {
	case rp.wake <- struct{}{}:
	default:
	}
	return true
}

func (rp *remoteParticipant) close() {
	rp.mu.Lock()
	rp.closed = true
	rp.mu.Unlock()
	select {
	case rp.wake <- struct{}{}:
	default:
	}
}

// take waits for frames and returns them; closed once close was called.
func (rp *remoteParticipant) take() (frames [][]byte, closed bool) {
	for {
		rp.mu.Lock()
		frames, closed = rp.frames, rp.closed
		rp.frames, rp.bytes = nil, 0
		rp.mu.Unlock()
		if closed || len(frames) > 0 {
			return frames, closed
		}
		<-rp.wake
	}
}

// send gives frame to the peer's node.
func (rp *remoteParticipant) send(frame []byte) {
	rp.mu.Lock()
	node := rp.node
	rp.mu.Unlock()
	rp.s.hub.cl.SFU(node, rp.room, rp.id, frame)
}

func (rp *remoteParticipant) run() {
	h := rp.s.hub
	defer func() {
		close(rp.done)
		h.mu.Lock()
		if h.rpEnding[rp.id] == rp.done {
			delete(h.rpEnding, rp.id)
		}
		h.mu.Unlock()
	}()
	if rp.prev != nil {
		<-rp.prev
	}
	var part *sfu.Participant
	failed := false
	defer func() {
		if part != nil {
			_ = part.Close()
		}
	}()
	for {
		frames, closed := rp.take()
		if closed {
			return
		}
		for _, f := range frames {
			if failed {
				break
			}
			if part == nil {
				var err error
				part, err = rp.s.cfg.SFU.Server.Join(rp.room, rp.id, sfuEvents(rp.send, rp.send))
				if err != nil {
					failed = true
					rp.send(encode(&wire.Error{Code: wire.CodeSFUUnavailable, Message: err.Error()}))
					break
				}
			}
			rp.apply(part, f)
		}
	}
}

// apply hands one client frame to part: a signal to "sfu" or a layer
// request. Errors go back to the peer as the SFU's errors would.
func (rp *remoteParticipant) apply(part *sfu.Participant, frame []byte) {
	var m struct {
		Type  string          `json:"type"`
		To    string          `json:"to"`
		Data  json.RawMessage `json:"data"`
		Track string          `json:"track"`
		Layer string          `json:"layer"`
	}
	if json.Unmarshal(frame, &m) != nil {
		return
	}
	var err error
	switch {
	case m.Type == wire.TypeSignal && m.To == SFUPeer:
		err = part.HandleSignal(m.Data)
	case m.Type == wire.TypeLayer:
		err = part.RequestLayer(m.Track, m.Layer)
	default:
		return
	}
	if err != nil {
		rp.send(encode(&wire.Error{Code: sfuErrorCode(err), Message: err.Error()}))
	}
}

// sfuEvents is what a participant says, as protocol v1 frames: signals
// through signal, the rest through other.
func sfuEvents(signal, other func(frame []byte)) sfu.Events {
	return sfu.Events{
		Signal: func(data []byte) {
			signal(encode(&wire.Signal{From: SFUPeer, Data: json.RawMessage(data)}))
		},
		Tracks: func(list []sfu.TrackInfo) {
			m := &wire.Tracks{Tracks: make([]wire.TrackInfo, len(list))}
			for i, t := range list {
				m.Tracks[i] = wire.TrackInfo{Track: t.Track, Stream: t.Stream, Peer: t.Peer, Kind: t.Kind, Source: string(t.Source), Layers: t.Layers}
			}
			other(encode(m))
		},
		Speaker: func(peer string) { other(encode(&wire.Speaker{Peer: peer})) },
		Error: func(err error) {
			other(encode(&wire.Error{Code: sfuErrorCode(err), Message: err.Error()}))
		},
	}
}
