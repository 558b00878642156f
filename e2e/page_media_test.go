package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/icebox-project/icebox/config"
)

// Tests of the call page's media: device pickers and the microphone
// meter, screen share, the speaking ring, remote mute, and the
// connection badge.

// TestPagePrejoinDevices: the pre-join screen lists the cameras,
// microphones and speakers, its meter moves with the (fake) microphone,
// and a camera and speaker picked there are the ones the call uses.
func TestPagePrejoinDevices(t *testing.T) {
	lane(t, laneBrowser)
	ib := startIcebox(t, nil)
	br := newBrowserFlags(t, chromedp.Flag("use-fake-device-for-media-stream", "device-count=2"))
	room := ib.newRoom(t)
	a := openTab(t, br, ib.URL+"/r/"+room+"?test=1&name=a", viewports[0])
	waitText(t, a, "device-status", "ready")
	waitFor(t, a, "two cameras, microphones and speakers listed", `(() => {
		const n = (k) => { const s = document.getElementById('pick-' + k); return s.closest('.picker').hidden ? 0 : s.options.length; };
		return n('videoinput') === 2 && n('audioinput') >= 2 && n('audiooutput') >= 2; })()`)
	waitFor(t, a, "the microphone meter moves", `document.getElementById('mic-meter').value > 0.01`)

	// Pick the second camera and the second speaker, then the first
	// camera again (Chromium's second fake camera sends no frames to a
	// peer connection).
	pick := func(kind string, i int) string {
		return eval[string](t, a, `(() => { const s = document.getElementById('pick-`+kind+`');
			s.value = s.options[`+string(rune('0'+i))+`].value; s.dispatchEvent(new Event('change')); return s.value; })()`)
	}
	want := []string{"", pick("audiooutput", 1)}
	for _, i := range []int{1, 0} {
		want[0] = pick("videoinput", i)
		waitFor(t, a, "the preview shows the camera picked", `(() => { const t = document.getElementById('preview-video').srcObject.getVideoTracks()[0];
			return t.readyState === 'live' && t.getSettings().deviceId === `+jsString(want[0])+`; })()`)
		if n := eval[int](t, a, `icebox.snapshot().tracks.filter(t => t.kind === 'video' && t.readyState === 'live').length`); n != 1 {
			t.Errorf("%d live camera tracks after switching, want 1 (the one before stopped)", n)
		}
	}
	screenshot(t, a, t.TempDir(), "prejoin-devices-desktop")
	click(t, a, "join")
	b := newTab(t, br, ib.URL+"/r/"+room+"?test=1&name=b&autojoin=1")
	waitMutualVideo(t, a, b, time.Now().Add(callUp))
	if !eval[bool](t, a, `icebox.snapshot().peers[0].senders.some(s => s.deviceId === `+jsString(want[0])+`)`) {
		t.Error("the call does not send the camera picked before joining")
	}
	waitFor(t, a, "b's audio plays on the speaker picked", `document.querySelector('.tile.remote video').sinkId === `+jsString(want[1]))
	// The choice is remembered for the next visit.
	if got := eval[string](t, b, `JSON.parse(localStorage.getItem('icebox-devices') || '{}').videoinput || ''`); got != want[0] {
		t.Errorf("remembered camera %q, want %q", got, want[0])
	}
}

