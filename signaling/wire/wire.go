// Package wire holds the messages of icebox's signaling protocol v1
// (docs/protocol.md) as Go types, shared by the server (signaling), the
// Go client (signaling/sigclient) and every program that speaks /ws.
//
// Each message is a text frame holding one JSON object whose "type"
// names it. A Go type here is one "type": its fields are the object's
// other members, and Marshal (or encoding/json, through MarshalJSON)
// writes "type" first. Decode reads a frame into the Go type its "type"
// names, and into an *Unknown for a type it does not know.
//
// Adding a message type: a struct, its Type* constant, the two methods
// (see Pong for the smallest), and one line in the types table
// (decode.go). Nothing else changes meaning: the protocol only grows by
// new types and new optional members (docs/protocol.md, "contract").
package wire

import (
	"encoding/json"

	"github.com/icebox-project/icebox/internal/rtc"
)

// Message types of protocol v1 (docs/protocol.md).
const (
	TypeJoin       = "join"
	TypeSignal     = "signal"
	TypeLeave      = "leave"
	TypePing       = "ping"
	TypeWelcome    = "welcome"
	TypePeerJoined = "peer-joined"
	TypePeerLeft   = "peer-left"
	TypeICEServers = "ice-servers"
	TypeError      = "error"
	TypePong       = "pong"
)

// Error codes, the "code" of an Error (docs/protocol.md, "Error codes").
const (
	// CodeBadMessage: not JSON, not an object, a missing or unknown
	// "type", a binary frame, a bad room or name, a signal without "to"
	// or with non-object "data", or a join while joined.
	CodeBadMessage = "bad-message"
	// CodeNameTaken: another peer in the room has that name.
	CodeNameTaken = "name-taken"
	// CodeRoomFull: the room has signaling.max_peers_per_room peers.
	CodeRoomFull = "room-full"
	// CodeBadPassword: the room has a password and the join's does not
	// match.
	CodeBadPassword = "bad-password"
	// CodeNotJoined: signal or leave before join.
	CodeNotJoined = "not-joined"
	// CodeUnknownPeer: a signal to an id not in the sender's room.
	CodeUnknownPeer = "unknown-peer"
	// CodeTooLarge: a message over 65,536 bytes.
	CodeTooLarge = "too-large"
	// CodeRateLimited: over the message rate, or (for a join) too many
	// wrong room passwords or TURN credentials from the client address.
	CodeRateLimited = "rate-limited"
	// CodeRoomLimit refuses a join that would open a room past the
	// server's room cap (signaling.max_rooms).
	CodeRoomLimit = "room-limit"
	// CodeSignalDropped tells a sender that a signal it sent to the
	// suspended peer named in "to" was dropped, oldest first, to keep
	// what is held for that peer within its bounds.
	CodeSignalDropped = "signal-dropped"
	// CodeNameLost tells a peer it is out of its room: its node was cut
	// off from the rest of the cluster, the others gave its name back
	// meanwhile and another peer took it. The connection stays open; a
	// join (under another name, or the same once free) is the way back.
	CodeNameLost = "name-lost"
)

// Message is one protocol v1 message: a pointer to one of the types
// below. MessageType is its "type"; MarshalJSON writes the whole object,
// "type" first.
type Message interface {
	MessageType() string
	json.Marshaler
}

// ICEServer is one RTCIceServer (W3C WebRTC, "The RTCIceServer
// dictionary"), as welcome and ice-servers carry them.
type ICEServer = rtc.ICEServer

// PeerInfo is one entry of Welcome.Peers.
type PeerInfo struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Join (client → server) enters Room under Name, or, with Resume, takes
// back the peer that token was issued to within the resume window (30 s
// after its connection dropped). Room: 1–64 of A-Z a-z 0-9 - _. Name:
// 1–64 printable characters, trimmed, unique in the room. Password: the
// room's, when it has one. Answered by Welcome, or by Error with
// CodeBadMessage, CodeNameTaken, CodeRoomFull, CodeBadPassword,
// CodeRateLimited or CodeRoomLimit.
type Join struct {
	Room     string `json:"room"`
	Name     string `json:"name"`
	Password string `json:"password,omitempty"`
	Resume   string `json:"resume,omitempty"`
}

// Signal relays Data, an object the server never reads (SDP, ICE
// candidates, call control), to one peer of the same room. Sent by a
// client, it names the receiver in To (From is ignored: the server sets
// it); received, From names the sender, set by the server. Refused with
// CodeNotJoined, CodeUnknownPeer or CodeBadMessage (no To, Data not an
// object).
type Signal struct {
	From string          `json:"from,omitempty"`
	To   string          `json:"to,omitempty"`
	Data json.RawMessage `json:"data"`
}

