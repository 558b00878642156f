package signaling

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/icebox-project/icebox/internal/testenv"
	"github.com/icebox-project/icebox/signaling/wire"
)

// heldBytes is what the server holds for suspended peers, counted from
// the queues themselves: in all, for the room most held for, and for the
// peer most held for.
func (s *Server) heldBytes() (total, inRoom, peer int) {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	rooms := map[*room]int{}
	for _, c := range s.hub.suspended {
		c.out.mu.Lock()
		n := 0
		for _, m := range c.out.q {
			n += len(m.b)
		}
		c.out.mu.Unlock()
		total += n
		rooms[c.room] += n
		peer = max(peer, n)
	}
	for _, n := range rooms {
		inRoom = max(inRoom, n)
	}
	return total, inRoom, peer
}

// readUntil reads until a message of type typ, within 30 s (under the
// race detector, tens of megabytes take a while), and returns those before.
func (c *wsClient) readUntil(typ string) (before []wire.Message) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		m, err := c.Receive(ctx)
		if err != nil {
			c.t.Fatalf("read until %s: %v", typ, err)
		}
		if m.MessageType() == typ {
			return before
		}
		before = append(before, m)
	}
}

// bigSignal is the data of a signal as large as protocol v1 allows: the
// whole message, "to" included, is just under MaxMessageSize.
func bigSignal(i int) msg {
	return msg{"n": i, "pad": strings.Repeat("x", MaxMessageSize-200)}
}

// TestSuspendedQueueAttack runs the held-queue attack: rooms of 7 peers that
// drop without a close frame (suspended for the resume window), and one
// sender per room that sends each of them signals of the largest size.
// Before queues were bounded in bytes, 7 rooms held 62 MB until the
// resume window ended.
func TestSuspendedQueueAttack(t *testing.T) {
	const rooms, victims, perVictim = 7, 7, 8 // 392 signals, 25 MB
	s, url := startSignaling(t, func(c *Config) { c.MaxPeersPerRoom = 8 })
	ids := make([][]string, rooms)
	for r := range rooms {
		for v := range victims {
			p := dial(t, url)
			p.join(fmt.Sprintf("room%d", r), fmt.Sprintf("victim%d", v))
			ids[r] = append(ids[r], p.id)
			p.drop()
		}
	}
	waitSuspended(t, s, rooms*victims)
	senders := make([]*wsClient, rooms)
	for r := range rooms {
		senders[r] = dial(t, url)
		senders[r].join(fmt.Sprintf("room%d", r), "sender")
	}
	for i := range perVictim {
		for r, snd := range senders {
			for _, id := range ids[r] {
				snd.signal(id, bigSignal(i))
			}
		}
	}
	// A sender's messages are handled in order: its pong comes after every
	// one of its signals has been queued or dropped.
	for _, snd := range senders {
		snd.send(&wire.Ping{})
		snd.readUntil(wire.TypePong)
	}
	total, room, peer := s.heldBytes()
	if total > MaxServerHeldBytes || room > MaxRoomHeldBytes || peer > MaxHeldBytes {
		t.Errorf("held for %d suspended peers: %d bytes, at most %d for a room, %d for a peer; want at most %d, %d, %d",
			rooms*victims, total, room, peer, MaxServerHeldBytes, MaxRoomHeldBytes, MaxHeldBytes)
	}
	// The counter the bounds are enforced on is the queues' own sum.
	_, held, dropped := s.QueuedBytes()
	t.Logf("held %d bytes (room at most %d, peer at most %d); %d signals dropped", total, room, peer, dropped)
	if held != int64(total) || dropped == 0 {
		t.Errorf("held counter %d, dropped %d; want %d (the queues' sum), some dropped", held, dropped, total)
	}
	// Once the window ends nothing is held, and nothing stays counted.
	clockOf(s).Advance(DefaultResumeWindow)
	waitSuspended(t, s, 0)
	if _, held, _ := s.QueuedBytes(); held != 0 {
		t.Errorf("after the resume window: %d bytes held, want 0", held)
	}
	testenv.Eventually(t, 5*time.Second, "live queues written", func() bool { live, _, _ := s.QueuedBytes(); return live == 0 })
}

