package main

import (
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/turn/v4"

	"github.com/icebox-project/icebox/turnsrv"
)

// startServerFor runs a TURN server on 127.0.0.1 port 0 with one secret
// and returns its UDP address.
func startServerFor(t *testing.T, secret string) string {
	t.Helper()
	creds, err := turnsrv.NewCredentials("icebox", []string{secret}, time.Hour, nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := turnsrv.New(turnsrv.Config{
		Realm: "icebox", Listeners: []turnsrv.Listener{{Network: "udp", Addr: "127.0.0.1:0"}},
		PublicIP: netip.MustParseAddr("127.0.0.1"), Credentials: creds,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s.Addrs()[0].String()
}

// allocate makes one allocation with a pion TURN client.
func allocate(t *testing.T, server, username, password string) {
	t.Helper()
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c, err := turn.NewClient(&turn.ClientConfig{STUNServerAddr: server, TURNServerAddr: server, Conn: conn,
		Username: username, Password: password, Realm: "icebox"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	relay, err := c.Allocate()
	if err != nil {
		t.Fatalf("Allocate: %v", err)
	}
	relay.Close()
}
