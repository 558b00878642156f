// Package web serves icebox's call page (embedded: plain HTML, CSS and ES
// modules, no build step) and the HTTP API around it:
//
//	GET /                    the landing page: new meeting, join by code or link
//	GET /new                 303 to /r/<new room id> (the query kept)
//	GET /r/<room>            the call page, with a per-load RTCConfiguration
//	                         in <script id="ice-config" type="application/json">
//	GET /check               the connectivity check page (check.go)
//	POST /check/sfu          a probe of the SFU's media sockets for /check
//	GET /static/…            the page's assets
//	GET /favicon.ico         the page's icon (SVG)
//	GET /branding/logo       the operator's logo (branding.go); 404 without one
//	GET /api/v1/ice-servers  RTCConfiguration plus "ttl" (Bearer API key)
//	GET /healthz             200 "ok" while serving
//
// /ws is mounted by the caller.
//
// The page's scripts come in two layers (Galène's protocol.js and
// galene.js split): static/session.js is the call without the DOM
// (people, one peer connection each, recovery across a server restart,
// the chat outbox), emitting events; static/app.js renders them. Loaded
// with ?test=1, the page sets window.icebox (static/testhook.js), a
// test hook that hands out snapshots; without the flag there is none.
//
// TURN user ids are never chosen by, or visible to, anyone else: a page
// load mints for "page:<random>", the API for "api:<key id>:<user>" where
// the key id is KeyID of the API key used ("open" without keys), so no API
// caller can mint under a browser's or another key's user id and take its
// allocation quota.
package web

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/icebox-project/icebox/internal/clientaddr"
	"github.com/icebox-project/icebox/internal/mintlimit"
	"github.com/icebox-project/icebox/internal/ratelog"
	"github.com/icebox-project/icebox/internal/roomname"
	"github.com/icebox-project/icebox/internal/rtc"
)

//go:embed static
var staticFS embed.FS

//go:embed page.html
var pageHTML string

var pageTmpl = parsePage("page", pageHTML)

// RTCConfiguration is the W3C WebRTC RTCConfiguration dictionary subset
// icebox hands out. TTL, in seconds, is set only by the API.
type RTCConfiguration struct {
	ICEServers         []rtc.ICEServer `json:"iceServers"`
	ICETransportPolicy string          `json:"iceTransportPolicy"`
	TTL                int64           `json:"ttl,omitempty"`
}

// Config configures the handler.
type Config struct {
	// ICEServers mints an RTCIceServer list for user. Required.
	ICEServers func(user string) (iceServers []rtc.ICEServer, ttl time.Duration)
	// WebSocket serves /ws. Required.
	WebSocket http.Handler
	// APIKeys returns the keys that guard /api/v1/ice-servers
	// (Authorization: Bearer <key>), read per request so a reload applies.
	// Nil func or no keys: the API is open, like the page itself.
	APIKeys func() []string
	// Healthy backs /healthz: nil means serving. Nil func: always healthy.
	Healthy func() error
	// Minting limits the credentials one client address is handed
	// (sources "page" and "api"); past it: 429 with Retry-After. Nil: no
	// limit.
	Minting *mintlimit.Limiter
	// ClientKey is the limit key of the client a request comes from (a
	// clientaddr key, behind trusted proxies from X-Forwarded-For). Nil:
	// the TCP peer's address, keyed by clientaddr's defaults.
	ClientKey func(r *http.Request) string
	// PageCredentials reports whether the page of room embeds TURN
	// credentials (turn.credentials on-page, and the room has no
	// password). When it does not, the page carries STUNServers and the
	// browser gets credentials in welcome. Nil func: always.
	PageCredentials func(room string) bool
	// PasswordRequired reports whether room needs a password to join; its
	// page then shows the password field before the first join. Nil func:
	// no room does.
	PasswordRequired func(room string) bool
	// STUNServers returns the RTCIceServer list of a page without
	// credentials: no username or credential in it. Nil func: an empty
	// list.
	STUNServers func() []rtc.ICEServer
	// CredentialsOnJoin reports whether turn.credentials is on-join: the
	// API then refuses (403) when no API keys are configured. Nil func:
	// false.
	CredentialsOnJoin func() bool
	// Branding returns the operator's name and logo, read per request so a
	// reload applies. Nil func or nil Branding: icebox's own name, no logo.
	Branding func() *Branding
	// SFUCheck lets /check test, from the browser, the SFU's media
	// sockets (check.go). Nil: no SFU; POST /check/sfu is 404.
	SFUCheck *SFUCheck
	// Logger; nil: slog.Default().
	Logger *slog.Logger
}

