package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/icebox-project/icebox/internal/testenv"
)

// firefox is a headless Firefox ESR with its fake camera and microphone,
// driven through e2e/js/firefox-driver.mjs (puppeteer-core over WebDriver
// BiDi): one JSON request a line on its stdin, one reply a line on its
// stdout. Its pages are driven the way the chromedp tabs are: evaluate
// an expression, wait for one to be true.
type firefox struct {
	cmd     *exec.Cmd
	in      io.WriteCloser
	replies chan ffReply // closed when the driver's stdout ends
	stderr  *syncBuffer
	exited  chan struct{}
	version string
	mu      sync.Mutex // one request at a time
	next    int
}

// ffReply is one line from the driver.
type ffReply struct {
	ID      int             `json:"id"`
	Value   json.RawMessage `json:"value"`
	Error   string          `json:"error"`
	Ready   bool            `json:"ready"`
	Version string          `json:"version"`
}

// syncBuffer is a bytes.Buffer that the driver's stderr may be written to
// while a test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// ffLaunchTimeout bounds Firefox's start (a few seconds, far more on a
// loaded machine); ffCallTimeout a request's answer beyond the wait it
// asks for.
const (
	ffLaunchTimeout = 2 * time.Minute
	ffCallTimeout   = 30 * time.Second
)

// newFirefox starts Firefox for the test and closes it when the test
// ends. Needs firefox-esr, node and the npm packages of package.json
// (make typecheck installs them); skipped locally without them, failed
// under CI=true.
func newFirefox(t *testing.T) *firefox {
	t.Helper()
	path := testenv.Tool(t, "apt-get install firefox-esr", "firefox-esr")
	node, root := puppeteerNode(t)
	cmd := exec.Command(node, filepath.Join(root, "e2e", "js", "firefox-driver.mjs"))
	cmd.Dir = root
	// TMPDIR: the profile puppeteer makes, removed with the test's.
	cmd.Env = append(os.Environ(), "FIREFOX="+path, "TMPDIR="+t.TempDir())
	f := &firefox{cmd: cmd, replies: make(chan ffReply, 1), stderr: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = f.stderr
	var err error
	if f.in, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", cmd, err)
	}
	// Ends when the driver's stdout closes: it exited, or was killed.
	go func() {
		defer close(f.replies)
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 64<<10), 16<<20)
		for sc.Scan() {
			var r ffReply
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				r = ffReply{ID: -1, Error: fmt.Sprintf("driver wrote %q: %v", sc.Text(), err)}
			}
			f.replies <- r
		}
	}()
	go func() { _ = cmd.Wait(); close(f.exited) }()
	t.Cleanup(func() { f.close(t) })
	select {
	case r, ok := <-f.replies:
		if !ok || !r.Ready {
			t.Fatalf("Firefox did not start: %s; stderr:\n%s", r.Error, f.stderr)
		}
		f.version = r.Version
	case <-time.After(ffLaunchTimeout):
		t.Fatalf("Firefox did not start within %v; stderr:\n%s", ffLaunchTimeout, f.stderr)
	}
	return f
}

// close ends the driver: end of stdin closes Firefox; SIGTERM (on which
// puppeteer closes it too), then SIGKILL, if it does not exit.
func (f *firefox) close(t *testing.T) {
	f.in.Close()
	for _, sig := range []os.Signal{nil, syscall.SIGTERM, os.Kill} {
		if sig != nil {
			_ = f.cmd.Process.Signal(sig)
		}
		select {
		case <-f.exited:
			return
		case <-time.After(10 * time.Second):
		}
	}
	t.Errorf("the Firefox driver did not exit; stderr:\n%s", f.stderr)
}

