//go:build !(linux && (amd64 || arm64))

package udprelay

// New returns ErrUnavailable: the fast path needs Linux (epoll,
// recvmmsg, sendmmsg) and the 64-bit struct mmsghdr layout of amd64 and
// arm64. Callers relay through pion/turn's own sockets instead.
func New(Config) (Relay, error) { return nil, ErrUnavailable }
