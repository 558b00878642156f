package cluster

import (
	"encoding/json"
	"hash/fnv"
	"time"
)

// An SFU room is hosted by one node: its SFU forwards the media of every
// participant, wherever their signaling lives. The room's record names
// the host (record.Host): the first joiner's node. A peer on another
// node keeps its signaling there; what it says to "sfu" travels to the
// host, and what the host's SFU says to it travels back (SFU), and its
// media goes to the host's address. When the host is gone, every node
// takes the same successor (Successor) without asking anyone: the
// live node ranked first for the room by rendezvous hashing, so each
// node reaches the same answer from the same set of live nodes, and the
// next join writes it into the record.

// SFU implements signaling.Cluster: frame, a whole protocol v1 frame,
// goes to node for peer of room. Like a signal it is dropped past the
// outbound queue's share for signals.
func (n *Node) SFU(node, room, peer string, frame []byte) {
	b, _ := json.Marshal(signalWire{Kind: kindSFU, Room: room, To: peer, Data: frame, Sent: time.Now().UnixNano()})
	n.queueOut(outMsg{subject: subjNode(node), data: b, kind: kindSFU, room: room})
}

// Successor implements signaling.Cluster: the live node (this one
// included) with the highest rendezvous hash for room; ties go to the
// smaller id.
func (n *Node) Successor(room string) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	best, top := n.id, rendezvous(room, n.id)
	for id, pn := range n.nodes {
		if pn.dead || pn.name == "" {
			continue
		}
		if h := rendezvous(room, id); h > top || h == top && id < best {
			best, top = id, h
		}
	}
	return best
}

// hostGone reports whether node, a room's recorded host, no longer
// hosts: it is known to be gone, or, once this node has listened for
// DeadAfter, unknown (as stale judges members).
func (n *Node) hostGone(node string) bool {
	if node == n.id {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	pn := n.nodes[node]
	if pn == nil {
		return time.Since(n.start) > n.cfg.DeadAfter
	}
	return pn.dead
}

// rendezvous is node's rank for room (highest random weight hashing).
func rendezvous(room, node string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(room))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(node))
	return h.Sum64()
}
