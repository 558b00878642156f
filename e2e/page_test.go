package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/debugger"
	"github.com/chromedp/chromedp"

	"github.com/icebox-project/icebox/config"
)

// Tests of the call page as a person uses it: the password flow, the link
// of a call-mode lobby, chat before the data channel opens, Leave, and the
// layout at a desktop and a phone size.

type joinMsg struct {
	Name     string  `json:"name"`
	Password *string `json:"password"`
}

// TestPagePasswordRoom: the page of a passworded room shows the password
// field from the start (the server says the room needs one), never sends
// an empty password, says when a password is wrong, and joins with the
// password typed. A refused join keeps the camera preview on while the
// password is typed.
func TestPagePasswordRoom(t *testing.T) {
	lane(t, laneBrowser)
	ib := startIcebox(t, func(c *config.Config) {
		c.Signaling.Rooms = map[string]config.Room{"locked": {Password: "s3cret"}}
	})
	browser := newBrowser(t)
	a, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	recordJoins(t, a)
	if err := chromedp.Do(a, chromedp.Navigate(ib.URL+"/r/locked?test=1&name=a&autojoin=1")); err != nil {
		t.Fatal(err)
	}
	// autojoin waits for the password instead of guessing an empty one.
	waitFor(t, a, "password field shown", `!document.getElementById('password-row').hidden`)
	if !eval[bool](t, a, `!document.getElementById('prejoin').hidden && document.getElementById('call').hidden`) {
		t.Error("the page of a passworded room is not at the pre-join screen")
	}

	// Join with the field empty: nothing is sent.
	click(t, a, "join")
	if joins := eval[[]joinMsg](t, a, `window.__joins`); len(joins) != 0 {
		t.Fatalf("joins sent: %+v, want none (no empty guess)", joins)
	}

	typeAndSubmit(t, a, "password", "wrong")
	waitText(t, a, "join-error", "Wrong password")
	if !eval[bool](t, a, `icebox.snapshot().tracks.some(t => t.kind === 'video' && t.readyState === 'live') && !document.getElementById('preview').classList.contains('novideo')`) {
		t.Error("the refused join turned the camera preview off")
	}
	screenshot(t, a, t.TempDir(), "wrong-password-preview-desktop")

	typeAndSubmit(t, a, "password", "s3cret")
	waitFor(t, a, "a is in the call", `!document.getElementById('call').hidden && !document.getElementById('controls').hidden`)
	joins := eval[[]joinMsg](t, a, `window.__joins`)
	if len(joins) != 2 || joins[0].Password == nil || *joins[0].Password != "wrong" ||
		joins[1].Password == nil || *joins[1].Password != "s3cret" {
		t.Errorf("joins sent: %+v, want wrong, s3cret", joins)
	}

	// A second page shows the field at once and does not autojoin with an
	// empty password.
	b := newTab(t, browser, ib.URL+"/r/locked?test=1&name=b&autojoin=1")
	waitFor(t, b, "b's password field", `!document.getElementById('password-row').hidden`)
	typeAndSubmit(t, b, "password", "s3cret")
	waitMutualVideo(t, a, b, time.Now().Add(callUp))
	if v := eval[[]string](t, a, `window.__csp`); len(v) > 0 {
		t.Errorf("Content-Security-Policy violations: %q", v)
	}
}

