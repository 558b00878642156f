package signaling

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/gorilla/websocket"

	"github.com/icebox-project/icebox/sfu"
	"github.com/icebox-project/icebox/signaling/wire"
)

// peer is a member of a room on this node: its id, its name and place in
// the room, the token that resumes it, and its queue. It outlives the
// connection that joined it: when that connection drops (no close
// frame), the peer stays in its room, suspended, for the resume window,
// its queue held (outbox.hold) within the held bounds; a connection that
// joins with its resume token takes the same peer over (hub.resume), and
// the room sees nothing.
//
// A connection has a peer from the start (newConn), in no room until a
// join seats it.
type peer struct {
	// id is the peer id the room sees. Set when the peer is made, or
	// by a handover from another node (resumeRemote), under hub.mu.
	id string

	// name, room, resumeToken, suspendTimer, out and conn are guarded by
	// hub.mu.
	name        string
	room        *room
	resumeToken string
	// suspendTimer ends the suspension at the end of the resume window.
	suspendTimer Timer
	// out is the queue of messages for the peer: its connection's
	// (conn.out), held while suspended.
	out *outbox
	// conn is the connection speaking for the peer; while suspended, the
	// one that dropped, which keeps its client address's place in the
	// per-address limit until the suspension ends.
	conn *conn

	// suspended: the connection dropped and the peer waits for a
	// resume. Set and cleared under hub.mu.
	suspended atomic.Bool

	// media is the room's media mode as the peer was last told (welcome
	// or a media event), guarded by hub.mu; "" without an SFU.
	media string

	// sfuPart is the peer's participant of its SFU room on this node's
	// SFU (sfu.go);
	// sfuGone closes once the last one it had has left the SFU.
	sfuMu   sync.Mutex
	sfuPart *sfu.Participant
	sfuGone chan struct{}
	// sfuReady, when set, closes once the participant being made for
	// the peer on a new host here exists (sfuhost.go).
	sfuReady chan struct{}
	// sfuSession is the SDP session id of the peer's connection to
	// "sfu", from the last SDP it sent there. sfuStale, when set, is the
	// session of a connection the peer was told to replace (a renew, a
	// move to the SFU): its signals to "sfu" are dropped until an SDP of
	// another session comes (admitSFULocked).
	sfuSession, sfuStale string
}

// enqueue queues b, a room event or an error, for the peer without
// blocking. A full queue means the client cannot keep up; it is
// disconnected rather than let it stall its room. For a suspended peer,
// a queue that cannot take b ends the suspension: the peer leaves its
// room.
func (p *peer) enqueue(b []byte) { p.push(queued{b: b}) }

// enqueueSignal queues the signal b from the connection from (nil: from
// a peer on another node). A suspended peer's queue drops its oldest
// signals to make room, and their senders are told
// (wire.CodeSignalDropped).
func (p *peer) enqueueSignal(b []byte, from *conn) {
	p.push(queued{b: b, signal: true, from: from})
}

// requeue queues what was held for the peer while suspended, now that a
// connection took it over (outbox.pushAll).
func (p *peer) requeue(q []queued) {
	if p.out.pushAll(q) && !p.suspended.Load() {
		p.conn.s.tasks.goFunc(p.conn.flush)
	}
}

func (p *peer) push(m queued) {
	c := p.conn
	start, ok, dropped := p.out.push(m)
	if start && !p.suspended.Load() {
		c.s.tasks.goFunc(c.flush)
	}
	p.tellDropped(dropped)
	if !ok {
		if p.suspended.Load() {
			// Too much missed while away: the peer leaves for good. The
			// caller may hold the hub lock, so expire elsewhere.
			c.s.tasks.goFunc(func() { c.s.hub.expire(p) })
			return
		}
		c.closeWith(websocket.ClosePolicyViolation, reasonSlow)
	}
}

// tellDropped counts the signals dropped from p's held queue and tells
// each sender still connected here which peer missed its signal. A
// suspended sender is not told (its own queue is held). hub.mu is held.
func (p *peer) tellDropped(dropped []queued) {
	if len(dropped) == 0 {
		return
	}
	s := p.conn.s
	s.queues.dropped.Add(int64(len(dropped)))
	for _, m := range dropped {
		if m.from == nil || m.from.peer == p || m.from.peer.suspended.Load() || m.from.closing() {
			continue
		}
		s.stats.error(wire.CodeSignalDropped)
		m.from.enqueue(encode(&wire.Error{Code: wire.CodeSignalDropped, To: p.id,
			Message: fmt.Sprintf("peer %q is away and too much is held for it; its oldest signal from you was dropped", p.id)}))
	}
}
