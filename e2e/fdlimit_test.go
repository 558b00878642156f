package e2e

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pion/turn/v4"

	"github.com/icebox-project/icebox/internal/testenv"
	"github.com/icebox-project/icebox/internal/turntest"
	"github.com/icebox-project/icebox/turnsrv"
)

// TestTURNTCPSurvivesFDExhaustion runs icebox with RLIMIT_NOFILE 128 and
// the TCP connection caps off, so that TURN over TCP runs into the
// descriptor limit: connections are opened until the server closes one
// instead of serving it. Once they are closed, TURN over TCP serves again
// (a pion client allocates within 2 s), /healthz answers 200 and /metrics
// counted the failed accepts. Before the fix pion's accept loop ended at
// the first EMFILE and TURN over TCP stayed down until a restart.
func TestTURNTCPSurvivesFDExhaustion(t *testing.T) {
	lane(t, laneLight)
	prlimit := testenv.Tool(t, "apt-get install util-linux", "prlimit")
	const secret = "fd-limit-secret-0123456789"
	yml := fmt.Sprintf(`public_ip: 127.0.0.1
http: {listen: "127.0.0.1:0"}
turn:
  listen: ["udp://127.0.0.1:0", "tcp://127.0.0.1:0"]
  relay_ports: "20000-29999"
  allow_peers: [127.0.0.0/8]
  secrets: [%q]
  udp_sockets: 1
  max_tcp_connections_per_ip: -1
  max_tcp_connections: -1
metrics: {listen: "127.0.0.1:0"}
shutdown_grace: 1s
state_dir: %q
`, secret, t.TempDir())
	ib := startChildIcebox(t, yml, prlimit, "--nofile=128:128", "--")
	if ib.turnTCP == "" || ib.metrics == "" {
		t.Fatalf("no TURN tcp or metrics address in the log:\n%s", ib.logText())
	}

	// Fill the descriptor table: each connection is served (a Binding
	// answered) until the server, out of descriptors, closes one unserved.
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	refused := false
	for i := 0; i < 256 && !refused; i++ {
		c, err := net.Dial("tcp", ib.turnTCP)
		if errors.Is(err, syscall.ECONNRESET) {
			refused = true // reset (SO_LINGER 0) before connect returned
			t.Logf("connection %d reset at the descriptor limit", i)
			break
		}
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		conns = append(conns, c)
		err = turntest.TCPBinding(c, 10*time.Second)
		var ne net.Error
		switch {
		case err == nil:
		case errors.As(err, &ne) && ne.Timeout():
			t.Fatalf("connection %d: neither served nor closed within 10s:\n%s", i, ib.logText())
		default:
			refused = true
			t.Logf("connection %d closed unserved at the descriptor limit: %v", i, err)
		}
	}
	if !refused {
		t.Fatalf("%d connections served under RLIMIT_NOFILE 128; the limit was never reached", len(conns))
	}

	// The pressure ends.
	for _, c := range conns {
		c.Close()
	}
	conns = nil
	ended := time.Now()

	// A new TURN-over-TCP allocation within 2 s: connections the server
	// closes while it still gives descriptors back are retried.
	username := fmt.Sprintf("%d:fd-test", time.Now().Add(time.Hour).Unix())
	password := turnsrv.RESTPassword([]byte(secret), username)
	var lastErr error
	allocated := false
	for time.Since(ended) < 2*time.Second && !allocated {
		lastErr = allocateOverTCP(t, ib.turnTCP, username, password)
		allocated = lastErr == nil
	}
	if !allocated {
		t.Fatalf("no TURN allocation over TCP within 2s of the pressure ending: %v\n%s", lastErr, ib.logText())
	}

	resp, err := http.Get("http://" + ib.metrics + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz: got %d, want 200", resp.StatusCode)
	}
	m := scrapeAddr(t, ib.metrics)
	for _, name := range []string{`icebox_turn_tcp_accept_errors_total`, `icebox_turn_tcp_refused_total{reason="fd_limit"}`} {
		if m[name] <= 0 {
			t.Errorf("%s = %v after the descriptor limit was hit, want > 0", name, m[name])
		}
	}
	if n := strings.Count(ib.logText(), "turn tcp accept failed"); n > 1 {
		t.Errorf("accept failures logged %d times, want at most once a minute", n)
	}
}

// allocateOverTCP opens a TCP connection, checks with a Binding that the
// server serves it, and allocates on it with pion's TURN client.
func allocateOverTCP(t *testing.T, server, username, password string) error {
	t.Helper()
	c, err := net.Dial("tcp", server)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := turntest.TCPBinding(c, 2*time.Second); err != nil {
		return fmt.Errorf("binding: %w", err)
	}
	client, err := turn.NewClient(&turn.ClientConfig{STUNServerAddr: server, TURNServerAddr: server,
		Conn: turn.NewSTUNConn(c), Username: username, Password: password, Realm: "icebox"})
	if err != nil {
		return err
	}
	defer client.Close()
	if err := client.Listen(); err != nil {
		return err
	}
	relay, err := client.Allocate()
	if err != nil {
		return fmt.Errorf("allocate: %w", err)
	}
	return relay.Close()
}
