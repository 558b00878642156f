package web

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var iceConfigRe = regexp.MustCompile(`<script id="ice-config" type="application/json">(.*?)</script>`)

func startWeb(t *testing.T, keys []string) *httptest.Server {
	t.Helper()
	var n atomic.Int64
	h := New(Config{
		ICEServers: func(user string) (any, time.Duration) {
			i := n.Add(1)
			// A hostile value: the page must keep it inside the JSON.
			return []map[string]any{{"urls": []string{"turn:127.0.0.1:3478"}, "username": fmt.Sprintf("%d:%s</script><script>alert(1)</script>", i, user), "credential": "c"}}, 90 * time.Second
		},
		WebSocket: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }),
		APIKeys:   func() []string { return keys },
	})
	s := httptest.NewServer(h)
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

func TestRedirectToNewRoom(t *testing.T) {
	s := startWeb(t, nil)
	seen := map[string]bool{}
	for i := 0; i < 3; i++ {
		resp, _ := get(t, s.URL+"/?name=ann")
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusSeeOther || !regexp.MustCompile(`^/r/[A-Za-z0-9_-]{10,}\?name=ann$`).MatchString(loc) {
			t.Fatalf("GET /: got %d %q", resp.StatusCode, loc)
		}
		if seen[loc] {
			t.Fatalf("room id repeated: %s", loc)
		}
		seen[loc] = true
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
