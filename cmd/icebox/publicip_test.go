package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/icebox-project/icebox/internal/testenv"
)

// netns is a network namespace the test made (ip netns add), with lo up
// and a veth pair inside it, one end at 10.9.8.7/24; removed when the
// test ends.
type netns struct {
	t    *testing.T
	name string
}

func newNetns(t *testing.T) *netns {
	t.Helper()
	testenv.Require(t, os.Geteuid() == 0, "needs root for a network namespace")
	testenv.Tool(t, "apt-get install iproute2", "ip")
	b := make([]byte, 4)
	rand.Read(b)
	ns := &netns{t: t, name: "icebox-pip-" + hex.EncodeToString(b)}
	ns.ip("netns", "add", ns.name)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns.name).Run() })
	ns.ip("-n", ns.name, "link", "set", "lo", "up")
	ns.ip("-n", ns.name, "link", "add", "v0", "type", "veth", "peer", "name", "v1")
	ns.ip("-n", ns.name, "addr", "add", "10.9.8.7/24", "dev", "v0")
	ns.ip("-n", ns.name, "link", "set", "v0", "up")
	ns.ip("-n", ns.name, "link", "set", "v1", "up")
	return ns
}

func (ns *netns) ip(args ...string) {
	ns.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		ns.t.Fatalf("ip %v: %v\n%s", args, err, out)
	}
}

// in runs f with this thread inside the namespace, for the socket calls
// only (a socket stays in the namespace it was made in), so nothing else
// of the test process ever sends from it. Errors: the namespace cannot be
// entered (f has not run).
func (ns *netns) in(f func()) error {
	runtime.LockOSThread()
	self, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer self.Close()
	target, err := os.Open("/run/netns/" + ns.name)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	f()
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: it dies with its goroutine rather than
		// run anything else in the wrong namespace.
		panic(fmt.Sprintf("back to the test's network namespace: %v", err))
	}
	runtime.UnlockOSThread()
	return nil
}

// listen opens a TCP listener at addr inside the namespace.
func (ns *netns) listen(addr string) net.Listener {
	ns.t.Helper()
	var ln net.Listener
	var lerr error
	if err := ns.in(func() { ln, lerr = net.Listen("tcp4", addr) }); err != nil { //nolint:noctx
		ns.t.Fatal(err)
	}
	if lerr != nil {
		ns.t.Fatal(lerr)
	}
	ns.t.Cleanup(func() { ln.Close() })
	return ln
}

// dial connects to addr inside the namespace (for http.Transport and
// websocket.Dialer); safe on any goroutine.
func (ns *netns) dial(ctx context.Context, network, addr string) (c net.Conn, err error) {
	if nerr := ns.in(func() { c, err = (&net.Dialer{}).DialContext(ctx, network, addr) }); nerr != nil {
		return nil, nerr
	}
	return c, err
}

// publicIPLine runs icebox with yml inside the namespace until it logs
// which public address it chose (and, when selfTest, until its start-up
// self-test has passed), stops it with SIGTERM, and returns that log line.
func (ns *netns) publicIPLine(yml string, selfTest ...bool) string {
	t := ns.t
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "icebox.yaml")
	yml += fmt.Sprintf("state_dir: %q\nmetrics:\n  listen: \"\"\nhttp:\n  listen: \"127.0.0.1:0\"\n", dir)
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", ns.name, binary, "-config", cfg)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	}()
	found, passed := make(chan string, 1), make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			switch l := sc.Text(); {
			case strings.Contains(l, `msg="public ip"`):
				found <- l
			case strings.Contains(l, `msg="self-test`):
				passed <- l
			}
		}
		close(found)
		close(passed)
	}()
	var line string
	timeout := time.After(30 * time.Second)
	select {
	case l, ok := <-found:
		if !ok {
			t.Fatal("icebox ended without logging its public ip")
		}
		t.Log(l)
		line = l
	case <-timeout:
		t.Fatal("no public ip line within 30s")
	}
	if len(selfTest) > 0 && selfTest[0] {
		select {
		case l := <-passed:
			if !strings.Contains(l, `msg="self-test passed"`) {
				t.Errorf("start-up self-test: %s", l)
			}
		case <-timeout:
			t.Fatal("no self-test line within 30s")
		}
	}
	return line
}

