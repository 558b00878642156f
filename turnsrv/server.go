// Package turnsrv is icebox's STUN/TURN server (RFC 8489, RFC 8656) on
// pion/turn: UDP and TCP listeners, relayed addresses advertised at the
// public IP with ports from a range, TURN REST time-limited credentials
// and static users, peer address filtering, allocation quotas, and the
// RTCIceServer lists handed to browsers.
//
// turnsrv is the control plane: the guard (guard.go), pion/turn, quotas,
// the peer filter, TCP and TLS listeners. The UDP data plane sits behind
// one seam, udprelay.Relay, chosen once in New: turnsrv/udprelay's relay
// loops on Linux (amd64, arm64), pion/turn's own relay sockets elsewhere
// (pionRelay, relay.go). pion/turn's allocation events reach the relay
// through it. One TCP listener can also serve HTTP on the same port
// (Listener.ShareHTTP, shared.go): each connection is told apart by ALPN
// or its first bytes (demux.go), and HTTP ones are handed to the web
// server through Server.HTTPListener. docs/ARCHITECTURE.md draws the
// whole path.
package turnsrv

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/turn/v4"

	"github.com/icebox-project/icebox/internal/clientaddr"
	"github.com/icebox-project/icebox/internal/pionlog"
	"github.com/icebox-project/icebox/internal/ratelog"
	"github.com/icebox-project/icebox/turnsrv/udprelay"
)

// Listener is one STUN/TURN listener to open.
type Listener struct {
	// Network is "udp", "tcp" or "tls" (TURN over TLS, RFC 8656 §3.1).
	Network string
	// Addr is host:port; port 0 picks a free port (see Server.Addrs).
	Addr string
	// TLS configures a "tls" listener; its GetCertificate may change the
	// certificate at any time. A listener that shares HTTP lists the
	// application protocols it serves in NextProtos: ALPNTURN first (the
	// server's order decides, and TURN clients such as coturn's offer
	// "http/1.1" too), then HTTP's ("h2", "http/1.1", and "acme-tls/1"
	// for ACME's TLS-ALPN-01).
	TLS *tls.Config
	// ShareHTTP makes a "tcp" or "tls" listener serve HTTP too, on the
	// same socket: each connection is told apart, after the TLS handshake,
	// by ALPN or else by its first bytes (shared.go), and HTTP ones are
	// accepted from Server.HTTPListener. At most one listener shares
	// HTTP. False: TURN only.
	ShareHTTP bool
	// ICETCP makes a listener that shares HTTP take ICE-TCP connections
	// too (RFC 6544, RFC 4571 framing), told apart by their first bytes
	// before any TLS (icetcp.go), for Server.ICETCPListener. False:
	// such connections are closed as neither.
	ICETCP bool
}