// TestPageCallModeLink: the link a call-mode lobby shows keeps
// ?mode=call; opened, it lands in call mode and a call rings there. Chat
// in the lobby, where no data channel exists, reaches the others.
func TestPageCallModeLink(t *testing.T) {
	lane(t, laneBrowser)
	ib := startIcebox(t, nil)
	browser := newBrowser(t)
	room := ib.newRoom(t)
	a := newTab(t, browser, ib.URL+"/r/"+room+"?test=1&mode=call&autojoin=1&name=a")
	link := eval[string](t, a, `document.getElementById('share-link').value`)
	if want := ib.URL + "/r/" + room + "?mode=call"; link != want {
		t.Fatalf("link shown in call mode: %q, want %q", link, want)
	}
	b := newTab(t, browser, link+"&test=1&name=b&autojoin=1")
	waitText(t, b, "mode-toggle", "Switch to room mode")
	callFrom(t, a, "b")
	waitText(t, b, "call-status", "Incoming call from a")
	dir := t.TempDir()
	emulate(t, a, viewports[0])
	screenshot(t, a, dir, "callmode-ringing-desktop")
	emulate(t, b, viewports[1])
	screenshot(t, b, dir, "callmode-incoming-phone")
	// The call rings where the eye is: the tab's title says so, and a
	// tone plays (WebAudio: the page's AudioContext runs).
	waitFor(t, b, "b's title says a calls and the tone rings", `document.title.includes('Incoming call from a') && icebox.snapshot().ringing`)
	if st := eval[string](t, b, `document.getElementById('accept') === document.activeElement ? 'focused' : 'not focused'`); st != "focused" {
		t.Errorf("Accept is %s while ringing", st)
	}
	click(t, b, "decline")
	waitText(t, a, "call-status", "b declined")
	waitFor(t, b, "b's title is back and the tone stops", `!document.title.includes('Incoming') && !icebox.snapshot().ringing`)

	typeAndSubmit(t, b, "chat-input", "hello from the lobby")
	waitFor(t, a, "a reads b's lobby chat",
		`[...document.querySelectorAll('#messages li')].some(li => li.textContent === 'bhello from the lobby')`)
	waitFor(t, b, "b's line is not pending",
		`[...document.querySelectorAll('#messages li.mine')].some(li => !li.classList.contains('pending') && !li.classList.contains('undelivered'))`)
	if n := eval[string](t, a, `document.getElementById('unread').textContent`); n != "1" {
		t.Errorf("a's unread badge with the chat closed: %q, want 1", n)
	}
}

// TestPageChatBeforeOpenAndLeave: a line typed while the data channel is
// still opening shows as sending and arrives once it opens; after Leave
// every local track is ended and every peer connection closed.
func TestPageChatBeforeOpenAndLeave(t *testing.T) {
	lane(t, laneBrowser)
	ib := startIcebox(t, nil)
	browser := newBrowser(t)
	room := ib.newRoom(t)
	b := newTab(t, browser, ib.URL+"/r/"+room+"?test=1&autojoin=1&name=b")
	waitFor(t, b, "b is in the room", `!document.getElementById('call').hidden`)
	// Hold b's JavaScript: a's offer waits unanswered, so a's channel to b
	// stays connecting until b resumes.
	err := chromedp.Do(b, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, debugger.Enable, debugger.EnableParams{}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, tg, debugger.Pause, cdp.Empty{})
		return err
	}))
	if err != nil {
		t.Fatal(err)
	}
	a := newTab(t, browser, ib.URL+"/r/"+room+"?test=1&autojoin=1&name=a")
	waitFor(t, a, "a has a connection to b", `icebox.snapshot().peers.length === 1`)
	if st := eval[string](t, a, `icebox.snapshot().peers[0].chat`); st == "open" {
		t.Fatalf("a's data channel is %s before b answered", st)
	}
	typeAndSubmit(t, a, "chat-input", "early bird")
	waitFor(t, a, "a's line shows as sending", `document.querySelector('#messages li.mine.pending') !== null`)
	err = chromedp.Do(b, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, debugger.Resume, debugger.ResumeParams{})
		return err
	}))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, b, "b reads the early line",
		`[...document.querySelectorAll('#messages li')].some(li => li.textContent === 'aearly bird')`)
	waitFor(t, a, "a's line is delivered", `document.querySelector('#messages li.mine:not(.pending):not(.undelivered)') !== null`)
	waitMutualVideo(t, a, b, time.Now().Add(callUp))
	if got := waitBadge(t, b, "Direct"); got.Path != "direct" {
		t.Errorf("badge %+v, want direct (no relay=1)", got)
	}

	// M turns the microphone off, V the camera (the tile shows initials).
	eval[bool](t, a, `document.body.dispatchEvent(new KeyboardEvent('keydown', {key: 'm', bubbles: true}))`)
	eval[bool](t, a, `document.body.dispatchEvent(new KeyboardEvent('keydown', {key: 'v', bubbles: true}))`)
	waitFor(t, a, "M and V turn microphone and camera off",
		`document.getElementById('mute').classList.contains('off') && document.getElementById('camera').classList.contains('off') &&
		 document.getElementById('tile-local').classList.contains('novideo') &&
		 icebox.snapshot().peers.length === 1 && icebox.snapshot().peers[0].senders.every(s => !s.enabled)`)
	if l := eval[string](t, a, `document.getElementById('mute').getAttribute('aria-label')`); l != "Turn on microphone" {
		t.Errorf("mute button label with the microphone off: %q", l)
	}
	waitFor(t, b, "b's tile for a shows a's microphone off and initials instead of black frames",
		`(() => { const t = document.querySelector('.tile.remote');
		  return t.classList.contains('mic-off') && t.classList.contains('novideo') && t.querySelector('.initials').textContent === 'A'; })()`)
	emulate(t, b, viewports[1])
	screenshot(t, b, t.TempDir(), "peer-muted-camera-off-phone")

	click(t, a, "leave")
	waitFor(t, a, "after Leave every local track is ended",
		`icebox.snapshot().tracks.length >= 2 && icebox.snapshot().tracks.every(t => t.readyState === 'ended')`)
	waitFor(t, a, "after Leave every peer connection is closed",
		`icebox.snapshot().peers.length === 0`)
	waitFor(t, b, "b's tile for a is gone", `document.querySelectorAll('.tile.remote').length === 0`)
	if !eval[bool](t, a, `!document.getElementById('left').hidden && document.getElementById('controls').hidden`) {
		t.Error("after Leave the page does not say you left")
	}

	// Back to the room: the pre-join screen again, and a fresh call.
	click(t, a, "rejoin")
	waitText(t, a, "device-status", "ready")
	click(t, a, "join")
	waitMutualVideo(t, a, b, time.Now().Add(callUp))
}

