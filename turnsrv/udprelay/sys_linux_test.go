//go:build linux && (amd64 || arm64)

package udprelay

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestSendQueueFullBuffer: with the receiver's queue full, a send queue
// flush returns at once and counts every datagram as dropped: a loop
// never waits for room (here on a datagram socket pair, whose sender
// sees the receiver's queue as its own buffer).
func TestSendQueueFullBuffer(t *testing.T) {
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
	r := &relay{stats: new(Counters)}
	q := &sendQueue{r: r}
	queue := func(n int) []uint16 {
		idx := make([]uint16, n)
		for i := range n {
			e, _ := q.next()
			*e = outDatagram{iov: [3]unix.Iovec{{Base: &payload[0], Len: uint64(len(payload))}}, niov: 1,
				size: len(payload), payload: len(payload)}
			q.push()
			idx[i] = uint16(i)
		}
		return idx
	}
	// A socket pair has no destination address: single datagrams only.
	q.send(fds[0], queue(3), false)
	if full := r.stats.DroppedSendBufferToClients.Load(); full != 3 {
		t.Errorf("sending into a full buffer (after %d datagrams): %d counted dropped, want 3", filled, full)
	}
	q.n = 0
	// With room again, they go.
	buf := make([]byte, 2000)
	for i := 0; i < 3; i++ {
		if _, _, err := unix.Recvfrom(fds[1], buf, unix.MSG_DONTWAIT); err != nil {
			t.Fatal(err)
		}
	}
	q.send(fds[0], queue(1), false)
	if full := r.stats.DroppedSendBufferToClients.Load(); full != 3 {
		t.Errorf("sending with room: %d counted dropped, want still 3", full)
	}
	if _, _, err := unix.Recvfrom(fds[1], buf, unix.MSG_DONTWAIT); err != nil {
		t.Errorf("the datagram sent with room did not arrive: %v", err)
	}
}