// New returns the HTTP handler for the page, assets, API and /ws.
func New(cfg Config) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h := &handler{cfg: cfg, refusals: ratelog.New(cfg.Logger, 0, nil)}
	static, _ := fs.Sub(staticFS, "static")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.landing)
	mux.HandleFunc("GET /new", h.newRoom)
	mux.HandleFunc("GET /r/{room}", h.page)
	mux.HandleFunc("GET /check", h.check)         // check.go
	mux.HandleFunc("POST /check/sfu", h.checkSFU) // check.go
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServer(http.FS(static))))
	// Browsers ask for /favicon.ico on pages without a <link rel="icon">
	// (and some on every page): the same icon, from here.
	mux.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=86400")
		http.ServeFileFS(w, r, static, "icon.svg")
	})
	mux.HandleFunc("GET "+LogoPath, h.logo) // branding.go
	mux.HandleFunc("GET /api/v1/ice-servers", h.api)
	mux.Handle("GET /healthz", HealthHandler(cfg.Healthy))
	mux.Handle("GET /ws", cfg.WebSocket)
	return securityHeaders(mux)
}

type handler struct {
	cfg Config
	// refusals logs refused requests at a bounded rate.
	refusals *ratelog.Logger
}

// HealthHandler answers 200 "ok" when healthy returns nil (or is nil), and
// 503 with the reason otherwise.
func HealthHandler(healthy func() error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if healthy != nil {
			if err := healthy(); err != nil {
				http.Error(w, "unhealthy: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		_, _ = w.Write([]byte("ok\n"))
	})
}

// roomAlphabet is the characters of new room ids: lower-case letters and
// digits without the ones read aloud or seen as another (i, l, o, 0, 1).
const roomAlphabet = "abcdefghjkmnpqrstuvwxyz23456789"

// roomGroups are the lengths of a new room id's groups, joined by '-':
// 13 characters of 31, 64 bits of entropy.
var roomGroups = [...]int{4, 4, 5}

// NewRoomID returns a fresh room id easy to read aloud and type, such as
// "k7dm-hq2x-tpa9w": three groups of roomAlphabet characters, drawn
// uniformly from crypto/rand (64 bits).
func NewRoomID() string {
	var b strings.Builder
	buf := make([]byte, 32)
	n := 0
	for i, g := range roomGroups {
		if i > 0 {
			b.WriteByte('-')
		}
		for range g {
			c := -1
			for c < 0 {
				if n == 0 {
					_, _ = rand.Read(buf)
					n = len(buf)
				}
				n--
				// Bytes past the last whole multiple of 31 are dropped: each character is equally likely.
				if v := int(buf[n]); v < 256/len(roomAlphabet)*len(roomAlphabet) {
					c = v % len(roomAlphabet)
				}
			}
			b.WriteByte(roomAlphabet[c])
		}
	}
	return b.String()
}

//go:embed landing.html
var landingHTML string

var landingTmpl = parsePage("landing", landingHTML)

// landing serves the landing page, GET /: the operator's name and logo,
// "New meeting" (a link to /new), "Join with a code or link"
// (static/landing.js) and a link to /check.
func (h *handler) landing(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := landingTmpl.Execute(w, struct{ Brand brandView }{h.brandView()}); err != nil {
		h.cfg.Logger.Warn("rendering the landing page", "error", err)
	}
}

func (h *handler) newRoom(w http.ResponseWriter, r *http.Request) {
	target := "/r/" + NewRoomID()
	if q := r.URL.RawQuery; q != "" {
		target += "?" + q
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

func (h *handler) page(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	if !roomname.Valid(room) {
		http.Error(w, "room names are 1 to 64 characters of A-Z a-z 0-9 - _", http.StatusNotFound)
		return
	}
	relay := r.URL.Query().Get("relay") == "1"
	var cfg RTCConfiguration
	if h.cfg.PageCredentials == nil || h.cfg.PageCredentials(room) {
		if !h.takeCredential(w, r, mintlimit.SourcePage) {
			return
		}
		cfg = h.rtcConfig(relay, "page:"+newUserID())
	} else {
		// Credentials come in welcome, after a successful join.
		cfg = RTCConfiguration{ICEServers: []rtc.ICEServer{}, ICETransportPolicy: policy(relay)}
		if h.cfg.STUNServers != nil {
			cfg.ICEServers = h.cfg.STUNServers()
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store") // credentials are per load.
	if err := pageTmpl.Execute(w, struct {
		Brand            brandView
		Room             string
		ICEConfig        RTCConfiguration
		PasswordRequired bool
	}{h.brandView(), room, cfg, h.cfg.PasswordRequired != nil && h.cfg.PasswordRequired(room)}); err != nil {
		h.cfg.Logger.Warn("rendering page", "error", err)
	}
}

// newUserID is a TURN user id nobody can guess: 24 random bytes, URL-safe.
func newUserID() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func policy(relay bool) string {
	if relay {
		return "relay"
	}
	return "all"
}

func (h *handler) rtcConfig(relay bool, user string) RTCConfiguration {
	servers, ttl := h.cfg.ICEServers(user)
	return RTCConfiguration{ICEServers: servers, ICETransportPolicy: policy(relay), TTL: int64(ttl / time.Second)}
}

// takeCredential takes one credential from the client's minting bucket,
// or answers 429 with Retry-After (seconds) and returns false.
func (h *handler) takeCredential(w http.ResponseWriter, r *http.Request, source string) bool {
	return h.take(w, r, source, "TURN credentials")
}

// take takes a token of the client's minting bucket for source, or
// answers 429 with Retry-After, saying too many of what were asked for.
func (h *handler) take(w http.ResponseWriter, r *http.Request, source, what string) bool {
	var key string
	if h.cfg.ClientKey != nil {
		key = h.cfg.ClientKey(r)
	} else {
		key = clientaddr.Keyer{}.KeyString(r.RemoteAddr)
	}
	_, wait, ok := h.cfg.Minting.Take(key, source)
	if ok {
		return true
	}
	secs := max(1, int((wait+time.Second-1)/time.Second))
	h.refusals.Info("credential-rate", "credentials refused", "source", source, "client", key, "retry_after", secs)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, fmt.Sprintf("too many %s requested from your address; try again in %d s", what, secs),
		http.StatusTooManyRequests)
	return false
}

func (h *handler) api(w http.ResponseWriter, r *http.Request) {
	var keys []string
	if h.cfg.APIKeys != nil {
		keys = h.cfg.APIKeys()
	}
	keyID := "open"
	if len(keys) > 0 {
		k, ok := authorized(r, keys)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="icebox"`)
			http.Error(w, "a valid API key is needed: Authorization: Bearer <key>", http.StatusUnauthorized)
			return
		}
		keyID = KeyID(k)
	} else if h.cfg.CredentialsOnJoin != nil && h.cfg.CredentialsOnJoin() {
		http.Error(w, "TURN credentials are handed out only on joining a room (turn.credentials: on-join); "+
			"the API needs http.api_keys in this mode", http.StatusForbidden)
		return
	}
	if !h.takeCredential(w, r, mintlimit.SourceAPI) {
		return
	}
	user := r.URL.Query().Get("user")
	if user == "" || len(user) > 128 || strings.ContainsAny(user, ":\r\n") {
		user = newUserID()
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(h.rtcConfig(r.URL.Query().Get("relay") == "1", "api:"+keyID+":"+user))
}

// KeyID is the short, non-secret name of an API key in TURN user ids
// ("api:<key id>:<user>") and logs: the first 8 hex digits of its
// SHA-256.
func KeyID(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:4])
}

// authorized compares the Bearer token with every key in constant time
// and returns the key that matched.
func authorized(r *http.Request, keys []string) (string, bool) {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return "", false
	}
	match := -1
	for i, k := range keys {
		if subtle.ConstantTimeCompare([]byte(got), []byte(k)) == 1 {
			match = i
		}
	}
	if match < 0 {
		return "", false
	}
	return keys[match], true
}

// securityHeaders sets the headers every response carries: the page
// loads nothing from any other host.
func securityHeaders(next http.Handler) http.Handler {
	const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"media-src 'self' blob: mediastream:; connect-src 'self'; object-src 'none'; base-uri 'none'; " +
		"form-action 'self'; frame-ancestors 'none'"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", csp)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Permissions-Policy", "camera=(self), microphone=(self), display-capture=(self)")
		if r.TLS != nil {
			hd.Set("Strict-Transport-Security", "max-age=31536000")
		}
		next.ServeHTTP(w, r)
	})
}
