package sockbuf

import (
	"bytes"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// sysctl reads an integer from /proc/sys/net/core.
func sysctl(t *testing.T, name string) int {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/net/core/" + name)
	if err != nil {
		t.Skipf("reading net.core.%s: %v", name, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatalf("net.core.%s: %v", name, err)
	}
	return n
}

// udpFD opens a real UDP socket on 127.0.0.1 port 0 and returns its raw
// connection.
func udpFD(t *testing.T) syscall.RawConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return rc
}

// TestSetReadsBackGranted asks a real socket for buffers within and beyond
// the kernel's caps and checks that Set reports what the kernel granted:
// the request in full when it is within net.core.{r,w}mem_max, the cap
// when it is beyond.
func TestSetReadsBackGranted(t *testing.T) {
	rmax, wmax := sysctl(t, "rmem_max"), sysctl(t, "wmem_max")
	const small = 64 << 10 // above the kernel's minimum, below any rmem_max it ships with
	if rmax < small || wmax < small {
		t.Skipf("rmem_max %d / wmem_max %d below %d", rmax, wmax, small)
	}
	for _, tc := range []struct {
		name               string
		recv, send         int
		wantRecv, wantSend int
		wantShort          bool
	}{
		{"within caps", small, small, small, small, false},
		{"beyond caps", 2 * rmax, 2 * wmax, rmax, wmax, true},
		{"receive only, beyond", 2 * rmax, 0, rmax, -1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got Sizes
			var err error
			if cerr := udpFD(t).Control(func(fd uintptr) { got, err = Set(int(fd), tc.recv, tc.send) }); cerr != nil {
				t.Fatal(cerr)
			}
			if err != nil {
				t.Fatalf("Set: %v", err)
			}
			if got.RecvAsked != tc.recv || got.SendAsked != tc.send {
				t.Errorf("asked: got %d/%d, want %d/%d", got.RecvAsked, got.SendAsked, tc.recv, tc.send)
			}
			if got.RecvGranted != tc.wantRecv {
				t.Errorf("receive granted: got %d, want %d (rmem_max %d)", got.RecvGranted, tc.wantRecv, rmax)
			}
			if tc.wantSend >= 0 && got.SendGranted != tc.wantSend {
				t.Errorf("send granted: got %d, want %d (wmem_max %d)", got.SendGranted, tc.wantSend, wmax)
			}
			if tc.wantSend < 0 && got.SendGranted <= 0 {
				t.Errorf("send granted: got %d, want the kernel's default", got.SendGranted)
			}
			if got.Short() != tc.wantShort {
				t.Errorf("Short: got %v, want %v for %+v", got.Short(), tc.wantShort, got)
			}
		})
	}
	if _, err := Set(-1, small, 0); err == nil {
		t.Error("Set on fd -1: got no error")
	}
}

// TestLogNamesSysctl checks the start-up line: a capped request is a
// warning carrying what was asked, what was granted and the sysctl that
// raises the cap; a granted one is not a warning.
func TestLogNamesSysctl(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	Sizes{RecvAsked: 4 << 20, RecvGranted: 212992, SendAsked: 4 << 20, SendGranted: 4 << 20}.Log(log, "turn listener")
	line := buf.String()
	for _, want := range []string{"level=WARN", "recv_asked=4194304", "recv_granted=212992", "net.core.rmem_max=4194304"} {
		if !strings.Contains(line, want) {
			t.Errorf("capped: %q lacks %q", line, want)
		}
	}
	if strings.Contains(line, "wmem_max") {
		t.Errorf("capped receive only: %q names wmem_max", line)
	}
	buf.Reset()
	Sizes{RecvAsked: 1 << 20, RecvGranted: 1 << 20}.Log(log, "turn relay")
	if line := buf.String(); !strings.Contains(line, "level=INFO") || !strings.Contains(line, "recv_granted=1048576") {
		t.Errorf("granted: got %q, want an INFO line with recv_granted=1048576", line)
	}
}

// TestShippedSysctlGrantsSize checks that systemd/icebox.sysctl raises
// net.core.rmem_max and wmem_max to at least Size, so an installed icebox
// is granted the buffers it asks for.
func TestShippedSysctlGrantsSize(t *testing.T) {
	b, err := os.ReadFile("../../../systemd/icebox.sysctl")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil {
			got[strings.TrimSpace(k)] = n
		}
	}
	for _, key := range []string{"net.core.rmem_max", "net.core.wmem_max"} {
		if got[key] < Size {
			t.Errorf("%s: got %d, want at least %d (sockbuf.Size)", key, got[key], Size)
		}
	}
}
