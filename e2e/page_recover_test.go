package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/icebox-project/icebox/config"
	"github.com/icebox-project/icebox/daemon"
)

// Tests of the call page's recovery: a signaling connection that drops
// resumes without anyone seeing a leave; icebox restarted mid-call
// (stopped as SIGTERM stops it, started again on the same ports) leaves
// the browsers' connections up, and relayed ones come back through an
// ICE restart.

// tcpProxy forwards connections to a backend and can cut them all at
// once, the way a lost network does: no WebSocket close frame.
type tcpProxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns map[net.Conn]bool
}

func newTCPProxy(t *testing.T, backend string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{ln: ln, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c, backend)
		}
	}()
	return p
}

func (p *tcpProxy) serve(c net.Conn, backend string) {
	b, err := net.Dial("tcp", backend)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[b] = true, true
	p.mu.Unlock()
	go func() { _, _ = io.Copy(b, c); b.Close() }()
	_, _ = io.Copy(c, b)
	c.Close()
}

// cut closes every connection it carries.
func (p *tcpProxy) cut() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.conns)
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
	return n / 2
}

func (p *tcpProxy) URL() string { return "http://" + p.ln.Addr().String() }

// TestPageSignalingDrop: a's WebSocket is cut without a close frame; a
// reconnects and resumes with the same peer id, b never sees a leave,
// and the call carries on over the same peer connection.
func TestPageSignalingDrop(t *testing.T) {
	lane(t, laneBrowser)
	ib := startIcebox(t, nil)
	proxy := newTCPProxy(t, ib.HTTPAddr().String())
	br := newBrowser(t)
	room := ib.newRoom(t)
	a := newTab(t, br, proxy.URL()+"/r/"+room+"?test=1&name=a&autojoin=1")
	b := newTab(t, br, ib.URL+"/r/"+room+"?test=1&name=b&autojoin=1")
	waitMutualVideo(t, a, b, time.Now().Add(callUp))
	id := eval[string](t, a, `icebox.snapshot().myId`)
	if n := proxy.cut(); n == 0 {
		t.Fatal("no connection through the proxy to cut")
	}
	waitText(t, a, "status", "reconnected")
	if got := eval[string](t, a, `icebox.snapshot().myId`); got != id {
		t.Errorf("a's id after the drop %q, want %q (resumed)", got, id)
	}
	if lines := eval[string](t, b, `document.getElementById('messages').textContent`); strings.Contains(lines, "a left") {
		t.Errorf("b saw a leave: %q", lines)
	}
	if got := eval[[]string](t, a, `icebox.snapshot().peers.map(p => p.connectionState)`); len(got) != 1 || got[0] != "connected" {
		t.Errorf("a's peer connections after the drop: %v, want one, connected", got)
	}
	// Signaling works again (a chat line over the data channel would not
	// prove it; an ICE restart negotiated through it does), and the
	// network coming back ('online') restarts ICE.
	eval[bool](t, a, `(window.dispatchEvent(new Event('online')), true)`)
	waitFor(t, b, "the ICE restart offered after the resume completed",
		`(() => { const p = icebox.snapshot().peers[0]; return p.signalingState === 'stable' && p.connectionState === 'connected'; })()`)
	waitFor(t, a, "a's ICE restart completed", `(() => { const p = icebox.snapshot().peers[0];
		return p.restarts === 1 && p.signalingState === 'stable' && p.connectionState === 'connected'; })()`)
	if _, err := waitForRemoteVideo(b, time.Now().Add(10*time.Second)); err != nil {
		t.Errorf("b after a's resume: %v", err)
	}
}

// restartable is an icebox that a test stops and starts again on the
// same ports and state directory.
type restartable struct {
	yml    string
	cancel context.CancelFunc
	done   chan error
	d      *daemon.Daemon
}

// start runs icebox from r.yml.
func (r *restartable) start(t *testing.T) {
	t.Helper()
	cfg, err := config.FromBytes("restart.yaml", []byte(r.yml))
	if err != nil {
		t.Fatal(err)
	}
	level := slog.LevelWarn
	if os.Getenv("ICEBOX_E2E_LOG") != "" {
		level = slog.LevelDebug
	}
	d, err := daemon.New(cfg, daemon.Options{Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})), Version: "e2e"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.d, r.cancel, r.done = d, cancel, make(chan error, 1)
	go func() { r.done <- d.Serve(ctx) }()
}

