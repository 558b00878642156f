//go:build !(linux && (amd64 || arm64))

package turnsrv

import (
	"log/slog"
	"net"
	"sync/atomic"
)

// fastRelay is Linux-only (epoll, recvmmsg); elsewhere pion/turn's own
// relay path serves every listener.
type fastRelay struct{}

func newFastRelay(net.IP, uint16, uint16, int, *Stats, *atomic.Pointer[policy], *slog.Logger) (*fastRelay, error) {
	return nil, nil
}

func (*fastRelay) close()                                  {}
func (*fastRelay) allocationCreated(_, _, _ net.Addr)      {}
func (*fastRelay) permission(net.Addr, net.IP, bool)       {}
func (*fastRelay) channel(_, _ net.Addr, _ uint16, _ bool) {}
func (*fastRelay) loopCount() int                          { return 0 }
