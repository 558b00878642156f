package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/heapprofiler"
	"github.com/chromedp/chromedp"
	"github.com/pion/webrtc/v4"

	"github.com/icebox-project/icebox/signaling/sigclient"
	"github.com/icebox-project/icebox/signaling/wire"
)

// countPeerConnectionsJS runs in a page before its own scripts: every
// RTCPeerConnection the page makes is remembered by a WeakRef, which
// keeps none alive, so after a garbage collection the ones still there
// are those the page holds (an open one the browser keeps alive too).
const countPeerConnectionsJS = `(() => {
  const Native = window.RTCPeerConnection;
  const refs = [];
  window.RTCPeerConnection = class extends Native {
    constructor(...args) { super(...args); refs.push(new WeakRef(this)); }
  };
  Object.defineProperty(window, 'heldPeerConnections', {value: () => {
    const held = [];
    refs.forEach((r, i) => { const pc = r.deref(); if (pc) held.push(i + ' ' + pc.connectionState); });
    return {made: refs.length, held};
  }});
})()`

// heldConnections is what countPeerConnectionsJS reports after a garbage
// collection: how many RTCPeerConnections the page made, and the state
// of each one still reachable.
type heldConnections struct {
	Made int      `json:"made"`
	Held []string `json:"held"`
}

// held collects garbage in tab until it holds no peer connection, for up
// to 10 s (a connection closed with an operation in flight, getStats or
// setLocalDescription, is held by the browser until the operation ends),
// and reports its peer connections.
func held(t *testing.T, tab context.Context) heldConnections {
	t.Helper()
	var h heldConnections
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		if _, err := chromedp.Call(tab, heapprofiler.CollectGarbage, cdp.Empty{}); err != nil {
			t.Fatal(err)
		}
		if h = eval[heldConnections](t, tab, `window.heldPeerConnections()`); len(h.Held) == 0 {
			break
		}
		// The next collection after the page's next task.
		awaitJS[bool](t, tab, `new Promise((r) => setTimeout(() => r(true), 100))`)
	}
	return h
}

// longCallGuests is how many people join the long call and leave it.
const longCallGuests = 30

// guestJoins joins room as name (sigclient), sends the one peer in it an
// offer made by pion (a data channel, no ICE servers), and returns a
// function that leaves as a closing tab does: a close frame, which ends
// the peer at once.
func guestJoins(t *testing.T, ib *icebox, room, name string) (leave func()) {
	t.Helper()
	pc, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, err := pc.CreateDataChannel("chat", nil); err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := sigclient.Dial(ctx, "ws"+strings.TrimPrefix(ib.URL, "http")+"/ws", sigclient.DialOptions{Origin: ib.URL})
	if err != nil {
		t.Fatal(err)
	}
	welcome, err := c.Join(ctx, wire.Join{Room: room, Name: name})
	if err != nil || len(welcome.Peers) != 1 {
		t.Fatalf("%s: got welcome %+v (%v), want one with one peer", name, welcome, err)
	}
	if err := c.Signal(welcome.Peers[0].ID, map[string]any{"description": offer}); err != nil {
		t.Fatal(err)
	}
	return func() { c.Close() }
}

// TestPageLongCall: a page stays in a room while people join one after
// another and leave: first a pion peer whose connection to the page is
// made over icebox's relay, then longCallGuests guests that offer one.
// Once each has left, the page holds no peer connection: not in its
// model (the test hook's snapshot) and nowhere else (the
// RTCPeerConnections still reachable after a garbage collection).
func TestPageLongCall(t *testing.T) {
	lane(t, laneBrowser)
	ib := startIcebox(t, nil)
	br := newBrowser(t)
	room := ib.newRoom(t)
	tab := scriptedTab(t, br, ib.URL+"/r/"+room+"?test=1&name=host&autojoin=1&relay=1", countPeerConnectionsJS)
	waitFor(t, tab, "the page joined", `icebox.snapshot().myId !== ''`)

	p := newPionPeer(t, ib, room, "pion")
	go p.serve()
	p.offer()
	waitFor(t, tab, "the page's connection to pion is up",
		`(() => { const p = icebox.snapshot().peers; return p.length === 1 && p[0].connectionState === 'connected'; })()`)
	p.sig.Close()
	waitFor(t, tab, "pion is gone", `icebox.snapshot().peers.length === 0`)

	for i := range longCallGuests {
		leave := guestJoins(t, ib, room, fmt.Sprintf("guest %d", i))
		// Gathered first: Chromium holds a connection closed while it
		// gathers (a persistent handle of its gathering-state task).
		waitFor(t, tab, fmt.Sprintf("the page has a connection for guest %d", i),
			`(() => { const p = icebox.snapshot().peers; return p.length === 1 && p[0].iceGatheringState === 'complete'; })()`)
		leave()
		if !awaitJS[bool](t, tab, `new Promise((r) => { const end = performance.now() + 10000; const f = () => {
			if (icebox.snapshot().peers.length === 0) r(true); else if (performance.now() > end) r(false); else setTimeout(f, 50); }; f(); })`) {
			t.Fatalf("guest %d is still there: %s", i, eval[string](t, tab, dumpJS))
		}
	}
	h := held(t, tab)
	if h.Made < longCallGuests+1 {
		t.Errorf("the page made %d peer connections for %d people: the count misses some", h.Made, longCallGuests+1)
	}
	if len(h.Held) != 0 {
		t.Errorf("after %d people came and went the page still holds %d peer connections (%v), want none", longCallGuests+1, len(h.Held), h.Held)
	}
}

// awaitJS runs a JavaScript expression in a tab and awaits the promise it
// returns.
func awaitJS[T any](t *testing.T, tab context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(tab, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return v
}
