package signaling

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icebox-project/icebox/internal/rtc"
	"github.com/icebox-project/icebox/signaling/wire"
)

// hub owns every room and every connection. One mutex guards it all: each
// operation is a few map look-ups plus non-blocking enqueues, so holding
// it never waits on a network write. Lock order: doc.go.
type hub struct {
	mu    sync.Mutex
	rooms map[string]*room
	conns map[*conn]struct{}
	// suspended holds peers whose connection dropped, by resume token,
	// for ResumeWindow.
	suspended    map[string]*peer
	resumeWindow time.Duration
	// after starts the resume-window timers (Server.afterFunc).
	after  func(time.Duration, func()) Timer
	closed bool
	// known is closed, and set to nil, when a peer becomes known in a
	// room here (seated, announced by another node, resumed) or the hub
	// closes; awaitKnown makes it when it has to wait. nil: nobody waits.
	known chan struct{}
	// cl links the rooms with other nodes (Config.Cluster); nil on a
	// single node, where rooms hold only local peers and nothing below
	// calls out. Only its non-blocking methods are called under mu.
	cl Cluster
	// sfu puts rooms on the SFU (Config.SFU); nil: every room is a mesh.
	sfu *SFUConfig
	// log takes, at debug level, each change to the room views of other
	// nodes' peers (a cluster's convergence can be read from it).
	log *slog.Logger
	// rparts are the participants made here for other nodes' peers, in
	// SFU rooms this node hosts, by peer id; rpEnding closes for an id
	// once its last one has left the SFU (sfuhost.go).
	rparts   map[string]*remoteParticipant
	rpEnding map[string]<-chan struct{}
}

type room struct {
	name  string
	media string            // wire.MediaMesh or wire.MediaSFU with an SFU; "" without
	peers map[string]*peer  // local peers, by peer id
	names map[string]string // display name → peer id, local and remote
	// remote holds the room's peers on other nodes, in no order; nil
	// until the first arrives (always nil on a single node). A slice, not
	// a map: a room holds a few peers (max_peers_per_room), and a node
	// holds a view of every room with a peer here, so a map per room
	// (a 400-byte group for the first entry) cost more than the peers.
	remote []remotePeer
	// held counts the bytes held for the room's suspended peers
	// (MaxRoomHeldBytes).
	held atomic.Int64
	// auto rooms move between mesh and SFU by their size (automedia.go):
	// epoch counts the moves, hold is the pending move back to a mesh,
	// linger the end of the SFU participants kept after one.
	auto         bool
	epoch        uint64
	hold, linger Timer
	// host is the node whose SFU hosts this SFU room on a cluster ("" on
	// a single node, and for a room this node knows only others' peers
	// of); a change of host starts a new epoch (sfuhost.go).
	host string
}

// remoteOf returns the remote peer id of r.
func (r *room) remoteOf(id string) (remotePeer, bool) {
	for _, rp := range r.remote {
		if rp.id == id {
			return rp, true
		}
	}
	return remotePeer{}, false
}

// dropRemote removes the remote peer id from r, if there.
func (r *room) dropRemote(id string) {
	r.remote = slices.DeleteFunc(r.remote, func(rp remotePeer) bool { return rp.id == id })
	if len(r.remote) == 0 {
		r.remote = nil
	}
}

func newHub(resumeWindow time.Duration, after func(time.Duration, func()) Timer, cl Cluster) *hub {
	return &hub{rooms: map[string]*room{}, conns: map[*conn]struct{}{}, suspended: map[string]*peer{},
		resumeWindow: resumeWindow, after: after, cl: cl}
}

// empty reports whether r has no peer left on any node.
func (r *room) empty() bool { return len(r.peers) == 0 && len(r.remote) == 0 }

// register adds a connection; false once the hub is closed.
func (h *hub) register(c *conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.conns[c] = struct{}{}
	return true
}