// TestHeldSignalsDropOldest: a suspended peer's queue keeps the newest
// signals that fit in MaxHeldBytes; the sender of each one dropped is
// told, naming the peer; the resumed peer gets the rest, in order, and
// nothing else.
func TestHeldSignalsDropOldest(t *testing.T) {
	const sent = 7
	s, url := startSignaling(t, nil)
	a, b := dial(t, url), dial(t, url)
	a.join("r", "alice")
	token := b.join("r", "bob").Resume
	expect[*wire.PeerJoined](a)
	b.drop()
	waitSuspended(t, s, 1)
	// Each signal takes just under MaxMessageSize in the queue: the
	// queue keeps 4 (MaxHeldBytes), the newest.
	const kept = 4
	for i := range sent {
		a.signal(b.id, bigSignal(i))
	}
	a.send(&wire.Ping{})
	got := a.readUntil(wire.TypePong)
	if len(got) != sent-kept {
		t.Fatalf("sender got %v, want %d errors signal-dropped", got, sent-kept)
	}
	for _, m := range got {
		if e, ok := m.(*wire.Error); !ok || e.Code != wire.CodeSignalDropped || e.To != b.id {
			t.Errorf("sender got %#v, want an error signal-dropped to %s", m, b.id)
		}
	}

	b2 := dial(t, url)
	b2.send(&wire.Join{Room: "r", Name: "bob", Resume: token})
	if w := expect[*wire.Welcome](b2); w.ID != b.id || !w.Resumed {
		t.Fatalf("resume: got %v", w)
	}
	for want := sent - kept; want < sent; want++ {
		m := expect[*wire.Signal](b2)
		if n := dataOf(t, m)["n"]; n != float64(want) || m.From != a.id {
			t.Errorf("held signal: got n=%v from %v, want n=%d from %s", n, m.From, want, a.id)
		}
	}
	b2.alive() // nothing else was held
	a.alive()  // and alice was told nothing more
}

// TestSuspendedPeersCountPerAddress: a suspended peer keeps its client
// address's place in MaxConnectionsPerIP until it resumes or its window
// ends, so dropping connections does not let an address hold more peers
// (and their queues) than the limit.
func TestSuspendedPeersCountPerAddress(t *testing.T) {
	s, url := startSignaling(t, func(c *Config) { c.MaxConnectionsPerIP = 3; c.MaxPeersPerRoom = 8 })
	refused := func(what string) {
		t.Helper()
		if got := dialStatus(t, url, nil); got != http.StatusTooManyRequests {
			t.Fatalf("%s: got %d, want 429", what, got)
		}
	}
	a, b := dial(t, url), dial(t, url)
	a.join("r", "alice")
	token := b.join("r", "bob").Resume
	expect[*wire.PeerJoined](a)
	b.drop()
	waitSuspended(t, s, 1)
	c := dial(t, url)
	c.alive()
	refused("a 4th connection beside 2 open and 1 suspended")

	// The resume takes bob's place back: his old one is free.
	c.send(&wire.Join{Room: "r", Name: "bob", Resume: token})
	if w := expect[*wire.Welcome](c); !w.Resumed {
		t.Fatalf("resume: got %v", w)
	}
	d := dial(t, url)
	d.alive()
	refused("a 4th connection beside 3 open")

	// A suspension that ends with the window frees its place too.
	d.join("r", "dave")
	expect[*wire.PeerJoined](a)
	d.drop()
	waitSuspended(t, s, 1)
	refused("a 4th connection beside 2 open and 1 suspended")
	clockOf(s).Advance(DefaultResumeWindow)
	expect[*wire.PeerLeft](a)
	dial(t, url).alive()
}

// TestLiveQueueBytes: a live queue takes messages up to MaxQueuedBytes;
// with the server's live queues past MaxServerQueuedBytes, only up to
// busyQueuedBytes.
func TestLiveQueueBytes(t *testing.T) {
	msg := make([]byte, MaxMessageSize)
	for _, tt := range []struct {
		name       string
		serverLive int64
		want       int // messages taken
	}{
		{"server under its bound", 0, MaxQueuedBytes / MaxMessageSize},
		{"server past its bound", MaxServerQueuedBytes, busyQueuedBytes / MaxMessageSize},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var srv queueBytes
			srv.live.Store(tt.serverLive)
			o := newOutbox(&srv)
			n := 0
			for {
				_, ok, dropped := o.push(queued{b: msg, signal: true})
				if len(dropped) != 0 {
					t.Fatalf("a live queue dropped %d messages", len(dropped))
				}
				if !ok {
					break
				}
				n++
			}
			if n != tt.want {
				t.Errorf("took %d messages of %d bytes, want %d", n, MaxMessageSize, tt.want)
			}
			if got := srv.live.Load() - tt.serverLive; got != int64(n*MaxMessageSize) {
				t.Errorf("counted %d bytes, want %d", got, n*MaxMessageSize)
			}
			o.take()
			if got := srv.live.Load(); got != tt.serverLive {
				t.Errorf("after take: %d bytes counted, want %d", got, tt.serverLive)
			}
		})
	}
}
