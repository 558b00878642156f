package e2e

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/icebox-project/icebox/config"
	"gopkg.in/yaml.v3"
)

// built holds the binaries buildBinary made, by package path, for the
// whole test binary's run, in a directory TestMain removes at the end.
var built struct {
	sync.Mutex
	dir  string
	bins map[string]string
}

// buildBinary builds the command in pkg (a path relative to e2e, such as
// ../cmd/icebox) without the race detector, once per test binary's run,
// and returns its path. A child process runs as users run it: an
// acceptance test of capacity measures icebox, not the race detector.
func buildBinary(t *testing.T, pkg string) string {
	t.Helper()
	built.Lock()
	defer built.Unlock()
	if bin, ok := built.bins[pkg]; ok {
		return bin
	}
	if built.dir == "" {
		dir, err := os.MkdirTemp("", "icebox-e2e-bin-")
		if err != nil {
			t.Fatal(err)
		}
		built.dir, built.bins = dir, map[string]string{}
	}
	bin := filepath.Join(built.dir, filepath.Base(pkg))
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	built.bins[pkg] = bin
	return bin
}

// removeBuilt removes buildBinary's directory (TestMain, at the end).
func removeBuilt() {
	built.Lock()
	defer built.Unlock()
	if built.dir != "" {
		_ = os.RemoveAll(built.dir)
	}
}

// childIcebox is the icebox binary running as a child process, for what
// cannot be done to a daemon inside the test process (its own
// RLIMIT_NOFILE) or should not be (the SFU of a crowd, at full speed).
type childIcebox struct {
	cmd     *exec.Cmd
	mu      sync.Mutex
	log     bytes.Buffer
	http    string // the HTTP listener's address
	turnTCP string // the TURN TCP listener's, when it has one
	metrics string // the metrics listener's, when it has one
	cluster string // the cluster listener's, when it has one
	exited  chan struct{}
}

// kill ends the child with SIGKILL, as a crash would, and waits until
// it has exited.
func (c *childIcebox) kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.exited
}

// childConfig is the config file of a child icebox configured as
// e2eConfig(t, mod) configures one in the test process.
func childConfig(t *testing.T, mod func(*config.Config)) string {
	t.Helper()
	out, err := yaml.Marshal(e2eConfig(t, mod))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func (c *childIcebox) logText() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.log.String()
}

var (
	tcpListenLine     = regexp.MustCompile(`msg="turn listening".* network=tcp bind=(\S+)`)
	metricsListenLine = regexp.MustCompile(`msg="metrics listening".* addr=(\S+)`)
	httpListenLine    = regexp.MustCompile(`msg="http listening".* addr=(\S+)`)
	clusterListenLine = regexp.MustCompile(`msg="cluster listening".* addr=(\S+)`)
)

// startChildIcebox builds icebox and runs it with yml as its config
// file, wrapped in wrapper (a command and arguments that end by running
// the icebox command line given after them), until the test ends. It
// returns once HTTP listens.
func startChildIcebox(t *testing.T, yml string, wrapper ...string) *childIcebox {
	t.Helper()
	bin := buildBinary(t, "../cmd/icebox")
	cfgPath := filepath.Join(t.TempDir(), "icebox.yaml")
	if err := os.WriteFile(cfgPath, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append(append([]string(nil), wrapper...), bin, "-config", cfgPath)
	c := &childIcebox{cmd: exec.Command(args[0], args[1:]...)}
	// Two relay loops whatever the machine, so start-up fits a small
	// descriptor limit.
	c.cmd.Env = append(os.Environ(), "GOMAXPROCS=2")
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	c.exited = exited
	t.Cleanup(func() {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			c.cmd.Process.Kill()
			<-exited
			t.Errorf("icebox did not stop on SIGTERM:\n%s", c.logText())
		}
	})
	ready := make(chan struct{})
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stderr)
		readyClosed := false
		for sc.Scan() {
			line := sc.Text()
			c.mu.Lock()
			c.log.WriteString(line + "\n")
			if m := tcpListenLine.FindStringSubmatch(line); m != nil {
				c.turnTCP = m[1]
			}
			if m := metricsListenLine.FindStringSubmatch(line); m != nil {
				c.metrics = m[1]
			}
			if m := clusterListenLine.FindStringSubmatch(line); m != nil {
				c.cluster = m[1]
			}
			if m := httpListenLine.FindStringSubmatch(line); m != nil && !readyClosed {
				c.http = m[1]
				readyClosed = true
				close(ready)
			}
			c.mu.Unlock()
		}
		_ = c.cmd.Wait()
	}()
	select {
	case <-ready:
	case <-exited:
		t.Fatalf("icebox exited at start-up:\n%s", c.logText())
	case <-time.After(20 * time.Second):
		t.Fatalf("icebox did not start:\n%s", c.logText())
	}
	return c
}

func TestMain(m *testing.M) {
	code := m.Run()
	removeBuilt()
	os.Exit(code)
}
