package signaling

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sort"
	"time"
	"unique"

	"github.com/icebox-project/icebox/internal/rtc"
	"github.com/icebox-project/icebox/signaling/wire"
)

// Cluster links a Server's rooms with the other nodes of a cluster
// (signaling/cluster implements it over NATS). With Config.Cluster nil a
// Server is a single node and never calls out.
//
// A room is one room on every node: each node keeps its own peers
// (local) and a view of the peers on the other nodes (remote), which the
// Cluster keeps up to date through the Server's Remote* methods. The
// Cluster admits joins cluster-wide (Admit), so a name and a place in a
// room are taken once across all nodes.
//
// Joined, Left, Signal and Resumed are called with the hub lock held:
// they must not block (queue and return), and must keep their order, so
// that a peer's join reaches another node before its signals do.
type Cluster interface {
	// Admit takes name and a place in room for the peer id across the
	// cluster, when the room has fewer than maxPeers peers on all nodes
	// and no peer of that name. Errors: ErrNameTaken, ErrRoomFull, or any
	// other when the cluster cannot decide now. It may block.
	Admit(room, id, name string, maxPeers int) (Admission, error)
	// Joined announces that the admitted peer id is in room on this node.
	Joined(room, id, name string)
	// Left announces that peer id left room on this node, and gives its
	// name and place back.
	Left(room, id string)
	// Signal sends data from peer from to peer to, in room, on node.
	Signal(node, room, from, to string, data json.RawMessage)
	// Resume asks the other nodes for the suspended peer whose resume
	// token is token, in room. ok is false when no node holds it. It may
	// block.
	Resume(token, room string) (h Handover, ok bool)
	// Resumed announces that peer id of room now lives on this node.
	Resumed(room, id, name string)
	// ID is this node's id, as Admission.Host and the node arguments
	// name nodes.
	ID() string
	// SFU sends frame, a whole protocol v1 frame, to node for peer of an
	// SFU room: a client's message for the room's SFU to the node hosting
	// it, or the SFU's message for the client to the peer's node
	// (Server.RemoteSFU). It must not block.
	SFU(node, room, peer string, frame []byte)
	// Successor is the node to host room's SFU once its host is gone:
	// the same on every node that sees the same live nodes. It must not
	// block.
	Successor(room string) string
}

// Admission is a join the cluster admitted: Others are the ids of the
// room's other peers as admitted then, on any node; Host is the node
// whose SFU hosts the room, should it be an SFU room (its first joiner's,
// or the successor of a host that is gone).
type Admission struct {
	Others []string
	Host   string
}

// Errors of Cluster.Admit that a client is told as such.
var (
	ErrNameTaken = errors.New("signaling: name taken")
	ErrRoomFull  = errors.New("signaling: room full")
)

// Handover is a suspended peer handed from one node to another: its id,
// name, and the messages queued for it while it was away (each a
// complete protocol v1 frame).
type Handover struct {
	ID     string   `json:"id"`
	Name   string   `json:"name"`
	Queued [][]byte `json:"queued,omitempty"`
	// SFUHost is the node hosting the room's SFU, in an SFU room.
	SFUHost string `json:"sfu_host,omitempty"`
	// SFURenew: the peer's participant was on the handing node's SFU
	// and ended; its client must renew its connection to "sfu".
	SFURenew bool `json:"sfu_renew,omitempty"`
	// SFUSession is the SDP session id of the peer's connection to
	// "sfu": after a renew, its signals are dropped.
	SFUSession string `json:"sfu_session,omitempty"`
}

// remotePeer is a peer of a room on another node.
type remotePeer struct {
	id   string
	name string
	node string
	// hidden: another peer holds the name here (after a partition two
	// nodes may each list one). It is shown, and told of (peer-joined),
	// once the name is free here.
	hidden bool
}

// Member is one peer of a room, for views of the whole cluster. Node is
// "" for a peer of this node.
type Member struct {
	Room string `json:"room"`
	ID   string `json:"id"`
	Name string `json:"name"`
	Node string `json:"node,omitempty"`
}

