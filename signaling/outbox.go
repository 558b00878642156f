package signaling

import (
	"sync"
	"sync/atomic"
)

// Queue bounds, in bytes of encoded messages. A live connection's queue
// drains as fast as its reader reads; a suspended peer's (one whose
// connection dropped, within the resume window) only grows, so it is held
// to far less. Together the two server-wide bounds, 48 MiB, stay under the
// 64 MB a small appliance is meant to spend on signaling at worst.
const (
	// MaxQueuedBytes bounds one live connection's queue: 1 MiB, 16
	// messages of MaxMessageSize. A connection that lets it fill reads
	// too slowly and is closed (1008, "too slow").
	MaxQueuedBytes = 16 * MaxMessageSize
	// MaxServerQueuedBytes bounds the live connections' queues together:
	// 32 MiB, 32 connections with full queues. Past it a connection with
	// more than busyQueuedBytes queued is closed as too slow, so slow
	// readers cannot spend the server's memory 1 MiB at a time.
	MaxServerQueuedBytes = 32 << 20
	// busyQueuedBytes is a live queue's bound while the server is past
	// MaxServerQueuedBytes: 128 KiB, two messages of MaxMessageSize — a
	// reader that keeps up holds less.
	busyQueuedBytes = 2 * MaxMessageSize
	// MaxHeldBytes bounds what is held for one suspended peer: 256 KiB,
	// 4 messages of MaxMessageSize (an offer and its candidates are a few
	// KiB). Past it the peer's oldest signals are dropped, and their
	// senders told (wire.CodeSignalDropped).
	MaxHeldBytes = 4 * MaxMessageSize
	// MaxRoomHeldBytes bounds what is held for one room's suspended
	// peers together: 1 MiB, 4 peers at MaxHeldBytes. Past it a signal
	// for a suspended peer of the room drops that peer's oldest ones.
	MaxRoomHeldBytes = 4 * MaxHeldBytes
	// MaxServerHeldBytes bounds what is held for every suspended peer
	// together: 16 MiB, 16 rooms at MaxRoomHeldBytes. Past it, too, a
	// signal for a suspended peer drops that peer's oldest ones; a
	// suspended peer whose room events (peer-joined, peer-left) do not
	// fit leaves its room, as one whose window ended.
	MaxServerHeldBytes = 16 << 20
)

// queueBytes counts a Server's queued bytes. Concurrent enqueues may
// each pass a bound by one message before the count shows the other.
type queueBytes struct {
	live    atomic.Int64 // live connections' queues, writes in progress included
	held    atomic.Int64 // suspended peers' queues
	dropped atomic.Int64 // signals dropped from suspended peers' queues
}

// queued is one message in an outbox.
type queued struct {
	b []byte
	// signal marks a relayed signal, which a suspended peer's queue may
	// drop; room events and errors are never dropped.
	signal bool
	// from is a signal's sender on this node, told when it is dropped;
	// nil for one from another node.
	from *conn
}

// outbox is a connection's queue of outbound messages, bounded in bytes.
// No goroutine waits on it: push reports when the queue turned busy so the
// caller starts a writer, and the writer stops when next finds it empty.
// An idle connection so holds no queue slots and no writer goroutine.
//
// While its peer is suspended (hold), the outbox is held: no writer
// starts, its bytes count as held, in its room's and the server's count,
// and the held bounds apply.
type outbox struct {
	mu      sync.Mutex
	q       []queued
	bytes   int // in q, plus taken by the writer and not yet written
	writing bool
	srv     *queueBytes
	// room is the held count of the suspended peer's room; nil while live.
	room *atomic.Int64
	// closed: the connection has ended and nothing will write the
	// queue; push discards.
	closed bool
}

func newOutbox(srv *queueBytes) *outbox { return &outbox{srv: srv} }

// count adds n bytes (n < 0: removes) to the outbox's counts. mu is held.
func (o *outbox) count(n int) {
	o.bytes += n
	if o.room != nil {
		o.room.Add(int64(n))
		o.srv.held.Add(int64(n))
	} else {
		o.srv.live.Add(int64(n))
	}
}

