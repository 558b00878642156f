package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/icebox-project/icebox/config"
)

// TestPageLanding: the landing page's "New meeting" creates a room with
// an id of today's form and its call page joins it; a second person
// types that code as read aloud (capitals, spaces) on the landing page
// and lands in the same room, and the two see each other. A pasted link
// works too, and nonsense gets a message, not a page.
func TestPageLanding(t *testing.T) {
	lane(t, laneBrowser)
	br := newBrowser(t)
	// First, while nothing else runs in the browser; its tabs and icebox
	// end with it.
	t.Run("branding", func(t *testing.T) { testBranding(t, br) })
	ib := startIcebox(t, nil)
	dir := t.TempDir()
	a := openTab(t, br, ib.URL+"/?test=1&name=a", viewports[0])
	waitFor(t, a, "the landing page is ready", `document.getElementById('new-meeting').href.endsWith('/new?test=1&name=a')`)
	for _, vp := range viewports {
		emulate(t, a, vp)
		screenshot(t, a, dir, "landing-"+vp.name)
	}
	emulate(t, a, viewports[0])
	click(t, a, "new-meeting")
	waitFor(t, a, "New meeting opens a call page", `location.pathname.startsWith('/r/') && typeof window.icebox === 'object'`)
	room := strings.TrimPrefix(eval[string](t, a, `location.pathname`), "/r/")
	if !regexp.MustCompile(`^[a-hjkmnp-z2-9]{4}-[a-hjkmnp-z2-9]{4}-[a-hjkmnp-z2-9]{5}$`).MatchString(room) {
		t.Fatalf("new room id %q: want lower-case xxxx-xxxx-xxxxx without i, l, o, 0, 1", room)
	}
	click(t, a, "join")

	b := openTab(t, br, ib.URL+"/?test=1&name=b", viewports[1])
	waitFor(t, b, "the landing page shows", `document.getElementById('new-meeting').href.endsWith('/new?test=1&name=b')`)
	// Nonsense stays on the page with a message.
	typeAndSubmit(t, b, "code", "not a room!")
	waitText(t, b, "code-error", "not a room code")
	if p := eval[string](t, b, `location.pathname`); p != "/" {
		t.Fatalf("an invalid code went to %s", p)
	}
	screenshot(t, b, dir, "landing-error-phone")
	spoken := strings.ToUpper(strings.ReplaceAll(room, "-", " "))
	typeAndSubmit(t, b, "code", spoken)
	waitFor(t, b, "the code opens the room's call page", `location.pathname === `+jsString("/r/"+room)+` && typeof window.icebox === 'object'`)
	click(t, b, "join")
	waitMutualVideo(t, a, b, time.Now().Add(callUp))

	// A room's link pasted in, with its query, opens that room.
	c := openTab(t, br, ib.URL+"/", viewports[0])
	waitFor(t, c, "the landing page is ready", `document.getElementById('new-meeting').href.endsWith('/new')`)
	typeAndSubmit(t, c, "code", ib.URL+"/r/Old_Room-42?mode=call")
	waitFor(t, c, "the link opens its room, case kept", `location.pathname === '/r/Old_Room-42' && location.search === '?mode=call'`)
}

// brandSVG is the operator's logo of TestPageBranding: a mark that also
// carries script, which must never run, in the page or opened directly.
const brandSVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 40 40" onload="document.documentElement.setAttribute('data-onload','1')">` +
	`<script>document.documentElement.setAttribute('data-ran','1')</script>` +
	`<rect width="40" height="40" rx="9" fill="#f59e0b"/><path d="M9 31 20 8l11 23h-6l-5-11-5 11z" fill="#fff"/></svg>`

// brandJS measures the top bar's heading: the name (whole or cut short),
// the logo (loaded, beside the name, inside the bar) and whether anything
// overflows.
const brandJS = `(() => {
  const box = (e) => { const r = e.getBoundingClientRect(); return {x: r.x, y: r.y, w: r.width, h: r.height}; };
  const bar = document.getElementById('topbar'), img = document.getElementById('brand-logo'), name = document.getElementById('brand-name');
  return {title: document.title, name: name.textContent, cut: name.scrollWidth > name.clientWidth,
    loaded: !!img && img.complete && img.naturalWidth > 0, logo: img ? box(img) : null,
    nameBox: box(document.getElementById('brand-name')), bar: box(bar),
    overflow: document.documentElement.scrollWidth > innerWidth || bar.scrollWidth > bar.clientWidth};
})()`

type brandInfo struct {
	Title, Name string
	Cut         bool
	Loaded      bool
	Logo        *box
	NameBox     box
	Bar         box
	Overflow    bool
}

