//go:build linux

package e2e

import (
	"context"
	"io"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/icebox-project/icebox/internal/netlab"
	"github.com/icebox-project/icebox/web"
)

var selfTestPassed = regexp.MustCompile(`msg="self-test passed".* relayed_address=(\S+)`)

// TestNATLab: two pion/webrtc peers in network namespaces behind Linux
// NATs (nftables) call each other through icebox, which runs in a
// namespace of its own on the lab's internet with HTTPS and TURN over TLS
// sharing port 443. Each scenario asserts the candidate pair ICE
// selected: direct through port-preserving NATs, relayed through
// symmetric ones, relayed over TCP when UDP is dropped, relayed on both
// sides with ?relay=1, through an icebox behind a 1:1 NAT with public_ip
// set (its start-up self-test passes), and relayed over TLS on 443 for a
// client allowed only TCP 443, which fetches the page there too. In an
// SFU room a client allowed only TCP 443 sends and receives video over
// ICE-TCP on 443, and one with UDP dropped through TURN over TCP to the
// SFU's UDP port. Chromium
// allowed only TCP 443 calls Chromium behind a symmetric NAT, both play
// video; /check says what works where UDP is dropped and where only TCP
// 443 gets out. The scenarios run in parallel and share the icebox.
func TestNATLab(t *testing.T) {
	lane(t, laneBrowser)
	start := time.Now()
	nl := newNATLab(t)
	srv := nl.lab.Netns(t, "srv")
	nl.plug(t, srv, srvAddr)
	// public_ip is not set: icebox finds 203.0.113.10 on its interface.
	// Its SFU takes media on UDP 3480 and, over ICE-TCP, on 443.
	ib := nl.startIcebox(t, srv, nl.config(t, "sfu: {}\nsignaling: {rooms: {"+sfuLabRoom+": {media: sfu}}}\n"))
	if m := ib.waitLog(t, selfTestPassed, 10*time.Second); !strings.HasPrefix(m[1], srvAddr.String()+":") {
		t.Errorf("self-test relayed address %s, want %s:port", m[1], srvAddr)
	}
	base := "https://" + srvAddr.String()
	t.Logf("lab ready in %.1fs", time.Since(start).Seconds())

	t.Run("scenarios", func(t *testing.T) {
		t.Run("port-preserving NATs: direct", func(t *testing.T) {
			t.Parallel()
			a, wanA := nl.client(t, "a", natPortPreserving)
			b, wanB := nl.client(t, "b", natPortPreserving)
			ra, rb := nl.call(t, a, b, base+"/r/"+labRoom())
			for _, c := range []struct {
				r         peerReport
				otherWAN  netip.Addr
				otherName string
			}{{ra, wanB, "b"}, {rb, wanA, "a"}} {
				if c.r.Local.Type == "relay" || c.r.Remote.Type == "relay" {
					t.Errorf("%s: selected %s, want a direct pair", c.r.Name, c.r.pair())
				}
				// The remote is the other's NAT: hole punching, not a
				// LAN address or the relay.
				if got := c.r.Remote.addr(); got != c.otherWAN {
					t.Errorf("%s: remote %s, want %s's NAT address %s", c.r.Name, c.r.Remote, c.otherName, c.otherWAN)
				}
			}
		})
		t.Run("symmetric NATs: relay", func(t *testing.T) {
			t.Parallel()
			a, _ := nl.client(t, "a", natSymmetric)
			b, _ := nl.client(t, "b", natSymmetric)
			ra, rb := nl.call(t, a, b, base+"/r/"+labRoom())
			relayed := 0
			for _, r := range []peerReport{ra, rb} {
				// Over UDP mostly; TCP or TLS when a check through one of
				// those relays came first (see checkRelayBoth).
				if r.Local.Type == "relay" {
					relayed++
					if r.Local.addr() != srvAddr || r.Local.RelayProtocol == "" {
						t.Errorf("%s: local %s, want a relayed address of %s", r.Name, r.Local, srvAddr)
					}
				}
			}
			if relayed == 0 {
				t.Errorf("no side relays (a: %s; b: %s); a direct pair through two symmetric NATs is impossible", ra.pair(), rb.pair())
			}
		})
		t.Run("UDP dropped: relay over TCP", func(t *testing.T) {
			t.Parallel()
			a, _ := nl.client(t, "a", natNoUDP)
			b, _ := nl.client(t, "b", natPortPreserving)
			ra, _ := nl.call(t, a, b, base+"/r/"+labRoom())
			// TURN over TCP, plain or in TLS: both get through, and which
			// one ICE picks depends on which check lands first.
			if ra.Local.Type != "relay" || (ra.Local.RelayProtocol != "tcp" && ra.Local.RelayProtocol != "tls") || ra.Local.addr() != srvAddr {
				t.Errorf("a (no UDP): local %s, want relay over tcp or tls at %s", ra.Local, srvAddr)
			}
		})
		t.Run("relay=1: relay on both sides", func(t *testing.T) {
			t.Parallel()
			a, _ := nl.client(t, "a", natPortPreserving)
			b, _ := nl.client(t, "b", natPortPreserving)
			ra, rb := nl.call(t, a, b, base+"/r/"+labRoom()+"?relay=1")
			checkRelayBoth(t, ra, rb, srvAddr)
		})
		t.Run("icebox behind a 1:1 NAT", func(t *testing.T) {
			t.Parallel()
			// An EC2-style address: icebox has 10.200.0.2 on its only
			// interface; its router maps 203.0.113.20 to it both ways and
			// hairpins, as the cloud's does, so the self-test reaches
			// the relay at the public address from inside.
			nat := nl.lab.Netns(t, "nat11")
			nl.plug(t, nat, nat11Addr)
			srv11 := nl.lab.Netns(t, "srv11")
			netlab.Veth(t, nat, "lan0", srv11, "eth0")
			nat.IP(t, "addr add 10.200.0.1/24 dev lan0")
			srv11.IP(t, "addr add 10.200.0.2/24 dev eth0", "route add default via 10.200.0.1")
			nat.Router(t)
			nat.Nft(t, `table ip nat {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr 203.0.113.20 dnat to 10.200.0.2
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr 10.200.0.2 snat to 203.0.113.20
  }
}
`)
			ib11 := nl.startIcebox(t, srv11, nl.config(t, "public_ip: 203.0.113.20\n"))
			m := ib11.waitLog(t, selfTestPassed, 10*time.Second)
			if !strings.HasPrefix(m[1], nat11Addr.String()+":") {
				t.Errorf("self-test relayed address %s, want %s:port", m[1], nat11Addr)
			}
			healthz(t, srv11, "127.0.0.1:9464")

			a, _ := nl.client(t, "a", natPortPreserving)
			b, _ := nl.client(t, "b", natSymmetric)
			ra, rb := nl.call(t, a, b, "https://"+nat11Addr.String()+"/r/"+labRoom()+"?relay=1")
			checkRelayBoth(t, ra, rb, nat11Addr)
		})
		t.Run("only TCP 443: relay over TLS on 443", func(t *testing.T) {
			t.Parallel()
			a, _ := nl.client(t, "a", natOnly443)
			b, _ := nl.client(t, "b", natPortPreserving)
			ra, _ := nl.call(t, a, b, base+"/r/"+labRoom())
			// pion's stats give no URL for a candidate: relay over TLS
			// comes from the one turns: URL, which must be on 443.
			var turns []string
			for _, u := range ra.URLs {
				if strings.HasPrefix(u, "turns:") {
					turns = append(turns, u)
				}
			}
			if len(turns) != 1 {
				t.Fatalf("turns: URLs %q, want one", turns)
			}
			checkTLS443(t, "a (only TCP 443)", ra.Local.Type, ra.Local.RelayProtocol, turns[0])
		})
		t.Run("SFU: only TCP 443 over ICE-TCP, UDP dropped through TURN over TCP", func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			a, _ := nl.client(t, "a", natOnly443)
			b, _ := nl.client(t, "b", natNoUDP)
			// a may use only ICE-TCP, b only UDP (so its way is the TURN
			// relay over TCP or TLS, to the SFU's UDP port on the
			// server's own address: the peer filter's one exception).
			ivf, err := filepath.Abs("../sfu/testdata/q.ivf")
			if err != nil {
				t.Fatal(err)
			}
			ra, rb := nl.callWith(t, a, b, base+"/r/"+sfuLabRoom, []string{"-sfu", "-ivf", ivf, "-networks", "tcp4"},
				[]string{"-sfu", "-ivf", ivf, "-networks", "udp4"})
			if ra.Local.Protocol != "tcp" || ra.Remote.Type != "host" || ra.Remote.Protocol != "tcp" || ra.Remote.Address != srvAddr.String()+":443" {
				t.Errorf("a (only TCP 443): selected %s, want ICE-TCP to the SFU's host candidate %s:443", ra.pair(), srvAddr)
			}
			if rb.Local.Type != "relay" || (rb.Local.RelayProtocol != "tcp" && rb.Local.RelayProtocol != "tls") ||
				rb.Remote.Type != "host" || rb.Remote.Address != srvAddr.String()+":3480" {
				t.Errorf("b (no UDP): selected %s, want a relay over TCP or TLS to the SFU's %s:3480", rb.pair(), srvAddr)
			}
			t.Logf("SFU over ICE-TCP and TURN over TCP: %s, %s; %.1fs", ra.Received, rb.Received, time.Since(start).Seconds())
		})
		t.Run("browsers: only TCP 443 calls symmetric NAT", func(t *testing.T) {
			t.Parallel()
			chromiumPath(t)
			a, _ := nl.client(t, "a", natOnly443)
			b, _ := nl.client(t, "b", natSymmetric)
			pa, _ := nl.browserCall(t, a, b, base, base, labRoom())
			checkTLS443(t, "page a (only TCP 443)", pa.Local, pa.RelayProtocol, pa.URL)
		})
		t.Run("check page: only TCP 443", func(t *testing.T) {
			t.Parallel()
			chromiumPath(t)
			a, _ := nl.client(t, "a", natOnly443)
			browser := labBrowser(t, a)
			dir := t.TempDir()
			// Both window sizes at once: each check waits out the probes
			// that cannot get through.
			tabs := make([]context.Context, len(viewports))
			for i, vp := range viewports {
				tabs[i] = openTab(t, browser, base+"/check", vp)
			}
			for i, vp := range viewports {
				tab := tabs[i]
				out, shown := checkResult(t, tab)
				if vp.name == "desktop" {
					t.Logf("%s", shown)
				}
				if out.Verdict.Code != "tls" || out.Verdict.Title != "Calls work, with a little more delay" ||
					!strings.Contains(out.Verdict.Text, "UDP is blocked on your network; calls will use TURN over TLS on 443") {
					t.Errorf("%s: verdict %+v, want calls that work through TURN over TLS, on 443", vp.name, out.Verdict)
				}
				for kind, want := range map[string]string{"stun": "fail", "udp": "fail", "tcp": "fail", "tls": "ok"} {
					if got := out.kindState(kind); got != want {
						t.Errorf("%s: %s: %q, want %q", vp.name, kind, got, want)
					}
				}
				screenshot(t, tab, dir, "check-443-only-"+vp.name)
			}
		})
		t.Run("check page: UDP dropped", func(t *testing.T) {
			t.Parallel()
			chromiumPath(t)
			a, _ := nl.client(t, "a", natNoUDP)
			tab := newTab(t, labBrowser(t, a), base+"/check")
			out, shown := checkResult(t, tab)
			t.Logf("%s", shown)
			if out.Verdict.Code != "tcp" || out.kindState("tls") != "ok" {
				t.Errorf("verdict %+v, want only TURN over TCP (and TLS) working\n%s", out.Verdict, shown)
			}
		})
	})
	t.Logf("NAT lab: %.1fs", time.Since(start).Seconds())
}

