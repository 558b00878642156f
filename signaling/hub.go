package signaling

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/icebox-project/icebox/internal/rtc"
)

// hub owns every room and every connection. One mutex guards it all: each
// operation is a few map look-ups plus non-blocking enqueues, so holding
// it never waits on a network write. Lock order: doc.go.
type hub struct {
	mu      sync.Mutex
	rooms   map[string]*room
	clients map[*client]struct{}
	// suspended holds peers whose connection dropped, by resume token,
	// for ResumeWindow.
	suspended    map[string]*client
	resumeWindow time.Duration
	// after starts the resume-window timers (Server.afterFunc).
	after  func(time.Duration, func()) Timer
	closed bool
	// cl links the rooms with other nodes (Config.Cluster); nil on a
	// single node, where rooms hold only local peers and nothing below
	// calls out. Only its non-blocking methods are called under mu.
	cl Cluster
}

type room struct {
	name  string
	peers map[string]*client // local peers, by peer id
	names map[string]string  // display name → peer id, local and remote
	// remote holds the room's peers on other nodes, in no order; nil
	// until the first arrives (always nil on a single node). A slice, not
	// a map: a room holds a few peers (max_peers_per_room), and a node
	// holds a view of every room with a peer here, so a map per room
	// (a 400-byte group for the first entry) cost more than the peers.
	remote []remotePeer
	// held counts the bytes held for the room's suspended peers
	// (MaxRoomHeldBytes).
	held atomic.Int64
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
	return &hub{rooms: map[string]*room{}, clients: map[*client]struct{}{}, suspended: map[string]*client{},
		resumeWindow: resumeWindow, after: after, cl: cl}
}

// empty reports whether r has no peer left on any node.
func (r *room) empty() bool { return len(r.peers) == 0 && len(r.remote) == 0 }

// register adds a connection; false once the hub is closed.
func (h *hub) register(c *client) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.clients[c] = struct{}{}
	return true
}

// unregister removes a connection. Its peer leaves its room, unless
// resumable: then the peer stays, suspended, for the resume window;
// messages for it are held (within the held bounds, MaxHeldBytes), a
// join with its resume token takes it over, and it keeps its client
// address's place in the per-address limit until then.
func (h *hub) unregister(c *client, resumable bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.clients, c)
	if resumable && c.room != nil && !h.closed && c.resumeToken != "" {
		dropped, ok := c.out.hold(&c.room.held)
		c.tellDropped(dropped)
		if ok {
			c.suspended.Store(true)
			h.suspended[c.resumeToken] = c
			c.suspendTimer = h.after(h.resumeWindow, func() { h.expire(c) })
			return
		}
	}
	h.leaveLocked(c)
}

// ended is called once c's connection has ended (its goroutines done).
// Unless c's peer is suspended, its outbox is closed and its place in
// the per-address limit released; for a suspended peer both happen when
// the suspension ends (endSuspension).
func (h *hub) ended(c *client) {
	h.mu.Lock()
	suspended := c.suspended.Load()
	h.mu.Unlock()
	if !suspended {
		c.out.close()
		c.releaseSlot()
	}
}

// endSuspension ends c's suspension, whichever way (resume, expiry,
// handover, close), and returns what was held for it. h.mu is held.
func (h *hub) endSuspension(c *client) []queued {
	c.suspended.Store(false)
	delete(h.suspended, c.resumeToken)
	c.suspendTimer.Stop()
	c.releaseSlot()
	return c.out.close()
}

// expire ends a suspension: the peer leaves its room for good, and what
// was held for it is dropped.
func (h *hub) expire(c *client) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !c.suspended.Load() {
		return
	}
	h.endSuspension(c)
	h.leaveLocked(c)
}

// resume hands the suspended peer with token to c: same id and name, same
// place in the room, its queued messages after the new welcome. The room
// sees nothing. ok is false for an unknown, expired or other-room token.
func (h *hub) resume(c *client, token, roomName string, iceServers []rtc.ICEServer, ttl int64) (ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	old := h.suspended[token]
	if old == nil || old.room.name != roomName || c.room != nil {
		return false
	}
	held := h.endSuspension(old)
	r := old.room
	c.id, c.name, c.room = old.id, old.name, r
	c.resumeToken = newToken()
	r.peers[c.id] = c
	old.room = nil
	c.enqueue(encode(welcomeMsg{Type: TypeWelcome, ID: c.id, Room: r.name, Peers: peersOf(r, c),
		ICEServers: iceServers, TTL: ttl, Resume: c.resumeToken, Resumed: true}))
	c.requeue(held)
	return true
}

