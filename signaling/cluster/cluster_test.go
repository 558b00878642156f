package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icebox-project/icebox/internal/relayrange"
	"github.com/icebox-project/icebox/internal/testenv"
	"github.com/icebox-project/icebox/signaling"
	"github.com/icebox-project/icebox/signaling/sigclient"
	"github.com/icebox-project/icebox/signaling/wire"
)

const testSecret = "cluster-test-secret-0123456789"

// testNode is one in-process icebox signaling node: an embedded NATS, a
// Node and a signaling.Server on httptest.
type testNode struct {
	name string
	emb  *Embedded
	node *Node
	sig  *signaling.Server
	hs   *httptest.Server
	url  string
	once sync.Once
}

func quietLog() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// startNode starts a node named name routing to routes.
func startNode(t *testing.T, name string, routes []*url.URL, maxPeers int) *testNode {
	t.Helper()
	return startNodeWith(t, name, routes, maxPeers, nodeOpts{})
}

// nodeOpts are startNodeWith's changes to a test node.
type nodeOpts struct {
	// wrap, when set, is what the node drives instead of its signaling
	// server, given the server: a test watches or stalls what the node
	// applies.
	wrap func(Rooms) Rooms
	// deadAfter: zero is 2 s.
	deadAfter time.Duration
	// resumeTimeout: zero is DefaultResumeTimeout.
	resumeTimeout time.Duration
}

