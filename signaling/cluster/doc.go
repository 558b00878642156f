// Package cluster shares signaling rooms between icebox nodes over NATS:
// it implements signaling.Cluster. A room is one room whichever node a
// browser reaches.
//
// # NATS
//
// Each node embeds a nats-server (Embed) whose route listener takes the
// other nodes' routes over mutual TLS: certificates derived from the
// shared cluster secret (SecretTLS), or an operator's; or it uses an
// operator's NATS (cluster.nats_url). The node talks to it through one
// client connection.
//
// # Trust
//
// Three layers, each stopping what the one before lets through: mutual
// TLS on routes keeps anyone without the secret from joining the NATS
// cluster or learning the secret from a route (SecretTLS); every message
// between nodes is signed with a key derived from the secret and the
// sender's node id, so a client that reaches NATS without the secret can
// neither forge nor replay one, and a message is only ever taken for its
// signer's (auth.go); and what a message may change is bounded by who
// sent it: a node's heartbeat (and "gone") only from itself (another
// node's word that it heard it only keeps a known node alive, vouch.go),
// a peer's departure only from the node holding it, and a node's relay
// range only within the receiving node's own TURN peer rules
// (turnsrv.RelayPeers).
//
// # What travels where
//
//   - Admission: JetStream key-value bucket RoomsBucket holds one record
//     per room, its members (peer id, name, node). A join is admitted by a
//     compare-and-set of that record (Create, or Update at the revision
//     read), so of two joins of one name, or of the last place in a room,
//     on two nodes at the same instant exactly one succeeds.
//   - Room events (peer joined, left, moved by a resume) on core NATS
//     subject "icebox.rooms", which every node subscribes to: each
//     node keeps a view of every room's remote peers, so a welcome lists
//     peers on every node without asking anyone.
//   - Signals on "icebox.node.<node id>", to the node of the target peer
//     only; so do an SFU room's messages between a peer's node and the
//     node hosting the room's SFU (sfuhost.go), which the record names.
//   - Heartbeats on "icebox.hb" every HeartbeatInterval: who is alive,
//     with each node's relayed address and relay ports (for the TURN peer
//     filter), its peer count, and how long ago it heard each other node.
//     A node that neither this node nor any live node has heard for
//     DeadAfter is gone (vouch.go: a route cut between two nodes alone
//     ends no one): every other node drops its peers (peer-left to their
//     own peers) and gives their names and places back in the bucket. A
//     stopping node says so in a last heartbeat.
//   - Resume on another node: a request on "icebox.resume"; the node
//     holding the suspended peer hands it over (signaling.Server.HandOver)
//     with the messages queued for it.
//
// A node's announcements and signals leave through one queue and one
// connection, and a node receives room events, signals and heartbeats
// through one queue in arrival order, so a peer's join reaches every
// node before its first signal does (NATS keeps one publisher's order).
//
// # Queue bounds
//
// Both queues are bounded in bytes (queue.go): MaxOutboundBytes and
// MaxInboundBytes, 4 MiB each, of which signals may fill 3 MiB; the
// rest (eventReserveBytes) is kept for room events, heartbeats and
// members answers. Past its share the newest signal is dropped, counted
// (Stats.DroppedOut, Stats.DroppedIn) and logged at a bounded rate. A
// room event or members answer is dropped only past the whole bound (or
// by nats.go, when its 32-message hand-off channel overflows); the node
// then recovers once the queue has emptied, at most once per DeadAfter:
// the sender sends this node's peers to every live node, the receiver
// asks every live node for its own, as after a reconnect. nats.go's
// pending limits do not apply to the channel subscription that keeps
// the arrival order, so the node counts the bytes itself.
//
// # Node ids
//
// A node's id is its name, "@" and a random incarnation drawn at start:
// a node restarted under the same name is a new node, and the peers of
// its previous life leave once that life's heartbeats stop.
//
// # Goroutines
//
// Started by Start, ended by Close (or when Start's context ends): the
// sender (outbound queue → NATS), the receiver (inbound channel →
// signaling), the releaser (names and places given back in the bucket),
// the heartbeat and liveness ticker, and the start-up loop that waits for
// JetStream and loads the rooms. nats.go runs the resume handler.
package cluster