// checkBrand reports what is wrong with the branded heading of tab.
func checkBrand(t *testing.T, tab context.Context, what, name string) {
	t.Helper()
	b := eval[brandInfo](t, tab, brandJS)
	if !strings.HasPrefix(b.Title, name+" · ") || b.Name != name {
		t.Errorf("%s: got title %q and heading %q, want %q in both", what, b.Title, b.Name, name)
	}
	if b.Cut {
		t.Errorf("%s: the name %q is cut short", what, name)
	}
	if !b.Loaded || b.Logo == nil {
		t.Fatalf("%s: the logo did not load", what)
	}
	l, n := *b.Logo, b.NameBox
	if l.H < 20 || l.H > 32 || l.W > 112 {
		t.Errorf("%s: logo %.0f×%.0f px, want 20 to 32 px high, at most 112 wide", what, l.W, l.H)
	}
	if l.Y < b.Bar.Y || l.Y+l.H > b.Bar.Y+b.Bar.H || l.X+l.W > n.X || n.Y > l.Y+l.H || n.Y+n.H < l.Y {
		t.Errorf("%s: logo %+v is not inside the bar %+v on the name's line %+v", what, l, b.Bar, n)
	}
	if b.Bar.H > 52 || b.Overflow {
		t.Errorf("%s: top bar %.0f px high, overflowing: %v", what, b.Bar.H, b.Overflow)
	}
}

// testBranding (TestPageLanding/branding): with branding.name and an SVG
// branding.logo_file the landing page, the call page (before and after
// joining) and /check show the logo beside the name in their top bar and
// the name in their title, at desktop and phone sizes. The logo's script
// runs neither in the page nor when the logo is opened on its own, where
// the same file served without icebox's policy does run it.
func testBranding(t *testing.T, br context.Context) {
	const name = "Acme Calls"
	logo := filepath.Join(t.TempDir(), "logo.svg")
	if err := os.WriteFile(logo, []byte(brandSVG), 0o644); err != nil {
		t.Fatal(err)
	}
	ib := startIcebox(t, func(c *config.Config) { c.Branding = config.Branding{Name: name, LogoFile: logo} })
	dir := t.TempDir()
	a := openTab(t, br, ib.URL+"/?test=1&name=a", viewports[0])
	waitFor(t, a, "the landing page is ready", `document.getElementById('new-meeting').href.endsWith('/new?test=1&name=a')`)
	for _, vp := range viewports {
		emulate(t, a, vp)
		checkBrand(t, a, "landing "+vp.name, name)
		screenshot(t, a, dir, "brand-landing-"+vp.name)
	}
	click(t, a, "new-meeting")
	waitFor(t, a, "New meeting opens a call page", `location.pathname.startsWith('/r/') && typeof window.icebox === 'object'`)
	for _, vp := range viewports {
		emulate(t, a, vp)
		checkBrand(t, a, "call page "+vp.name, name)
		screenshot(t, a, dir, "brand-call-"+vp.name)
	}
	click(t, a, "join")
	waitFor(t, a, "a is in the call", `!document.getElementById('call').hidden && !document.getElementById('controls').hidden`)
	for _, vp := range viewports {
		emulate(t, a, vp)
		checkBrand(t, a, "in the call "+vp.name, name)
		screenshot(t, a, dir, "brand-incall-"+vp.name)
	}
	if eval[bool](t, a, `document.documentElement.hasAttribute('data-ran') || document.documentElement.hasAttribute('data-onload')`) {
		t.Error("the logo's script ran in the call page")
	}

	c := openTab(t, br, ib.URL+"/check", viewports[1])
	waitFor(t, c, "/check has loaded", `document.readyState === 'complete'`)
	checkBrand(t, c, "/check phone", name)
	screenshot(t, c, dir, "brand-check-phone")

	// Opened on its own, the SVG is a document of its own: icebox's
	// sandbox policy keeps its script from running. The same bytes served
	// without that policy run it, so the check can see a script run.
	ran := func(url string) bool {
		if err := chromedp.Do(c, chromedp.Navigate(url)); err != nil {
			t.Fatalf("open %s: %v", url, err)
		}
		waitFor(t, c, "the SVG has loaded", `document.readyState === 'complete' && document.documentElement.localName === 'svg'`)
		return eval[bool](t, c, `document.documentElement.hasAttribute('data-ran') || document.documentElement.hasAttribute('data-onload')`)
	}
	if ran(ib.URL + "/branding/logo") {
		t.Error("the logo opened on its own ran its script")
	}
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "image/svg+xml")
		_, _ = w.Write([]byte(brandSVG))
	}))
	t.Cleanup(plain.Close)
	if !ran(plain.URL) {
		t.Error("served without a policy, the logo's script did not run either: the check above cannot see a script run")
	}
}
