// Package e2e holds end-to-end tests: a whole icebox on 127.0.0.1 (port 0
// for everything) with real clients: pion/webrtc peers, headless Chromium,
// WebSockets and TURN clients.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/icebox-project/icebox/config"
	"github.com/icebox-project/icebox/daemon"
	"github.com/icebox-project/icebox/turnsrv"
)

// icebox is a running daemon under test.
type icebox struct {
	*daemon.Daemon
	URL string // http://127.0.0.1:port
	cfg *config.Config
	// stop shuts icebox down (as on SIGTERM) and waits for it, once; the
	// test's clean-up calls it too.
	stop func(t *testing.T)
}

// e2eConfig is the configuration of an icebox for these tests, on
// 127.0.0.1 with port 0 everywhere and loopback peers allowed, changed
// by mod (when not nil) and validated again as a file would be. Its
// shutdown grace is 50 ms: a test's clients are gone when it stops, and
// allocations they leave would otherwise hold every test's clean-up.
func e2eConfig(t *testing.T, mod func(*config.Config)) *config.Config {
	t.Helper()
	yml := fmt.Sprintf(`public_ip: 127.0.0.1
http:
  listen: "127.0.0.1:0"
turn:
  listen: ["udp://127.0.0.1:0", "tcp://127.0.0.1:0"]
  relay_ports: "20000-29999"
  allow_peers: [127.0.0.0/8]
metrics:
  listen: "127.0.0.1:0"
shutdown_grace: 50ms
state_dir: %q
`, t.TempDir())
	cfg, err := config.FromBytes("e2e.yaml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	if mod != nil {
		// Apply the change, then validate again as a file would be.
		mod(cfg)
		out, err := yaml.Marshal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if cfg, err = config.FromBytes("e2e-modified.yaml", out); err != nil {
			t.Fatal(err)
		}
	}
	return cfg
}

// startIcebox runs icebox in this process, configured by e2eConfig.
func startIcebox(t *testing.T, mod func(*config.Config)) *icebox {
	t.Helper()
	cfg := e2eConfig(t, mod)
	level := slog.LevelWarn
	if os.Getenv("ICEBOX_E2E_LOG") != "" {
		level = slog.LevelDebug
	}
	var out io.Writer = os.Stderr
	log := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: level}))
	d, err := daemon.New(cfg, daemon.Options{Logger: log, Version: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Serve(ctx) }()
	var once sync.Once
	stop := func(t *testing.T) {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("icebox did not stop within 10s")
			}
		})
	}
	t.Cleanup(func() { stop(t) })
	return &icebox{Daemon: d, URL: "http://" + d.HTTPAddr().String(), cfg: cfg, stop: stop}
}

var iceConfigRe = regexp.MustCompile(`<script id="ice-config" type="application/json">(.*?)</script>`)

// rtcConfiguration is the page's embedded RTCConfiguration.
type rtcConfiguration struct {
	ICEServers         []turnsrv.ICEServer `json:"iceServers"`
	ICETransportPolicy string              `json:"iceTransportPolicy"`
}

// newRoom follows /new to a fresh room and returns its id.
func (ib *icebox) newRoom(t *testing.T) string {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Get(ib.URL + "/new")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/r/") || len(loc) < 13 {
		t.Fatalf("GET /new: got %d %q, want 303 to /r/<10+ characters>", resp.StatusCode, loc)
	}
	return strings.TrimPrefix(loc, "/r/")
}

// pageConfig loads /r/<room>?query and returns its RTCConfiguration.
func (ib *icebox) pageConfig(t *testing.T, room, query string) rtcConfiguration {
	t.Helper()
	resp, err := http.Get(ib.URL + "/r/" + room + "?" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := iceConfigRe.FindSubmatch(body)
	if resp.StatusCode != 200 || m == nil {
		t.Fatalf("GET /r/%s: %d, ice-config found: %v", room, resp.StatusCode, m != nil)
	}
	var rc rtcConfiguration
	if err := json.Unmarshal(m[1], &rc); err != nil {
		t.Fatalf("ice-config is not JSON: %v: %s", err, m[1])
	}
	return rc
}