// TestPageShareMuteSpeaking: b sees a's microphone as a speaking ring on
// a's tile, a's mute as a muted tile (the time it took is logged), and a
// screen share from a as a moving picture on b's stage; when a's
// browser ends the share (its own "Stop sharing"), the tile goes.
func TestPageShareMuteSpeaking(t *testing.T) {
	lane(t, laneHeavy)
	ib := startIcebox(t, nil)
	br := newBrowser(t)
	room := ib.newRoom(t)
	a := newTab(t, br, ib.URL+"/r/"+room+"?test=1&name=a&autojoin=1")
	b := newTab(t, br, ib.URL+"/r/"+room+"?test=1&name=b&autojoin=1")
	waitMutualVideo(t, a, b, time.Now().Add(callUp))

	waitFor(t, b, "a's tile rings while a's microphone sounds", `document.querySelector('.tile.remote').classList.contains('speaking')`)
	eval[bool](t, b, `(() => { const t = document.querySelector('.tile.remote');
		new MutationObserver(() => { if (t.classList.contains('mic-off') && !window.__micOff) window.__micOff = Date.now(); })
			.observe(t, {attributes: true}); return true; })()`)
	clicked := eval[float64](t, a, `(document.getElementById('mute').click(), Date.now())`)
	waitFor(t, b, "a's mute shows on b", `window.__micOff > 0`)
	t.Logf("a's mute showed on b %.0f ms after the click", eval[float64](t, b, `window.__micOff`)-clicked)
	waitFor(t, b, "a's tile stops ringing once a is muted", `!document.querySelector('.tile.remote').classList.contains('speaking')`)
	if lv := eval[float64](t, b, `Object.values(icebox.snapshot().levels).slice(1).reduce((a, b) => Math.max(a, b), 0)`); lv > 0.01 {
		t.Errorf("b hears a at level %.3f while a is muted", lv)
	}
	click(t, a, "mute")
	waitFor(t, b, "a's tile rings again after unmuting", `(() => { const t = document.querySelector('.tile.remote');
		return !t.classList.contains('mic-off') && t.classList.contains('speaking'); })()`)

	// Share: the button needs a person's click (user activation).
	clickAsUser(t, a, "share-screen")
	waitFor(t, a, "a shares", `document.getElementById('share-screen').getAttribute('aria-pressed') === 'true' && icebox.snapshot().screen`)
	// The sharer sees that they present, with a small preview, and no tile of their own screen.
	waitFor(t, a, "a sees You are presenting", `!document.getElementById('presenting').hidden && document.getElementById('presenting-video').srcObject !== null`)
	if n := eval[int](t, a, `document.querySelectorAll('#tiles .tile.screen').length`); n != 0 {
		t.Errorf("the sharer's view has %d screen tiles, want none", n)
	}
	for _, vp := range viewports {
		emulate(t, a, vp)
		screenshot(t, a, t.TempDir(), "presenting-"+vp.name)
	}
	emulate(t, a, viewports[0])
	waitFor(t, b, "a's screen is on b's stage", `(() => { const t = document.querySelector('.tile.remote.screen');
		const v = t && t.querySelector('video'); return !!v && v.videoWidth > 0 && v.currentTime > 0 && t.classList.contains('staged'); })()`)
	framesChange(t, b, "a's screen moves on b's stage", ".tile.remote.screen video")
	if name := eval[string](t, b, `document.querySelector('.tile.remote.screen figcaption').textContent`); name != "a's screen" {
		t.Errorf("screen tile caption %q", name)
	}
	dir := t.TempDir()
	for _, vp := range viewports {
		emulate(t, b, vp)
		checkLayout(t, b, "share-"+vp.name, 3)
		screenshot(t, b, dir, "share-"+vp.name)
	}
	// The browser's own "Stop sharing" ends the track and fires ended.
	eval[bool](t, a, `icebox.endTrack('screen')`)
	waitFor(t, a, "a's share button is off", `document.getElementById('share-screen').getAttribute('aria-pressed') === 'false' && !document.getElementById('screen-local')`)
	waitFor(t, b, "a's screen tile is gone from b", `document.querySelector('.tile.screen') === null`)
	if _, err := waitForRemoteVideo(b, time.Now().Add(10*time.Second)); err != nil {
		t.Errorf("a's camera after the share: %v", err)
	}
}

// badgeJS reads the connection badge of the first remote tile and the
// page's own stats sample of that connection.
const badgeJS = `(async () => { const n = Object.values(await icebox.sample())[0] || {};
	const net = document.querySelector('.tile.remote .net');
	return {text: net.textContent, title: net.title, label: net.getAttribute('aria-label'), path: n.path || '', transport: n.transport || ''}; })()`

type badge struct {
	Text      string `json:"text"`
	Title     string `json:"title"` // the details, on hover
	Label     string `json:"label"` // what a screen reader says
	Path      string `json:"path"`
	Transport string `json:"transport"`
}

// waitBadge waits until tab's first remote tile has a badge starting
// with want and returns it with the stats it came from. (The browser may
// start on one candidate pair and move to a better one: relay over TCP
// first, then over UDP.)
func waitBadge(t *testing.T, tab context.Context, want string) badge {
	t.Helper()
	waitFor(t, tab, "a connection badge saying "+want, `(document.querySelector('.tile.remote .net')?.textContent || '').startsWith(`+jsString(want)+`)`)
	b, err := chromedp.Run(tab, chromedp.Evaluate[badge](badgeJS, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPageBadgeRelayTransport: with TURN over UDP only, then over TCP
// only, a relay-only call's badges say "Via server", with UDP, then TCP
// in their details, and no candidate address in their accessible label.
func TestPageBadgeRelayTransport(t *testing.T) {
	lane(t, laneBrowser)
	br := newBrowser(t)
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			ib := startIcebox(t, func(c *config.Config) { c.TURN.Listen = []string{transport + "://127.0.0.1:0"} })
			room := ib.newRoom(t)
			a := newTab(t, br, ib.URL+"/r/"+room+"?test=1&name=a&autojoin=1&relay=1")
			b := newTab(t, br, ib.URL+"/r/"+room+"?test=1&name=b&autojoin=1&relay=1")
			waitMutualVideo(t, a, b, time.Now().Add(callUp))
			want := "Relayed by the server over " + strings.ToUpper(transport)
			for name, tab := range map[string]context.Context{"a": a, "b": b} {
				got := waitBadge(t, tab, "Via server")
				if got.Path != "relay" || got.Transport != transport || !strings.Contains(got.Title, want) {
					t.Errorf("page %s: badge %+v, want details %q", name, got, want)
				}
				if strings.Contains(got.Label, "127.0.0.1") || !strings.Contains(got.Label, want) {
					t.Errorf("page %s: badge label %q, want %q and no address", name, got.Label, want)
				}
			}
		})
	}
}