// call sends one request and returns its reply's value; wait is how long
// the request itself may take in the driver.
func (f *firefox) call(req map[string]any, wait time.Duration) (json.RawMessage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next++
	req["id"] = f.next
	line, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if _, err := f.in.Write(append(line, '\n')); err != nil {
		return nil, fmt.Errorf("writing to the Firefox driver: %w", err)
	}
	timeout := time.After(wait + ffCallTimeout)
	for {
		select {
		case r, ok := <-f.replies:
			if !ok {
				return nil, fmt.Errorf("the Firefox driver exited; stderr:\n%s", f.stderr)
			}
			if r.ID != f.next {
				if r.ID == -1 {
					return nil, fmt.Errorf("Firefox driver: %s", r.Error)
				}
				continue // the answer to a request given up on
			}
			if r.Error != "" {
				return nil, fmt.Errorf("%s", r.Error)
			}
			return r.Value, nil
		case <-timeout:
			return nil, fmt.Errorf("no answer from the Firefox driver within %v", wait+ffCallTimeout)
		}
	}
}

// ffPage is a page open in Firefox.
type ffPage struct {
	f   *firefox
	n   int
	url string
}

// open opens url in a new page, closed when the test ends; its console is
// logged if the test failed.
func (f *firefox) open(t *testing.T, url string) *ffPage {
	t.Helper()
	v, err := f.call(map[string]any{"op": "open", "url": url}, 30*time.Second)
	if err != nil {
		t.Fatalf("open %s in Firefox: %v", url, err)
	}
	p := &ffPage{f: f, url: url}
	if err := json.Unmarshal(v, &p.n); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			if v, err := f.call(map[string]any{"op": "console", "page": p.n}, 0); err == nil {
				var lines []string
				_ = json.Unmarshal(v, &lines)
				t.Logf("Firefox's console of %s:\n%s", url, strings.Join(lines, "\n"))
			}
		}
		if _, err := f.call(map[string]any{"op": "close", "page": p.n}, 10*time.Second); err != nil {
			t.Logf("closing Firefox's page: %v", err)
		}
	})
	return p
}

// ffEval evaluates expr in p (a promise is awaited) and returns its value.
func ffEval[T any](t *testing.T, p *ffPage, expr string) T {
	t.Helper()
	var out T
	v, err := p.f.call(map[string]any{"op": "eval", "page": p.n, "expr": expr}, 10*time.Second)
	if err == nil {
		err = json.Unmarshal(v, &out)
	}
	if err != nil {
		t.Fatalf("Firefox: %s: %v", expr, err)
	}
	return out
}

// waitFor waits up to 10 s until expr is true in p.
func (p *ffPage) waitFor(t *testing.T, what, expr string) {
	t.Helper()
	p.waitForWithin(t, what, expr, 10*time.Second)
}

// waitForWithin waits up to d until expr is true in p.
func (p *ffPage) waitForWithin(t *testing.T, what, expr string, d time.Duration) {
	t.Helper()
	if _, err := p.f.call(map[string]any{"op": "wait", "page": p.n, "expr": expr, "ms": d.Milliseconds()}, d); err != nil {
		t.Fatalf("Firefox: %s: not within %v (%v)", what, d, err)
	}
}

// click clicks the element id in p, which must be shown.
func (p *ffPage) click(t *testing.T, id string) {
	t.Helper()
	if !ffEval[bool](t, p, `(() => { const b = document.getElementById(`+jsString(id)+`); if (b.hidden) return false; b.click(); return true; })()`) {
		t.Fatalf("Firefox: #%s is hidden", id)
	}
}

// puppeteerNode is node's path and the repository root, whose
// node_modules must hold puppeteer-core (skipped locally without them,
// failed under CI=true).
func puppeteerNode(t *testing.T) (node, root string) {
	t.Helper()
	node = testenv.Tool(t, "apt-get install nodejs npm", "node", "nodejs")
	var err error
	root, err = filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	_, err = os.Stat(filepath.Join(root, "node_modules", "puppeteer-core", "package.json"))
	testenv.Require(t, err == nil, "puppeteer-core is not installed (`make typecheck` or `npm ci` at the repository root)")
	return node, root
}
