// Package udprelay is icebox's UDP data plane: on Linux (amd64, arm64) it
// relays TURN traffic for UDP clients (RFC 8656) beside pion/turn, which
// keeps the control plane (Allocate, Refresh, CreatePermission,
// ChannelBind, authentication, timers). Elsewhere New returns
// ErrUnavailable and the caller relays through pion/turn's own sockets.
//
// # Why
//
// pion/turn gives each allocation a goroutine blocked on its relay socket
// and reads listener sockets through Go's poller, so every datagram costs
// a trip through Go's scheduler, and under load that costs more than the
// relaying. Here listener and relay sockets are plain non-blocking
// sockets outside Go's poller, served by a few loops.
//
// # The loop model
//
// A Relay runs Config.Loops loops. Each loop is one goroutine that waits
// in epoll_wait, a blocking system call, on the thread it runs on; that
// is its only wait. A loop owns an epoll descriptor and an eventfd (its
// stop signal), both closed when the Relay closes after the loop has
// returned. Adopt gives each UDP listener socket (one SO_REUSEPORT socket
// each) to one loop, in turn; the relayed transport addresses of the
// allocations made through a listener socket go to the same loop, so one
// loop serves both directions of an allocation.
//
// A loop drains each ready socket with recvmmsg, up to 4 batches of 32
// messages per wake-up, into buffers of its own. Where the kernel has
// UDP GRO (UDP_GRO, probed at New; Config.NoGRO), a message may hold a
// run of datagrams from one sender, coalesced by the kernel, which the
// loop splits by the segment size in its control data (nextSegment).
// Each datagram is then judged on its own:
//
//   - On a listener socket, ChannelData (RFC 8656 §12.4) from a client
//     with an allocation, on a bound channel, goes to the peer from the
//     relay socket (§12.5). Other ChannelData from a client with an
//     allocation, and well-formed STUN messages (WellFormedSTUN), are
//     copied to a control queue for pion/turn: one for clients with an
//     allocation, served first, and one for the rest, each of
//     ControlQueue datagrams (Counters.DroppedControl past it). Anything
//     else is dropped before any queue (Counters.DroppedNotSTUN).
//     pion/turn reads the queues through Guarded, whose Guard
//     authenticates and checks peers before pion/turn sees a request.
//   - On a relay socket, a datagram from a peer with a permission goes to
//     the client through the listener socket, framed as ChannelData when
//     the peer has a channel binding (§12.5) or else as a Data indication
//     (§11.4): the header is written beside the payload, which is sent
//     from where it was received.
//
// What a receive batch relays is gathered (sendQueue) and sent when the
// batch is done: per socket it leaves by, in the order received, with one
// sendmmsg. Where the kernel has UDP GSO (UDP_SEGMENT; Config.NoGSO),
// consecutive datagrams to one destination of one size (the last may be
// shorter), up to 64, go as one message that the kernel cuts into
// datagrams; a GSO run the kernel refuses is sent again datagram by
// datagram, and EIO turns GSO off for good. Counters.Occupancy shows how
// full the receive and send calls were.
//
// A busy loop, one whose last wait found work, sleeps Config.BatchWindow
// before it polls again, so that one wake-up serves what arrived meanwhile
// instead of one datagram; a loop that finds nothing waits in epoll_wait.
//
// Nothing is allocated per relayed datagram: buffers, iovecs and message
// headers belong to the loop; an allocation's permissions and channel
// bindings are a copy-on-write state read through an atomic pointer,
// replaced (never changed) by the events the control plane forwards from
// pion/turn's EventHandler (AllocationCreated, Permission, Channel); the
// bitrate cap is a lock-free token bucket. Only control datagrams are
// copied (into pooled buffers).
//
// A loop never waits for room in a socket buffer: a datagram that does
// not fit is dropped and counted (Counters.DroppedSendBufferToPeers,
// DroppedSendBufferToClients), as the network would drop it, so one slow
// client cannot stall the other allocations of its loop.
//
// # Descriptors
//
// Every socket is a loopFD, which owns its descriptor: it is used only
// under the socket's read lock and closed once, under its write lock,
// after which it reads -1. A relay socket is closed by pion/turn (the
// allocation's Close) or by Relay.Close; a listener socket by pion/turn
// (Close on the PacketConn Adopt returned) or by Relay.Close; whichever
// comes first closes it, the other finds it closed. A loop sends to a
// client through the listener's loopFD, so it never writes to a
// descriptor after its close, when the kernel may have reused its number
// for another socket. Adopt duplicates the listener's descriptor and
// closes the net.PacketConn it was given.
//
// # The pion/turn coupling
//
// pion/turn starts a reader per allocation that would read the relay
// socket; the relay socket's ReadFrom ends that goroutine instead
// (endPionReader, the one place that depends on pion/turn's internals).
// This package was checked against pion/turn PionTurnVersion; the doc of
// endPionReader lists what to re-check on an upgrade, and turnsrv's
// TestPionCoupling checks it against a real server.
package udprelay
