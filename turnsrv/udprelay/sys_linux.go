//go:build linux && (amd64 || arm64)

package udprelay

import (
	"encoding/binary"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsghdr is struct mmsghdr on 64-bit Linux.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
	_   [4]byte
}

// rawAddr is a socket address ready for sendto.
type rawAddr struct {
	sa  unix.RawSockaddrInet6 // large enough for either family
	len uint32
}

// rawIPv4 is toRaw for a peer key (IPv4 address << 16 | port).
func rawIPv4(key uint64) rawAddr {
	var r rawAddr
	sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&r.sa))
	sa.Family = unix.AF_INET
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], uint16(key))
	binary.BigEndian.PutUint32(sa.Addr[:], uint32(key>>16))
	r.len = unix.SizeofSockaddrInet4
	return r
}

func toRaw(ap netip.AddrPort) rawAddr {
	var r rawAddr
	if ap.Addr().Is4() {
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&r.sa))
		sa.Family = unix.AF_INET
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], ap.Port())
		sa.Addr = ap.Addr().As4()
		r.len = unix.SizeofSockaddrInet4
		return r
	}
	r.sa.Family = unix.AF_INET6
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&r.sa.Port))[:], ap.Port())
	r.sa.Addr = ap.Addr().As16()
	r.len = unix.SizeofSockaddrInet6
	return r
}

// addrPortOf reads a socket address filled in by the kernel.
func addrPortOf(sa *unix.RawSockaddrInet6) (netip.AddrPort, bool) {
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
	switch sa.Family {
	case unix.AF_INET:
		s4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(s4.Addr), port), true
	case unix.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port), true
	}
	return netip.AddrPort{}, false
}

// recvmmsg, sendmmsg (sendQueue.send) and sendto use RawSyscall6: with MSG_DONTWAIT they
// never block, so telling Go's scheduler about them (entersyscall,
// exitsyscall) would be pure cost on every datagram. None of them waits:
// the one wait of a loop is epoll_wait.

// sendto sends p without blocking. Errors: unix.EAGAIN when the socket
// buffer is full (the datagram is dropped), or the system call's.
func sendto(fd int, p []byte, to *rawAddr) error {
	if len(p) == 0 {
		return nil
	}
	_, _, errno := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)),
		unix.MSG_DONTWAIT, uintptr(unsafe.Pointer(&to.sa)), uintptr(to.len))
	if errno != 0 {
		return errno
	}
	return nil
}

// recvmmsg receives up to len(msgs) messages without blocking; false
// when there are none (EAGAIN) or the socket failed. A message with
// control space gets oobSize bytes of it.
func recvmmsg(fd int, msgs []mmsghdr) (int, bool) {
	for i := range msgs {
		msgs[i].hdr.Namelen = unix.SizeofSockaddrInet6
		msgs[i].hdr.Flags = 0
		if msgs[i].hdr.Control != nil {
			msgs[i].hdr.Controllen = oobSize
		}
	}
	r, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&msgs[0])),
		uintptr(len(msgs)), unix.MSG_DONTWAIT, 0, 0)
	return int(r), errno == 0
}
