//go:build linux

package turnsrv

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"syscall"
	"testing"

	"github.com/icebox-project/icebox/internal/netlab"
	"github.com/icebox-project/icebox/internal/turntest"
)

// TestTCPConnectionsIPv6AggregateSockets: real TCP connections from 256
// /64s of one /56 (addresses on lo in a network namespace of the test's
// own) to a TURN TCP listener. With max_tcp_connections_per_ip 2, the
// first 8 /64s get 2 connections each and the rest of the /56 none; a
// client of another /48 still gets in.
func TestTCPConnectionsIPv6AggregateSockets(t *testing.T) {
	lab := netlab.New(t)
	ns := lab.Netns(t, "v6agg")
	for _, k := range []string{"all", "default", "lo"} {
		ns.Sysctl(t, "net.ipv6.conf."+k+".disable_ipv6", "0")
	}
	const server, outsider = "2001:db8:ffff::1", "2001:db8:2::1"
	cmds := []string{"addr add " + server + "/128 dev lo nodad", "addr add " + outsider + "/128 dev lo nodad"}
	for i := range 256 {
		cmds = append(cmds, fmt.Sprintf("addr add %s/128 dev lo nodad", slash56(i)))
	}
	ns.IP(t, cmds...)

	const perIP = 2
	creds, err := NewCredentials(realm, []string{secretA}, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	var s *Server
	if err := ns.Do(func() error {
		s, err = New(Config{
			Realm: realm, Credentials: creds,
			Listeners: []Listener{{Network: "tcp", Addr: "[" + server + "]:0"}},
			PublicIP:  netip.MustParseAddr("127.0.0.1"), RelayMinPort: 20000, RelayMaxPort: 29999,
			MaxTCPConnectionsPerIP: perIP,
			Logger:                 slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	addr := s.Addrs()[0].String()

	// dial connects from src inside the namespace; nil: reset at once.
	dial := func(src netip.Addr) net.Conn {
		t.Helper()
		var c net.Conn
		err := ns.Do(func() error {
			var err error
			c, err = (&net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}).Dial("tcp", addr)
			return err
		})
		if errors.Is(err, syscall.ECONNRESET) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// served says whether c answers a Binding request, or was closed by
	// the server unserved.
	served := func(c net.Conn) bool {
		t.Helper()
		if c == nil {
			return false
		}
		if err := turntest.TCPBinding(c, closeGuard); err == nil {
			return true
		}
		waitClosedByServer(t, c)
		return false
	}
	admitted := 0
	for i := range 256 {
		for range perIP {
			if served(dial(slash56(i))) {
				admitted++
			}
		}
	}
	if want := perIP * 8; admitted != want {
		t.Errorf("connections from 256 /64s of one /56: got %d served, want %d (8 × max_tcp_connections_per_ip)", admitted, want)
	}
	if got, want := s.Stats().TCPRefusedPerIPv6Aggregate.Load(), int64(256*perIP-perIP*8); got != want {
		t.Errorf("TCPRefusedPerIPv6Aggregate: got %d, want %d", got, want)
	}
	if !served(dial(netip.MustParseAddr(outsider))) {
		t.Error("a client of another /48 was refused")
	}
}
