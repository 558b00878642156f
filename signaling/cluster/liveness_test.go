package cluster

import (
	"context"
	"encoding/json"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/icebox-project/icebox/internal/testenv"
	"github.com/icebox-project/icebox/signaling/wire"
)

// stallProxy forwards TCP connections to a target and can hold every
// byte in both directions (stall) without closing anything: a route
// whose packets are dropped while the connection stays up, as when a
// link is cut or flaps.
type stallProxy struct {
	ln      net.Listener
	target  string
	mu      sync.Mutex
	cond    *sync.Cond
	stalled bool
	closed  bool
	conns   []net.Conn
}

func newStallProxy(t *testing.T, target string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln, target: target}
	p.cond = sync.NewCond(&p.mu)
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *stallProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go p.pipe(up, c)
		go p.pipe(c, up)
	}
}

// pipe copies src to dst, each chunk waiting while the proxy stalls.
func (p *stallProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	b := make([]byte, 32<<10)
	for {
		n, err := src.Read(b)
		if n > 0 {
			p.mu.Lock()
			for p.stalled && !p.closed {
				p.cond.Wait()
			}
			p.mu.Unlock()
			if _, werr := dst.Write(b[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *stallProxy) stall(on bool) {
	p.mu.Lock()
	p.stalled = on
	p.cond.Broadcast()
	p.mu.Unlock()
}

func (p *stallProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
}

// unheardFor is how long ago n last heard the node named name directly.
func unheardFor(n *Node, name string) time.Duration {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, pn := range n.nodes {
		if pn.name == name && !pn.lastHeard.IsZero() {
			return time.Since(pn.lastHeard)
		}
	}
	return 0
}

// moveBucketLeader asks the rooms bucket's stream leader to step down in
// favour of node to, and waits until to leads it.
func moveBucketLeader(t *testing.T, from, to *testNode) {
	t.Helper()
	req, _ := json.Marshal(map[string]any{"placement": map[string]string{"preferred": to.name}})
	testenv.Eventually(t, 30*time.Second, "the rooms bucket led by "+to.name, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s, err := from.node.js.Stream(ctx, "KV_"+RoomsBucket)
		if err != nil {
			return false
		}
		info, err := s.Info(ctx)
		if err != nil || info.Cluster == nil {
			return false
		}
		if info.Cluster.Leader == to.name {
			return true
		}
		_, _ = from.node.nc.RequestWithContext(ctx, "$JS.API.STREAM.LEADER.STEPDOWN.KV_"+RoomsBucket, req)
		return false
	})
}

// TestRouteCutBetweenTwo cuts the route between nodes a and c alone
// (its bytes held both ways, as a cut or flapping link does), while
// both still reach b, and so a majority. c's peers keep their names:
// a must not take c for gone on its own silence (b still hears c), so
// it neither gives dave's name back in the bucket nor admits a second
// dave. Found by TestPartition/flap and /delay-loss (e2e/partition).
// Once the route carries bytes again, a lists c's peers as c says.
func TestRouteCutBetweenTwo(t *testing.T) {
	a := startNode(t, "a", nil, 8)
	seed := &url.URL{Scheme: "nats-route", Host: a.emb.RouteAddr().String()}
	b := startNode(t, "b", []*url.URL{seed}, 8)
	// c reaches a only through the proxy; a and b reach c where c says.
	p := newStallProxy(t, a.emb.RouteAddr().String())
	c := startNode(t, "c", []*url.URL{{Scheme: "nats-route", Host: p.ln.Addr().String()}}, 8)
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
		st := a.node.Status(ctx)
		return st.Replicas == 3 && st.InSync == 3
	})
	// b leads the bucket, so a and c each reach the leader and both
	// stay in the majority while their route is cut.
	moveBucketLeader(t, a, b)

	dave, _ := join(t, c.url, "r1", "dave")
	testenv.Eventually(t, 10*time.Second, "a and b to list dave", func() bool {
		return len(a.sig.Members()) == 1 && len(b.sig.Members()) == 1
	})

	p.stall(true)
	deadAfter := a.node.cfg.DeadAfter
	testenv.Eventually(t, 10*deadAfter, "a to hear nothing from c for twice DeadAfter", func() bool {
		return unheardFor(a.node, "c") > 2*deadAfter
	})
	if got := a.node.AliveNodes(); got != 3 {
		t.Errorf("a takes %d nodes for alive with its route to c cut, want 3: b still hears c", got)
	}
	if got := recordLen(t, b, "r1"); got != 1 {
		t.Errorf("room r1's record holds %d members with the route a–c cut, want dave", got)
	}
	second := dial(t, a.url)
	second.send(&wire.Join{Room: "r1", Name: "dave"})
	switch m := second.next().(type) {
	case *wire.Error:
		if m.Code != wire.CodeNameTaken {
			t.Errorf("a second dave on a got %+v, want name-taken", m)
		}
	default:
		t.Errorf("a second dave on a got %#v while dave on c holds the name, want name-taken", m)
	}

	p.stall(false)
	testenv.Eventually(t, 20*time.Second, "a to hear c again and list dave", func() bool {
		if unheardFor(a.node, "c") > deadAfter {
			return false
		}
		for _, m := range a.sig.Members() {
			if m.ID == dave.id {
				return true
			}
		}
		return false
	})
	if !c.sig.HasLocal("r1", dave.id) {
		t.Errorf("dave left c, want dave to keep his place")
	}
}
