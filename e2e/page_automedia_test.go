package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/heapprofiler"
	"github.com/chromedp/chromedp"

	"github.com/icebox-project/icebox/config"
)

// gapMeterJS runs in a page before its own scripts and measures, per
// remote person (tile), the longest time between two frames their
// <video> presents (requestVideoFrameCallback, and the element's count
// of frames given to it, polled every 50 ms: a headless page may skip
// rendering steps) since __gaps.arm(), whichever element shows them; and
// whether their tile showed the no-picture placeholder meanwhile.
// __gaps.read() returns {gap: {id: ms}, blank: {id: true}, frames: {id:
// n}}, an ongoing gap included.
const gapMeterJS = `(() => {
  let armedAt = 0;
  const last = {}, gap = {}, blank = {}, frames = {}, seen = new WeakSet(), counted = new WeakMap(), src = new WeakMap(), events = {}, swapFrom = {}, swapGap = {};
  const progress = (id) => {
    if (!id || !armedAt) return;
    const now = performance.now();
    if (last[id] !== undefined && now - last[id] > (gap[id] || 0)) {
      gap[id] = now - last[id];
      events[id] = (events[id] || []).concat(['gap ' + Math.round(gap[id]) + ' ending at ' + Math.round(now - armedAt)]);
    }
    if (swapFrom[id] !== undefined) { swapGap[id] = Math.round(now - swapFrom[id]); delete swapFrom[id]; }
    last[id] = now;
    frames[id] = (frames[id] || 0) + 1;
  };
  const idOf = (v) => { const t = v.closest('.tile.remote'); return t ? t.dataset.peer : ''; };
  const watch = (v) => {
    if (seen.has(v)) return;
    seen.add(v);
    const tick = () => { progress(idOf(v)); if (v.isConnected) v.requestVideoFrameCallback(tick); };
    v.requestVideoFrameCallback(tick);
  };
  setInterval(() => {
    for (const v of document.querySelectorAll('.tile.remote video')) {
      watch(v);
      if (armedAt && src.get(v) !== v.srcObject) {
        const id = idOf(v);
        events[id] = (events[id] || []).concat(['new stream at ' + Math.round(performance.now() - armedAt)]);
        if (last[id] !== undefined) swapFrom[id] = last[id];
      }
      src.set(v, v.srcObject);
      const q = v.getVideoPlaybackQuality().totalVideoFrames;
      const before = counted.get(v);
      if (before !== undefined && q !== before && q > 0) progress(idOf(v));
      counted.set(v, q);
    }
    if (armedAt) for (const t of document.querySelectorAll('.tile.remote:not(.screen)')) if (t.classList.contains('novideo') && !blank[t.dataset.peer]) {
      blank[t.dataset.peer] = true;
      events[t.dataset.peer] = (events[t.dataset.peer] || []).concat(['placeholder at ' + Math.round(performance.now() - armedAt)]);
    }
  }, 50);
  window.__gaps = {
    arm() { armedAt = performance.now(); for (const o of [last, gap, blank, frames, events, swapFrom, swapGap]) for (const k of Object.keys(o)) delete o[k]; return true; },
    read() {
      const now = performance.now(), out = {};
      for (const id of Object.keys(last)) out[id] = Math.round(Math.max(gap[id] || 0, now - last[id]));
      return {gap: out, blank: {...blank}, frames: {...frames}, events: {...events}, swap: {...swapGap}};
    },
  };
  return true;
})()`

// gapReport is what __gaps.read() returns.
type gapReport struct {
	Gap    map[string]float64 `json:"gap"`
	Blank  map[string]bool    `json:"blank"`
	Frames map[string]int     `json:"frames"`
	// Events says when (ms after arm) the longest gap grew, the tile's
	// video took a new stream, and the placeholder showed.
	Events map[string][]string `json:"events"`
	// Swap is the gap from the last frame before the tile's video took
	// a new stream to the first frame after, ms.
	Swap map[string]float64 `json:"swap"`
}

