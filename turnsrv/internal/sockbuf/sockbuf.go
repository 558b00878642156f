// Package sockbuf asks the kernel for a socket's receive and send buffer
// sizes (SO_RCVBUF, SO_SNDBUF) and reads back what it granted: Linux caps
// a request at net.core.rmem_max / net.core.wmem_max without an error, so
// only getsockopt tells that the relay got less room for bursts than it
// asked for. One file per platform; the default returns an error.
package sockbuf

import (
	"errors"
	"log/slog"
	"strconv"
)

// Size is the receive and send buffer icebox asks for on its TURN
// listener and relay sockets, in bytes: room for bursts while a read loop
// waits for a CPU. systemd/icebox.sysctl raises net.core.rmem_max and
// wmem_max to at least this, or the kernel grants less.
const Size = 4 << 20

// ErrUnsupported is returned by Set where the platform has no
// implementation.
var ErrUnsupported = errors.New("sockbuf: not supported on this platform")

// Sizes is what was asked for one socket's buffers and what the kernel
// granted, in bytes. Granted is comparable to Asked: Linux stores (and
// getsockopt returns) twice the accepted request, for its own bookkeeping,
// and Granted is that value halved. An Asked of 0 means that buffer was
// left at the kernel's default; its Granted is then the default, halved.
type Sizes struct {
	RecvAsked, RecvGranted int
	SendAsked, SendGranted int
}

// Short reports whether the kernel granted less than was asked of either
// buffer.
func (s Sizes) Short() bool {
	return s.RecvGranted < s.RecvAsked || s.SendGranted < s.SendAsked
}

// Log writes one line about s for the sockets named by what (e.g. "turn
// listener"): at Info when every request was granted, otherwise at Warn
// with the sysctl that lets the kernel grant it (systemd/icebox.sysctl
// ships those values).
func (s Sizes) Log(log *slog.Logger, what string) {
	args := []any{"sockets", what, "recv_asked", s.RecvAsked, "recv_granted", s.RecvGranted}
	if s.SendAsked > 0 {
		args = append(args, "send_asked", s.SendAsked, "send_granted", s.SendGranted)
	}
	if !s.Short() {
		log.Info("socket buffers", args...)
		return
	}
	raise := "sysctl -w"
	if s.RecvGranted < s.RecvAsked {
		raise += " net.core.rmem_max=" + strconv.Itoa(s.RecvAsked)
	}
	if s.SendGranted < s.SendAsked {
		raise += " net.core.wmem_max=" + strconv.Itoa(s.SendAsked)
	}
	args = append(args, "raise_with", raise+" (or install systemd/icebox.sysctl)")
	log.Warn("socket buffers smaller than asked: the kernel caps them; bursts may be dropped", args...)
}
