package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/icebox-project/icebox/internal/testenv"
)

// TestCredentialsAdvertised: icebox credentials prints the URLs the
// daemon would advertise: turns: at the name browsers check the
// certificate against (the ACME domain, the certificate's DNS name, or
// public_host), never at the IP address; and no URL for a listener
// bound to port 0, whose port only the running icebox knows. Before
// daemon.ConfigAdvertised it printed turns:<ip> without public_host, and
// port 0.
func TestCredentialsAdvertised(t *testing.T) {
	const secret = "credentials-advertised-secret-0123"
	certFile, keyFile := testenv.SelfSignedFiles(t, "turn.example.test")
	tests := []struct {
		name       string
		yml        string
		want       []string // URLs, in order
		wantStderr string
	}{
		{"certificate", fmt.Sprintf(`http:
  listen: "127.0.0.1:8443"
  tls: {cert_file: %q, key_file: %q}
turn:
  listen: ["udp://0.0.0.0:3478", "tls://0.0.0.0:5349"]
`, certFile, keyFile), []string{"stun:198.51.100.4:3478", "turn:198.51.100.4:3478?transport=udp", "turns:turn.example.test:5349?transport=tcp"}, ""},
		{"acme", `http:
  listen: ":443"
  tls: {acme_domains: [call.example.test, www.example.test], acme_email: ops@example.test}
turn:
  listen: ["udp://0.0.0.0:3478", "tls://0.0.0.0:5349"]
`, []string{"stun:198.51.100.4:3478", "turn:198.51.100.4:3478?transport=udp", "turns:call.example.test:5349?transport=tcp", "turns:call.example.test:443?transport=tcp"}, ""},
		{"public_host wins", fmt.Sprintf(`public_host: meet.example.test
http:
  listen: "127.0.0.1:8443"
  tls: {cert_file: %q, key_file: %q}
turn:
  listen: ["tls://0.0.0.0:5349"]
`, certFile, keyFile), []string{"turns:meet.example.test:5349?transport=tcp"}, ""},
		{"port 0", `turn:
  listen: ["udp://127.0.0.1:0", "tcp://0.0.0.0:3478"]
`, []string{"turn:198.51.100.4:3478?transport=tcp"}, "udp://127.0.0.1:0 is left out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			yml := fmt.Sprintf("public_ip: 198.51.100.4\nstate_dir: %q\n", t.TempDir()) + tt.yml +
				fmt.Sprintf("  secrets: [%q]\n", secret)
			path := writeFile(t, yml)
			stdout, stderr, code := runIcebox(t, "credentials", "-config", path, "-user", "dev")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			var rc rtcConfiguration
			if err := json.Unmarshal([]byte(stdout), &rc); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, stdout)
			}
			var got []string
			for _, s := range rc.ICEServers {
				got = append(got, s.URLs...)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("got URLs %q, want %q", got, tt.want)
			}
			if !strings.Contains(stderr, tt.wantStderr) {
				t.Errorf("stderr %q lacks %q", stderr, tt.wantStderr)
			}
		})
	}
}
