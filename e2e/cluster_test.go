package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/icebox-project/icebox/config"
	"github.com/icebox-project/icebox/internal/testenv"
)

// startClusterNodes starts three icebox nodes on 127.0.0.1, port 0
// everywhere, the second and third routing to the first, and waits
// until each is ready and sees the others (clusterNodeConfig). mods, in
// order, adjust each node's config.
func startClusterNodes(t *testing.T, mods ...func(*config.Config)) []*icebox {
	t.Helper()
	key := clusterKey(t)
	var nodes []*icebox
	var seed string
	for i, name := range []string{"a", "b", "c"} {
		ib := startIcebox(t, clusterNodeConfig(name, key, seed, mods...))
		if i == 0 {
			seed = ib.ClusterAddr().String()
		}
		nodes = append(nodes, ib)
	}
	awaitCluster(t, nodes, 3)
	return nodes
}

// clusterKey writes a cluster secret file and returns its path.
func clusterKey(t *testing.T) string {
	t.Helper()
	key := filepath.Join(t.TempDir(), "cluster.key")
	if err := os.WriteFile(key, []byte("e2e-cluster-secret-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return key
}

// clusterNodeConfig makes a config a cluster node named name, with the
// secret file key, routing to seed (a cluster listener's address; none
// when ""), listening on 127.0.0.1:0. Nodes share one TURN secret and
// one relay port range (20000-22999: nodes on one host share
// turn.relay_ports, since another node's relay ports on this host are
// no exception to the peer filter). mods, in order, adjust it further.
func clusterNodeConfig(name, key, seed string, mods ...func(*config.Config)) func(*config.Config) {
	return func(cfg *config.Config) {
		cfg.TURN.Secrets = []string{"e2e-turn-secret-shared-by-all"}
		cfg.TURN.RelayPorts = "20000-22999"
		cfg.Cluster = &config.Cluster{Node: name, Listen: "127.0.0.1:0", SecretFile: key}
		if seed != "" {
			cfg.Cluster.Routes = []string{"nats-route://" + seed}
		}
		for _, mod := range mods {
			mod(cfg)
		}
	}
}

// awaitCluster waits until each of nodes is ready and sees alive nodes
// alive, at most 60 s.
func awaitCluster(t *testing.T, nodes []*icebox, alive int) {
	t.Helper()
	for _, ib := range nodes {
		n := ib.ClusterNode()
		testenv.EventuallyWhy(t, 60*time.Second, "node "+n.Name()+" is ready and sees every node", func() string {
			if n.Ready() && n.AliveNodes() == alive {
				return ""
			}
			return fmt.Sprintf("ready %v, %d nodes alive; want ready with %d", n.Ready(), n.AliveNodes(), alive)
		})
	}
}

// TestClusterBrowsers: two Chromium pages open the same room link on two
// different nodes, see each other, call relay-only through their own
// node's TURN (each page's configuration names its node's TURN only, the
// selected pair is relay on both sides, and each node holds an
// allocation), and chat.
func TestClusterBrowsers(t *testing.T) {
	lane(t, laneBrowser)
	chromiumPath(t)
	nodes := startClusterNodes(t)
	a, b := nodes[0], nodes[1]
	// Operations: /healthz on the metrics listener reports the cluster,
	// /metrics has the cluster's gauges and counters.
	for url, wants := range map[string][]string{
		"http://" + a.MetricsAddr().String() + "/healthz": {"ok\n", "cluster: node a, 3 nodes alive, NATS connected"},
		"http://" + a.MetricsAddr().String() + "/metrics": {"icebox_cluster_nodes 3", "icebox_cluster_nats_connected 1", "icebox_cluster_ready 1",
			`icebox_cluster_messages_received_total{type="heartbeat"}`, `icebox_cluster_messages_sent_total{type="heartbeat"}`},
	} {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range wants {
			if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
				t.Errorf("GET %s: %d, want 200 with %q:\n%s", url, resp.StatusCode, want, body)
			}
		}
	}
	browser := newBrowser(t)
	room := a.newRoom(t)
	// Each node's page points at its own TURN.
	for i, ib := range []*icebox{a, b} {
		rc := ib.pageConfig(t, room, "relay=1")
		want := "turn:127.0.0.1:" + strconv.Itoa(ib.TURN().Addrs()[0].(*net.UDPAddr).Port) + "?transport=udp"
		found := false
		for _, s := range rc.ICEServers {
			for _, u := range s.URLs {
				found = found || u == want
			}
		}
		if !found {
			t.Fatalf("node %d's page: ICE servers %+v, want its own %s", i, rc.ICEServers, want)
		}
	}
	// Page a reaches node a through a TCP proxy (as through DNS or a load
	// balancer), which later sends it to node c; page b records every
	// message it receives.
	px := startSwitchProxy(t, a.HTTPAddr().String())
	start := time.Now()
	pa := newTab(t, browser, "http://"+px.addr()+"/r/"+room+"?test=1&name=a&autojoin=1&relay=1")
	pbTab, cancelB := chromedp.NewContext(browser)
	t.Cleanup(cancelB)
	recordReceived(t, pbTab)
	if err := chromedp.Do(pbTab, chromedp.Navigate(b.URL+"/r/"+room+"?test=1&name=b&autojoin=1&relay=1")); err != nil {
		t.Fatal(err)
	}
	pb := pbTab
	for _, v := range waitMutualVideo(t, pa, pb, start.Add(callUp)) {
		t.Logf("page %s plays %s's video %dx%d, %.1fs after opening the pages", v.page, v.Name, v.W, v.H, time.Since(start).Seconds())
	}
	selected := map[string]pairInfo{}
	for _, tc := range []struct {
		tab  context.Context
		name string
	}{{pa, "a"}, {pb, "b"}} {
		pairs, err := chromedp.Run(tc.tab, chromedp.Evaluate[map[string]pairInfo](`window.icebox.pairs()`, chromedp.EvalAwaitPromise))
		if err != nil || len(pairs) != 1 {
			t.Fatalf("page %s: pairs %v (%v), want one", tc.name, pairs, err)
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
		// Relayed on the shared relay ports (by its own node: the
		// allocation counts below).
		if port, _ := strconv.Atoi(me.localPort()); port < 20000 || port > 22999 {
			t.Errorf("page %s: relayed port %d, want one of the relay ports 20000-22999", n[0], port)
		}
	}
	for i, ib := range []*icebox{a, b} {
		if ib.TURN().AllocationCount() == 0 {
			t.Errorf("node %d: no TURN allocation during the call", i)
		}
	}
	if _, err := chromedp.Run(pa, chromedp.Evaluate[bool](`(() => {
		document.getElementById('chat-input').value = 'hello across nodes';
		document.getElementById('chat-form').requestSubmit();
		return true;
	})()`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, pb, "b sees a's chat message",
		`[...document.querySelectorAll('#messages li')].some(li => li.textContent === 'ahello across nodes')`)

	// Page a's connection drops and comes back on node c: it keeps its
	// peer id, and page b never hears it leave.
	idA := eval[string](t, pa, `icebox.snapshot().myId`)
	px.switchTo(nodes[2].HTTPAddr().String())
	waitFor(t, pa, "page a reconnected", `document.getElementById('status').textContent.startsWith('reconnected')`)
	if got := eval[string](t, pa, `icebox.snapshot().myId`); got != idA {
		t.Errorf("page a's id after the resume on node c: %q, want %q", got, idA)
	}
	if !nodes[2].Signaling().HasLocal(room, idA) || a.Signaling().HasLocal(room, idA) {
		t.Error("page a's peer is not on node c alone after the resume")
	}
	if _, err := chromedp.Run(pa, chromedp.Evaluate[bool](`(() => {
		document.getElementById('chat-input').value = 'back via c';
		document.getElementById('chat-form').requestSubmit();
		return true;
	})()`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, pb, "b sees a's chat message after the resume",
		`[...document.querySelectorAll('#messages li')].some(li => li.textContent === 'aback via c')`)
	// b heard of a once (in its welcome, or one peer-joined if b joined
	// first), and never that a left.
	got := eval[[]string](t, pb, `window.__received`)
	if !slices.ContainsFunc(got, func(m string) bool { return strings.HasPrefix(m, "welcome:") }) {
		t.Fatalf("page b's recorder saw no welcome: %v", got)
	}
	left, joined := 0, 0
	for _, m := range got {
		left += btoi(m == "peer-left:"+idA)
		joined += btoi(m == "peer-joined:"+idA)
	}
	if left != 0 || joined > 1 {
		t.Errorf("page b heard a leave %d times and join %d times, want 0 and at most 1 (all: %v)", left, joined, got)
	}

	// The call's offers, answers and candidates crossed the nodes: b
	// measured their delivery.
	resp, err := http.Get("http://" + b.MetricsAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`icebox_cluster_signal_latency_seconds_count (\d+)`).FindSubmatch(body)
	if m == nil || string(m[1]) == "0" {
		t.Errorf("node b measured no signal from another node: %q", m)
	}
}

// localPort is the port of the pair's local address ("ip:port"), ""
// when unknown.
func (p pairInfo) localPort() string {
	_, port, _ := net.SplitHostPort(p.LocalAddress)
	return port
}

// recordReceived makes the page record the type and id of every
// signaling message it receives in window.__received, installed before
// the page's own scripts run.
func recordReceived(t *testing.T, tab context.Context) {
	t.Helper()
	const js = `(() => { window.__received = []; const WS = window.WebSocket;
		window.WebSocket = class extends WS { constructor(...args) { super(...args);
			this.addEventListener('message', (e) => { try { const m = JSON.parse(e.data);
				window.__received.push(m.type + ':' + (m.id || '')); } catch {} }); } }; })()`
	err := chromedp.Do(tab, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: js})
		return err
	}))
	if err != nil {
		t.Fatal(err)
	}
}

// switchProxy forwards TCP connections to a target that can change; a
// switch cuts every connection forwarded so far (a lost network, no
// WebSocket close frame).
type switchProxy struct {
	ln     net.Listener
	mu     sync.Mutex
	target string
	conns  []net.Conn
}

func startSwitchProxy(t *testing.T, target string) *switchProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &switchProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			target := p.target
			p.mu.Unlock()
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	return p
}

func (p *switchProxy) addr() string { return p.ln.Addr().String() }

// switchTo sends new connections to target and cuts the current ones.
func (p *switchProxy) switchTo(target string) {
	p.mu.Lock()
	p.target = target
	p.mu.Unlock()
	p.cut()
}

func (p *switchProxy) cut() {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