// startNodeWith is startNode changed by o.
func startNodeWith(t *testing.T, name string, routes []*url.URL, maxPeers int, o nodeOpts) *testNode {
	t.Helper()
	if o.deadAfter == 0 {
		o.deadAfter = 2 * time.Second
	}
	emb, err := Embed(EmbedConfig{Name: name, Listen: "127.0.0.1:0", Routes: routes, Secret: testSecret,
		StoreDir: t.TempDir(), Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := ConnectEmbedded(emb, name, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	n, err := New(Config{Name: name, Secret: testSecret, Conn: nc, Logger: quietLog(), HeartbeatInterval: 200 * time.Millisecond, DeadAfter: o.deadAfter, ResumeTimeout: o.resumeTimeout,
		Relay: relayrange.RelayRange{Addr: netip.MustParseAddr("127.0.0.1"), Min: 20000, Max: 20099}})
	if err != nil {
		t.Fatal(err)
	}
	sig := signaling.New(signaling.Config{Limits: signaling.Limits{MaxPeersPerRoom: maxPeers}, Cluster: n, Logger: quietLog(),
		ResumeWindow: 30 * time.Second})
	var rooms Rooms = sig
	if o.wrap != nil {
		rooms = o.wrap(sig)
	}
	if err := n.Start(context.Background(), rooms); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(sig)
	tn := &testNode{name: name, emb: emb, node: n, sig: sig, hs: hs, url: "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"}
	t.Cleanup(func() { tn.stop(t) })
	return tn
}

// stop drains the node as the daemon does: signaling closes (its peers
// leave), then the node says goodbye, then NATS stops.
func (tn *testNode) stop(t *testing.T) {
	tn.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := tn.sig.Close(ctx); err != nil {
			t.Errorf("%s: signaling close: %v", tn.name, err)
		}
		tn.hs.Close()
		_ = tn.node.Close(ctx)
		tn.emb.Shutdown()
	})
}

// kill stops the node without a word to the others, as a crash would.
func (tn *testNode) kill() {
	tn.once.Do(func() {
		tn.node.closed.Store(true)
		tn.node.stop()
		tn.emb.Shutdown() // closes the routes: the others hear nothing more
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tn.sig.Close(ctx)
		tn.hs.Close()
	})
}

// startCluster starts three nodes, the second and third routing to the
// first, and waits until each is ready and sees the other two.
func startCluster(t *testing.T, maxPeers int) []*testNode {
	t.Helper()
	return startClusterWith(t, maxPeers, nodeOpts{}, nodeOpts{}, nodeOpts{})
}

// startClusterWith is startCluster with nodes a, b and c changed by
// oa, ob and oc.
func startClusterWith(t *testing.T, maxPeers int, oa, ob, oc nodeOpts) []*testNode {
	t.Helper()
	a := startNodeWith(t, "a", nil, maxPeers, oa)
	seed := &url.URL{Scheme: "nats-route", Host: a.emb.RouteAddr().String()}
	b := startNodeWith(t, "b", []*url.URL{seed}, maxPeers, ob)
	c := startNodeWith(t, "c", []*url.URL{seed}, maxPeers, oc)
	nodes := []*testNode{a, b, c}
	logStatusOnFailure(t, nodes...)
	testenv.Eventually(t, 60*time.Second, "a ready cluster of 3 with the rooms bucket on 3 nodes, all in sync", func() bool {
		for _, n := range nodes {
			if !n.node.Ready() || n.node.AliveNodes() != 3 {
				return false
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if st := a.node.Status(ctx); st.Replicas != 3 || st.InSync != 3 {
			return false
		}
		for _, n := range nodes { // the bucket answers on every node
			if _, _, err := n.node.get(ctx, *n.node.kv.Load(), "probe"); err != nil {
				return false
			}
		}
		return true
	})
	return nodes
}

// logStatusOnFailure logs each node's Status when t has failed and -v is
// given, before the nodes stop (cleanups run last first).
func logStatusOnFailure(t *testing.T, nodes ...*testNode) {
	t.Cleanup(func() {
		if !t.Failed() || !testing.Verbose() {
			return
		}
		for _, n := range nodes {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			t.Logf("%s: %+v", n.name, n.node.Status(ctx))
			cancel()
		}
	})
}

type wsPeer struct {
	t *testing.T
	*sigclient.Client
	id  string
	tok string
}

func dial(t *testing.T, u string) *wsPeer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := sigclient.Dial(ctx, u, sigclient.DialOptions{Buffer: 256})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &wsPeer{t: t, Client: c}
}

func (p *wsPeer) send(m wire.Message) {
	p.t.Helper()
	if err := p.Send(m); err != nil {
		p.t.Fatal(err)
	}
}

func (p *wsPeer) signal(to string, data any) {
	p.t.Helper()
	if err := p.Signal(to, data); err != nil {
		p.t.Fatal(err)
	}
}

// next returns the next message that is not a pong, within 20 s.
func (p *wsPeer) next() wire.Message {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		m, err := p.Receive(ctx)
		if err != nil {
			p.t.Fatal(err)
		}
		if _, pong := m.(*wire.Pong); !pong {
			return m
		}
	}
}

// expect reads the next message that is not a pong and checks it is a
// T.
func expect[T wire.Message](p *wsPeer) T {
	p.t.Helper()
	m := p.next()
	got, ok := m.(T)
	if !ok {
		var want T
		p.t.Fatalf("got %#v, want a %T", m, want)
	}
	return got
}

// join joins room as name and returns the welcome.
func join(t *testing.T, u, room, name string) (*wsPeer, *wire.Welcome) {
	t.Helper()
	p := dial(t, u)
	p.send(&wire.Join{Room: room, Name: name})
	w := expect[*wire.Welcome](p)
	p.id, p.tok = w.ID, w.Resume
	return p, w
}

func peerNames(w *wire.Welcome) []string {
	var names []string
	for _, x := range w.Peers {
		names = append(names, x.Name)
	}
	return names
}

// dataOf decodes a signal's data into a map.
func dataOf(t *testing.T, s *wire.Signal) map[string]any {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal(s.Data, &d); err != nil {
		t.Fatalf("signal data %s: %v", s.Data, err)
	}
	return d
}

// TestAcrossNodes is the protocol over real WebSockets on three nodes:
// welcome lists remote peers, peer-joined, signal and peer-left cross
// nodes with from set by the sender's node, room-full counts every node,
// a simultaneous join of one name on two nodes has exactly one winner,
// a peer resumes on another node unseen, and the peers of a node that
// stops, or dies, leave on the others.
func TestAcrossNodes(t *testing.T) {
	nodes := startCluster(t, 3)
	a, b, c := nodes[0], nodes[1], nodes[2]

	t.Run("welcome, joined, signal, left", func(t *testing.T) {
		alice, _ := join(t, a.url, "r1", "alice")
		bob, w := join(t, b.url, "r1", "bob")
		if got := peerNames(w); len(got) != 1 || got[0] != "alice" {
			t.Fatalf("bob's welcome lists %v, want [alice]", got)
		}
		if m := expect[*wire.PeerJoined](alice); m.ID != bob.id || m.Name != "bob" {
			t.Fatalf("alice got %v", m)
		}
		bob.signal(alice.id, map[string]any{"sdp": "offer"})
		m := expect[*wire.Signal](alice)
		if m.From != bob.id || dataOf(t, m)["sdp"] != "offer" {
			t.Fatalf("alice got %v, want a signal from %s", m, bob.id)
		}
		// from is the sender's id whatever the client claims.
		alice.send(&wire.Signal{To: bob.id, From: "forged", Data: json.RawMessage(`{"x":1}`)})
		if m := expect[*wire.Signal](bob); m.From != alice.id {
			t.Fatalf("bob got from %v, want %s", m.From, alice.id)
		}
		carol, w := join(t, c.url, "r1", "carol")
		if got := peerNames(w); len(got) != 2 {
			t.Fatalf("carol's welcome lists %v, want alice and bob", got)
		}
		expect[*wire.PeerJoined](alice)
		expect[*wire.PeerJoined](bob)
		// Full on every node: a fourth peer, on any node, is refused.
		late := dial(t, a.url)
		late.send(&wire.Join{Room: "r1", Name: "dave"})
		if m := expect[*wire.Error](late); m.Code != wire.CodeRoomFull {
			t.Fatalf("got %v, want room-full", m)
		}
		carol.send(&wire.Leave{})
		for _, p := range []*wsPeer{alice, bob} {
			if m := expect[*wire.PeerLeft](p); m.ID != carol.id {
				t.Fatalf("got %v, want carol's peer-left", m)
			}
		}
		// Her place is given back: dave gets in (once the bucket has it).
		testenv.Eventually(t, 10*time.Second, "carol's place given back", func() bool {
			return recordLen(t, a, "r1") == 2
		})
		late.send(&wire.Join{Room: "r1", Name: "dave"})
		expect[*wire.Welcome](late)
	})

	t.Run("one name at the same instant on two nodes: one winner", func(t *testing.T) {
		for i := range 50 {
			room := fmt.Sprintf("race%d", i)
			p1, p2 := dial(t, a.url), dial(t, b.url)
			var wg sync.WaitGroup
			for _, p := range []*wsPeer{p1, p2} {
				wg.Go(func() { _ = p.Send(&wire.Join{Room: room, Name: "same"}) })
			}
			wg.Wait()
			m1, m2 := p1.next(), p2.next()
			welcomes, taken := 0, 0
			for _, m := range []wire.Message{m1, m2} {
				switch m := m.(type) {
				case *wire.Welcome:
					welcomes++
				case *wire.Error:
					if m.Code == wire.CodeNameTaken {
						taken++
					}
				}
			}
			if welcomes != 1 || taken != 1 {
				t.Fatalf("round %d: got %#v and %#v, want one welcome and one name-taken", i, m1, m2)
			}
			p1.Close()
			p2.Close()
		}
	})

	t.Run("a leave and a join again keep the place", func(t *testing.T) {
		// A connection that leaves and joins again keeps its peer id; the
		// release of its first place must not take its second (another
		// node then admitted its name: two peers of one name).
		gina, _ := join(t, c.url, "r4", "gina")
		gina.send(&wire.Leave{})
		gina.send(&wire.Join{Room: "r4", Name: "gina"})
		if w := expect[*wire.Welcome](gina); w.ID != gina.id {
			t.Fatalf("got %+v, want gina's id %s again", w, gina.id)
		}
		select {
		case <-flushed(&c.node.rel):
		case <-time.After(10 * time.Second):
			t.Fatal("c's releases not done within 10 s")
		}
		// The bucket serves reads from any replica, and a's may not have
		// the join again yet when it has the release before it (an empty
		// record): wait for it. A release that took the second place
		// would leave the record empty for good.
		testenv.EventuallyWhy(t, 10*time.Second, "room r4's record on a holds gina", func() string {
			if n := recordLen(t, a, "r4"); n != 1 {
				return fmt.Sprintf("%d members", n)
			}
			return ""
		})
		other := dial(t, b.url)
		other.send(&wire.Join{Room: "r4", Name: "gina"})
		if m := expect[*wire.Error](other); m.Code != wire.CodeNameTaken {
			t.Fatalf("a second gina on b got %+v, want name-taken", m)
		}
	})

	t.Run("resume on another node", func(t *testing.T) {
		erin, _ := join(t, a.url, "r2", "erin")
		finn, _ := join(t, c.url, "r2", "finn")
		expect[*wire.PeerJoined](erin)
		// Erin's network drops (no close frame): node a keeps her for the
		// resume window; finn's signal meanwhile waits for her there.
		erin.Conn().UnderlyingConn().Close()
		testenv.Eventually(t, 10*time.Second, "erin suspended on a", func() bool { return a.sig.HasLocal("r2", erin.id) && connsOf(a) == 0 })
		finn.signal(erin.id, map[string]any{"n": 1})
		testenv.Eventually(t, 10*time.Second, "the signal queued for erin", func() bool { return a.node.Stats().Received()[kindSignal] > 0 })
		back := dial(t, b.url)
		back.send(&wire.Join{Room: "r2", Name: "erin", Resume: erin.tok})
		w := expect[*wire.Welcome](back)
		if w.ID != erin.id || !w.Resumed {
			t.Fatalf("got %v, want erin's id %s resumed", w, erin.id)
		}
		if m := expect[*wire.Signal](back); m.From != finn.id {
			t.Fatalf("got %v, want finn's queued signal", m)
		}
		// finn saw nothing, and reaches her on node b now, once node c has
		// heard that she moved (before, through a: TestSignalDuringHandOver).
		testenv.Eventually(t, 10*time.Second, "node c knows erin is on b", func() bool {
			for _, m := range c.node.rooms.Members() {
				if m.Room == "r2" && m.ID == erin.id {
					return m.Node == b.node.id
				}
			}
			return false
		})
		finn.signal(erin.id, map[string]any{"n": 2})
		if m := expect[*wire.Signal](back); dataOf(t, m)["n"] != float64(2) {
			t.Fatalf("got %v", m)
		}
		back.signal(finn.id, map[string]any{"n": 3})
		if m := expect[*wire.Signal](finn); m.From != erin.id {
			t.Fatalf("finn got %v, want erin's signal (and no peer-left or peer-joined)", m)
		}
	})

	t.Run("a node that dies", func(t *testing.T) {
		gil, _ := join(t, a.url, "r3", "gil")
		hal, _ := join(t, c.url, "r3", "hal")
		expect[*wire.PeerJoined](gil)
		c.kill()
		if m := expect[*wire.PeerLeft](gil); m.ID != hal.id {
			t.Fatalf("got %v, want hal's peer-left", m)
		}
		// hal's name is free again once b too has heard nothing from c
		// for DeadAfter.
		testenv.Eventually(t, 15*time.Second, "b to take c for gone", func() bool {
			return b.node.AliveNodes() == 2
		})
		again, _ := join(t, b.url, "r3", "hal")
		if m := expect[*wire.PeerJoined](gil); m.ID != again.id {
			t.Fatalf("got %v", m)
		}
	})
}

func connsOf(n *testNode) int {
	conns, _, _ := n.sig.Counts()
	return conns
}

func recordLen(t *testing.T, n *testNode, room string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	rec, _, err := n.node.get(ctx, *n.node.kv.Load(), room)
	if err != nil {
		t.Fatal(err)
	}
	return len(rec.Members)
}
