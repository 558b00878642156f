package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/icebox-project/icebox/signaling/sigclient"
	"github.com/icebox-project/icebox/signaling/wire"
)

// serve runs icebox with yml (state_dir added) inside the namespace until
// the test ends (SIGTERM), and returns its log lines' bound HTTP and
// metrics addresses, once both are logged, and the config file's path.
func (ns *netns) serve(yml string) (httpAddr, metricsAddr, path string) {
	t := ns.t
	t.Helper()
	dir := t.TempDir()
	path = filepath.Join(dir, "icebox.yaml")
	if err := os.WriteFile(path, []byte(yml+fmt.Sprintf("state_dir: %q\n", dir)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns.name, binary, "-config", path)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	httpRe := regexp.MustCompile(`msg="http listening".* addr=(\S+)`)
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default: // nobody reads any more; keep draining the pipe
			}
		}
	}()
	timeout := time.After(30 * time.Second)
	for httpAddr == "" || (metricsAddr == "" && strings.Contains(yml, "metrics: {listen: \"127")) {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("icebox ended before it was listening")
			}
			if m := httpRe.FindStringSubmatch(l); m != nil {
				httpAddr = m[1]
			}
			if m := metricsLine.FindStringSubmatch(l); m != nil {
				metricsAddr = m[1]
			}
		case <-timeout:
			t.Fatal("icebox was not listening within 30s")
		}
	}
	return httpAddr, metricsAddr, path
}

// get is GET url inside the namespace; it fails the test unless 200.
func (ns *netns) get(url string) []byte {
	ns.t.Helper()
	c := http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: ns.dial}}
	resp, err := c.Get(url)
	if err != nil {
		ns.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		ns.t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return b
}

// namesOnly fails the test unless body (JSON with iceServers) has URLs and
// each is at public.
func namesOnly(t *testing.T, what string, body []byte, public string) {
	t.Helper()
	var rc rtcConfiguration
	if err := json.Unmarshal(body, &rc); err != nil {
		t.Fatalf("%s: %v\n%s", what, err, body)
	}
	n := 0
	for _, s := range rc.ICEServers {
		for _, u := range s.URLs {
			n++
			if !strings.Contains(u, ":"+public+":") {
				t.Errorf("%s: URL %s is not at %s", what, u, public)
			}
		}
	}
	if n == 0 {
		t.Errorf("%s: no URLs: %s", what, body)
	}
}

// sameAddressEverywhere: with public_ip: metadata (the fake service in
// the namespace answering public), the cluster heartbeat, the page, the
// API, welcome and icebox credentials all name public.
func (ns *netns) sameAddressEverywhere(public string) {
	t := ns.t
	key := filepath.Join(t.TempDir(), "cluster.key")
	if err := os.WriteFile(key, []byte("ns-cluster-secret-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const base = "public_ip: metadata\nhttp: {listen: \"127.0.0.1:0\"}\nturn:\n  listen: [\"udp://127.0.0.1:%d\", \"tcp://127.0.0.1:%d\"]\n  secrets: [\"ns-turn-secret-0123456789\"]\n"

	// A node of a cluster: its heartbeat's relay, as GET /cluster shows it.
	_, metrics, _ := ns.serve(fmt.Sprintf(base, 3490, 3490) + "metrics: {listen: \"127.0.0.1:0\"}\n" +
		fmt.Sprintf("cluster: {node: a, listen: \"127.0.0.1:0\", secret_file: %q}\n", key))
	var st clusterStatus
	if err := json.Unmarshal(ns.get("http://"+metrics+"/cluster"), &st); err != nil {
		t.Fatal(err)
	}
	for _, n := range st.Nodes {
		if n.Self && n.Relay.Addr != public {
			t.Errorf("cluster heartbeat relay %s, want %s", n.Relay.Addr, public)
		}
	}

	// A single node (a lone cluster node admits no joins): the page, the
	// API, welcome and the credentials command on its config.
	httpAddr, _, path := ns.serve(fmt.Sprintf(base, 3491, 3491) + "metrics: {listen: \"\"}\n")
	page := ns.get("http://" + httpAddr + "/r/same-address")
	m := iceConfigRe.FindSubmatch(page)
	if m == nil {
		t.Fatalf("no ice-config in the page:\n%s", page)
	}
	namesOnly(t, "page", m[1], public)
	namesOnly(t, "/api/v1/ice-servers", ns.get("http://"+httpAddr+"/api/v1/ice-servers"), public)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	d := websocket.Dialer{NetDialContext: ns.dial, HandshakeTimeout: 10 * time.Second}
	ws, err := sigclient.Dial(ctx, "ws://"+httpAddr+"/ws", sigclient.DialOptions{Origin: "http://" + httpAddr, Dialer: &d})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	welcome, err := ws.Join(ctx, wire.Join{Room: "same-address", Name: "alice"})
	if err != nil {
		t.Fatalf("no welcome: %v", err)
	}
	msg, _ := wire.Marshal(welcome)
	namesOnly(t, "welcome", msg, public)

	out, err := exec.Command("ip", "netns", "exec", ns.name, binary, "credentials", "-config", path, "-user", "dev").Output()
	if err != nil {
		t.Fatalf("icebox credentials: %v", err)
	}
	namesOnly(t, "icebox credentials", out, public)
}
