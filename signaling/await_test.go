package signaling

import (
	"io"
	"log/slog"
	"testing"
	"testing/synctest"
	"time"
)

// awaitInBubble starts awaitKnown for ids of room r on s and returns a
// channel closed when it returns.
func awaitInBubble(s *Server, ids ...string) <-chan struct{} {
	returned := make(chan struct{})
	go func() {
		s.hub.awaitKnown("r", ids)
		close(returned)
	}()
	return returned
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestAwaitKnownWakesOnAnnouncement: a join waiting for peers the
// cluster admitted before it returns when the last of them is announced,
// at that instant: it waits on the announcement, not on a clock. (It
// polled the wall clock every 2 ms: in a bubble, where time only moves
// when every goroutine waits, it was still asleep after the
// announcement.)
func TestAwaitKnownWakesOnAnnouncement(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		start := time.Now()
		returned := awaitInBubble(s, "B", "C")
		synctest.Wait()
		if isClosed(returned) {
			t.Fatal("awaitKnown returned before B and C were known")
		}
		s.RemoteJoined("r", "B", "bob", "vm2")
		synctest.Wait()
		if isClosed(returned) {
			t.Fatal("awaitKnown returned with C still unknown")
		}
		s.RemoteJoined("r", "C", "carol", "vm3")
		synctest.Wait()
		if !isClosed(returned) {
			t.Fatal("awaitKnown still waiting after B and C were announced")
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("awaitKnown took %v of the clock, want 0", d)
		}
		if n := s.tasks.count(); n != 0 {
			t.Errorf("%d timers left running, want 0", n)
		}
	})
}

// TestAwaitKnownLimit: a peer never announced (it left meanwhile) holds
// the join for awaitAnnounce on the server's clock, no longer; a closing
// hub ends the wait at once.
func TestAwaitKnownLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		returned := awaitInBubble(s, "gone")
		time.Sleep(awaitAnnounce - time.Nanosecond)
		synctest.Wait()
		if isClosed(returned) {
			t.Fatalf("awaitKnown returned before %v", awaitAnnounce)
		}
		time.Sleep(time.Nanosecond)
		synctest.Wait()
		if !isClosed(returned) {
			t.Fatalf("awaitKnown still waiting at %v", awaitAnnounce)
		}

		returned = awaitInBubble(s, "gone")
		synctest.Wait()
		s.hub.close()
		synctest.Wait()
		if !isClosed(returned) {
			t.Fatal("awaitKnown still waiting after the hub closed")
		}
		if n := s.tasks.count(); n != 0 {
			t.Errorf("%d timers left running, want 0", n)
		}
	})
}
