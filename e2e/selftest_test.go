package e2e

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/icebox-project/icebox/daemon"
	"github.com/icebox-project/icebox/turnsrv"
)

// TestSelfTest: the self-test passes against a running icebox and fails,
// naming the step, against a port where nothing listens.
func TestSelfTest(t *testing.T) {
	lane(t, laneLight)
	ib := startIcebox(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := ib.SelfTest(ctx)
	if err != nil {
		t.Fatalf("self-test against a healthy icebox: %v", err)
	}
	if !strings.HasPrefix(res.RelayedAddr, "127.0.0.1:") || res.RoundTripped <= 0 {
		t.Errorf("got %+v", res)
	}

	closed, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := closed.LocalAddr().(*net.UDPAddr).Port
	closed.Close()
	creds, err := daemon.Credentials(ib.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel2()
	_, err = turnsrv.SelfTest(ctx2, creds, "icebox", netip.MustParseAddr("127.0.0.1"), port)
	if err == nil || !strings.Contains(err.Error(), "allocate") {
		t.Errorf("self-test against a closed port: got %v, want an allocate error", err)
	}
}