// Config configures a Server. Zero values are noted per field.
type Config struct {
	// Realm is the long-term credential REALM (RFC 8489 §9.2). Required.
	Realm string
	// Listeners to open. At least one is required.
	Listeners []Listener
	// PublicIP is advertised as the relayed address (XOR-RELAYED-ADDRESS);
	// the ICE server URLs are the caller's (internal/advertise), built from
	// the same address and Server.Endpoints. Zero value: DefaultPublicIP().
	PublicIP netip.Addr
	// RelayMinPort and RelayMaxPort bound relayed transport address ports,
	// inclusive. Zero values: 49152 and 65535.
	RelayMinPort, RelayMaxPort uint16
	// Credentials verifies requests and mints credentials. Required.
	Credentials *Credentials
	// DenyPeers and AllowPeers configure the PeerFilter; allow wins. Nil
	// DenyPeers denies nothing: callers pass the recommended list.
	DenyPeers, AllowPeers []netip.Prefix
	// MaxAllocationsPerUser caps live allocations per quota user (the id
	// part of a REST username, or the static user name); <= 0: no cap.
	MaxAllocationsPerUser int
	// MaxAllocations caps live allocations in total; <= 0: no cap.
	MaxAllocations int
	// MaxAllocationsPerIP caps live allocations per client IP address;
	// <= 0: no cap.
	MaxAllocationsPerIP int
	// MaxBitratePerAllocation caps what one allocation relays, in bits per
	// second of UDP payload, each direction on its own; datagrams over the
	// cap are dropped and counted (Stats.DroppedToPeers,
	// DroppedFromPeers). A burst of up to 500 ms at the cap passes. <= 0:
	// no cap.
	MaxBitratePerAllocation int64
	// UDPSockets is how many SO_REUSEPORT sockets serve each UDP listener
	// (Linux); each belongs to one relay loop, with the relayed addresses
	// of the allocations made through it. Zero: runtime.GOMAXPROCS(0) as
	// New runs.
	UDPSockets int
	// RelayLoops is how many relay loops (udprelay) serve the UDP
	// listeners' sockets, which are dealt to them in turn; each loop holds
	// a thread while it waits in epoll_wait. New never changes GOMAXPROCS:
	// that is the process's choice (see daemon). Zero: UDPSockets, one
	// loop per socket of a listener. Only on Linux (amd64, arm64);
	// elsewhere pion/turn relays and there are no loops.
	RelayLoops int
	// MaxTCPConnectionsPerIP caps open TCP and TLS connections per client
	// address: the IPv4 address, or the IPv6 prefix of IPv6ClientPrefix
	// bits. A connection over the cap is closed as soon as it is accepted
	// (Stats.TCPRefusedPerIP). <= 0: no cap.
	MaxTCPConnectionsPerIP int
	// MaxTCPConnections caps open TCP and TLS connections in total, so
	// that the process stays below its file descriptor limit; a connection
	// over the cap is closed as soon as it is accepted
	// (Stats.TCPRefusedTotal). Zero: AutoMaxTCPConnections(), a quarter of
	// the soft RLIMIT_NOFILE; < 0: no cap.
	MaxTCPConnections int
	// IPv6ClientPrefix is the prefix length IPv6 clients are counted by in
	// the per-address limits (MaxAllocationsPerIP, MaxTCPConnectionsPerIP),
	// 1-128. Zero: 64 (internal/clientaddr).
	IPv6ClientPrefix int
	// IPv6AggregatePrefix is the prefix length (1-128) of the second tier
	// IPv6 clients are also counted by in those limits, with a cap of
	// IPv6AggregateFactor times the per-address cap; a connection or
	// allocation is refused when either tier is full
	// (Stats.TCPRefusedPerIPv6Aggregate, Stats.QuotaRefusedIPv6Aggregate).
	// Not shorter than IPv6ClientPrefix: one tier. Zero: 48
	// (clientaddr.DefaultIPv6AggregatePrefix).
	IPv6AggregatePrefix int
	// IPv6AggregateFactor is the second tier's cap as a multiple of the
	// per-address cap, 1-1024. Zero: 8
	// (clientaddr.DefaultIPv6AggregateFactor).
	IPv6AggregateFactor int
	// FirstMessageTimeout is how long a TCP or TLS connection has, from
	// accept, to deliver its first STUN message (RFC 8489 §5), TLS
	// handshake included; a connection that has not is closed
	// (Stats.TCPClosedFirstMessage). Zero: DefaultFirstMessageTimeout
	// (10 s).
	FirstMessageTimeout time.Duration
	// NoAllocationTimeout is how long a TCP or TLS connection may hold no
	// allocation (RFC 8656 §5), from accept or from the end of its last
	// allocation, before it is closed (Stats.TCPClosedNoAllocation). Zero:
	// DefaultNoAllocationTimeout (60 s).
	NoAllocationTimeout time.Duration
	// ICETCPIdleTimeout closes an ICE-TCP connection (Listener.ICETCP)
	// that sends no frame for this long. Zero: DefaultICETCPIdleTimeout
	// (30 s).
	ICETCPIdleTimeout time.Duration
	// Logger receives icebox's and pion's logs. Nil: slog.Default().
	Logger *slog.Logger
	// ClusterRelays, when set, is validated against this server's peer
	// filter from New on (RelayPeers: a claimed range widens nothing).
	ClusterRelays *RelayPeers
	// SFUPort and SFUAddrs name the embedded SFU's media socket, the one
	// own address a client may relay to outside the relay range
	// (OwnAddresses.SFUPort). Zero port: no SFU.
	SFUPort  uint16
	SFUAddrs []netip.Addr

	// now is the guard's clock, which judges credential expiry; tests
	// set it. Nil: time.Now.
	now func() time.Time
	// pionUDP relays UDP through pion/turn's own sockets (pionRelay) even
	// where udprelay runs, so tests see the fallback path on Linux.
	pionUDP bool
	// channelBindTimeout is pion/turn's channel binding lifetime (RFC
	// 8656 §12: 10 minutes); tests shorten it. Zero: pion/turn's default.
	channelBindTimeout time.Duration
}

