package turnsrv

import (
	"bytes"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v3"

	"github.com/icebox-project/icebox/internal/pionlog"
)

// lockedBuffer is a log destination safe for the server's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestPeerDenialSummary: refused peers (a browser's private host
// candidates, in every call) are not logged one by one at info, but
// summed up in one info line a minute, and only when there were some.
func TestPeerDenialSummary(t *testing.T) {
	log := &lockedBuffer{}
	s := startServer(t, func(c *Config) {
		c.DenyPeers, c.AllowPeers = recommended(), nil
		c.Logger = slog.New(slog.NewTextHandler(log, nil)) // info and above
	})
	t0 := time.Now()
	s.denials.mu.Lock()
	s.denials.at, s.denials.count = t0, s.stats.PeerDenials.Load()
	s.denials.mu.Unlock()

	user, pass, _ := s.cfg.Credentials.Mint("browser", time.Now())
	sess := newRawSession(t, s.udp, user, pass)
	if code := sess.request(stun.MethodAllocate, udpTransport); code != 0 {
		t.Fatalf("Allocate: %d", code)
	}
	for _, peer := range []string{"192.168.1.20:50000", "10.0.0.7:50001", "172.17.0.1:50002"} {
		if got := sess.request(stun.MethodCreatePermission, peerAddr(netip.MustParseAddrPort(peer))); got != 403 {
			t.Fatalf("CreatePermission %s: got %d, want 403", peer, got)
		}
	}
	if strings.Contains(log.String(), "turn peer denied") {
		t.Errorf("refused peers logged one by one at info:\n%s", log)
	}
	s.peerDenialSummary(t0.Add(30 * time.Second)) // not a minute yet
	if strings.Contains(log.String(), "turn peers refused") {
		t.Fatalf("summary before the minute was over:\n%s", log)
	}
	s.peerDenialSummary(t0.Add(time.Minute))
	if got := strings.Count(log.String(), `msg="turn peers refused" count=3 `); got != 1 {
		t.Fatalf("want one summary of 3 refusals, got %d:\n%s", got, log)
	}
	s.peerDenialSummary(t0.Add(2 * time.Minute)) // none since
	if got := strings.Count(log.String(), `msg="turn peers refused"`); got != 1 {
		t.Errorf("a summary of nothing was logged:\n%s", log)
	}
}

// TestCloseNotifyAtDebug: pion's error for closing a connection whose
// TLS client had already left goes to debug; other errors stay errors.
func TestCloseNotifyAtDebug(t *testing.T) {
	log := &lockedBuffer{}
	l := pionlog.Factory{Log: slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))}.NewLogger("turn")
	gone := errors.New("tls: failed to send closeNotify alert (but connection was closed anyway): write tcp 127.0.0.1:443->127.0.0.1:5000: write: broken pipe")
	l.Errorf("Failed to close conn: %s", gone)
	l.Errorf("Failed to close conn: %s", errors.New("write tcp: connection reset by peer"))
	l.Errorf("Failed to close AllocationManager: %s", errors.New("boom"))
	out := log.String()
	if got := strings.Count(out, "level=DEBUG msg=\"Failed to close conn"); got != 2 {
		t.Errorf("close of a gone client: %d lines at debug, want 2:\n%s", got, out)
	}
	if !strings.Contains(out, `level=ERROR msg="Failed to close AllocationManager: boom"`) {
		t.Errorf("other errors must stay errors:\n%s", out)
	}
}
