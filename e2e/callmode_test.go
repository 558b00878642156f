package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// eval runs a JavaScript expression in a tab; a promise is awaited.
func eval[T any](t *testing.T, tab context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(tab, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}

// waitText waits until the element's text contains want.
func waitText(t *testing.T, tab context.Context, id, want string) {
	t.Helper()
	waitFor(t, tab, "#"+id+" shows "+want,
		`(document.getElementById('`+id+`').textContent || '').includes(`+jsString(want)+`)`)
}

func jsString(s string) string { return "'" + strings.ReplaceAll(s, "'", "\\'") + "'" }

// callFrom clicks the Call button next to name in a's lobby.
func callFrom(t *testing.T, tab context.Context, name string) {
	t.Helper()
	waitFor(t, tab, "lobby lists "+name, `[...document.querySelectorAll('#people li')].some(li => li.textContent.startsWith(`+jsString(name)+`))`)
	if !eval[bool](t, tab, `(() => {
		const li = [...document.querySelectorAll('#people li')].find(li => li.textContent.startsWith(`+jsString(name)+`));
		const b = li.querySelector('button'); if (b.disabled) return false; b.click(); return true; })()`) {
		t.Fatalf("Call button for %s is disabled", name)
	}
}

func click(t *testing.T, tab context.Context, id string) {
	t.Helper()
	if !eval[bool](t, tab, `(() => { const b = document.getElementById('`+id+`'); if (b.hidden) return false; b.click(); return true; })()`) {
		t.Fatalf("#%s is hidden", id)
	}
}

// TestCallMode: a calls b, b declines; a calls again, b accepts and both
// play each other's video; b hangs up and a is told; a third page cannot
// sign in as "a".
func TestCallMode(t *testing.T) {
	lane(t, laneBrowser)
	ib := startIcebox(t, nil)
	browser := newBrowser(t)
	room := ib.newRoom(t)
	url := ib.URL + "/r/" + room + "?mode=call&autojoin=1&name="
	a := newTab(t, browser, url+"a")
	b := newTab(t, browser, url+"b")
	// Loaded without ?test=1, the page has no test hook.
	if eval[bool](t, a, `'icebox' in window`) {
		t.Error("window.icebox exists on a page loaded without ?test=1")
	}

	// Call mode is a lobby: no call starts by itself.
	callFrom(t, a, "b")
	waitText(t, a, "call-status", "Ringing b")
	waitText(t, b, "call-status", "Incoming call from a")
	click(t, b, "decline")
	waitText(t, a, "call-status", "b declined")
	if n := eval[int](t, a, `document.querySelectorAll('.tile.remote').length`); n != 0 {
		t.Errorf("declined call left %d remote tiles", n)
	}

	callFrom(t, a, "b")
	waitText(t, b, "call-status", "Incoming call from a")
	// Accept stands out from the bar it sits on.
	if colors := eval[[]string](t, b, `['callbar', 'accept'].map(id => getComputedStyle(document.getElementById(id)).backgroundColor)`); colors[0] == colors[1] || colors[1] == "rgb(37, 99, 235)" {
		t.Errorf("incoming call bar %s, Accept %s: want Accept in its own colour", colors[0], colors[1])
	}
	click(t, b, "accept")
	waitText(t, a, "call-status", "In call with b")
	waitMutualVideo(t, a, b, time.Now().Add(callUp))

	// One end-call control in a call: the control bar's red button.
	if n := eval[int](t, b, `[...document.querySelectorAll('button.danger')].filter(b => b.offsetParent !== null).length`); n != 1 {
		t.Errorf("b sees %d red end buttons in a call, want one", n)
	}
	if l := eval[string](t, b, `document.getElementById('leave').getAttribute('aria-label')`); l != "End the call" {
		t.Errorf("the end control in a call says %q, want End the call", l)
	}
	click(t, b, "leave")
	waitText(t, a, "call-status", "Call ended: b hung up")
	if !eval[bool](t, b, `!document.getElementById('call').hidden && document.getElementById('leave').getAttribute('aria-label') === 'Leave the room'`) {
		t.Error("ending the call left the room, or the red button still says End the call")
	}
	waitFor(t, a, "a's remote tile is gone", `document.querySelectorAll('.tile.remote').length === 0`)
	waitText(t, b, "call-status", "Call ended")

	// A third page cannot take the name "a".
	c := newTab(t, browser, url+"a")
	waitText(t, c, "join-error", "taken")
	if !eval[bool](t, c, `!document.getElementById('join-form').hidden`) {
		t.Error("the name form is not offered again after name-taken")
	}
}
