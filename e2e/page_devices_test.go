package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// descriptionsJS counts the session descriptions (offers and answers) a
// page sent and received on all its connections: a renegotiation adds.
const descriptionsJS = `icebox.snapshot().peers.reduce((n, p) => n + p.descriptions, 0)`

// countFramesJS makes a page count the frames its first remote <video>
// presents (requestVideoFrameCallback), in window.__frames.
const countFramesJS = `(() => { window.__frames = 0; const v = document.querySelector('.tile.remote video');
	const count = () => { window.__frames++; v.requestVideoFrameCallback(count); }; v.requestVideoFrameCallback(count); return true; })()`

// countFrames makes tab count the frames its first remote <video>
// presents, in window.__frames.
func countFrames(t *testing.T, tab context.Context) {
	t.Helper()
	eval[bool](t, tab, countFramesJS)
}

// hearsJS resolves to whether sound arrives on the page's first
// connection: its received audio energy grows within 10 s (polled in the
// page).
const hearsJS = `(async () => {
	const e = async () => { const s = Object.values(await icebox.stats())[0] || [];
		const r = s.find((x) => x.type === 'inbound-rtp' && x.kind === 'audio'); return r ? r.totalAudioEnergy || 0 : 0; };
	const before = await e();
	for (let i = 0; i < 100; i++) { await new Promise((r) => setTimeout(r, 100)); if (await e() > before) return true; }
	return false; })()`

// waitFramesAfter waits until tab's remote <video> presents ten more
// frames than it had when called: the picture moves.
func waitFramesAfter(t *testing.T, tab context.Context, what string) {
	t.Helper()
	seen := eval[int](t, tab, `window.__frames`)
	waitFor(t, tab, what, fmt.Sprintf(`window.__frames >= %d`, seen+10))
}

