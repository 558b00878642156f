package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/icebox-project/icebox/signaling/sigclient"
	"github.com/icebox-project/icebox/signaling/wire"
)

// pionPeer is a pion/webrtc peer that signals through icebox's /ws with
// the same payloads as the call page ({description}, {candidate}).
type pionPeer struct {
	t      *testing.T
	name   string
	sig    *sigclient.Client
	pc     *webrtc.PeerConnection
	id     string
	remote atomic.Value // peer id string
	got    chan string
	dc     chan *webrtc.DataChannel
}

func newPionPeer(t *testing.T, ib *icebox, room, name string) *pionPeer {
	t.Helper()
	rc := ib.pageConfig(t, room, "relay=1")
	if rc.ICETransportPolicy != "relay" {
		t.Fatalf("relay=1: got iceTransportPolicy %q", rc.ICETransportPolicy)
	}
	cfg := webrtc.Configuration{ICETransportPolicy: webrtc.ICETransportPolicyRelay}
	for _, s := range rc.ICEServers {
		cfg.ICEServers = append(cfg.ICEServers, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	pc, err := webrtc.NewPeerConnection(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	wsURL := "ws" + strings.TrimPrefix(ib.URL, "http") + "/ws"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, err := sigclient.Dial(ctx, wsURL, sigclient.DialOptions{Origin: ib.URL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	p := &pionPeer{t: t, name: name, sig: ws, pc: pc, got: make(chan string, 16), dc: make(chan *webrtc.DataChannel, 1)}
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil && p.peer() != "" {
			p.signal(map[string]any{"candidate": c.ToJSON()})
		}
	})
	pc.OnDataChannel(func(dc *webrtc.DataChannel) { p.watch(dc) })
	welcome, err := ws.Join(ctx, wire.Join{Room: room, Name: name})
	if err != nil {
		t.Fatalf("%s: join: %v", name, err)
	}
	p.id = welcome.ID
	if len(welcome.Peers) > 0 {
		p.remote.Store(welcome.Peers[0].ID)
	}
	return p
}

func (p *pionPeer) peer() string {
	s, _ := p.remote.Load().(string)
	return s
}

func (p *pionPeer) watch(dc *webrtc.DataChannel) {
	dc.OnOpen(func() { p.dc <- dc })
	dc.OnMessage(func(m webrtc.DataChannelMessage) { p.got <- string(m.Data) })
}

func (p *pionPeer) signal(data any) {
	if err := p.sig.Signal(p.peer(), data); err != nil {
		p.t.Errorf("%s: signal: %v", p.name, err)
	}
}

// serve handles signaling messages until the socket closes. Candidates
// that arrive before the remote description (the sender trickles them
// from another goroutine than the one sending its offer) wait for it.
func (p *pionPeer) serve() {
	var pending []webrtc.ICECandidateInit
	for {
		msg, err := p.sig.Receive(context.Background())
		if err != nil {
			return
		}
		switch m := msg.(type) {
		case *wire.PeerJoined:
			p.remote.Store(m.ID)
		case *wire.Signal:
			if m.From != p.peer() {
				p.t.Errorf("%s: signal from %q, want %q", p.name, m.From, p.peer())
			}
			var data struct {
				Description *webrtc.SessionDescription `json:"description"`
				Candidate   *webrtc.ICECandidateInit   `json:"candidate"`
			}
			if err := json.Unmarshal(m.Data, &data); err != nil {
				p.t.Errorf("%s: signal data: %v", p.name, err)
				continue
			}
			if d := data.Description; d != nil {
				if err := p.pc.SetRemoteDescription(*d); err != nil {
					p.t.Errorf("%s: SetRemoteDescription: %v", p.name, err)
					continue
				}
				for _, c := range pending {
					if err := p.pc.AddICECandidate(c); err != nil {
						p.t.Errorf("%s: AddICECandidate: %v", p.name, err)
					}
				}
				pending = nil
				if d.Type == webrtc.SDPTypeOffer {
					answer, err := p.pc.CreateAnswer(nil)
					if err == nil {
						err = p.pc.SetLocalDescription(answer)
					}
					if err != nil {
						p.t.Errorf("%s: answer: %v", p.name, err)
						continue
					}
					p.signal(map[string]any{"description": p.pc.LocalDescription()})
				}
			}
			if c := data.Candidate; c != nil {
				if p.pc.RemoteDescription() == nil {
					pending = append(pending, *c)
				} else if err := p.pc.AddICECandidate(*c); err != nil {
					p.t.Errorf("%s: AddICECandidate: %v", p.name, err)
				}
			}
		}
	}
}

func (p *pionPeer) offer() {
	dc, err := p.pc.CreateDataChannel("chat", nil)
	if err != nil {
		p.t.Fatal(err)
	}
	p.watch(dc)
	offer, err := p.pc.CreateOffer(nil)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := p.pc.SetLocalDescription(offer); err != nil {
		p.t.Fatal(err)
	}
	p.signal(map[string]any{"description": p.pc.LocalDescription()})
}

func (p *pionPeer) openChannel() *webrtc.DataChannel {
	select {
	case dc := <-p.dc:
		return dc
	case <-time.After(20 * time.Second):
		p.t.Fatalf("%s: data channel did not open (ICE %s)", p.name, p.pc.ICEConnectionState())
		return nil
	}
}

func (p *pionPeer) expectMessage(want string) {
	select {
	case got := <-p.got:
		if got != want {
			p.t.Errorf("%s: got %q, want %q", p.name, got, want)
		}
	case <-time.After(10 * time.Second):
		p.t.Fatalf("%s: no message %q", p.name, want)
	}
}

func (p *pionPeer) selectedPair() *webrtc.ICECandidatePair {
	pair, err := p.pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		p.t.Fatalf("%s: no selected candidate pair: %v", p.name, err)
	}
	return pair
}

// TestPionPeersCallThroughRelay: two pion/webrtc peers take their ICE
// configuration from the page, meet over /ws, and talk over a data
// channel relayed by icebox's TURN.
func TestPionPeersCallThroughRelay(t *testing.T) {
	lane(t, laneLight)
	ib := startIcebox(t, nil)
	room := ib.newRoom(t)
	a := newPionPeer(t, ib, room, "alice")
	b := newPionPeer(t, ib, room, "bob")
	if b.peer() != a.id {
		t.Fatalf("bob's welcome lists %q, want alice %q", b.peer(), a.id)
	}
	go a.serve()
	go b.serve()
	b.offer()
	dcB := b.openChannel()
	dcA := a.openChannel()
	for i := 0; i < 3; i++ {
		msg := fmt.Sprintf("bob→alice %d", i)
		if err := dcB.SendText(msg); err != nil {
			t.Fatal(err)
		}
		a.expectMessage(msg)
		msg = fmt.Sprintf("alice→bob %d", i)
		if err := dcA.SendText(msg); err != nil {
			t.Fatal(err)
		}
		b.expectMessage(msg)
	}
	// Relay on both sides: each local candidate is a relayed address of
	// icebox, and each side's remote is the other's relayed address. (The
	// remote may be learned as peer-reflexive when a connectivity check
	// beats the trickled candidate; its address is what matters.)
	pa, pb := a.selectedPair(), b.selectedPair()
	for _, c := range []struct {
		name        string
		local, peer *webrtc.ICECandidate
		remote      *webrtc.ICECandidate
	}{{"alice", pa.Local, pb.Local, pa.Remote}, {"bob", pb.Local, pa.Local, pb.Remote}} {
		if c.local.Typ != webrtc.ICECandidateTypeRelay {
			t.Errorf("%s: local candidate %s, want relay", c.name, c.local)
		}
		if c.remote.Address != c.peer.Address || c.remote.Port != c.peer.Port {
			t.Errorf("%s: remote candidate %s:%d, want the other side's relayed address %s:%d",
				c.name, c.remote.Address, c.remote.Port, c.peer.Address, c.peer.Port)
		}
	}
	if n := ib.TURN().AllocationCount(); n < 2 {
		t.Errorf("TURN allocations during the call: got %d, want at least 2", n)
	}
	st := ib.TURN().Stats()
	if st.AllocationsCreated.Load() < 2 {
		t.Errorf("allocations created: got %d", st.AllocationsCreated.Load())
	}
}
