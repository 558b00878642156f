package cluster

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/icebox-project/icebox/internal/testenv"
	"github.com/icebox-project/icebox/signaling"
	"github.com/icebox-project/icebox/signaling/wire"
)

// stallRooms is a Rooms whose RemoteSignal blocks until release is
// closed: a node whose processing of other nodes' signals has stalled
// (its signaling server slow, say), while NATS keeps delivering.
type stallRooms struct {
	Rooms
	once    sync.Once
	stalled chan struct{} // closed at the first RemoteSignal
	release chan struct{}
}

func (s *stallRooms) RemoteSignal(room, from, to string, data json.RawMessage) (string, bool) {
	s.once.Do(func() { close(s.stalled) })
	<-s.release
	return s.Rooms.RemoteSignal(room, from, to, data)
}

// TestInboundFloodBounded: four peers on node a flood 64 KiB signals at
// a peer on node b, whose processing of them is stalled. What b holds of
// them stays within MaxInboundBytes, the signals past the bound are
// dropped and counted, and a room event arriving while the queue is full
// of signals is kept: b's other peer hears of the join once b catches up.
func TestInboundFloodBounded(t *testing.T) {
	st := &stallRooms{stalled: make(chan struct{}), release: make(chan struct{})}
	// DeadAfter is long: b, stalled, must not take a for gone while the
	// heartbeats wait in its queue.
	a := startNodeWith(t, "a", nil, 8, nodeOpts{deadAfter: time.Minute})
	seed := &url.URL{Scheme: "nats-route", Host: a.emb.RouteAddr().String()}
	b := startNodeWith(t, "b", []*url.URL{seed}, 8, nodeOpts{deadAfter: time.Minute,
		wrap: func(r Rooms) Rooms { st.Rooms = r; return st }})
	release := sync.OnceFunc(func() { close(st.release) })
	t.Cleanup(release) // before the nodes stop (cleanups run last first)
	logStatusOnFailure(t, a, b)
	testenv.Eventually(t, 60*time.Second, "two ready nodes", func() bool {
		return a.node.Ready() && b.node.Ready() && a.node.AliveNodes() == 2 && b.node.AliveNodes() == 2
	})

	bob, _ := join(t, b.url, "flood", "bob")
	watcher, _ := join(t, b.url, "flood", "watcher")
	expect[*wire.PeerJoined](bob)
	senders := make([]*wsPeer, 4)
	for i := range senders {
		senders[i], _ = join(t, a.url, "flood", fmt.Sprintf("s%d", i))
		for _, p := range []*wsPeer{bob, watcher} {
			expect[*wire.PeerJoined](p)
		}
	}
	// A signal of the largest size a client may send.
	pad := strings.Repeat("x", signaling.MaxMessageSize-200)
	sig := func(i int) *wire.Signal {
		return &wire.Signal{To: bob.id, Data: json.RawMessage(fmt.Sprintf(`{"i":%d,"pad":%q}`, i, pad))}
	}
	senders[0].send(sig(0))
	select {
	case <-st.stalled:
	case <-time.After(20 * time.Second):
		t.Fatal("b never applied the first signal")
	}
	const perSender = 100 // within the burst of the message rate
	for k := range perSender {
		for i, s := range senders {
			s.send(sig(1 + k*len(senders) + i))
		}
	}
	total := int64(1 + perSender*len(senders)) // 25 MiB
	testenv.Eventually(t, 60*time.Second, "b to take in or drop every signal", func() bool {
		return signalsAccounted(a, b) >= total
	})
	peak := inboundPeak(b)
	t.Logf("%d signals of %d KiB; b's inbound queue held at most %d bytes (%.1f MiB); %d signals dropped",
		total, signaling.MaxMessageSize>>10, peak, float64(peak)/(1<<20), inboundDropped(b))
	if peak > MaxInboundBytes {
		t.Fatalf("b held %d bytes from the cluster, want at most MaxInboundBytes %d", peak, MaxInboundBytes)
	}
	if inboundDropped(b) == 0 {
		t.Fatal("no signal dropped: the flood did not reach the bound, so it tested nothing")
	}
	// A join while b's queue is full of signals: kept, not dropped.
	carol, _ := join(t, a.url, "flood", "carol")
	testenv.Eventually(t, 20*time.Second, "carol's join in b's queue", func() bool {
		return inboundHolds(b, func(m *nats.Msg) bool {
			return m.Subject == subjRooms && strings.Contains(string(m.Data), carol.id)
		})
	})
	release()
	for {
		m := watcher.next()
		if pj, ok := m.(*wire.PeerJoined); ok && pj.ID == carol.id {
			break
		}
		if _, ok := m.(*wire.PeerLeft); ok {
			t.Fatalf("watcher got %v, want no departure", m)
		}
	}
	if got := b.node.Stats().DroppedIn()[kindJoined]; got != 0 {
		t.Fatalf("b dropped %d joined events, want 0", got)
	}
}

