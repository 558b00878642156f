package sockbuf

import "golang.org/x/sys/unix"

// Set asks for recv bytes of receive buffer and send bytes of send buffer
// on the socket fd (0: leave that buffer alone) and reads back, with
// getsockopt, what the kernel granted. Errors: setsockopt or getsockopt
// failing (fd not a socket); the kernel capping a request is no error,
// see Sizes.Short.
func Set(fd, recv, send int) (Sizes, error) {
	s := Sizes{RecvAsked: recv, SendAsked: send}
	var err error
	if s.RecvGranted, err = set(fd, unix.SO_RCVBUF, recv); err != nil {
		return s, err
	}
	if s.SendGranted, err = set(fd, unix.SO_SNDBUF, send); err != nil {
		return s, err
	}
	return s, nil
}

func set(fd, opt, n int) (int, error) {
	if n > 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, opt, n); err != nil {
			return 0, err
		}
	}
	got, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, opt)
	return got / 2, err // socket(7): the kernel doubles the value set
}
