package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/icebox-project/icebox/config"
)

// copyRatesJS measures, from getStats, each copy of the page's camera
// (one per other person) over 3 s: the cap the page set on its sender
// (RTCRtpEncodingParameters.maxBitrate), the encoder's target bitrate
// (outbound-rtp targetBitrate) and the payload rate sent, all in kbit/s,
// with the cap adapt.js prescribes for the room's size.
const copyRatesJS = `(async () => {
  const { videoKbps } = await import('/static/adapt.js');
  const peers = icebox.snapshot().peers;
  const snap = async () => { const out = new Map(); for (const [id, s] of Object.entries(await icebox.stats())) {
    for (const x of s) if (x.type === 'outbound-rtp' && x.kind === 'video')
      out.set(id, {bytes: x.bytesSent, target: x.targetBitrate || 0}); } return out; };
  const a = await snap(); const t0 = performance.now();
  await new Promise(r => setTimeout(r, 3000));
  const b = await snap(); const dt = (performance.now() - t0) / 1000;
  const copies = peers.map(p => {
    const s = p.senders.find(s => s.kind === 'video');
    const e = s && s.encoding;
    const x = b.get(p.id), y = a.get(p.id);
    return {cap: e && e.maxBitrate ? e.maxBitrate / 1000 : 0, target: x ? x.target / 1000 : 0,
      kbps: x && y ? (x.bytes - y.bytes) * 8 / dt / 1000 : 0};
  });
  return {want: videoKbps(peers.length).camera, copies};
})()`

type copyRates struct {
	Want   float64
	Copies []struct{ Cap, Target, Kbps float64 }
}

// Bounds of TestPageMeshBitrate.
const (
	// meshOthers is how many people watch the one sender: adapt.js caps
	// each copy at 736 kbit/s for five (meshCapKbps), well below the
	// 1.7 Mbit/s Chromium's encoder aims a camera copy at on loopback
	// without a cap (its target reaches that within the test, so the cap
	// binds; with three others, 1269 kbit/s, the estimate had not always
	// climbed that far).
	meshOthers  = 5
	meshCapKbps = 736
	// meshTargetFloorKbps is the least the encoder may aim a copy at:
	// above the 30 kbit/s minimum WebRTC clamps a target to (where a cap
	// off by a unit, bit/s for kbit/s, would leave it), below the
	// 300 kbit/s a bandwidth estimate starts from, with room for the
	// estimate to sag on a machine whose cores are busy (93 kbit/s seen
	// at a load average of 65 on two cores).
	meshTargetFloorKbps = 50
	// meshSentFloorKbps is the least payload a copy may carry over the
	// window: video frames flow, however few a starved encoder makes.
	meshSentFloorKbps = 20
	// meshOvershoot is how far above the cap the payload sent over the
	// 3 s window may run: key frames and retransmissions come in bursts.
	meshOvershoot = 1.25
)

// TestPageMeshBitrate: in a mesh of six where one page sends (the five
// others deny camera and microphone, so two cores encode five copies,
// not thirty), every copy of the sender's camera is capped as adapt.js
// says for five others, and the real browser keeps to it: the encoder's
// target is at most the cap, the payload sent at most the cap plus
// bursts, and both above floors that show video flowing. (Figures for
// a mesh of senders: TestPageMeshBitrateFigures.)
func TestPageMeshBitrate(t *testing.T) {
	lane(t, laneAlone)
	ib := startIcebox(t, func(c *config.Config) {
		c.TURN.MaxTCPConnectionsPerIP = -1
		c.TURN.MaxAllocationsPerIP = -1
	})
	sender := newBrowser(t)
	watchers := newBrowserFlags(t, chromedp.Flag("use-fake-ui-for-media-stream", "deny"))
	url := ib.URL + "/r/" + ib.newRoom(t) + "?test=1&autojoin=1&name="
	a := newTab(t, sender, url+"a")
	ws := make([]context.Context, meshOthers)
	for i := range ws {
		ws[i] = newTab(t, watchers, fmt.Sprintf("%sw%d", url, i))
	}
	for i, w := range ws {
		waitForWithin(t, w, fmt.Sprintf("watcher %d plays a's video", i),
			`[...document.querySelectorAll('.tile.remote video')].some(v => v.videoWidth > 0 && v.currentTime > 0)`, 60*time.Second)
	}
	waitFor(t, a, "a has its peers", fmt.Sprintf(`icebox.snapshot().peers.length === %d`, meshOthers))

	r := measureCopies(t, a)
	if r.Want != meshCapKbps {
		t.Errorf("adapt.js caps a copy for %d others at %.0f kbit/s, want %d (the bound this test is sized for)", meshOthers, r.Want, meshCapKbps)
	}
	if len(r.Copies) != meshOthers {
		t.Fatalf("got %d copies, want %d", len(r.Copies), meshOthers)
	}
	checkCopies(t, "a", r)
}

// measureCopies runs copyRatesJS in tab.
func measureCopies(t *testing.T, tab context.Context) copyRates {
	t.Helper()
	r, err := chromedp.Run(tab, chromedp.Evaluate[copyRates](copyRatesJS, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// checkCopies checks the copies of page's camera against the cap adapt.js
// prescribes: each is capped at it, the encoder aims at most at it, and
// it carries at most the cap plus bursts; target and payload stay above
// their floors.
func checkCopies(t *testing.T, page string, r copyRates) {
	t.Helper()
	for i, c := range r.Copies {
		t.Logf("%s copy %d: cap %.0f, target %.0f, sent %.0f kbit/s", page, i, c.Cap, c.Target, c.Kbps)
		if c.Cap != r.Want {
			t.Errorf("%s copy %d: cap %.0f kbit/s, want %.0f (adapt.js)", page, i, c.Cap, r.Want)
		}
		if c.Target > r.Want || c.Target < meshTargetFloorKbps {
			t.Errorf("%s copy %d: encoder target %.0f kbit/s, want %d to %.0f", page, i, c.Target, meshTargetFloorKbps, r.Want)
		}
		if c.Kbps > r.Want*meshOvershoot || c.Kbps < meshSentFloorKbps {
			t.Errorf("%s copy %d: sent %.0f kbit/s, want %d to %.0f", page, i, c.Kbps, meshSentFloorKbps, r.Want*meshOvershoot)
		}
	}
}
