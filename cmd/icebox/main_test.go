package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/icebox-project/icebox/internal/testenv"
	"github.com/icebox-project/icebox/internal/turntest"
	"github.com/icebox-project/icebox/signaling/sigclient"
	"github.com/icebox-project/icebox/signaling/wire"
	"github.com/icebox-project/icebox/turnsrv"
)

var binary string

// TestMain builds icebox once. With ICEBOX_PROBE set, the test binary is
// instead the prober run inside TestNoConfigServes's network namespace.
func TestMain(m *testing.M) {
	if os.Getenv("ICEBOX_PROBE") != "" {
		if err := probe("127.0.0.1:8080", "127.0.0.1:3478"); err != nil {
			fmt.Fprintln(os.Stderr, "probe:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	dir, err := os.MkdirTemp("", "icebox-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "icebox")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func runIcebox(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "icebox.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestBadConfigStopsStartUp(t *testing.T) {
	tests := []struct{ name, yml, want string }{
		{"unknown key", "turn:\n  relam: x\n", "turn.relam: unknown key"},
		{"bad CIDR", "turn:\n  allow_peers: [300.1.1.1/8]\n", "turn.allow_peers"},
		{"bad port range", "turn:\n  relay_ports: 70000-80000\n", "turn.relay_ports"},
		{"listener inside the relay range", "turn:\n  listen: [\"udp://0.0.0.0:50000\"]\n  relay_ports: 49152-65535\n", "turn.listen[0]"},
		{"bad listen URL", "turn:\n  listen: [\"udp:/0.0.0.0:3478\"]\n", "turn.listen[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.yml)
			for _, args := range [][]string{{"-config", path}, {"check-config", "-config", path}} {
				_, stderr, code := runIcebox(t, args...)
				if code != 1 {
					t.Errorf("%v: exit %d, want 1", args, code)
				}
				if !strings.Contains(stderr, tt.want) || !strings.Contains(stderr, path) {
					t.Errorf("%v: stderr %q does not name the file and %q", args, stderr, tt.want)
				}
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		_, stderr, code := runIcebox(t, "-config", filepath.Join(t.TempDir(), "nope.yaml"))
		if code != 1 || !strings.Contains(stderr, "does not exist") {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})
}

func TestCheckConfigGood(t *testing.T) {
	path := writeFile(t, "public_ip: 198.51.100.4\nturn:\n  relay_ports: 50000-50010\n")
	stdout, stderr, code := runIcebox(t, "check-config", "-config", path)
	if code != 0 || !strings.Contains(stdout, "ok") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// TestVersion checks `icebox version` names the Go toolchain and the
// pion/turn and nats-server modules linked in, from the build information.
func TestVersion(t *testing.T) {
	stdout, _, code := runIcebox(t, "version")
	if code != 0 || !strings.HasPrefix(stdout, "icebox ") {
		t.Errorf("exit %d, stdout %q", code, stdout)
	}
	for _, want := range []string{
		`(?m)^commit +\S+`,
		`(?m)^go +go1\.\d+`,
		`(?m)^pion/turn +v4\.\d+\.\d+`,
		`(?m)^nats-server +v2\.\d+\.\d+`,
	} {
		if !regexp.MustCompile(want).MatchString(stdout) {
			t.Errorf("version output does not match %s:\n%s", want, stdout)
		}
	}
}

func TestCredentialsVerifyWithTURN(t *testing.T) {
	const secret = "credentials-test-secret-0123"
	path := writeFile(t, fmt.Sprintf("public_ip: 127.0.0.1\nturn:\n  secrets: [%q]\n  listen: [\"udp://127.0.0.1:3478\"]\n", secret))
	stdout, stderr, code := runIcebox(t, "credentials", "-config", path, "-user", "dev", "-ttl", "10m")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var rc rtcConfiguration
	if err := json.Unmarshal([]byte(stdout), &rc); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, stdout)
	}
	if rc.TTL != 600 || len(rc.ICEServers) != 2 || rc.ICEServers[1].URLs[0] != "turn:127.0.0.1:3478?transport=udp" {
		t.Fatalf("got %s", stdout)
	}
	if !regexp.MustCompile(`^\d+:dev$`).MatchString(rc.ICEServers[1].Username) {
		t.Errorf("username %q is not <expiry>:dev", rc.ICEServers[1].Username)
	}
	// A server with the same config accepts the credential.
	srv := startServerFor(t, secret)
	turntest.MustAllocate(t, srv, rc.ICEServers[1].Username, rc.ICEServers[1].Credential)
}

// TestNoConfigServes runs icebox with no config file at all in a network
// namespace of its own (so the default ports 8080 and 3478 are free) and
// a mount namespace hiding any installed /etc/icebox,
// probes it from inside, then stops it with SIGTERM and expects exit 0.
func TestNoConfigServes(t *testing.T) {
	testenv.Require(t, os.Geteuid() == 0, "needs root for a network namespace")
	testenv.Tool(t, "apt-get install util-linux", "unshare")
	testenv.Tool(t, "apt-get install iproute2", "ip") // the script sets lo up
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	// Without -config icebox reads /etc/icebox/icebox.yaml when it
	// exists: in a mount namespace of its own, an installed one is hidden.
	script := `ip link set lo up
if [ -d /etc/icebox ]; then mount -t tmpfs tmpfs /etc/icebox || exit 1; fi
"$ICEBOX" -state-dir "$STATE" 2>"$STATE/log" &
pid=$!
ICEBOX_PROBE=1 "$SELF"
probe=$?
"$ICEBOX" selftest -state-dir "$STATE" || probe=$?
kill -TERM $pid
wait $pid
icebox=$?
cat "$STATE/log"
echo "probe=$probe icebox=$icebox"
[ $probe = 0 ] && [ $icebox = 0 ]`
	cmd := exec.Command("unshare", "-n", "-m", "--propagation", "private", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "ICEBOX="+binary, "STATE="+state, "SELF="+self, "ICEBOX_PROBE=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(string(out), "probe=0 icebox=0") {
		t.Fatalf("unexpected output:\n%s", out)
	}
	t.Logf("%s", out)
	if !strings.Contains(string(out), `msg="self-test passed"`) {
		t.Errorf("start-up self-test did not pass:\n%s", out)
	}
	if !strings.Contains(string(out), "ok: allocated 127.0.0.1:") {
		t.Errorf("icebox selftest did not report success:\n%s", out)
	}
	fi, err := os.Stat(filepath.Join(state, "turn-secret"))
	if err != nil {
		t.Fatalf("no generated secret in state_dir: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("turn-secret mode: got %04o, want 0600", fi.Mode().Perm())
	}
}

// rtcConfiguration is what the page embeds and the credentials command
// prints.
type rtcConfiguration struct {
	ICEServers []turnsrv.ICEServer `json:"iceServers"`
	Policy     string              `json:"iceTransportPolicy"`
	TTL        int                 `json:"ttl"`
}

var iceConfigRe = regexp.MustCompile(`<script id="ice-config" type="application/json">(.*?)</script>`)

// probe checks a default icebox the way a browser would: / redirects to a
// room, the page carries ICE servers pointing at icebox, /ws welcomes a
// peer, and the page's TURN credential allocates.
func probe(httpAddr, turnAddr string) error {
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var resp *http.Response
	var err error
	for i := 0; i < 100; i++ {
		if resp, err = client.Get("http://" + httpAddr + "/"); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !regexp.MustCompile(`^/r/[A-Za-z0-9_-]{10,}$`).MatchString(loc) {
		return fmt.Errorf("GET /: %d %q", resp.StatusCode, loc)
	}
	resp, err = client.Get("http://" + httpAddr + loc)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := iceConfigRe.FindSubmatch(body)
	if m == nil {
		return fmt.Errorf("page has no ice-config")
	}
	var rc rtcConfiguration
	if err := json.Unmarshal(m[1], &rc); err != nil {
		return fmt.Errorf("ice-config: %w", err)
	}
	if len(rc.ICEServers) != 2 || rc.ICEServers[0].URLs[0] != "stun:"+turnAddr || rc.Policy != "all" {
		return fmt.Errorf("ice-config: %s", m[1])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, err := sigclient.Dial(ctx, "ws://"+httpAddr+"/ws", sigclient.DialOptions{Origin: "http://" + httpAddr})
	if err != nil {
		return err
	}
	defer ws.Close()
	if _, err := ws.Join(ctx, wire.Join{Room: loc[3:], Name: "probe"}); err != nil {
		return fmt.Errorf("ws join: %w", err)
	}
	relay, err := turntest.Allocate(turnAddr, rc.ICEServers[1].Username, rc.ICEServers[1].Credential)
	if err != nil {
		return fmt.Errorf("TURN allocate with the page's credential: %w", err)
	}
	defer relay.Close()
	fmt.Println("relayed address", relay.Conn.LocalAddr())
	return nil
}

// TestCommandsNeverCreateSecret: with turn.secrets empty, credentials
// and selftest read the secret a serving icebox generated in state_dir;
// before there is one they fail saying so, and create nothing there.
func TestCommandsNeverCreateSecret(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	path := writeFile(t, fmt.Sprintf("public_ip: 127.0.0.1\nstate_dir: %q\nturn:\n  listen: [\"udp://127.0.0.1:3478\"]\n", state))
	want := "no TURN secret: set turn.secrets or start icebox once to generate one in " + state
	for _, args := range [][]string{
		{"credentials", "-config", path, "-user", "dev"},
		{"selftest", "-config", path},
	} {
		_, stderr, code := runIcebox(t, args...)
		if code != 1 || !strings.Contains(stderr, want) {
			t.Errorf("%v without a secret: exit %d, stderr %q; want exit 1 and %q", args[0], code, stderr, want)
		}
		if _, err := os.Stat(state); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%v created state_dir or something in it: %v", args[0], err)
		}
	}

	// Once the daemon has generated it, credentials uses it as it is.
	secret, err := turnsrv.LoadOrCreateSecret(state)
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := runIcebox(t, "credentials", "-config", path, "-user", "dev")
	if code != 0 {
		t.Fatalf("credentials with the generated secret: exit %d: %s", code, stderr)
	}
	var rc rtcConfiguration
	if err := json.Unmarshal([]byte(stdout), &rc); err != nil || len(rc.ICEServers) != 2 {
		t.Fatalf("credentials output: %v\n%s", err, stdout)
	}
	srv := startServerFor(t, secret)
	turntest.MustAllocate(t, srv, rc.ICEServers[1].Username, rc.ICEServers[1].Credential)
	if again, _ := turnsrv.LoadOrCreateSecret(state); again != secret {
		t.Error("the generated secret changed")
	}
}

// TestCheckConfigPortClash: check-config refuses http.listen ":8443" with
// tcp://0.0.0.0:8443 where that is not a shared listener icebox supports
// (HTTPS with plain TCP TURN, or another listener on the port), naming
// both keys, and accepts the shared forms (plain HTTP with tcp://, HTTPS
// with tls://).
func TestCheckConfigPortClash(t *testing.T) {
	const tlsFiles = "  tls: {cert_file: /etc/ssl/c.pem, key_file: /etc/ssl/k.pem}\n"
	for _, tt := range []struct {
		name, yml string
		keys      []string // nil: accepted
	}{
		{"https and plain TURN", "http:\n  listen: \":8443\"\n" + tlsFiles + "turn:\n  listen: [\"tcp://0.0.0.0:8443\"]\n",
			[]string{"turn.listen[0]", "http.listen"}},
		{"metrics and TURN", "metrics:\n  listen: \":8443\"\nturn:\n  listen: [\"tcp://0.0.0.0:8443\"]\n",
			[]string{"turn.listen[0]", "metrics.listen"}},
		{"plain HTTP shared", "http:\n  listen: \":8443\"\nturn:\n  listen: [\"udp://0.0.0.0:3478\", \"tcp://0.0.0.0:8443\"]\n", nil},
		{"HTTPS shared", "http:\n  listen: \":8443\"\n" + tlsFiles + "turn:\n  listen: [\"udp://0.0.0.0:8443\", \"tls://0.0.0.0:8443\"]\n", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, tt.yml)
			stdout, stderr, code := runIcebox(t, "check-config", "-config", path)
			if tt.keys == nil {
				if code != 0 || !strings.Contains(stdout, "ok") {
					t.Errorf("exit %d, stdout %q, stderr %q; want ok", code, stdout, stderr)
				}
				return
			}
			if code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			for _, k := range append(tt.keys, path) {
				if !strings.Contains(stderr, k) {
					t.Errorf("stderr %q does not name %q", stderr, k)
				}
			}
		})
	}
}