// joinCluster is join on a node of a cluster: checked here, admitted by
// the cluster (outside the lock: it may wait for the other nodes), then
// added like a local join and announced.
func (h *hub) joinCluster(c *conn, roomName, name, password string, lim limits, roomPassword string, iceServers []rtc.ICEServer, ttl int64) *wire.Error {
	sfuRoom := h.sfuOnCluster(roomName)
	if sfuRoom {
		lim.maxPeers = h.sfu.maxPeers()
	}
	if e := h.precheck(c, roomName, name, password, lim, roomPassword); e != nil {
		return e
	}
	p := c.peer // only this connection's handler, which runs this, changes it
	adm, err := onOwnStack(func() (Admission, error) { return h.cl.Admit(roomName, p.id, name, lim.maxPeers) })
	switch {
	case errors.Is(err, ErrNameTaken):
		return errNameTaken(roomName, name)
	case errors.Is(err, ErrRoomFull):
		return errRoomFull(roomName, lim.maxPeers)
	case err != nil:
		return &wire.Error{Code: wire.CodeRateLimited, Message: "the cluster cannot take joins right now; try again in a few seconds"}
	}
	// The welcome lists the peers admitted before c: wait (briefly) for
	// the announcements of any this node has not heard of yet, so c is not
	// told of them by peer-joined after its welcome instead.
	h.awaitKnown(roomName, adm.Others)
	h.mu.Lock()
	defer h.mu.Unlock()
	if p.room != nil || h.closed {
		h.cl.Left(roomName, p.id) // gives the place back
		return &wire.Error{Code: wire.CodeBadMessage, Message: "already joined to a room; send leave first"}
	}
	r := h.rooms[roomName]
	if r == nil {
		r = newRoom(roomName)
		h.rooms[roomName] = r
	}
	if sfuRoom {
		r.media = wire.MediaSFU
		c.s.setHostLocked(r, adm.Host)
	}
	h.displaceLocked(r, name, p.id)
	h.seatLocked(p, r, name, iceServers, ttl)
	h.cl.Joined(roomName, p.id, name)
	return nil
}

// onOwnStack runs f on a goroutine of its own and returns its results. A
// Cluster's blocking calls go through NATS and JetStream clients with
// deep call chains; on the connection's reader they would grow its stack
// for the rest of the connection's life (Go shrinks stacks only at
// garbage collections, by half), costing every idle connection.
func onOwnStack[T any](f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f()
		ch <- result{v, err}
	}()
	r := <-ch
	return r.v, r.err
}

// awaitKnown waits until every peer in ids is known in room here, or
// for awaitAnnounce on the Server's clock, or until the hub closes. It
// checks again each time a peer becomes known in a room here (hub.known),
// never on a timer of its own. A peer that left meanwhile is never known:
// the wait ends at the limit, and the welcome goes out as this node sees
// the room.
func (h *hub) awaitKnown(roomName string, ids []string) {
	known, done := h.knownOrWait(roomName, ids)
	if done {
		return
	}
	expired := make(chan struct{})
	t := h.after(awaitAnnounce, func() { close(expired) })
	defer t.Stop()
	for {
		select {
		case <-known:
		case <-expired:
			return
		}
		if known, done = h.knownOrWait(roomName, ids); done {
			return
		}
	}
}

// knownOrWait reports done when every peer in ids is known in room here
// or the hub is closed, and otherwise returns the channel closed at the
// next change (hub.known).
func (h *hub) knownOrWait(roomName string, ids []string) (known <-chan struct{}, done bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || h.allKnownLocked(roomName, ids) {
		return nil, true
	}
	if h.known == nil {
		h.known = make(chan struct{})
	}
	return h.known, false
}

// allKnownLocked reports whether every peer in ids is a peer of room
// here, local or remote. h.mu is held.
func (h *hub) allKnownLocked(roomName string, ids []string) bool {
	r := h.rooms[roomName]
	if r == nil {
		return len(ids) == 0
	}
	for _, id := range ids {
		if _, ok := r.remoteOf(id); !ok && r.peers[id] == nil {
			return false
		}
	}
	return true
}

// announceLocked wakes every awaitKnown: a peer became known in a room
// here, or the hub closed. h.mu is held.
func (h *hub) announceLocked() {
	if h.known != nil {
		close(h.known)
		h.known = nil
	}
}

// awaitAnnounce bounds awaitKnown: announcements cross a cluster in
// about a millisecond.
const awaitAnnounce = 500 * time.Millisecond

// precheck refuses, before asking the cluster, what this node can tell on
// its own (admit): a second join, a wrong password, the room cap, and a
// full room or a taken name it already sees.
func (h *hub) precheck(c *conn, roomName, name, password string, lim limits, roomPassword string) *wire.Error {
	h.mu.Lock()
	defer h.mu.Unlock()
	j := joinRequest{current: c.peer.room, room: roomName, name: name, password: password, roomPassword: roomPassword}
	return admit(j, h.rooms[roomName], len(h.rooms), lim)
}

