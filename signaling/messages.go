package signaling

import (
	"encoding/json"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/icebox-project/icebox/signaling/wire"
)

// MaxNameLength is the longest display name, in characters.
const MaxNameLength = 64

// inbound is any client → server message: the members of every type
// it handles, from one decoding pass (wire.Decode would take two).
// Members not used by a type are ignored.
type inbound struct {
	Type string `json:"type"`
	wire.Join
	wire.Signal
	wire.Layer
}

// encode is m's frame.
func encode(m wire.Message) []byte {
	b, err := wire.Marshal(m)
	if err != nil {
		// Only our own types are encoded, so this is a bug; the client is
		// told rather than the daemon stopped.
		return []byte(`{"type":"error","code":"internal","message":"the server could not encode a message"}`)
	}
	return b
}

var pongFrame = encode(&wire.Pong{})

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
