package signaling

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/icebox-project/icebox/internal/sfutest"
	"github.com/icebox-project/icebox/internal/testenv"
	"github.com/icebox-project/icebox/sfu"
	"github.com/icebox-project/icebox/signaling/wire"
)

// startAutoSignaling serves signaling on a fake clock whose rooms are
// auto, a mesh up to two peers, on an SFU with its media on 127.0.0.1.
func startAutoSignaling(t *testing.T) (*Server, *sfu.SFU, string) {
	t.Helper()
	sf := newTestSFU(t, sfu.Limits{})
	s, url := startSignaling(t, func(c *Config) {
		c.SFU = &SFUConfig{Server: sf, MaxPeersPerRoom: 5, MeshMax: 2, Media: func(string) string { return MediaAuto }}
	})
	return s, sf, url
}

// newTestSFU is an SFU with its media on 127.0.0.1 and lim, closed when
// t ends.
func newTestSFU(t *testing.T, lim sfu.Limits) *sfu.SFU {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sf, err := sfu.New(sfu.Config{UDP: conn, IncludeLoopback: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sf.Close() })
	return sf
}

// nextMedia is the next media event p gets, skipping room events and the
// unknown-peer answer to an SFU signal sent as the room left the SFU.
func nextMedia(t *testing.T, p *sfutest.Peer, who string) string {
	t.Helper()
	for {
		m := p.Next()
		if e, ok := m.(*wire.Media); ok {
			return e.Media
		}
		if e, ok := m.(*wire.Error); ok {
			// An offer the SFU asked for (a track left) may reach the
			// server just after the room went back to a mesh: there is no
			// peer "sfu" to take it any more.
			if e.Code == wire.CodeUnknownPeer && strings.Contains(e.Message, `"sfu"`) {
				continue
			}
			t.Fatalf("%s: error %s: %s", who, e.Code, e.Message)
		}
	}
}

// participants is how many participants the SFU holds.
func participants(sf *sfu.SFU) int {
	_, n, _ := sf.Counts()
	return n
}

// roomMedia is the media mode of the room named name ("" when closed).
func roomMedia(s *Server, name string) string {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	if r := s.hub.rooms[name]; r != nil {
		return r.media
	}
	return ""
}

