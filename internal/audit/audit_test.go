package audit

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/turn/v4"

	"github.com/icebox-project/icebox/config"
	"github.com/icebox-project/icebox/internal/turntest"
	"github.com/icebox-project/icebox/turnsrv"
)

// publicIP is the advertised address of the test servers: a loopback
// address other than 127.0.0.1, so that the forbidden loopback peer
// 127.0.0.1 is not also the server's own address.
var publicIP = netip.MustParseAddr("127.0.0.2")

const secret = "audit-test-secret-0123456789"

// testServer is an icebox TURN server on 127.0.0.2, port 0.
type testServer struct {
	*turnsrv.Server
	udp, tcp string
	cfg      Config // an audit of it with a fresh credential
}

// startTURN runs turnsrv with the recommended deny list and allow, relay
// ports 20000-29999, and returns it with the audit Config that targets
// it.
func startTURN(t *testing.T, allow ...string) *testServer {
	t.Helper()
	return startTURNRelay(t, 20000, 29999, allow...)
}

// startTURNRelay is startTURN with the relay ports relayMin-relayMax.
func startTURNRelay(t *testing.T, relayMin, relayMax uint16, allow ...string) *testServer {
	t.Helper()
	loaded, err := config.FromBytes("", nil)
	if err != nil {
		t.Fatal(err)
	}
	p := &loaded.Parsed
	var allowed []netip.Prefix
	for _, a := range allow {
		allowed = append(allowed, netip.MustParsePrefix(a))
	}
	creds, err := turnsrv.NewCredentials("icebox", []string{secret}, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := turnsrv.New(turnsrv.Config{
		Realm: "icebox", PublicIP: publicIP, Credentials: creds,
		Listeners:    []turnsrv.Listener{{Network: "udp", Addr: "127.0.0.2:0"}, {Network: "tcp", Addr: "127.0.0.2:0"}},
		RelayMinPort: relayMin, RelayMaxPort: relayMax,
		DenyPeers: p.DenyPeers, AllowPeers: allowed,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ts := &testServer{Server: s, udp: s.Addrs()[0].String(), tcp: s.Addrs()[1].String()}
	user, pass, _ := creds.Mint(CredentialUser, time.Now())
	ts.cfg = Config{Server: ts.udp, TCP: ts.tcp, PublicIP: publicIP, Realm: "icebox", Username: user, Password: pass,
		RelayMin: relayMin, RelayMax: relayMax, NoIdleWait: true}
	return ts
}

func byCheck(rs []Result) map[string]Result {
	m := map[string]Result{}
	for _, r := range rs {
		m[r.Check] = r
	}
	return m
}

// TestTURNChecks: against icebox with the recommended deny list every
// TURN check passes; with everything allowed the forbidden peers fail,
// each with the code the server sent.
func TestTURNChecks(t *testing.T) {
	peers := []string{"127.0.0.1", "10.0.0.1", "169.254.169.254", "::ffff:127.0.0.1", "::7f00:1", "64:ff9b::a00:1"}
	tests := []struct {
		name  string
		allow []string
		want  map[string]Status
	}{
		{"recommended deny list", nil, map[string]Status{
			CheckUnauthAllocate: Pass, CheckAllocate: Pass, CheckOwnListener: Pass, CheckOwnOther: Pass,
			CheckEveryPeer: Pass, CheckAmpBinding: Pass, CheckAmpAllocate: Pass, CheckAmpBareAllocate: Pass,
			CheckWrappedPrefix + " tcp": Pass,
			CheckPeerPrefix + peers[0]:  Pass, CheckPeerPrefix + peers[1]: Pass, CheckPeerPrefix + peers[2]: Pass,
			CheckPeerPrefix + peers[3]: Pass, CheckPeerPrefix + peers[4]: Pass, CheckPeerPrefix + peers[5]: Pass,
		}},
		{"everything allowed", []string{"0.0.0.0/0", "::/0"}, map[string]Status{
			// The own-address checks are left out: icebox refuses its
			// listener ports whatever allow_peers says.
			CheckUnauthAllocate: Pass, CheckAllocate: Pass, CheckEveryPeer: Fail,
			CheckPeerPrefix + peers[0]: Fail, CheckPeerPrefix + peers[1]: Fail, CheckPeerPrefix + peers[2]: Fail,
			CheckPeerPrefix + peers[3]: Fail, CheckPeerPrefix + peers[4]: Fail, CheckPeerPrefix + peers[5]: Fail,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startTURN(t, tt.allow...)
			rs := byCheck(Run(context.Background(), s.cfg))
			for check, want := range tt.want {
				if got := rs[check]; got.Status != want {
					t.Errorf("%s: got %q, want %s", check, got, want)
				}
			}
			if r := rs[CheckPeerPrefix+"127.0.0.1"]; tt.want[r.Check] == Fail && !strings.Contains(r.Evidence, "success") {
				t.Errorf("evidence %q does not give the server's answer", r.Evidence)
			}
		})
	}
}

// TestNothingReachesForbiddenPeers: with a server that grants every
// permission, the audit still sends no datagram to a peer. A UDP socket
// on 127.0.0.1 stands in for the loopback peer, on a port inside the
// relay range (outside it, icebox refuses its own addresses whatever
// allow_peers says); after the audit the server's to-peer counter is 0,
// and a marker relayed by an ordinary client must be the first thing the
// peer receives.
func TestNothingReachesForbiddenPeers(t *testing.T) {
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	port := uint16(peer.LocalAddr().(*net.UDPAddr).Port)
	s := startTURNRelay(t, port, uint16(min(int(port)+999, 65535)), "0.0.0.0/0", "::/0")
	cfg := s.cfg
	cfg.PeerPort = port
	rs := byCheck(Run(context.Background(), cfg))
	if r := rs[CheckPeerPrefix+"127.0.0.1"]; r.Status != Fail || !strings.Contains(r.Evidence, peer.LocalAddr().String()) {
		t.Fatalf("got %q, want a FAIL for the permission to %s", r, peer.LocalAddr())
	}
	if n := s.Stats().PacketsToPeers.Load(); n != 0 {
		t.Errorf("after the audit the server has relayed %d datagrams to peers, want 0", n)
	}

	user, pass, _ := mustCreds(t).Mint("marker", time.Now())
	marker := turntest.MustAllocate(t, s.udp, user, pass)
	turntest.ExpectMarkerFirst(t, marker.Conn, peer)
}

func mustCreds(t *testing.T) *turnsrv.Credentials {
	t.Helper()
	c, err := turnsrv.NewCredentials("icebox", []string{secret}, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestNoCredential: without a credential only the unauthenticated checks
// run; the rest are skipped with the reason, and nothing fails.
func TestNoCredential(t *testing.T) {
	s := startTURN(t)
	cfg := s.cfg
	cfg.Username, cfg.Password = "", ""
	rs := Run(context.Background(), cfg)
	for _, r := range rs {
		if r.Status == Fail {
			t.Errorf("got %q", r)
		}
	}
	if r := byCheck(rs)[CheckAllocate]; r.Status != Skip || !strings.Contains(r.Evidence, "no credential") {
		t.Errorf("got %q, want SKIP naming the missing credential", r)
	}
}

// TestWrongSecret: a credential the server does not know fails the
// allocation with the code it got and skips what depends on it.
func TestWrongSecret(t *testing.T) {
	s := startTURN(t)
	cfg := s.cfg
	cfg.Password = "wrong"
	rs := byCheck(Run(context.Background(), cfg))
	if r := rs[CheckAllocate]; r.Status != Fail || !strings.Contains(r.Evidence, "401") {
		t.Errorf("got %q, want FAIL with 401", r)
	}
	if r := rs[CheckEveryPeer]; r.Status != Skip {
		t.Errorf("got %q, want SKIP", r)
	}
}

// TestUnreachable: nothing listening fails the first check and skips the
// rest of the TURN checks instead of hanging.
func TestUnreachable(t *testing.T) {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := c.LocalAddr().String()
	c.Close()
	rs := byCheck(Run(context.Background(), Config{Server: addr, NoIdleWait: true, RTO: 20 * time.Millisecond}))
	if r := rs[CheckUnauthAllocate]; r.Status != Fail {
		t.Errorf("got %q, want FAIL", r)
	}
	if r := rs[CheckAllocate]; r.Status != Skip {
		t.Errorf("got %q, want SKIP", r)
	}
}

// TestPrint: one line per result, "STATUS check: evidence", and the
// number of failures.
func TestPrint(t *testing.T) {
	var b strings.Builder
	n := Print(&b, []Result{pass("a", "x"), fail("b", "y %d", 1), skip("c", "z")})
	if want := "PASS a: x\nFAIL b: y 1\nSKIP c: z\n"; b.String() != want || n != 1 {
		t.Errorf("got %q, %d; want %q, 1", b.String(), n, want)
	}
}

// TestWrappedRequestCheck: the framing check passes against icebox, which
// closes the connection at a frame it and pion/turn would cut differently,
// and fails against pion/turn's TCP listener on its own, which answers the
// hidden Allocate.
func TestWrappedRequestCheck(t *testing.T) {
	s := startTURN(t)
	if r := wrapped(context.Background(), CheckWrappedPrefix+" tcp", s.tcp, nil); r.Status != Pass {
		t.Errorf("against icebox: got %q, want PASS", r)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bare, err := turn.NewServer(turn.ServerConfig{
		Realm:       "icebox",
		AuthHandler: func(string, string, net.Addr) ([]byte, bool) { return nil, false },
		ListenerConfigs: []turn.ListenerConfig{{Listener: ln, RelayAddressGenerator: &turn.RelayAddressGeneratorStatic{
			RelayAddress: net.IPv4(127, 0, 0, 1), Address: "127.0.0.1"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer bare.Close()
	r := wrapped(context.Background(), CheckWrappedPrefix+" tcp", ln.Addr().String(), nil)
	if r.Status != Fail || !strings.Contains(r.Evidence, "answered") {
		t.Errorf("against pion/turn alone: got %q, want FAIL naming the answer", r)
	}
}
