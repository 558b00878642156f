package web

import (
	"encoding/json"
	"slices"
	"sync"

	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/icebox-project/icebox/internal/mintlimit"
	"github.com/icebox-project/icebox/internal/roomname"
	"github.com/icebox-project/icebox/internal/rtc"
)

var iceConfigRe = regexp.MustCompile(`<script id="ice-config" type="application/json">(.*?)</script>`)

func startWeb(t *testing.T, keys []string, mods ...func(*Config)) *httptest.Server {
	t.Helper()
	var n atomic.Int64
	cfg := Config{
		ICEServers: func(user string) ([]rtc.ICEServer, time.Duration) {
			i := n.Add(1)
			// A hostile value: the page must keep it inside the JSON.
			return []rtc.ICEServer{{URLs: []string{"turn:127.0.0.1:3478"}, Username: fmt.Sprintf("%d:%s</script><script>alert(1)</script>", i, user), Credential: "c"}}, 90 * time.Second
		},
		WebSocket: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }),
		APIKeys:   func() []string { return keys },
	}
	for _, m := range mods {
		m(&cfg)
	}
	s := httptest.NewServer(New(cfg))
	t.Cleanup(s.Close)
	return s
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func get(t *testing.T, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestNewRedirectsToNewRoom(t *testing.T) {
	s := startWeb(t, nil)
	seen := map[string]bool{}
	for i := 0; i < 3; i++ {
		resp, _ := get(t, s.URL+"/new?name=ann")
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusSeeOther || !regexp.MustCompile(`^/r/[a-z2-9-]{15}\?name=ann$`).MatchString(loc) {
			t.Fatalf("GET /new: got %d %q", resp.StatusCode, loc)
		}
		if seen[loc] {
			t.Fatalf("room id repeated: %s", loc)
		}
		seen[loc] = true
	}
}

// TestNewRoomID: ids are three groups of lower-case letters and digits
// with none of i, l, o, 0, 1; every allowed character comes up, and
// 20,000 ids do not repeat.
func TestNewRoomID(t *testing.T) {
	re := regexp.MustCompile(`^[a-hjkmnp-z2-9]{4}-[a-hjkmnp-z2-9]{4}-[a-hjkmnp-z2-9]{5}$`)
	seen := map[string]bool{}
	chars := map[rune]int{}
	for range 20000 {
		id := NewRoomID()
		if !re.MatchString(id) || strings.ContainsAny(id, "ilo01ILO") || !roomname.Valid(id) {
			t.Fatalf("room id %q: want xxxx-xxxx-xxxxx of %s", id, roomAlphabet)
		}
		if seen[id] {
			t.Fatalf("room id %q repeated", id)
		}
		seen[id] = true
		for _, c := range strings.ReplaceAll(id, "-", "") {
			chars[c]++
		}
	}
	if len(chars) != len(roomAlphabet) {
		t.Fatalf("%d distinct characters in 20,000 ids, want all %d of %q", len(chars), len(roomAlphabet), roomAlphabet)
	}
	// 260,000 characters: each expected 8,387 times (σ ≈ 90); drawing
	// byte % 31 without dropping bytes past 248 would give the first
	// eight about 9% more (9,140).
	for c, n := range chars {
		if n < 7800 || n > 9000 {
			t.Errorf("character %q drawn %d times of 260,000, want about 8,387", c, n)
		}
	}
}

// TestLandingPage: / is the landing page (new meeting, join with a code
// or link, the check), not a redirect.
func TestLandingPage(t *testing.T) {
	s := startWeb(t, nil)
	resp, body := get(t, s.URL+"/")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, want := range []string{`href="/new"`, "New meeting", "Join with a code or link", `href="/check"`, `src="/static/landing.js"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the landing page lacks %s", want)
		}
	}
	for _, asset := range []string{"/static/landing.js", "/static/landing.css"} {
		if r, _ := get(t, s.URL+asset); r.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", asset, r.StatusCode)
		}
	}
}

func pageConfig(t *testing.T, body string) map[string]any {
	t.Helper()
	m := iceConfigRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no ice-config in page:\n%s", body)
	}
	var cfg map[string]any
	if err := json.Unmarshal([]byte(m[1]), &cfg); err != nil {
		t.Fatalf("ice-config is not JSON: %v: %s", err, m[1])
	}
	return cfg
}

func TestPage(t *testing.T) {
	s := startWeb(t, nil)
	tests := []struct {
		query, policy string
	}{{"", "all"}, {"relay=1", "relay"}, {"relay=0&name=x", "all"}}
	var users []string
	for _, tt := range tests {
		resp, body := get(t, s.URL+"/r/team-1?"+tt.query)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		cfg := pageConfig(t, body)
		if cfg["iceTransportPolicy"] != tt.policy {
			t.Errorf("%q: iceTransportPolicy %v, want %s", tt.query, cfg["iceTransportPolicy"], tt.policy)
		}
		servers := cfg["iceServers"].([]any)
		users = append(users, servers[0].(map[string]any)["username"].(string))
		if strings.Contains(body, "<script>alert(1)") {
			t.Errorf("credential text broke out of the JSON script block")
		}
		for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options", "Referrer-Policy"} {
			if resp.Header.Get(h) == "" {
				t.Errorf("missing header %s", h)
			}
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control %q, want no-store (credentials are per load)", cc)
		}
	}
	if users[0] == users[1] {
		t.Errorf("two page loads got the same credential %q", users[0])
	}
	for _, bad := range []string{"/r/a%20b", "/r/" + strings.Repeat("x", 65), "/r/%3Cscript%3E"} {
		if resp, _ := get(t, s.URL+bad); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", bad, resp.StatusCode)
		}
	}
}

func TestAssetsAndHealth(t *testing.T) {
	s := startWeb(t, nil)
	for path, ctype := range map[string]string{
		"/static/app.js": "javascript", "/static/mesh.js": "javascript", "/static/signal.js": "javascript",
		"/static/style.css": "text/css", "/healthz": "text/plain",
		"/static/icon.svg": "image/svg+xml", "/favicon.ico": "image/svg+xml",
		"/static/adapt.js": "javascript", "/static/monitor.js": "javascript",
	} {
		resp, body := get(t, s.URL+path)
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Content-Type"), ctype) || body == "" {
			t.Errorf("GET %s: %d %q", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	if resp, _ := get(t, s.URL+"/ws"); resp.StatusCode != http.StatusTeapot {
		t.Errorf("/ws not routed to the WebSocket handler: %d", resp.StatusCode)
	}
	if resp, _ := get(t, s.URL+"/static/../web.go"); resp.StatusCode == 200 {
		t.Errorf("path traversal served a file")
	}
}

func TestAPI(t *testing.T) {
	open := startWeb(t, nil)
	resp, body := get(t, open.URL+"/api/v1/ice-servers?user=dev")
	var rc struct {
		ICEServers []map[string]any `json:"iceServers"`
		Policy     string           `json:"iceTransportPolicy"`
		TTL        int              `json:"ttl"`
	}
	if err := json.Unmarshal([]byte(body), &rc); err != nil || resp.StatusCode != 200 {
		t.Fatalf("open API: %d %v %s", resp.StatusCode, err, body)
	}
	if rc.TTL != 90 || rc.Policy != "all" || !strings.Contains(rc.ICEServers[0]["username"].(string), ":dev<") {
		t.Errorf("open API: got %s", body)
	}
	guarded := startWeb(t, []string{"key-one", "key-two"})
	tests := []struct {
		auth string
		want int
	}{
		{"", 401}, {"Bearer wrong", 401}, {"Basic key-one", 401}, {"Bearer key-one", 200}, {"Bearer key-two", 200},
	}
	for _, tt := range tests {
		resp, _ := get(t, guarded.URL+"/api/v1/ice-servers", "Authorization", tt.auth)
		if resp.StatusCode != tt.want {
			t.Errorf("Authorization %q: got %d, want %d", tt.auth, resp.StatusCode, tt.want)
		}
	}
}

// recordUsers makes ICEServers record the TURN user ids it mints for.
func recordUsers(users *[]string, mu *sync.Mutex) func(*Config) {
	return func(c *Config) {
		next := c.ICEServers
		c.ICEServers = func(user string) ([]rtc.ICEServer, time.Duration) {
			mu.Lock()
			*users = append(*users, user)
			mu.Unlock()
			return next(user)
		}
	}
}

// TestUserIDsNamespaced: the API mints for "api:<key id>:<user>" ("open"
// without keys), a page for "page:<random>"; so neither an API caller
// nor a page load can choose a peer's, a page's or another key's TURN
// user id.
func TestUserIDsNamespaced(t *testing.T) {
	var mu sync.Mutex
	var users []string
	open := startWeb(t, nil, recordUsers(&users, &mu))
	guarded := startWeb(t, []string{"key-one-0123456789", "key-two-0123456789"}, recordUsers(&users, &mu))
	get(t, open.URL+"/api/v1/ice-servers?user=peer:victim")
	get(t, open.URL+"/api/v1/ice-servers?user=dev")
	get(t, guarded.URL+"/api/v1/ice-servers?user=dev", "Authorization", "Bearer key-one-0123456789")
	get(t, guarded.URL+"/api/v1/ice-servers?user=dev", "Authorization", "Bearer key-two-0123456789")
	get(t, open.URL+"/r/room")
	get(t, open.URL+"/r/room")
	mu.Lock()
	defer mu.Unlock()
	if len(users) != 6 {
		t.Fatalf("minted for %q, want 6 users", users)
	}
	k1, k2 := KeyID("key-one-0123456789"), KeyID("key-two-0123456789")
	if k1 == k2 || len(k1) != 8 || strings.Contains("key-one-0123456789", k1) {
		t.Errorf("key ids %q %q: want 8 distinct hex digits, not part of the key", k1, k2)
	}
	// A user with ':' is replaced by a random one; the prefix stays.
	if !strings.HasPrefix(users[0], "api:open:") || strings.Contains(users[0], "victim") {
		t.Errorf("API user=peer:victim minted for %q, want api:open:<random>", users[0])
	}
	want := []string{"api:open:dev", "api:" + k1 + ":dev", "api:" + k2 + ":dev"}
	if !slices.Equal(users[1:4], want) {
		t.Errorf("API users: got %q, want %q", users[1:4], want)
	}
	for _, u := range users[4:] {
		if !strings.HasPrefix(u, "page:") || len(u) < len("page:")+32 {
			t.Errorf("page user %q, want page:<32+ random characters>", u)
		}
	}
	if users[4] == users[5] {
		t.Errorf("two page loads minted for the same user %q", users[4])
	}
}

// TestPageWithoutCredentials: a page PageCredentials says no to carries
// the STUN servers only, mints nothing and takes no token; the API
// refuses without keys in on-join mode and serves keyed callers.
func TestPageWithoutCredentials(t *testing.T) {
	var mu sync.Mutex
	var users []string
	stun := func() []rtc.ICEServer { return []rtc.ICEServer{{URLs: []string{"stun:127.0.0.1:3478"}}} }
	onJoin := func(c *Config) {
		c.PageCredentials = func(room string) bool { return room == "open-room" }
		c.STUNServers = stun
		c.CredentialsOnJoin = func() bool { return true }
		c.Minting = mintlimit.New(1, 1)
	}
	s := startWeb(t, nil, recordUsers(&users, &mu), onJoin)
	for i := 0; i < 3; i++ { // past the burst of 1: no token is taken
		resp, body := get(t, s.URL+"/r/private")
		if resp.StatusCode != 200 {
			t.Fatalf("page %d: status %d", i, resp.StatusCode)
		}
		cfg := pageConfig(t, body)
		servers := cfg["iceServers"].([]any)
		if len(servers) != 1 || strings.Contains(body, "username") || strings.Contains(body, "credential") {
			t.Errorf("page without credentials: got %s", body)
		}
	}
	mu.Lock()
	if len(users) != 0 {
		t.Errorf("pages without credentials minted for %q", users)
	}
	mu.Unlock()
	if resp, _ := get(t, s.URL+"/r/open-room"); resp.StatusCode != 200 {
		t.Errorf("page with credentials: got %d, want 200", resp.StatusCode)
	}
	resp, body := get(t, s.URL+"/api/v1/ice-servers")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "on-join") || strings.Contains(body, "credential\"") {
		t.Errorf("on-join API without keys: got %d %q, want 403 naming on-join", resp.StatusCode, body)
	}
	keyed := startWeb(t, []string{"key-one-0123456789"}, onJoin)
	if resp, _ := get(t, keyed.URL+"/api/v1/ice-servers", "Authorization", "Bearer key-one-0123456789"); resp.StatusCode != 200 {
		t.Errorf("on-join API with a key: got %d, want 200", resp.StatusCode)
	}
	if resp, _ := get(t, keyed.URL+"/api/v1/ice-servers"); resp.StatusCode != 401 {
		t.Errorf("on-join API without the key: got %d, want 401", resp.StatusCode)
	}
}

// TestMintingLimit: page loads and API calls share one bucket per client
// key; past it both get 429 with Retry-After and a message, refusals are
// counted by source, and another client key is unaffected.
func TestMintingLimit(t *testing.T) {
	lim := mintlimit.New(1, 3)
	var client atomic.Value
	client.Store("198.51.100.1/32")
	s := startWeb(t, nil, func(c *Config) {
		c.Minting = lim
		c.ClientKey = func(*http.Request) string { return client.Load().(string) }
	})
	for _, path := range []string{"/r/a", "/api/v1/ice-servers", "/r/b"} {
		if resp, _ := get(t, s.URL+path); resp.StatusCode != 200 {
			t.Fatalf("GET %s within the burst: %d", path, resp.StatusCode)
		}
	}
	for _, path := range []string{"/r/a", "/api/v1/ice-servers"} {
		resp, body := get(t, s.URL+path)
		ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
		if resp.StatusCode != http.StatusTooManyRequests || err != nil || ra < 1 || ra > 60 {
			t.Errorf("GET %s past the limit: %d Retry-After %q, want 429 and 1-60 s", path, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		if !strings.Contains(body, "too many TURN credentials") || strings.Contains(body, "ice-config") {
			t.Errorf("GET %s past the limit: body %q", path, body)
		}
	}
	if got := lim.Refused(); got["page"] != 1 || got["api"] != 1 {
		t.Errorf("refusals: got %v, want page 1 api 1", got)
	}
	client.Store("198.51.100.2/32")
	if resp, _ := get(t, s.URL+"/r/a"); resp.StatusCode != 200 {
		t.Errorf("another client: %d, want 200", resp.StatusCode)
	}
}
