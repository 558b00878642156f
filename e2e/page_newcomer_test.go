package e2e

import (
	"testing"

	"github.com/icebox-project/icebox/config"
)

// TestPageNewcomer walks a room as someone new to it: the name field has
// the focus; alone in the call, a bar says nobody else is here and offers
// the link, and the People list names you; the mode link, which would
// leave the call, is gone while in it; the bar goes when someone joins
// and comes back when they leave. A refused join that typing cannot fix
// (a full room) stops camera and microphone.
func TestPageNewcomer(t *testing.T) {
	lane(t, laneBrowser)
	ib := startIcebox(t, func(c *config.Config) { c.Signaling.MaxPeersPerRoom, c.Signaling.MeshMax = 2, 2 })
	browser := newBrowser(t)
	room := ib.newRoom(t)
	url := ib.URL + "/r/" + room + "?test=1"
	a := openTab(t, browser, url, viewports[0])
	waitFor(t, a, "the name field has the focus", `document.activeElement === document.getElementById('name')`)
	if !eval[bool](t, a, `!document.getElementById('mode-toggle').hidden`) {
		t.Error("the mode link is hidden before joining")
	}
	typeAndSubmit(t, a, "name", "a")
	waitFor(t, a, "a is in the call", `!document.getElementById('call').hidden`)
	waitFor(t, a, "the invite bar shows while a is alone", `!document.getElementById('invite').hidden`)
	if !eval[bool](t, a, `document.getElementById('mode-toggle').hidden`) {
		t.Error("the mode link shows during the call")
	}
	people := `[...document.querySelectorAll('#people li')].map(li => li.textContent).join('|')`
	if got := eval[string](t, a, people); got != "a (you)" {
		t.Errorf("a's People list alone: %q, want %q", got, "a (you)")
	}
	dir := t.TempDir()
	for _, vp := range viewports {
		emulate(t, a, vp)
		// The bar lies inside the call area, clear of the control bar.
		if !eval[bool](t, a, `(() => { const r = document.getElementById('invite').getBoundingClientRect();
			const bar = document.getElementById('controls').getBoundingClientRect();
			return r.left >= 0 && r.right <= innerWidth && r.top >= 0 && r.bottom <= bar.top && r.width > 0; })()`) {
			t.Errorf("%s: the invite bar is not fully on screen above the control bar", vp.name)
		}
		screenshot(t, a, dir, "newcomer-alone-"+vp.name)
	}
	emulate(t, a, viewports[0])

	b := newTab(t, browser, url+"&name=b&autojoin=1")
	waitFor(t, a, "the invite bar goes once b joins", `document.getElementById('invite').hidden`)
	waitFor(t, a, "a's People list names a and b", people+` === 'a (you)|b'`)
	if n := eval[string](t, a, `document.getElementById('people-count').textContent`); n != "2" {
		t.Errorf("people count %q, want 2", n)
	}

	c := newTab(t, browser, url+"&name=c&autojoin=1")
	waitText(t, c, "join-error", "This room is full (2 people)")
	waitFor(t, c, "the refused join stopped camera and microphone",
		`icebox.snapshot().tracks.length > 0 && icebox.snapshot().tracks.every(t => t.readyState === 'ended')`)

	click(t, b, "leave")
	waitFor(t, a, "the invite bar is back once b left", `!document.getElementById('invite').hidden`)
}