// stop shuts icebox down as SIGTERM does (cmd/icebox cancels Serve's
// context) and waits for it.
func (r *restartable) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("icebox did not stop within 15s")
	}
}

// startRestartable starts icebox on free ports, then fixes them in its
// configuration so that a restart listens on the same ones.
func startRestartable(t *testing.T) (*restartable, string) {
	t.Helper()
	dir := t.TempDir()
	yml := func(http, udp, tcp string) string {
		return fmt.Sprintf(`public_ip: 127.0.0.1
http:
  listen: %q
turn:
  listen: ["udp://%s", "tcp://%s"]
  relay_ports: "20000-29999"
  allow_peers: [127.0.0.0/8]
metrics:
  listen: ""
shutdown_grace: 1s
state_dir: %q
`, http, udp, tcp, dir)
	}
	r := &restartable{yml: yml("127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0")}
	r.start(t)
	t.Cleanup(func() { r.stop(t) })
	var udp, tcp string
	for _, a := range r.d.TURN().Addrs() {
		switch a.Network() {
		case "udp":
			udp = a.String()
		case "tcp":
			tcp = a.String()
		}
	}
	if udp == "" || tcp == "" {
		t.Fatalf("TURN listeners %v, want udp and tcp", r.d.TURN().Addrs())
	}
	r.yml = yml(r.d.HTTPAddr().String(), udp, tcp)
	return r, "http://" + r.d.HTTPAddr().String()
}

// TestPageServerRestart: icebox stops and starts again on the same ports
// in the middle of a call. Direct: the video between the browsers keeps
// flowing; the pages rejoin (new peer ids) and keep their peer
// connections, which learn each other's new ids over the connection
// itself; chat still works. Relayed: the allocations died with the
// server, so the connections restart ICE with the new welcome's
// credentials and the video comes back, without reloading.
func TestPageServerRestart(t *testing.T) {
	lane(t, laneHeavy)
	for _, tc := range []struct {
		name, query string
	}{{"direct", ""}, {"relay", "&relay=1"}} {
		t.Run(tc.name, func(t *testing.T) {
			r, url := startRestartable(t)
			br := newBrowser(t)
			a := newTab(t, br, url+"/r/restart?test=1&name=a&autojoin=1"+tc.query)
			b := newTab(t, br, url+"/r/restart?test=1&name=b&autojoin=1"+tc.query)
			waitMutualVideo(t, a, b, time.Now().Add(callUp))
			ids := map[string]string{"a": eval[string](t, a, `icebox.snapshot().myId`), "b": eval[string](t, b, `icebox.snapshot().myId`)}
			// Video keeps flowing: b's frames counted from now on.
			countFrames(t, b)

			r.stop(t)
			waitText(t, a, "status", "reconnect")
			if tc.name == "direct" {
				// Frames still arrive with icebox down.
				seen := eval[int](t, b, `window.__frames`)
				waitFor(t, b, "video flows with icebox down", fmt.Sprintf(`window.__frames > %d + 10`, seen))
			}
			r.start(t)
			for name, tab := range map[string]context.Context{"a": a, "b": b} {
				waitText(t, tab, "status", "rejoined")
				if id := eval[string](t, tab, `icebox.snapshot().myId`); id == ids[name] || id == "" {
					t.Errorf("page %s: id %q after the restart, want a new one", name, id)
				}
			}
			for name, tab := range map[string]context.Context{"a": a, "b": b} {
				defer func() {
					t.Logf("%s: %v", name, eval[string](t, tab, dumpJS))
					if t.Failed() {
						m, err := chromedp.Run(tab, chromedp.Evaluate[string](mediaDumpJS, chromedp.EvalAwaitPromise))
						t.Logf("%s's media: %s %v", name, m, err)
						l, err := chromedp.Run(tab, chromedp.Evaluate[string](elementDumpJS))
						t.Logf("%s's remote video element: %s %v", name, l, err)
					}
				}()
			}
			for name, tab := range map[string]context.Context{"a": a, "b": b} {
				other := map[string]string{"a": "b", "b": "a"}[name]
				waitFor(t, tab, name+" keeps its connection to "+other+" under "+other+"'s new id", fmt.Sprintf(
					`(() => { const s = icebox.snapshot(); return s.peers.length === 1 && s.names[s.peers[0].id] === %s && !s.peers[0].kept; })()`,
					jsString(other)))
				waitFor(t, tab, name+"'s connection is up", `(() => { const p = icebox.snapshot().peers; return p.length === 1 && p[0].connectionState === 'connected'; })()`)
			}
			seen := eval[int](t, b, `window.__frames`)
			waitFor(t, b, "video flows after the restart", fmt.Sprintf(`window.__frames > %d + 10`, seen))
			if tc.name == "relay" {
				if n := eval[int](t, a, `icebox.snapshot().peers[0].restarts`) + eval[int](t, b, `icebox.snapshot().peers[0].restarts`); n == 0 {
					t.Error("relayed call came back without an ICE restart")
				}
				waitBadge(t, a, "Via server")
			}
			typeAndSubmit(t, a, "chat-input", "still here")
			waitFor(t, b, "b reads a's chat after the restart",
				`[...document.querySelectorAll('#messages li')].some(li => li.textContent === 'astill here')`)
			waitFor(t, a, "a's line is delivered", `document.querySelector('#messages li.mine:not(.pending):not(.undelivered)') !== null`)
		})
	}
}