// Server is a running STUN/TURN server.
type Server struct {
	cfg   Config
	log   *slog.Logger
	pion  *turn.Server
	guard *guard
	quota *quota
	addrs []net.Addr
	// endpoints parallels addrs with the advertised kind (udp, tcp, tls).
	endpoints []Endpoint
	stats     *Stats
	done      chan struct{}
	wg        sync.WaitGroup
	once      sync.Once
	conns     *connSet
	live      struct{ permissions, channels liveSet }
	policy    atomic.Pointer[policy]
	// udp is the UDP listeners' data path, chosen once in New: udprelay's
	// loops, or pion/turn's own (pionRelay).
	udp udprelay.Relay
	// shared is the listener shared with HTTP; nil: none.
	shared *sharedListener
	// relayed tracks when a datagram was last relayed to a peer
	// (LastRelayed); denials the last peer refusal summary.
	relayed activity
	denials struct {
		mu    sync.Mutex
		count int64
		at    time.Time
	}
}

// New opens the listeners and starts serving. On Linux (amd64, arm64) it
// starts Config.RelayLoops relay loops (udprelay) for the UDP listeners.
// It does not change GOMAXPROCS or any other process-wide setting.
// Errors: ErrNoListener, ErrRealmTooLong, a listener that cannot bind, or
// pion/turn's configuration errors.
func New(cfg Config) (*Server, error) {
	if len(cfg.Listeners) == 0 {
		return nil, ErrNoListener
	}
	if len(cfg.Realm) > MaxRealmLength {
		return nil, fmt.Errorf("%w: %d bytes", ErrRealmTooLong, len(cfg.Realm))
	}
	if cfg.Credentials == nil {
		return nil, ErrNoSecret
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if !cfg.PublicIP.IsValid() {
		cfg.PublicIP = DefaultPublicIP()
	}
	if !cfg.PublicIP.Unmap().Is4() {
		return nil, fmt.Errorf("turnsrv: public IP %s: relayed addresses are IPv4", cfg.PublicIP)
	}
	cfg.PublicIP = cfg.PublicIP.Unmap()
	if cfg.RelayMinPort == 0 {
		cfg.RelayMinPort = 49152
	}
	if cfg.UDPSockets <= 0 {
		cfg.UDPSockets = runtime.GOMAXPROCS(0)
	}
	if cfg.RelayLoops <= 0 {
		cfg.RelayLoops = cfg.UDPSockets
	}
	if cfg.RelayMaxPort == 0 {
		cfg.RelayMaxPort = 65535
	}
	if cfg.FirstMessageTimeout <= 0 {
		cfg.FirstMessageTimeout = DefaultFirstMessageTimeout
	}
	if cfg.NoAllocationTimeout <= 0 {
		cfg.NoAllocationTimeout = DefaultNoAllocationTimeout
	}
	if cfg.ICETCPIdleTimeout <= 0 {
		cfg.ICETCPIdleTimeout = DefaultICETCPIdleTimeout
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	s := &Server{cfg: cfg, log: cfg.Logger, stats: &Stats{}, done: make(chan struct{})}
	s.live.permissions.gauge = &s.stats.PermissionsActive
	s.live.channels.gauge = &s.stats.ChannelBindingsActive
	// The policy (with the peer filter, which needs the bound listener
	// ports) is stored once the listeners are open, before pion starts.
	own := &owners{m: map[fiveTuple]string{}}
	s.guard = &guard{
		owners: own, policy: &s.policy, realm: cfg.Realm,
		keys: &keyCache{keys: map[string]*cachedKey{}}, log: cfg.Logger,
		refusals: ratelog.New(cfg.Logger, 0, nil), now: cfg.now, stats: s.stats,
	}
	s.conns = newConnSet(connLimits{
		perIP: cfg.MaxTCPConnectionsPerIP, total: resolveMaxTCP(cfg.MaxTCPConnections),
		firstMsg: cfg.FirstMessageTimeout, noAlloc: cfg.NoAllocationTimeout,
		keyer: cfg.keyer(),
	}, s.stats, own, cfg.Logger)
	s.quota = &quota{policy: &s.policy, perUser: map[string]int{}, reserved: map[fiveTuple]reservation{}, stats: s.stats, owners: own,
		keyer: cfg.keyer()}
	permissionHandler := func(src net.Addr, peer net.IP) bool {
		return s.policy.Load().peers.permissionHandler(src, peer)
	}
	// UDP clients are relayed by udprelay's loops where the platform has
	// them, by pion/turn elsewhere: chosen here, once.
	udp, err := s.newUDPRelay(cfg.RelayLoops)
	if err != nil {
		return nil, err
	}
	s.udp = udp
	var pcs []turn.PacketConnConfig
	var lns []turn.ListenerConfig
	closeAll := func() {
		for _, p := range pcs {
			p.PacketConn.Close()
		}
		for _, l := range lns {
			l.Listener.Close()
		}
		udp.Close()
	}
	loggedBuffers := false
	for _, l := range cfg.Listeners {
		network := ipNetwork(l.Network, l.Addr)
		if l.Network == "tls" {
			network = ipNetwork("tcp", l.Addr)
		}
		if l.ShareHTTP && l.Network == "udp" {
			closeAll()
			return nil, fmt.Errorf("turnsrv: listener udp://%s: only tcp and tls listeners can share HTTP", l.Addr)
		}
		switch l.Network {
		case "udp":
			socks, sizes, err := listenUDP(network, l.Addr, cfg.UDPSockets)
			if err != nil {
				closeAll()
				return nil, fmt.Errorf("turnsrv: listen %s://%s: %w", l.Network, l.Addr, err)
			}
			if !loggedBuffers && sizes.RecvAsked > 0 {
				// Once: the kernel caps every socket alike.
				sizes.Log(s.log, "turn listener")
				loggedBuffers = true
			}
			s.addrs = append(s.addrs, socks[0].LocalAddr())
			s.endpoints = append(s.endpoints, Endpoint{Network: "udp", Port: addrPort(socks[0].LocalAddr())})
			for i, pc := range socks {
				conn, gen, err := udp.Adopt(pc)
				if err != nil {
					for _, rest := range socks[i:] {
						rest.Close()
					}
					closeAll()
					return nil, fmt.Errorf("turnsrv: listen %s://%s: %w", l.Network, l.Addr, err)
				}
				pcs = append(pcs, turn.PacketConnConfig{
					PacketConn:            conn,
					RelayAddressGenerator: gen,
					PermissionHandler:     permissionHandler,
				})
			}
		case "tcp", "tls":
			var ln net.Listener
			ln, err := net.Listen(network, l.Addr) //nolint:noctx
			if err != nil {
				closeAll()
				return nil, fmt.Errorf("turnsrv: listen %s://%s: %w", l.Network, l.Addr, err)
			}
			raw, _ := ln.(*net.TCPListener)
			s.addrs = append(s.addrs, ln.Addr())
			if l.Network == "tls" && l.TLS == nil {
				ln.Close()
				closeAll()
				return nil, fmt.Errorf("turnsrv: listener tls://%s has no TLS configuration", l.Addr)
			}
			s.endpoints = append(s.endpoints, Endpoint{Network: l.Network, Port: addrPort(ln.Addr())})
			var tl net.Listener
			switch {
			case l.ShareHTTP && s.shared != nil:
				ln.Close()
				closeAll()
				return nil, fmt.Errorf("turnsrv: listener %s://%s: %w", l.Network, l.Addr, ErrSharedTwice)
			case l.ShareHTTP:
				var conf *tls.Config
				if l.Network == "tls" {
					conf = l.TLS
				}
				var iceIdle time.Duration
				if l.ICETCP {
					iceIdle = cfg.ICETCPIdleTimeout
				}
				s.shared = newSharedListener(raw, conf, s.guard, s.conns, iceIdle)
				tl = sharedTURN{s.shared}
			case l.Network == "tls":
				tl = newGuardListener(tls.NewListener(ln, l.TLS), raw, s.guard, s.conns)
			default:
				tl = newGuardListener(ln, raw, s.guard, s.conns)
			}
			lns = append(lns, turn.ListenerConfig{
				Listener:              tl,
				RelayAddressGenerator: s.portRange(),
				PermissionHandler:     permissionHandler,
			})
		default:
			closeAll()
			return nil, fmt.Errorf("turnsrv: listener %q: unknown network %q", l.Addr, l.Network)
		}
	}
	s.policy.Store(&policy{
		creds: cfg.Credentials, peers: NewPeerFilter(cfg.DenyPeers, cfg.AllowPeers, ownAddresses(cfg, s.addrs)),
		maxUser: cfg.MaxAllocationsPerUser, maxTotal: cfg.MaxAllocations, maxIP: cfg.MaxAllocationsPerIP,
		maxBitrate: cfg.MaxBitratePerAllocation,
	})
	cfg.ClusterRelays.use(s.policy.Load().peers)
	srv, err := turn.NewServer(turn.ServerConfig{
		PacketConnConfigs:  pcs,
		ListenerConfigs:    lns,
		LoggerFactory:      pionlog.Factory{Log: cfg.Logger},
		InboundMTU:         pionInboundMTU,
		Realm:              cfg.Realm,
		ChannelBindTimeout: cfg.channelBindTimeout,
		AuthHandler:        s.authHandler,
		QuotaHandler:       s.quota.allow,
		EventHandler: turn.EventHandler{
			OnAllocationCreated: func(src, local net.Addr, proto, username, realm string, relay net.Addr, port int) {
				s.quota.created(src, local, proto, username, realm, relay, port)
				udp.AllocationCreated(src, local, relay)
			},
			OnAllocationDeleted: func(src, local net.Addr, proto, username, realm string) {
				s.quota.deleted(src, local, proto, username, realm)
				s.conns.allocationEnded(src, local)
			},
			OnPermissionCreated: func(_, _ net.Addr, _, _, _ string, relay net.Addr, peer net.IP) {
				s.live.permissions.add(permissionKey(relay, peer))
				udp.Permission(relay, peer, true)
			},
			OnPermissionDeleted: func(_, _ net.Addr, _, _, _ string, relay net.Addr, peer net.IP) {
				s.live.permissions.remove(permissionKey(relay, peer))
				udp.Permission(relay, peer, false)
			},
			OnChannelCreated: func(_, _ net.Addr, _, _, _ string, relay, peer net.Addr, n uint16) {
				s.live.channels.add(liveKey{relay: addrPortOfAddr(relay), channel: n})
				udp.Channel(relay, peer, n, true)
			},
			OnChannelDeleted: func(_, _ net.Addr, _, _, _ string, relay, peer net.Addr, n uint16) {
				s.live.channels.remove(liveKey{relay: addrPortOfAddr(relay), channel: n})
				udp.Channel(relay, peer, n, false)
			},
		},
	})
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("turnsrv: %w", err)
	}
	s.pion = srv
	s.wg.Add(2)
	go s.sweep()
	go s.watchActivity()
	for i, a := range s.addrs {
		args := []any{"network", s.endpoints[i].Network, "bind", a.String(),
			"advertised", net.JoinHostPort(cfg.PublicIP.String(), strconv.Itoa(addrPort(a)))}
		if cfg.Listeners[i].ShareHTTP {
			args = append(args, "shared_with", "http")
		}
		s.log.Info("turn listening", args...)
	}
	s.log.Info("turn relay", "udp_sockets_per_listener", cfg.UDPSockets, "relay_loops", len(udp.Loops()), "relay_ports", fmt.Sprintf("%d-%d", cfg.RelayMinPort, cfg.RelayMaxPort),
		"relayed_address", cfg.PublicIP.String(), "realm", cfg.Realm)
	if len(lns) > 0 {
		lim := s.conns.limits.Load()
		s.log.Info("turn tcp limits", "max_connections_per_ip", lim.perIP, "max_connections", lim.total,
			"first_message_timeout", lim.firstMsg.String(), "no_allocation_timeout", lim.noAlloc.String())
	}
	return s, nil
}

// resolveMaxTCP turns Config.MaxTCPConnections into a cap, <= 0 meaning
// none.
func resolveMaxTCP(n int) int {
	switch {
	case n == 0:
		return AutoMaxTCPConnections()
	case n < 0:
		return 0
	}
	return n
}

func permissionKey(relay net.Addr, peer net.IP) liveKey {
	ip, _ := netip.AddrFromSlice(peer)
	return liveKey{relay: addrPortOfAddr(relay), peer: ip.Unmap()}
}

// authHandler hands pion the key the guard verified for username. The
// guard has already authenticated every request that reaches pion.
func (s *Server) authHandler(username, _ string, _ net.Addr) ([]byte, bool) {
	return s.guard.keys.get(username)
}

// sweep drops unused keys once a minute until Close.
func (s *Server) sweep() {
	defer s.wg.Done()
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case now := <-t.C:
			s.guard.keys.sweep(now.Add(-keyIdleTimeout))
			s.guard.refusals.Flush()
		}
	}
}

