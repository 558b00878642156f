package turnsrv

import (
	"context"
	"net"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/icebox-project/icebox/turnsrv/internal/sockbuf"
)

// listenUDP opens n UDP sockets on one address with SO_REUSEPORT, so the
// kernel spreads clients (by their address hash, so one client always
// reaches the same socket) over n read loops and every core relays. With
// port 0 the first socket picks the port and the others join it. Each
// socket asks for sockbuf.Size of receive and send buffer; sizes is what
// the kernel granted the first (it caps every socket alike, at
// net.core.{r,w}mem_max).
func listenUDP(network, addr string, n int) (_ []net.PacketConn, sizes sockbuf.Sizes, _ error) {
	first := true
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
			got, err := sockbuf.Set(int(fd), sockbuf.Size, sockbuf.Size)
			if first && err == nil {
				sizes, first = got, false
			}
		}); err != nil {
			return err
		}
		return serr
	}}
	pc0, err := lc.ListenPacket(context.Background(), network, addr)
	if err != nil {
		return nil, sizes, err
	}
	socks := []net.PacketConn{pc0}
	host, _, _ := net.SplitHostPort(addr)
	bound := net.JoinHostPort(host, strconv.Itoa(pc0.LocalAddr().(*net.UDPAddr).Port))
	for i := 1; i < n; i++ {
		pc, err := lc.ListenPacket(context.Background(), network, bound)
		if err != nil {
			for _, s := range socks {
				s.Close()
			}
			return nil, sizes, err
		}
		socks = append(socks, pc)
	}
	return socks, sizes, nil
}
