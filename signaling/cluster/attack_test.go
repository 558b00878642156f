package cluster

import (
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/icebox-project/icebox/internal/relayrange"
	"github.com/icebox-project/icebox/internal/testenv"
	"github.com/icebox-project/icebox/signaling/wire"
)

// attacker connects to n's NATS as a client holding the NATS client
// password but not the cluster secret (so no message key): what a user
// of a shared NATS, or anyone who read that password, can do.
func attacker(t *testing.T, n *testNode) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect("", nats.InProcessServer(n.emb.Server()), nats.UserInfo(natsUser, clientPassword(testSecret)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func rejected(n *testNode) int64 { return n.node.Stats().Received()[kindRejected] }

// knows reports whether n has heard of node id.
func knows(t *testing.T, n *testNode, id string) bool {
	for _, s := range n.node.Status(t.Context()).Nodes {
		if s.ID == id {
			return true
		}
	}
	return false
}

// TestForgedMessagesIgnored: a client on NATS without the message keys
// forges b's "gone" (unsigned, and signed with a key of its own), a
// heartbeat of a new node whose relay range is this host's every port, a
// "left" of b's peer, replays one of b's real heartbeats, and asks a
// for its peers. Node a
// refuses each (counted as rejected): carol, on b, stays; a second carol
// is refused; the forged node is unknown. (Before messages were signed,
// the forged "gone" evicted carol on a and a second carol was admitted,
// and a took the forged node's relay range 127.0.0.1:1-65535.)
func TestForgedMessagesIgnored(t *testing.T) {
	nodes := startCluster(t, 8)
	a, b := nodes[0], nodes[1]
	carol, _ := join(t, b.url, "room1", "carol")
	testenv.Eventually(t, 20*time.Second, "a to see carol", func() bool { return len(a.sig.Members()) == 1 })
	nc := attacker(t, a)

	// A real heartbeat of b, to replay.
	sub, err := nc.SubscribeSync(subjHeartbeat)
	if err != nil {
		t.Fatal(err)
	}
	var captured *nats.Msg
	for captured == nil {
		m, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if m.Header.Get(hdrNode) == b.node.ID() {
			captured = m
		}
	}
	_ = sub.Unsubscribe()

	gone, _ := json.Marshal(heartbeatWire{Kind: kindHeartbeat, Node: b.node.ID(), Name: "b", Gone: true})
	evilID := "evil@00000000"
	evil, _ := json.Marshal(heartbeatWire{Kind: kindHeartbeat, Node: evilID, Name: "evil",
		Relay: relayrange.RelayRange{Addr: netip.MustParseAddr("127.0.0.1"), Min: 1, Max: 65535}})
	left, _ := json.Marshal(event{Kind: kindLeft, Room: "room1", ID: carol.id, Node: b.node.ID()})
	own := signer{id: b.node.ID(), key: messageKey("a guess, not the cluster secret", b.node.ID())}
	own.seq.Store(1 << 40) // far ahead of b's own numbers
	forged := []*nats.Msg{
		{Subject: subjHeartbeat, Data: gone},
		own.msg(subjHeartbeat, "", gone, true),
		{Subject: subjHeartbeat, Data: evil},
		{Subject: subjRooms, Data: left},
		own.msg(subjRooms, "", left, true),
		{Subject: captured.Subject, Data: captured.Data, Header: captured.Header},
		{Subject: subjMembers(a.node.ID()), Reply: nc.NewInbox()}, // who is in which room?
	}
	before := rejected(a)
	for _, m := range forged {
		if err := nc.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, "a to reject the forged messages", func() bool { return rejected(a)-before >= int64(len(forged)) })
	if got := rejected(a) - before; got != int64(len(forged)) {
		t.Errorf("a rejected %d messages, want %d", got, len(forged))
	}
	if len(a.sig.Members()) != 1 {
		t.Errorf("a's members after forged messages: %+v, want carol", a.sig.Members())
	}
	if knows(t, a, evilID) {
		t.Errorf("a took the forged node %s (relay 127.0.0.1:1-65535) for real", evilID)
	}
	if a.node.AliveNodes() != 3 {
		t.Errorf("a sees %d nodes alive, want 3", a.node.AliveNodes())
	}
	p := dial(t, a.url)
	p.send(&wire.Join{Room: "room1", Name: "carol"})
	if m, ok := p.next().(*wire.Error); !ok || m.Code != wire.CodeNameTaken {
		t.Errorf("a second carol on a got %v, want a name-taken error", m)
	}
}

// TestGoneOnlyFromOwner: a node holding the secret (so its messages
// verify) announces that carol, whom b seated, left, and sends a heartbeat
// saying b is gone. Neither is honoured: a departure only from the node
// holding the peer, a heartbeat only from the node it names.
func TestGoneOnlyFromOwner(t *testing.T) {
	nodes := startCluster(t, 8)
	a, b := nodes[0], nodes[1]
	carol, _ := join(t, b.url, "room1", "carol")
	testenv.Eventually(t, 20*time.Second, "a to see carol", func() bool { return len(a.sig.Members()) == 1 })
	nc := attacker(t, a)
	m := signer{id: "m@00000001", key: messageKey(testSecret, "m@00000001")}
	left, _ := json.Marshal(event{Kind: kindLeft, Room: "room1", ID: carol.id, Node: m.id})
	gone, _ := json.Marshal(heartbeatWire{Kind: kindHeartbeat, Node: b.node.ID(), Name: "b", Gone: true})
	before := rejected(a)
	for _, msg := range []*nats.Msg{m.msg(subjRooms, "", left, true), m.msg(subjHeartbeat, "", gone, true)} {
		if err := nc.PublishMsg(msg); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 20*time.Second, "a to reject both", func() bool { return rejected(a)-before >= 2 })
	if len(a.sig.Members()) != 1 || a.node.AliveNodes() != 3 {
		t.Errorf("a after m's claims: members %+v, %d nodes alive; want carol and 3", a.sig.Members(), a.node.AliveNodes())
	}
}

// TestVouchBounded: a node holding the secret says in its heartbeats
// that it has just heard c, which stopped, and a node nobody has heard
// of. Another node's word only keeps alive a node this one has heard
// itself and that has not said it stopped: c stays gone (its names
// stay free) and the unknown node stays unknown.
func TestVouchBounded(t *testing.T) {
	nodes := startCluster(t, 8)
	a, b, c := nodes[0], nodes[1], nodes[2]
	cID := c.node.ID()
	c.stop(t)
	testenv.Eventually(t, 10*time.Second, "a and b to take c for gone", func() bool {
		return a.node.AliveNodes() == 2 && b.node.AliveNodes() == 2
	})
	nc := attacker(t, a)
	m := signer{id: "m@00000001", key: messageKey(testSecret, "m@00000001")}
	const ghost = "ghost@00000002"
	testenv.Eventually(t, 20*time.Second, "a to hear m", func() bool {
		hb, _ := json.Marshal(heartbeatWire{Kind: kindHeartbeat, Node: m.id, Name: "m", Hears: map[string]int64{cID: 0, ghost: 0}})
		if err := nc.PublishMsg(m.msg(subjHeartbeat, "", hb, true)); err != nil {
			t.Fatal(err)
		}
		return knows(t, a, m.id)
	})
	for _, s := range a.node.Status(t.Context()).Nodes {
		switch s.ID {
		case cID:
			if s.Alive {
				t.Errorf("a takes c for alive on m's word after c stopped")
			}
		case ghost:
			t.Errorf("a took %s, known only from m's word, for a node: %+v", ghost, s)
		}
	}
}