// resumeRemote makes c the peer handed over by another node: same id and
// name, its queued messages after the welcome. Nobody in the room sees it
// leave or join; the other nodes learn where it lives (Cluster.Resumed).
func (h *hub) resumeRemote(c *conn, ho Handover, roomName string, iceServers []rtc.ICEServer, ttl int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := c.peer
	if p.room != nil || h.closed {
		return false
	}
	r := h.rooms[roomName]
	if r == nil {
		r = newRoom(roomName)
		h.rooms[roomName] = r
	}
	r.dropRemote(ho.ID)
	h.displaceLocked(r, ho.Name, ho.ID)
	if h.sfuOnCluster(roomName) {
		r.media = wire.MediaSFU
		if r.host == "" {
			r.host = ho.SFUHost
		}
		p.media = r.media
	}
	p.id, p.name, p.room = ho.ID, ho.Name, r
	p.sfuMu.Lock()
	p.sfuSession = ho.SFUSession
	p.sfuMu.Unlock()
	p.resumeToken = newToken()
	r.peers[p.id] = p
	r.names[p.name] = p.id
	h.announceLocked()
	p.enqueue(encode(&wire.Welcome{ID: p.id, Room: r.name, Peers: peersOf(r, p),
		ICEServers: iceServers, TTL: ttl, Resume: p.resumeToken, Resumed: true, Media: p.media}))
	for _, b := range ho.Queued {
		p.enqueue(b)
	}
	if r.media == wire.MediaSFU {
		c.s.resumedSFULocked(p, r, ho)
	}
	h.cl.Resumed(roomName, p.id, p.name)
	return true
}

// HandOver gives the peer suspended under token in room to node, where
// its browser came back: the peer stays in the room, now as a peer of
// node, and the messages queued for it go with it. ok is false when this
// node holds no such peer. Called by the Cluster.
func (s *Server) HandOver(token, roomName, node string) (ho Handover, ok bool) {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	old := h.suspended[token]
	if old == nil || old.room.name != roomName {
		return Handover{}, false
	}
	held := h.endSuspension(old)
	r := old.room
	renew := h.handOverSFULocked(old)
	delete(r.peers, old.id)
	r.remote = append(r.remote, remotePeer{id: old.id, name: old.name, node: h.nodeName(node)})
	old.room = nil
	old.sfuMu.Lock()
	session := old.sfuSession
	old.sfuMu.Unlock()
	return Handover{ID: old.id, Name: old.name, Queued: frames(held), SFUHost: r.host, SFURenew: renew, SFUSession: session}, true
}

// RemoteJoined adds peer id, named name, on node to room, and tells the
// room's local peers (peer-joined). A peer already known under that name
// is left alone (shown, if its name came free while it waited hidden);
// one known under another name leaves under it first (peer-left).
// Called by the Cluster, in the order the node sent its announcements.
func (s *Server) RemoteJoined(roomName, id, name, node string) {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	h.addRemoteLocked(roomName, id, name, node)
}

func (h *hub) addRemoteLocked(roomName, id, name, node string) {
	r := h.rooms[roomName]
	if r == nil {
		r = newRoom(roomName)
		h.rooms[roomName] = r
	}
	if _, ok := r.peers[id]; ok {
		h.viewLocked("remote peer is local here", roomName, id, name, node)
		return
	}
	if rp, ok := r.remoteOf(id); ok {
		if rp.name == name {
			h.viewLocked("remote peer already known", roomName, id, name, node, "known_node", rp.node, "hidden", rp.hidden)
			if rp.hidden {
				h.promoteLocked(r, name) // its name may have come free unseen
			}
			return
		}
		// Known under another name: it left and joined again (a peer
		// keeps its id across a leave and a join on one connection), and
		// the news of both was lost, or came in an order this node could
		// not tell (a burst after a heal, a members answer): the latest
		// word of its node holds. It leaves under the old name and joins
		// under the new one.
		h.viewLocked("remote peer renamed", roomName, id, name, node, "known_name", rp.name, "known_node", rp.node, "hidden", rp.hidden)
		h.removeRemoteLocked(roomName, id)
		if r = h.rooms[roomName]; r == nil {
			r = newRoom(roomName)
			h.rooms[roomName] = r
		}
	}
	if holder, taken := r.names[name]; taken && holder != id {
		h.viewLocked("remote peer hidden: name held", roomName, id, name, node, "holder", holder)
		// Two holders of one name are never shown: after a partition a
		// node may list a peer whose name went to another meanwhile, or
		// announcements of two nodes cross. The newcomer waits hidden
		// until the name is free here (promoteLocked); the record decides
		// which one keeps it (the loser's node evicts it).
		r.remote = append(r.remote, remotePeer{id: id, name: name, node: h.nodeName(node), hidden: true})
		h.announceLocked()
		return
	}
	r.remote = append(r.remote, remotePeer{id: id, name: name, node: h.nodeName(node)})
	r.names[name] = id
	h.viewLocked("remote peer shown", roomName, id, name, node)
	h.announceLocked()
	joined := encode(&wire.PeerJoined{ID: id, Name: name})
	for _, p := range r.peers {
		p.enqueue(joined)
	}
}

