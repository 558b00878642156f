package main

import (
	"bufio"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/icebox-project/icebox/internal/testenv"
)

// TestMakeRunIgnoresInstalledConfig: `make run` starts icebox on the
// built-in defaults even where /etc/icebox/icebox.yaml exists (here a
// broken one, in a mount namespace of the test's own, over a tmpfs /etc),
// and says so; the same binary without its arguments reads that file and
// refuses it.
func TestMakeRunIgnoresInstalledConfig(t *testing.T) {
	testenv.Tool(t, "apt-get install make", "make")
	testenv.Require(t, os.Geteuid() == 0, "needs root for a mount namespace")
	testenv.Tool(t, "apt-get install util-linux", "unshare")
	testenv.Tool(t, "apt-get install iproute2", "ip")
	out, err := exec.Command("make", "-s", "-n", "-C", "../..", "run", "GO=go").Output()
	if err != nil {
		t.Fatalf("make -n run: %v", err)
	}
	line := strings.TrimSpace(string(out))
	args, ok := strings.CutPrefix(line, "go run ./cmd/icebox ")
	if !ok {
		t.Fatalf("make run runs %q, not go run ./cmd/icebox", line)
	}
	state := t.TempDir()
	args = strings.ReplaceAll(args, "-state-dir .state", "-state-dir "+state)
	setup := `mount -t tmpfs none /etc && mkdir /etc/icebox && echo 'bogus: [' > /etc/icebox/icebox.yaml && ip link set lo up && `

	// Without make run's arguments: the broken installed file is read.
	refused, err := exec.Command("unshare", "-m", "-n", "sh", "-c", setup+`exec "$0" -state-dir "$1"`, binary, state).CombinedOutput()
	if err == nil || !strings.Contains(string(refused), "/etc/icebox/icebox.yaml") {
		t.Fatalf("icebox without -config: %v, want it to refuse the installed file:\n%s", err, refused)
	}

	// With them: the defaults, said in the log.
	cmd := exec.Command("unshare", "-m", "-n", "sh", "-c", setup+`eval exec "$0" "$1"`, binary, args)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Signal(syscall.SIGTERM)
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	timeout := time.After(30 * time.Second)
	started := false
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("icebox ended before serving")
			}
			if strings.Contains(l, `msg="icebox starting"`) {
				started = true
				if !strings.Contains(l, `config="none: built-in defaults"`) {
					t.Errorf("start-up line %q does not say it runs on the defaults", l)
				}
			}
			if strings.Contains(l, `msg="http listening"`) {
				if !started {
					t.Error("no start-up line before serving")
				}
				if !strings.Contains(l, "addr=127.0.0.1:8080") {
					t.Errorf("%q: want the default 127.0.0.1:8080", l)
				}
				go func() {
					for range lines {
					}
				}()
				return
			}
		case <-timeout:
			t.Fatal("icebox did not serve within 30s")
		}
	}
}
