package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/icebox-project/icebox/config"
	"github.com/icebox-project/icebox/internal/turntest"
	"github.com/icebox-project/icebox/turnsrv"
)

// joinReply is the first answer to a join: welcome or error.
type joinReply struct {
	Type       string              `json:"type"`
	Code       string              `json:"code"`
	Message    string              `json:"message"`
	ID         string              `json:"id"`
	ICEServers []turnsrv.ICEServer `json:"iceServers"`
}

// wsJoin opens /ws (with X-Forwarded-For xff when not ""), sends join and
// returns the raw first reply and its decoding. The socket stays open
// until the test ends.
func wsJoin(t *testing.T, ib *icebox, xff, room, name, password string) ([]byte, joinReply) {
	t.Helper()
	hdr := http.Header{"Origin": {ib.URL}}
	if xff != "" {
		hdr.Set("X-Forwarded-For", xff)
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(ib.URL, "http")+"/ws", hdr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	if err := ws.WriteJSON(map[string]string{"type": "join", "room": room, "name": name, "password": password}); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, raw, err := ws.ReadMessage()
	if err != nil {
		t.Fatalf("join %s as %s: %v", room, name, err)
	}
	var r joinReply
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("join reply %s: %v", raw, err)
	}
	return raw, r
}

// turnUDP is icebox's UDP TURN listener address.
func (ib *icebox) turnUDP(t *testing.T) string {
	t.Helper()
	for _, a := range ib.TURN().Addrs() {
		if a.Network() == "udp" {
			return a.String()
		}
	}
	t.Fatal("no UDP TURN listener")
	return ""
}

