//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/icebox-project/icebox/internal/netlab"
)

// The processes of the NAT lab: icebox in a server namespace, natpeer in
// client namespaces.

// labIcebox is icebox running inside a lab namespace.
type labIcebox struct {
	ns  *netlab.Netns
	cmd *exec.Cmd

	mu      sync.Mutex
	log     bytes.Buffer
	changed chan struct{} // closed and replaced at each log line
	exited  bool
}

// startIcebox runs the lab's icebox binary in ns with yml as its
// config file until t ends, and waits until it serves HTTP.
func (nl *natLab) startIcebox(t *testing.T, ns *netlab.Netns, yml string) *labIcebox {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "icebox.yaml")
	if err := os.WriteFile(cfg, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	ib := &labIcebox{ns: ns, cmd: ns.Command(nl.bins.icebox, "-config", cfg), changed: make(chan struct{})}
	ib.cmd.Env = append(os.Environ(), "GOMAXPROCS=2")
	stderr, err := ib.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := ib.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			ib.mu.Lock()
			ib.log.WriteString(sc.Text() + "\n")
			close(ib.changed)
			ib.changed = make(chan struct{})
			ib.mu.Unlock()
		}
		_ = ib.cmd.Wait()
		ib.mu.Lock()
		ib.exited = true
		close(ib.changed)
		ib.changed = make(chan struct{})
		ib.mu.Unlock()
	}()
	t.Cleanup(func() {
		_ = ib.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
			if code := ib.cmd.ProcessState.ExitCode(); code != 0 {
				t.Errorf("icebox in %s exited %d after SIGTERM:\n%s", ns.Name, code, ib.logText())
			}
		case <-time.After(10 * time.Second):
			_ = ib.cmd.Process.Kill()
			<-done
			t.Errorf("icebox in %s did not stop on SIGTERM:\n%s", ns.Name, ib.logText())
		}
	})
	ib.waitLog(t, httpListenLine, 20*time.Second)
	nl.mu.Lock()
	nl.iceboxes = append(nl.iceboxes, ib)
	nl.mu.Unlock()
	return ib
}

func (ib *labIcebox) logText() string {
	ib.mu.Lock()
	defer ib.mu.Unlock()
	return ib.log.String()
}

// waitLog waits for a log line matching re and returns its submatches.
func (ib *labIcebox) waitLog(t *testing.T, re *regexp.Regexp, within time.Duration) []string {
	t.Helper()
	deadline := time.After(within)
	for {
		ib.mu.Lock()
		m := re.FindStringSubmatch(ib.log.String())
		exited, changed := ib.exited, ib.changed
		ib.mu.Unlock()
		switch {
		case m != nil:
			return m
		case exited:
			t.Fatalf("icebox in %s exited; no log line %q:\n%s", ib.ns.Name, re, ib.logText())
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("icebox in %s: no log line %q within %s:\n%s", ib.ns.Name, re, within, ib.logText())
		}
	}
}

// peerCandidate and peerReport mirror natpeer's Candidate and Report.
type peerCandidate struct {
	Type          string `json:"type"`
	Address       string `json:"address"`
	Protocol      string `json:"protocol"`
	RelayProtocol string `json:"relayProtocol"`
}

type peerReport struct {
	Name     string         `json:"name"`
	Policy   string         `json:"policy"`
	URLs     []string       `json:"urls"`
	Local    *peerCandidate `json:"local"`
	Remote   *peerCandidate `json:"remote"`
	Gathered []string       `json:"gathered"`
	ICEState string         `json:"iceState"`
	Received []string       `json:"received"`
	Error    string         `json:"error"`
}

func (c *peerCandidate) String() string {
	if c == nil {
		return "none"
	}
	s := c.Type + " " + c.Protocol + " " + c.Address
	if c.RelayProtocol != "" {
		s += " (relay over " + c.RelayProtocol + ")"
	}
	return s
}

// addr is the candidate's IP address.
func (c *peerCandidate) addr() netip.Addr {
	ap, err := netip.ParseAddrPort(c.Address)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr()
}