// TestPageLayout: with 1, 2, 3 and 6 people in a room (the last three
// watching, without camera or microphone), at 1280×800 and 390×844,
// every tile is inside the viewport, the tiles cover most of it, no
// video is cropped and the control bar is on screen; with six, each
// sender's video is capped for a mesh of six (adapt.js). In the
// automatic layout the one person speaking takes the stage, and the
// stage follows when someone else speaks (checked with three, so that
// the page's audio levels are not measured on a machine saturated by
// six); with six, a pinned tile wins over the speaker.
// Screenshots go to the test's directory and /tmp/page-shots.
func TestPageLayout(t *testing.T) {
	lane(t, laneAlone)
	// Six pages from one address: more TURN connections and allocations
	// from 127.0.0.1 than the per-address defaults allow.
	ib := startIcebox(t, func(c *config.Config) {
		c.TURN.MaxTCPConnectionsPerIP = -1
		c.TURN.MaxAllocationsPerIP = -1
	})
	browser := newBrowserFlags(t, chromedp.Flag("use-fake-device-for-media-stream", "fps=10"))
	// Dan, Eve and Fay join from a browser that denies camera and
	// microphone: they watch and listen (tiles with initials), so six
	// pages on two cores encode 15 streams, not 30. (The mesh benchmark,
	// TestPageMeshBitrateFigures, has six senders.)
	watchers := newBrowserFlags(t, chromedp.Flag("use-fake-ui-for-media-stream", "deny"))
	room := ib.newRoom(t)
	dir := t.TempDir()
	url := ib.URL + "/r/" + room + "?test=1&autojoin=1&name="

	// The pre-join screen at both sizes.
	pre := openTab(t, browser, ib.URL+"/r/"+room+"?test=1&name=Ada+Lovelace", viewports[0])
	waitText(t, pre, "device-status", "ready")
	if link := eval[string](t, pre, `document.getElementById('share-link').value`); link != ib.URL+"/r/"+room {
		t.Errorf("room-mode link %q, want %q", link, ib.URL+"/r/"+room)
	}
	for _, vp := range viewports {
		emulate(t, pre, vp)
		screenshot(t, pre, dir, "prejoin-"+vp.name)
		if !eval[bool](t, pre, `(() => { const r = document.getElementById('join').getBoundingClientRect();
			return r.bottom <= innerHeight && r.right <= innerWidth; })()`) {
			t.Errorf("%s: the Join button is off screen", vp.name)
		}
	}
	chromedp.Cancel(pre)

	a := openTab(t, browser, url+"Ada+Lovelace", viewports[0])
	waitFor(t, a, "a is in the room", `!document.getElementById('call').hidden`)
	// The grid first: everyone the same size, whoever speaks.
	pressKey(t, a, "g")
	names := []string{"Bob", "Carol+King", "Dan", "Eve", "Fay"}
	tabs := map[string]context.Context{}
	// What a's tiles and connections show, when a wait fails.
	const tilesWhy = `({tiles: [...document.querySelectorAll('.tile.remote')].map(t => { const v = t.querySelector('video');
		return [t.dataset.peer, t.className, v ? [v.videoWidth, v.currentTime] : null]; }),
		peers: icebox.snapshot().peers.map(p => [p.name, p.connectionState, p.iceConnectionState, p.recovery])})`
	grid := func(n int) {
		for len(tabs) < n-1 {
			name := names[len(tabs)]
			if len(tabs) < 2 {
				tabs[name] = newTab(t, browser, url+name)
			} else {
				tabs[name] = newTab(t, watchers, url+name)
			}
		}
		senders := min(n-1, 2)
		// Six pages on two cores: 15 encodes and 10 decodes of video,
		// and tabs that take seconds to open.
		within := 30 * time.Second
		if n == 6 {
			within = 60 * time.Second
		}
		waitForWithinWhy(t, a, fmt.Sprintf("a has %d remote tiles and plays %d videos", n-1, senders), fmt.Sprintf(
			`document.querySelectorAll('.tile.remote').length === %d &&
			 [...document.querySelectorAll('.tile.remote video')].filter(v => v.videoWidth > 0 && v.currentTime > 0).length === %d`, n-1, senders),
			tilesWhy, within)
		for _, vp := range viewports {
			emulate(t, a, vp)
			name := fmt.Sprintf("%s-%d", vp.name, n)
			checkLayout(t, a, name, n)
			screenshot(t, a, dir, name)
		}
	}
	for _, n := range []int{1, 2, 3} {
		grid(n)
	}

	// The automatic layout, with three people (the page's choice does
	// not depend on how many watch): only Bob speaks, Bob takes the
	// stage; then only Carol.
	pressKey(t, tabs["Carol+King"], "m")
	pressKey(t, a, "m")
	pressKey(t, a, "g")
	stageIs := func(who string) string {
		return `document.querySelector('#tiles .tile.staged figcaption')?.textContent === ` + jsString(who)
	}
	const speakerWhy = `({staged: document.querySelector('#tiles .tile.staged figcaption')?.textContent,
		speaking: [...document.querySelectorAll('.tile.speaking figcaption')].map(f => f.textContent),
		levels: icebox.snapshot().levels, mics: icebox.snapshot().peers.map(p => [p.name, p.mic])})`
	emulate(t, a, viewports[0])
	waitForWithinWhy(t, a, "Bob, speaking, takes the stage", stageIs("Bob"), speakerWhy, 20*time.Second)
	checkLayout(t, a, "speaker-desktop", 3)
	screenshot(t, a, dir, "speaker-desktop")
	pressKey(t, tabs["Bob"], "m")
	pressKey(t, tabs["Carol+King"], "m")
	waitForWithinWhy(t, a, "Carol, speaking now, takes the stage", stageIs("Carol King"), speakerWhy, 20*time.Second)
	emulate(t, a, viewports[1])
	checkLayout(t, a, "speaker-phone", 3)
	screenshot(t, a, dir, "speaker-phone")

	// Six, in the grid again.
	pressKey(t, a, "g")
	grid(6)
	// Five others: each copy of a's camera is capped (adapt.js: 736 kbit/s
	// at 1/1.5 of 480 lines: 2.25 for the fake camera's 720p), its audio
	// first.
	if !eval[bool](t, a, `(() => { const snap = icebox.snapshot();
		const cam = snap.tracks.find((x) => x.kind === 'video' && x.readyState === 'live');
		return cam && cam.height === 720 && snap.peers.every(p => p.senders.every(s => {
		const e = s.encoding; if (!e) return true;
		return s.kind === 'audio' ? e.priority === 'high' : e.maxBitrate === 736000 && e.scaleResolutionDownBy === 2.25; })); })()`) {
		t.Errorf("a's senders in a mesh of six: %v", eval[any](t, a, `icebox.snapshot().peers.map(p => p.senders.map(s => s.kind + JSON.stringify(s.encoding)))`))
	}

	pressKey(t, a, "g") // the automatic layout again
	// Pin Bob with the keyboard: Bob takes the stage though Carol speaks,
	// the others go to the filmstrip, all still on screen.
	for _, vp := range viewports {
		emulate(t, a, vp)
		if !eval[bool](t, a, `(() => { const t = document.querySelector('.tile.remote');
			if (!t.classList.contains('pinned')) { t.focus(); t.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter', bubbles: true})); }
			return t.classList.contains('pinned') && t.classList.contains('staged'); })()`) {
			t.Fatalf("%s: Enter on a tile did not pin it", vp.name)
		}
		l := checkLayout(t, a, "pinned-"+vp.name, 6)
		var biggest float64
		for _, tl := range l.Tiles {
			biggest = max(biggest, tl.W*tl.H)
		}
		if frac := biggest / (l.VW * l.Bar.Y); frac < 0.4 {
			t.Errorf("pinned-%s: the pinned tile covers %.0f%%, want the stage (40%%+)", vp.name, 100*frac)
		}
		screenshot(t, a, dir, "pinned-"+vp.name)
	}
	// The chat panel on a phone: over the call, the control bar still there.
	emulate(t, a, viewports[1])
	click(t, a, "chat-toggle")
	if !eval[bool](t, a, `(() => { const c = document.getElementById('chat').getBoundingClientRect(), b = document.getElementById('controls').getBoundingClientRect();
		return c.bottom <= b.top + 0.5 && b.bottom <= innerHeight + 0.5; })()`) {
		t.Error("phone: the chat panel hides the control bar")
	}
	screenshot(t, a, dir, "phone-chat")
	entries, _ := os.ReadDir(dir)
	var shots []string
	for _, e := range entries {
		shots = append(shots, e.Name())
	}
	t.Logf("screenshots in %s and %s: %s", dir, shotDir, strings.Join(shots, " "))
}

