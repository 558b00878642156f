package e2e

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/icebox-project/icebox/config"
	"github.com/icebox-project/icebox/internal/sfutest"
	"github.com/icebox-project/icebox/internal/testenv"
	"github.com/icebox-project/icebox/signaling/wire"
)

// ffRestartRuns is how many times TestFirefoxPage restarts icebox.
const ffRestartRuns = 3

// TestFirefoxPage: the page's recovery and in-call device tests with
// Firefox ESR on one side of a relayed call (?relay=1: Firefox takes no
// loopback host candidates) and Chromium on the other. One Firefox and
// one Chromium serve both subtests.
func TestFirefoxPage(t *testing.T) {
	lane(t, laneHeavy)
	if testing.Short() {
		t.Skip("restarts icebox, starts Firefox and Chromium")
	}
	ff := newFirefox(t)
	br := newBrowser(t)
	t.Logf("Firefox %s", ff.version)
	t.Run("ice-restarts", func(t *testing.T) { firefoxICERestarts(t, ff, br) })
	t.Run("relay-restarts", func(t *testing.T) {
		// Open defect: after some restarts Firefox's DTLS ends "failed"
		// on the connection it kept, and its video stays frozen past the
		// 10 s bound (1 clean-clone run in 4). Until it is found, this
		// runs on request.
		if os.Getenv("ICEBOX_FIREFOX_RESTARTS") == "" {
			t.Skip("Firefox's DTLS sometimes fails after a relayed restart (open defect); set ICEBOX_FIREFOX_RESTARTS=1 to run it")
		}
		firefoxRelayRestarts(t, ff, br)
	})
	t.Run("devices", func(t *testing.T) { firefoxDevices(t, ff, br) })
	t.Run("sfu", func(t *testing.T) { firefoxSFU(t, ff, br) })
	t.Run("auto-room", func(t *testing.T) { firefoxAutoRoom(t, ff, br) })
}

// firefoxSFU: Firefox and Chromium in a room whose media goes through the
// SFU. Each has one connection, to the SFU, and none to the other; each
// publishes its camera as VP8 simulcast and its microphone on it. Each
// page is told the other's camera arrives in two layers or more (a
// browser sends its top layer only once its bandwidth estimate and CPU
// allow, which on a loaded 2-core machine may take longer than the
// test), and its <video> of the other presents frames. Firefox reaches the SFU
// through icebox's TURN relay (relay only), Chromium directly.
func firefoxSFU(t *testing.T, ff *firefox, br context.Context) {
	ib := startIcebox(t, func(c *config.Config) {
		c.SFU = &config.SFU{Listen: []string{"udp://127.0.0.1:0"}}
		c.Signaling.Rooms = map[string]config.Room{"forum": {Media: "sfu"}}
	})
	cr := newTab(t, br, ib.URL+"/r/forum?test=1&autojoin=1&name=chromium")
	fx := ff.open(t, ib.URL+"/r/forum?test=1&autojoin=1&relay=1&name=firefox")
	defer func() {
		if t.Failed() {
			t.Logf("Chromium: %s\n%s\nFirefox: %s\n%s", eval[string](t, cr, snapshotJS), eval[string](t, cr, tilesJS),
				ffEval[string](t, fx, snapshotJS), ffEval[string](t, fx, tilesJS))
		}
	}()
	const (
		publishing = `(() => { const s = icebox.snapshot(); return s.media === 'sfu' && s.peers.length === 0 && !!s.sfu &&
			s.sfu.connectionState === 'connected' && s.sfu.senders === 2; })()`
		simulcast = `(() => { const l = Object.values(icebox.snapshot().sfu.layers);
			return l.length === 1 && l[0].length >= 2; })()`
		playing = `(() => { const f = window.__sfuFrames(); const ids = Object.keys(icebox.snapshot().names);
			return ids.length === 1 && (f[ids[0]] || 0) > 10; })()`
	)
	waitForWithin(t, cr, "Chromium publishes over its one connection to the SFU", publishing, 20*time.Second)
	fx.waitForWithin(t, "Firefox publishes over its one connection to the SFU", publishing, 20*time.Second)
	waitForWithin(t, cr, "Chromium is told Firefox's camera comes in simulcast layers", simulcast, 20*time.Second)
	fx.waitForWithin(t, "Firefox is told Chromium's camera comes in simulcast layers", simulcast, 20*time.Second)
	eval[bool](t, cr, framesCounterJS)
	ffEval[bool](t, fx, framesCounterJS)
	waitForWithin(t, cr, "Chromium presents Firefox's video", playing, 20*time.Second)
	fx.waitForWithin(t, "Firefox presents Chromium's video", playing, 20*time.Second)
}

