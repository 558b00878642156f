package main

import (
	"bufio"
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
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/icebox-project/icebox/internal/testenv"
	"github.com/icebox-project/icebox/signaling/sigclient"
	"github.com/icebox-project/icebox/signaling/wire"
)

const clusterConfig = `public_ip: 127.0.0.1
http: {listen: "127.0.0.1:0"}
turn:
  listen: ["udp://127.0.0.1:0"]
  relay_ports: "%d-%d"
  secrets: ["cluster-turn-secret-0123456789"]
metrics: {listen: "127.0.0.1:0"}
shutdown_grace: 1s
state_dir: %q
cluster:
  node: %s
  listen: "127.0.0.1:0"
  secret_file: %q
  routes: [%s]
`

var (
	routeLine   = regexp.MustCompile(`msg="cluster listening".* addr=(\S+)`)
	metricsLine = regexp.MustCompile(`msg="metrics listening".* addr=(\S+)`)
)

// clusterProc is one icebox node running as a process.
type clusterProc struct {
	*daemonProc
	name, state, key, routes string
	relayMin                 int
	// extra is appended to the cluster section (indented keys).
	extra string
}

func (c *clusterProc) config() string {
	return fmt.Sprintf(clusterConfig, c.relayMin, c.relayMin+999, c.state, c.name, c.key, c.routes) + c.extra
}

func startClusterProc(t *testing.T, name, key, routes string, relayMin int) *clusterProc {
	t.Helper()
	c := &clusterProc{name: name, state: t.TempDir(), key: key, routes: routes, relayMin: relayMin}
	c.daemonProc = startDaemon(t, c.config())
	return c
}

// restart starts the node again after it was killed, with the same state
// directory and name.
func (c *clusterProc) restart(t *testing.T) {
	t.Helper()
	c.daemonProc = startDaemon(t, c.config())
}

