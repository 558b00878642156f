package web

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/icebox-project/icebox/internal/mintlimit"
	"github.com/icebox-project/icebox/internal/rtc"
)

// TestCheckPage: /check carries a TURN credential minted per load, like
// a new room's call page, with the security headers, and loads only its
// own assets.
func TestCheckPage(t *testing.T) {
	s := startWeb(t, nil)
	var users []string
	for range 2 {
		resp, body := get(t, s.URL+"/check")
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("GET /check: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control %q, want no-store (credentials are per load)", cc)
		}
		if resp.Header.Get("Content-Security-Policy") == "" {
			t.Error("no Content-Security-Policy")
		}
		if strings.Contains(body, "<script>alert(1)") {
			t.Error("credential text broke out of the JSON script block")
		}
		cfg := pageConfig(t, body)
		servers := cfg["iceServers"].([]any)
		user, _ := servers[0].(map[string]any)["username"].(string)
		if !strings.Contains(user, ":page:") {
			t.Errorf("username %q: want a page's TURN user id", user)
		}
		users = append(users, user)
		for _, asset := range []string{"/static/check.js", "/static/check.css"} {
			if !strings.Contains(body, `"`+asset+`"`) {
				t.Errorf("the page does not load %s", asset)
			}
		}
	}
	if users[0] == users[1] {
		t.Errorf("two loads got the same credential %q", users[0])
	}
	for _, asset := range []string{"/static/check.js", "/static/checkice.js", "/static/check.css"} {
		if resp, _ := get(t, s.URL+asset); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d", asset, resp.StatusCode)
		}
	}
	if resp, _ := get(t, s.URL+"/check/x"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /check/x: %d, want 404", resp.StatusCode)
	}
}

// TestCheckPageOnJoin: when credentials come only on joining (or a room
// needs a password), /check carries STUN URLs only, like such a room's
// page; the browser then joins over /ws for one.
func TestCheckPageOnJoin(t *testing.T) {
	s := startWeb(t, nil, func(c *Config) {
		c.PageCredentials = func(string) bool { return false }
		c.STUNServers = func() []rtc.ICEServer { return []rtc.ICEServer{{URLs: []string{"stun:127.0.0.1:3478"}}} }
		c.ICEServers = func(string) ([]rtc.ICEServer, time.Duration) {
			t.Error("a credential was minted for /check with credentials on join")
			return nil, 0
		}
	})
	resp, body := get(t, s.URL+"/check")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /check: %d", resp.StatusCode)
	}
	servers := pageConfig(t, body)["iceServers"].([]any)
	if len(servers) != 1 || servers[0].(map[string]any)["username"] != nil {
		t.Errorf("iceServers %v, want the STUN URL alone", servers)
	}
}

// TestCheckPageMintingLimit: /check takes its credential from the same
// per-address budget as the call page.
func TestCheckPageMintingLimit(t *testing.T) {
	s := startWeb(t, nil, func(c *Config) { c.Minting = mintlimit.New(1, 1) })
	if resp, _ := get(t, s.URL+"/r/room"); resp.StatusCode != http.StatusOK {
		t.Fatalf("first page: %d", resp.StatusCode)
	}
	resp, _ := get(t, s.URL+"/check")
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
		t.Errorf("GET /check past the budget: %d, Retry-After %q, want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}
