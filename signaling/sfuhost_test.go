package signaling

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icebox-project/icebox/internal/testenv"
	"github.com/icebox-project/icebox/sfu"
	"github.com/icebox-project/icebox/signaling/wire"
	"github.com/pion/webrtc/v4"
)

// hostCluster is a Cluster of node "n1" that admits every join, names
// the host of each room from hosts and its successor from successors
// ("n1" when not listed), and records what it is asked to send to
// another node's SFU or peer.
type hostCluster struct {
	loneCluster
	hosts map[string]string
	// successors names a room's successor, "n1" when not listed.
	successors map[string]string

	mu   sync.Mutex
	sent []sentSFU
}

type sentSFU struct {
	node, room, peer string
	frame            map[string]any
}

func (c *hostCluster) Admit(room, _, _ string, _ int) (Admission, error) {
	if h, ok := c.hosts[room]; ok {
		return Admission{Host: h}, nil
	}
	return Admission{Host: "n1"}, nil
}
func (c *hostCluster) ID() string { return "n1" }
func (c *hostCluster) Successor(room string) string {
	if n, ok := c.successors[room]; ok {
		return n
	}
	return "n1"
}
func (c *hostCluster) SFU(node, room, peer string, frame []byte) {
	var m map[string]any
	_ = json.Unmarshal(frame, &m)
	c.mu.Lock()
	c.sent = append(c.sent, sentSFU{node, room, peer, m})
	c.mu.Unlock()
}

// sentTo returns what was sent to node, in order.
func (c *hostCluster) sentTo(node string) []sentSFU {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []sentSFU
	for _, s := range c.sent {
		if s.node == node {
			out = append(out, s)
		}
	}
	return out
}

