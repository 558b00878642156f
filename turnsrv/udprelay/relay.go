package udprelay

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/pion/stun/v3"
	"github.com/pion/turn/v4"

	"github.com/icebox-project/icebox/internal/stunwire"
)

// PionTurnVersion is the pion/turn release this package was checked
// against (go.mod pins the same). The relay depends on what pion/turn
// does around a relay socket; see the package doc for what to re-check
// before changing it. TestPionVersionPinned fails when go.mod names
// another version.
const PionTurnVersion = "v4.1.4"

// ErrUnavailable is returned by New where the platform has no fast path
// (anything but Linux on amd64 or arm64): the caller relays through
// pion/turn's own sockets instead.
var ErrUnavailable = errors.New("udprelay: no fast relay path on this platform")

// errNotUDP and errNotIPv4 are returned by WriteTo for addresses a relay
// socket cannot send to.
var (
	errNotUDP  = errors.New("udprelay: address is not UDP")
	errNotIPv4 = errors.New("udprelay: peer is not IPv4")
	errNoFD    = errors.New("udprelay: listener has no file descriptor")
	errNoPort  = errors.New("udprelay: no free relay port")
	errNetwork = errors.New("udprelay: relayed addresses are UDP over IPv4")
	errTCP     = errors.New("udprelay: TCP relayed addresses are not supported")
)

// Relay is the UDP data plane beside pion/turn's control plane: it owns
// UDP listener sockets and the relayed transport addresses of the
// allocations made through them, and learns about allocations,
// permissions and channel bindings from pion/turn's events, which the
// control plane forwards to it. Its methods are safe for concurrent use.
type Relay interface {
	// Adopt takes over a UDP listener socket: pc is closed (its
	// descriptor now belongs to the relay) and the returned PacketConn is
	// what pion/turn reads control datagrams from, through the Guard;
	// the returned generator hands out relayed addresses served by the
	// same loop. Closing the returned PacketConn closes the socket.
	Adopt(pc net.PacketConn) (net.PacketConn, turn.RelayAddressGenerator, error)
	// AllocationCreated tells the relay that client, through the listener
	// at local, holds the allocation at relayed (pion/turn's
	// OnAllocationCreated). Allocations it does not serve are ignored.
	AllocationCreated(client, local, relayed net.Addr)
	// Permission installs (add) or removes a permission for peer on the
	// allocation at relayed (RFC 8656 §9; OnPermissionCreated/Deleted).
	Permission(relayed net.Addr, peer net.IP, add bool)
	// Channel binds number to peer on the allocation at relayed, or
	// removes that binding (RFC 8656 §12; OnChannelCreated/Deleted).
	Channel(relayed, peer net.Addr, number uint16, add bool)
	// PeersChanged tells the relay that the peer filter (PeerAllowed,
	// PeerAddrAllowed) changed: each allocation drops the permissions and
	// channel bindings the filter now refuses before it relays its next
	// datagram (the cost on the path: one atomic load per batch).
	PeersChanged()
	// Loops returns how many relayed addresses each relay loop serves,
	// one entry per loop (empty: no loops).
	Loops() []int
	// Close closes every socket the relay still owns and stops its loops.
	// It returns nil, and is safe to call more than once.
	Close() error
}

// Guard inspects a datagram before pion/turn sees it (turnsrv's
// authentication and peer checks). Admit is called with b from src to
// the listener at local; pass: pion/turn handles b[:n]; otherwise reply,
// when not nil, is sent back to src. m is scratch space owned by the
// calling reader.
type Guard interface {
	Admit(m *stun.Message, b []byte, src, local net.Addr) (reply []byte, n int, pass bool)
}

