//go:build linux

package netlab

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestHelperProcess is not a test: the tests below run the test binary
// again with NETLAB_HELPER set, to be a test that fails or dies while it
// holds a namespace.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv("NETLAB_HELPER")
	if mode == "" {
		t.Skip("helper process only")
	}
	l := New(t)
	n := l.Netns(t, "helper")
	os.Stdout.WriteString("NETNS " + n.Name + "\n")
	switch mode {
	case "fail":
		t.Run("sub", func(t *testing.T) {
			sub := l.Netns(t, "sub")
			os.Stdout.WriteString("NETNS " + sub.Name + "\n")
			t.Fatal("failing on purpose, holding a namespace")
		})
	case "hang":
		select {} // until killed
	}
}

// helper starts the test binary as TestHelperProcess in mode and returns
// it with the name of the namespace it made.
func helper(t *testing.T, mode string) (*exec.Cmd, string, io.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "NETLAB_HELPER="+mode)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stdout)
	for {
		line, err := r.ReadString('\n')
		if name, ok := strings.CutPrefix(strings.TrimSpace(line), "NETNS "); ok {
			return cmd, name, r
		}
		if err != nil {
			_ = cmd.Wait()
			t.Fatalf("helper %s: no namespace reported: %v", mode, err)
		}
	}
}

func exists(name string) bool {
	_, err := os.Stat(filepath.Join(netnsDir, name))
	return !errors.Is(err, os.ErrNotExist)
}

// TestRemovedWhenTestFails: a test whose subtest fails still removes its
// namespaces, the subtest's and its own.
func TestRemovedWhenTestFails(t *testing.T) {
	New(t) // skips without root or tools
	cmd, name, rest := helper(t, "fail")
	out, _ := io.ReadAll(rest)
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || !strings.Contains(string(out), "failing on purpose") {
		t.Fatalf("helper: got %v, want it to fail on purpose:\n%s", err, out)
	}
	var sub string
	for line := range strings.Lines(string(out)) {
		if n, ok := strings.CutPrefix(strings.TrimSpace(line), "NETNS "); ok {
			sub = n
		}
	}
	if sub == "" {
		t.Fatalf("the subtest reported no namespace:\n%s", out)
	}
	for _, n := range []string{name, sub} {
		if !strings.HasPrefix(n, Prefix) {
			t.Errorf("namespace %q: want the prefix %q", n, Prefix)
		}
		if exists(n) {
			t.Errorf("namespace %s is left after its test failed", n)
			_ = deleteNetns(n)
		}
	}
}

// TestStaleRemoved: the namespaces of a process killed before its
// clean-up are removed by the next New, and those of a live process are
// not.
func TestStaleRemoved(t *testing.T) {
	New(t)
	live, liveName, _ := helper(t, "hang")
	t.Cleanup(func() {
		_ = live.Process.Kill()
		_ = live.Wait()
		_ = deleteNetns(liveName)
	})
	dead, deadName, _ := helper(t, "hang")
	if err := dead.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = dead.Wait()
	if !exists(deadName) {
		t.Fatalf("namespace %s went with its process; want it left behind to test the clean-up", deadName)
	}
	New(t)
	if exists(deadName) {
		t.Errorf("stale namespace %s of a killed process: still there after New", deadName)
		_ = deleteNetns(deadName)
	}
	if !exists(liveName) {
		t.Errorf("namespace %s of a live process was removed", liveName)
	}
}

// TestLink: a veth pair joins two namespaces, and the test dials into
// one of them (DialContext).
func TestLink(t *testing.T) {
	l := New(t)
	a, b := l.Netns(t, "a"), l.Netns(t, "b")
	Veth(t, a, "eth0", b, "eth0")
	a.IP(t, "addr add 192.0.2.1/24 dev eth0")
	b.IP(t, "addr add 192.0.2.2/24 dev eth0")
	var ln net.Listener
	if err := b.Do(func() (err error) { ln, err = net.Listen("tcp", "192.0.2.2:7000"); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	echo := func(c net.Conn) {
		t.Helper()
		defer c.Close()
		if _, err := c.Write([]byte("ping\n")); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil || line != "ping\n" {
			t.Fatalf("echo: got %q, %v", line, err)
		}
	}
	c, err := a.DialContext(t.Context(), "tcp", "192.0.2.2:7000")
	if err != nil {
		t.Fatalf("dial from a to b over the veth: %v", err)
	}
	echo(c)
}
