package turnsrv

import (
	"context"
	"net"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// socketBuffer is the send and receive buffer asked for on listener and
// relay sockets, in bytes.
const socketBuffer = 4 << 20

// listenUDP opens n UDP sockets on one address with SO_REUSEPORT, so the
// kernel spreads clients (by their address hash, so one client always
// reaches the same socket) over n read loops and every core relays. With
// port 0 the first socket picks the port and the others join it.
func listenUDP(network, addr string, n int) ([]net.PacketConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			// Room for bursts while a read loop waits for a CPU; the
			// kernel caps these at net.core.{r,w}mem_max.
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, socketBuffer)
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF, socketBuffer)
		}); err != nil {
			return err
		}
		return serr
	}}
	first, err := lc.ListenPacket(context.Background(), network, addr)
	if err != nil {
		return nil, err
	}
	socks := []net.PacketConn{first}
	host, _, _ := net.SplitHostPort(addr)
	bound := net.JoinHostPort(host, strconv.Itoa(first.LocalAddr().(*net.UDPAddr).Port))
	for i := 1; i < n; i++ {
		pc, err := lc.ListenPacket(context.Background(), network, bound)
		if err != nil {
			for _, s := range socks {
				s.Close()
			}
			return nil, err
		}
		socks = append(socks, pc)
	}
	return socks, nil
}
