// Package signaling is icebox's WebSocket signaling server, protocol v1
// (docs/protocol.md): peers join rooms, learn who else is there, and relay
// opaque signal payloads (offers, answers, ICE candidates, call control)
// to one another. The server sets "from" on every relayed signal. The
// messages are signaling/wire's types; signaling/sigclient is the Go
// client.
//
// # Connections and peers
//
// A conn (conn.go) is one WebSocket: its reader and writer, its limits,
// its timers and its queue. A peer (peer.go) is a member of a room: id,
// name, resume token, and the queue its messages go to. Each conn speaks
// for one peer. When a conn drops, its peer stays, suspended, its queue
// held; a conn that resumes it takes the same peer over. The join rules
// are admit (admit.go).
//
// # Goroutines and timers
//
// Each is counted in Server.tasks from the moment it is started (a
// timer: scheduled) until it returns (a timer: fires or is stopped), so
// Server.Close can wait for all of them.
//
//   - reader (conn.run): one per connection, from the upgrade. Ends
//     when a read fails: the peer's close frame after ours, the socket
//     closed, or the closeGrace read deadline set by closeWith.
//   - writer (conn.flush): runs only while messages are queued. Ends
//     when the outbox is empty, at once when the connection is closing,
//     or at a failed write (writeWait deadline).
//   - finish (conn.finish): started once, by closeWith. Writes what
//     is queued and the close frame, all within one writeWait.
//   - expire (hub.expire): started by an enqueue of a room event that
//     does not fit a suspended peer's outbox even with every signal held
//     for it dropped (outbox.go: the held bounds); takes the hub lock
//     and returns.
//   - timers (Config.Clock): the join timer, the pinger and the
//     credential refresh of each connection, stopped by closeWith and
//     never started after it (checked under conn.mu); the resume
//     window of each suspended peer, stopped by a resume or hub.close;
//     the pause before a wrong password is answered, stopped when the
//     connection closes; an auto room's return to a mesh and the end of
//     its SFU participants after one (automedia.go), stopped when the
//     room closes or moves, or by hub.close.
//   - joinSFU: one per member of an auto room that moves to the SFU;
//     makes its participant and returns (automedia.go).
//
// Close first closes the hub (no new connections or suspensions), then
// closes every connection, which stops its timers and starts its finish.
//
// # Lock order
//
// A goroutine holding one of these locks takes only locks listed after
// it:
//
//	conn.wmu → conn.mu → tasks.mu
//	conn.wmu → outbox.mu
//	hub.mu     → conn.mu → tasks.mu
//	hub.mu     → outbox.mu
//	hub.mu     → peer.sfuMu
//
// (conn.mu → tasks.mu: closeWith stops timers and starts finish under
// conn.mu; hub.mu → conn.mu: an enqueue under the hub lock may close a
// slow client.) Starting or stopping a timer may also take the Clock's own
// lock, which must be a leaf: a Clock runs no callback while holding it.
//
// On a node of a cluster (Config.Cluster), the hub calls the Cluster's
// Joined, Left, Signal and Resumed under hub.mu: they only queue (their
// queue's lock is a leaf). Admit and Resume, which wait for other nodes,
// are called with no lock held; the Cluster calls the Server's Remote*,
// NodeGone, HandOver and HasLocal methods, which take hub.mu, from its own
// goroutines and never under a lock of its own.
//
// hub.mu and conn.wmu are never held together: the hub enqueues, and
// enqueue starts a writer goroutine rather than write. outbox.mu,
// tasks.mu, guessThrottle.mu, ipCount.mu and Stats.mu are leaves: nothing
// is locked, no timer is started or stopped and no callback runs while
// one is held. No lock is held across a network write except
// conn.wmu, which only writers (flush, finish) hold; ping writes a
// control frame, which gorilla allows alongside a data write.
package signaling