// displaceLocked hides the remote peer shown in r under name, if any,
// before peer id takes the name here (a join the record admitted, a
// resume): the record holds no other peer of that name, so the shown
// one left, or lost the name, and its news is late. The local peers see
// it leave; its own departure, when it comes, is not shown again.
func (h *hub) displaceLocked(r *room, name, id string) {
	holder, taken := r.names[name]
	if !taken || holder == id || r.peers[holder] != nil {
		return
	}
	for i := range r.remote {
		if rp := &r.remote[i]; rp.id == holder && !rp.hidden {
			h.viewLocked("remote peer hidden: a local peer takes its name", r.name, rp.id, rp.name, rp.node, "local", id)
			rp.hidden = true
			delete(r.names, name)
			left := encode(&wire.PeerLeft{ID: holder})
			for _, p := range r.peers {
				p.enqueue(left)
			}
			return
		}
	}
}

// promoteLocked shows the first hidden remote peer named name, now that
// the name is free in r: the local peers are told it joined.
func (h *hub) promoteLocked(r *room, name string) {
	if _, taken := r.names[name]; taken {
		return
	}
	for i := range r.remote {
		rp := &r.remote[i]
		if rp.hidden && rp.name == name {
			h.viewLocked("remote peer shown: name free", r.name, rp.id, rp.name, rp.node)
			rp.hidden = false
			r.names[name] = rp.id
			joined := encode(&wire.PeerJoined{ID: rp.id, Name: name})
			for _, p := range r.peers {
				p.enqueue(joined)
			}
			return
		}
	}
}

// RemoteAdmitted is RemoteJoined for a peer another node announces as
// admitted. It reports whether a peer of this node holds the same name
// here: the newcomer then waits hidden, and the Cluster checks its
// record (the local peer may have lost the name while this node was cut
// off: Evict).
func (s *Server) RemoteAdmitted(roomName, id, name, node string) (localHolder bool) {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if r := h.rooms[roomName]; r != nil {
		if holder, taken := r.names[name]; taken && holder != id && r.peers[holder] != nil {
			localHolder = true
		}
	}
	h.addRemoteLocked(roomName, id, name, node)
	return localHolder
}

// RemoteLeft removes the remote peer id from room and tells the room's
// local peers (peer-left). An unknown peer is ignored.
func (s *Server) RemoteLeft(roomName, id string) {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	h.removeRemoteLocked(roomName, id)
}

func (h *hub) removeRemoteLocked(roomName, id string) bool {
	r := h.rooms[roomName]
	if r == nil {
		return false
	}
	rp, ok := r.remoteOf(id)
	if !ok {
		return false
	}
	r.dropRemote(id)
	h.endRemoteParticipantLocked(id)
	h.viewLocked("remote peer removed", roomName, id, rp.name, rp.node, "hidden", rp.hidden)
	if rp.hidden {
		return true // never shown
	}
	if r.names[rp.name] == id {
		delete(r.names, rp.name)
	}
	left := encode(&wire.PeerLeft{ID: id})
	for _, p := range r.peers {
		p.enqueue(left)
	}
	h.promoteLocked(r, rp.name)
	if r.empty() {
		delete(h.rooms, roomName)
	}
	return true
}

// RemoteMoved records that peer id of room now lives on node (it resumed
// there). Nobody is told; a peer not known yet is added as joined.
func (s *Server) RemoteMoved(roomName, id, name, node string) {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if r := h.rooms[roomName]; r != nil {
		if i := slices.IndexFunc(r.remote, func(rp remotePeer) bool { return rp.id == id }); i >= 0 {
			h.viewLocked("remote peer moved", roomName, id, name, node, "from", r.remote[i].node)
			r.remote[i].node = h.nodeName(node)
			if rp := h.rparts[id]; rp != nil {
				rp.setNode(r.remote[i].node)
			}
			return
		}
		if _, ok := r.peers[id]; ok {
			return
		}
	}
	h.addRemoteLocked(roomName, id, name, node)
}

