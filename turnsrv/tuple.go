package turnsrv

import (
	"net"
	"net/netip"
)

// fiveTuple names an allocation (RFC 8656 §2): the transport protocol,
// the client's address and the listener's, IPv4 addresses unmapped. It
// keys the guard's owners and the open TCP connections (connSet), both
// reached from pion's allocation events. (udprelay keys its fast path by
// listener address, then client: see its clientMap.)
type fiveTuple struct {
	tcp           bool // TCP or TLS; false: UDP
	client, local netip.AddrPort
}

// fiveTupleOf is the 5-tuple of a client at src reaching the listener at
// local: TCP when src is a *net.TCPAddr.
func fiveTupleOf(src, local net.Addr) fiveTuple {
	_, tcp := src.(*net.TCPAddr)
	return fiveTuple{tcp: tcp, client: addrPortOfAddr(src), local: addrPortOfAddr(local)}
}

// addrPortOfAddr is a's address and port, IPv4 addresses unmapped.
func addrPortOfAddr(a net.Addr) netip.AddrPort {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.UDPAddr:
		ap = a.AddrPort()
	case *net.TCPAddr:
		ap = a.AddrPort()
	default:
		ap, _ = netip.ParseAddrPort(a.String())
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