// get fetches path with headers given as name, value pairs.
func (ib *icebox) get(t *testing.T, path string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", ib.URL+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// turnCredential is the entry of servers that carries a credential.
func turnCredential(t *testing.T, servers []turnsrv.ICEServer) turnsrv.ICEServer {
	t.Helper()
	for _, s := range servers {
		if s.Username != "" {
			return s
		}
	}
	t.Fatalf("no TURN credential in %+v", servers)
	return turnsrv.ICEServer{}
}

// TestQuotaSquatting: an attacker who knows a peer's id (everyone in its
// room does) mints credentials for it through the API and page loads and
// fills their allocation quota; the peer's own credential from welcome
// still allocates, because it was minted for an id nobody else can see
// or choose.
func TestQuotaSquatting(t *testing.T) {
	lane(t, laneLight)
	ib := startIcebox(t, nil) // max_allocations_per_user: 10
	room := ib.newRoom(t)
	_, w := wsJoin(t, ib, "", room, "victim", "")
	if w.Type != "welcome" {
		t.Fatalf("victim's join: got %+v", w)
	}
	victim := turnCredential(t, w.ICEServers)
	if strings.Contains(victim.Username, w.ID) {
		t.Fatalf("the victim's TURN username %q holds its public peer id %q", victim.Username, w.ID)
	}
	udp := ib.turnUDP(t)
	var squatted []turnsrv.ICEServer
	for i := 0; i < 11; i++ {
		resp, body := ib.get(t, "/api/v1/ice-servers?user="+w.ID)
		var rc rtcConfiguration
		if err := json.Unmarshal([]byte(body), &rc); err != nil || resp.StatusCode != 200 {
			t.Fatalf("API mint %d: %d %v", i, resp.StatusCode, err)
		}
		squatted = append(squatted, turnCredential(t, rc.ICEServers))
	}
	for i := 0; i < 3; i++ {
		squatted = append(squatted, turnCredential(t, ib.pageConfig(t, room, "").ICEServers))
	}
	allocated := 0
	for _, c := range squatted {
		if r, err := turntest.Allocate(udp, c.Username, c.Credential); err == nil {
			t.Cleanup(r.Close)
			allocated++
		}
	}
	if allocated < 10 {
		t.Fatalf("the attacker made %d allocations, want at least 10 (a full quota)", allocated)
	}
	r, err := turntest.Allocate(udp, victim.Username, victim.Credential)
	if err != nil {
		t.Fatalf("the victim's own credential no longer allocates after %d attacker allocations: %v", allocated, err)
	}
	r.Close()
}

// TestCredentialRateLimit: one client address (here one IPv6 /64, named
// by X-Forwarded-For from a trusted proxy on 127.0.0.1) shares one
// minting bucket over page loads, the API and /ws; past it the page and
// the API get 429 with Retry-After, a join gets rate-limited without
// credentials, and /metrics counts each refusal by source. Another /64 is
// unaffected.
func TestCredentialRateLimit(t *testing.T) {
	lane(t, laneLight)
	ib := startIcebox(t, func(c *config.Config) {
		c.TURN.CredentialsPerMinute = 1
		c.TURN.CredentialsBurst = 3
		c.HTTP.TrustedProxies = []string{"127.0.0.0/8"}
	})
	room := ib.newRoom(t)
	const first = "2001:db8:1:2::1"
	if resp, _ := ib.get(t, "/r/"+room, "X-Forwarded-For", first); resp.StatusCode != 200 {
		t.Fatalf("page within the burst: %d", resp.StatusCode)
	}
	if resp, _ := ib.get(t, "/api/v1/ice-servers", "X-Forwarded-For", "2001:db8:1:2::2"); resp.StatusCode != 200 {
		t.Fatalf("API within the burst: %d", resp.StatusCode)
	}
	if _, w := wsJoin(t, ib, "2001:db8:1:2:ffff::3", room, "a", ""); w.Type != "welcome" {
		t.Fatalf("join within the burst: %+v", w)
	}
	for _, path := range []string{"/r/" + room, "/api/v1/ice-servers"} {
		resp, body := ib.get(t, path, "X-Forwarded-For", "2001:db8:1:2:abcd::4")
		ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
		if resp.StatusCode != http.StatusTooManyRequests || err != nil || ra < 1 {
			t.Errorf("GET %s past the limit: %d Retry-After %q, want 429 with Retry-After", path, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		if !strings.Contains(body, "too many TURN credentials") || strings.Contains(body, "credential\"") {
			t.Errorf("GET %s past the limit: body %q", path, body)
		}
	}
	raw, w := wsJoin(t, ib, "2001:db8:1:2:abcd::5", room, "b", "")
	if w.Type != "error" || w.Code != "rate-limited" || strings.Contains(string(raw), "iceServers") {
		t.Errorf("join past the limit: got %s, want a rate-limited error without credentials", raw)
	}
	if resp, _ := ib.get(t, "/r/"+room, "X-Forwarded-For", "2001:db8:1:3::1"); resp.StatusCode != 200 {
		t.Errorf("page from another /64: %d, want 200", resp.StatusCode)
	}
	m := scrape(t, ib)
	for _, src := range []string{"page", "api", "ws"} {
		name := `icebox_credentials_rate_limited_total{source="` + src + `"}`
		if m[name] != 1 {
			t.Errorf("%s = %v, want 1", name, m[name])
		}
	}
}

// TestPrivateRooms: a room with a password (its own or the default), or
// any room with turn.credentials on-join, gets a page without TURN
// credentials (STUN only); a wrong password's reply carries none; the
// welcome after a correct join does, and they allocate.
func TestPrivateRooms(t *testing.T) {
	lane(t, laneLight)
	tests := []struct {
		name, room, password string
		mod                  func(*config.Config)
		openRoom             bool // another room's page still carries credentials
	}{
		{"room password", "team", "team-pw", func(c *config.Config) {
			c.Signaling.Rooms = map[string]config.Room{"team": {Password: "team-pw"}}
		}, true},
		{"default room password", "any-room", "default-pw", func(c *config.Config) {
			c.Signaling.DefaultRoomPassword = "default-pw"
		}, false},
		{"on-join", "lobby", "", func(c *config.Config) {
			c.TURN.Credentials = config.CredentialsOnJoin
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ib := startIcebox(t, tt.mod)
			resp, body := ib.get(t, "/r/"+tt.room)
			if resp.StatusCode != 200 {
				t.Fatalf("page: %d", resp.StatusCode)
			}
			if strings.Contains(body, "username") || strings.Contains(body, "credential") {
				t.Errorf("the page of %s carries TURN credentials:\n%s", tt.room, iceConfigRe.FindString(body))
			}
			rc := ib.pageConfig(t, tt.room, "")
			if len(rc.ICEServers) == 0 {
				t.Errorf("the page lost its STUN servers")
			}
			for _, s := range rc.ICEServers {
				for _, u := range s.URLs {
					if !strings.HasPrefix(u, "stun:") {
						t.Errorf("page URL %q, want stun: only", u)
					}
				}
			}
			if tt.password != "" {
				raw, w := wsJoin(t, ib, "", tt.room, "guesser", "wrong")
				if w.Code != "bad-password" || strings.Contains(string(raw), "iceServers") || strings.Contains(string(raw), "credential") {
					t.Errorf("wrong password: got %s, want bad-password without credentials", raw)
				}
			}
			_, w := wsJoin(t, ib, "", tt.room, "member", tt.password)
			if w.Type != "welcome" {
				t.Fatalf("correct join: got %+v", w)
			}
			c := turnCredential(t, w.ICEServers)
			turntest.MustAllocate(t, ib.turnUDP(t), c.Username, c.Credential)
			if tt.openRoom {
				turnCredential(t, ib.pageConfig(t, "open-room", "").ICEServers)
			}
		})
	}
}

// TestOnJoinAPI: with turn.credentials on-join the API is no back door:
// without http.api_keys it refuses (403, saying why); with keys it serves
// keyed callers, whose credentials allocate.
func TestOnJoinAPI(t *testing.T) {
	lane(t, laneLight)
	const key = "api-key-0123456789abcdef"
	open := startIcebox(t, func(c *config.Config) { c.TURN.Credentials = config.CredentialsOnJoin })
	resp, body := open.get(t, "/api/v1/ice-servers?user=x")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "on-join") || strings.Contains(body, "credential\"") {
		t.Errorf("on-join API without keys: got %d %q, want 403 naming on-join", resp.StatusCode, body)
	}
	keyed := startIcebox(t, func(c *config.Config) {
		c.TURN.Credentials = config.CredentialsOnJoin
		c.HTTP.APIKeys = []string{key}
	})
	if resp, _ := keyed.get(t, "/api/v1/ice-servers"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("on-join API with keys, no key given: got %d, want 401", resp.StatusCode)
	}
	resp, body = keyed.get(t, "/api/v1/ice-servers?user=app1", "Authorization", "Bearer "+key)
	var rc rtcConfiguration
	if err := json.Unmarshal([]byte(body), &rc); err != nil || resp.StatusCode != 200 {
		t.Fatalf("on-join API with a key: %d %v", resp.StatusCode, err)
	}
	c := turnCredential(t, rc.ICEServers)
	if _, user, _ := strings.Cut(c.Username, ":"); !strings.HasPrefix(user, "api:") || !strings.HasSuffix(user, ":app1") {
		t.Errorf("API credential user %q, want api:<key id>:app1", user)
	}
	turntest.MustAllocate(t, keyed.turnUDP(t), c.Username, c.Credential)
}

// TestReloadCredentials: a reload switches turn.credentials and the
// minting limit on a running icebox.
func TestReloadCredentials(t *testing.T) {
	lane(t, laneLight)
	ib := startIcebox(t, nil)
	room := ib.newRoom(t)
	turnCredential(t, ib.pageConfig(t, room, "").ICEServers)
	cfg := *ib.cfg
	cfg.TURN.Credentials = config.CredentialsOnJoin
	if _, err := ib.Reload(&cfg); err != nil {
		t.Fatal(err)
	}
	if _, body := ib.get(t, "/r/"+room); strings.Contains(body, "credential") {
		t.Errorf("after reloading to on-join the page carries credentials:\n%s", iceConfigRe.FindString(body))
	}
	if resp, _ := ib.get(t, "/api/v1/ice-servers"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("after reloading to on-join the open API answers %d, want 403", resp.StatusCode)
	}
	cfg.TURN.Credentials = config.CredentialsOnPage
	cfg.TURN.CredentialsPerMinute, cfg.TURN.CredentialsBurst = 1, 1
	if _, err := ib.Reload(&cfg); err != nil {
		t.Fatal(err)
	}
	statuses := []int{}
	for i := 0; i < 2; i++ {
		resp, _ := ib.get(t, "/r/"+room)
		statuses = append(statuses, resp.StatusCode)
	}
	if statuses[1] != http.StatusTooManyRequests {
		t.Errorf("after reloading to a burst of 1, two page loads: %v, want the second 429", statuses)
	}
}
