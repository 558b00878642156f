//go:build linux

package netlab

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/icebox-project/icebox/internal/testenv"
)

// Prefix starts the name of every namespace a Lab makes.
const Prefix = "iblab-"

// netnsDir is where ip netns keeps its named namespaces.
const netnsDir = "/run/netns"

// Lab makes namespaces for one test and removes them after it.
type Lab struct {
	mu   sync.Mutex
	live map[string]*Netns
}

// seq numbers the namespaces of the process, across its labs (tests in
// parallel each have one).
var seq atomic.Int64

// New checks that the lab can be built here (root, ip, nft), removes
// stale namespaces of dead processes, and returns an empty lab whose
// namespaces are all gone when t ends.
func New(t testing.TB) *Lab {
	t.Helper()
	testenv.Require(t, os.Geteuid() == 0, "network namespaces need root")
	testenv.Tool(t, "apt-get install iproute2", "ip")
	testenv.Tool(t, "apt-get install nftables", "nft")
	removeStale(t)
	l := &Lab{live: map[string]*Netns{}}
	t.Cleanup(func() {
		l.mu.Lock()
		left := make([]*Netns, 0, len(l.live))
		for _, n := range l.live {
			left = append(left, n)
		}
		l.mu.Unlock()
		for _, n := range left {
			if err := n.delete(); err != nil {
				t.Errorf("netlab: %v", err)
			}
		}
	})
	return l
}

var roleRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,30}$`)

// Netns makes a namespace for role (lower-case letters, digits and
// dashes) with its loopback up, and settings its interfaces inherit (set
// before there are any, as a setting on "all" does not override an
// interface's own for every key):
//   - IPv6 off: the lab is IPv4, and IPv6 link-local addresses coming up
//     on its links a moment later would look like a network change to a
//     browser started meanwhile (Chromium aborts a page load with
//     ERR_NETWORK_CHANGED);
//   - no ICMP redirects sent or taken: a router whose two subnets share
//     one bridge would tell hosts to bypass it, and the lab's paths would
//     depend on what was sent before;
//   - no reverse path filtering: a hairpin NAT sends packets back the way
//     they came.
//
// It is deleted when t ends, after the clean-ups registered later (the
// processes started in it) have run.
func (l *Lab) Netns(t testing.TB, role string) *Netns {
	t.Helper()
	if !roleRe.MatchString(role) {
		t.Fatalf("netlab: role %q: want 1 to 31 of a-z 0-9 -", role)
	}
	l.mu.Lock()
	n := &Netns{Name: fmt.Sprintf("%s%d-%d-%s", Prefix, os.Getpid(), seq.Add(1), role), lab: l}
	l.live[n.Name] = n
	l.mu.Unlock()
	if out, err := exec.Command("ip", "netns", "add", n.Name).CombinedOutput(); err != nil {
		l.forget(n)
		t.Fatalf("netlab: ip netns add %s: %v: %s", n.Name, err, out)
	}
	t.Cleanup(func() {
		if err := n.delete(); err != nil {
			t.Errorf("netlab: %v", err)
		}
	})
	if _, err := os.Stat("/proc/sys/net/ipv6"); err == nil {
		n.Sysctl(t, "net.ipv6.conf.all.disable_ipv6", "1")
		n.Sysctl(t, "net.ipv6.conf.default.disable_ipv6", "1")
	}
	for _, k := range []string{"all", "default"} {
		n.Sysctl(t, "net.ipv4.conf."+k+".send_redirects", "0")
		n.Sysctl(t, "net.ipv4.conf."+k+".accept_redirects", "0")
		n.Sysctl(t, "net.ipv4.conf."+k+".rp_filter", "0")
	}
	n.IP(t, "link set lo up")
	return n
}

func (l *Lab) forget(n *Netns) {
	l.mu.Lock()
	delete(l.live, n.Name)
	l.mu.Unlock()
}

// Netns is one network namespace of a Lab.
type Netns struct {
	Name string // as ip netns knows it
	lab  *Lab
	once sync.Once
	err  error
}

// delete ends what still runs inside n and removes it; once.
func (n *Netns) delete() error {
	n.once.Do(func() {
		n.lab.forget(n)
		n.err = deleteNetns(n.Name)
	})
	return n.err
}

// deleteNetns kills the processes left in the namespace name (they were
// started in it by the lab's own test) and deletes it.
func deleteNetns(name string) error {
	if out, err := exec.Command("ip", "netns", "pids", name).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
		if _, statErr := os.Stat(filepath.Join(netnsDir, name)); errors.Is(statErr, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("ip netns del %s: %v: %s", name, err, out)
	}
	return nil
}

// removeStale deletes the lab namespaces whose owner process is gone.
func removeStale(t testing.TB) {
	entries, err := os.ReadDir(netnsDir)
	if err != nil {
		return // no named namespace at all yet
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), Prefix)
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err == nil && (pid == os.Getpid() || processAlive(pid)) {
			continue
		}
		if err := deleteNetns(e.Name()); err != nil {
			t.Logf("netlab: stale namespace: %v", err)
			continue
		}
		t.Logf("netlab: removed %s, left by process %s", e.Name(), pidText)
	}
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// IP runs ip commands (without the leading "ip", such as "addr add
// 10.0.0.1/24 dev eth0") in n, as one batch, failing t on the first error.
func (n *Netns) IP(t testing.TB, cmds ...string) {
	t.Helper()
	cmd := exec.Command("ip", "-n", n.Name, "-batch", "-")
	cmd.Stdin = strings.NewReader(strings.Join(cmds, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("netlab: ip -n %s: %v: %s\nbatch:\n%s", n.Name, err, out, strings.Join(cmds, "\n"))
	}
}

// Nft loads an nftables ruleset (nft -f syntax) into n.
func (n *Netns) Nft(t testing.TB, ruleset string) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", n.Name, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("netlab: nft in %s: %v: %s\nruleset:\n%s", n.Name, err, out, ruleset)
	}
}

// Sysctl sets sysctl key (dotted, such as "net.ipv4.ip_forward") to
// value in n. Only the per-namespace net.* keys make sense.
func (n *Netns) Sysctl(t testing.TB, key, value string) {
	t.Helper()
	path := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	err := n.Do(func() error { return os.WriteFile(path, []byte(value), 0o644) })
	if err != nil {
		t.Fatalf("netlab: sysctl %s=%s in %s: %v", key, value, n.Name, err)
	}
}

// Router makes n forward IPv4 packets (no redirects, no reverse path
// filtering: see Lab.Netns).
func (n *Netns) Router(t testing.TB) {
	t.Helper()
	n.Sysctl(t, "net.ipv4.ip_forward", "1")
}

// Veth joins a and b with a veth pair: aIf in a, bIf in b, both up.
// Neither end is ever in the test's own namespace.
func Veth(t testing.TB, a *Netns, aIf string, b *Netns, bIf string) {
	t.Helper()
	a.IP(t, fmt.Sprintf("link add %s type veth peer name %s netns %s", aIf, bIf, b.Name),
		"link set "+aIf+" up")
	b.IP(t, "link set "+bIf+" up")
}

// Command returns cmd to run name with args inside n (ip netns exec).
// The process is killed if the test process dies first.
func (n *Netns) Command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	n.Wrap(cmd)
	return cmd
}

// Wrap makes cmd, not started yet, run inside n: it becomes ip netns
// exec n cmd…, which keeps the process id, the environment and the open
// files (ExtraFiles too). The process is killed if the thread that
// starts it ends (Pdeathsig; see os/exec and go.dev/issue/27505).
func (n *Netns) Wrap(cmd *exec.Cmd) {
	ip, err := exec.LookPath("ip")
	if err != nil {
		ip = "ip" // Start fails, saying so
	}
	cmd.Args = append([]string{"ip", "netns", "exec", n.Name, cmd.Path}, cmd.Args[1:]...)
	cmd.Path = ip
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
}

// Do runs fn on an OS thread that has entered n, then returns the thread
// to the test's namespace. Sockets fn creates stay in n for their life.
// A thread that cannot get back is not reused (it ends with fn's
// goroutine).
func (n *Netns) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		back, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer back.Close()
		target, err := os.Open(filepath.Join(netnsDir, n.Name))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", n.Name, err)
			return
		}
		err = fn()
		if unix.Setns(int(back.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// DialContext dials addr from inside n (a net.Dialer's DialContext).
func (n *Netns) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() error {
		var err error
		c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// HTTPClient is an HTTP client whose connections start inside n; tlsConf
// may be nil. It follows no redirect.
func (n *Netns) HTTPClient(tlsConf *tls.Config) *http.Client {
	return &http.Client{
		Transport: &http.Transport{DialContext: n.DialContext, TLSClientConfig: tlsConf, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
