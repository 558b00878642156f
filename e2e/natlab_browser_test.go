//go:build linux

package e2e

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/icebox-project/icebox/internal/netlab"
)

// labBrowser starts a headless Chromium inside ns (a fake camera and
// microphone, as newBrowser) and returns its context. chromedp talks to
// it over the DevTools pipe, which ip netns exec hands on to Chromium, so
// nothing listens on a port. Certificates are not checked: the lab's
// icebox has one from a CA no browser knows.
func labBrowser(t *testing.T, ns *netlab.Netns) context.Context {
	t.Helper()
	return newBrowserFlags(t,
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) { ns.Wrap(cmd) }))
}

// labPair is the selected candidate pair the call page reports, with the
// relay protocol of its local candidate.
type labPair struct {
	pairInfo
	RelayProtocol string `json:"relayProtocol"`
	URL           string `json:"url"`
}

// pagePairJS lists the selected pair of each peer connection of the call
// page (window.icebox), with the ICE server URL of its local candidate.
const pagePairJS = `(async () => {
  const out = [];
  const pairs = await window.icebox.pairs();
  const stats = await window.icebox.stats();
  for (const [id, pair] of Object.entries(pairs)) {
    if (!pair) { out.push({}); continue; }
    const byId = new Map(stats[id].map((s) => [s.id, s]));
    let url = '';
    for (const s of stats[id]) {
      if (s.type !== 'transport' || !s.selectedCandidatePairId) continue;
      const cp = byId.get(s.selectedCandidatePairId);
      const local = cp && byId.get(cp.localCandidateId);
      if (local && local.url) url = local.url;
    }
    out.push({...pair, url});
  }
  return out;
})()`

// pagePair is the one selected pair of the call page in tab.
func pagePair(t *testing.T, tab context.Context, name string) labPair {
	t.Helper()
	pairs, err := chromedp.Run(tab, chromedp.Evaluate[[]labPair](pagePairJS, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("page %s: pairs: %v", name, err)
	}
	if len(pairs) != 1 || pairs[0].Local == "" {
		t.Fatalf("page %s: selected pairs %+v, want one", name, pairs)
	}
	return pairs[0]
}

// browserCall opens the call page of room at base in Chromium in a and b
// (autojoin) and waits until each plays the other's video; it returns the
// pairs the pages selected.
func (nl *natLab) browserCall(t *testing.T, a, b *netlab.Netns, baseA, baseB, room string) (pa, pb labPair) {
	t.Helper()
	ba, bb := labBrowser(t, a), labBrowser(t, b)
	start := time.Now()
	tabA := newTab(t, ba, baseA+"/r/"+room+"?test=1&name=a&autojoin=1")
	tabB := newTab(t, bb, baseB+"/r/"+room+"?test=1&name=b&autojoin=1")
	deadline := time.Now().Add(45 * time.Second)
	for _, tc := range []struct {
		tab        context.Context
		name, peer string
	}{{tabA, "a", "b"}, {tabB, "b", "a"}} {
		v, err := waitForRemoteVideo(tc.tab, deadline)
		if err != nil {
			state, _ := chromedp.Run(tc.tab, chromedp.Evaluate[string](
				`document.getElementById('status').textContent + ' ' + JSON.stringify(window.icebox.snapshot().peers.map(p => p.connectionState))`))
			t.Fatalf("page %s: %v (status and connections: %s)%s", tc.name, err, state, nl.iceboxLogs())
		}
		if v.Name != tc.peer {
			t.Errorf("page %s plays %q's video, want %q", tc.name, v.Name, tc.peer)
		}
		t.Logf("page %s plays %s's video %dx%d, %.1fs after opening", tc.name, v.Name, v.W, v.H, time.Since(start).Seconds())
	}
	pa, pb = pagePair(t, tabA, "a"), pagePair(t, tabB, "b")
	t.Logf("a: %s %s → %s %s (relay over %q, %s)", pa.Local, pa.LocalAddress, pa.Remote, pa.RemoteAddress, pa.RelayProtocol, pa.URL)
	t.Logf("b: %s %s → %s %s (relay over %q, %s)", pb.Local, pb.LocalAddress, pb.Remote, pb.RemoteAddress, pb.RelayProtocol, pb.URL)
	return pa, pb
}
