package turnsrv

import (
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/icebox-project/icebox/turnsrv/udprelay"
)

// Stats counts what the TURN server does, for metrics and tests. All
// counters are monotonic except the gauges AllocationsActive,
// PermissionsActive, ChannelBindingsActive and TCPConnectionsOpen. Safe
// for concurrent use.
type Stats struct {
	// AllocationsActive is the number of live allocations.
	AllocationsActive atomic.Int64
	// AllocationsCreated counts allocations created since start.
	AllocationsCreated atomic.Int64
	// QuotaRefusals counts Allocate requests refused with 486.
	QuotaRefusals atomic.Int64
	// QuotaRefusedIPv6Aggregate counts those of QuotaRefusals refused
	// because the client's IPv6 aggregate prefix (a /48 by default) held
	// its cap, Config.MaxAllocationsPerIP × Config.IPv6AggregateFactor,
	// though its own /64 did not (internal/clientaddr).
	QuotaRefusedIPv6Aggregate atomic.Int64
	// PeerDenials counts CreatePermission and ChannelBind requests refused
	// with 403 because of the peer filter.
	PeerDenials atomic.Int64
	// PermissionsActive and ChannelBindingsActive are live permissions
	// (RFC 8656 §9) and channel bindings (§12).
	PermissionsActive     atomic.Int64
	ChannelBindingsActive atomic.Int64
	// Counters are the relay counters (packets, bytes and drops on the
	// relay path), defined in udprelay and shared with it: the fast path
	// and pion/turn's path add to the same ones.
	udprelay.Counters
	// TCPConnectionsOpen is the number of open TURN connections over TCP
	// and TLS (a gauge).
	TCPConnectionsOpen atomic.Int64
	// TCPRefusedPerIP and TCPRefusedTotal count TCP and TLS connections
	// closed as soon as they were accepted because their client address
	// (Config.MaxTCPConnectionsPerIP) or the server
	// (Config.MaxTCPConnections) was at its cap; on a listener shared with
	// HTTP also those closed once told apart, TURN or HTTP, because that
	// protocol's connections were at the cap. TCPRefusedFDLimit counts
	// waiting connections accepted and closed at once because the process
	// was out of file descriptors.
	TCPRefusedPerIP, TCPRefusedTotal, TCPRefusedFDLimit atomic.Int64
	// TCPRefusedPerIPv6Aggregate counts TCP and TLS connections closed as
	// soon as they were accepted because their client's IPv6 aggregate
	// prefix (a /48 by default) held its cap, Config.MaxTCPConnectionsPerIP
	// × Config.IPv6AggregateFactor, though its own /64 did not.
	TCPRefusedPerIPv6Aggregate atomic.Int64
	// TCPAcceptErrors counts failed accepts on TCP and TLS listeners (such
	// as EMFILE at the descriptor limit); each is retried.
	TCPAcceptErrors atomic.Int64
	// TCPClosedFirstMessage counts connections closed because no STUN
	// message (or no TLS handshake) arrived within
	// Config.FirstMessageTimeout; TCPClosedNoAllocation counts connections
	// closed for holding no allocation for Config.NoAllocationTimeout.
	TCPClosedFirstMessage, TCPClosedNoAllocation atomic.Int64
	// TCPClosedBadFrame counts TCP and TLS connections closed at a frame
	// that is not TURN, or that pion/turn would frame differently from the
	// guard, or longer than pion/turn reads (framing.go).
	TCPClosedBadFrame atomic.Int64
	// SharedTURN and SharedHTTP count connections of a listener shared
	// with HTTP (Listener.ShareHTTP) handed to TURN and to HTTP once told
	// apart. SharedTLSFailed, SharedSilent and SharedNeither count those
	// closed before: the TLS handshake failed, the client sent nothing to
	// tell it by within Config.FirstMessageTimeout (or left first), or its
	// first bytes were neither protocol's. SharedEvicted counts those
	// closed to make room for a fresh connection at the total cap
	// (Config.MaxTCPConnections): the one not yet told apart that had not
	// finished its TLS handshake for longest, or the HTTP one idle for
	// longest (Server.HTTPConnState).
	SharedTURN, SharedHTTP                       atomic.Int64
	SharedTLSFailed, SharedSilent, SharedNeither atomic.Int64
	SharedEvicted                                atomic.Int64
	// SharedICE counts ICE-TCP connections of a shared listener handed to
	// Server.ICETCPListener (Listener.ICETCP); ICETCPClosedBadFrame those
	// closed later at a frame that is not STUN, DTLS or RTP/RTCP, or too
	// long (icetcp.go).
	SharedICE, ICETCPClosedBadFrame atomic.Int64

	mu           sync.Mutex
	authFailures map[string]int64
}

func (s *Stats) authFailure(why authFailure) {
	s.mu.Lock()
	if s.authFailures == nil {
		s.authFailures = map[string]int64{}
	}
	s.authFailures[string(why)]++
	s.mu.Unlock()
}

// AuthFailures returns a copy of the authentication failure counts by
// reason: "unknown-user", "bad-integrity", "expired", "wrong-realm",
// "wrong-credentials" (a valid credential that is not the allocation's,
// answered 441).
func (s *Stats) AuthFailures() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.authFailures))
	for k, v := range s.authFailures {
		out[k] = v
	}
	return out
}

// liveSet tracks live permissions or channel bindings by key, so a
// deletion reported twice (pion reports one for a timer expiry racing the
// allocation's close) does not skew the gauge.
type liveSet struct {
	mu    sync.Mutex
	keys  map[liveKey]struct{}
	gauge *atomic.Int64
}

// liveKey is a permission (relayed address and peer address) or a channel
// binding (relayed address and channel number).
type liveKey struct {
	relay   netip.AddrPort
	peer    netip.Addr
	channel uint16
}

func (l *liveSet) add(key liveKey) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.keys == nil {
		l.keys = map[liveKey]struct{}{}
	}
	if _, ok := l.keys[key]; !ok {
		l.keys[key] = struct{}{}
		l.gauge.Add(1)
	}
}

func (l *liveSet) remove(key liveKey) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.keys[key]; ok {
		delete(l.keys, key)
		l.gauge.Add(-1)
	}
}
