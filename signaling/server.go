package signaling

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/icebox-project/icebox/internal/clientaddr"
	"github.com/icebox-project/icebox/internal/mintlimit"
	"github.com/icebox-project/icebox/internal/ratelog"
	"github.com/icebox-project/icebox/internal/rtc"
)

// Limits and timings. pingPeriod < pongWait so a healthy peer's pong
// always arrives before its read deadline; writeWait bounds one write.
const (
	// MaxMessageSize is the largest message handled: 64 KiB. Larger ones
	// get a too-large error and are discarded.
	MaxMessageSize = 64 << 10
	// MaxSFUMessageSize is the largest signal to the SFU ("to": "sfu")
	// handled: 264 KiB, the SFU's largest SDP (256 KiB, sfu.Limits) and
	// the JSON around it. An SFU room's offer holds a media section per
	// track received, and a browser's lists every codec it has: 64 KiB
	// is a room of about ten.
	MaxSFUMessageSize = 264 << 10
	// hardReadLimit ends the connection (close 1009) when one message is
	// larger still, so discarding never reads without bound.
	hardReadLimit = 1 << 20
	writeWait     = 10 * time.Second
	pongWait      = 60 * time.Second
	pingPeriod    = pongWait * 9 / 10
	// closeGrace is how long a closing connection waits for the peer's
	// close frame, after the server's own close frame is queued.
	closeGrace = 2 * time.Second
	// forceWait bounds Close's wait for the goroutines of connections it
	// closed outright. Every read and write on a closed socket fails at
	// once, so only a bug makes it matter.
	forceWait = time.Second
	// DefaultJoinTimeout is how long a connection may stay open without
	// joining a room.
	DefaultJoinTimeout = 10 * time.Second
	// The outbound queues are bounded in bytes: MaxQueuedBytes and the
	// others in outbox.go.
	// maxStrikes is how many refused messages in a row (bad, too large or
	// rate-limited) close the connection with 1008.
	maxStrikes = 10
	// MessageRate and MessageBurst configure the per-connection token
	// bucket: a steady 50 messages/s with bursts of 200 (ICE candidates
	// for a full mesh arrive in bursts).
	MessageRate  = 50
	MessageBurst = 200
)

// ICEServersFunc mints RTCIceServer entries for a peer, with the lifetime
// of their credentials.
type ICEServersFunc func(user string) (iceServers []rtc.ICEServer, ttl time.Duration)

// Config configures a Server. Zero values are noted per field.
type Config struct {
	// RoomPassword returns the password a room requires, "" for none. Nil:
	// no room has a password.
	RoomPassword func(room string) string
	// ICEServers mints credentials for welcome and for ice-servers
	// refreshes. The user it is given is the peer's credential id:
	// "peer:" and 32 random URL-safe characters, never its peer id (which
	// its room sees), so nobody can mint credentials under another peer's
	// TURN user and take its allocation quota. Nil: welcome carries an
	// empty list.
	ICEServers ICEServersFunc
	// Minting limits the credentials handed to one client address
	// (source "ws"): past it a join gets "rate-limited" and a refresh
	// waits. Nil: no limit.
	Minting *mintlimit.Limiter
	// Limits are the caps and origins; Update replaces them.
	Limits
	// TrustedProxies are reverse proxies whose X-Forwarded-For names the
	// client address (for the per-address limits). Nil: the TCP peer is
	// the client.
	TrustedProxies []netip.Prefix
	// ResumeWindow is how long a dropped peer waits for a resume. Zero:
	// DefaultResumeWindow.
	ResumeWindow time.Duration
	// JoinTimeout closes connections (1008) that have not joined a room
	// this long after opening. Zero: DefaultJoinTimeout.
	JoinTimeout time.Duration
	// Logger receives connection logs. Nil: slog.Default().
	Logger *slog.Logger
	// Clock drives the server's timers (Clock). Nil: the system clock.
	Clock Clock
	// Cluster shares the rooms with other nodes (signaling/cluster). Nil:
	// a single node; nothing leaves the process.
	Cluster Cluster
	// SFU puts rooms on the embedded SFU. Nil: every room is a mesh.
	SFU *SFUConfig
}

// Server serves /ws. It implements http.Handler.
type Server struct {
	cfg      Config
	log      *slog.Logger
	hub      *hub
	upgrader websocket.Upgrader
	limitsP  atomic.Pointer[limits]
	stats    Stats
	guesses  *guessThrottle
	perIP    ipCount
	// queues counts the bytes in every connection's outbox.
	queues queueBytes
	// refusals logs refused upgrades at a bounded rate.
	refusals *ratelog.Logger
	clock    Clock
	// tasks counts every connection's goroutines and pending timers;
	// Close waits for it.
	tasks tasks
}

// New builds a Server.
func New(cfg Config) *Server {
	if cfg.MaxPeersPerRoom <= 0 {
		cfg.MaxPeersPerRoom = 8
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.JoinTimeout <= 0 {
		cfg.JoinTimeout = DefaultJoinTimeout
	}
	if cfg.ResumeWindow <= 0 {
		cfg.ResumeWindow = DefaultResumeWindow
	}
	if cfg.Clock == nil {
		cfg.Clock = systemClock{}
	}
	s := &Server{cfg: cfg, log: cfg.Logger, guesses: newGuessThrottle(cfg.Clock.Now), perIP: ipCount{},
		refusals: ratelog.New(cfg.Logger, 0, nil), clock: cfg.Clock}
	s.hub = newHub(cfg.ResumeWindow, s.afterFunc, cfg.Cluster)
	s.hub.log = s.log
	s.hub.sfu = cfg.SFU
	s.Update(cfg.Limits)
	s.upgrader = websocket.Upgrader{
		// Each connection reads through a 3 KiB buffer of its own (a
		// candidate is about 300 bytes; longer messages take more reads).
		// It is not the HTTP server's 4 KiB read buffer, kept before: that
		// one is allocated next to the server's 4 KiB write buffers, which
		// die at the upgrade, so after a burst of connections most 8 KiB
		// span of that size class held one live buffer and one hole, 4 KiB
		// of heap per connection that the collector could not give back.
		// A 3 KiB buffer is in a size class of its own. A write buffer is
		// taken from the pool only while writing, so idle connections hold
		// none.
		ReadBufferSize:  readBufferSize,
		WriteBufferSize: 4096,
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     s.checkOrigin,
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			http.Error(w, reason.Error(), status)
		},
	}
	return s
}

