//go:build !linux

package turnsrv

import "net"

// listenUDP opens one UDP socket; SO_REUSEPORT spreading is Linux only.
func listenUDP(network, addr string, _ int) ([]net.PacketConn, error) {
	pc, err := net.ListenPacket(network, addr) //nolint:noctx
	if err != nil {
		return nil, err
	}
	return []net.PacketConn{pc}, nil
}