// push queues m. ok is false when m does not fit: a live queue is past
// MaxQueuedBytes (or busyQueuedBytes with the server past
// MaxServerQueuedBytes); a held queue cannot make room for a message that
// is no signal. A held queue makes room by dropping its oldest signals,
// returned in dropped; when dropping all of them is not enough, a new
// signal is dropped itself (returned in dropped, ok true). start is true
// when no writer is running and the caller must start one.
func (o *outbox) push(m queued) (start, ok bool, dropped []queued) {
	o.mu.Lock()
	defer o.mu.Unlock()
	n := len(m.b)
	if o.closed {
		return false, true, nil
	}
	if o.room == nil {
		if o.bytes+n > MaxQueuedBytes || (o.srv.live.Load()+int64(n) > MaxServerQueuedBytes && o.bytes+n > busyQueuedBytes) {
			return false, false, nil
		}
	} else {
		dropped = o.makeRoom(n)
		if o.overHeld(n) {
			if m.signal {
				return false, true, append(dropped, m)
			}
			return false, false, dropped
		}
	}
	o.q = append(o.q, m)
	o.count(n)
	if !o.writing && o.room == nil {
		o.writing = true
		start = true
	}
	return start, true, dropped
}

// pushAll queues q, what was held for a suspended peer, on a live
// queue taking the peer over: held within MaxHeldBytes, it fits
// MaxQueuedBytes, and a resumed peer is not closed as slow for what it
// missed while the server's live queues are past MaxServerQueuedBytes.
// start is as for push.
func (o *outbox) pushAll(q []queued) (start bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed || len(q) == 0 {
		return false
	}
	for _, m := range q {
		o.q = append(o.q, m)
		o.count(len(m.b))
	}
	if !o.writing && o.room == nil {
		o.writing = true
		start = true
	}
	return start
}

// overHeld reports whether n more bytes would pass a held bound. mu is
// held.
func (o *outbox) overHeld(n int) bool {
	return o.bytes+n > MaxHeldBytes || o.room.Load()+int64(n) > MaxRoomHeldBytes || o.srv.held.Load()+int64(n) > MaxServerHeldBytes
}

// makeRoom drops the oldest signals until n more bytes pass no held
// bound, or no signal is left. mu is held.
func (o *outbox) makeRoom(n int) (dropped []queued) {
	for o.overHeld(n) {
		i := 0
		for i < len(o.q) && !o.q[i].signal {
			i++
		}
		if i == len(o.q) {
			break
		}
		dropped = append(dropped, o.q[i])
		o.count(-len(o.q[i].b))
		o.q = append(o.q[:i], o.q[i+1:]...)
	}
	return dropped
}

// hold turns the outbox held, counted in room (the suspended peer's
// room's held count), and drops its oldest signals until it fits the held
// bounds. ok is false when it still does not (room events alone fill it):
// the peer cannot be kept.
func (o *outbox) hold(room *atomic.Int64) (dropped []queued, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.srv.live.Add(int64(-o.bytes))
	o.room = room
	o.room.Add(int64(o.bytes))
	o.srv.held.Add(int64(o.bytes))
	dropped = o.makeRoom(0)
	return dropped, !o.overHeld(0)
}

// isHeld reports whether the outbox is held for a suspended peer.
func (o *outbox) isHeld() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.room != nil
}

// next returns what is queued for the running writer, oldest first; nil
// means the queue is empty and the writer must stop. The writer reports
// each message written, or given up, to written.
func (o *outbox) next() []queued {
	o.mu.Lock()
	defer o.mu.Unlock()
	q := o.q
	o.q = nil
	if len(q) == 0 {
		o.writing = false
	}
	return q
}

// written uncounts n bytes the writer took from next.
func (o *outbox) written(n int) {
	o.mu.Lock()
	o.count(-n)
	o.mu.Unlock()
}

// stop marks the writer stopped, leaving the queue for take.
func (o *outbox) stop() {
	o.mu.Lock()
	o.writing = false
	o.mu.Unlock()
}

// take removes, uncounts and returns everything queued, for the close,
// resume and expiry paths; a held outbox is live again after it.
func (o *outbox) take() []queued {
	o.mu.Lock()
	defer o.mu.Unlock()
	q := o.q
	o.q = nil
	for _, m := range q {
		o.count(-len(m.b))
	}
	if o.room != nil {
		// What a writer took before the hold and has not reported stays
		// counted, as live.
		o.room.Add(int64(-o.bytes))
		o.srv.held.Add(int64(-o.bytes))
		o.srv.live.Add(int64(o.bytes))
		o.room = nil
	}
	return q
}

// close takes what is queued, like take, and discards whatever is
// pushed from now on: the connection has ended (and its peer is not
// suspended, or no longer).
func (o *outbox) close() []queued {
	q := o.take()
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
	return q
}

// frames returns the messages of q.
func frames(q []queued) [][]byte {
	out := make([][]byte, len(q))
	for i, m := range q {
		out[i] = m.b
	}
	return out
}