// checkOrigin allows requests without Origin (non-browser clients, which
// can set any header anyway), the page's own host, and AllowedOrigins.
func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	return s.limits().origins[strings.ToLower(origin)]
}

// Update replaces the limits for joins and connections from now on;
// open connections and rooms are left as they are.
func (s *Server) Update(l Limits) {
	st := &limits{maxPeers: l.MaxPeersPerRoom, maxRooms: l.MaxRooms, maxPerIP: l.MaxConnectionsPerIP, origins: map[string]bool{},
		keyer: clientaddr.Keyer{IPv6Prefix: l.IPv6ClientPrefix, IPv6AggregatePrefix: l.IPv6AggregatePrefix,
			IPv6AggregateFactor: l.IPv6AggregateFactor}}
	if st.maxPeers <= 0 {
		st.maxPeers = 8
	}
	for _, o := range l.AllowedOrigins {
		st.origins[strings.ToLower(strings.TrimSuffix(o, "/"))] = true
	}
	s.limitsP.Store(st)
}

func (s *Server) limits() limits { return *s.limitsP.Load() }

// ServeHTTP upgrades to WebSocket and runs the connection until it ends.
// A foreign Origin gets 403.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.checkOrigin(r) {
		s.refusals.Info("origin", "ws refused", "remote", r.RemoteAddr, "origin", ratelog.Clip(r.Header.Get("Origin")))
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	lim := s.limits()
	ip := lim.keyer.KeyString(clientIP(r, s.cfg.TrustedProxies))
	keys := lim.keyer.KeysOf(ip)
	switch s.perIP.acquire(keys, lim.maxPerIP) {
	case clientaddr.TierAddress:
		s.stats.refuse(RefusedPerIP)
		s.refusals.Info("connections-per-address", "ws refused", "remote", r.RemoteAddr, "client", ip)
		http.Error(w, "too many connections from your address", http.StatusTooManyRequests)
		return
	case clientaddr.TierAggregate:
		s.stats.refuse(RefusedPerIPv6Aggregate)
		s.refusals.Info("connections-per-ipv6-aggregate", "ws refused", "remote", r.RemoteAddr, "client", ip, "aggregate", keys.Agg)
		http.Error(w, "too many connections from your network", http.StatusTooManyRequests)
		return
	}
	conn, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.perIP.release(keys)
		return // the upgrader has answered.
	}
	c := newConn(s, conn, r.RemoteAddr, ip)
	c.keys = keys
	// Counted before register, so a Close that finds c in the hub also
	// waits for its goroutine.
	s.tasks.add()
	if !s.hub.register(c) {
		s.tasks.done()
		_ = conn.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"), time.Now().Add(writeWait))
		conn.Close()
		s.perIP.release(keys)
		return
	}
	// The connection runs on goroutines of its own: returning frees the
	// HTTP handler's stack, request and response for the connection's life.
	go func() {
		defer s.tasks.done()
		c.run()
		s.hub.ended(c)
	}()
}

// Close ends signaling: new connections are refused, suspended peers are
// dropped, and every connection is told the server is going away (close
// 1001) and closed — WebSockets are hijacked, so http.Server.Shutdown does
// not. It returns nil once every goroutine and timer of every connection
// has ended: each connection waits up to closeGrace for the peer's close
// frame. Should ctx end first, the remaining sockets are closed outright,
// Close waits up to forceWait for their goroutines, and returns ctx.Err().
// Close may be called more than once.
func (s *Server) Close(ctx context.Context) error {
	clients := s.hub.close()
	for _, c := range clients {
		c.closeWith(websocket.CloseGoingAway, "server shutting down")
	}
	err := s.tasks.wait(ctx)
	if err == nil {
		return nil
	}
	for _, c := range clients {
		c.ws.Close() // unblocks the reader and any write.
	}
	fctx, cancel := context.WithTimeout(context.Background(), forceWait)
	defer cancel()
	if ferr := s.tasks.wait(fctx); ferr != nil {
		err = errors.Join(err, fmt.Errorf("signaling: %d goroutines and timers still running", s.tasks.count()))
	}
	return err
}

// Stats returns the message and error counters.
func (s *Server) Stats() *Stats { return &s.stats }

// QueuedBytes returns the bytes queued for live connections and held
// for suspended peers (bounded by MaxServerQueuedBytes and
// MaxServerHeldBytes), and how many signals were dropped from suspended
// peers' queues since the start.
func (s *Server) QueuedBytes() (live, held, dropped int64) {
	return s.queues.live.Load(), s.queues.held.Load(), s.queues.dropped.Load()
}

// Counts returns the open connections, rooms and joined peers.
func (s *Server) Counts() (conns, rooms, peers int) { return s.hub.counts() }

// readBufferSize is each connection's read buffer, bytes (see the
// upgrader in New).
const readBufferSize = 3072

func newID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// newToken is a resume token: 24 random bytes, URL-safe.
func newToken() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
