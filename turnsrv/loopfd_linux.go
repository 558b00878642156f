//go:build linux && (amd64 || arm64)

package turnsrv

import (
	"net"
	"sync"

	"golang.org/x/sys/unix"
)

// loopFD is a non-blocking socket a relay loop watches: listener and
// relay sockets alike. The fd is used under the read lock and closed
// under the write lock, once.
type loopFD struct {
	mu        sync.RWMutex // read-held while the fd is in use
	fd        int          // -1 once closed
	closeOnce sync.Once
}

// send sends p to to. A full socket buffer drops the datagram (nil
// error), as the network would. Errors: net.ErrClosed, or sendto's.
func (s *loopFD) send(p []byte, to *rawAddr) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.fd < 0 {
		return net.ErrClosed
	}
	if err := sendto(s.fd, p, to); err != nil && err != unix.EAGAIN {
		return err
	}
	return nil
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
