package signaling

import (
	"encoding/json"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
)

// FuzzDispatch feeds arbitrary messages to the decoder and dispatcher of
// a joined peer that shares its room with another. It must never panic,
// every message it queues must be protocol JSON with a type, and the
// room's bookkeeping must stay consistent.
func FuzzDispatch(f *testing.F) {
	for _, seed := range []string{
		`{"type":"join","room":"r","name":"x"}`,
		`{"type":"signal","to":"PEER","data":{"description":{"type":"offer","sdp":"v=0"}}}`,
		`{"type":"signal","to":"PEER","data":[]}`,
		`{"type":"leave"}`, `{"type":"ping"}`, `{"type":"x"}`, `[]`, `null`, `{"type":1}`,
		`{"type":"join","room":"locked","name":"y","password":"p"}`,
		"{\"type\":\"join\",\"room\":\"r\",\"name\":\"\\u202e\"}",
	} {
		f.Add([]byte(seed))
	}
	s := New(Config{Limits: Limits{MaxPeersPerRoom: 4}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		RoomPassword: func(room string) string {
			if room == "locked" {
				return "p"
			}
			return ""
		}, Clock: newFakeClock()})
	s.guesses.base = 0 // wrong passwords answered at once
	f.Fuzz(func(t *testing.T, data []byte) {
		// The WebSocket is nil: handle never touches it, and held queues
		// take messages without starting a writer, which the test drains.
		other := newConn(s, nil, "127.0.0.1:1", "127.0.0.1")
		c := newConn(s, nil, "127.0.0.1:2", "127.0.0.1")
		var held atomic.Int64
		other.out.hold(&held)
		c.out.hold(&held)
		s.hub.register(other)
		s.hub.register(c)
		defer s.hub.unregister(other, false)
		defer s.hub.unregister(c, false)
		other.handle([]byte(`{"type":"join","room":"r","name":"other"}`))
		c.handle([]byte(`{"type":"join","room":"r","name":"fuzzer"}`))
		c.handle(data)
		c.handle([]byte(`{"type":"signal","to":"` + other.peer.id + `","data":{"after":true}}`))
		for _, cl := range []*conn{c, other} {
			q := cl.out.take()
			cl.out.hold(&held) // take makes a queue live again
			for _, b := range frames(q) {
				var m struct{ Type string }
				if err := json.Unmarshal(b, &m); err != nil || m.Type == "" {
					t.Fatalf("queued a message that is not protocol JSON: %q", b)
				}
			}
		}
		s.hub.mu.Lock()
		for name, r := range s.hub.rooms {
			if len(r.peers) != len(r.names) || len(r.peers) == 0 || len(r.peers) > 4 {
				t.Fatalf("room %q: %d peers, %d names", name, len(r.peers), len(r.names))
			}
		}
		s.hub.mu.Unlock()
	})
}
