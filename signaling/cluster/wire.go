package cluster

import (
	"encoding/json"
	"sync"
)

// Subjects (doc.go). Node ids are single subject tokens (A-Z a-z 0-9 -
// _ and "@"). Room events share one subject, the room in the message: a
// subject per room would fill nats-server's per-connection subject caches
// with thousands of entries.
const (
	subjRooms     = "icebox.rooms"
	subjHeartbeat = "icebox.hb"
	subjResume    = "icebox.resume"
)

// subjMembers is where a node answers for its own peers; the answer goes
// to the asker's subjSync, in the asker's ordered inbound stream.
func subjMembers(id string) string { return "icebox.members." + id }
func subjSync(id string) string    { return "icebox.sync." + id }

// membersChunk bounds the peers in one members message (well under NATS's
// 1 MiB payload).
const membersChunk = 2000

// membersWire is (part of) a node's answer: its own peers.
type membersWire struct {
	Node    string        `json:"o"`
	Members []memberEntry `json:"m"`
	// Last marks the answer's last part: the node's peers not listed in
	// the answer are gone.
	Last bool `json:"last,omitempty"`
}

type memberEntry struct {
	Room string `json:"r"`
	ID   string `json:"i"`
	Name string `json:"n"`
}

func subjNode(id string) string { return "icebox.node." + id }

// Message kinds, also the "type" label of the remote message counters.
const (
	kindJoined    = "joined"
	kindLeft      = "left"
	kindMoved     = "moved"
	kindSignal    = "signal"
	kindHeartbeat = "heartbeat"
	kindResume    = "resume"
	kindMembers   = "members"
	kindRelease   = "release"
	kindInvalid   = "invalid"
	// kindRejected counts messages that failed authentication (auth.go),
	// named another node than their signer, or announced the departure of
	// a peer another node holds.
	kindRejected = "rejected"
)

// event is a room event on icebox.rooms.
type event struct {
	Kind string `json:"k"`
	Room string `json:"r"`
	ID   string `json:"i"`
	Name string `json:"n,omitempty"`
	Node string `json:"o"`
}

// signalWire is a signal on icebox.node.<id>. Sent is the sender's clock
// in Unix nanoseconds; Hops counts forwards (at most one: to a peer that
// moved).
type signalWire struct {
	Kind string          `json:"k"`
	Room string          `json:"r"`
	From string          `json:"f"`
	To   string          `json:"t"`
	Data json.RawMessage `json:"d"`
	Sent int64           `json:"s"`
	Hops int             `json:"h,omitempty"`
}

// heartbeatWire is a heartbeat on icebox.hb.
type heartbeatWire struct {
	Kind  string     `json:"k"`
	Node  string     `json:"o"`
	Name  string     `json:"n"`
	Relay RelayRange `json:"relay"`
	Peers int        `json:"peers"`
	// Gone says the node is stopping: its peers have left.
	Gone bool `json:"gone,omitempty"`
}

// resumeWire is a resume request on icebox.resume.
type resumeWire struct {
	Token string `json:"tok"`
	Room  string `json:"r"`
	Node  string `json:"o"`
}

// outMsg is one item of a queue: a message to publish, or (kind
// release) a peer whose name and place go back to the bucket, or a
// marker (done) closed when the consumer reaches it.
type outMsg struct {
	subject string
	data    []byte
	kind    string
	room    string
	id      string
	done    chan struct{}
}

// queue is an unbounded FIFO with one consumer. push never blocks, so
// it may be called under signaling's hub lock; it is a leaf lock.
type queue struct {
	mu     sync.Mutex
	items  []outMsg
	wake   chan struct{} // one token when items were added
	closed bool
}

func (q *queue) init() { q.wake = make(chan struct{}, 1) }

func (q *queue) push(m outMsg) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		if m.done != nil {
			close(m.done)
		}
		return
	}
	q.items = append(q.items, m)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take returns everything queued, nil when empty.
func (q *queue) take() []outMsg {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items = nil
	return items
}

// flushed returns a channel closed once the consumer has handled
// everything queued before the call.
func (q *queue) flushed() <-chan struct{} {
	done := make(chan struct{})
	q.push(outMsg{done: done})
	return done
}

// close drops what is left; markers are closed.
func (q *queue) close() {
	q.mu.Lock()
	q.closed = true
	items := q.items
	q.items = nil
	q.mu.Unlock()
	for _, m := range items {
		if m.done != nil {
			close(m.done)
		}
	}
}
