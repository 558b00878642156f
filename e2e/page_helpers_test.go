package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Helpers of the page tests: viewports, screenshots, typing, and the
// layout measurement.

// viewport is a window size the layout is checked at.
type viewport struct {
	name  string
	w, h  int64
	phone bool
}

var viewports = []viewport{{"desktop", 1280, 800, false}, {"phone", 390, 844, true}}

// newBrowserFlags is newBrowser with flags added or overridden.
func newBrowserFlags(t *testing.T, flags ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.NoSandbox,
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		// Sound plays without a click, and the page's AudioContext (the
		// microphone meter, the ring) runs, as after a person's first click.
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.UserDataDir(t.TempDir()),
	)
	opts = append(opts, flags...)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	if err := chromedp.Do(bctx); err != nil {
		cancelBrowser()
		cancelAlloc()
		t.Fatalf("starting chromium: %v", err)
	}
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	return bctx
}

// emulate sets tab's viewport.
func emulate(t *testing.T, tab context.Context, vp viewport) {
	t.Helper()
	opts := []chromedp.EmulateViewportOption{chromedp.EmulateScale(1)}
	if vp.phone {
		opts = append(opts, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait)
	}
	if err := chromedp.Do(tab, chromedp.EmulateViewport(vp.w, vp.h, opts...)); err != nil {
		t.Fatalf("viewport %s: %v", vp.name, err)
	}
}

// openTab opens url in a new tab with the viewport vp already set.
func openTab(t *testing.T, browser context.Context, url string, vp viewport) context.Context {
	t.Helper()
	tab, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	emulate(t, tab, vp)
	if err := chromedp.Do(tab, chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	return tab
}

// shotDir is where screenshots are copied for people to look at, besides
// each test's temporary directory.
const shotDir = "/tmp/page-shots"

// settle waits until the layout has caught up with the last change: two
// animation frames (the tiles' ResizeObserver runs before the next paint)
// and then the end of the tiles' moves (CSS transitions).
func settle(t *testing.T, tab context.Context) {
	t.Helper()
	if _, err := chromedp.Run(tab, chromedp.Evaluate[bool](
		`new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))`, chromedp.EvalAwaitPromise)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, tab, "the tiles' moves end", `document.getAnimations().length === 0`)
}

// screenshot saves the tab's viewport as name.png in dir and in shotDir.
func screenshot(t *testing.T, tab context.Context, dir, name string) {
	t.Helper()
	settle(t, tab)
	png, err := chromedp.Run(tab, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(shotDir, 0o755); err == nil {
		_ = os.WriteFile(filepath.Join(shotDir, name+".png"), png, 0o644)
	}
}

// typeAndSubmit sets an input's value as typing would, then submits its form.
func typeAndSubmit(t *testing.T, tab context.Context, input, value string) {
	t.Helper()
	eval[bool](t, tab, `(() => { const i = document.getElementById(`+jsString(input)+`);
		i.value = `+jsString(value)+`; i.dispatchEvent(new Event('input')); i.form.requestSubmit(); return true; })()`)
}

// recordJoins makes the page record every join message it sends in
// window.__joins, and every Content-Security-Policy violation in
// window.__csp, installed before the page's own scripts run.
func recordJoins(t *testing.T, tab context.Context) {
	t.Helper()
	const js = `(() => { window.__joins = []; window.__csp = [];
		document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI)); const send = WebSocket.prototype.send;
		WebSocket.prototype.send = function (data) {
			try { const m = JSON.parse(data); if (m.type === 'join') window.__joins.push(m); } catch {}
			return send.call(this, data); }; })()`
	err := chromedp.Do(tab, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: js})
		return err
	}))
	if err != nil {
		t.Fatal(err)
	}
}

// layoutJS measures the call view: the viewport, the control bar, every
// tile's box, and the share of the area above the control bar that the
// tiles cover together (sampled every 4 px, so overlaps count once).
const layoutJS = `(() => {
  const bar = document.getElementById('controls').getBoundingClientRect();
  const tiles = [...document.querySelectorAll('#tiles .tile')].map(t => {
    const r = t.getBoundingClientRect(), v = t.querySelector('video');
    return {x: r.x, y: r.y, w: r.width, h: r.height, fit: getComputedStyle(v).objectFit,
            vw: v.videoWidth, vh: v.videoHeight, local: t.classList.contains('local'), novideo: t.classList.contains('novideo')};
  });
  let inside = 0, all = 0;
  for (let y = 2; y < bar.top; y += 4) for (let x = 2; x < innerWidth; x += 4) {
    all++;
    if (tiles.some(t => x >= t.x && x < t.x + t.w && y >= t.y && y < t.y + t.h)) inside++;
  }
  // The share covered by the pictures themselves (contained in each tile;
  // your own small one, which may lie over another, left out once others are there).
  let pictures = 0;
  for (const t of tiles) if (t.vw && !t.novideo && !(t.local && tiles.length > 1)) {
    const s = Math.min(t.w / t.vw, t.h / t.vh); pictures += t.vw * s * t.vh * s;
  }
  return {vw: innerWidth, vh: innerHeight, bar: {x: bar.x, y: bar.y, w: bar.width, h: bar.height},
          tiles, coverage: inside / Math.max(1, all), pictures: pictures / (innerWidth * bar.top)};
})()`

