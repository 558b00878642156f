//go:build linux && (amd64 || arm64)

package udprelay

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestSendmmsgFullBuffer: with the receiver's queue full, sendmmsg
// returns at once and reports every message as dropped: a loop never
// waits for room (here on a datagram socket pair, whose sender sees the
// receiver's queue as its own buffer).
func TestSendmmsgFullBuffer(t *testing.T) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fds[0])
	defer unix.Close(fds[1])
	payload := make([]byte, 1000)
	filled := 0
	for ; ; filled++ {
		if err := unix.Send(fds[0], payload, unix.MSG_DONTWAIT); err == unix.EAGAIN {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	var iovs [3]unix.Iovec
	var msgs [3]mmsghdr
	for i := range msgs {
		iovs[i] = unix.Iovec{Base: &payload[0], Len: uint64(len(payload))}
		msgs[i].hdr = unix.Msghdr{Iov: &iovs[i], Iovlen: 1}
	}
	if full := sendmmsg(fds[0], msgs[:]); full != len(msgs) {
		t.Errorf("sendmmsg into a full buffer (after %d datagrams): %d reported dropped, want %d", filled, full, len(msgs))
	}
	// With room again, they go.
	buf := make([]byte, 2000)
	for i := 0; i < len(msgs); i++ {
		if _, _, err := unix.Recvfrom(fds[1], buf, unix.MSG_DONTWAIT); err != nil {
			t.Fatal(err)
		}
	}
	if full := sendmmsg(fds[0], msgs[:1]); full != 0 {
		t.Errorf("sendmmsg with room: %d dropped, want 0", full)
	}
}
