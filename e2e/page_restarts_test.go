package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// restartRuns is how many times TestPageRelayRestarts restarts icebox.
const restartRuns = 10

// TestPageRelayRestarts: a relayed two-person call (?relay=1) while
// icebox stops (as on SIGTERM) and starts again restartRuns times in a
// row, the first time held down until the page wants an ICE restart.
// The allocations die with the server, so each time the pages rejoin, fetch fresh credentials in the welcome and restart ICE over
// them; every run shows moving remote video again (the <video>
// element's presented frames advance) within 10 s of the start, and the
// page says so. Recovery times are logged.
func TestPageRelayRestarts(t *testing.T) {
	lane(t, laneHeavy)
	if testing.Short() {
		t.Skip("restarts icebox ten times (about a minute)")
	}
	r, url := startRestartable(t)
	br := newBrowser(t)
	room := "restarts"
	a := newTab(t, br, url+"/r/"+room+"?test=1&name=a&autojoin=1&relay=1")
	b := newTab(t, br, url+"/r/"+room+"?test=1&name=b&autojoin=1&relay=1")
	waitMutualVideo(t, a, b, time.Now().Add(callUp))
	// b counts the frames its <video> of a presents, whatever its stream.
	countFrames(t, b)
	var took []time.Duration
	for i := range restartRuns {
		r.stop(t)
		waitText(t, b, "status", "reconnect")
		if i == 0 {
			// A long outage first: b's connection to a goes down and
			// wants an ICE restart, which waits for signaling (its
			// offer could go nowhere, and it would gather with the
			// credentials of a server that is gone).
			before := eval[int](t, b, `window.icebox.snapshot().peers[0].restarts`)
			waitForWithin(t, b, "b's connection to a wants an ICE restart while icebox is down",
				`window.icebox.snapshot().peers[0].restartWanted`, 20*time.Second)
			if got := eval[int](t, b, `window.icebox.snapshot().peers[0].restarts`); got != before {
				t.Errorf("b's page restarted ICE %d times while icebox was down", got-before)
			}
		}
		r.start(t)
		start := time.Now()
		// Frames presented once icebox is back (ten: moving, not one
		// frame the element still had).
		seen := eval[int](t, b, `window.__frames`)
		defer func() {
			if t.Failed() {
				t.Logf("a: %s\nb: %s\nframes %d (seen %d)", eval[string](t, a, dumpJS), eval[string](t, b, dumpJS), eval[int](t, b, `window.__frames`), seen)
				m, err := chromedp.Run(b, chromedp.Evaluate[string](mediaDumpJS, chromedp.EvalAwaitPromise))
				t.Logf("b's media: %s %v", m, err)
				l, err := chromedp.Run(b, chromedp.Evaluate[string](elementDumpJS))
				t.Logf("b's remote video element: %s %v", l, err)
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