func peersOf(r *room, except *client) []PeerInfo {
	peers := make([]PeerInfo, 0, len(r.peers)+len(r.remote))
	for id, p := range r.peers {
		if p != except {
			peers = append(peers, PeerInfo{ID: id, Name: p.name})
		}
	}
	for _, p := range r.remote {
		if !p.hidden {
			peers = append(peers, PeerInfo{ID: p.id, Name: p.name})
		}
	}
	sort.Slice(peers, func(i, j int) bool { return peers[i].Name < peers[j].Name })
	return peers
}

// protoError is a refused request, sent to the client as an error
// message with code (Code*).
type protoError struct{ code, message string }

// join puts c in the named room under name. iceServers and ttl are the
// credentials for welcome, minted by the caller outside the lock.
func (h *hub) join(c *client, roomName, name, password string, lim limits, roomPassword string, iceServers []rtc.ICEServer, ttl int64) *protoError {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c.room != nil {
		return &protoError{CodeBadMessage, fmt.Sprintf("already joined to room %q; send leave first", c.room.name)}
	}
	if roomPassword != "" && subtle.ConstantTimeCompare([]byte(password), []byte(roomPassword)) != 1 {
		return &protoError{CodeBadPassword, "wrong or missing password for room " + roomName}
	}
	r := h.rooms[roomName]
	if r == nil {
		if lim.maxRooms > 0 && len(h.rooms) >= lim.maxRooms {
			return &protoError{CodeRoomLimit, fmt.Sprintf("the server has its maximum of %d rooms; try again later", lim.maxRooms)}
		}
		r = &room{name: roomName, peers: map[string]*client{}, names: map[string]string{}}
	}
	if len(r.peers) >= lim.maxPeers {
		return &protoError{CodeRoomFull, fmt.Sprintf("room %q is full (%d peers)", roomName, lim.maxPeers)}
	}
	if _, taken := r.names[name]; taken {
		return &protoError{CodeNameTaken, fmt.Sprintf("the name %q is taken in room %q; choose another", name, roomName)}
	}
	h.rooms[roomName] = r
	seat(c, r, name, iceServers, ttl)
	return nil
}

// seat adds c to room r under name, queues c's welcome (listing the
// peers there before it) and tells this node's other members. h.mu is
// held.
func seat(c *client, r *room, name string, iceServers []rtc.ICEServer, ttl int64) {
	peers := peersOf(r, c)
	c.room, c.name = r, name
	c.resumeToken = newToken()
	r.peers[c.id] = c
	r.names[name] = c.id
	// welcome is queued before any other peer can signal c.
	c.enqueue(encode(welcomeMsg{Type: TypeWelcome, ID: c.id, Room: r.name, Peers: peers, ICEServers: iceServers, TTL: ttl, Resume: c.resumeToken}))
	joined := encode(peerMsg{Type: TypePeerJoined, ID: c.id, Name: name})
	for id, p := range r.peers {
		if id != c.id {
			p.enqueue(joined)
		}
	}
}

// leave takes c out of its room, telling the others.
func (h *hub) leave(c *client) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.leaveLocked(c)
}

func (h *hub) leaveLocked(c *client) bool {
	r := c.room
	if r == nil {
		return false
	}
	delete(r.peers, c.id)
	delete(r.names, c.name)
	c.room = nil
	// A closing server tells no one here that a peer left: every
	// connection is being closed with 1001, and a page that heard
	// peer-left before its own close would drop a peer connection it
	// keeps across the restart. Other nodes are still told (below).
	if !h.closed {
		left := encode(peerMsg{Type: TypePeerLeft, ID: c.id})
		for _, p := range r.peers {
			p.enqueue(left)
		}
		h.promoteLocked(r, c.name)
	}
	if r.empty() {
		delete(h.rooms, r.name)
	}
	if h.cl != nil {
		h.cl.Left(r.name, c.id)
	}
	return true
}

// signal relays data from c to the peer with id to in c's room.
func (h *hub) signal(c *client, to string, data json.RawMessage) *protoError {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c.room == nil {
		return &protoError{CodeNotJoined, "join a room before sending signal"}
	}
	target := c.room.peers[to]
	if target == nil {
		if rp, ok := c.room.remoteOf(to); ok {
			h.cl.Signal(rp.node, c.room.name, c.id, to, data)
			return nil
		}
	}
	if target == nil || target == c {
		return &protoError{CodeUnknownPeer, fmt.Sprintf("no peer %q in room %q", to, c.room.name)}
	}
	target.enqueueSignal(encode(signalMsg{Type: TypeSignal, From: c.id, Data: data}), c)
	return nil
}

// inRoom reports whether c has joined a room.
func (h *hub) inRoom(c *client) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return c.room != nil
}

// close marks the hub closed, drops the suspended peers (their rooms are
// closing too) and returns every connection.
func (h *hub) close() []*client {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for _, c := range h.suspended {
		h.endSuspension(c)
		h.leaveLocked(c)
	}
	out := make([]*client, 0, len(h.clients))
	for c := range h.clients {
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
	return len(h.clients), rooms, peers
}