// checkRelayBoth asserts that both sides relay through server, each to
// the other's relayed address (learned as a relay candidate, or as
// peer-reflexive when a check came before the candidate), with
// iceTransportPolicy relay. Which relay protocol wins is ICE's choice
// among those that work (a peer-reflexive candidate learned from a check
// over TCP can outrank the UDP relay candidate that comes a moment
// later), so it is only reported.
func checkRelayBoth(t *testing.T, ra, rb peerReport, server netip.Addr) {
	t.Helper()
	for _, c := range []struct{ me, other peerReport }{{ra, rb}, {rb, ra}} {
		if c.me.Local.Type != "relay" || c.me.Local.addr() != server || c.me.Local.RelayProtocol == "" {
			t.Errorf("%s: local %s, want relay at %s", c.me.Name, c.me.Local, server)
		}
		if c.me.Remote.Address != c.other.Local.Address {
			t.Errorf("%s: remote %s, want %s's relayed address %s", c.me.Name, c.me.Remote, c.other.Name, c.other.Local.Address)
		}
		for _, g := range c.me.Gathered {
			if !strings.HasPrefix(g, "relay ") {
				t.Errorf("%s: gathered %q under iceTransportPolicy relay", c.me.Name, g)
			}
		}
	}
	if ra.Policy != "relay" || rb.Policy != "relay" {
		t.Errorf("iceTransportPolicy: a %q, b %q, want relay", ra.Policy, rb.Policy)
	}
}

// checkTLS443 asserts that a local candidate is relayed over TLS from
// the turns: URL on port 443.
func checkTLS443(t *testing.T, who, typ, relayProtocol, url string) {
	t.Helper()
	if typ != "relay" || relayProtocol != "tls" || url != "turns:"+srvAddr.String()+":443?transport=tcp" {
		t.Errorf("%s: local %s over %q from %q, want relay over tls from turns:…:443", who, typ, relayProtocol, url)
	}
}

// healthz asserts that icebox in ns answers 200 on /healthz at addr.
func healthz(t *testing.T, ns *netlab.Netns, addr string) {
	t.Helper()
	resp, err := ns.HTTPClient(nil).Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("healthz in %s: %v", ns.Name, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("healthz in %s: %d %s", ns.Name, resp.StatusCode, body)
	}
}

// sfuLabRoom is the lab icebox's SFU room.
const sfuLabRoom = "sfu-lab"

// labRoom is a fresh room id for one scenario.
func labRoom() string { return web.NewRoomID() }