func (c *clusterProc) find(re *regexp.Regexp) string {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if m := re.FindAllStringSubmatch(c.logText(), -1); m != nil {
			return m[len(m)-1][1]
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: no %s in the log:\n%s", c.name, re, c.logText())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// status is the node's GET /cluster.
func (c *clusterProc) status(t *testing.T) (ready bool, alive []string) {
	t.Helper()
	resp, err := http.Get("http://" + c.find(metricsLine) + "/cluster")
	if err != nil {
		return false, nil
	}
	defer resp.Body.Close()
	var st clusterStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("%s: /cluster: %v", c.name, err)
	}
	for _, n := range st.Nodes {
		if n.Alive {
			alive = append(alive, n.Name)
		}
	}
	slices.Sort(alive)
	return st.Ready, alive
}

// waitCluster waits until every node is ready and sees exactly names
// alive.
func waitCluster(t *testing.T, nodes []*clusterProc, names ...string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for _, n := range nodes {
		for {
			ready, alive := n.status(t)
			if ready && slices.Equal(alive, names) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: ready %v, alive %v; want ready with %v\n%s", n.name, ready, alive, names, n.logText())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

type wsClient struct {
	t *testing.T
	*sigclient.Client
	id string
}

func wsJoin(t *testing.T, d *daemonProc, room, name string) *wsClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sc, err := sigclient.Dial(ctx, "ws://"+d.httpAddr+"/ws", sigclient.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	w, err := sc.Join(ctx, wire.Join{Room: room, Name: name})
	if err != nil {
		t.Fatalf("%s: join: %v", name, err)
	}
	return &wsClient{t: t, Client: sc, id: w.ID}
}

func (c *wsClient) read(limit time.Duration) wire.Message {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	m, err := c.Receive(ctx)
	if err != nil {
		c.t.Fatalf("no message within %s: %v", limit, err)
	}
	return m
}

// isPeerEvent reports whether m is a peer-joined or peer-left (typ) for
// peer id.
func isPeerEvent(m wire.Message, typ, id string) bool {
	switch m := m.(type) {
	case *wire.PeerJoined:
		return typ == wire.TypePeerJoined && m.ID == id
	case *wire.PeerLeft:
		return typ == wire.TypePeerLeft && m.ID == id
	}
	return false
}

// TestClusterKillAndRejoin: three nodes as processes. A node killed with
// SIGKILL has its peers leave on the others within 15 s; restarted alone
// (no routes), it joins once SIGHUP gives it its route, and its new
// peers are seen; a node stopped with SIGTERM tells the others its peers
// are gone at once; icebox cluster status prints nodes and counts, and
// rooms and peers with -rooms (GET /cluster names none without ?rooms=1).
func TestClusterKillAndRejoin(t *testing.T) {
	key := filepath.Join(t.TempDir(), "cluster.key")
	if err := os.WriteFile(key, []byte("proc-cluster-secret-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startClusterProc(t, "a", key, "", 20000)
	route := `"nats-route://` + a.find(routeLine) + `"`
	b := startClusterProc(t, "b", key, route, 21000)
	c := startClusterProc(t, "c", key, route, 22000)
	nodes := []*clusterProc{a, b, c}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range nodes {
				t.Logf("log of %s:\n%s", n.name, n.logText())
			}
		}
	})
	waitCluster(t, nodes, "a", "b", "c")

	alice := wsJoin(t, a.daemonProc, "room1", "alice")
	bob := wsJoin(t, b.daemonProc, "room1", "bob")
	if m := alice.read(10 * time.Second); !isPeerEvent(m, wire.TypePeerJoined, bob.id) {
		t.Fatalf("alice got %v, want bob's peer-joined", m)
	}
	carol := wsJoin(t, c.daemonProc, "room1", "carol")
	for _, p := range []*wsClient{alice, bob} {
		if m := p.read(10 * time.Second); !isPeerEvent(m, wire.TypePeerJoined, carol.id) {
			t.Fatalf("got %v, want carol's peer-joined", m)
		}
	}

	c.signal(syscall.SIGKILL)
	_ = c.wait()
	for _, p := range []*wsClient{alice, bob} {
		if m := p.read(15 * time.Second); !isPeerEvent(m, wire.TypePeerLeft, carol.id) {
			t.Fatalf("got %v, want carol's peer-left", m)
		}
	}

	// Restarted without routes it waits alone; SIGHUP gives it its route.
	c.routes = ""
	c.restart(t)
	c.routes = route
	c.writeConfig(c.config())
	c.signal(syscall.SIGHUP)
	c.waitLog("cluster routes reloaded")
	waitCluster(t, []*clusterProc{a, b, c}, "a", "b", "c")
	dave := wsJoin(t, c.daemonProc, "room1", "dave")
	for _, p := range []*wsClient{alice, bob} {
		if m := p.read(10 * time.Second); !isPeerEvent(m, wire.TypePeerJoined, dave.id) {
			t.Fatalf("got %v, want dave's peer-joined", m)
		}
	}

	// By default counts only (GET /cluster and the command): room and
	// peer names with ?rooms=1 (-rooms).
	resp, err := http.Get("http://" + a.find(metricsLine) + "/cluster")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, name := range []string{"room1", "alice", "bob", "dave"} {
		if strings.Contains(string(body), name) {
			t.Errorf("GET /cluster names %q without ?rooms=1:\n%s", name, body)
		}
	}
	if !strings.Contains(string(body), `"room_count": 1`) || !strings.Contains(string(body), `"peer_count": 3`) {
		t.Errorf("GET /cluster lacks the counts of 1 room and 3 peers:\n%s", body)
	}
	for _, tc := range []struct {
		args          []string
		want, notWant []string
	}{
		{nil, []string{"a (this)", "\nb ", "\nc ", "1 rooms, 3 peers"}, []string{"room1", "alice", "bob", "dave"}},
		{[]string{"-rooms"}, []string{"a (this)", "1 rooms, 3 peers", "room1", "a: alice", "b: bob", "c: dave"}, nil},
	} {
		out, err := exec.Command(binary, append([]string{"cluster", "status", "-addr", a.find(metricsLine)}, tc.args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("icebox cluster status %v: %v\n%s", tc.args, err, out)
		}
		text := string(out)
		for _, want := range tc.want {
			if !strings.Contains(text, want) {
				t.Errorf("icebox cluster status %v lacks %q:\n%s", tc.args, want, text)
			}
		}
		for _, no := range tc.notWant {
			if strings.Contains(text, no) {
				t.Errorf("icebox cluster status %v shows %q:\n%s", tc.args, no, text)
			}
		}
	}

	// SIGTERM: b drains and says so; its peer leaves on the others at once
	// (a logs that b stopped, not that it fell silent).
	b.signal(syscall.SIGTERM)
	for _, p := range []*wsClient{alice, dave} {
		if m := p.read(10 * time.Second); !isPeerEvent(m, wire.TypePeerLeft, bob.id) {
			t.Fatalf("got %v, want bob's peer-left", m)
		}
	}
	if err := b.wait(); err != nil {
		t.Errorf("b after SIGTERM: %v", err)
	}
	a.waitLog("reason=stopped")
}

// TestClusterConfigErrors: start-up refuses a cluster without a secret
// file, with a generated TURN secret, or with a bad route URL: exit 1,
// naming the key.
func TestClusterConfigErrors(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "cluster.key")
	if err := os.WriteFile(key, []byte("config-cluster-secret-0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := "http: {listen: \"127.0.0.1:0\"}\nturn: {listen: [\"udp://127.0.0.1:0\"]%s}\nmetrics: {listen: \"\"}\nstate_dir: " + strconv.Quote(dir) + "\n"
	secrets := ", secrets: [turn-secret-0123456789]"
	tests := []struct{ name, yml, key string }{
		{"no secret file", fmt.Sprintf(base, secrets) + "cluster: {node: a}\n", "cluster.secret_file"},
		{"generated TURN secret", fmt.Sprintf(base, "") + "cluster: {secret_file: " + key + "}\n", "turn.secrets"},
		{"bad route", fmt.Sprintf(base, secrets) + "cluster: {secret_file: " + key + ", routes: [\"vm2:6222\"]}\n", "cluster.routes[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "icebox.yaml")
			if err := os.WriteFile(path, []byte(tt.yml), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{{"-config", path}, {"check-config", "-config", path}} {
				out, err := exec.Command(binary, args...).CombinedOutput()
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() != 1 {
					t.Fatalf("icebox %v: got %v, want exit 1\n%s", args, err, out)
				}
				if !strings.Contains(string(out), tt.key+":") {
					t.Errorf("icebox %v: output does not name %s:\n%s", args, tt.key, out)
				}
			}
		})
	}
}

// TestSingleNodeOpensNoExtraPort: without a cluster section icebox
// listens on its HTTP, metrics and TURN ports and nothing else (its
// sockets listed from /proc); a cluster node, for contrast, has its route
// listener too.
//
// Right after READY the start-up self-test relays a packet through the
// node's own TURN: two client sockets and two relayed sockets, bound UDP
// sockets while it runs (this test once listed them on a slow machine,
// and failed 3 times in 5). So the sockets are listed once the self-test
// has logged its end (its client sockets closed), and until the server
// has closed the relayed ones (deleting an allocation on a refresh of
// lifetime 0, which the client does not wait for); an extra socket that
// stays fails the test.
func TestSingleNodeOpensNoExtraPort(t *testing.T) {
	single := startDaemon(t, fmt.Sprintf(`public_ip: 127.0.0.1
http: {listen: "127.0.0.1:0"}
turn:
  listen: ["udp://127.0.0.1:0", "tcp://127.0.0.1:0"]
  secrets: ["single-turn-secret-0123456789"]
metrics: {listen: "127.0.0.1:0"}
state_dir: %q
`, t.TempDir()))
	metrics := regexp.MustCompile(`msg="metrics listening".* addr=\S+:(\d+)`).FindStringSubmatch(single.logText())
	tcpTURN := regexp.MustCompile(`msg="turn listening".* network=tcp bind=\S+:(\d+)`).FindStringSubmatch(single.logText())
	if metrics == nil || tcpTURN == nil {
		t.Fatalf("no metrics or TURN TCP listener in the log:\n%s", single.logText())
	}
	want := []string{"tcp:" + portOf(single.httpAddr), "tcp:" + metrics[1], "tcp:" + tcpTURN[1], "udp:" + portOf(single.turnUDP)}
	slices.Sort(want)
	selfTest := regexp.MustCompile(`msg="self-test (passed|failed|skipped)`)
	testenv.Eventually(t, 10*time.Second, "the start-up self-test's end in the log", func() bool {
		return selfTest.MatchString(single.logText())
	})
	// /proc has no event to wait on: the list is read until it is right.
	var got []string
	defer func() {
		if t.Failed() {
			t.Logf("single node listens on %v, want exactly %v", got, want)
		}
	}()
	testenv.Eventually(t, 10*time.Second, "exactly the configured listeners after the self-test", func() bool {
		got = listeningPorts(t, single.cmd.Process.Pid)
		return slices.Equal(got, want)
	})

	key := filepath.Join(t.TempDir(), "cluster.key")
	if err := os.WriteFile(key, []byte("ports-cluster-secret-0123456789"), 0o600); err != nil {
		t.Fatal(err)
	}
	node := startClusterProc(t, "solo", key, "", 23000)
	route := "tcp:" + portOf(node.find(routeLine))
	if got := listeningPorts(t, node.cmd.Process.Pid); !slices.Contains(got, route) {
		t.Errorf("cluster node listens on %v, want its route listener %s among them", got, route)
	}
}

func portOf(hostport string) string { return hostport[strings.LastIndex(hostport, ":")+1:] }

// listeningPorts lists the process's listening TCP sockets and bound UDP
// sockets as "tcp:PORT" and "udp:PORT", sorted, from /proc.
func listeningPorts(t *testing.T, pid int) []string {
	t.Helper()
	inodes := map[string]bool{}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, fd := range fds {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	seen := map[string]bool{}
	for _, proto := range []string{"tcp", "tcp6", "udp", "udp6"} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, proto))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 10 || !inodes[fields[9]] {
				continue
			}
			// TCP: listening sockets only (state 0A); UDP: every bound socket.
			if strings.HasPrefix(proto, "tcp") && fields[3] != "0A" {
				continue
			}
			local := fields[1]
			port, err := strconv.ParseUint(local[strings.LastIndex(local, ":")+1:], 16, 16)
			if err != nil {
				continue
			}
			seen[proto[:3]+":"+strconv.FormatUint(port, 10)] = true
		}
		f.Close()
	}
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}
