//go:build !(linux && (amd64 || arm64))

package turnsrv

import "net"

// newListenerConn wraps a UDP listener socket in the guard.
func newListenerConn(pc net.PacketConn, g *guard, _ *fastRelay) net.PacketConn {
	return newGuardPacketConn(pc, g)
}
