package cluster

import (
	"context"
	"encoding/json"
	"time"

	"github.com/nats-io/nats.go"
)

// kindRoom labels a dropped inbound room event whose kind could not be
// read (the inbound queue drops before authenticating).
const kindRoom = "room"

// queueOut queues m for the other nodes, or drops it when the outbound
// queue is full (queue.go): a signal past the signals' share, anything
// else past MaxOutboundBytes. A dropped room event or members answer is
// recovered by resyncOut; a dropped heartbeat by the next one.
func (n *Node) queueOut(m outMsg) {
	if n.out.push(m, m.size(), m.kind == kindSignal || m.kind == kindSFU, m.kind != kindHeartbeat) {
		return
	}
	n.stats.dropOut(m.kind)
	held, _ := n.out.held()
	n.drops.Warn("cluster-outbound-full", "cluster: outbound queue full; message dropped",
		"type", m.kind, "room", m.room, "queued_bytes", held, "max_bytes", MaxOutboundBytes)
}

// forward moves what nats.go delivers to the inbound queue, at once, so
// nats.go's hand-off channel stays near empty; it drops what does not
// fit as queueOut does. It ends with ctx.
func (n *Node) forward(ctx context.Context) {
	sync, signals := subjSync(n.id), subjNode(n.id)
	for {
		var m *nats.Msg
		select {
		case <-ctx.Done():
			return
		case m = <-n.in:
		}
		kind, keep := kindRoom, true
		switch m.Subject {
		case signals:
			kind, keep = kindSignal, false
		case subjHeartbeat:
			kind, keep = kindHeartbeat, false
		case sync:
			kind = kindMembers
		}
		if n.inq.push(m, m.Size(), kind == kindSignal, keep) {
			continue
		}
		if kind == kindRoom {
			var ev struct {
				Kind string `json:"k"`
			}
			if json.Unmarshal(m.Data, &ev) == nil && (ev.Kind == kindJoined || ev.Kind == kindLeft || ev.Kind == kindMoved) {
				kind = ev.Kind
			}
		}
		n.stats.dropIn(kind)
		held, _ := n.inq.held()
		n.drops.Warn("cluster-inbound-full", "cluster: inbound queue full; message dropped",
			"type", kind, "queued_bytes", held, "max_bytes", MaxInboundBytes)
	}
}

// resyncOut, called by the sender with the outbound queue empty, sends
// this node's peers to every live node when a room event or members
// answer was dropped from the queue: each node then holds what a members
// answer says (handleMembers), as after asking. At most once per
// DeadAfter, so a node whose answer does not fit either does not loop;
// until then the loss stays marked and the next empty queue tries again.
func (n *Node) resyncOut() {
	n.resyncQueue(&n.out, &n.lastResync.out, "cluster: room events were dropped; sending this node's peers to the others",
		func(id string) { n.answerMembers(subjSync(id)) })
}

// resyncIn, called by the receiver with the inbound queue empty, asks
// every live node for its peers when a room event or members answer was
// dropped on the way in (or by nats.go, a slow consumer); at most once
// per DeadAfter, as resyncOut.
func (n *Node) resyncIn() {
	n.resyncQueue(&n.inq, &n.lastResync.in, "cluster: room events from other nodes were dropped; asking them for their peers", n.askMembers)
}

// resyncQueue does each for every live node when q marked a loss, at most once
// per DeadAfter since last; otherwise the loss stays marked for the next
// empty queue.
func (n *Node) resyncQueue(q lossMarker, last *time.Time, msg string, each func(id string)) {
	if !q.takeLost() {
		return
	}
	if time.Since(*last) < n.cfg.DeadAfter {
		q.markLost()
		return
	}
	*last = time.Now()
	ids := n.liveNodes()
	n.log.Info(msg, "nodes", len(ids))
	for _, id := range ids {
		each(id)
	}
}

// liveNodes is the ids of the other nodes not taken for gone.
func (n *Node) liveNodes() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var ids []string
	for id, pn := range n.nodes {
		if !pn.dead {
			ids = append(ids, id)
		}
	}
	return ids
}

// QueueBytes is what a node's cluster queues hold, in bytes: now and the
// most ever held (bounded by MaxOutboundBytes and MaxInboundBytes).
type QueueBytes struct {
	Out, OutPeak int
	In, InPeak   int
}

// QueueBytes returns what the node's queues hold.
func (n *Node) QueueBytes() QueueBytes {
	var q QueueBytes
	q.Out, q.OutPeak = n.out.held()
	q.In, q.InPeak = n.inq.held()
	return q
}

// lossMarker is a queue that marks when it dropped what a resync restores.
type lossMarker interface {
	takeLost() bool
	markLost()
}
