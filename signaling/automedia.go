package signaling

import (
	"time"

	"github.com/icebox-project/icebox/signaling/wire"
)

// An auto room (SFUConfig.Media says MediaAuto) opens as a mesh. The
// joiner that would make it hold more than SFUConfig.MeshMax peers moves
// it to the SFU: it is seated as an SFU room member (its welcome says
// sfu), and every member already there is made an SFU participant and
// then told {"type":"media","media":"sfu"}. Once the room has held two
// peers or fewer for SFUConfig.MeshReturn, it goes back to a mesh: every
// member told sfu is told {"type":"media","media":"mesh"}, and the SFU
// keeps forwarding for sfuLinger more, so pages can carry on over the
// SFU until their mesh connections carry media; then every participant
// is ended.
//
// Each move starts a new epoch of the room. A participant made for an
// epoch that has passed, or for a peer that left meanwhile, is ended at
// once (joinSFU); each timer checks the epoch it was started in. Rooms
// on a cluster node are never auto (hub.joinCluster): their members may
// sit on several nodes, and a move would need every node to agree.

// sfuLinger is how long the SFU keeps forwarding after an auto room went
// back to a mesh: pages keep their SFU connection until the mesh one
// presents video (seconds on a slow network) and need the SFU until then.
const sfuLinger = 10 * time.Second

// toSFULocked moves auto room r to the SFU. s makes the members' SFU
// participants, each on a goroutine of its own. h.mu is held.
func (h *hub) toSFULocked(r *room, s *Server) {
	r.media = wire.MediaSFU
	r.epoch++
	r.stopTimers()
	epoch := r.epoch
	for _, p := range r.peers {
		// Still kept from the last SFU period (sfuLinger): the page made
		// a new connection since, which needs a new participant.
		p.leaveSFU()
		s.tasks.goFunc(func() { s.joinSFU(p, r, epoch, true) })
	}
}

// holdLocked starts the return of auto room r to a mesh when it is on
// the SFU with two peers or fewer, and stops it when it holds more
// again. h.mu is held.
func (h *hub) holdLocked(r *room) {
	if !r.auto || r.media != wire.MediaSFU {
		return
	}
	if len(r.peers)+len(r.remote) > 2 {
		if r.hold != nil {
			r.hold.Stop()
			r.hold = nil
		}
		return
	}
	if r.hold != nil {
		return
	}
	epoch := r.epoch
	r.hold = h.after(h.sfu.meshReturn(), func() { h.toMesh(r, epoch) })
}

// toMesh moves auto room r back to a mesh, if it is still on the SFU in
// epoch with two peers or fewer.
func (h *hub) toMesh(r *room, epoch uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed || h.rooms[r.name] != r || r.epoch != epoch || r.media != wire.MediaSFU || len(r.peers)+len(r.remote) > 2 {
		return
	}
	r.hold = nil
	r.media = wire.MediaMesh
	r.epoch++
	epoch = r.epoch
	m := encode(&wire.Media{Media: wire.MediaMesh})
	for _, p := range r.peers {
		if p.media != wire.MediaMesh {
			p.media = wire.MediaMesh
			p.enqueue(m)
		}
	}
	r.linger = h.after(sfuLinger, func() { h.endLinger(r, epoch) })
}

// endLinger ends the SFU participants kept after r went back to a mesh
// in epoch.
func (h *hub) endLinger(r *room, epoch uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r.epoch != epoch {
		return
	}
	r.linger = nil
	for _, p := range r.peers {
		p.leaveSFU()
	}
}

// stopTimers stops r's pending moves (the room closes, or moves). h.mu
// is held.
func (r *room) stopTimers() {
	for _, t := range []*Timer{&r.hold, &r.linger} {
		if *t != nil {
			(*t).Stop()
			*t = nil
		}
	}
}