// autoMeshUp is true in the page of one of two people in an auto room
// once it is peer to peer, its tile plays the other's stream from that
// connection (a live video track) and presented over 10 frames of it
// since __gaps.arm().
const autoMeshUp = `(() => { const s = icebox.snapshot(); const v = document.querySelector('.tile.remote:not(.screen) video');
	return s.media === 'mesh' && !s.moving && !s.sfu && s.peers.length === 1 && s.peers[0].connectionState === 'connected' &&
		!!v && v.srcObject instanceof MediaStream && v.srcObject.getVideoTracks().some((t) => t.readyState === 'live') &&
		(window.__gaps.read().frames[s.peers[0].id] || 0) > 10; })()`

// autoSFUUp is true in the page of one of three people in a room moved
// to the SFU once it holds no mesh connection, each of the others' tiles
// plays their stream from the SFU connection, and each presented over 10
// frames since __gaps.arm().
const autoSFUUp = `(() => { const s = icebox.snapshot(); const f = window.__gaps.read().frames; const ids = Object.keys(s.names);
	return s.media === 'sfu' && !s.moving && s.peers.length === 0 && !!s.sfu && s.sfu.connectionState === 'connected' &&
		ids.length === 2 && ids.every((id) => (f[id] || 0) > 10) &&
		ids.every((id) => { const v = document.querySelector('#tile-' + CSS.escape(id) + ' video');
			return !!v && v.srcObject instanceof MediaStream && s.sfu.streams.includes(v.srcObject.id); }); })()`

