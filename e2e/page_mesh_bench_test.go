package e2e

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/icebox-project/icebox/config"
)

// sendRateJS measures what one page sends over 5 s, from getStats: video
// and audio kbit/s summed over its connections, the number of video
// copies, and the mean encoded frame size.
const sendRateJS = `(async () => {
  const snap = async () => { const out = []; for (const [id, s] of Object.entries(await icebox.stats())) {
    for (const x of s) if (x.type === 'outbound-rtp') out.push({id: id + x.id, kind: x.kind, bytes: x.bytesSent, w: x.frameWidth || 0, h: x.frameHeight || 0}); } return out; };
  const a = await snap(); const t0 = performance.now();
  await new Promise(r => setTimeout(r, 5000));
  const b = await snap(); const dt = (performance.now() - t0) / 1000;
  const res = {video: 0, audio: 0, copies: 0, w: 0, h: 0};
  for (const x of b) { const y = a.find(z => z.id === x.id); if (!y) continue;
    const kbps = (x.bytes - y.bytes) * 8 / dt / 1000; res[x.kind] += kbps;
    if (x.kind === 'video') { res.copies++; res.w += x.w; res.h += x.h; } }
  if (res.copies) { res.w /= res.copies; res.h /= res.copies; }
  return res; })()`

type sendRate struct {
	Video, Audio float64
	Copies       int
	W, H         float64
}

// TestPageMeshBitrateFigures is a benchmark, whose figures with
// adaptation on are also held to TestPageMeshBitrate's bounds (the test
// that always runs, with one sender): it runs only with
// ICEBOX_BENCH_MESH set to a number of pages (2 to 8; 1 means 6). It
// measures what each sender of a mesh (six people by default)
// of Chromium pages on 127.0.0.1 sends, with the page's mesh adaptation
// (adapt.js) off and on: video and audio kbit/s per sender, the number of
// copies and their mean frame size. Figures for docs/BENCHMARKS.md:
//
//	ICEBOX_BENCH_MESH=6 go test -count=1 -v -run TestPageMeshBitrateFigures ./e2e
//
// Loopback has no bandwidth limit, so with adaptation off the browser's
// own congestion control decides; on a 2-core machine six pages also
// compete for CPU, which caps what the encoders make either way.
func TestPageMeshBitrateFigures(t *testing.T) {
	pages, _ := strconv.Atoi(os.Getenv("ICEBOX_BENCH_MESH"))
	if pages == 0 {
		t.Skip("a benchmark: set ICEBOX_BENCH_MESH to a number of pages")
	}
	lane(t, laneAlone)
	if pages < 2 || pages > 8 {
		pages = 6
	}
	ib := startIcebox(t, func(c *config.Config) {
		c.TURN.MaxTCPConnectionsPerIP = -1
		c.TURN.MaxAllocationsPerIP = -1
	})
	br := newBrowser(t)
	tabs := make([]context.Context, pages)
	for i := range tabs {
		tabs[i] = newTab(t, br, fmt.Sprintf("%s/r/mesh?test=1&autojoin=1&name=p%d", ib.URL, i))
	}
	for i, tab := range tabs {
		waitForWithin(t, tab, fmt.Sprintf("page %d plays %d videos", i, pages-1), fmt.Sprintf(
			`[...document.querySelectorAll('.tile.remote video')].filter(v => v.videoWidth > 0 && v.currentTime > 0).length === %d`, pages-1), 90*time.Second)
	}
	for _, on := range []bool{false, true} {
		for _, tab := range tabs {
			eval[any](t, tab, fmt.Sprintf(`icebox.setAdaptation(%v)`, on))
		}
		// Let the encoders and the bandwidth estimates settle on the new caps.
		time.Sleep(20 * time.Second)
		var sum sendRate
		for i, tab := range tabs {
			r, err := chromedp.Run(tab, chromedp.Evaluate[sendRate](sendRateJS, chromedp.EvalAwaitPromise))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("adaptation %v: page %d sends video %.0f kbit/s in %d copies (%.0fx%.0f), audio %.0f kbit/s", on, i, r.Video, r.Copies, r.W, r.H, r.Audio)
			sum.Video += r.Video
			sum.Audio += r.Audio
		}
		t.Logf("adaptation %v, %d pages: mean per sender: video %.0f kbit/s, audio %.0f kbit/s", on, pages, sum.Video/float64(pages), sum.Audio/float64(pages))
		if on {
			// With adaptation on, the figures come with TestPageMeshBitrate's
			// bounds: every copy capped, the encoders under the caps.
			for i, tab := range tabs {
				checkCopies(t, fmt.Sprintf("page %d", i), measureCopies(t, tab))
			}
		}
	}
}