// Update is what can change on a running Server without dropping
// allocations (a configuration reload). Fields mean what they mean in
// Config.
type Update struct {
	Credentials                           *Credentials
	DenyPeers, AllowPeers                 []netip.Prefix
	MaxAllocationsPerUser, MaxAllocations int
	MaxAllocationsPerIP                   int
	MaxBitratePerAllocation               int64
	// MaxTCPConnectionsPerIP, MaxTCPConnections and the IPv6 prefixes and
	// factor apply to connections accepted afterwards; open ones stay. The
	// allocation quota keeps counting by the keys of Config.
	MaxTCPConnectionsPerIP, MaxTCPConnections int
	IPv6ClientPrefix                          int
	IPv6AggregatePrefix, IPv6AggregateFactor  int
}

// Update applies u to new requests; a new bitrate cap applies to
// allocations created afterwards, new TCP connection caps to connections
// accepted afterwards. Existing allocations keep working:
// requests on them verify under the key they were made with, even when u
// removes its secret or user. Errors: ErrNoSecret without Credentials.
func (s *Server) Update(u Update) error {
	if u.Credentials == nil {
		return ErrNoSecret
	}
	own := ownAddresses(s.cfg, s.addrs) // interface addresses may have changed since New
	s.policy.Store(&policy{
		creds: u.Credentials, peers: NewPeerFilter(u.DenyPeers, u.AllowPeers, own),
		maxUser: u.MaxAllocationsPerUser, maxTotal: u.MaxAllocations, maxIP: u.MaxAllocationsPerIP,
		maxBitrate: u.MaxBitratePerAllocation,
	})
	s.cfg.ClusterRelays.use(s.policy.Load().peers)
	s.udp.PeersChanged() // the relay loops judge what they hold again
	s.conns.setCaps(u.MaxTCPConnectionsPerIP, resolveMaxTCP(u.MaxTCPConnections), clientaddr.Keyer{
		IPv6Prefix: u.IPv6ClientPrefix, IPv6AggregatePrefix: u.IPv6AggregatePrefix, IPv6AggregateFactor: u.IPv6AggregateFactor})
	return nil
}

