package signaling

import (
	"testing"

	"github.com/icebox-project/icebox/signaling/wire"
)

// TestAdmit is the join rules, table by table: one refusal per broken
// rule, the first broken one winning, and peers on other nodes counted
// like local ones.
func TestAdmit(t *testing.T) {
	// room r holds alice here and bob on another node.
	roomOf := func(local, remote int) *room {
		r := newRoom("r")
		for i := range local {
			id, name := "L"+string(rune('a'+i)), []string{"alice", "amy", "ann"}[i]
			r.peers[id], r.names[name] = &peer{id: id, name: name}, id
		}
		for i := range remote {
			id, name := "R"+string(rune('a'+i)), []string{"bob", "ben", "bea"}[i]
			r.remote, r.names[name] = append(r.remote, remotePeer{id: id, name: name, node: "vm2"}), id
		}
		return r
	}
	other := newRoom("other")
	lim := limits{maxPeers: 3, maxRooms: 2}
	for _, tt := range []struct {
		name string
		j    joinRequest
		r    *room
		open int
		lim  limits
		want string // error code, "" admitted
	}{
		{"new room", joinRequest{room: "new", name: "x"}, nil, 1, lim, ""},
		{"room with a place", joinRequest{room: "r", name: "carol"}, roomOf(1, 1), 2, lim, ""},
		{"already in a room", joinRequest{current: other, room: "r", name: "carol"}, roomOf(1, 1), 2, lim, wire.CodeBadMessage},
		{"already in a room beats a wrong password", joinRequest{current: other, room: "r", name: "carol", password: "x", roomPassword: "p"}, roomOf(1, 1), 2, lim, wire.CodeBadMessage},
		{"right password", joinRequest{room: "r", name: "carol", password: "p", roomPassword: "p"}, roomOf(1, 1), 2, lim, ""},
		{"wrong password", joinRequest{room: "r", name: "carol", password: "q", roomPassword: "p"}, roomOf(1, 1), 2, lim, wire.CodeBadPassword},
		{"missing password", joinRequest{room: "r", name: "carol", roomPassword: "p"}, roomOf(1, 1), 2, lim, wire.CodeBadPassword},
		{"password prefix", joinRequest{room: "r", name: "carol", password: "pp", roomPassword: "p"}, roomOf(1, 1), 2, lim, wire.CodeBadPassword},
		{"wrong password beats a full room", joinRequest{room: "r", name: "alice", roomPassword: "p"}, roomOf(2, 1), 2, lim, wire.CodeBadPassword},
		{"room cap reached", joinRequest{room: "new", name: "x"}, nil, 2, lim, wire.CodeRoomLimit},
		{"room cap reached, open room", joinRequest{room: "r", name: "carol"}, roomOf(1, 0), 2, lim, ""},
		{"no room cap", joinRequest{room: "new", name: "x"}, nil, 1000, limits{maxPeers: 3}, ""},
		{"full with local peers", joinRequest{room: "r", name: "carol"}, roomOf(3, 0), 1, lim, wire.CodeRoomFull},
		{"full with remote peers", joinRequest{room: "r", name: "carol"}, roomOf(0, 3), 1, lim, wire.CodeRoomFull},
		{"full with both", joinRequest{room: "r", name: "carol"}, roomOf(2, 1), 1, lim, wire.CodeRoomFull},
		{"full beats a taken name", joinRequest{room: "r", name: "alice"}, roomOf(2, 1), 1, lim, wire.CodeRoomFull},
		{"name of a local peer", joinRequest{room: "r", name: "alice"}, roomOf(1, 1), 1, lim, wire.CodeNameTaken},
		{"name of a remote peer", joinRequest{room: "r", name: "bob"}, roomOf(1, 1), 1, lim, wire.CodeNameTaken},
		{"names are case-sensitive", joinRequest{room: "r", name: "Alice"}, roomOf(1, 1), 1, lim, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := admit(tt.j, tt.r, tt.open, tt.lim)
			got := ""
			if e != nil {
				got = e.Code
				if e.Message == "" {
					t.Errorf("refusal %s without a message", e.Code)
				}
			}
			if got != tt.want {
				t.Errorf("got %q (%v), want %q", got, e, tt.want)
			}
		})
	}
}
