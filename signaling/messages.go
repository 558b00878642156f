package signaling

import (
	"encoding/json"
	"strings"
	"unicode"
	"unicode/utf8"

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

// Error codes sent in {"type":"error","code":…}.
const (
	CodeBadMessage  = "bad-message"
	CodeNameTaken   = "name-taken"
	CodeRoomFull    = "room-full"
	CodeBadPassword = "bad-password"
	CodeNotJoined   = "not-joined"
	CodeUnknownPeer = "unknown-peer"
	CodeTooLarge    = "too-large"
	CodeRateLimited = "rate-limited"
	// CodeRoomLimit refuses a join that would open a room past the
	// server's room cap.
	CodeRoomLimit = "room-limit"
	// CodeSignalDropped tells a sender that a signal it sent to the
	// suspended peer named in "to" was dropped, oldest first, to keep
	// what is held for that peer within MaxHeldBytes (and the room's and
	// server's held bounds).
	CodeSignalDropped = "signal-dropped"
)

// MaxNameLength is the longest display name, in characters.
const MaxNameLength = 64

// inbound is any client → server message. Fields not used by a type are
// ignored.
type inbound struct {
	Type     string          `json:"type"`
	Room     string          `json:"room"`
	Name     string          `json:"name"`
	Password string          `json:"password"`
	Resume   string          `json:"resume"`
	To       string          `json:"to"`
	Data     json.RawMessage `json:"data"`
	// Track and Layer are a layer request's (SFU rooms).
	Track string `json:"track"`
	Layer string `json:"layer"`
}

// PeerInfo is one entry of welcome.peers.
type PeerInfo struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type welcomeMsg struct {
	Type       string          `json:"type"`
	ID         string          `json:"id"`
	Room       string          `json:"room"`
	Peers      []PeerInfo      `json:"peers"`
	ICEServers []rtc.ICEServer `json:"iceServers"`
	TTL        int64           `json:"ttl"`
	// Resume is the token a reconnecting client sends in join within
	// the resume window to keep its id; Resumed says this welcome resumed one.
	Resume  string `json:"resume"`
	Resumed bool   `json:"resumed"`
	// Media is the room's media mode: MediaMesh or MediaSFU.
	Media string `json:"media"`
}

type peerMsg struct {
	Type string `json:"type"`
	ID   string `json:"id"`
	Name string `json:"name,omitempty"`
}

type signalMsg struct {
	Type string          `json:"type"`
	From string          `json:"from"`
	Data json.RawMessage `json:"data"`
}

type iceServersMsg struct {
	Type       string          `json:"type"`
	ICEServers []rtc.ICEServer `json:"iceServers"`
	TTL        int64           `json:"ttl"`
}

type errorMsg struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// droppedMsg is the error CodeSignalDropped, naming the peer the
// dropped signal was for.
type droppedMsg struct {
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
	To      string `json:"to"`
}

var pongMsg = []byte(`{"type":"pong"}`)

func encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own types are encoded, so this is a bug; the client is
		// told rather than the daemon stopped.
		return []byte(`{"type":"error","code":"internal","message":"the server could not encode a message"}`)
	}
	return b
}

func errorFrame(code, message string) []byte {
	return encode(errorMsg{Type: TypeError, Code: code, Message: message})
}

// cleanName trims a display name and checks it: 1 to MaxNameLength
// characters, valid UTF-8, no control or format characters.
func cleanName(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if s == "" || !utf8.ValidString(s) || utf8.RuneCountInString(s) > MaxNameLength {
		return "", false
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return "", false
		}
	}
	return s, true
}

// isObject reports whether raw JSON is an object.
func isObject(raw json.RawMessage) bool {
	for _, c := range raw {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{':
			return true
		default:
			return false
		}
	}
	return false
}
