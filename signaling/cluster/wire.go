package cluster

import (
	"encoding/json"

	"github.com/icebox-project/icebox/internal/relayrange"
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
	kindJoined = "joined"
	kindLeft   = "left"
	kindMoved  = "moved"
	kindSignal = "signal"
	// kindSFU carries an SFU room's messages between a peer's node and
	// the node hosting the room's SFU (sfuhost.go), in a signalWire whose
	// To is the peer and whose Data is a whole protocol v1 frame.
	kindSFU       = "sfu"
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
	Kind  string                `json:"k"`
	Node  string                `json:"o"`
	Name  string                `json:"n"`
	Relay relayrange.RelayRange `json:"relay"`
	Peers int                   `json:"peers"`
	// Gone says the node is stopping: its peers have left.
	Gone bool `json:"gone,omitempty"`
	// Hears is, for each other node the sender heard directly within
	// DeadAfter, how long ago it last did, in milliseconds of the
	// sender's clock (a duration: no clock is compared with another's).
	// A node cut off from this one alone is kept alive by the others'
	// word (vouch.go).
	Hears map[string]int64 `json:"hears,omitempty"`
}

// resumeWire is a resume request on icebox.resume.
type resumeWire struct {
	Token string `json:"tok"`
	Room  string `json:"r"`
	Node  string `json:"o"`
}