// firefoxAutoRoom: Firefox and Chromium in an auto room with mesh_max 2
// start peer to peer (both relayed). A pion peer publishing a simulcast
// camera joins as the third: the room moves to the SFU, and Firefox's
// page keeps Chromium's video presenting through the move (the longest
// gap is logged), then holds no mesh connection and plays both others
// through the SFU, "Via server". The pion peer leaves: after the
// (shortened) mesh_return_after, Firefox and Chromium are peer to peer
// again, with each other's video presenting.
func firefoxAutoRoom(t *testing.T, ff *firefox, br context.Context) {
	ib := startIcebox(t, func(c *config.Config) {
		c.SFU = &config.SFU{Listen: []string{"udp://127.0.0.1:0"}}
		c.Signaling.DefaultMedia = config.MediaAuto
		c.Signaling.MeshMax = 2
		c.Signaling.MeshReturnAfter = 2 * time.Second
		c.TURN.MaxAllocationsPerUser = -1 // two browsers' pages from one address
	})
	room := ib.newRoom(t)
	cr := scriptedTab(t, br, ib.URL+"/r/"+room+"?test=1&autojoin=1&relay=1&name=chromium", gapMeterJS)
	fx := ff.open(t, ib.URL+"/r/"+room+"?test=1&autojoin=1&relay=1&name=firefox")
	defer func() {
		if t.Failed() {
			t.Logf("Chromium: %s\n%s\nFirefox: %s\n%s\ngaps %s", eval[string](t, cr, snapshotJS), eval[string](t, cr, tilesJS),
				ffEval[string](t, fx, snapshotJS), ffEval[string](t, fx, tilesJS), ffEval[string](t, fx, `JSON.stringify(window.__gaps.read())`))
		}
	}()
	ffEval[bool](t, fx, gapMeterJS)
	ffEval[bool](t, fx, `window.__gaps.arm()`)
	eval[bool](t, cr, `window.__gaps.arm()`)
	fx.waitForWithin(t, "Firefox is peer to peer with Chromium's video presenting", autoMeshUp, 30*time.Second)
	waitForWithin(t, cr, "Chromium is peer to peer with Firefox's video presenting", autoMeshUp, 30*time.Second)
	chromiumID := ffEval[string](t, fx, `icebox.snapshot().peers[0].id`)

	ffEval[bool](t, fx, `window.__gaps.arm()`)
	pion, w := sfutest.Dial(t, "ws"+strings.TrimPrefix(ib.URL, "http")+"/ws", room, "pion")
	if w.Media != wire.MediaSFU {
		t.Fatalf("the third's welcome says media %q, want sfu", w.Media)
	}
	pion.PublishSimulcast()
	fx.waitForWithin(t, "Firefox is on the SFU, its mesh connection closed, both others' video presenting", autoSFUUp, 30*time.Second)
	waitForWithin(t, cr, "Chromium is on the SFU, its mesh connection closed, both others' video presenting", autoSFUUp, 30*time.Second)
	r := ffEval[gapReport](t, fx, `window.__gaps.read()`)
	t.Logf("Firefox, mesh → SFU: Chromium's video changed stream with a gap of %.0f ms; the longest gap %.0f ms (%d frames; %s)",
		r.Swap[chromiumID], r.Gap[chromiumID], r.Frames[chromiumID], strings.Join(r.Events[chromiumID], ", "))
	ffEval[bool](t, fx, `window.__gaps.arm()`)
	fx.waitForWithin(t, "Firefox presents both others' video from the SFU's streams", autoSFUUp, 20*time.Second)
	fx.waitFor(t, "Firefox's tiles say Via server", `[...document.querySelectorAll('.tile.remote .net')].length === 2 &&
		[...document.querySelectorAll('.tile.remote .net')].every((n) => n.textContent.startsWith('Via server'))`)
	firefoxID := ffEval[string](t, fx, `icebox.snapshot().myId`)
	testenv.Eventually(t, 20*time.Second, "the pion peer receives Firefox's and Chromium's video", func() bool {
		return pion.VideoFrom(chromiumID) > 20 && pion.VideoFrom(firefoxID) > 20
	})

	// The pion peer leaves: two are left, and 2 s later the room is a mesh again.
	ffEval[bool](t, fx, `window.__gaps.arm()`)
	pion.Send(&wire.Leave{})
	fx.waitForWithin(t, "Firefox is peer to peer again, the SFU connection closed", autoMeshUp, 30*time.Second)
	waitForWithin(t, cr, "Chromium is peer to peer again, the SFU connection closed", autoMeshUp, 30*time.Second)
	r = ffEval[gapReport](t, fx, `window.__gaps.read()`)
	t.Logf("Firefox, SFU → mesh: Chromium's video changed stream with a gap of %.0f ms; the longest gap %.0f ms (%d frames; %s)",
		r.Swap[chromiumID], r.Gap[chromiumID], r.Frames[chromiumID], strings.Join(r.Events[chromiumID], ", "))
}

