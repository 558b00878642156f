package wire

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// TestFrames pins each message's frame byte for byte, as docs/protocol.md
// shows it and as the server sent it before these types: "type" first,
// members in the documented order, optional ones left out when empty.
// Each frame decodes back to the same message.
func TestFrames(t *testing.T) {
	for _, tt := range []struct {
		m    Message
		want string
	}{
		{&Join{Room: "r", Name: "alice"}, `{"type":"join","room":"r","name":"alice"}`},
		{&Join{Room: "r", Name: "a", Password: "p", Resume: "tok"}, `{"type":"join","room":"r","name":"a","password":"p","resume":"tok"}`},
		{&Signal{To: "B2", Data: json.RawMessage(`{"call":"ring"}`)}, `{"type":"signal","to":"B2","data":{"call":"ring"}}`},
		{&Signal{From: "A1", Data: json.RawMessage(`{"candidate":{}}`)}, `{"type":"signal","from":"A1","data":{"candidate":{}}}`},
		{&Leave{}, `{"type":"leave"}`},
		{&Ping{}, `{"type":"ping"}`},
		{&Pong{}, `{"type":"pong"}`},
		{&Welcome{ID: "A1", Room: "r", Peers: []PeerInfo{}, ICEServers: []ICEServer{{URLs: []string{"turn:h:3478"}, Username: "1:u", Credential: "c"}}, TTL: 3600, Resume: "tok"},
			`{"type":"welcome","id":"A1","room":"r","peers":[],"iceServers":[{"urls":["turn:h:3478"],"username":"1:u","credential":"c"}],"ttl":3600,"resume":"tok","resumed":false}`},
		{&PeerJoined{ID: "B2", Name: "bob"}, `{"type":"peer-joined","id":"B2","name":"bob"}`},
		{&PeerLeft{ID: "B2"}, `{"type":"peer-left","id":"B2"}`},
		{&ICEServers{ICEServers: []ICEServer{{URLs: []string{"stun:h"}}}, TTL: 60}, `{"type":"ice-servers","iceServers":[{"urls":["stun:h"]}],"ttl":60}`},
		{&Error{Code: CodeNameTaken, Message: "taken"}, `{"type":"error","code":"name-taken","message":"taken"}`},
		{&Error{Code: CodeSignalDropped, Message: "m", To: "B2"}, `{"type":"error","code":"signal-dropped","message":"m","to":"B2"}`},
	} {
		got, err := Marshal(tt.m)
		if err != nil || string(got) != tt.want {
			t.Errorf("Marshal(%T): got %s %v, want %s", tt.m, got, err, tt.want)
		}
		if viaJSON, err := json.Marshal(tt.m); err != nil || string(viaJSON) != tt.want {
			t.Errorf("json.Marshal(%T): got %s %v, want %s", tt.m, viaJSON, err, tt.want)
		}
		back, err := Decode([]byte(tt.want))
		if err != nil || !reflect.DeepEqual(back, tt.m) {
			t.Errorf("Decode(%s): got %#v %v, want %#v", tt.want, back, err, tt.m)
		}
	}
}

// TestDecodeUnknownAndMalformed: a type this package does not know comes
// back as *Unknown holding the frame (never dropped); frames that are no
// message are errors wrapping ErrMalformed.
func TestDecodeUnknownAndMalformed(t *testing.T) {
	frame := []byte(`{"type":"x-future","items":[{"id":"x"}]}`)
	m, err := Decode(frame)
	u, ok := m.(*Unknown)
	if err != nil || !ok || u.Type != "x-future" || string(u.Raw) != string(frame) || u.MessageType() != "x-future" {
		t.Fatalf("Decode of an unknown type: got %#v %v, want *Unknown holding the frame", m, err)
	}
	frame[2] = 'X' // Raw is a copy
	if b, _ := Marshal(u); string(b) != `{"type":"x-future","items":[{"id":"x"}]}` {
		t.Errorf("Marshal(Unknown): got %s", b)
	}
	for _, bad := range []string{``, `hello`, `[1]`, `null`, `{}`, `{"type":""}`, `{"type":1}`,
		`{"type":"welcome","peers":"x"}`, `{"type":"signal","to":5}`} {
		if m, err := Decode([]byte(bad)); !errors.Is(err, ErrMalformed) {
			t.Errorf("Decode(%q): got %#v %v, want ErrMalformed", bad, m, err)
		}
	}
	// Members a type does not have are ignored: the protocol grows by
	// optional members.
	if m, err := Decode([]byte(`{"type":"peer-left","id":"B2","media":"sfu"}`)); err != nil || *m.(*PeerLeft) != (PeerLeft{ID: "B2"}) {
		t.Errorf("Decode with a new member: got %#v %v", m, err)
	}
}

// TestErrorIsAnError: an *Error received for a join is a Go error that
// names its code.
func TestErrorIsAnError(t *testing.T) {
	var err error = &Error{Code: CodeRoomFull, Message: `room "r" is full (8 peers)`}
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeRoomFull || err.Error() != `signaling room-full: room "r" is full (8 peers)` {
		t.Errorf("got %v", err)
	}
}