// pair is the selected pair as the report lists it.
func (r peerReport) pair() string { return r.Local.String() + " → " + r.Remote.String() }

// natPeer is a running natpeer.
type natPeer struct {
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr bytes.Buffer // written only until the process is waited for
	report chan peerReport
	done   chan struct{}
}

// startPeer runs natpeer in ns for page, named name, with args added,
// until t ends. It trusts the lab's CA alone (SSL_CERT_FILE).
func (nl *natLab) startPeer(t *testing.T, ns *netlab.Netns, page, name string, args ...string) *natPeer {
	t.Helper()
	p := &natPeer{name: name, cmd: ns.Command(nl.bins.natpeer, append([]string{"-page", page, "-name", name, "-timeout", "40s"}, args...)...),
		report: make(chan peerReport, 1), done: make(chan struct{})}
	// pion's warnings go to stderr, shown when a call fails.
	p.cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+nl.caFile, "PION_LOG_WARN=all")
	p.cmd.Stderr = &p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		var r peerReport
		line, err := bufio.NewReader(stdout).ReadBytes('\n')
		if err == nil {
			err = json.Unmarshal(line, &r)
		}
		if err != nil {
			r = peerReport{Name: name, Error: fmt.Sprintf("no report: %v (%q)", err, line)}
		}
		p.report <- r
		_, _ = io.Copy(io.Discard, stdout)
		_ = p.cmd.Wait()
	}()
	t.Cleanup(func() {
		p.stdin.Close()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// call runs natpeers a and b in their namespaces for page and returns
// their reports, failing t (with both reports and the peers' logs) if
// either did not finish the data channel exchange.
func (nl *natLab) call(t *testing.T, a, b *netlab.Netns, page string) (ra, rb peerReport) {
	t.Helper()
	return nl.callWith(t, a, b, page, nil, nil)
}

// callWith is call with natpeer arguments added for a and for b (-sfu:
// both publish to the SFU and report once the other's video comes).
func (nl *natLab) callWith(t *testing.T, a, b *netlab.Netns, page string, argsA, argsB []string) (ra, rb peerReport) {
	t.Helper()
	pa := nl.startPeer(t, a, page, "a", argsA...)
	pb := nl.startPeer(t, b, page, "b", argsB...)
	timeout := time.After(60 * time.Second)
	for _, x := range []struct {
		p *natPeer
		r *peerReport
	}{{pa, &ra}, {pb, &rb}} {
		select {
		case *x.r = <-x.p.report:
		case <-timeout:
			t.Fatalf("natpeer %s: no report in 60 s", x.p.name)
		}
	}
	// Both have reported: let them leave (natpeer gives up closing after
	// 3 s), then read their logs.
	for _, p := range []*natPeer{pa, pb} {
		p.stdin.Close()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
			t.Errorf("natpeer %s did not leave within 10 s:\n%s", p.name, tailLines(p.stderr.String(), 30))
		}
	}
	if ra.Error != "" || rb.Error != "" || ra.Local == nil || rb.Local == nil {
		t.Fatalf("the call did not complete:\na: %+v\nb: %+v\na's log:\n%s\nb's log:\n%s%s",
			ra, rb, tailLines(pa.stderr.String(), 30), tailLines(pb.stderr.String(), 30), nl.iceboxLogs())
	}
	t.Logf("a: %s (gathered %s)", ra.pair(), strings.Join(ra.Gathered, ", "))
	t.Logf("b: %s (gathered %s)", rb.pair(), strings.Join(rb.Gathered, ", "))
	return ra, rb
}

// iceboxLogs is the end of every lab icebox's log.
func (nl *natLab) iceboxLogs() string {
	nl.mu.Lock()
	defer nl.mu.Unlock()
	var b strings.Builder
	for _, ib := range nl.iceboxes {
		fmt.Fprintf(&b, "\nicebox in %s:\n%s", ib.ns.Name, tailLines(ib.logText(), 40))
	}
	return b.String()
}

// tailLines is the last n lines of s.
func tailLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
