package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/icebox-project/icebox/config"
)

// TestBrowsersOnJoinRelay: with turn.credentials on-join the page holds
// no TURN credentials, so a relay-only call between two browsers works
// only if the page builds its peer connections with the servers from
// welcome.
func TestBrowsersOnJoinRelay(t *testing.T) {
	lane(t, laneBrowser)
	ib := startIcebox(t, func(c *config.Config) { c.TURN.Credentials = config.CredentialsOnJoin })
	browser := newBrowser(t)
	room := ib.newRoom(t)
	if _, body := ib.get(t, "/r/"+room); strings.Contains(body, "credential") {
		t.Fatalf("on-join page carries credentials:\n%s", iceConfigRe.FindString(body))
	}
	a := newTab(t, browser, ib.URL+"/r/"+room+"?test=1&name=a&autojoin=1&relay=1")
	b := newTab(t, browser, ib.URL+"/r/"+room+"?test=1&name=b&autojoin=1&relay=1")
	waitMutualVideo(t, a, b, time.Now().Add(callUp))
	pairs, err := chromedp.Run(a, chromedp.Evaluate[map[string]pairInfo](`window.icebox.pairs()`, chromedp.EvalAwaitPromise))
	if err != nil || len(pairs) != 1 {
		t.Fatalf("page a: pairs %v %v, want one peer connection", pairs, err)
	}
	for _, p := range pairs {
		if p.Local != "relay" {
			t.Errorf("page a: local candidate %+v, want relay (credentials from welcome)", p)
		}
	}
}