// TestSFURoomAcrossNodes drives one node of a cluster whose SFU rooms
// are hosted on several nodes. For "town", hosted by n2, a member's
// messages to "sfu" leave for n2, and only n2 may speak for the SFU to
// that member, only with what an SFU says (a signal from "sfu", tracks,
// speaker, error). For "hall", hosted here, a remote peer's messages
// make it a participant here, whose words go back to the peer's node;
// only the peer's own node may speak for it, and its participant ends
// when it leaves. When n2 is gone, "town" moves here: its member gets a
// participant here and {"type":"media","media":"sfu","renew":true}. When
// she is handed over to n3, her participant here ends and the one made
// on n3's word takes her id.
func TestSFURoomAcrossNodes(t *testing.T) {
	sf := newTestSFU(t, sfu.Limits{})
	cl := &hostCluster{hosts: map[string]string{"town": "n2", "forum": "n2"}}
	s, url := startSignaling(t, func(c *Config) {
		c.Cluster = cl
		c.SFU = &SFUConfig{Server: sf, Media: func(room string) string {
			if room == "plaza" {
				return MediaMesh
			}
			return MediaSFU
		}}
	})

	// A member of a room another node hosts.
	ann := dial(t, url)
	welcome := ann.join("town", "ann")
	if welcome.Media != wire.MediaSFU {
		t.Fatalf("welcome media %q, want sfu", welcome.Media)
	}
	ann.signal(SFUPeer, map[string]any{"candidate": map[string]any{"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0"}})
	ann.send(&wire.Layer{Track: "t1", Layer: "q"})
	testenv.Eventually(t, 5*time.Second, "ann's signal and layer request leave for n2", func() bool { return len(cl.sentTo("n2")) == 2 })
	if got := cl.sentTo("n2"); got[0].peer != ann.id || got[0].room != "town" || got[0].frame["type"] != "signal" || got[0].frame["to"] != SFUPeer ||
		got[1].frame["type"] != "layer" || got[1].frame["track"] != "t1" {
		t.Errorf("sent to n2: %+v", got)
	}
	if n := participants(sf); n != 0 {
		t.Errorf("%d participants here for a room n2 hosts, want none", n)
	}
	frame := func(m wire.Message) []byte { return encode(m) }
	refused := []struct {
		why, node string
		frame     []byte
	}{
		{"from a node that is not the host", "n3", frame(&wire.Signal{From: SFUPeer, Data: json.RawMessage(`{"x":1}`)})},
		{"a signal from a peer, not the SFU", "n2", frame(&wire.Signal{From: "mallory-id-0000", Data: json.RawMessage(`{"x":1}`)})},
		{"a welcome", "n2", frame(&wire.Welcome{ID: "x", Room: "town", Peers: []wire.PeerInfo{}})},
		{"a peer-left", "n2", frame(&wire.PeerLeft{ID: "x"})},
		{"not JSON", "n2", []byte("{")},
	}
	for _, r := range refused {
		if s.RemoteSFU("town", ann.id, r.node, r.frame) {
			t.Errorf("%s: delivered to ann", r.why)
		}
	}
	if !s.RemoteSFU("town", ann.id, "n2", frame(&wire.Speaker{Peer: ann.id})) {
		t.Error("the host's speaker event: not delivered")
	}
	if m, ok := ann.read().(*wire.Speaker); !ok || m.Peer != ann.id {
		t.Errorf("ann read %+v, want the host's speaker event (and nothing refused before it)", m)
	}

	// A room this node hosts, with a peer of n3 in it.
	const zed = "zzzzzzzzzzzzzzz1"
	s.RemoteJoined("hall", zed, "zed", "n3")
	s.RemoteJoined("plaza", zed+"p", "zed", "n3")
	hello := frame(&wire.Signal{To: SFUPeer, Data: json.RawMessage(`{}`)})
	if s.RemoteSFU("hall", zed, "n2", hello) {
		t.Error("n2 spoke for n3's peer")
	}
	if s.RemoteSFU("plaza", zed+"p", "n3", hello) {
		t.Error("a message to sfu in a mesh room was taken")
	}
	if s.RemoteSFU("hall", "nobody-00000000", "n3", hello) {
		t.Error("a message of a peer not in the room was taken")
	}
	if n := participants(sf); n != 0 {
		t.Fatalf("%d participants after refused messages, want none", n)
	}
	if !s.RemoteSFU("hall", zed, "n3", hello) {
		t.Fatal("zed's message to sfu, from its node: not taken")
	}
	testenv.EventuallyWhy(t, 5*time.Second, "zed is a participant here and its SFU's error goes to n3", func() string {
		got := cl.sentTo("n3")
		for _, m := range got {
			if participants(sf) == 1 && m.peer == zed && m.room == "hall" && m.frame["type"] == "error" &&
				m.frame["code"] == wire.CodeBadMessage && strings.Contains(m.frame["message"].(string), "neither sdp nor candidate") {
				return ""
			}
		}
		return fmt.Sprintf("%d participants, sent to n3: %+v", participants(sf), got)
	})
	s.RemoteLeft("hall", zed)
	testenv.Eventually(t, 5*time.Second, "zed's participant ends when zed leaves", func() bool { return participants(sf) == 0 })

	// n2, town's host, is gone: this node takes over.
	s.NodeGone("n2")
	if m, ok := ann.read().(*wire.Media); !ok || m.Media != wire.MediaSFU || !m.Renew {
		t.Fatalf("ann read %+v, want media sfu with renew", m)
	}
	testenv.Eventually(t, 5*time.Second, "ann is a participant here", func() bool { return participants(sf) == 1 })
	before := len(cl.sentTo("n2"))
	ann.signal(SFUPeer, map[string]any{})
	for {
		m := ann.read()
		if _, ok := m.(*wire.Tracks); ok {
			continue // her new participant's first word
		}
		if e, ok := m.(*wire.Error); !ok || e.Code != wire.CodeBadMessage || !strings.Contains(e.Message, "neither sdp nor candidate") {
			t.Errorf("ann's signal to sfu, now here: answered %+v", m)
		}
		break
	}
	if n := len(cl.sentTo("n2")); n != before {
		t.Errorf("%d more messages sent to the gone host", n-before)
	}

	// ann's connection drops and she comes back on n3: her participant
	// here ends with the hand-over, she is to renew, and the one made
	// here on n3's word takes her id.
	ho := handOverTo(t, s, ann, welcome.Resume, "town", "n3")
	if !ho.SFURenew || ho.SFUHost != "n1" {
		t.Errorf("hand-over %+v, want renew with n1 the host", ho)
	}
	testenv.Eventually(t, 5*time.Second, "ann's participant here ends", func() bool { return participants(sf) == 0 })
	if !s.RemoteSFU("town", ann.id, "n3", hello) {
		t.Fatal("ann's message to sfu from n3, her node now: not taken")
	}
	testenv.EventuallyWhy(t, 5*time.Second, "ann, on n3, is a participant here again", func() string {
		for _, m := range cl.sentTo("n3") {
			if m.peer == ann.id && m.frame["type"] == "error" && strings.Contains(m.frame["message"].(string), "neither sdp nor candidate") && participants(sf) == 1 {
				return ""
			}
		}
		return fmt.Sprintf("%d participants, sent to n3: %+v", participants(sf), cl.sentTo("n3"))
	})

	// n3 takes this node for the host of "forum" before this node does
	// (it noticed the old host's death first): its peer's offer is
	// served here, not dropped unanswered.
	bo := dial(t, url)
	bo.join("forum", "bo")
	const quinn = "qqqqqqqqqqqqqqq1"
	s.RemoteJoined("forum", quinn, "quinn", "n3")
	if !s.RemoteSFU("forum", quinn, "n3", hello) {
		t.Fatal("quinn's message to sfu, in a room this node does not take itself for the host of yet: not taken")
	}
	testenv.EventuallyWhy(t, 5*time.Second, "quinn is a participant here", func() string {
		for _, m := range cl.sentTo("n3") {
			if m.peer == quinn && m.room == "forum" && m.frame["type"] == "error" && participants(sf) == 2 {
				return ""
			}
		}
		return fmt.Sprintf("%d participants, sent to n3: %+v", participants(sf), cl.sentTo("n3"))
	})
}