// RemoteSignal delivers a signal from the remote peer from to the local
// peer to, in room, with from set as the sending node said. When to has
// moved to another node, forward names that node and nothing is
// delivered here; ok is false when to is nowhere in the room here, or
// from is no peer of the room.
func (s *Server) RemoteSignal(roomName, from, to string, data json.RawMessage) (forward string, ok bool) {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[roomName]
	if r == nil {
		return "", false
	}
	if _, known := r.remoteOf(from); !known {
		return "", false
	}
	if target := r.peers[to]; target != nil {
		target.enqueueSignal(encode(&wire.Signal{From: from, Data: data}), nil)
		return "", true
	}
	if rp, moved := r.remoteOf(to); moved {
		return rp.node, false
	}
	return "", false
}

// NodeGone removes every peer of node from every room, telling the local
// peers (peer-left), and returns the peers removed. Called by the Cluster
// when node stopped, died or was cut off.
func (s *Server) NodeGone(node string) []Member {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	var gone []Member
	for name, r := range h.rooms {
		for _, rp := range r.remote {
			if rp.node == node {
				gone = append(gone, Member{Room: name, ID: rp.id, Name: rp.name, Node: node})
			}
		}
	}
	for _, m := range gone {
		h.removeRemoteLocked(m.Room, m.ID)
	}
	for _, r := range h.rooms {
		if r.media == wire.MediaSFU && r.host == node {
			s.setHostLocked(r, h.cl.Successor(r.name))
		}
	}
	return gone
}

// RemoteLeftOf is RemoteLeft for a departure announced by node: it is
// applied only when node holds the peer in this server's view (the node
// that seated it, or that it resumed on). It returns false, changing
// nothing, when another node holds it; true otherwise (also when the
// peer is unknown here: nothing to remove).
func (s *Server) RemoteLeftOf(roomName, id, node string) bool {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if r := h.rooms[roomName]; r != nil {
		if rp, ok := r.remoteOf(id); ok && rp.node != node {
			h.viewLocked("remote peer's departure from another node ignored", roomName, id, rp.name, node, "holder_node", rp.node)
			return false
		}
	}
	h.removeRemoteLocked(roomName, id)
	return true
}

// HasLocal reports whether peer id is a peer of room on this node
// (connected, or suspended waiting for a resume).
func (s *Server) HasLocal(roomName, id string) bool {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[roomName]
	return r != nil && r.peers[id] != nil
}

// Members returns every peer this node knows of, its own (Node "") and
// the other nodes', sorted by room, node and name.
func (s *Server) Members() []Member {
	h := s.hub
	h.mu.Lock()
	var out []Member
	for name, r := range h.rooms {
		for id, p := range r.peers {
			out = append(out, Member{Room: name, ID: id, Name: p.name})
		}
		for _, rp := range r.remote {
			out = append(out, Member{Room: name, ID: rp.id, Name: rp.name, Node: rp.node})
		}
	}
	h.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Room != b.Room {
			return a.Room < b.Room
		}
		if a.Node != b.Node {
			return a.Node < b.Node
		}
		return a.Name < b.Name
	})
	return out
}

// WithLocal calls f with this node's own peers, under the lock that
// orders the Cluster's announcements: whatever f queues is ordered after
// every announcement of a change f's list includes, and before any
// later one. f must not block.
func (s *Server) WithLocal(f func(local []Member)) {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Member
	for name, r := range h.rooms {
		for id, p := range r.peers {
			out = append(out, Member{Room: name, ID: id, Name: p.name})
		}
	}
	f(out)
}

// nodeName returns node's canonical copy: every remote peer of a node
// shares one string instead of each holding the copy its announcement
// was decoded into.
func (h *hub) nodeName(node string) string { return unique.Make(node).Value() }

// viewLocked logs, at debug level, a change (or a kept state) of the
// room's view of another node's peer.
func (h *hub) viewLocked(what, roomName, id, name, node string, more ...any) {
	if h.log == nil || !h.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	h.log.Debug("cluster view: "+what, append([]any{"room", roomName, "peer", id, "name", name, "node", node}, more...)...)
}