// TestPageAutoRoom: in an auto room with mesh_max 2, ann and ben start
// peer to peer. cat joining moves the room to the SFU: ann's and ben's
// pages keep the other's video presenting while they change over (the
// longest gap between two frames is logged, and whether the tile fell
// back to its placeholder), then hold no mesh connection, and every tile says
// "Via server". cat leaving moves the room back, after the (shortened)
// mesh_return_after: ann and ben are peer to peer again with video
// presenting throughout, "Direct" on the tiles, the SFU connection
// closed, and no closed RTCPeerConnection left held.
func TestPageAutoRoom(t *testing.T) {
	lane(t, laneHeavy)
	start := time.Now()
	ib := startIcebox(t, func(c *config.Config) {
		c.SFU = &config.SFU{Listen: []string{"udp://127.0.0.1:0"}}
		c.Signaling.DefaultMedia = config.MediaAuto
		c.Signaling.MeshMax = 2
		c.Signaling.MeshReturnAfter = 2 * time.Second
	})
	br := newBrowser(t)
	room := ib.newRoom(t)
	url := ib.URL + "/r/" + room + "?test=1&autojoin=1&name="
	ann := scriptedTab(t, br, url+"ann", countPeerConnectionsJS+";"+gapMeterJS)
	ben := scriptedTab(t, br, url+"ben", gapMeterJS)
	pair := []struct {
		name, other string
		tab         context.Context
	}{{"ann", "ben", ann}, {"ben", "ann", ben}}
	for _, p := range pair {
		defer func() {
			if t.Failed() {
				t.Logf("%s: %s", p.name, eval[string](t, p.tab, `JSON.stringify({s: icebox.snapshot(), gaps: window.__gaps.read(),
					tiles: [...document.querySelectorAll('.tile.remote')].map((x) => [x.dataset.peer, x.className, x.querySelector('.net').textContent])})`))
			}
		}()
	}
	// Peer to peer, each seeing the other.
	for _, p := range pair {
		eval[bool](t, p.tab, `window.__gaps.arm()`)
	}
	for _, p := range pair {
		waitForWithin(t, p.tab, p.name+" is peer to peer with video presenting", autoMeshUp, 20*time.Second)
		eval[bool](t, p.tab, `window.__gaps.arm()`)
	}

	// cat is the third: the room moves to the SFU.
	cat := newTab(t, br, url+"cat")
	eval[bool](t, cat, gapMeterJS)
	eval[bool](t, cat, `window.__gaps.arm()`)
	for _, p := range pair {
		waitForWithin(t, p.tab, p.name+" is on the SFU, its mesh connection closed, both others' video presenting", autoSFUUp, 30*time.Second)
	}
	waitForWithin(t, cat, "cat sees both others' video", autoSFUUp, 20*time.Second)
	for _, p := range pair {
		r := eval[gapReport](t, p.tab, `window.__gaps.read()`)
		other := idOf(t, p.tab, p.other)
		t.Logf("%s, mesh → SFU: the other's video changed stream with a gap of %.0f ms; the longest gap %.0f ms (%d frames; %s)", p.name, r.Swap[other], r.Gap[other], r.Frames[other], strings.Join(r.Events[other], ", "))
		if r.Blank[other] {
			// A stall of the machine mutes a track as well, so this is said, not failed.
			t.Logf("%s: the other's tile showed its placeholder during the move to the SFU", p.name)
		}
	}
	// Every tile says the media goes through the server.
	for _, p := range pair {
		waitFor(t, p.tab, p.name+"'s tiles say Via server", `[...document.querySelectorAll('.tile.remote .net')].length === 2 &&
			[...document.querySelectorAll('.tile.remote .net')].every((n) => n.textContent.startsWith('Via server'))`)
	}
	dir := t.TempDir()
	for _, vp := range viewports {
		emulate(t, ann, vp)
		screenshot(t, ann, dir, "auto-room-sfu-"+vp.name)
	}
	emulate(t, ann, viewports[0])

	// cat leaves: two are left, and 2 s later the room is a mesh again.
	for _, p := range pair {
		eval[bool](t, p.tab, `window.__gaps.arm()`)
	}
	eval[bool](t, cat, `(() => { document.getElementById('leave').click(); return true; })()`)
	for _, p := range pair {
		waitForWithin(t, p.tab, p.name+" is peer to peer again, the SFU connection closed", autoMeshUp, 30*time.Second)
	}
	for _, p := range pair {
		r := eval[gapReport](t, p.tab, `window.__gaps.read()`)
		other := idOf(t, p.tab, p.other)
		t.Logf("%s, SFU → mesh: the other's video changed stream with a gap of %.0f ms; the longest gap %.0f ms (%d frames; %s)", p.name, r.Swap[other], r.Gap[other], r.Frames[other], strings.Join(r.Events[other], ", "))
		if r.Blank[other] {
			// A stall of the machine mutes a track as well, so this is said, not failed.
			t.Logf("%s: the other's tile showed its placeholder during the move back", p.name)
		}
		waitFor(t, p.tab, p.name+"'s tile says Direct", `document.querySelector('.tile.remote .net').textContent.startsWith('Direct')`)
	}
	// ann holds her one mesh connection, and no closed one.
	var h heldConnections
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if _, err := chromedp.Call(ann, heapprofiler.CollectGarbage, cdp.Empty{}); err != nil {
			t.Fatal(err)
		}
		if h = eval[heldConnections](t, ann, `window.heldPeerConnections()`); len(h.Held) == 1 {
			break
		}
		awaitJS[bool](t, ann, `new Promise((r) => setTimeout(() => r(true), 100))`)
	}
	if len(h.Held) != 1 || !strings.HasSuffix(h.Held[0], " connected") || h.Made != 3 {
		t.Errorf("ann made %d peer connections and holds %v; want 3 made (mesh, SFU, mesh) and only the last held, connected", h.Made, h.Held)
	}
	t.Logf("the test took %v", time.Since(start).Round(time.Second))
}

// idOf is the peer id of the person called name, as tab's page knows it.
func idOf(t *testing.T, tab context.Context, name string) string {
	t.Helper()
	id := eval[string](t, tab, `(() => { const e = Object.entries(icebox.snapshot().names).find(([, n]) => n === `+jsString(name)+`); return e ? e[0] : ''; })()`)
	if id == "" {
		t.Fatalf("no %s among %s", name, eval[string](t, tab, `JSON.stringify(icebox.snapshot().names)`))
	}
	return id
}
