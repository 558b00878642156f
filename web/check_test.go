package web

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
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

// TestCheckSFUProbe: POST /check/sfu hands a same-origin application/sdp
// offer of at most 16 KiB to the SFU's probe and answers 201 with its
// answer; the page says which ports to test. Each door is tried: no SFU
// (404), another content type (415), a body past 16 KiB (413), a page of
// another origin (403), an offer the SFU refuses (400, with why), the
// SFU busy (503 with Retry-After), and a client past its bucket (429).
func TestCheckSFUProbe(t *testing.T) {
	post := func(t *testing.T, url, ctype, body string, hdr ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", url+"/check/sfu", strings.NewReader(body))
		req.Header.Set("Content-Type", ctype)
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
	none := startWeb(t, nil)
	if resp, _ := post(t, none.URL, "application/sdp", "v=0"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("without an SFU: %d, want 404", resp.StatusCode)
	}
	if _, body := get(t, none.URL+"/check"); !regexp.MustCompile(`<script id="sfu-check" type="application/json">\s*null\s*</script>`).MatchString(body) {
		t.Error("the page without an SFU does not say so")
	}

	var offers []string
	busy := false
	s := startWeb(t, nil, func(c *Config) {
		c.Minting = mintlimit.New(60, 4)
		c.SFUCheck = &SFUCheck{UDPPort: 3480, TCPPort: 443, Probe: func(_ context.Context, offer string) (string, error) {
			offers = append(offers, offer)
			switch {
			case busy:
				return "", fmt.Errorf("%w: 16 open", ErrProbeBusy)
			case strings.Contains(offer, "m=audio"):
				return "", fmt.Errorf("%w: a probe offers one data channel section and no media", ErrProbeRefused)
			}
			return "v=0 answer", nil
		}}
	})
	if _, body := get(t, s.URL+"/check"); !strings.Contains(body, `{"udp":3480,"tcp":443}`) {
		t.Error("the page does not name the SFU's ports")
	}
	resp, body := post(t, s.URL, "application/sdp", "v=0 offer", "Origin", s.URL)
	if resp.StatusCode != http.StatusCreated || body != "v=0 answer" || resp.Header.Get("Content-Type") != "application/sdp" ||
		resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("a probe: %d %q %q, want 201 with the answer", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	for _, c := range []struct {
		name, ctype, body string
		hdr               []string
		want              int
		says              string
	}{
		{"plain text", "text/plain", "v=0", nil, http.StatusUnsupportedMediaType, "application/sdp"},
		{"over 16 KiB", "application/sdp", strings.Repeat("a", 16<<10+1), nil, http.StatusRequestEntityTooLarge, "16 KiB"},
		{"from another origin", "application/sdp", "v=0", []string{"Origin", "https://evil.example"}, http.StatusForbidden, "own /check page"},
		{"with media", "application/sdp", "m=audio", nil, http.StatusBadRequest, "no media"},
	} {
		resp, body := post(t, s.URL, c.ctype, c.body, c.hdr...)
		if resp.StatusCode != c.want || !strings.Contains(body, c.says) {
			t.Errorf("%s: %d %q, want %d saying %q", c.name, resp.StatusCode, body, c.want, c.says)
		}
	}
	if len(offers) != 2 {
		t.Errorf("the SFU saw %d offers, want the 2 that passed the checks", len(offers))
	}
	busy = true
	if resp, body := post(t, s.URL, "application/sdp", "v=0"); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "5" {
		t.Errorf("busy: %d %q, want 503 with Retry-After", resp.StatusCode, body)
	}
	// Four tokens (burst 4) went on the three probes that reached the
	// SFU and this one; the next is refused.
	if resp, body := post(t, s.URL, "application/sdp", "v=0"); resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, "connectivity probes") {
		t.Errorf("past the bucket: %d %q, want 429", resp.StatusCode, body)
	}
}