type box struct {
	X, Y, W, H float64
}

type layoutInfo struct {
	VW, VH float64
	Bar    box
	Tiles  []struct {
		box
		Fit     string
		VW      int  `json:"vw"`
		VH      int  `json:"vh"`
		Local   bool `json:"local"`
		NoVideo bool `json:"novideo"`
	}
	Coverage float64
	Pictures float64
}

// checkLayout measures tab and reports what breaks the layout rules.
func checkLayout(t *testing.T, tab context.Context, what string, tiles int) layoutInfo {
	t.Helper()
	settle(t, tab)
	l := eval[layoutInfo](t, tab, layoutJS)
	inside := func(b box) bool {
		return b.X >= -0.5 && b.Y >= -0.5 && b.X+b.W <= l.VW+0.5 && b.Y+b.H <= l.VH+0.5 && b.W > 0 && b.H > 0
	}
	if !inside(l.Bar) || l.Bar.H < 40 {
		t.Errorf("%s: control bar %+v not fully inside the %vx%v viewport", what, l.Bar, l.VW, l.VH)
	}
	if len(l.Tiles) != tiles {
		t.Errorf("%s: %d tiles, want %d", what, len(l.Tiles), tiles)
	}
	for i, tl := range l.Tiles {
		if !inside(tl.box) || tl.Y+tl.H > l.Bar.Y+0.5 {
			t.Errorf("%s: tile %d %+v not fully inside the viewport above the control bar", what, i, tl.box)
		}
		if tl.Fit != "contain" {
			t.Errorf("%s: tile %d object-fit %q, want contain (no crop)", what, i, tl.Fit)
		}
	}
	if l.Coverage < 0.55 {
		t.Errorf("%s: tiles cover %.0f%% of the area above the control bar, want at least 55%%", what, 100*l.Coverage)
	}
	t.Logf("%s: tiles cover %.0f%% (pictures %.0f%%) above a %.0f px control bar at %vx%v", what,
		100*l.Coverage, 100*l.Pictures, l.Bar.H, l.VW, l.VH)
	return l
}

// gesture makes an evaluation count as a person's click (transient user
// activation), which getDisplayMedia needs.
func gesture(p *runtime.EvaluateParams) {
	yes := true
	p.UserGesture = &yes
}

// clickAsUser clicks the element id with user activation.
func clickAsUser(t *testing.T, tab context.Context, id string) {
	t.Helper()
	if _, err := chromedp.Run(tab, chromedp.Evaluate[bool](`(document.getElementById(`+jsString(id)+`).click(), true)`, gesture)); err != nil {
		t.Fatalf("click #%s: %v", id, err)
	}
}

// pressKey sends key to the page as a keydown on its body.
func pressKey(t *testing.T, tab context.Context, key string) {
	t.Helper()
	eval[bool](t, tab, `document.body.dispatchEvent(new KeyboardEvent('keydown', {key: `+jsString(key)+`, bubbles: true}))`)
}

// framesChange waits until the video matching selector shows two
// different pictures (drawn to a canvas and compared): a moving video,
// not a frozen or black one.
func framesChange(t *testing.T, tab context.Context, what, selector string) {
	t.Helper()
	eval[bool](t, tab, fmt.Sprintf(`(() => { window.__frame = (sel) => { const v = document.querySelector(sel);
		if (!v || !v.videoWidth) return ''; const c = document.createElement('canvas'); c.width = 64; c.height = 48;
		const g = c.getContext('2d'); g.drawImage(v, 0, 0, 64, 48); const d = g.getImageData(0, 0, 64, 48).data;
		let h = 0, lit = 0; for (let i = 0; i < d.length; i++) { h = (h * 31 + d[i]) | 0; if (i %% 4 === 1 && d[i] > 20) lit++; }
		return lit > 10 ? String(h) : ''; }; window.__first = window.__frame(%[1]s); return true; })()`, jsString(selector)))
	waitFor(t, tab, what, fmt.Sprintf(`(() => { const f = window.__frame(%[1]s); if (!window.__first) { window.__first = f; return false; }
		return f !== '' && f !== window.__first; })()`, jsString(selector)))
}