// TestPublicIPInNamespace runs icebox in a network namespace of the
// test's own, with an interface at 10.9.8.7 and, for public_ip:
// metadata, a fake instance metadata service on 169.254.169.254:80 inside
// that namespace (nothing is ever sent to that address from outside it):
// auto takes the loopback listener address (and the start-up self-test
// passes there, with no public_ip set), or the interface address
// when the listeners bind every address; metadata takes the fake's
// answer, and falls back to auto when the service does not answer or is
// not there; each logs where its address came from. With metadata the
// cluster heartbeat, the page, the API, welcome and icebox credentials all
// name the fake's answer.
func TestPublicIPInNamespace(t *testing.T) {
	ns := newNetns(t)
	t.Run("auto, loopback listeners", func(t *testing.T) {
		ns := &netns{t: t, name: ns.name}
		line := ns.publicIPLine("turn:\n  listen: [\"udp://127.0.0.1:3478\", \"tcp://127.0.0.1:3478\"]\n", true)
		want(t, line, "address=127.0.0.1", "source=listener", "public_ip=auto")
	})
	t.Run("auto, every address", func(t *testing.T) {
		ns := &netns{t: t, name: ns.name}
		line := ns.publicIPLine("public_ip: auto\nturn:\n  listen: [\"udp://0.0.0.0:3478\"]\n")
		want(t, line, "address=10.9.8.7", "source=interface", "public_ip=auto")
	})
	t.Run("metadata, nothing there", func(t *testing.T) {
		ns := &netns{t: t, name: ns.name}
		line := ns.publicIPLine("public_ip: metadata\nturn:\n  listen: [\"udp://127.0.0.1:3478\"]\n")
		want(t, line, "address=127.0.0.1", "source=listener", "public_ip=metadata", "metadata_error=")
	})

	ns.ip("-n", ns.name, "addr", "add", "169.254.169.254/32", "dev", "lo")
	ln := ns.listen("169.254.169.254:80")
	hang := make(chan struct{})
	defer close(hang)
	var silent atomic.Bool
	asked := make(chan string, 100)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked <- r.Method + " " + r.URL.Path
		if silent.Load() {
			select {
			case <-hang:
			case <-r.Context().Done():
			}
			return
		}
		switch r.Method + " " + r.URL.Path {
		case "PUT /latest/api/token":
			w.Write([]byte("fake-token"))
		case "GET /latest/meta-data/public-ipv4":
			if r.Header.Get("X-aws-ec2-metadata-token") != "fake-token" {
				http.Error(w, "no token", http.StatusUnauthorized)
				return
			}
			w.Write([]byte("203.0.113.77"))
		default:
			http.NotFound(w, r)
		}
	})}
	go srv.Serve(ln)
	defer srv.Close()

	t.Run("metadata, aws answers", func(t *testing.T) {
		ns := &netns{t: t, name: ns.name}
		line := ns.publicIPLine("public_ip: metadata\nturn:\n  listen: [\"udp://127.0.0.1:3478\"]\n")
		want(t, line, "address=203.0.113.77", "source=metadata", "provider=aws", "public_ip=metadata")
	})
	t.Run("metadata, one address everywhere", func(t *testing.T) {
		(&netns{t: t, name: ns.name}).sameAddressEverywhere("203.0.113.77")
	})
	t.Run("metadata, no answer in time", func(t *testing.T) {
		ns := &netns{t: t, name: ns.name}
		silent.Store(true)
		line := ns.publicIPLine("public_ip: metadata\nturn:\n  listen: [\"udp://0.0.0.0:3478\"]\n")
		want(t, line, "address=10.9.8.7", "source=interface", "public_ip=metadata", `metadata_error="publicip: no instance metadata service gave a public IPv4 address: none answered in time"`)
	})
	if len(asked) == 0 {
		t.Error("the fake metadata service was never asked")
	}
}

func want(t *testing.T, line string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(line, p) {
			t.Errorf("log line %q lacks %q", line, p)
		}
	}
}
