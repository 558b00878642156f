package signaling

import (
	"crypto/subtle"
	"fmt"

	"github.com/icebox-project/icebox/signaling/wire"
)

// joinRequest is what a join is judged on (admit).
type joinRequest struct {
	// current is the room the connection is in; nil when in none.
	current *room
	// room and name are the join's, checked and trimmed (roomname.Valid,
	// cleanName).
	room, name string
	// password is the join's; roomPassword the room's, "" for none.
	password, roomPassword string
}

// admit applies protocol v1's join rules (docs/protocol.md, "Error
// codes") to j, against r, the room as this node sees it (nil: not open
// here), with open rooms open on this node. The first rule broken wins,
// in this order:
//
//   - a connection already in a room: wire.CodeBadMessage;
//   - a room password that does not match (compared in constant time):
//     wire.CodeBadPassword;
//   - a room not open yet, with lim.maxRooms (> 0) rooms open:
//     wire.CodeRoomLimit;
//   - lim.maxPeers peers in the room, here and on other nodes:
//     wire.CodeRoomFull;
//   - the name taken by a peer of the room: wire.CodeNameTaken.
//
// nil admits the join. On a cluster the other nodes have the last word
// on the last two (Cluster.Admit); this is the check a node makes alone.
// The caller holds hub.mu.
func admit(j joinRequest, r *room, open int, lim limits) *wire.Error {
	if j.current != nil {
		return &wire.Error{Code: wire.CodeBadMessage, Message: fmt.Sprintf("already joined to room %q; send leave first", j.current.name)}
	}
	if j.roomPassword != "" && subtle.ConstantTimeCompare([]byte(j.password), []byte(j.roomPassword)) != 1 {
		return &wire.Error{Code: wire.CodeBadPassword, Message: "wrong or missing password for room " + j.room}
	}
	if r == nil {
		if lim.maxRooms > 0 && open >= lim.maxRooms {
			return &wire.Error{Code: wire.CodeRoomLimit, Message: fmt.Sprintf("the server has its maximum of %d rooms; try again later", lim.maxRooms)}
		}
		return nil
	}
	if len(r.peers)+len(r.remote) >= lim.maxPeers {
		return errRoomFull(j.room, lim.maxPeers)
	}
	if _, taken := r.names[j.name]; taken {
		return errNameTaken(j.room, j.name)
	}
	return nil
}

func errRoomFull(room string, maxPeers int) *wire.Error {
	return &wire.Error{Code: wire.CodeRoomFull, Message: fmt.Sprintf("room %q is full (%d peers)", room, maxPeers)}
}

func errNameTaken(room, name string) *wire.Error {
	return &wire.Error{Code: wire.CodeNameTaken, Message: fmt.Sprintf("the name %q is taken in room %q; choose another", name, room)}
}

// newRoom is an empty room named name.
func newRoom(name string) *room {
	return &room{name: name, peers: map[string]*peer{}, names: map[string]string{}}
}
