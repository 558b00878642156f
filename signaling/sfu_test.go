package signaling

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/icebox-project/icebox/internal/sfutest"
	"github.com/icebox-project/icebox/internal/testenv"
	"github.com/icebox-project/icebox/sfu"
	"github.com/icebox-project/icebox/signaling/wire"
)

// startSFUSignaling serves signaling whose room "town" (and any room
// starting with "sfu-") is on an SFU with its media on one UDP port of
// 127.0.0.1.
func startSFUSignaling(t *testing.T) string {
	t.Helper()
	s := newTestSFU(t, sfu.Limits{SDPSize: 32 << 10})
	_, url := startSignaling(t, func(c *Config) {
		c.SFU = &SFUConfig{Server: s, MaxPeersPerRoom: 4, Media: func(room string) string {
			if room == "town" || strings.HasPrefix(room, "sfu-") {
				return MediaSFU
			}
			return MediaMesh
		}}
	})
	return url
}

// TestSFURoomOverSignaling: in an SFU room, welcome says media "sfu"; a
// peer publishes by signaling "sfu", another receives its camera over
// its one peer connection, and the tracks event names the publisher.
func TestSFURoomOverSignaling(t *testing.T) {
	url := startSFUSignaling(t)
	a, welcome := sfutest.Dial(t, url, "town", "alice")
	if welcome.Media != MediaSFU {
		t.Fatalf("welcome media %q, want sfu", welcome.Media)
	}
	a.Publish()
	b, _ := sfutest.Dial(t, url, "town", "bob")
	testenv.Eventually(t, 15*time.Second, "bob receives alice's camera from a keyframe", func() bool {
		return b.Keyframes.Load() > 0 && b.Packets.Load() > 20
	})
	list := b.Tracks()
	if len(list) != 1 {
		t.Fatalf("tracks event %v, want one track", list)
	}
	if tr := list[0]; tr.Peer != a.ID || tr.Kind != "video" {
		t.Errorf("track %v, want alice's (%s) video", tr, a.ID)
	}
	// A mesh room has no "sfu" and takes no layer.
	c, w := sfutest.Dial(t, url, "lobby", "carol")
	if w.Media != MediaMesh {
		t.Errorf("mesh room: welcome media %q", w.Media)
	}
	c.Signal(msg{"candidate": msg{"candidate": "x"}})
	if m := c.Next(); errorCode(m) != wire.CodeUnknownPeer {
		t.Errorf("signal to sfu in a mesh room: %v, want unknown-peer", m)
	}
	c.Send(&wire.Layer{Track: "x", Layer: "f"})
	if m := c.Next(); errorCode(m) != wire.CodeBadMessage {
		t.Errorf("layer in a mesh room: %v, want bad-message", m)
	}
}

// TestSFUHostileMessages: bad SDPs, candidates and layer requests get
// clear errors, the sender stays connected and the room's media goes on;
// a layer request cannot name a track of another room.
func TestSFUHostileMessages(t *testing.T) {
	url := startSFUSignaling(t)
	a, _ := sfutest.Dial(t, url, "town", "alice")
	a.Publish()
	b, _ := sfutest.Dial(t, url, "town", "bob")
	testenv.Eventually(t, 15*time.Second, "bob receives alice", func() bool { return b.Packets.Load() > 0 })
	m, _ := sfutest.Dial(t, url, "sfu-other", "mallory")
	signal := func(data msg) wire.Message {
		b, err := json.Marshal(data)
		if err != nil {
			t.Fatal(err)
		}
		return &wire.Signal{To: SFUPeer, Data: b}
	}
	for _, c := range []struct {
		name string
		m    wire.Message
		code string
	}{
		{"not an SDP", signal(msg{"sdp": msg{"type": "offer", "sdp": "hello"}}), wire.CodeBadMessage},
		{"answer with no offer", signal(msg{"sdp": msg{"type": "answer", "sdp": "v=0\r\n"}}), wire.CodeBadMessage},
		{"SDP over 32 KiB", signal(msg{"sdp": msg{"type": "offer", "sdp": strings.Repeat("a", 40<<10)}}), wire.CodeTooLarge},
		{"neither sdp nor candidate", signal(msg{"x": 1}), wire.CodeBadMessage},
		{"long candidate", signal(msg{"candidate": msg{"candidate": strings.Repeat("c", 600)}}), wire.CodeTooLarge},
		{"bad source", signal(msg{"sdp": msg{"type": "offer", "sdp": "v=0\r\n"}, "sources": msg{"0": "projector"}}), wire.CodeBadMessage},
		{"track of another room", &wire.Layer{Track: a.ID + "-camera", Layer: "f"}, wire.CodeUnknownTrack},
	} {
		t.Run(c.name, func(t *testing.T) {
			m.Send(c.m)
			if got := m.Next(); errorCode(got) != c.code {
				t.Errorf("got %v, want error %s", got, c.code)
			}
		})
	}
	// A signal to the SFU may pass 64 KiB (an SFU room's offer lists a
	// section per track received), up to MaxSFUMessageSize, from a
	// participant of an SFU room only; the SFU's own cap then applies
	// (32 KiB here).
	bigSignal := signal(msg{"sdp": msg{"type": "offer", "sdp": strings.Repeat("a", 100<<10)}})
	for _, c := range []struct {
		name string
		p    *sfutest.Peer
		m    wire.Message
		says string
	}{
		{"100 KiB to the SFU, from a participant", m, bigSignal, "signal of"},
		{"100 KiB to the SFU, from a mesh room", nil, bigSignal, "messages are limited"},
		{"300 KiB to the SFU", m, signal(msg{"sdp": msg{"type": "offer", "sdp": strings.Repeat("a", 300<<10)}}), "messages are limited"},
		{"100 KiB to a peer", m, &wire.Signal{To: a.ID, Data: json.RawMessage(`{"x":"` + strings.Repeat("a", 100<<10) + `"}`)}, "messages are limited"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := c.p
			if p == nil {
				p, _ = sfutest.Dial(t, url, "mesh-room", "eve")
			}
			p.Send(c.m)
			got := p.Next()
			if e, ok := got.(*wire.Error); !ok || e.Code != wire.CodeTooLarge || !strings.Contains(e.Message, c.says) {
				t.Errorf("got %v, want error too-large saying %q", got, c.says)
			}
		})
	}
	b.Send(&wire.Layer{Track: a.ID + "-camera", Layer: "xl"})
	if got := b.Next(); errorCode(got) != wire.CodeBadMessage {
		t.Errorf("bad layer: %v, want bad-message", got)
	}
	n := b.Packets.Load()
	testenv.Eventually(t, 10*time.Second, "bob still receives alice", func() bool { return b.Packets.Load() > n+10 })
	m.Send(&wire.Ping{})
	if got := m.Next(); got.MessageType() != wire.TypePong {
		t.Errorf("mallory after her errors: %v, want pong", got)
	}
}

// errorCode is the code of m, an error message, or "" for any other.
func errorCode(m wire.Message) string {
	if e, ok := m.(*wire.Error); ok {
		return e.Code
	}
	return ""
}
