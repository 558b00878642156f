//go:build !linux

package turnsrv

import (
	"net"

	"github.com/icebox-project/icebox/turnsrv/internal/sockbuf"
)

// listenUDP opens one UDP socket; SO_REUSEPORT spreading and buffer
// sizing are Linux only, so sizes is zero.
func listenUDP(network, addr string, _ int) (_ []net.PacketConn, sizes sockbuf.Sizes, _ error) {
	pc, err := net.ListenPacket(network, addr) //nolint:noctx
	if err != nil {
		return nil, sizes, err
	}
	return []net.PacketConn{pc}, sizes, nil
}
