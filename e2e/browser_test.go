package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/icebox-project/icebox/internal/testenv"
)

// chromiumPath finds Debian's Chromium. Outside CI a missing browser
// skips; in CI (.ci/run installs it) it fails (testenv).
func chromiumPath(t *testing.T) string {
	t.Helper()
	return testenv.Tool(t, "apt-get install chromium", "chromium", "chromium-browser", "google-chrome")
}

// newBrowser starts a headless Chromium with a fake camera and microphone.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	return newBrowserFlags(t)
}

// consoleKeep is how many console lines a tab keeps for a failure's log.
const consoleKeep = 200

// newTab opens url in a new tab of the browser.
// The tab's last consoleKeep console lines are logged if the test fails.
func newTab(t *testing.T, browser context.Context, url string) context.Context {
	t.Helper()
	tab, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	var (
		mu    sync.Mutex
		lines []string
	)
	listen := func(ev any) {
		c, ok := ev.(*runtime.EventConsoleAPICalled)
		if !ok {
			return
		}
		var b strings.Builder
		for _, a := range c.Args {
			b.WriteByte(' ')
			if a.Value != nil {
				b.Write(a.Value)
			} else {
				b.WriteString(a.Description)
			}
		}
		// Milliseconds since the epoch.
		at := time.UnixMicro(int64(c.Timestamp.Float64() * 1000)).UTC()
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, at.Format("15:04:05.000")+" "+string(c.Type)+b.String())
		if len(lines) > consoleKeep {
			lines = lines[len(lines)-consoleKeep:]
		}
	}
	if err := chromedp.Listen(tab, listen); err != nil {
		t.Fatalf("listen to %s's console: %v", url, err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			mu.Lock()
			defer mu.Unlock()
			t.Logf("console of %s:\n%s", url, strings.Join(lines, "\n"))
		}
	})
	if err := chromedp.Do(tab, chromedp.Navigate(url)); err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	return tab
}

// remoteVideoJS reports the first remote tile's video size and time.
const remoteVideoJS = `(() => {
  const v = document.querySelector('.tile.remote video');
  if (!v) return {w: 0, h: 0, t: 0, name: ''};
  return {w: v.videoWidth, h: v.videoHeight, t: v.currentTime,
          name: v.parentElement.querySelector('figcaption').textContent};
})()`

type videoState struct {
	W    int     `json:"w"`
	H    int     `json:"h"`
	T    float64 `json:"t"`
	Name string  `json:"name"`
}

