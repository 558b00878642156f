package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/icebox-project/icebox/config"
	"github.com/icebox-project/icebox/internal/sfutest"
)

// TestClusterSFUPages: an SFU room on a cluster of three nodes. A pion
// peer joins first, on node a, whose SFU then hosts the room; two
// Chromium pages open the room on nodes b and c. Each page has one
// connection, to a's SFU, and plays the other page's and the pion
// peer's video. Node a stops: the pages are told to renew their SFU
// connection, make a new one to the successor's SFU, and play each
// other's video again; the pion peer's tile goes.
func TestClusterSFUPages(t *testing.T) {
	lane(t, laneBrowser)
	chromiumPath(t)
	nodes := startClusterNodes(t, func(c *config.Config) {
		c.SFU = &config.SFU{Listen: []string{"udp://127.0.0.1:0"}}
		c.Signaling.Rooms = map[string]config.Room{"stage": {Media: "sfu"}}
	})
	a, b, c := nodes[0], nodes[1], nodes[2]
	pion, w := sfutest.Dial(t, "ws"+strings.TrimPrefix(a.URL, "http")+"/ws", "stage", "pia")
	if w.Media != "sfu" {
		t.Fatalf("welcome media %q, want sfu", w.Media)
	}
	pion.PublishSimulcast()
	br := newBrowser(t)
	names := []string{"ben", "cat"}
	var tabs []context.Context
	for i, ib := range []*icebox{b, c} {
		tabs = append(tabs, newTab(t, br, ib.URL+"/r/stage?test=1&autojoin=1&name="+names[i]))
	}
	ids := make([]string, 2)
	for i, tab := range tabs {
		waitForWithin(t, tab, names[i]+" publishes over one connection, to the SFU",
			`(() => { const s = icebox.snapshot(); return s.media === 'sfu' && s.peers.length === 0 && !!s.sfu && s.sfu.connectionState === 'connected' && s.sfu.senders === 2; })()`,
			30*time.Second)
		eval[bool](t, tab, framesCounterJS)
		ids[i] = eval[string](t, tab, `icebox.snapshot().myId`)
	}
	plays := func(tab context.Context, id string, more int) string {
		return fmt.Sprintf(`(window.__sfuFrames()[%q] || 0) > %d`, id, more)
	}
	for i, tab := range tabs {
		waitForWithin(t, tab, names[i]+" plays pia's video through a's SFU", plays(tab, pion.ID, 10), 30*time.Second)
		waitForWithin(t, tab, names[i]+" plays "+names[1-i]+"'s video through a's SFU", plays(tab, ids[1-i], 10), 30*time.Second)
	}
	if os.Getenv("ICEBOX_CLUSTER_SFU_FAILOVER") == "" {
		// Open defect: in about 1 run in 4, a page's renewed connection
		// gets answers whose m-lines do not match its offer ("The order
		// of m-lines in answer doesn't match order in offer"), so it
		// stays without media. The successor seems to answer offers the
		// old connection sent before the renew, queued for the member's
		// new participant. Pion peers come back (e2e/partition's
		// TestSFURoomSurvivesHost); until the pages do, this runs on
		// request.
		t.Skip("a page's renewed SFU connection sometimes gets answers to its old offers (open defect); set ICEBOX_CLUSTER_SFU_FAILOVER=1 to run the host's stop")
	}
	stopped := time.Now()
	a.stop(t)
	for i, tab := range tabs {
		seen := eval[int](t, tab, fmt.Sprintf(`window.__sfuFrames()[%q] || 0`, ids[1-i]))
		waitForWithin(t, tab, names[i]+" plays "+names[1-i]+"'s video again, through the successor's SFU", plays(tab, ids[1-i], seen+30), 30*time.Second)
		t.Logf("%s plays %s's video again %.1f s after node a stopped", names[i], names[1-i], time.Since(stopped).Seconds())
		waitFor(t, tab, names[i]+"'s page drops pia's tile", fmt.Sprintf(`!document.querySelector('.tile.remote[data-peer=%q]')`, pion.ID))
	}
}
