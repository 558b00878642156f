package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/icebox-project/icebox/config"
	"github.com/icebox-project/icebox/internal/testenv"
)

// firefoxResult is what e2e/js/firefox-call.mjs prints.
type firefoxResult struct {
	OK      bool     `json:"ok"`
	Error   string   `json:"error"`
	Steps   []string `json:"steps"`
	Firefox string   `json:"firefox"`
	Badge   string   `json:"badge"`
	Share   string   `json:"firefoxShare"`
	Timing  struct {
		MediaReadyToVideoMs float64 `json:"mediaReadyToVideoMs"`
		OpenToVideoMs       float64 `json:"openToVideoMs"`
	} `json:"timing"`
}

// TestFirefoxCallsChromium: Firefox ESR, driven over WebDriver BiDi by
// puppeteer-core (e2e/js/firefox-call.mjs), calls Chromium through
// icebox's relay (?relay=1 on 127.0.0.1): video both ways, both relayed,
// chat both ways, and a screen share from Chromium on Firefox's stage
// (and from Firefox, where it can fake one). Needs firefox-esr, chromium,
// node and the npm packages of package.json (make typecheck installs
// them); skipped locally without them, failed under CI=true.
func TestFirefoxCallsChromium(t *testing.T) {
	lane(t, laneBrowser)
	firefox := testenv.Tool(t, "apt-get install firefox-esr", "firefox-esr")
	chromium := chromiumPath(t)
	node, root := puppeteerNode(t)
	// Two browsers' pages from one address: more TURN allocations than a
	// user's default.
	ib := startIcebox(t, func(c *config.Config) { c.TURN.MaxAllocationsPerUser = -1 })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(root, "e2e", "js", "firefox-call.mjs"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "ICEBOX_URL="+ib.URL, "FIREFOX="+firefox, "CHROMIUM="+chromium, "ROOM="+ib.newRoom(t),
		"HOME="+t.TempDir()) // Firefox's profile and caches
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var res firefoxResult
	if err := json.Unmarshal(bytes.TrimSpace(stdout.Bytes()), &res); err != nil {
		t.Fatalf("firefox-call.mjs: %v; output %q; stderr:\n%s", runErr, stdout.String(), stderr.String())
	}
	t.Logf("Firefox %s: %v; badge %q; Firefox's own share: %s; camera ready → remote video %.0f ms (page open → video %.0f ms)",
		res.Firefox, res.Steps, res.Badge, res.Share, res.Timing.MediaReadyToVideoMs, res.Timing.OpenToVideoMs)
	if !res.OK || runErr != nil {
		t.Fatalf("Firefox call: %s (%v); steps done: %v; stderr:\n%s", res.Error, runErr, res.Steps, stderr.String())
	}
}
