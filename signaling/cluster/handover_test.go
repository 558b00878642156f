package cluster

import (
	"context"
	"encoding/json"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/icebox-project/icebox/internal/testenv"
	"github.com/icebox-project/icebox/signaling"
	"github.com/icebox-project/icebox/signaling/wire"
)

// handOverHook is a node's rooms running a function right after a
// hand-over, before the node answers the resume.
type handOverHook struct {
	Rooms
	after chan func()
}

func (h *handOverHook) HandOver(token, room, node string) (signaling.Handover, bool) {
	ho, ok := h.Rooms.HandOver(token, room, node)
	if ok {
		select {
		case f := <-h.after:
			f()
		default:
		}
	}
	return ho, ok
}

// signalsApplied is a node's rooms telling, for each RemoteSignal, the
// peer it was for.
type signalsApplied struct {
	Rooms
	to chan string
}

func (s *signalsApplied) RemoteSignal(room, from, to string, data json.RawMessage) (string, bool) {
	fwd, ok := s.Rooms.RemoteSignal(room, from, to, data)
	select {
	case s.to <- to:
	default:
	}
	return fwd, ok
}

// TestSignalDuringHandOver: erin, suspended on node a, resumes on node
// b. Right after a hands her over, and before b has seated her, finn on
// node c signals her: c still routes her to a, which forwards the signal
// to b, which applies it before the resume's answer. The signal waits
// for her there and reaches her after her welcome. (It was dropped: b
// knew her on a, and a forwarded signal goes no further.)
//
// It runs on request (ICEBOX_CLUSTER_HANDOVER=1): with the other packages
// of make test beside it on two cores, b did not apply finn's signal
// within 20 s in 2 clean-clone runs of 4, for a reason not found yet; it
// passed every run alone, and 3 runs of make test's other Go packages
// beside it under heavier load. A failure logs each node's message
// counts (a dropped hand-off, a signal undelivered, a node taken for
// dead) to tell where the signal went.
func TestSignalDuringHandOver(t *testing.T) {
	if os.Getenv("ICEBOX_CLUSTER_HANDOVER") == "" {
		t.Skip("flaky under load (see above); set ICEBOX_CLUSTER_HANDOVER=1 to run it")
	}
	hook := &handOverHook{after: make(chan func(), 1)}
	applied := &signalsApplied{to: make(chan string, 64)}
	nodes := startClusterWith(t, 8,
		nodeOpts{wrap: func(r Rooms) Rooms { hook.Rooms = r; return hook }},
		// b waits for the resume's answer longer than the hook below takes.
		nodeOpts{resumeTimeout: time.Minute, wrap: func(r Rooms) Rooms { applied.Rooms = r; return applied }},
		nodeOpts{})
	a, b, c := nodes[0], nodes[1], nodes[2]
	// A failure says where the signal went: each node's counts of what
	// it sent, received and dropped, and its view of the others.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, n := range nodes {
			st := n.node.Stats()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			t.Logf("%s: sent %v received %v dropped out %v in %v undelivered %d publish errors %d; status %+v",
				n.name, st.Sent(), st.Received(), st.DroppedOut(), st.DroppedIn(), st.Undelivered(), st.PublishErrors(), n.node.Status(ctx))
			cancel()
		}
	})

	erin, _ := join(t, a.url, "ho", "erin")
	finn, _ := join(t, c.url, "ho", "finn")
	expect[*wire.PeerJoined](erin)
	testenv.Eventually(t, 10*time.Second, "b knows finn", func() bool {
		for _, m := range b.sig.Members() {
			if m.ID == finn.id {
				return true
			}
		}
		return false
	})
	erin.Conn().UnderlyingConn().Close()
	testenv.Eventually(t, 10*time.Second, "erin suspended on a", func() bool { return a.sig.HasLocal("ho", erin.id) && connsOf(a) == 0 })

	done := make(chan struct{})
	hook.after <- func() {
		defer close(done)
		for len(applied.to) > 0 {
			<-applied.to
		}
		if err := finn.Signal(erin.id, map[string]any{"n": 1}); err != nil {
			t.Error(err)
			return
		}
		for {
			select {
			case to := <-applied.to:
				if to == erin.id {
					return
				}
			case <-time.After(20 * time.Second):
				t.Error("b did not apply finn's signal before a answered the resume")
				return
			}
		}
	}
	back := dial(t, b.url)
	back.send(&wire.Join{Room: "ho", Name: "erin", Resume: erin.tok})
	if w := expect[*wire.Welcome](back); w.ID != erin.id || !w.Resumed {
		t.Fatalf("got %+v, want erin's id %s resumed", w, erin.id)
	}
	<-done
	m := expect[*wire.Signal](back)
	if m.From != finn.id || dataOf(t, m)["n"] != float64(1) {
		t.Fatalf("erin got %+v, want finn's signal", m)
	}
	if u := b.node.Stats().Undelivered() + a.node.Stats().Undelivered(); u != 0 {
		t.Errorf("%d signals undelivered", u)
	}
}