// TestAutoRoomMoves: an auto room is a mesh up to mesh_max (2); the
// third joiner's welcome says sfu, the two before are told media sfu,
// and media flows through the SFU. Back at two people, the room goes
// back to a mesh after MeshReturn (30 s), not before; a third joining
// within it keeps the room on the SFU. The members are told media mesh,
// the SFU keeps forwarding for sfuLinger, then its participants end.
// The room then moves to the SFU again, with new participants under the
// same peer ids.
func TestAutoRoomMoves(t *testing.T) {
	s, sf, url := startAutoSignaling(t)
	clock := clockOf(s)
	a, wa := sfutest.Dial(t, url, "auto-room", "ann")
	b, wb := sfutest.Dial(t, url, "auto-room", "ben")
	if wa.Media != MediaMesh || wb.Media != MediaMesh {
		t.Fatalf("welcomes at 1 and 2 people: media %q, %q; want mesh", wa.Media, wb.Media)
	}
	if n := participants(sf); n != 0 {
		t.Fatalf("a mesh room has %d SFU participants", n)
	}
	c, wc := sfutest.Dial(t, url, "auto-room", "cat")
	if wc.Media != MediaSFU {
		t.Fatalf("the third joiner's welcome says media %q, want sfu", wc.Media)
	}
	for _, m := range []struct {
		p    *sfutest.Peer
		name string
	}{{a, "ann"}, {b, "ben"}} {
		if got := nextMedia(t, m.p, m.name); got != MediaSFU {
			t.Fatalf("%s: media %q, want sfu", m.name, got)
		}
	}
	// Told only once its participant is there: ann publishes at once.
	a.Publish()
	testenv.Eventually(t, 15*time.Second, "cat receives ann's camera through the SFU", func() bool {
		return c.Keyframes.Load() > 0 && c.Packets.Load() > 20
	})

	// cat leaves: two are left, and the return to a mesh is due in 30 s.
	c.Send(&wire.Leave{})
	clock.waitTimer(t, DefaultMeshReturn)
	clock.Advance(DefaultMeshReturn - time.Second)
	if got := roomMedia(s, "auto-room"); got != MediaSFU {
		t.Fatalf("29 s at two people: room media %q, want still sfu", got)
	}
	// dan joins and leaves: the wait starts again from his leaving.
	d, wd := sfutest.Dial(t, url, "auto-room", "dan")
	if wd.Media != MediaSFU {
		t.Fatalf("dan's welcome: media %q, want sfu", wd.Media)
	}
	clock.Advance(time.Hour)
	if got := roomMedia(s, "auto-room"); got != MediaSFU {
		t.Fatalf("an hour at three people: room media %q, want sfu", got)
	}
	d.Send(&wire.Leave{})
	clock.waitTimer(t, DefaultMeshReturn)
	clock.Advance(DefaultMeshReturn)
	for _, m := range []struct {
		p    *sfutest.Peer
		name string
	}{{a, "ann"}, {b, "ben"}} {
		if got := nextMedia(t, m.p, m.name); got != MediaMesh {
			t.Fatalf("%s: media %q, want mesh", m.name, got)
		}
	}
	if got := roomMedia(s, "auto-room"); got != MediaMesh {
		t.Fatalf("room media %q after the return, want mesh", got)
	}
	// The SFU still forwards while the pages' mesh connections start.
	if got := participants(sf); got != 2 {
		t.Errorf("right after the return: %d participants, want ann's and ben's (kept for %v)", got, sfuLinger)
	}
	clock.Advance(sfuLinger)
	testenv.Eventually(t, 10*time.Second, "the SFU participants end", func() bool { return participants(sf) == 0 })

	// A third joiner moves the room to the SFU again.
	_, we := sfutest.Dial(t, url, "auto-room", "eve")
	if we.Media != MediaSFU {
		t.Fatalf("eve's welcome: media %q, want sfu", we.Media)
	}
	for _, m := range []struct {
		p    *sfutest.Peer
		name string
	}{{a, "ann"}, {b, "ben"}} {
		if got := nextMedia(t, m.p, m.name); got != MediaSFU {
			t.Fatalf("%s: media %q, want sfu", m.name, got)
		}
	}
	testenv.Eventually(t, 10*time.Second, "three participants again", func() bool { return participants(sf) == 3 })
}

// TestAutoRoomStaleParticipant: a participant made for an SFU period
// that has ended (the room went back to a mesh while it was being made)
// is ended at once, and its peer is told nothing.
func TestAutoRoomStaleParticipant(t *testing.T) {
	s, sf, url := startAutoSignaling(t)
	clock := clockOf(s)
	a, _ := sfutest.Dial(t, url, "auto-room", "ann")
	sfutest.Dial(t, url, "auto-room", "ben")
	c, _ := sfutest.Dial(t, url, "auto-room", "cat")
	if got := nextMedia(t, a, "ann"); got != MediaSFU {
		t.Fatalf("ann: media %q, want sfu", got)
	}
	c.Send(&wire.Leave{})
	clock.waitTimer(t, DefaultMeshReturn)
	clock.Advance(DefaultMeshReturn + sfuLinger)
	if got := nextMedia(t, a, "ann"); got != MediaMesh {
		t.Fatalf("ann: media %q, want mesh", got)
	}
	testenv.Eventually(t, 10*time.Second, "the SFU participants end", func() bool { return participants(sf) == 0 })

	s.hub.mu.Lock()
	p := s.hub.rooms["auto-room"].peers[a.ID]
	r := p.room
	s.hub.mu.Unlock()
	s.joinSFU(p, r, r.epoch-1, true) // the SFU period that ended
	if p.participant() != nil || participants(sf) != 0 {
		t.Errorf("a participant of an ended SFU period stays: %v, %d in the SFU", p.participant(), participants(sf))
	}
	a.Send(&wire.Ping{})
	if m := a.Next(); m.MessageType() != wire.TypePong {
		t.Errorf("ann was told %v, want nothing before her pong", m)
	}
}