// Counters are the relay counters, defined once: the fast path adds to
// them, turnsrv.Stats embeds them (pion/turn's own path adds to the same
// ones there) and the daemon exports them. All are monotonic. Safe for
// concurrent use; the zero value is ready.
type Counters struct {
	// PacketsFromPeers and BytesFromPeers count datagrams received on
	// relayed transport addresses (peer → client direction, before the
	// permission check); PacketsToPeers and BytesToPeers count datagrams
	// sent from them (client → peer). Bytes are UDP payload bytes.
	PacketsFromPeers, BytesFromPeers atomic.Int64
	PacketsToPeers, BytesToPeers     atomic.Int64
	// DroppedToPeers and DroppedFromPeers count datagrams dropped because
	// they were over their allocation's bitrate cap
	// (turnsrv.Config.MaxBitratePerAllocation, Config.Bitrate here), by
	// direction. They are counted in PacketsFromPeers but not in
	// PacketsToPeers.
	DroppedToPeers, DroppedFromPeers atomic.Int64
	// DroppedControl counts datagrams from clients for the control plane
	// (STUN requests and indications) dropped because ControlQueue per
	// queue per listener socket were already waiting for pion/turn
	// (Linux).
	DroppedControl atomic.Int64
	// DroppedNotSTUN counts datagrams at a UDP listener that were neither
	// a well-formed STUN message (WellFormedSTUN) nor ChannelData from a
	// client with an allocation, dropped before they reach the control
	// plane (Linux), or that turnsrv's guard dropped as neither ChannelData
	// nor a STUN message (framing.go's packetKind) where pion/turn reads
	// the socket itself; and ChannelData frames over TCP and TLS that
	// pion/turn would frame as STUN, dropped (turnsrv's ErrAmbiguousFrame).
	DroppedNotSTUN atomic.Int64
	// DroppedPeerDenied counts datagrams to or from a peer the peer filter
	// refuses at that datagram: a Send indication or ChannelData to a port
	// of the server's own address that is not a relay port, under a
	// permission granted for the address (RFC 8656 §9 permissions ignore
	// the port), and either way a peer a reload denied after its
	// permission or channel was made.
	DroppedPeerDenied atomic.Int64
	// DroppedSendBufferToPeers and DroppedSendBufferToClients count
	// datagrams dropped because the socket they were to leave by had a
	// full send buffer, by direction (client → peer, peer → client): the
	// relay loops never wait for room (Linux).
	DroppedSendBufferToPeers, DroppedSendBufferToClients atomic.Int64
	// Occupancy counts datagrams per receive and send call of the relay
	// loops (Linux).
	Occupancy Occupancy
}

// Config configures a Relay. Zero values are noted per field.
type Config struct {
	// RelayIP is the advertised IPv4 address of relayed transport
	// addresses (XOR-RELAYED-ADDRESS). Required.
	RelayIP netip.Addr
	// MinPort and MaxPort bound relayed ports, inclusive. Required.
	MinPort, MaxPort uint16
	// Loops is the number of relay loops (threads waiting in epoll_wait).
	// Zero: 1.
	Loops int
	// Guard sees every control datagram before pion/turn. Required.
	Guard Guard
	// PeerAllowed judges a peer's address and port at send time (a
	// permission covers an address, not a port: RFC 8656 §9). Nil:
	// every peer is allowed.
	PeerAllowed func(netip.AddrPort) bool
	// PeerAddrAllowed judges a permission's peer address after
	// PeersChanged (a permission covers an address whatever the port).
	// Nil: every address is allowed.
	PeerAddrAllowed func(netip.Addr) bool
	// Bitrate returns the cap, in bits per second each way, for an
	// allocation being created; <= 0 or a nil func: no cap.
	Bitrate func() int64
	// Counters receives the relay's counts. Nil: counters of its own.
	Counters *Counters
	// Logger receives the relay's few logs. Nil: slog.Default().
	Logger *slog.Logger
	// NoGSO and NoGRO keep UDP segmentation offload (UDP_SEGMENT, sends)
	// and generic receive offload (UDP_GRO, receives) off. False: each is
	// used where New's probe finds the kernel offers it; sends fall back
	// to sendmmsg of single datagrams, receives to recvmmsg of single
	// datagrams, and GSO turns itself off on a device that cannot
	// segment (EIO).
	NoGSO, NoGRO bool
	// BatchWindow is how long a busy loop sleeps before it takes what
	// arrived: a loop whose last wait returned work sleeps this long and
	// then polls, instead of waking for every datagram, so one wake-up
	// (a thread switch, the largest cost of a loop on a virtual machine)
	// serves more datagrams, at up to this much added latency under load.
	// A loop whose poll finds nothing waits for the next datagram as
	// usual, so a lone datagram is not delayed. Zero: DefaultBatchWindow;
	// negative: no window.
	BatchWindow time.Duration
}

// DefaultBatchWindow is Config.BatchWindow's default: a fraction of a
// millisecond, next to the tens of milliseconds of a WebRTC jitter
// buffer, that let the loops serve the video-like load of
// docs/BENCHMARKS.md with a third to a quarter of the wake-ups.
const DefaultBatchWindow = 200 * time.Microsecond

// ControlQueue is how many datagrams wait for pion/turn per listener
// socket in each of its two queues (from clients with an allocation, and
// from everyone else); past it they are dropped (Counters.DroppedControl),
// as a full socket buffer would.
const ControlQueue = 1024

// WellFormedSTUN reports whether b can be a STUN message (RFC 8489 §5):
// the two leading zero bits, the magic cookie, and a message length that
// is a multiple of 4 and matches the datagram. Anything else is dropped
// before it is queued for pion/turn, so a flood of junk cannot crowd out
// real requests.
func WellFormedSTUN(b []byte) bool {
	return len(b) >= 20 && b[0]&0xC0 == 0 && be32(b[4:8]) == stunwire.MagicCookie &&
		int(b[2])<<8|int(b[3]) == len(b)-20 && len(b)%4 == 0
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