// snapshotJS is the page's test snapshot as JSON.
const snapshotJS = `JSON.stringify(icebox.snapshot())`

// tilesJS describes each remote tile's <video> as JSON.
const tilesJS = `JSON.stringify([...document.querySelectorAll('.tile.remote')].map((el) => { const v = el.querySelector('video');
	return {peer: el.dataset.peer, cls: el.className, w: v && v.videoWidth, t: v && v.currentTime, ready: v && v.readyState,
		frames: v && v.getVideoPlaybackQuality().totalVideoFrames,
		tracks: v && v.srcObject ? v.srcObject.getTracks().map((x) => x.kind + ':' + x.readyState + ':' + x.muted) : null}; }))`

// ffFramesAbove is true once the page's counted frames exceed n.
func ffFramesAbove(n int) string { return fmt.Sprintf(`window.__frames > %d`, n) }

// ffMutualVideo waits until Firefox's page plays Chromium's video and
// Chromium's plays Firefox's, then has both count the frames their remote
// <video> presents (window.__frames) and waits for ten on each.
func ffMutualVideo(t *testing.T, fx *ffPage, cr context.Context) {
	t.Helper()
	const shown = `(() => { const v = document.querySelector('.tile.remote video'); return !!v && v.videoWidth > 0; })()`
	fx.waitForWithin(t, "Firefox shows Chromium's video", shown, 20*time.Second)
	waitForWithin(t, cr, "Chromium shows Firefox's video", shown, 20*time.Second)
	ffEval[bool](t, fx, countFramesJS)
	countFrames(t, cr)
	fx.waitFor(t, "Firefox presents Chromium's video", ffFramesAbove(10))
	waitFor(t, cr, "Chromium presents Firefox's video", ffFramesAbove(10))
}

