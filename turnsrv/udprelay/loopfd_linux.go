//go:build linux && (amd64 || arm64)

package udprelay

import (
	"net"
	"sync"

	"golang.org/x/sys/unix"
)

// loopFD is a non-blocking socket a relay loop watches: listener and
// relay sockets alike. It owns its descriptor: the fd is used only under
// the read lock, and closed under the write lock, once, after which it
// reads -1. So no loop or goroutine can send on, or read from, a
// descriptor after its close, when the kernel may have given the number
// to another socket.
type loopFD struct {
	mu        sync.RWMutex // read-held while the fd is in use
	fd        int          // -1 once closed
	closeOnce sync.Once
}

// send sends p to to without waiting. full: the socket buffer was full
// and p was dropped, as the network would. Errors: net.ErrClosed, or
// sendto's.
func (s *loopFD) send(p []byte, to *rawAddr) (full bool, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.fd < 0 {
		return false, net.ErrClosed
	}
	switch err := sendto(s.fd, p, to); err {
	case nil:
		return false, nil
	case unix.EAGAIN:
		return true, nil
	default:
		return false, err
	}
}

// close runs before (which takes the socket out of its loop), then closes
// the fd, once.
func (s *loopFD) close(before func()) {
	s.closeOnce.Do(func() {
		before()
		s.mu.Lock()
		unix.Close(s.fd)
		s.fd = -1
		s.mu.Unlock()
	})
}
