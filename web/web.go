// Package web serves icebox's call page (embedded: plain HTML, CSS and ES
// modules, no build step) and the HTTP API around it:
//
//	GET /                    303 to /r/<new room id>
//	GET /r/<room>            the call page, with a per-load RTCConfiguration
//	                         in <script id="ice-config" type="application/json">
//	GET /static/…            the page's assets
//	GET /api/v1/ice-servers  RTCConfiguration plus "ttl" (Bearer API key)
//	GET /healthz             200 "ok" while serving
//
// /ws is mounted by the caller.
package web

import (
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/icebox-project/icebox/config"
)

//go:embed static
var staticFS embed.FS

//go:embed page.html
var pageHTML string

var pageTmpl = template.Must(template.New("page").Parse(pageHTML))

// RTCConfiguration is the W3C WebRTC RTCConfiguration dictionary subset
// icebox hands out. TTL, in seconds, is set only by the API.
type RTCConfiguration struct {
	ICEServers         any    `json:"iceServers"`
	ICETransportPolicy string `json:"iceTransportPolicy"`
	TTL                int64  `json:"ttl,omitempty"`
}

// Config configures the handler.
type Config struct {
	// ICEServers mints an RTCIceServer list for user. Required.
	ICEServers func(user string) (iceServers any, ttl time.Duration)
	// WebSocket serves /ws. Required.
	WebSocket http.Handler
	// APIKeys returns the keys that guard /api/v1/ice-servers
	// (Authorization: Bearer <key>), read per request so a reload applies.
	// Nil func or no keys: the API is open, like the page itself.
	APIKeys func() []string
	// Healthy backs /healthz: nil means serving. Nil func: always healthy.
	Healthy func() error
	// Logger; nil: slog.Default().
	Logger *slog.Logger
}

// New returns the HTTP handler for the page, assets, API and /ws.
func New(cfg Config) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h := &handler{cfg: cfg}
	static, _ := fs.Sub(staticFS, "static")
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", h.newRoom)
	mux.HandleFunc("GET /r/{room}", h.page)
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServer(http.FS(static))))
	mux.HandleFunc("GET /api/v1/ice-servers", h.api)
	mux.Handle("GET /healthz", HealthHandler(cfg.Healthy))
	mux.Handle("GET /ws", cfg.WebSocket)
	return securityHeaders(mux)
}

type handler struct{ cfg Config }

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

// NewRoomID returns a fresh room id: 12 random URL-safe characters.
func NewRoomID() string {
	b := make([]byte, 9)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
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
	if !config.ValidRoomName(room) {
		http.Error(w, "room names are 1 to 64 characters of A-Z a-z 0-9 - _", http.StatusNotFound)
		return
	}
	cfg := h.rtcConfig(r.URL.Query().Get("relay") == "1", "page-"+NewRoomID())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store") // credentials are per load.
	if err := pageTmpl.Execute(w, struct {
		Room      string
		ICEConfig RTCConfiguration
	}{room, cfg}); err != nil {
		h.cfg.Logger.Warn("rendering page", "error", err)
	}
}

func (h *handler) rtcConfig(relay bool, user string) RTCConfiguration {
	servers, ttl := h.cfg.ICEServers(user)
	policy := "all"
	if relay {
		policy = "relay"
	}
	return RTCConfiguration{ICEServers: servers, ICETransportPolicy: policy, TTL: int64(ttl / time.Second)}
}

func (h *handler) api(w http.ResponseWriter, r *http.Request) {
	var keys []string
	if h.cfg.APIKeys != nil {
		keys = h.cfg.APIKeys()
	}
	if len(keys) > 0 && !authorized(r, keys) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="icebox"`)
		http.Error(w, "a valid API key is needed: Authorization: Bearer <key>", http.StatusUnauthorized)
		return
	}
	user := r.URL.Query().Get("user")
	if user == "" || len(user) > 128 || strings.ContainsAny(user, ":\r\n") {
		user = "api-" + NewRoomID()
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(h.rtcConfig(r.URL.Query().Get("relay") == "1", user))
}

// authorized compares the Bearer token with every key in constant time.
func authorized(r *http.Request, keys []string) bool {
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	match := 0
	for _, k := range keys {
		match |= subtle.ConstantTimeCompare([]byte(got), []byte(k))
	}
	return match == 1
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
