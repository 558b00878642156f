package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/icebox-project/icebox/internal/turntest"
	"github.com/icebox-project/icebox/turnsrv"
)

// daemonProc is the icebox binary running as a service would: a config
// file, a NOTIFY_SOCKET, signals. Its ports come from its start-up log.
type daemonProc struct {
	t        *testing.T
	cmd      *exec.Cmd
	cfgPath  string
	mu       sync.Mutex
	log      bytes.Buffer
	notify   *net.UnixConn
	turnUDP  string
	httpAddr string
	// logDone is closed when the whole of stderr has been read: exec.Cmd's
	// Wait closes the pipe, so it must come after that or lines are lost.
	logDone chan struct{}
}

// wait waits for the process to exit after its log has been read whole.
func (d *daemonProc) wait() error {
	<-d.logDone
	return d.cmd.Wait()
}

var (
	udpLine  = regexp.MustCompile(`msg="turn listening".* network=udp bind=(\S+)`)
	httpLine = regexp.MustCompile(`msg="http listening".* addr=(\S+)`)
)

func startDaemon(t *testing.T, yml string) *daemonProc {
	t.Helper()
	dir := t.TempDir()
	d := &daemonProc{t: t, cfgPath: filepath.Join(dir, "icebox.yaml")}
	d.writeConfig(yml)
	sock := filepath.Join(dir, "notify.sock")
	nc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	d.notify = nc
	t.Cleanup(func() { nc.Close() })
	d.cmd = exec.Command(binary, "-config", d.cfgPath)
	d.cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sock)
	stderr, err := d.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Kill()
			d.cmd.Wait()
		}
	})
	ready := make(chan struct{})
	d.logDone = make(chan struct{})
	go func() {
		defer close(d.logDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			d.mu.Lock()
			d.log.WriteString(line + "\n")
			if m := udpLine.FindStringSubmatch(line); m != nil {
				d.turnUDP = m[1]
			}
			if m := httpLine.FindStringSubmatch(line); m != nil {
				d.httpAddr = m[1]
				close(ready)
			}
			d.mu.Unlock()
		}
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatalf("icebox did not start:\n%s", d.logText())
	}
	d.expectNotify("READY=1")
	return d
}

func (d *daemonProc) writeConfig(yml string) {
	d.t.Helper()
	if err := os.WriteFile(d.cfgPath, []byte(yml), 0o600); err != nil {
		d.t.Fatal(err)
	}
}

func (d *daemonProc) logText() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

// waitLog waits up to 5 s for a log line containing s.
func (d *daemonProc) waitLog(s string) {
	d.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(d.logText(), s) {
		if time.Now().After(deadline) {
			d.t.Fatalf("no log line with %q:\n%s", s, d.logText())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// expectNotify waits for a datagram on NOTIFY_SOCKET containing state.
func (d *daemonProc) expectNotify(state string) {
	d.t.Helper()
	buf := make([]byte, 4096)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_ = d.notify.SetReadDeadline(deadline)
		n, err := d.notify.Read(buf)
		if err != nil {
			d.t.Fatalf("no %s on NOTIFY_SOCKET: %v", state, err)
		}
		if strings.Contains(string(buf[:n]), state) {
			return
		}
	}
}

func (d *daemonProc) signal(sig syscall.Signal) {
	d.t.Helper()
	if err := d.cmd.Process.Signal(sig); err != nil {
		d.t.Fatal(err)
	}
}

func mint(secret, user string) (string, string) {
	username := fmt.Sprintf("%d:%s", time.Now().Add(time.Hour).Unix(), user)
	return username, turnsrv.RESTPassword([]byte(secret), username)
}

const lifecycleConfig = `public_ip: 127.0.0.1
http: {listen: "127.0.0.1:0"}
turn:
  listen: ["udp://127.0.0.1:0"]
  relay_ports: "20000-29999"
  allow_peers: [127.0.0.0/8]
  secrets: [%q]
metrics: {listen: ""}
shutdown_grace: 3s
state_dir: %q
`

// TestReloadAndShutdown: SIGHUP with a changed secret applies it without
// dropping a live allocation; a broken file is refused and the running
// configuration kept; SIGTERM tells WebSocket clients, ends within the
// grace period and exits 0. systemd hears READY, RELOADING and STOPPING.
func TestReloadAndShutdown(t *testing.T) {
	const oldSecret, newSecret = "old-secret-0123456789abc", "new-secret-0123456789abc"
	state := t.TempDir()
	d := startDaemon(t, fmt.Sprintf(lifecycleConfig, oldSecret, state))
	peer := turntest.UDPEcho(t)

	u, p := mint(oldSecret, "before")
	live, err := turntest.Allocate(d.turnUDP, u, p)
	if err != nil {
		t.Fatalf("allocation before reload: %v", err)
	}
	defer live.Close()
	if err := live.Echo(peer); err != nil {
		t.Fatal(err)
	}

	d.writeConfig(fmt.Sprintf(lifecycleConfig, newSecret, state))
	d.signal(syscall.SIGHUP)
	d.expectNotify("RELOADING=1")
	d.expectNotify("READY=1")
	d.waitLog("configuration reloaded")

	u, p = mint(newSecret, "after")
	fresh, err := turntest.Allocate(d.turnUDP, u, p)
	if err != nil {
		t.Errorf("new secret after reload: %v", err)
	} else {
		fresh.Close()
	}
	u, p = mint(oldSecret, "stale")
	if stale, err := turntest.Allocate(d.turnUDP, u, p); err == nil {
		stale.Close()
		t.Error("removed secret still opens allocations")
	} else if !strings.Contains(err.Error(), "401") {
		t.Errorf("removed secret: got %v, want 401", err)
	}
	if err := live.Echo(peer); err != nil {
		t.Errorf("allocation made before the reload: %v", err)
	}

	// A broken file is refused; the running configuration stays.
	d.writeConfig("turn:\n  relay_ports: nonsense\n")
	d.signal(syscall.SIGHUP)
	d.waitLog("reload refused")
	if !strings.Contains(d.logText(), "turn.relay_ports") {
		t.Errorf("refusal does not name the key:\n%s", d.logText())
	}
	u, p = mint(newSecret, "still")
	if c, err := turntest.Allocate(d.turnUDP, u, p); err != nil {
		t.Errorf("after a refused reload: %v", err)
	} else {
		c.Close()
	}

	// SIGTERM: the WebSocket client is told, the live allocation gets the
	// grace period, the process exits 0.
	ws := wsJoin(t, d, "r", "x")
	start := time.Now()
	d.signal(syscall.SIGTERM)
	d.expectNotify("STOPPING=1")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		_, err := ws.Receive(ctx)
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.CloseGoingAway {
			t.Errorf("WebSocket on SIGTERM: got %v, want close 1001", err)
		}
		break
	}
	done := make(chan error, 1)
	go func() { done <- d.wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit: %v, want 0\n%s", err, d.logText())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("still running 10s after SIGTERM")
	}
	if el := time.Since(start); el > 3*time.Second+2*time.Second {
		t.Errorf("shutdown took %v with a 3s grace", el)
	}
	for _, secret := range []string{oldSecret, newSecret, p} {
		if strings.Contains(d.logText(), secret) {
			t.Errorf("a secret or password appears in the log")
		}
	}
	if !strings.Contains(d.logText(), "shutdown grace over") {
		t.Errorf("the live allocation should have held shutdown for the grace period:\n%s", d.logText())
	}
}