// TestMembersAnswerBeforeMove: a node's members answer leaves out a peer
// it has just handed over to another node, and the other node's
// announcement of the move can arrive after the answer (two nodes'
// messages are not ordered with each other). Taking the answer first
// must not tell the room the peer left (it did once, as peer-left then
// peer-joined). A peer left out of an answer and not moved still leaves.
// The departures the answers schedule run when the test says: every one
// scheduled, those of answers the nodes sent meanwhile too.
func TestMembersAnswerBeforeMove(t *testing.T) {
	nodes := startCluster(t, 4)
	a, b, c := nodes[0], nodes[1], nodes[2]
	var mu sync.Mutex
	var pending []func()
	c.node.mu.Lock()
	c.node.afterFunc = func(_ time.Duration, f func()) *time.Timer {
		mu.Lock()
		defer mu.Unlock()
		pending = append(pending, f)
		return nil
	}
	c.node.mu.Unlock()
	fireAll := func() {
		mu.Lock()
		fs := pending
		pending = nil
		mu.Unlock()
		for _, f := range fs {
			f()
		}
	}
	nodeOf := func(id string) string {
		for _, m := range c.node.rooms.Members() {
			if m.Room == "m1" && m.ID == id {
				return m.Node
			}
		}
		return ""
	}
	erin, _ := join(t, a.url, "m1", "erin")
	finn, _ := join(t, c.url, "m1", "finn")
	gus, _ := join(t, c.url, "m1", "gus")
	expect[*wire.PeerJoined](finn) // gus
	testenv.Eventually(t, 10*time.Second, "c knows erin on a", func() bool { return nodeOf(erin.id) == a.node.id })

	// An answer of a's without erin, as a sends once it has handed her
	// over; then she resumes on b, and c hears of the move after the
	// answer.
	c.node.unlisted(a.node.id, map[string]bool{})
	erin.Conn().UnderlyingConn().Close()
	testenv.Eventually(t, 10*time.Second, "erin suspended on a", func() bool { return a.sig.HasLocal("m1", erin.id) && connsOf(a) == 0 })
	back := dial(t, b.url)
	back.send(&wire.Join{Room: "m1", Name: "erin", Resume: erin.tok})
	if w := expect[*wire.Welcome](back); w.ID != erin.id || !w.Resumed {
		t.Fatalf("got %v, want erin's id %s resumed", w, erin.id)
	}
	testenv.Eventually(t, 10*time.Second, "c knows erin is on b", func() bool { return nodeOf(erin.id) == b.node.id })
	fireAll()
	if got := nodeOf(erin.id); got != b.node.id {
		t.Fatalf("c holds erin on %q, want b %q", got, b.node.id)
	}
	gus.signal(finn.id, map[string]any{"n": 1})
	if m := expect[*wire.Signal](finn); m.From != gus.id {
		t.Fatalf("finn got %v, want gus's signal (and no peer-left for erin)", m)
	}

	// An answer without gil, who did not move: gil leaves.
	gil, _ := join(t, a.url, "m1", "gil")
	if m := expect[*wire.PeerJoined](finn); m.ID != gil.id {
		t.Fatalf("finn got %v, want gil's peer-joined", m)
	}
	testenv.Eventually(t, 10*time.Second, "c knows gil on a", func() bool { return nodeOf(gil.id) == a.node.id })
	c.node.unlisted(a.node.id, map[string]bool{})
	fireAll()
	if m := expect[*wire.PeerLeft](finn); m.ID != gil.id {
		t.Fatalf("finn got %v, want gil's peer-left", m)
	}
}