// mediaDumpJS is each peer connection's video counters, both ways, and
// its selected pair: what a failure needs to tell a frozen sender from a
// frozen receiver.
const mediaDumpJS = `(async () => {
  const out = {};
  for (const [id, list] of Object.entries(await icebox.stats())) {
    const byId = new Map(list.map((s) => [s.id, s]));
    const pick = (s, keys) => Object.fromEntries(keys.filter((k) => k in s).map((k) => [k, s[k]]));
    const o = [];
    for (const s of list) {
      if (s.type === 'inbound-rtp' && s.kind === 'video') o.push(pick(s, ['type', 'packetsReceived', 'packetsLost', 'framesReceived', 'framesDecoded', 'keyFramesDecoded', 'framesDropped', 'pliCount', 'nackCount', 'freezeCount', 'trackIdentifier', 'mid', 'jitterBufferDelay', 'jitterBufferEmittedCount', 'jitterBufferTargetDelay', 'totalDecodeTime']));
      if (s.type === 'outbound-rtp' && s.kind === 'video') o.push(pick(s, ['type', 'packetsSent', 'framesEncoded', 'keyFramesEncoded', 'pliCount', 'nackCount', 'targetBitrate', 'qualityLimitationReason', 'active']));
      if (s.type === 'media-source' && s.kind === 'video') o.push(pick(s, ['type', 'frames', 'framesPerSecond', 'width']));
      if (s.type === 'transport' && s.selectedCandidatePairId) {
        const cp = byId.get(s.selectedCandidatePairId) || {};
        const l = byId.get(cp.localCandidateId) || {}, r = byId.get(cp.remoteCandidateId) || {};
        o.push({ type: 'pair', state: cp.state, sent: cp.bytesSent, received: cp.bytesReceived, out: cp.availableOutgoingBitrate,
          local: l.candidateType + ' ' + l.address + ':' + l.port, remote: r.candidateType + ' ' + r.address + ':' + r.port, dtls: s.dtlsState });
      }
    }
    out[id] = o;
  }
  return JSON.stringify(out);
})()`

// elementDumpJS is the first remote tile's <video> element: the frames
// it presented since its stream was set, whether it plays, and its tracks.
const elementDumpJS = `(() => { const v = document.querySelector('.tile.remote video'); const s = v && v.srcObject;
	return JSON.stringify({el: v && {frames: v.getVideoPlaybackQuality().totalVideoFrames, paused: v.paused, ready: v.readyState, muted: v.muted,
		t: v.currentTime, w: v.videoWidth, tracks: s ? s.getTracks().map((x) => [x.kind, x.id, x.readyState, x.muted]) : null},
		state: document.querySelector('.tile.remote').dataset.state}); })()`

const dumpJS = `(() => { const s = icebox.snapshot(); return JSON.stringify({me: s.myId, names: s.names, held: s.held,
	peers: s.peers.map(p => [p.id, p.name, p.kept, p.claim, p.connectionState, p.signalingState, p.restarts]),
	status: document.getElementById('status').textContent}); })()`