// TestPageDevicesInCall: in a call, the settings panel switches a's
// camera and microphone to other fake devices; b's <video> of a keeps
// presenting frames and b keeps hearing a, a's speaker changes, and no
// offer or answer was exchanged (replaceTrack). A camera whose track ends (as
// when unplugged) shows "Camera stopped" on a's tile, its button no
// longer offers to turn it off, and "Try again" brings it back, again
// without renegotiation.
func TestPageDevicesInCall(t *testing.T) {
	lane(t, laneBrowser)
	ib := startIcebox(t, nil)
	br := newBrowserFlags(t, chromedp.Flag("use-fake-device-for-media-stream", "device-count=3"))
	room := ib.newRoom(t)
	a := newTab(t, br, ib.URL+"/r/"+room+"?test=1&name=a&autojoin=1")
	b := newTab(t, br, ib.URL+"/r/"+room+"?test=1&name=b&autojoin=1")
	waitMutualVideo(t, a, b, time.Now().Add(callUp))
	countFrames(t, b)
	waitFramesAfter(t, b, "b presents a's camera")
	da, db := eval[int](t, a, descriptionsJS), eval[int](t, b, descriptionsJS)

	click(t, a, "settings-toggle")
	waitFor(t, a, "the settings panel lists three cameras and microphones", `(() => {
		const n = (k) => { const s = document.getElementById('pick-' + k); return s.closest('#settings') && !s.closest('.picker').hidden ? s.options.length : 0; };
		return !document.getElementById('settings').hidden && n('videoinput') === 3 && n('audioinput') >= 2; })()`)
	dir := t.TempDir()
	for _, vp := range viewports {
		emulate(t, a, vp)
		screenshot(t, a, dir, "devices-settings-"+vp.name)
	}
	emulate(t, a, viewports[0])

	for _, kind := range []string{"videoinput", "audioinput"} {
		track := map[string]string{"videoinput": "video", "audioinput": "audio"}[kind]
		// Pick a device other than the one a sends now: for cameras the
		// third, as Chromium's second fake camera is a depth camera (16-bit
		// grey frames) that no encoder takes.
		want := eval[string](t, a, `(() => { const s = document.getElementById('pick-`+kind+`');
			const now = icebox.snapshot().peers[0].senders.find((x) => x.kind === '`+track+`').deviceId;
			const o = [...s.options].slice(`+map[string]string{"videoinput": "2", "audioinput": "0"}[kind]+`).find((o) => o.value && o.value !== now); s.value = o.value;
			s.dispatchEvent(new Event('change')); return o.value; })()`)
		waitFor(t, a, "a sends the "+track+" device picked", `icebox.snapshot().peers[0].senders.some((s) => s.kind === '`+track+`' && s.readyState === 'live' && s.deviceId === `+jsString(want)+`)`)
		if n := eval[int](t, a, `icebox.snapshot().tracks.filter((t) => t.kind === '`+track+`' && t.readyState === 'live').length`); n != 1 {
			t.Errorf("%d live %s tracks after switching, want 1 (the old one stopped)", n, track)
		}
		if track == "video" {
			waitFramesAfter(t, b, "b's video of a keeps presenting frames after the camera switch")
		} else {
			if !awaitJS[bool](t, b, hearsJS) {
				t.Error("b hears nothing from a after the microphone switch")
			}
		}
	}
	// The speaker: b's audio on a goes to the output picked (setSinkId).
	speaker := eval[string](t, a, `(() => { const s = document.getElementById('pick-audiooutput');
		const o = [...s.options].find((o) => o.value && o.value !== document.querySelector('.tile.remote video').sinkId);
		if (!o) return ''; s.value = o.value; s.dispatchEvent(new Event('change')); return o.value; })()`)
	if speaker == "" {
		t.Error("the settings offer no second speaker")
	} else {
		waitFor(t, a, "b's audio plays on the speaker picked in the call", `document.querySelector('.tile.remote video').sinkId === `+jsString(speaker))
	}
	if na, nb := eval[int](t, a, descriptionsJS), eval[int](t, b, descriptionsJS); na != da || nb != db {
		t.Errorf("switching devices exchanged descriptions: a %d→%d, b %d→%d; want none (replaceTrack)", da, na, db, nb)
	}

	click(t, a, "settings-toggle")
	waitFor(t, a, "the settings panel closes", `document.getElementById('settings').hidden`)
	// The camera's track ends by itself, as when it is unplugged.
	if !eval[bool](t, a, `icebox.endTrack('video')`) {
		t.Fatal("a has no live camera track to end")
	}
	waitFor(t, a, "a's tile says the camera stopped", `(() => { const t = document.getElementById('tile-local');
		return t.dataset.state === 'stopped' && t.querySelector('.media-state').textContent === 'Camera stopped' && t.classList.contains('novideo'); })()`)
	if label := eval[string](t, a, `document.getElementById('camera').getAttribute('aria-label')`); label != "No camera" {
		t.Errorf("the camera button of a stopped camera says %q, want %q", label, "No camera")
	}
	waitFor(t, a, "a is offered Try again", `!document.getElementById('media-note').hidden && !document.getElementById('media-retry').hidden`)
	waitFor(t, b, "b sees a's camera off", `document.querySelector('.tile.remote').classList.contains('cam-off')`)
	for _, vp := range viewports {
		emulate(t, a, vp)
		screenshot(t, a, dir, "devices-camera-stopped-"+vp.name)
	}
	emulate(t, a, viewports[0])

	click(t, a, "media-retry")
	waitFor(t, a, "a's camera is back on its tile", `(() => { const t = document.getElementById('tile-local');
		return t.dataset.state === 'ok' && !t.classList.contains('novideo') && document.getElementById('camera').getAttribute('aria-label') === 'Turn off camera'; })()`)
	waitFor(t, a, "a sends a live camera track again", `icebox.snapshot().peers[0].senders.some((s) => s.kind === 'video' && s.readyState === 'live')`)
	waitFor(t, b, "b sees a's camera on", `!document.querySelector('.tile.remote').classList.contains('cam-off')`)
	waitFramesAfter(t, b, "b presents a's camera again")
	if na, nb := eval[int](t, a, descriptionsJS), eval[int](t, b, descriptionsJS); na != da || nb != db {
		t.Errorf("the camera's return exchanged descriptions: a %d→%d, b %d→%d; want none", da, na, db, nb)
	}
}