// Leave (client → server) leaves the room; the connection stays open and
// may join again. CodeNotJoined outside a room.
type Leave struct{}

// Ping (client → server) is answered by Pong.
type Ping struct{}

// Pong (server → client) answers Ping.
type Pong struct{}

// Welcome (server → client) answers a successful Join. ID is the peer's
// id in the room; Peers are the others, sorted by name (never nil);
// ICEServers carry TURN credentials minted for this connection, valid
// TTL seconds (0 with none); Resume is the token for a later Join after
// a drop; Resumed is true when this join took back a dropped peer (same
// ID, held messages follow).
type Welcome struct {
	ID         string      `json:"id"`
	Room       string      `json:"room"`
	Peers      []PeerInfo  `json:"peers"`
	ICEServers []ICEServer `json:"iceServers"`
	TTL        int64       `json:"ttl"`
	Resume     string      `json:"resume"`
	Resumed    bool        `json:"resumed"`
	// Media is the room's media mode, MediaMesh or MediaSFU, from a
	// server with an SFU; absent from one without.
	Media string `json:"media,omitempty"`
}

// PeerJoined (server → client): peer ID, named Name, joined the room.
type PeerJoined struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

// PeerLeft (server → client): peer ID left the room (leave, a closed
// connection, or a drop past the resume window).
type PeerLeft struct {
	ID string `json:"id"`
}

// ICEServers (server → client) are fresh credentials, pushed at 80% of
// the previous TTL while the peer is in a room; TTL in seconds.
type ICEServers struct {
	ICEServers []ICEServer `json:"iceServers"`
	TTL        int64       `json:"ttl"`
}

// Error (server → client) refuses a message (Code*: the code; Message:
// for people). With CodeSignalDropped, To names the peer a dropped
// signal was for. An *Error is also a Go error.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	To      string `json:"to,omitempty"`
}

func (e *Error) Error() string { return "signaling " + e.Code + ": " + e.Message }

// Unknown is a message whose type this package does not know: Type is its
// "type", Raw the whole frame. Marshal writes Raw back unchanged.
type Unknown struct {
	Type string
	Raw  json.RawMessage
}

func (*Join) MessageType() string       { return TypeJoin }
func (*Signal) MessageType() string     { return TypeSignal }
func (*Leave) MessageType() string      { return TypeLeave }
func (*Ping) MessageType() string       { return TypePing }
func (*Pong) MessageType() string       { return TypePong }
func (*Welcome) MessageType() string    { return TypeWelcome }
func (*PeerJoined) MessageType() string { return TypePeerJoined }
func (*PeerLeft) MessageType() string   { return TypePeerLeft }
func (*ICEServers) MessageType() string { return TypeICEServers }
func (*Error) MessageType() string      { return TypeError }
func (u *Unknown) MessageType() string  { return u.Type }

// Each MarshalJSON encodes the fields through a copy of a type without
// methods (plain), so it does not call itself, and puts "type" first.

func (m Join) MarshalJSON() ([]byte, error)   { type plain Join; return typed(TypeJoin, plain(m)) }
func (m Signal) MarshalJSON() ([]byte, error) { type plain Signal; return typed(TypeSignal, plain(m)) }
func (Leave) MarshalJSON() ([]byte, error)    { return []byte(`{"type":"leave"}`), nil }
func (Ping) MarshalJSON() ([]byte, error)     { return []byte(`{"type":"ping"}`), nil }
func (Pong) MarshalJSON() ([]byte, error)     { return []byte(`{"type":"pong"}`), nil }
func (m Welcome) MarshalJSON() ([]byte, error) {
	type plain Welcome
	return typed(TypeWelcome, plain(m))
}
func (m PeerJoined) MarshalJSON() ([]byte, error) {
	type plain PeerJoined
	return typed(TypePeerJoined, plain(m))
}
func (m PeerLeft) MarshalJSON() ([]byte, error) {
	type plain PeerLeft
	return typed(TypePeerLeft, plain(m))
}
func (m ICEServers) MarshalJSON() ([]byte, error) {
	type plain ICEServers
	return typed(TypeICEServers, plain(m))
}
func (m Error) MarshalJSON() ([]byte, error) { type plain Error; return typed(TypeError, plain(m)) }
func (u Unknown) MarshalJSON() ([]byte, error) {
	if len(u.Raw) == 0 {
		return json.Marshal(struct {
			Type string `json:"type"`
		}{u.Type})
	}
	return u.Raw, nil
}
