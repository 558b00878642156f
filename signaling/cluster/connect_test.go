package cluster

import (
	"bufio"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"
)

// fakeNATS serves NATS handshakes on 127.0.0.1: the first connection's
// PING is answered with first ("PING" as a server whose 2 s first ping
// came before its PONG, or an -ERR), later ones with PONG. It returns
// the URL and the count of connections accepted.
func fakeNATS(t *testing.T, first string) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var n atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			nth := n.Add(1)
			go func() {
				defer c.Close()
				c.Write([]byte(`INFO {"server_id":"fake","version":"2.15.2","proto":1,"max_payload":1048576}` + "\r\n"))
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if !strings.HasPrefix(line, "PING") {
						continue
					}
					reply := "PONG"
					if nth == 1 {
						reply = first
					}
					if _, err := c.Write([]byte(reply + "\r\n")); err != nil {
						return
					}
				}
			}()
		}
	}()
	return "nats://" + ln.Addr().String(), &n
}

// TestConnectAfterEarlyPing: a handshake that sees the server's PING
// before its PONG (nats-server's first ping, on a loaded machine) is
// tried again and connects; before, a node failed to start with "nats:
// expected 'PONG', got 'PING'" (TestForgedMessagesIgnored, once, under
// load).
func TestConnectAfterEarlyPing(t *testing.T) {
	url, n := fakeNATS(t, "PING")
	nc, err := connect(url, []nats.Option{nats.NoReconnect()})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	nc.Close()
	if got := n.Load(); got != 2 {
		t.Errorf("%d handshakes, want 2 (one retry)", got)
	}
}

// TestConnectRefusalNotRetried: a server's -ERR (a wrong password) is
// returned at once, not tried again.
func TestConnectRefusalNotRetried(t *testing.T) {
	url, n := fakeNATS(t, "-ERR 'Authorization Violation'")
	if _, err := connect(url, []nats.Option{nats.NoReconnect()}); err == nil || !strings.Contains(err.Error(), "Authorization Violation") {
		t.Fatalf("connect: %v, want an authorization error", err)
	}
	if got := n.Load(); got != 1 {
		t.Errorf("%d handshakes, want 1", got)
	}
}