// firefoxICERestarts: ICE restarts offered by Chromium and answered by
// Firefox, then the other way round, twice, with icebox up. Each one
// completes (both connections connected and stable) and both pages
// present moving video of the other after it. Firefox answers a restart
// with a=setup:active even as the DTLS server; the page keeps the role
// (mesh.js keepSetup), without which Chromium refused that answer and
// every later description.
func firefoxICERestarts(t *testing.T, ff *firefox, br context.Context) {
	ib := startIcebox(t, nil)
	room := ib.newRoom(t)
	cr := newTab(t, br, ib.URL+"/r/"+room+"?test=1&name=chromium&autojoin=1&relay=1")
	fx := ff.open(t, ib.URL+"/r/"+room+"?test=1&name=firefox&autojoin=1&relay=1")
	ffMutualVideo(t, fx, cr)
	// A network change ('online') restarts ICE on every connection of the page.
	const restart = `(window.dispatchEvent(new Event('online')), true)`
	done := func(n int) string {
		return fmt.Sprintf(`(() => { const p = icebox.snapshot().peers[0];
			return p.restarts === %d && p.signalingState === 'stable' && p.connectionState === 'connected'; })()`, n)
	}
	moving := func(what string) {
		t.Helper()
		seenF, seenC := ffEval[int](t, fx, `window.__frames`), eval[int](t, cr, `window.__frames`)
		fx.waitFor(t, what+": Chromium's video moves in Firefox", ffFramesAbove(seenF+10))
		waitFor(t, cr, what+": Firefox's video moves in Chromium", ffFramesAbove(seenC+10))
	}
	for i := 1; i <= 2; i++ {
		eval[bool](t, cr, restart)
		waitFor(t, cr, fmt.Sprintf("Chromium's ICE restart %d completes", i), done(i))
		fx.waitFor(t, fmt.Sprintf("Firefox answered Chromium's ICE restart %d", i), `icebox.snapshot().peers[0].signalingState === 'stable'`)
		moving(fmt.Sprintf("after Chromium's ICE restart %d", i))
		ffEval[bool](t, fx, restart)
		fx.waitFor(t, fmt.Sprintf("Firefox's ICE restart %d completes", i), done(i))
		waitFor(t, cr, fmt.Sprintf("Chromium answered Firefox's ICE restart %d", i), `icebox.snapshot().peers[0].signalingState === 'stable'`)
		moving(fmt.Sprintf("after Firefox's ICE restart %d", i))
	}
}

// firefoxRelayRestarts: TestPageRelayRestarts with Firefox. icebox stops
// (as on SIGTERM) and starts again ffRestartRuns times in a row, the
// first time held down until Firefox's connection wants an ICE restart;
// each time both pages present moving video of the other again within
// 10 s of the start, and their tiles say nothing over it.
func firefoxRelayRestarts(t *testing.T, ff *firefox, br context.Context) {
	r, url := startRestartable(t)
	room := "ff-restarts"
	cr := newTab(t, br, url+"/r/"+room+"?test=1&name=chromium&autojoin=1&relay=1")
	fx := ff.open(t, url+"/r/"+room+"?test=1&name=firefox&autojoin=1&relay=1")
	ffMutualVideo(t, fx, cr)
	defer func() {
		if t.Failed() {
			t.Logf("Firefox: %s\nChromium: %s", ffEval[string](t, fx, dumpJS), eval[string](t, cr, dumpJS))
			t.Logf("Firefox's media: %s\nFirefox's element: %s", ffEval[string](t, fx, mediaDumpJS), ffEval[string](t, fx, elementDumpJS))
			t.Logf("Chromium's media: %s\nChromium's element: %s", awaitJS[string](t, cr, mediaDumpJS), eval[string](t, cr, elementDumpJS))
		}
	}()
	const reconnecting = `(document.getElementById('status').textContent || '').includes('reconnect')`
	var took []time.Duration
	for i := range ffRestartRuns {
		r.stop(t)
		fx.waitFor(t, "Firefox's page says it reconnects", reconnecting)
		waitFor(t, cr, "Chromium's page says it reconnects", reconnecting)
		if i == 0 {
			// A long outage: Firefox's connection goes down and wants an
			// ICE restart, which waits for signaling.
			before := ffEval[int](t, fx, `icebox.snapshot().peers[0].restarts`)
			fx.waitForWithin(t, "Firefox's connection wants an ICE restart while icebox is down",
				`icebox.snapshot().peers[0].restartWanted`, 20*time.Second)
			if got := ffEval[int](t, fx, `icebox.snapshot().peers[0].restarts`); got != before {
				t.Errorf("Firefox's page restarted ICE %d times while icebox was down", got-before)
			}
		}
		r.start(t)
		start := time.Now()
		// Ten frames presented once icebox is back: moving, not a frame
		// the element still had.
		seenF, seenC := ffEval[int](t, fx, `window.__frames`), eval[int](t, cr, `window.__frames`)
		fx.waitForWithin(t, fmt.Sprintf("run %d: Chromium's video moves again in Firefox", i), ffFramesAbove(seenF+10), 10*time.Second)
		tookF := time.Since(start)
		waitForWithin(t, cr, fmt.Sprintf("run %d: Firefox's video moves again in Chromium", i), ffFramesAbove(seenC+10), 10*time.Second-tookF)
		took = append(took, time.Since(start).Round(10*time.Millisecond))
		t.Logf("run %d: moving video both ways %v after icebox started again (in Firefox after %v)", i, took[i], tookF.Round(10*time.Millisecond))
		const ok = `document.querySelector('.tile.remote').dataset.state === 'ok'`
		fx.waitFor(t, fmt.Sprintf("run %d: Firefox's tile of Chromium says nothing over the video", i), ok)
		waitFor(t, cr, fmt.Sprintf("run %d: Chromium's tile of Firefox says nothing over the video", i), ok)
	}
	if n := ffEval[int](t, fx, `icebox.snapshot().peers[0].restarts`) + eval[int](t, cr, `icebox.snapshot().peers[0].restarts`); n == 0 {
		t.Error("the relayed call came back without an ICE restart")
	}
	t.Logf("moving video again after each of %d restarts: %v", ffRestartRuns, took)
}

