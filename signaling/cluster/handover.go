package cluster

import (
	"encoding/json"
	"sync"
	"time"
)

// A peer that resumes here from another node is handed over (Resume):
// the node that held it routes it here from then on, and forwards what
// arrives for it. Until the signaling server seats it here, a signal for
// it finds it nowhere: neither a local peer nor, in this node's view,
// here (the view still says the other node). Such a signal waits
// (parks) while a hand-over to this node is under way, and is applied
// again once it ends (the peer seated, or the resume failed), at most
// parkFor later.
const (
	// parkFor bounds how long a signal waits for a hand-over here: the
	// resume's own wait (DefaultResumeTimeout) and the seating after it.
	parkFor = 5 * time.Second
	// MaxParkedBytes bounds what waits, in payload bytes; a signal past it
	// is not delivered (counted as undelivered).
	MaxParkedBytes = 1 << 20
)

// handovers tracks the hand-overs to this node under way and the
// signals parked meanwhile.
type handovers struct {
	mu sync.Mutex
	// asking counts Resume calls waiting for an answer.
	asking int
	// arriving are peers handed over to this node and not seated yet
	// (Resumed, or Left when the seating failed), with when they were
	// handed over.
	arriving map[string]time.Time
	// wake is signalled when a hand-over ends.
	wake chan struct{}

	// Owned by the receive goroutine.
	parked []parkedSignal
	bytes  int
}

type parkedSignal struct {
	sw    signalWire
	until time.Time
}

func (h *handovers) init() {
	h.arriving = map[string]time.Time{}
	h.wake = make(chan struct{}, 1)
}

// begin counts a Resume that asks the cluster.
func (h *handovers) begin() {
	h.mu.Lock()
	h.asking++
	h.mu.Unlock()
}

// answered ends a Resume: id is the peer handed over ("" when none was).
func (h *handovers) answered(id string) {
	h.mu.Lock()
	h.asking--
	if id != "" {
		h.arriving[id] = time.Now()
	}
	h.mu.Unlock()
	h.poke()
}

// seated ends the hand-over of id (seated here, or gone).
func (h *handovers) seated(id string) {
	h.mu.Lock()
	_, ok := h.arriving[id]
	delete(h.arriving, id)
	h.mu.Unlock()
	if ok {
		h.poke()
	}
}

func (h *handovers) poke() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// underWay reports whether a hand-over to this node is under way. A
// peer handed over and never seated stops counting after parkFor.
func (h *handovers) underWay(now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for id, at := range h.arriving {
		if now.Sub(at) > parkFor {
			delete(h.arriving, id)
		}
	}
	return h.asking > 0 || len(h.arriving) > 0
}

// nextExpiry is when the oldest parked signal stops waiting; zero when
// none waits.
func (h *handovers) nextExpiry() time.Time {
	if len(h.parked) == 0 {
		return time.Time{}
	}
	return h.parked[0].until
}

// applySignal delivers sw to its local peer, or forwards it once to the
// node its peer moved to. While a hand-over to this node is under way, a
// signal it cannot deliver yet, and any for a peer with signals parked
// already (they keep their order), is parked. Called by the receive
// goroutine.
func (n *Node) applySignal(sw signalWire) {
	now := time.Now()
	if n.hand.waitingFor(sw.To) {
		n.unpark(now)
	}
	if !n.hand.waitingFor(sw.To) {
		fwd, ok := n.rooms.RemoteSignal(sw.Room, sw.From, sw.To, sw.Data)
		if ok {
			return
		}
		if !n.hand.underWay(now) {
			n.forwardSignal(sw, fwd)
			return
		}
	}
	if n.hand.bytes+len(sw.Data) > MaxParkedBytes {
		n.stats.count(&n.stats.undelivered)
		return
	}
	n.hand.bytes += len(sw.Data)
	n.hand.parked = append(n.hand.parked, parkedSignal{sw: sw, until: now.Add(parkFor)})
}

// waitingFor reports whether a signal for peer id is parked.
func (h *handovers) waitingFor(id string) bool {
	for _, p := range h.parked {
		if p.sw.To == id {
			return true
		}
	}
	return false
}

// unpark applies the parked signals again, in order: each is delivered
// if its peer is here now; otherwise it keeps waiting while a hand-over
// is under way and its time is not up, or is forwarded or counted as
// undelivered as any other. Called by the receive goroutine.
func (n *Node) unpark(now time.Time) {
	if len(n.hand.parked) == 0 {
		return
	}
	underWay := n.hand.underWay(now)
	keep := n.hand.parked[:0]
	blocked := map[string]bool{} // peers with an earlier signal kept
	for _, p := range n.hand.parked {
		if !blocked[p.sw.To] {
			fwd, ok := n.rooms.RemoteSignal(p.sw.Room, p.sw.From, p.sw.To, p.sw.Data)
			if ok || !underWay || !now.Before(p.until) {
				if !ok {
					n.forwardSignal(p.sw, fwd)
				}
				n.hand.bytes -= len(p.sw.Data)
				continue
			}
		}
		blocked[p.sw.To] = true
		keep = append(keep, p)
	}
	clear(n.hand.parked[len(keep):])
	n.hand.parked = keep
}

// forwardSignal sends sw on to node fwd, where its peer moved, once (a
// signal forwarded already goes no further); with nowhere to send it, it
// is counted as undelivered.
func (n *Node) forwardSignal(sw signalWire, fwd string) {
	if fwd == "" || fwd == n.id || sw.Hops > 0 {
		n.stats.count(&n.stats.undelivered)
		return
	}
	sw.Hops++
	b, _ := json.Marshal(sw)
	n.queueOut(outMsg{subject: subjNode(fwd), data: b, kind: kindSignal, room: sw.Room})
}
