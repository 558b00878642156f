package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/icebox-project/icebox/config"
)

// framesCounterJS counts, in the page, the frames each remote tile's
// <video> presents, by peer id: windows.__sfuFrames()[id] is the count.
// It takes the larger of two counts, each only growing: frames presented
// (requestVideoFrameCallback) and frames the element was given
// (getVideoPlaybackQuality; a headless Chromium may skip rendering
// steps, and Firefox counts none for a MediaStream).
const framesCounterJS = `(() => {
  const counts = {}; const seen = new WeakMap();
  setInterval(() => {
    for (const v of document.querySelectorAll('.tile.remote video')) {
      const id = v.closest('.tile').dataset.peer;
      let s = seen.get(v);
      if (!s) {
        s = {n: 0, last: v.getVideoPlaybackQuality().totalVideoFrames};
        seen.set(v, s);
        if (v.requestVideoFrameCallback) {
          const tick = () => { s.n++; v.requestVideoFrameCallback(tick); };
          v.requestVideoFrameCallback(tick);
        }
      }
      const now = Math.max(s.n, v.getVideoPlaybackQuality().totalVideoFrames);
      if (now > s.last) counts[id] = (counts[id] || 0) + now - s.last;
      s.last = Math.max(s.last, now);
    }
  }, 100);
  window.__sfuFrames = () => counts;
  return true;
})()`

// sfuVideoStatsJS gives the page's video on its SFU connection, in JSON:
// each outbound layer (rid, width, frames per second, target bitrate,
// what limits it) and each inbound track's width, and the estimate.
const sfuVideoStatsJS = `(async () => { const st = (await icebox.stats()).sfu || [];
  return JSON.stringify(st.filter((s) => s.kind === 'video' && (s.type === 'inbound-rtp' || s.type === 'outbound-rtp') || (s.type === 'candidate-pair' && s.nominated))
    .map((s) => s.type === 'candidate-pair' ? {estimate: s.availableOutgoingBitrate}
      : {type: s.type, rid: s.rid, width: s.frameWidth, fps: s.framesPerSecond, target: s.targetBitrate, limit: s.qualityLimitationReason})); })()`

// TestPageSFURoom: three people open the call page of a room whose media
// is sfu. Each page has one connection (to the SFU) and none to the
// others, publishes its camera as VP8 simulcast and its microphone, and
// shows the two others' video playing: each remote <video> element
// presents new frames; its camera is 720p, for three layers. The server forwarded video. Chat goes over
// signaling, and a person leaving takes their tile away.
func TestPageSFURoom(t *testing.T) {
	lane(t, laneHeavy)
	ib := startIcebox(t, func(c *config.Config) {
		c.SFU = &config.SFU{Listen: []string{"udp://127.0.0.1:0"}}
		c.Signaling.Rooms = map[string]config.Room{"town": {Media: "sfu"}}
	})
	br := newBrowser(t)
	names := []string{"ann", "ben", "cat"}
	var tabs []context.Context
	for _, n := range names {
		tabs = append(tabs, newTab(t, br, ib.URL+"/r/town?test=1&autojoin=1&name="+n))
	}
	for i, tab := range tabs {
		waitForWithin(t, tab, names[i]+" is in an SFU room with one connection to the SFU, publishing",
			`(() => { const s = icebox.snapshot(); return s.media === 'sfu' && s.peers.length === 0 && !!s.sfu && s.sfu.connectionState === 'connected' && s.sfu.senders === 2; })()`,
			20*time.Second)
		eval[bool](t, tab, framesCounterJS)
		if !eval[bool](t, tab, `document.getElementById('share-screen').hidden`) {
			t.Errorf("%s: the share button shows in an SFU room, which does not carry screen shares", names[i])
		}
	}
	for i, tab := range tabs {
		defer func() {
			if t.Failed() {
				t.Logf("%s: %s", names[i], eval[string](t, tab, `JSON.stringify({s: icebox.snapshot(), tiles: [...document.querySelectorAll('.tile.remote')].map((x) => x.dataset.peer)})`))
				t.Logf("%s's video to and from the SFU: %s", names[i], eval[string](t, tab, sfuVideoStatsJS))
			}
		}()
	}
	for i, tab := range tabs {
		waitForWithin(t, tab, names[i]+" sees both others' video playing",
			`(() => { const s = icebox.snapshot(); const f = window.__sfuFrames(); const ids = Object.keys(s.names);
				return ids.length === 2 && ids.every((id) => (f[id] || 0) > 10); })()`, 20*time.Second)
	}
	// The cameras are 720p in an SFU room (640×480 would give Chromium's
	// encoder two layers, never f), and each page sends three layers.
	// Whether f flows depends on the bandwidth estimates, which on a
	// loaded machine's loopback stay low: logged, not asserted.
	for i, tab := range tabs {
		waitFor(t, tab, names[i]+"'s camera is 1280×720 and sends layers q, h and f",
			`(async () => { const cam = icebox.snapshot().tracks.filter((x) => x.kind === 'video' && x.readyState === 'live');
				const st = (await icebox.stats()).sfu || [];
				const rids = st.filter((s) => s.type === 'outbound-rtp' && s.kind === 'video').map((s) => s.rid).sort().join();
				return cam.length === 1 && cam[0].width === 1280 && cam[0].height === 720 && rids === 'f,h,q'; })()`)
	}
	t.Logf("ann's video to and from the SFU: %s", eval[string](t, tabs[0], sfuVideoStatsJS))
	// What ann sees, on a desktop and on a phone.
	dir := t.TempDir()
	for _, vp := range viewports {
		emulate(t, tabs[0], vp)
		screenshot(t, tabs[0], dir, "sfu-room-"+vp.name)
	}
	// What the server forwarded.
	resp, err := http.Get("http://" + ib.MetricsAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`icebox_sfu_forwarded_packets_total\{kind="video"\} (\d+)`).FindSubmatch(body)
	if m == nil {
		t.Fatal("no icebox_sfu_forwarded_packets_total for video")
	}
	if n, _ := strconv.Atoi(string(m[1])); n < 100 {
		t.Errorf("the SFU forwarded %d video packets, want many", n)
	}
	// Chat goes over signaling.
	typeAndSubmit(t, tabs[0], "chat-input", "hello all")
	for i, tab := range tabs[1:] {
		waitFor(t, tab, names[i+1]+" reads ann's line",
			`[...document.querySelectorAll('#messages li')].some((li) => li.textContent.includes('hello all'))`)
	}
	// cat leaves: her tile goes on both other pages.
	eval[bool](t, tabs[2], `(() => { document.getElementById('leave').click(); return true; })()`)
	for i, tab := range tabs[:2] {
		waitFor(t, tab, fmt.Sprintf("%s's page drops cat's tile", names[i]),
			`document.querySelectorAll('.tile.remote').length === 1`)
	}
}