// Drain refuses new allocations (508 Insufficient Capacity) while existing
// ones carry on, for a graceful shutdown.
func (s *Server) Drain() { s.guard.draining.Store(true) }

// Addrs returns the bound listener addresses (*net.UDPAddr, *net.TCPAddr).
func (s *Server) Addrs() []net.Addr { return s.addrs }

// HTTPListener is the listener of HTTP connections arriving at the
// listener shared with HTTP (Listener.ShareHTTP): http.Server.Serve takes
// it. Closing it stops handing HTTP connections on (they are closed once
// told apart) and leaves TURN serving; Close closes it too. Connections
// are *tls.Conn for a TLS listener when the client chose HTTP by ALPN;
// otherwise see TLSConnectionState. Nil when no listener shares HTTP.
func (s *Server) HTTPListener() net.Listener {
	if s.shared == nil {
		return nil
	}
	return sharedHTTP{s.shared}
}

// PublicIP is the advertised relay address.
func (s *Server) PublicIP() netip.Addr { return s.cfg.PublicIP }

// Stats returns the server's live counters.
func (s *Server) Stats() *Stats { return s.stats }

// RelayLoops is the number of relay loops serving UDP listeners (0 where
// pion/turn relays).
func (s *Server) RelayLoops() int { return len(s.udp.Loops()) }