// unregister removes a connection. Its peer leaves its room, unless
// resumable: then the peer stays, suspended, for the resume window;
// messages for it are held (within the held bounds, MaxHeldBytes), a
// join with its resume token takes it over, and it keeps its client
// address's place in the per-address limit until then.
func (h *hub) unregister(c *conn, resumable bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.conns, c)
	p := c.peer
	if resumable && p.room != nil && !h.closed && p.resumeToken != "" {
		dropped, ok := p.out.hold(&p.room.held)
		p.tellDropped(dropped)
		if ok {
			p.suspended.Store(true)
			h.suspended[p.resumeToken] = p
			p.suspendTimer = h.after(h.resumeWindow, func() { h.expire(p) })
			return
		}
	}
	h.leaveLocked(p)
}

// ended is called once c's connection has ended (its goroutines done).
// Unless c's peer is suspended, its outbox is closed and its place in
// the per-address limit released; for a suspended peer both happen when
// the suspension ends (endSuspension).
func (h *hub) ended(c *conn) {
	h.mu.Lock()
	held := c.peer.suspended.Load() && c.peer.conn == c
	h.mu.Unlock()
	if !held {
		c.out.close()
		c.releaseSlot()
	}
}

// endSuspension ends c's suspension, whichever way (resume, expiry,
// handover, close), and returns what was held for it. h.mu is held.
func (h *hub) endSuspension(p *peer) []queued {
	p.suspended.Store(false)
	delete(h.suspended, p.resumeToken)
	p.suspendTimer.Stop()
	p.conn.releaseSlot()
	return p.out.close()
}

// expire ends a suspension: the peer leaves its room for good, and what
// was held for it is dropped.
func (h *hub) expire(p *peer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !p.suspended.Load() {
		return
	}
	h.endSuspension(p)
	h.leaveLocked(p)
}

// expireOf is expire for the peer of c, the connection that dropped, if
// c still holds it.
func (h *hub) expireOf(c *conn) {
	h.mu.Lock()
	p := c.peer
	mine := p.conn == c
	h.mu.Unlock()
	if mine {
		h.expire(p)
	}
}

// resume hands the suspended peer with token to c: same id and name, same
// place in the room, its queued messages after the new welcome. The room
// sees nothing. ok is false for an unknown, expired or other-room token.
func (h *hub) resume(c *conn, token, roomName string, iceServers []rtc.ICEServer, ttl int64) (ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := h.suspended[token]
	if p == nil || p.room.name != roomName || c.peer.room != nil {
		return false
	}
	held := h.endSuspension(p)
	// c takes the peer over, with its own queue; the one held for the
	// peer follows the welcome there.
	p.conn, p.out, c.peer = c, c.out, p
	p.resumeToken = newToken()
	p.enqueue(encode(&wire.Welcome{ID: p.id, Room: p.room.name, Peers: peersOf(p.room, p),
		ICEServers: iceServers, TTL: ttl, Resume: p.resumeToken, Resumed: true, Media: p.media}))
	p.requeue(held)
	return true
}

func peersOf(r *room, except *peer) []wire.PeerInfo {
	peers := make([]wire.PeerInfo, 0, len(r.peers)+len(r.remote))
	for id, p := range r.peers {
		if p != except {
			peers = append(peers, wire.PeerInfo{ID: id, Name: p.name})
		}
	}
	for _, p := range r.remote {
		if !p.hidden {
			peers = append(peers, wire.PeerInfo{ID: p.id, Name: p.name})
		}
	}
	sort.Slice(peers, func(i, j int) bool { return peers[i].Name < peers[j].Name })
	return peers
}

// join puts c in the named room under name. iceServers and ttl are the
// credentials for welcome, minted by the caller outside the lock.
func (h *hub) join(c *conn, roomName, name, password string, lim limits, roomPassword string, iceServers []rtc.ICEServer, ttl int64) *wire.Error {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[roomName]
	j := joinRequest{current: c.peer.room, room: roomName, name: name, password: password, roomPassword: roomPassword}
	media, auto := h.sfu.mediaOf(roomName)
	if r != nil {
		media, auto = r.media, r.auto
	}
	if media == wire.MediaSFU || auto {
		lim.maxPeers = h.sfu.maxPeers()
	}
	if e := admit(j, r, len(h.rooms), lim); e != nil {
		return e
	}
	if r == nil {
		r = newRoom(roomName)
		r.media, r.auto = media, auto
	}
	h.rooms[roomName] = r
	if r.auto && r.media == wire.MediaMesh && len(r.peers)+len(r.remote) >= h.sfu.meshMax() {
		h.toSFULocked(r, c.s)
	}
	h.seatLocked(c.peer, r, name, iceServers, ttl)
	h.holdLocked(r)
	return nil
}

