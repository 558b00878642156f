package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// types makes an empty message of each known type, for Decode.
var types = map[string]func() Message{
	TypeJoin:       func() Message { return new(Join) },
	TypeSignal:     func() Message { return new(Signal) },
	TypeLeave:      func() Message { return new(Leave) },
	TypePing:       func() Message { return new(Ping) },
	TypePong:       func() Message { return new(Pong) },
	TypeWelcome:    func() Message { return new(Welcome) },
	TypePeerJoined: func() Message { return new(PeerJoined) },
	TypePeerLeft:   func() Message { return new(PeerLeft) },
	TypeICEServers: func() Message { return new(ICEServers) },
	TypeError:      func() Message { return new(Error) },
	TypeMedia:      func() Message { return new(Media) },
	TypeTracks:     func() Message { return new(Tracks) },
	TypeLayer:      func() Message { return new(Layer) },
	TypeSpeaker:    func() Message { return new(Speaker) },
}

// ErrMalformed is wrapped by Decode's errors: the frame is not a JSON
// object with a string "type", or its members do not fit its type.
var ErrMalformed = errors.New("wire: malformed message")

// Decode reads one frame into the message its "type" names: a *Welcome,
// *Signal, … (pointers, as Message requires), or an *Unknown holding a
// copy of the frame for a type this package does not know. Members a
// type does not have are ignored, as protocol v1 allows new optional
// members. Errors wrap ErrMalformed and say what was wrong.
func Decode(frame []byte) (Message, error) {
	var head struct {
		Type *string `json:"type"`
	}
	if err := json.Unmarshal(frame, &head); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if head.Type == nil || *head.Type == "" {
		if !bytes.HasPrefix(bytes.TrimLeft(frame, " \t\r\n"), []byte("{")) {
			return nil, fmt.Errorf("%w: not a JSON object", ErrMalformed)
		}
		return nil, fmt.Errorf("%w: no \"type\"", ErrMalformed)
	}
	newMsg, ok := types[*head.Type]
	if !ok {
		return &Unknown{Type: *head.Type, Raw: bytes.Clone(frame)}, nil
	}
	m := newMsg()
	if err := json.Unmarshal(frame, m); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, *head.Type, err)
	}
	return m, nil
}

// Marshal encodes m as one protocol v1 frame, "type" first. It is
// json.Marshal(m) without encoding/json's second pass over a
// MarshalJSON's output.
func Marshal(m Message) ([]byte, error) { return m.MarshalJSON() }

// typed encodes v, a struct, with "type":t put first. t is one of the
// Type* constants, which need no escaping.
func typed(t string, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(b)+len(t)+11)
	out = append(out, `{"type":"`...)
	out = append(out, t...)
	out = append(out, '"')
	if len(b) > 2 { // not {}
		out = append(out, ',')
		out = append(out, b[1:]...)
	} else {
		out = append(out, '}')
	}
	return out, nil
}