// AllocationCount is the number of live allocations.
func (s *Server) AllocationCount() int { return s.pion.AllocationCount() }

// Close stops the listeners, ends TCP connections and deletes all
// allocations. It is safe to call more than once.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		close(s.done)
		err = s.pion.Close()
		s.conns.closeAll()
		s.udp.Close()
		s.wg.Wait()
	})
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// ownAddresses lists the server's own addresses for the peer filter: the
// relayed address, the bound listeners' addresses and ports, and every
// interface address (a listener on 0.0.0.0 answers on all of them), with
// the relay ports.
func ownAddresses(cfg Config, bound []net.Addr) OwnAddresses {
	own := OwnAddresses{Relayed: cfg.PublicIP, RelayMin: cfg.RelayMinPort, RelayMax: cfg.RelayMaxPort,
		SFUPort: cfg.SFUPort, SFUAddrs: cfg.SFUAddrs}
	for _, a := range bound {
		ap := addrPortOfAddr(a)
		own.Others = append(own.Others, ap.Addr())
		own.ListenerPorts = append(own.ListenerPorts, ap.Port())
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok {
					own.Others = append(own.Others, ip)
				}
			}
		}
	}
	return own
}

func ipNetwork(network, addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return network
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Is4() {
			return network + "4"
		}
		return network + "6"
	}
	return network
}

func addrPort(a net.Addr) int {
	switch a := a.(type) {
	case *net.UDPAddr:
		return a.Port
	case *net.TCPAddr:
		return a.Port
	}
	return 0
}

// DefaultPublicIP is the first global or private unicast IPv4 address of
// this host's interfaces, or 127.0.0.1 when there is none.
func DefaultPublicIP() netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err == nil {
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				ip, ok := netip.AddrFromSlice(n.IP)
				if ok && ip.Unmap().Is4() && ip.IsGlobalUnicast() {
					return ip.Unmap()
				}
			}
		}
	}
	return netip.AddrFrom4([4]byte{127, 0, 0, 1})
}

// keyer is the clientaddr.Keyer of the per-address limits.
func (cfg Config) keyer() clientaddr.Keyer {
	return clientaddr.Keyer{IPv6Prefix: cfg.IPv6ClientPrefix,
		IPv6AggregatePrefix: cfg.IPv6AggregatePrefix, IPv6AggregateFactor: cfg.IPv6AggregateFactor}
}