// loneCluster is a Cluster of one node that admits every join.
type loneCluster struct{}

func (loneCluster) Admit(string, string, string, int) (Admission, error) {
	return Admission{Host: "lone"}, nil
}
func (loneCluster) ID() string                                             { return "lone" }
func (loneCluster) SFU(string, string, string, []byte)                     {}
func (loneCluster) Successor(string) string                                { return "lone" }
func (loneCluster) Joined(string, string, string)                          {}
func (loneCluster) Left(string, string)                                    {}
func (loneCluster) Signal(string, string, string, string, json.RawMessage) {}
func (loneCluster) Resume(string, string) (Handover, bool)                 { return Handover{}, false }
func (loneCluster) Resumed(string, string, string)                         {}

// TestAutoRoomInClusterStaysMesh: on a cluster node, an auto room past
// mesh_max stays a mesh (no welcome says a media mode, nobody becomes an
// SFU participant), while an sfu room is on the SFU of the node the
// cluster names its host: here, this one.
func TestAutoRoomInClusterStaysMesh(t *testing.T) {
	sf := newTestSFU(t, sfu.Limits{})
	_, url := startSignaling(t, func(c *Config) {
		c.Cluster = loneCluster{}
		c.SFU = &SFUConfig{Server: sf, MaxPeersPerRoom: 5, MeshMax: 2, Media: func(room string) string {
			if room == "town" {
				return MediaSFU
			}
			return MediaAuto
		}}
	})
	for _, name := range []string{"ann", "ben", "cat"} {
		c := dial(t, url)
		if w := c.join("auto-room", name); w.Media != "" {
			t.Errorf("%s in auto-room: welcome media %q, want none", name, w.Media)
		}
	}
	if n := participants(sf); n != 0 {
		t.Errorf("%d SFU participants for an auto room on a cluster node, want none", n)
	}
	for _, name := range []string{"ann", "ben", "cat"} {
		c := dial(t, url)
		if w := c.join("town", name); w.Media != wire.MediaSFU {
			t.Errorf("%s in town: welcome media %q, want sfu", name, w.Media)
		}
	}
	testenv.Eventually(t, 5*time.Second, "3 SFU participants for the sfu room this node hosts", func() bool { return participants(sf) == 3 })
}

// nextMediaOf is the next media event c reads, skipping other messages.
func nextMediaOf(t *testing.T, c *wsClient) string {
	t.Helper()
	for {
		if m, ok := c.read().(*wire.Media); ok {
			return m.Media
		}
	}
}

// TestAutoRoomResumeAcrossMove: a peer whose connection dropped while
// its room moved to the SFU is made a participant too; resuming, it
// gets a welcome saying sfu, then the media event held for it.
func TestAutoRoomResumeAcrossMove(t *testing.T) {
	s, sf, url := startAutoSignaling(t)
	a, b := dial(t, url), dial(t, url)
	a.join("auto-room", "ann")
	wb := b.join("auto-room", "ben")
	b.drop()
	waitSuspended(t, s, 1)
	if w := dial(t, url).join("auto-room", "cat"); w.Media != MediaSFU {
		t.Fatalf("cat's welcome: media %q, want sfu", w.Media)
	}
	if got := nextMediaOf(t, a); got != MediaSFU {
		t.Fatalf("ann: media %q, want sfu", got)
	}
	testenv.Eventually(t, 10*time.Second, "ben, away, is a participant too", func() bool { return participants(sf) == 3 })
	b2 := dial(t, url)
	b2.send(&wire.Join{Room: "auto-room", Name: "ben", Resume: wb.Resume})
	w := expect[*wire.Welcome](b2)
	if !w.Resumed || w.Media != MediaSFU {
		t.Fatalf("ben's resumed welcome: resumed %v media %q, want a resumed one saying sfu", w.Resumed, w.Media)
	}
	if got := nextMediaOf(t, b2); got != MediaSFU {
		t.Fatalf("ben, held: media %q, want sfu", got)
	}
}
