package e2e

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestPageLanding: the landing page's "New meeting" creates a room with
// an id of today's form and its call page joins it; a second person
// types that code as read aloud (capitals, spaces) on the landing page
// and lands in the same room, and the two see each other. A pasted link
// works too, and nonsense gets a message, not a page.
func TestPageLanding(t *testing.T) {
	ib := startIcebox(t, nil)
	br := newBrowser(t)
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
	waitMutualVideo(t, a, b, time.Now().Add(15*time.Second))

	// A room's link pasted in, with its query, opens that room.
	c := openTab(t, br, ib.URL+"/", viewports[0])
	waitFor(t, c, "the landing page is ready", `document.getElementById('new-meeting').href.endsWith('/new')`)
	typeAndSubmit(t, c, "code", ib.URL+"/r/Old_Room-42?mode=call")
	waitFor(t, c, "the link opens its room, case kept", `location.pathname === '/r/Old_Room-42' && location.search === '?mode=call'`)
}