// seatLocked adds p to room r under name, queues p's welcome (listing
// the peers there before it) and tells this node's other members. h.mu
// is held.
func (h *hub) seatLocked(p *peer, r *room, name string, iceServers []rtc.ICEServer, ttl int64) {
	peers := peersOf(r, p)
	p.room, p.name, p.media = r, name, r.media
	p.resumeToken = newToken()
	r.peers[p.id] = p
	r.names[name] = p.id
	h.announceLocked()
	// welcome is queued before any other peer can signal p.
	p.enqueue(encode(&wire.Welcome{ID: p.id, Room: r.name, Peers: peers, ICEServers: iceServers, TTL: ttl, Resume: p.resumeToken, Media: r.media}))
	joined := encode(&wire.PeerJoined{ID: p.id, Name: name})
	for id, other := range r.peers {
		if id != p.id {
			other.enqueue(joined)
		}
	}
}

// leave takes c's peer out of its room, telling the others.
func (h *hub) leave(c *conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.leaveLocked(c.peer)
}

func (h *hub) leaveLocked(p *peer) bool {
	r := p.room
	if r == nil {
		return false
	}
	delete(r.peers, p.id)
	delete(r.names, p.name)
	p.room = nil
	p.leaveSFU()
	// A closing server tells no one here that a peer left: every
	// connection is being closed with 1001, and a page that heard
	// peer-left before its own close would drop a peer connection it
	// keeps across the restart. Other nodes are still told (below).
	if !h.closed {
		left := encode(&wire.PeerLeft{ID: p.id})
		for _, other := range r.peers {
			other.enqueue(left)
		}
		h.promoteLocked(r, p.name)
	}
	if r.empty() {
		delete(h.rooms, r.name)
		r.stopTimers()
	} else {
		h.holdLocked(r)
	}
	if h.cl != nil {
		h.cl.Left(r.name, p.id)
	}
	return true
}

// signal relays data from c's peer to the peer with id to in its room.
func (h *hub) signal(c *conn, to string, data json.RawMessage) *wire.Error {
	h.mu.Lock()
	defer h.mu.Unlock()
	p := c.peer
	if p.room == nil {
		return &wire.Error{Code: wire.CodeNotJoined, Message: "join a room before sending signal"}
	}
	target := p.room.peers[to]
	if target == nil {
		if rp, ok := p.room.remoteOf(to); ok {
			h.cl.Signal(rp.node, p.room.name, p.id, to, data)
			return nil
		}
	}
	if target == nil || target == p {
		return &wire.Error{Code: wire.CodeUnknownPeer, Message: fmt.Sprintf("no peer %q in room %q", to, p.room.name)}
	}
	target.enqueueSignal(encode(&wire.Signal{From: p.id, Data: data}), c)
	return nil
}

// inRoom reports whether c's peer is in a room.
func (h *hub) inRoom(c *conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return c.peer.room != nil
}

// close marks the hub closed, drops the suspended peers (their rooms are
// closing too) and returns every connection.
func (h *hub) close() []*conn {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	h.announceLocked()
	for _, r := range h.rooms {
		r.stopTimers()
	}
	for _, p := range h.suspended {
		h.endSuspension(p)
		h.leaveLocked(p)
	}
	for id := range h.rparts {
		h.endRemoteParticipantLocked(id)
	}
	out := make([]*conn, 0, len(h.conns))
	for c := range h.conns {
		out = append(out, c)
	}
	return out
}

// Counts returns the number of connections, rooms and joined peers.
func (h *hub) counts() (conns, rooms, peers int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.rooms {
		peers += len(r.peers)
		if len(r.peers) > 0 {
			rooms++
		}
	}
	return len(h.conns), rooms, peers
}
