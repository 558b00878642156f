package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/icebox-project/icebox/config"
	"github.com/icebox-project/icebox/internal/sfutest"
)

// TestClusterSFUPages: an SFU room on a cluster of three nodes. A pion
// peer joins first, on node a, whose SFU then hosts the room; two
// Chromium pages open the room on nodes b and c. Each page has one
// connection, to a's SFU, and plays the other page's and the pion
// peer's video. Node a, a process of its own, is killed (SIGKILL): the
// pages are told to renew their SFU connection, make a new one to the
// successor's SFU, and play each other's video again within 10 s; the
// pion peer's tile goes.
func TestClusterSFUPages(t *testing.T) {
	// Alone: the 10 s bound holds the cluster's 4 to 6 s to take a killed
	// node for gone, and the pages' renewal on a machine they share only
	// with the nodes.
	lane(t, laneAlone)
	chromiumPath(t)
	sfuRoom := func(c *config.Config) {
		c.SFU = &config.SFU{Listen: []string{"udp://127.0.0.1:0"}}
		c.Signaling.Rooms = map[string]config.Room{"stage": {Media: "sfu"}}
	}
	key := clusterKey(t)
	a := startChildIcebox(t, childConfig(t, clusterNodeConfig("a", key, "", sfuRoom)))
	if a.cluster == "" {
		t.Fatalf("node a logged no cluster listener:\n%s", a.logText())
	}
	b := startIcebox(t, clusterNodeConfig("b", key, a.cluster, sfuRoom))
	c := startIcebox(t, clusterNodeConfig("c", key, a.cluster, sfuRoom))
	awaitCluster(t, []*icebox{b, c}, 3)
	aURL := "ws://" + a.http + "/ws"
	pion, w := sfutest.Dial(t, aURL, "stage", "pia")
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
	killed := time.Now()
	a.kill()
	seen := make([]int, len(tabs))
	for i, tab := range tabs {
		seen[i] = eval[int](t, tab, fmt.Sprintf(`window.__sfuFrames()[%q] || 0`, ids[1-i]))
	}
	for i, tab := range tabs {
		waitForWithin(t, tab, names[i]+" plays "+names[1-i]+"'s video again, through the successor's SFU", plays(tab, ids[1-i], seen[i]+8), 10*time.Second-time.Since(killed))
		t.Logf("%s plays %s's video again %.1f s after node a was killed", names[i], names[1-i], time.Since(killed).Seconds())
		waitFor(t, tab, names[i]+"'s page drops pia's tile", fmt.Sprintf(`!document.querySelector('.tile.remote[data-peer=%q]')`, pion.ID))
	}
}
