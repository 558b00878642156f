//go:build !(linux && (amd64 || arm64))

package turnsrv

import (
	"net"

	"github.com/pion/turn/v4"
)

// udpListener wraps a UDP listener socket in the guard; pion/turn relays.
func udpListener(pc net.PacketConn, g *guard, _ *fastRelay, relay turn.RelayAddressGenerator) (net.PacketConn, turn.RelayAddressGenerator, error) {
	return newGuardPacketConn(pc, g), relay, nil
}