// signalsAccounted is the signals a's peers sent that a dropped, b
// dropped, or b holds (queued, or in hand: the stalled one).
func signalsAccounted(a, b *testNode) int64 {
	n := a.node.Stats().DroppedOut()[kindSignal] + a.node.Stats().PublishErrors() + b.node.Stats().DroppedIn()[kindSignal]
	for _, s := range b.node.subs {
		if d, err := s.Dropped(); err == nil {
			n += int64(d)
		}
	}
	q := &b.node.inq
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.inHand > 0 {
		n++
	}
	for _, it := range q.items {
		if it.v.Subject == subjNode(b.node.id) {
			n++
		}
	}
	return n
}

func inboundPeak(b *testNode) int64    { return int64(b.node.QueueBytes().InPeak) }
func inboundDropped(b *testNode) int64 { return b.node.Stats().DroppedIn()[kindSignal] }

// inboundHolds reports whether b's inbound queue holds a message f
// matches.
func inboundHolds(b *testNode, f func(*nats.Msg) bool) bool {
	q := &b.node.inq
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, it := range q.items {
		if f(it.v) {
			return true
		}
	}
	return false
}

// TestOutboundQueueBytes: with the sender stalled (nothing takes from
// the queue), a flood of the largest signals stops at the signals'
// share, the newest dropped; room events still fit the reserve; one
// that does not fit marks the queue lost, for the members sync.
func TestOutboundQueueBytes(t *testing.T) {
	var q queue[outMsg]
	q.init(MaxOutboundBytes, closeMarker)
	big := outMsg{subject: "icebox.node.x", data: make([]byte, signaling.MaxMessageSize), kind: kindSignal}
	kept := 0
	for range 4 * MaxOutboundBytes / signaling.MaxMessageSize {
		if q.push(big, big.size(), true, false) {
			kept++
		}
	}
	if now, _ := q.held(); now > MaxOutboundBytes-eventReserveBytes || kept == 0 {
		t.Fatalf("held %d bytes in %d signals, want at most %d", now, kept, MaxOutboundBytes-eventReserveBytes)
	}
	ev := outMsg{subject: subjRooms, data: make([]byte, 200), kind: kindJoined}
	if !q.push(ev, ev.size(), false, true) {
		t.Fatal("a room event was dropped with the signals' share full")
	}
	if q.takeLost() {
		t.Fatal("lost with nothing but signals dropped")
	}
	for q.push(ev, ev.size(), false, true) {
	}
	if now, peak := q.held(); now > MaxOutboundBytes || peak > MaxOutboundBytes {
		t.Fatalf("held %d (peak %d) bytes, want at most %d", now, peak, MaxOutboundBytes)
	}
	if !q.takeLost() {
		t.Fatal("a room event dropped, and the queue not marked lost")
	}
	// The oldest comes out first: the kept signals, then the events.
	if m, ok := q.next(); !ok || m.kind != kindSignal {
		t.Fatalf("got %v %v, want the first signal", m.kind, ok)
	}
}
