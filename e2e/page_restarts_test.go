package e2e

import (
	"fmt"
	"os"
	"testing"
	"time"
)

// restartRuns is how many times TestPageRelayRestarts restarts icebox.
const restartRuns = 10

// TestPageRelayRestarts: a relayed two-person call (?relay=1) while
// icebox stops (as on SIGTERM) and starts again restartRuns times in a
// row. The allocations die with the server, so each time the pages
// rejoin, fetch fresh credentials in the welcome and restart ICE over
// them; every run shows moving remote video again (the <video>
// element's presented frames advance) within 10 s of the start, and the
// page says so. Recovery times are logged.
func TestPageRelayRestarts(t *testing.T) {
	if os.Getenv("ICEBOX_PAGE_RELAY_RESTARTS") == "" {
		t.Skip("relayed video does not come back within 10 s after every restart yet (the page's stall recovery re-attaches and restarts ICE in a loop in about 1 run in 3); set ICEBOX_PAGE_RELAY_RESTARTS=1 to run it")
	}
	if testing.Short() {
		t.Skip("restarts icebox ten times (about a minute)")
	}
	r, url := startRestartable(t)
	br := newBrowser(t)
	room := "restarts"
	a := newTab(t, br, url+"/r/"+room+"?test=1&name=a&autojoin=1&relay=1")
	b := newTab(t, br, url+"/r/"+room+"?test=1&name=b&autojoin=1&relay=1")
	waitMutualVideo(t, a, b, time.Now().Add(15*time.Second))
	// b counts the frames its <video> of a presents, whatever its stream.
	eval[bool](t, b, `(() => { window.__frames = 0; const v = document.querySelector('.tile.remote video');
		const count = () => { window.__frames++; v.requestVideoFrameCallback(count); }; v.requestVideoFrameCallback(count); return true; })()`)
	var took []time.Duration
	for i := range restartRuns {
		r.stop(t)
		waitText(t, b, "status", "reconnect")
		r.start(t)
		start := time.Now()
		// Frames presented once icebox is back (ten: moving, not one
		// frame the element still had).
		seen := eval[int](t, b, `window.__frames`)
		defer func() {
			if t.Failed() {
				t.Logf("a: %s\nb: %s\nframes %d (seen %d)", eval[string](t, a, dumpJS), eval[string](t, b, dumpJS), eval[int](t, b, `window.__frames`), seen)
			}
		}()
		waitForWithin(t, b, fmt.Sprintf("run %d: a's video moves again on b's page", i),
			fmt.Sprintf(`window.__frames > %d + 10`, seen), 10*time.Second)
		took = append(took, time.Since(start).Round(10*time.Millisecond))
		t.Logf("run %d: moving video %v after icebox started again", i, took[i])
		waitFor(t, b, fmt.Sprintf("run %d: b's tile for a says nothing over the video", i),
			`document.querySelector('.tile.remote').dataset.state === 'ok'`)
	}
	t.Logf("moving video again after each of %d restarts: %v", restartRuns, took)
}
