package main

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/icebox-project/icebox/internal/turntest"
)

// auditConfig runs icebox on 127.0.0.2, a loopback address other than
// 127.0.0.1, so the forbidden peer 127.0.0.1 is not its own public_ip.
// The deny list is the recommended one; %s is extra turn: keys, at least
// relay_ports.
const auditConfig = `public_ip: 127.0.0.2
http: {listen: "127.0.0.2:0"}
turn:
  listen: ["udp://127.0.0.2:0", "tcp://127.0.0.2:0"]
  secrets: [%q]
%s
metrics: {listen: ""}
state_dir: %q
`

var tcpLine = regexp.MustCompile(`msg="turn listening".* network=tcp bind=(\S+)`)

// startAudited starts the icebox binary for an audit and returns it with
// its config file and TCP listener.
func startAudited(t *testing.T, secret, turnExtra string) (d *daemonProc, tcp string) {
	t.Helper()
	d = startDaemon(t, fmt.Sprintf(auditConfig, secret, turnExtra, t.TempDir()))
	m := tcpLine.FindStringSubmatch(d.logText())
	if m == nil {
		t.Fatalf("no TCP listener in the log:\n%s", d.logText())
	}
	return d, m[1]
}

// statuses maps each report line's check to its status.
func statuses(t *testing.T, out string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		status, rest, _ := strings.Cut(line, " ")
		check, _, ok := strings.Cut(rest, ": ")
		if !ok || (status != "PASS" && status != "FAIL" && status != "SKIP") {
			t.Fatalf("report line %q is not \"STATUS check: evidence\"", line)
		}
		m[check] = status
	}
	return m
}

// TestAuditDefaultServer: `icebox audit -config` against an icebox with
// the recommended deny list passes every check (the idle-TCP one within
// its default 15 s bound) and exits 0. With the turn: form and a secret
// it does the same without a config file.
func TestAuditDefaultServer(t *testing.T) {
	const secret = "audit-secret-0123456789abcdef"
	d, tcp := startAudited(t, secret, `  relay_ports: "20000-29999"`)
	tests := []struct {
		name string
		args []string
	}{
		{"config", []string{"audit", "-config", d.cfgPath, "-server", d.turnUDP, "-tcp", tcp}},
		{"turn URI", []string{"audit", "turn:" + d.turnUDP, "-secret", secret, "-tcp", "off"}},
		{"turn URI, secret file", []string{"audit", "turn:" + d.turnUDP, "-secret-file", writeFile(t, secret+"\n"), "-tcp", "off"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, errOut, code := runIcebox(t, tt.args...)
			st := statuses(t, out)
			for check, s := range st {
				if s == "FAIL" {
					t.Errorf("%s: FAIL", check)
				}
			}
			if code != 0 {
				t.Errorf("exit code %d, want 0\n%s%s", code, out, errOut)
			}
			for _, check := range []string{"unauthenticated-allocate", "allocate", "peer-refused 127.0.0.1",
				"peer-refused 169.254.169.254", "every-peer-address-checked", "amplification-allocate"} {
				if st[check] != "PASS" {
					t.Errorf("%s: got %q, want PASS\n%s", check, st[check], out)
				}
			}
			if tt.name == "config" && st["idle-tcp-closed"] != "PASS" {
				t.Errorf("idle-tcp-closed: got %q, want PASS\n%s", st["idle-tcp-closed"], out)
			}
		})
	}
}

// TestAuditAllowAll: against allow_peers 0.0.0.0/0 the audit reports FAIL
// for the loopback, private and metadata peers and exits 1, and sends
// them nothing: a UDP socket on 127.0.0.1, named with -peer-port, gets no
// datagram before a marker relayed afterwards by an ordinary client. The
// socket's port is inside relay_ports: outside them icebox refuses its own
// addresses, 127.0.0.1 among them, whatever allow_peers says.
func TestAuditAllowAll(t *testing.T) {
	const secret = "audit-secret-0123456789abcdef"
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	n := peer.LocalAddr().(*net.UDPAddr).Port
	port := strconv.Itoa(n)
	d, _ := startAudited(t, secret, fmt.Sprintf("  relay_ports: \"%d-%d\"\n  allow_peers: [\"0.0.0.0/0\"]", n, min(n+999, 65535)))

	out, _, code := runIcebox(t, "audit", "-config", d.cfgPath, "-server", d.turnUDP, "-tcp", "off", "-peer-port", port)
	if code != 1 {
		t.Errorf("exit code %d, want 1\n%s", code, out)
	}
	st := statuses(t, out)
	for _, p := range []string{"127.0.0.1", "10.0.0.1", "169.254.169.254", "::ffff:127.0.0.1"} {
		if st["peer-refused "+p] != "FAIL" {
			t.Errorf("peer-refused %s: got %q, want FAIL\n%s", p, st["peer-refused "+p], out)
		}
	}
	if !strings.Contains(out, "CreatePermission to 127.0.0.1:"+port+": success") {
		t.Errorf("the report does not give the server's answer for 127.0.0.1:%s:\n%s", port, out)
	}

	u, p := mint(secret, "marker")
	marker := turntest.MustAllocate(t, d.turnUDP, u, p)
	turntest.ExpectMarkerFirst(t, marker.Conn, peer)
}
