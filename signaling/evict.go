package signaling

import (
	"fmt"

	"github.com/icebox-project/icebox/signaling/wire"
)

// Evict takes this node's peer id out of room because its name belongs
// to another peer across the cluster (the cluster's record says so):
// the room's other local peers see it leave, the other nodes are told
// (Cluster.Left), and the peer gets the error wire.CodeNameLost on a
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
	p := r.peers[id]
	if p == nil {
		return false
	}
	s.evictLocked(r, p)
	return true
}

// evictLocked is Evict of p, a peer of r here; hub.mu is held.
func (s *Server) evictLocked(r *room, p *peer) {
	h := s.hub
	if p.suspended.Load() {
		h.endSuspension(p)
	} else {
		p.enqueue(encode(&wire.Error{Code: wire.CodeNameLost,
			Message: fmt.Sprintf("your node was cut off from the cluster and the name %q in room %q went to another peer meanwhile; join again", p.name, r.name)}))
	}
	h.leaveLocked(p)
	s.log.Warn("peer evicted: its name went to another peer while its node was cut off", "room", r.name, "peer", p.id)
}
