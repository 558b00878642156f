package main

import (
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"time"

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