// firefoxDevices: TestPageDevicesInCall with Firefox as the one whose
// devices change, as far as Firefox's fake devices allow. Firefox has one
// fake camera and one fake microphone (media.navigator.streams.fake;
// others only through media.{audio,video}_loopback_dev, which name real
// devices: a v4l2loopback camera, a PulseAudio monitor) and lists no
// speaker without a sound server, so no switch between two devices can
// happen there. What can: the settings list Firefox's devices, marking
// the ones in use; camera and microphone go off and on; a camera track
// that ends shows "Camera stopped" and "Try again" brings it back; a
// microphone track that ends shows "Microphone stopped" and picking the
// microphone in the settings brings it back. Chromium sees and hears
// each change, and no offer or answer is exchanged for any of them.
func firefoxDevices(t *testing.T, ff *firefox, br context.Context) {
	ib := startIcebox(t, nil)
	room := ib.newRoom(t)
	b := newTab(t, br, ib.URL+"/r/"+room+"?test=1&name=b&autojoin=1&relay=1")
	a := ff.open(t, ib.URL+"/r/"+room+"?test=1&name=a&autojoin=1&relay=1")
	ffMutualVideo(t, a, b)
	da, db := ffEval[int](t, a, descriptionsJS), eval[int](t, b, descriptionsJS)
	unchanged := func(what string) {
		t.Helper()
		if na, nb := ffEval[int](t, a, descriptionsJS), eval[int](t, b, descriptionsJS); na != da || nb != db {
			t.Errorf("%s exchanged descriptions: a %d→%d, b %d→%d; want none", what, da, na, db, nb)
		}
	}

	a.click(t, "settings-toggle")
	a.waitFor(t, "the settings list Firefox's camera and microphone, the ones in use picked", `(() => {
		const senders = icebox.snapshot().peers[0].senders;
		const ok = (k, kind) => { const s = document.getElementById('pick-' + k);
			const now = senders.find((x) => x.kind === kind);
			return !!s.closest('#settings') && !s.closest('.picker').hidden && s.options.length >= 1 && !!now && s.value === now.deviceId && s.selectedOptions[0].textContent !== ''; };
		return !document.getElementById('settings').hidden && ok('videoinput', 'video') && ok('audioinput', 'audio'); })()`)
	devices := ffEval[map[string]any](t, a, `(async () => { const l = await navigator.mediaDevices.enumerateDevices();
		const n = (k) => l.filter((d) => d.kind === k).length;
		return {cameras: n('videoinput'), microphones: n('audioinput'), speakers: n('audiooutput'),
			speakerRow: !document.getElementById('pick-audiooutput').closest('.picker').hidden}; })()`)
	t.Logf("Firefox's devices: %v", devices)
	a.click(t, "settings-toggle")
	a.waitFor(t, "the settings panel closes", `document.getElementById('settings').hidden`)

	// Camera off: b sees it; on again: b's picture of a moves again.
	a.click(t, "camera")
	waitFor(t, b, "b sees a's camera off", `document.querySelector('.tile.remote').classList.contains('cam-off')`)
	a.click(t, "camera")
	waitFor(t, b, "b sees a's camera on", `!document.querySelector('.tile.remote').classList.contains('cam-off')`)
	framesChange(t, b, "b's picture of a moves after the camera came back on", ".tile.remote video")
	// Microphone off and on: b sees it, and hears a again.
	a.click(t, "mute")
	waitFor(t, b, "b sees a's microphone off", `document.querySelector('.tile.remote').classList.contains('mic-off')`)
	a.click(t, "mute")
	waitFor(t, b, "b sees a's microphone on", `!document.querySelector('.tile.remote').classList.contains('mic-off')`)
	if !awaitJS[bool](t, b, hearsJS) {
		t.Error("b hears nothing from a after a's microphone came back on")
	}
	unchanged("turning camera and microphone off and on")

	// The camera's track ends by itself, as when it is unplugged.
	if !ffEval[bool](t, a, `icebox.endTrack('video')`) {
		t.Fatal("Firefox has no live camera track to end")
	}
	a.waitFor(t, "a's tile says the camera stopped", `(() => { const t = document.getElementById('tile-local');
		return t.dataset.state === 'stopped' && t.querySelector('.media-state').textContent === 'Camera stopped' && t.classList.contains('novideo'); })()`)
	if label := ffEval[string](t, a, `document.getElementById('camera').getAttribute('aria-label')`); label != "No camera" {
		t.Errorf("the camera button of a stopped camera says %q, want %q", label, "No camera")
	}
	a.waitFor(t, "a is offered Try again", `!document.getElementById('media-note').hidden && !document.getElementById('media-retry').hidden`)
	waitFor(t, b, "b sees a's camera off", `document.querySelector('.tile.remote').classList.contains('cam-off')`)
	a.click(t, "media-retry")
	a.waitFor(t, "a's camera is back on its tile", `(() => { const t = document.getElementById('tile-local');
		return t.dataset.state === 'ok' && !t.classList.contains('novideo') && document.getElementById('camera').getAttribute('aria-label') === 'Turn off camera'; })()`)
	a.waitFor(t, "a sends a live camera track again", `icebox.snapshot().peers[0].senders.some((s) => s.kind === 'video' && s.readyState === 'live')`)
	waitFor(t, b, "b sees a's camera on", `!document.querySelector('.tile.remote').classList.contains('cam-off')`)
	framesChange(t, b, "b's picture of a moves after Try again", ".tile.remote video")

	// The microphone's track ends; picking the microphone in the settings
	// starts it again.
	if !ffEval[bool](t, a, `icebox.endTrack('audio')`) {
		t.Fatal("Firefox has no live microphone track to end")
	}
	a.waitFor(t, "a's tile says the microphone stopped", `(() => { const t = document.getElementById('tile-local');
		return t.dataset.state === 'stopped' && t.querySelector('.media-state').textContent === 'Microphone stopped'
			&& document.getElementById('mute').getAttribute('aria-label') === 'No microphone'; })()`)
	waitFor(t, b, "b sees a's microphone off", `document.querySelector('.tile.remote').classList.contains('mic-off')`)
	a.click(t, "settings-toggle")
	ffEval[bool](t, a, `(() => { const s = document.getElementById('pick-audioinput'); s.value = s.options[0].value;
		s.dispatchEvent(new Event('change')); return true; })()`)
	a.waitFor(t, "a sends a live microphone track again", `icebox.snapshot().peers[0].senders.some((s) => s.kind === 'audio' && s.readyState === 'live')`)
	a.waitFor(t, "a's tile says nothing", `document.getElementById('tile-local').dataset.state === 'ok'
		&& document.getElementById('mute').getAttribute('aria-label') === 'Turn off microphone'`)
	waitFor(t, b, "b sees a's microphone on", `!document.querySelector('.tile.remote').classList.contains('mic-off')`)
	if !awaitJS[bool](t, b, hearsJS) {
		t.Error("b hears nothing from a after its microphone was picked again")
	}
	unchanged("the devices' stops and returns")
}