// sfuOffer is a signal's payload with an offer of pc, made now, with
// one more recvonly section of kind; set as pc's local description when
// pc has none pending.
func sfuOffer(t *testing.T, pc *webrtc.PeerConnection, kind webrtc.RTPCodecType) (data map[string]any, session string) {
	t.Helper()
	if _, err := pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if pc.SignalingState() == webrtc.SignalingStateStable {
		if err := pc.SetLocalDescription(offer); err != nil {
			t.Fatal(err)
		}
	}
	raw, _ := json.Marshal(map[string]any{"sdp": offer})
	id, ok := sdpSessionOf(raw)
	if !ok || id == "" {
		t.Fatalf("no session id in %q", offer.SDP)
	}
	return map[string]any{"sdp": offer}, id
}

func newTestPC(t *testing.T) *webrtc.PeerConnection {
	t.Helper()
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	return pc
}

// TestSFURenewDropsOldConnection: a member told to renew its connection
// to "sfu" may still send signals of the old one, crossing the renew on
// the wire (an offer the old host asked for, its candidates). They are
// dropped, each with signal-dropped, until an offer of another SDP
// session comes: the new participant answers only the new connection,
// whose answer then applies. On a node that becomes the host, and on
// one whose members' host moves to a third node. A hand-over carries
// the session on.
func TestSFURenewDropsOldConnection(t *testing.T) {
	sf := newTestSFU(t, sfu.Limits{})
	cl := &hostCluster{hosts: map[string]string{"town": "n2", "forum": "n2"}, successors: map[string]string{"forum": "n3"}}
	s, url := startSignaling(t, func(c *Config) {
		c.Cluster = cl
		c.SFU = &SFUConfig{Server: sf}
	})
	ann, bo := dial(t, url), dial(t, url)
	welcome := ann.join("town", "ann")
	bo.join("forum", "bo")
	annOld, boOld := newTestPC(t), newTestPC(t)
	first, annSession := sfuOffer(t, annOld, webrtc.RTPCodecTypeVideo)
	ann.signal(SFUPeer, first)
	first, _ = sfuOffer(t, boOld, webrtc.RTPCodecTypeVideo)
	bo.signal(SFUPeer, first)
	testenv.Eventually(t, 5*time.Second, "both offers leave for n2", func() bool { return len(cl.sentTo("n2")) == 2 })

	s.NodeGone("n2")
	for _, c := range []*wsClient{ann, bo} {
		if m, ok := c.read().(*wire.Media); !ok || !m.Renew {
			t.Fatalf("read %+v, want media sfu with renew", m)
		}
	}
	testenv.Eventually(t, 5*time.Second, "ann is a participant here", func() bool { return participants(sf) == 1 })

	// What the old connections still send.
	for _, c := range []struct {
		who string
		ws  *wsClient
		pc  *webrtc.PeerConnection
	}{{"ann", ann, annOld}, {"bo", bo, boOld}} {
		again, _ := sfuOffer(t, c.pc, webrtc.RTPCodecTypeAudio)
		c.ws.signal(SFUPeer, again)
		c.ws.signal(SFUPeer, map[string]any{"candidate": map[string]any{"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0"}})
		c.ws.signal(SFUPeer, map[string]any{"applied": true})
		for i := range 3 {
			m := c.ws.read()
			if _, ok := m.(*wire.Tracks); ok && c.who == "ann" {
				m = c.ws.read() // her new participant's first word
			}
			if e, ok := m.(*wire.Error); !ok || e.Code != wire.CodeSignalDropped || e.To != SFUPeer {
				t.Fatalf("%s's old connection's signal %d: answered %s, want signal-dropped naming sfu", c.who, i, encode(m))
			}
		}
	}
	if got := cl.sentTo("n3"); len(got) != 0 {
		t.Fatalf("sent to n3, bo's new host, from bo's old connection: %+v", got)
	}

	// The new connections.
	annNew := newTestPC(t)
	offer, annSession2 := sfuOffer(t, annNew, webrtc.RTPCodecTypeVideo)
	if annSession2 == annSession {
		t.Fatal("two peer connections with one SDP session id")
	}
	ann.signal(SFUPeer, offer)
	for {
		m := ann.read()
		if _, ok := m.(*wire.Tracks); ok {
			continue
		}
		sig, ok := m.(*wire.Signal)
		if !ok || sig.From != SFUPeer {
			t.Fatalf("ann's new offer: answered %+v, want the SFU's answer", m)
		}
		var d struct {
			SDP *webrtc.SessionDescription `json:"sdp"`
		}
		if err := json.Unmarshal(sig.Data, &d); err != nil || d.SDP == nil || d.SDP.Type != webrtc.SDPTypeAnswer {
			t.Fatalf("the SFU's signal %s, want an answer", sig.Data)
		}
		if err := annNew.SetRemoteDescription(*d.SDP); err != nil {
			t.Fatalf("the SFU's answer to the new connection does not apply: %v", err)
		}
		break
	}
	boNew := newTestPC(t)
	offer, _ = sfuOffer(t, boNew, webrtc.RTPCodecTypeVideo)
	bo.signal(SFUPeer, offer)
	bo.signal(SFUPeer, map[string]any{"candidate": map[string]any{"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0"}})
	testenv.EventuallyWhy(t, 5*time.Second, "bo's new offer and candidate leave for n3", func() string {
		got := cl.sentTo("n3")
		if len(got) == 2 && got[0].peer == bo.id && got[0].frame["type"] == "signal" && got[1].frame["type"] == "signal" {
			return ""
		}
		return fmt.Sprintf("sent to n3: %+v", got)
	})

	// ann's connection drops and she comes back on n3.
	ho := handOverTo(t, s, ann, welcome.Resume, "town", "n3")
	if ho.SFUSession != annSession2 {
		t.Errorf("hand-over's SFU session %q, want her new connection's %q", ho.SFUSession, annSession2)
	}
}

// handOverTo drops c's connection and hands its peer, suspended under
// resume in room, over to node.
func handOverTo(t *testing.T, s *Server, c *wsClient, resume, room, node string) Handover {
	t.Helper()
	c.drop()
	var ho Handover
	testenv.Eventually(t, 5*time.Second, "the peer, suspended, handed over to "+node, func() bool {
		var ok bool
		ho, ok = s.HandOver(resume, room, node)
		return ok
	})
	return ho
}
