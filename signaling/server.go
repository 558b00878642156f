// Package signaling is icebox's WebSocket signaling server, protocol v1
// (docs/protocol.md): peers join rooms, learn who else is there, and relay
// opaque signal payloads (offers, answers, ICE candidates, call control)
// to one another. The server sets "from" on every relayed signal.
package signaling

import (
	"crypto/rand"
	"encoding/base64"
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
)

// Limits and timings. pingPeriod < pongWait so a healthy peer's pong
// always arrives before its read deadline; writeWait bounds one write.
const (
	// MaxMessageSize is the largest message handled: 64 KiB. Larger ones
	// get a too-large error and are discarded.
	MaxMessageSize = 64 << 10
	// hardReadLimit ends the connection (close 1009) when one message is
	// larger still, so discarding never reads without bound.
	hardReadLimit = 1 << 20
	writeWait     = 10 * time.Second
	pongWait      = 60 * time.Second
	pingPeriod    = pongWait * 9 / 10
	// closeGrace is how long a closing connection waits for the peer's
	// close frame, after the server's own close frame is queued.
	closeGrace = 2 * time.Second
	// DefaultJoinTimeout is how long a connection may stay open without
	// joining a room.
	DefaultJoinTimeout = 10 * time.Second
	// sendQueue is the per-connection queue of outbound messages; a client
	// that lets it fill is too slow and is disconnected.
	sendQueue = 256
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
type ICEServersFunc func(user string) (iceServers any, ttl time.Duration)

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
	// refusals logs refused upgrades at a bounded rate.
	refusals *ratelog.Logger
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
	s := &Server{cfg: cfg, log: cfg.Logger, hub: newHub(cfg.ResumeWindow), guesses: newGuessThrottle(), perIP: ipCount{n: map[string]int{}},
		refusals: ratelog.New(cfg.Logger, 0, nil)}
	s.Update(cfg.Limits)
	s.upgrader = websocket.Upgrader{
		// Reading reuses the HTTP server's buffer; a write buffer is taken
		// from the pool only while writing, so idle connections hold none.
		ReadBufferSize:  0,
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
		keyer: clientaddr.Keyer{IPv6Prefix: l.IPv6ClientPrefix}}
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
	if !s.perIP.acquire(ip, lim.maxPerIP) {
		s.refusals.Info("connections-per-address", "ws refused", "remote", r.RemoteAddr, "client", ip)
		http.Error(w, "too many connections from your address", http.StatusTooManyRequests)
		return
	}
	conn, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.perIP.release(ip)
		return // the upgrader has answered.
	}
	c := newClient(s, conn, r.RemoteAddr, ip)
	if !s.hub.register(c) {
		_ = conn.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down"), time.Now().Add(writeWait))
		conn.Close()
		s.perIP.release(ip)
		return
	}
	// The connection runs on goroutines of its own: returning frees the
	// HTTP handler's stack, request and response for the connection's life.
	go func() {
		defer s.perIP.release(ip)
		c.run()
	}()
}

// Close tells every connection the server is going away (close 1001) and
// closes it. WebSockets are hijacked, so http.Server.Shutdown does not.
func (s *Server) Close() {
	for _, c := range s.hub.close() {
		c.closeWith(websocket.CloseGoingAway, "server shutting down")
	}
}

// Stats returns the message and error counters.
func (s *Server) Stats() *Stats { return &s.stats }

// Counts returns the open connections, rooms and joined peers.
func (s *Server) Counts() (conns, rooms, peers int) { return s.hub.counts() }

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