// TestPageDevicesDenied: with camera and microphone blocked the pre-join
// screen says so and offers a retry, the join goes ahead receive-only
// (the other side's video plays), and the mic and camera buttons are
// disabled with the reason instead of silently doing nothing.
func TestPageDevicesDenied(t *testing.T) {
	lane(t, laneBrowser)
	ib := startIcebox(t, nil)
	browser := newBrowser(t)
	room := ib.newRoom(t)
	b := newTab(t, browser, ib.URL+"/r/"+room+"?test=1&autojoin=1&name=b")
	waitFor(t, b, "b is in the room", `!document.getElementById('call').hidden`)
	dir := t.TempDir()
	// A second browser whose (fake) permission prompt says no.
	denying := newBrowserFlags(t, chromedp.Flag("use-fake-ui-for-media-stream", "deny"))
	a := openTab(t, denying, ib.URL+"/r/"+room+"?test=1&name=Ada", viewports[0])
	waitText(t, a, "device-status", "blocked")
	waitText(t, a, "device-status", "watch and listen")
	if !eval[bool](t, a, `!document.getElementById('device-retry').hidden`) {
		t.Error("no retry button with the devices blocked")
	}
	screenshot(t, a, dir, "denied-prejoin")
	click(t, a, "join")
	if _, err := waitForRemoteVideo(a, time.Now().Add(15*time.Second)); err != nil {
		t.Fatalf("receive-only page: %v", err)
	}
	waitFor(t, a, "mic and camera buttons disabled with a reason",
		`document.getElementById('mute').disabled && document.getElementById('camera').disabled &&
		 document.getElementById('mute').title.includes('blocked') && !document.getElementById('media-note').hidden`)
	waitFor(t, b, "b's tile for a shows initials", `document.querySelector('.tile.remote.novideo .initials')?.textContent === 'A'`)
	screenshot(t, a, dir, "denied-call")
	emulate(t, b, viewports[0])
	screenshot(t, b, dir, "receive-only-peer")
}

// TestPageNoDevices: a browser with no camera or microphone at all is
// told so before joining, in words, and can still join.
func TestPageNoDevices(t *testing.T) {
	lane(t, laneBrowser)
	ib := startIcebox(t, nil)
	bare := newBrowserFlags(t, chromedp.Flag("use-fake-device-for-media-stream", false))
	a := openTab(t, bare, ib.URL+"/r/"+ib.newRoom(t)+"?test=1&name=a", viewports[1])
	waitText(t, a, "device-status", "not found")
	waitText(t, a, "device-status", "watch and listen")
	click(t, a, "join")
	waitFor(t, a, "a joined receive-only", `!document.getElementById('call').hidden && document.getElementById('mute').disabled`)
	screenshot(t, a, t.TempDir(), "no-devices-phone")
}
