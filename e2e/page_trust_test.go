package e2e

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// unreachableRelayJS runs in a page before its own scripts: every
// RTCPeerConnection gets ICE servers on a port where nothing listens, as
// when the relay cannot be reached from the network the browser is on.
const unreachableRelayJS = `(() => {
  const Native = window.RTCPeerConnection;
  const cut = (c) => ({...(c || {}), iceServers: [{urls: 'turn:127.0.0.1:9?transport=udp', username: 'u', credential: 'p'}]});
  window.RTCPeerConnection = class extends Native {
    constructor(c) { super(cut(c)); }
    setConfiguration(c) { return super.setConfiguration(cut(c)); }
  };
})()`

// scriptedTab opens url in a new tab that runs js before the page's own
// scripts.
func scriptedTab(t *testing.T, browser context.Context, url, js string) context.Context {
	t.Helper()
	tab, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	if _, err := chromedp.Call(tab, page.AddScriptToEvaluateOnNewDocument,
		page.AddScriptToEvaluateOnNewDocumentParams{Source: js}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(tab, chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	return tab
}

// statesAtConnectJS records, when a peer connection of the page
// connects, what the remote tile says right after the page's own
// handler of that event has run: it listens right after the page does.
const statesAtConnectJS = `(() => {
	const add = RTCPeerConnection.prototype.addEventListener;
	RTCPeerConnection.prototype.addEventListener = function (type, fn, opts) {
		add.call(this, type, fn, opts);
		if (type !== 'connectionstatechange' || this.__watched) return;
		this.__watched = true;
		add.call(this, type, () => {
			if (this.connectionState !== 'connected') return;
			const t = document.querySelector('.tile.remote');
			(window.__statesAtConnect = window.__statesAtConnect || []).push(t ? t.dataset.state || '' : 'no tile');
		});
	};
})();`

// TestPageTrust: what a call page says matches what happens. A relayed
// call whose relay cannot be reached says "Can't connect to" the other
// person on their tile, with a link to /check, within 15 s (the page
// gives a connection 10 s). In a call that works: focus is on the call
// after Join, the speaking ring shows over a playing video (its pixels
// at the tile's edge in a screenshot), Esc in the chat's input closes
// the chat, and arrivals and departures are announced in a live region
// ("Bob joined", "Bob left").
func TestPageTrust(t *testing.T) {
	lane(t, laneHeavy)
	ib := startIcebox(t, nil)
	br := newBrowser(t)
	dir := t.TempDir()

	t.Run("cant-connect", func(t *testing.T) {
		room := ib.newRoom(t)
		a := scriptedTab(t, br, ib.URL+"/r/"+room+"?test=1&name=Ada&autojoin=1&relay=1", unreachableRelayJS)
		scriptedTab(t, br, ib.URL+"/r/"+room+"?test=1&name=Bob&autojoin=1&relay=1", unreachableRelayJS)
		waitFor(t, a, "Ada's tile for Bob says it is connecting",
			`document.querySelector('.tile.remote')?.dataset.state === 'connecting'`)
		waitForWithin(t, a, "Ada's tile for Bob says it can't connect, with the /check link", `(() => {
			const t = document.querySelector('.tile.remote'); const s = t && t.querySelector('.media-state');
			return !!s && !s.hidden && s.textContent.startsWith("Can't connect to Bob") &&
				s.querySelector('a')?.getAttribute('href') === '/check'; })()`, 15*time.Second)
		if st := eval[string](t, a, `icebox.snapshot().peers[0].connectionState`); st == "connected" {
			t.Errorf("the connection is %s, yet the tile says it can't connect", st)
		}
		for _, vp := range viewports {
			emulate(t, a, vp)
			screenshot(t, a, dir, "cant-connect-"+vp.name)
		}
	})

	// The tile's words follow the connection at once: when it connects,
	// the page has taken "Connecting…" off the tile before anything else
	// runs (it had waited up to half a second for the next check, over a
	// video already playing).
	t.Run("state-at-connect", func(t *testing.T) {
		room := ib.newRoom(t)
		a := scriptedTab(t, br, ib.URL+"/r/"+room+"?test=1&name=Ada&autojoin=1", statesAtConnectJS)
		waitFor(t, a, "Ada is in the call", `!document.getElementById('call').hidden`)
		newTab(t, br, ib.URL+"/r/"+room+"?test=1&name=Bob&autojoin=1")
		waitFor(t, a, "Ada's connection to Bob connects", `(window.__statesAtConnect || []).length > 0`)
		if got := eval[[]string](t, a, `window.__statesAtConnect`); got[0] != "ok" {
			t.Errorf("Bob's tile said %q when the connection to him connected, want ok (the stream it was given counts as playing)", got)
		}
	})

	// On a phone the stage is narrow: a long name's arrival is announced
	// whole ("… joined", wrapped, not cut off) and clear of the tile's
	// connection badge.
	t.Run("announce-phone", func(t *testing.T) {
		room := ib.newRoom(t)
		a := openTab(t, br, ib.URL+"/r/"+room+"?test=1&name=Ada&autojoin=1", viewports[1])
		waitFor(t, a, "Ada is in the call", `!document.getElementById('call').hidden`)
		const long = "Maximiliane Christodoulou-Papadopoulos"
		newTab(t, br, ib.URL+"/r/"+room+"?test=1&autojoin=1&name="+url.QueryEscape(long))
		waitFor(t, a, "the arrival is announced, and Bob's tile has its connection badge", fmt.Sprintf(
			`document.getElementById('announce').textContent === %q && !!document.querySelector('.tile.remote .net')?.textContent`, long+" joined"))
		why := eval[string](t, a, `(() => {
			const an = document.getElementById('announce'), net = document.querySelector('.tile.remote .net');
			const r = an.getBoundingClientRect(), b = net.getBoundingClientRect();
			if (an.scrollWidth > an.clientWidth + 1) return 'the announcement is cut off: ' + an.scrollWidth + ' px of text in ' + an.clientWidth;
			if (r.left < b.right && b.left < r.right && r.top < b.bottom && b.top < r.bottom)
				return 'the announcement ' + JSON.stringify(r) + ' covers the badge ' + JSON.stringify(b);
			return ''; })()`)
		if why != "" {
			t.Error(why)
		}
		screenshot(t, a, dir, "announce-phone")
	})

	t.Run("call", func(t *testing.T) {
		room := ib.newRoom(t)
		a := openTab(t, br, ib.URL+"/r/"+room+"?test=1&name=Ada&autojoin=1", viewports[0])
		waitFor(t, a, "Ada is in the call", `!document.getElementById('call').hidden`)
		waitFor(t, a, "the focus is on the call after Join", `document.activeElement === document.getElementById('tiles')`)
		b := newTab(t, br, ib.URL+"/r/"+room+"?test=1&name=Bob&autojoin=1")
		waitFor(t, a, "Bob joined is announced", `document.getElementById('announce').textContent === 'Bob joined'`)
		if role := eval[string](t, a, `document.getElementById('announce').getAttribute('aria-live')`); role != "polite" {
			t.Errorf("the announcements are in aria-live=%q, want polite", role)
		}
		framesChange(t, a, "Bob's video plays on Ada's page", ".tile.remote video")
		waitFor(t, a, "Bob's tile says nothing over a playing video", `document.querySelector('.tile.remote').dataset.state === 'ok'`)

		// The ring over the video: the tile's edge is the ring's green in
		// the screenshot, whatever the picture. Bob speaks (the fake
		// microphone's beeps); a screenshot counts only if his tile was
		// speaking before and after it was taken (the page decides who
		// speaks five times a second).
		green, tries := 0, 0
		for deadline := time.Now().Add(20 * time.Second); ; tries++ {
			if time.Now().After(deadline) {
				t.Fatalf("Bob's tile was never speaking through a whole screenshot in %d tries", tries)
			}
			waitFor(t, a, "Bob is speaking on Ada's page", `document.querySelector('.tile.remote').classList.contains('speaking')`)
			settle(t, a)
			box := eval[[]float64](t, a, `(() => { const r = document.querySelector('.tile.remote').getBoundingClientRect(); return [r.left, r.top, r.width, r.height]; })()`)
			speaking := `document.querySelector('.tile.remote').classList.contains('speaking')`
			if !eval[bool](t, a, speaking) {
				continue
			}
			shot, err := chromedp.Run(a, chromedp.CaptureScreenshot())
			if err != nil {
				t.Fatal(err)
			}
			if !eval[bool](t, a, speaking) {
				continue
			}
			img, err := png.Decode(bytes.NewReader(shot))
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range [][2]float64{{box[0] + 1, box[1] + box[3]/2}, {box[0] + box[2] - 2, box[1] + box[3]/2}, {box[0] + box[2]/2, box[1] + 1}} {
				r, g, b, _ := img.At(int(p[0]), int(p[1])).RGBA()
				if r>>8 < 120 && g>>8 > 180 && b>>8 < 160 {
					green++
				}
			}
			break
		}
		if green < 3 {
			t.Errorf("the speaking ring shows at %d of 3 points of the tile's edge over the video", green)
		}
		screenshot(t, a, dir, "speaking-over-video-desktop")

		// Esc in the chat's input closes the chat.
		click(t, a, "chat-toggle")
		waitFor(t, a, "the chat is open, its input focused", `!document.getElementById('chat').hidden && document.activeElement.id === 'chat-input'`)
		typeAndSubmit(t, a, "chat-input", "hello")
		waitFor(t, a, "the line has its time", `/\d/.test(document.querySelector('#messages li:last-child').dataset.time || '')`)
		screenshot(t, a, dir, "chat-times-desktop")
		eval[bool](t, a, `document.getElementById('chat-input').dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape', bubbles: true}))`)
		waitFor(t, a, "Esc closed the chat", `document.getElementById('chat').hidden && document.activeElement.id === 'chat-toggle'`)

		click(t, b, "leave")
		waitFor(t, a, "Bob left is announced", `document.getElementById('announce').textContent === 'Bob left'`)
		screenshot(t, a, dir, "bob-left-desktop")
	})
}
