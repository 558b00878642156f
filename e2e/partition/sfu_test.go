//go:build linux

package partition

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/icebox-project/icebox/internal/sfutest"
	"github.com/icebox-project/icebox/internal/testenv"
)

// sfuFailover is how long after the host's SIGKILL the members on the
// other nodes must have media again (docs/GUARANTEES.md): DeadAfter and
// one heartbeat for the others to take the host for gone, then a new
// connection to the successor's SFU.
const sfuFailover = 10 * time.Second

// TestSFURoomSurvivesHost: an SFU room with members on all three nodes
// of a cluster. The first joiner's node (a) hosts its SFU: every
// member's media goes to a's address, and each receives the others'
// cameras. Node a is SIGKILLed. Within sfuFailover the members on b and
// c receive each other's video again, from the successor's SFU, and a
// member of a who comes back on b receives both.
func TestSFURoomSurvivesHost(t *testing.T) {
	if testing.Short() {
		t.Skip("three icebox processes and a node's death")
	}
	c := startClusterWith(t, "stage: {media: sfu}", "sfu: {}")
	a, b, cc := c.nodes[0], c.nodes[1], c.nodes[2]
	dial := func(n *node, name string) *sfutest.Peer {
		t.Helper()
		var conn net.PacketConn
		if err := n.host.Do(func() (err error) {
			conn, err = net.ListenPacket("udp4", netip.AddrPortFrom(n.host.Addr, 0).String())
			return err
		}); err != nil {
			t.Fatal(err)
		}
		p, w := sfutest.DialWith(t, "ws://"+net.JoinHostPort(n.host.Addr.String(), "8080")+"/ws", "stage", name,
			sfutest.Options{Dialer: &websocket.Dialer{NetDialContext: n.host.DialContext, HandshakeTimeout: 5 * time.Second}, ICEConn: conn})
		if w.Media != "sfu" {
			t.Fatalf("%s on node %s: welcome media %q, want sfu", name, n.name, w.Media)
		}
		p.PublishSimulcast()
		return p
	}
	pa := dial(a, "ann") // the first joiner: a hosts the room's SFU
	pb := dial(b, "ben")
	pc := dial(cc, "cat")
	peers := []*sfutest.Peer{pa, pb, pc}
	for _, p := range peers {
		for _, o := range peers {
			if o != p {
				testenv.Eventually(t, 30*time.Second, fmt.Sprintf("%s receives %s's video through a's SFU", p.ID, o.ID),
					func() bool { return p.VideoFrom(o.ID) > 20 })
			}
		}
	}
	for _, p := range []*sfutest.Peer{pb, pc} {
		if got, want := p.SelectedRemote(), a.host.Addr.String(); got != want {
			t.Errorf("%s's media goes to %q, want the host's address %s", p.ID, got, want)
		}
	}

	before := map[*sfutest.Peer]int64{pb: pb.VideoFrom(pc.ID), pc: pc.VideoFrom(pb.ID)}
	killed := time.Now()
	a.signal(t, syscall.SIGKILL)
	// Media again: each receives video of the other on a connection made
	// after the renew (the old one's packets stopped with a).
	again := func(p, from *sfutest.Peer) bool {
		return p.Renewals.Load() > 0 && p.VideoFrom(from.ID) > before[p]+5
	}
	testenv.EventuallyWhy(t, sfuFailover, "ben and cat receive each other's video again", func() string {
		if again(pb, pc) && again(pc, pb) {
			return ""
		}
		return fmt.Sprintf("ben: %d renewals, %d packets of cat's (%d before), %s; cat: %d renewals, %d packets of ben's (%d before), %s",
			pb.Renewals.Load(), pb.VideoFrom(pc.ID), before[pb], pb.State(), pc.Renewals.Load(), pc.VideoFrom(pb.ID), before[pc], pc.State())
	})
	t.Logf("media again %.1f s after the host's SIGKILL; ben's media goes to %s, cat's to %s",
		time.Since(killed).Seconds(), pb.SelectedRemote(), pc.SelectedRemote())
	if x, y := pb.SelectedRemote(), pc.SelectedRemote(); x != y || x == a.host.Addr.String() {
		t.Errorf("after the move ben's media goes to %s and cat's to %s: want one successor, not a", x, y)
	}

	// ann, cut off with a, comes back on b.
	pa2 := dial(b, "ann")
	for _, o := range []*sfutest.Peer{pb, pc} {
		testenv.Eventually(t, 30*time.Second, "ann, back on b, receives "+o.ID+"'s video",
			func() bool { return pa2.VideoFrom(o.ID) > 20 })
		testenv.Eventually(t, 30*time.Second, o.ID+" receives ann's video again",
			func() bool { return o.VideoFrom(pa2.ID) > 20 })
	}
}
