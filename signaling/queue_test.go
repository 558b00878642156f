package signaling

import (
	"fmt"
	"strings"
	"testing"
	"time"
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
func (c *wsClient) readUntil(typ string) (before []msg) {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		var m msg
		if err := c.conn.ReadJSON(&m); err != nil {
			c.t.Fatalf("read until %s: %v", typ, err)
		}
		if m["type"] == typ {
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

// TestSuspendedQueueAttack runs issue 24's attack: rooms of 7 peers that
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
				snd.send(msg{"type": "signal", "to": id, "data": bigSignal(i)})
			}
		}
	}
	// A sender's messages are handled in order: its pong comes after every
	// one of its signals has been queued or dropped.
	for _, snd := range senders {
		snd.send(msg{"type": "ping"})
		snd.readUntil("pong")
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
	waitUntil(t, "live queues written", func() bool { live, _, _ := s.QueuedBytes(); return live == 0 })
}
