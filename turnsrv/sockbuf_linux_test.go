//go:build linux && (amd64 || arm64)

package turnsrv

import (
	"log/slog"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/icebox-project/icebox/turnsrv/internal/sockbuf"
)

// TestStartLogsSocketBuffers: a starting server says once what socket
// buffers its listener and relay sockets asked for and were granted (the
// kernel caps them without an error), not once per socket or allocation.
func TestStartLogsSocketBuffers(t *testing.T) {
	log := &lockedBuffer{}
	startServer(t, func(c *Config) {
		c.UDPSockets = 2
		c.Logger = slog.New(slog.NewTextHandler(log, nil))
	})
	asked := "recv_asked=" + strconv.Itoa(sockbuf.Size)
	for _, what := range []string{`sockets="turn listener"`, `sockets="turn relay"`} {
		var lines []string
		for _, l := range strings.Split(log.String(), "\n") {
			if strings.Contains(l, what) {
				lines = append(lines, l)
			}
		}
		if len(lines) != 1 {
			t.Errorf("%s: got %d lines, want 1:\n%s", what, len(lines), log)
			continue
		}
		if !strings.Contains(lines[0], asked) || !strings.Contains(lines[0], "recv_granted=") {
			t.Errorf("%s: %q lacks %s or recv_granted", what, lines[0], asked)
		}
	}
}

// TestPortRangeRelayBuffer: a relayed transport address of a TCP or TLS
// allocation (pion/turn's port range generator) asks for the receive
// buffer udprelay's sockets get, and gets what the kernel grants any
// socket (net.core.rmem_max): a burst from a peer waits there while the
// allocation's reader waits for the CPU. (It had the kernel's default,
// and coturn's client lost 4-6% of its echoes over TCP and TLS on a
// loaded machine.)
func TestPortRangeRelayBuffer(t *testing.T) {
	s := startServer(t, nil)
	gen := s.portRange()
	if err := gen.Validate(); err != nil {
		t.Fatal(err)
	}
	pc, _, err := gen.AllocatePacketConn("udp4", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	probe, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	granted := func(c net.PacketConn) (n int) {
		raw, err := c.(syscall.Conn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		_ = raw.Control(func(fd uintptr) {
			if sizes, err := sockbuf.Set(int(fd), sockbuf.Size, 0); err == nil {
				n = sizes.RecvGranted
			}
		})
		return n
	}
	var got int
	raw, _ := pc.(*countingConn).PacketConn.(syscall.Conn).SyscallConn()
	_ = raw.Control(func(fd uintptr) {
		v, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
		if err != nil {
			t.Fatal(err)
		}
		got = v / 2
	})
	if want := granted(probe); got != want {
		t.Errorf("the relay socket's receive buffer is %d bytes, want %d (what the kernel grants for %d)", got, want, sockbuf.Size)
	}
}
