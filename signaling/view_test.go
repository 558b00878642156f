package signaling

import (
	"io"
	"log/slog"
	"testing"
)

// shown is the remote peer room r shows under name here: its id, or ""
// when the name is free or its holder waits hidden.
func shown(s *Server, room, name string) string {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	r := s.hub.rooms[room]
	if r == nil {
		return ""
	}
	id := r.names[name]
	if rp, ok := r.remoteOf(id); !ok || rp.hidden {
		return ""
	}
	return id
}

// TestRemotePeerRenamed: a peer keeps its id across a leave and a join
// on one connection, so another node may announce, or list in a members
// answer, a peer this node knows under another name: its leave and
// rejoin were lost (a burst after a heal that the node could not take
// whole). The latest word holds. Here X waits hidden as "dave", a name Y
// holds; its node's answer says X is "frank": X is shown as frank. (It
// stayed hidden as dave, unseen by this node's peers for good: a
// partition schedule, split-move, found it.) A hidden peer whose name
// came free unseen is shown when announced again.
func TestRemotePeerRenamed(t *testing.T) {
	s := New(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	s.RemoteJoined("r", "Y", "dave", "c")
	s.RemoteJoined("r", "X", "dave", "b")
	if got := shown(s, "r", "dave"); got != "Y" {
		t.Fatalf("dave is shown as %q, want Y (X waits hidden)", got)
	}
	s.RemoteAdmitted("r", "X", "frank", "b")
	if got := shown(s, "r", "frank"); got != "X" {
		t.Errorf("after its node listed X as frank, frank is shown as %q, want X", got)
	}
	if got := shown(s, "r", "dave"); got != "Y" {
		t.Errorf("dave is shown as %q, want Y still", got)
	}

	// A hidden peer whose name came free without a departure here (its
	// holder's removal was for another reason) is shown when announced.
	s.RemoteJoined("r", "Z", "erin", "c")
	s.RemoteJoined("r", "W", "erin", "b")
	s.hub.mu.Lock()
	delete(s.hub.rooms["r"].names, "erin") // as a lost departure leaves it
	s.hub.rooms["r"].dropRemote("Z")
	s.hub.mu.Unlock()
	s.RemoteAdmitted("r", "W", "erin", "b")
	if got := shown(s, "r", "erin"); got != "W" {
		t.Errorf("erin is shown as %q, want W once announced again", got)
	}
}
