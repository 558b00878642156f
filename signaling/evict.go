package signaling

import "fmt"

// CodeNameLost tells a peer it is out of its room: its node was cut off
// from the rest of the cluster, the others gave its name back meanwhile
// and another peer took it. The connection stays open; joining again
// (under another name, or the same once free) is the way back. Sent as
// {"type":"error","code":"name-lost","message":…,"room":…,"name":…}.
const CodeNameLost = "name-lost"

// nameLostMsg is the error CodeNameLost.
type nameLostMsg struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
	Room    string `json:"room"`
	Name    string `json:"name"`
}

// Evict takes this node's peer id out of room because its name belongs
// to another peer across the cluster (the cluster's record says so):
// the room's other local peers see it leave, the other nodes are told
// (Cluster.Left), and the peer gets the error CodeNameLost on a
// connection that stays open. A suspended peer's suspension ends. It
// returns false, changing nothing, when id is no peer of room here.
// Called by the Cluster.
func (s *Server) Evict(roomName, id string) bool {
	h := s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[roomName]
	if r == nil {
		return false
	}
	c := r.peers[id]
	if c == nil {
		return false
	}
	s.evictLocked(r, c)
	return true
}

// evictLocked is Evict of c, a peer of r here; hub.mu is held.
func (s *Server) evictLocked(r *room, c *client) {
	h := s.hub
	name := c.name
	if c.suspended.Load() {
		h.endSuspension(c)
	} else {
		c.enqueue(encode(nameLostMsg{Type: TypeError, Code: CodeNameLost, Room: r.name, Name: name,
			Message: fmt.Sprintf("your node was cut off from the cluster and the name %q in room %q went to another peer meanwhile; join again", name, r.name)}))
	}
	h.leaveLocked(c)
	s.log.Warn("peer evicted: its name went to another peer while its node was cut off", "room", r.name, "peer", c.id)
}
