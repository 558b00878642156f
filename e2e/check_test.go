package e2e

import (
	"context"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/icebox-project/icebox/config"
)

// checkOutcome is what the /check page reports (window.iceboxCheck).
type checkOutcome struct {
	Verdict struct {
		Code  string `json:"code"`
		Title string `json:"title"`
		Text  string `json:"text"`
	} `json:"verdict"`
	Signaling struct {
		OK bool `json:"ok"`
	} `json:"signaling"`
	Results []struct {
		URL           string   `json:"url"`
		Kind          string   `json:"kind"`
		State         string   `json:"state"`
		Detail        string   `json:"detail"`
		RelayProtocol string   `json:"relayProtocol"`
		RTTMs         *float64 `json:"rttMs"`
		Errors        []string `json:"errors"`
	} `json:"results"`
	Absent []string `json:"absent"`
	SFU    []struct {
		Transport string   `json:"transport"`
		Port      int      `json:"port"`
		State     string   `json:"state"`
		Detail    string   `json:"detail"`
		RTTMs     *float64 `json:"rttMs"`
	} `json:"sfu"`
}

// checkResult waits for the /check page in tab to finish its first run
// and returns its outcome, with what the page shows.
func checkResult(t *testing.T, tab context.Context) (checkOutcome, string) {
	t.Helper()
	out, err := chromedp.Run(tab, chromedp.Evaluate[checkOutcome](`window.iceboxCheck.done`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("/check: %v", err)
	}
	shown := eval[string](t, tab, `document.getElementById('verdict-title').textContent + ' | ' +
		document.getElementById('verdict').dataset.verdict + ' | ' + document.getElementById('report').value`)
	return out, shown
}

// kindState is the state of the first result of kind ("" when none).
func (o checkOutcome) kindState(kind string) string {
	for _, r := range o.Results {
		if r.Kind == kind {
			return r.State
		}
	}
	return ""
}

// TestCheckPageOpenNetwork: /check in headless Chromium against icebox
// on loopback, where nothing is blocked, says relay over UDP works: TURN
// over UDP and TCP each carry a data channel between two peer
// connections of the page. It is screenshot at both window sizes, and
// its report holds no credential.
func TestCheckPageOpenNetwork(t *testing.T) {
	lane(t, laneBrowser)
	ib := startIcebox(t, func(c *config.Config) { c.Log.Level = "warn" })
	browser := newBrowser(t)
	dir := t.TempDir()
	for i, vp := range viewports {
		tab := openTab(t, browser, ib.URL+"/check", vp)
		out, shown := checkResult(t, tab)
		if out.Verdict.Code != "udp" || out.Verdict.Title != "Calls work on this network" || !strings.Contains(out.Verdict.Text, "relay over UDP") {
			t.Errorf("%s: verdict %+v, want calls work, through the relay over UDP\nresults: %+v", vp.name, out.Verdict, out.Results)
		}
		if !strings.HasPrefix(shown, out.Verdict.Title+" | udp | icebox connectivity check") {
			t.Errorf("%s: the page shows %q", vp.name, shown)
		}
		if !out.Signaling.OK {
			t.Errorf("%s: signaling check failed", vp.name)
		}
		for _, kind := range []string{"udp", "tcp"} {
			if got := out.kindState(kind); got != "ok" {
				t.Errorf("%s: TURN over %s: %q, want ok\nresults: %+v", vp.name, kind, got, out.Results)
			}
		}
		for _, r := range out.Results {
			if r.Kind != "stun" && r.State == "ok" && (r.RTTMs == nil || r.RelayProtocol != r.Kind) {
				t.Errorf("%s: %s: round trip %v, relay protocol %q, want a round trip over %s", vp.name, r.URL, r.RTTMs, r.RelayProtocol, r.Kind)
			}
		}
		if len(out.Absent) != 1 || out.Absent[0] != "tls" {
			t.Errorf("%s: kinds not offered %v, want [tls]", vp.name, out.Absent)
		}
		// The report is for sending around: no TURN username or password
		// in it, nor on the page.
		secrets := eval[[]string](t, tab, `JSON.parse(document.getElementById('ice-config').textContent).iceServers
			.flatMap(s => [s.username, s.credential]).filter(Boolean)`)
		if len(secrets) == 0 {
			t.Fatalf("%s: the page carries no TURN credential", vp.name)
		}
		page := eval[string](t, tab, `document.body.innerText + document.getElementById('report').value`)
		for _, s := range secrets {
			if strings.Contains(page, s) {
				t.Errorf("%s: the page or its report shows the TURN credential %q", vp.name, s)
			}
		}
		screenshot(t, tab, dir, "check-open-"+vp.name)
		eval[bool](t, tab, `document.getElementById('copy-report').scrollIntoView({block: 'end'}), true`)
		screenshot(t, tab, dir, "check-open-"+vp.name+"-report")
		if i == 0 {
			t.Logf("%s: %s", vp.name, shown)
		}
	}
	t.Logf("screenshots in %s and %s", dir, filepath.Join(shotDir))
}

// TestCheckPageCredentialsOnJoin: with turn.credentials on-join /check
// carries no TURN credential; the page joins a fresh room over /ws for
// the one of welcome, leaves, and tests the relay with it. Check again
// runs the whole check once more.
func TestCheckPageCredentialsOnJoin(t *testing.T) {
	lane(t, laneBrowser)
	ib := startIcebox(t, func(c *config.Config) { c.TURN.Credentials = config.CredentialsOnJoin })
	_, body := ib.get(t, "/check")
	if m := iceConfigRe.FindString(body); m == "" || strings.Contains(m, "username") {
		t.Fatalf("/check with credentials on join: ice-config %q, want STUN URLs alone", m)
	}
	tab := openTab(t, newBrowser(t), ib.URL+"/check", viewports[0])
	out, shown := checkResult(t, tab)
	if out.Verdict.Code != "udp" || out.kindState("udp") != "ok" || out.kindState("tcp") != "ok" {
		t.Errorf("verdict %+v, results %+v, want relay over UDP and TCP working", out.Verdict, out.Results)
	}
	if strings.Contains(shown, "No TURN credential") {
		t.Errorf("the page found no credential: %s", shown)
	}
	again, err := chromedp.Run(tab, chromedp.Evaluate[checkOutcome](
		`(document.getElementById('rerun').click(), window.iceboxCheck.run())`, chromedp.EvalAwaitPromise))
	if err != nil || again.Verdict.Code != "udp" {
		t.Errorf("check again: %+v, %v", again.Verdict, err)
	}
	// The page left the rooms it joined (the server handles the leave
	// after the page has moved on: wait for it).
	deadline := time.Now().Add(5 * time.Second)
	for _, rooms, peers := ib.Signaling().Counts(); rooms+peers > 0; _, rooms, peers = ib.Signaling().Counts() {
		if time.Now().After(deadline) {
			t.Fatalf("%d rooms and %d peers left after the check, want none", rooms, peers)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCheckPageSFU: with an SFU, /check also tests, from the browser,
// the media server that carries group calls: over its UDP port, and over
// ICE-TCP on the port HTTP and TURN share. Both work on loopback, with a
// round trip through the SFU's echo; the verdict and the report say so,
// and the SFU holds no probe once the page closed them. Screenshots at
// both window sizes.
func TestCheckPageSFU(t *testing.T) {
	lane(t, laneBrowser)
	share := true
	ib := startIcebox(t, func(c *config.Config) {
		c.TURN.ShareHTTPListen = &share
		c.SFU = &config.SFU{Listen: []string{"udp://127.0.0.1:0"}}
	})
	_, httpPort, _ := net.SplitHostPort(ib.HTTPAddr().String())
	browser := newBrowser(t)
	dir := t.TempDir()
	for _, vp := range viewports {
		tab := openTab(t, browser, ib.URL+"/check", vp)
		out, shown := checkResult(t, tab)
		if len(out.SFU) != 2 {
			t.Fatalf("%s: SFU results %+v, want UDP and TCP", vp.name, out.SFU)
		}
		for _, r := range out.SFU {
			if r.State != "ok" || r.RTTMs == nil {
				t.Errorf("%s: media server over %s (port %d): %s, %q, want it to work with a round trip", vp.name, r.Transport, r.Port, r.State, r.Detail)
			}
		}
		if tcp := out.SFU[1]; tcp.Transport != "tcp" || strconv.Itoa(tcp.Port) != httpPort {
			t.Errorf("%s: second SFU test over %s port %d, want TCP on the shared port %s", vp.name, tcp.Transport, tcp.Port, httpPort)
		}
		if text := eval[string](t, tab, `document.getElementById('verdict-text').textContent`); !strings.Contains(text, "Group calls through the media server work over UDP.") ||
			!strings.Contains(shown, "Media server over TCP (port "+httpPort+"): works: connected in") {
			t.Errorf("%s: the page and its report do not say the media server works: %s | %s", vp.name, text, shown)
		}
		screenshot(t, tab, dir, "check-sfu-"+vp.name)
		eval[bool](t, tab, `[...document.querySelectorAll('#tests li')].at(-1).scrollIntoView({block: 'end'}), true`)
		screenshot(t, tab, dir, "check-sfu-"+vp.name+"-rows")
	}
	t.Logf("screenshots in %s", dir)
}