// waitForRemoteVideo polls until the remote video has a size and its
// currentTime advances, or the deadline passes.
func waitForRemoteVideo(ctx context.Context, deadline time.Time) (videoState, error) {
	var first videoState
	for time.Now().Before(deadline) {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[videoState](remoteVideoJS))
		if err != nil {
			return v, err
		}
		if v.W > 0 && v.T > 0 {
			if first.T == 0 {
				first = v
			} else if v.T > first.T {
				return v, nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return first, fmt.Errorf("remote video not playing by the deadline (last %+v)", first)
}

// pageVideo is what one page plays.
type pageVideo struct {
	videoState
	page string
}

// callUp is how long two pages may take, from opening, to play each
// other's video: page load, camera, join, gathering and ICE. It is a
// bound on waiting, not a figure (tests log the time it took): generous,
// because browser tests run side by side on two cores.
const callUp = 30 * time.Second

// waitMutualVideo waits until page "a" plays b's video and page "b"
// plays a's (size known, currentTime advancing), failing at deadline.
func waitMutualVideo(t *testing.T, a, b context.Context, deadline time.Time) []pageVideo {
	t.Helper()
	var out []pageVideo
	for _, tc := range []struct {
		tab        context.Context
		name, peer string
	}{{a, "a", "b"}, {b, "b", "a"}} {
		v, err := waitForRemoteVideo(tc.tab, deadline)
		if err != nil {
			status, _ := chromedp.Run(tc.tab, chromedp.Evaluate[string](`document.getElementById('status').textContent`))
			t.Fatalf("page %s: %v (status %q)", tc.name, err, status)
		}
		if v.Name != tc.peer {
			t.Errorf("page %s plays %q's video, want %q", tc.name, v.Name, tc.peer)
		}
		out = append(out, pageVideo{videoState: v, page: tc.name})
	}
	return out
}

type pairInfo struct {
	Local         string `json:"local"`
	Remote        string `json:"remote"`
	LocalAddress  string `json:"localAddress"`
	RemoteAddress string `json:"remoteAddress"`
	Protocol      string `json:"protocol"`
}

// TestBrowsersCallThroughRelay: two Chromium pages open the call page
// with autojoin and relay=1; each plays the other's video, relayed.
func TestBrowsersCallThroughRelay(t *testing.T) {
	lane(t, laneBrowser)
	ib := startIcebox(t, nil)
	browser := newBrowser(t)
	room := ib.newRoom(t)
	start := time.Now()
	a := newTab(t, browser, ib.URL+"/r/"+room+"?test=1&name=a&autojoin=1&relay=1")
	b := newTab(t, browser, ib.URL+"/r/"+room+"?test=1&name=b&autojoin=1&relay=1")
	for _, v := range waitMutualVideo(t, a, b, start.Add(callUp)) {
		t.Logf("page %s plays %s's video %dx%d at t=%.2fs, %.1fs after opening the pages", v.page, v.Name, v.W, v.H, v.T, time.Since(start).Seconds())
	}
	// What a person waits for, from the page's own clock: camera ready →
	// the other's video playing (b opened second, so it waited least).
	for _, tc := range []struct {
		tab  context.Context
		name string
	}{{a, "a"}, {b, "b"}} {
		tm := eval[map[string]float64](t, tc.tab, `icebox.snapshot().timing`)
		t.Logf("page %s: camera ready %.0f ms after opening, remote video %.0f ms after that", tc.name,
			tm["mediaReady"]-tm["start"], tm["firstVideo"]-tm["mediaReady"])
	}
	for _, tab := range []context.Context{a, b} {
		layout, err := chromedp.Run(tab, chromedp.Evaluate[string](
			`getComputedStyle(document.getElementById('prejoin')).display + ' ' + getComputedStyle(document.getElementById('call')).display`))
		if err != nil || layout != "none grid" {
			t.Errorf("pre-join and call display: got %q (%v), want \"none grid\"", layout, err)
		}
	}
	// Relay on both sides: each page's local candidate is relay, and its
	// remote is the other page's relayed address (a remote learned from a
	// connectivity check shows as prflx; its address is what matters).
	selected := map[string]pairInfo{}
	for _, tc := range []struct {
		tab  context.Context
		name string
	}{{a, "a"}, {b, "b"}} {
		pairs, err := chromedp.Run(tc.tab, chromedp.Evaluate[map[string]pairInfo](`window.icebox.pairs()`, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("page %s: pairs: %v", tc.name, err)
		}
		if len(pairs) != 1 {
			t.Fatalf("page %s: got %d peer connections, want 1", tc.name, len(pairs))
		}
		for _, p := range pairs {
			selected[tc.name] = p
		}
	}
	for _, n := range [][2]string{{"a", "b"}, {"b", "a"}} {
		me, other := selected[n[0]], selected[n[1]]
		if me.Local != "relay" {
			t.Errorf("page %s: local candidate %+v, want relay", n[0], me)
		}
		if me.RemoteAddress != other.LocalAddress {
			t.Errorf("page %s: remote %s, want page %s's relayed address %s", n[0], me.RemoteAddress, n[1], other.LocalAddress)
		}
	}
	if n := ib.TURN().AllocationCount(); n == 0 {
		t.Error("no TURN allocations during a relay-only call")
	}
	// The tile's connection badge says so, with the transport to icebox
	// (UDP or TCP: this icebox offers both, and Chromium may stay on the
	// first that worked).
	for name, tab := range map[string]context.Context{"a": a, "b": b} {
		got := waitBadge(t, tab, "Via server")
		if got.Path != "relay" || (got.Transport != "udp" && got.Transport != "tcp") || !strings.Contains(got.Title, "over "+strings.ToUpper(got.Transport)) {
			t.Errorf("page %s: badge %+v, want Via server, over UDP or TCP", name, got)
		}
	}

	// Chat travels over the RTCDataChannel: a types, b reads.
	if _, err := chromedp.Run(a, chromedp.Evaluate[bool](`(() => {
		document.getElementById('chat-input').value = 'hello from a';
		document.getElementById('chat-form').requestSubmit();
		return true;
	})()`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, b, "b sees a's chat message",
		`[...document.querySelectorAll('#messages li')].some(li => li.textContent === 'ahello from a')`)

	// b leaves: a's tile for b goes away.
	if _, err := chromedp.Run(b, chromedp.Evaluate[bool](`document.getElementById('leave').click(), true`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, a, "a's tile for b is removed", `document.querySelectorAll('.tile.remote').length === 0`)
}

// waitFor polls a boolean expression in the page for up to 10 s.
func waitFor(t *testing.T, tab context.Context, what, expr string) {
	t.Helper()
	waitForWithin(t, tab, what, expr, 10*time.Second)
}

// waitForWithin polls a boolean expression in the page, or a promise of
// one, for up to d.
func waitForWithin(t *testing.T, tab context.Context, what, expr string, d time.Duration) {
	t.Helper()
	waitForWithinWhy(t, tab, what, expr, "", d)
}

// waitForWithinWhy is waitForWithin that, when expr does not hold in
// time, also reports the JSON of the expression why (the page's state
// that expr reads), so that a failure says what the page showed.
func waitForWithinWhy(t *testing.T, tab context.Context, what, expr, why string, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	var last error
	for time.Now().Before(deadline) {
		ok, err := chromedp.Run(tab, chromedp.Evaluate[bool](expr, chromedp.EvalAwaitPromise))
		if err != nil && !navigating(err) {
			t.Fatalf("%s: %v", what, err)
		}
		if ok {
			return
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	if why != "" {
		state, err := chromedp.Run(tab, chromedp.Evaluate[any]("JSON.stringify("+why+")", chromedp.EvalAwaitPromise))
		t.Logf("%s: the page showed %v (err %v)", what, state, err)
	}
	if last != nil {
		t.Fatalf("%s: not within %v (last: %v)", what, d, last)
	}
	t.Fatalf("%s: not within %v", what, d)
}

// navigating reports whether err is an evaluation cut short by the page
// navigating (a form submitted, a link followed): the next poll runs in
// the new document.
func navigating(err error) bool {
	msg := err.Error()
	return strings.Contains(msg, "Inspected target navigated or closed") ||
		strings.Contains(msg, "Execution context was destroyed") ||
		strings.Contains(msg, "Cannot find context with specified id")
}
