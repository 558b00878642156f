//go:build linux && (amd64 || arm64)

package udprelay

import (
	"encoding/binary"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// UDP segmentation offload (GSO, UDP_SEGMENT, Linux 4.18) sends a run of
// datagrams to one destination as one system call and one trip through
// the network stack; the kernel (or the NIC) cuts it into datagrams of
// the run's segment size, the last of which may be shorter. UDP generic
// receive offload (GRO, UDP_GRO, Linux 5.0) hands a socket a run of
// datagrams from one source as one read, with the segment size in a
// control message. The rules follow the kernel's: a run has one
// destination, segments of one size but a shorter last one, at most
// maxSegments segments, and at most maxGSOBytes bytes.
const (
	// maxSegments caps a GSO run (the kernel's UDP_MAX_SEGMENTS was 64
	// before Linux 6.16).
	maxSegments = 64
	// maxGSOBytes is the largest UDP payload of one run over IPv4.
	maxGSOBytes = 65535 - 20 - 8
	// groBuf is the receive buffer per message where GRO is on: room for
	// the largest coalesced read.
	groBuf = 1 << 16
	// oobSize is the control space per message: one cmsg of an int
	// (UDP_GRO on receive) or a uint16 (UDP_SEGMENT on send).
	oobSize = 24 // unix.CmsgSpace(4) on 64-bit Linux
)

// offload is what the kernel offers, probed once in New and narrowed by
// Config.NoGSO and Config.NoGRO. gso is cleared for good when a send
// fails with EIO (a device without checksum offload for UDP cannot
// segment), as wireguard-go and tailscale do.
type offload struct {
	gso atomic.Bool
	gro bool
}

// probeOffload asks a throwaway UDP socket whether UDP_SEGMENT and
// UDP_GRO are known to this kernel.
func probeOffload() (gso, gro bool) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false, false
	}
	defer unix.Close(fd)
	_, err = unix.GetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_SEGMENT)
	gso = err == nil
	gro = unix.SetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_GRO, 1) == nil
	return gso, gro
}

// enableGRO turns UDP_GRO on for fd; false if the kernel refused.
func enableGRO(fd int) bool {
	return unix.SetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_GRO, 1) == nil
}

// groSize returns the segment size the kernel put in a received
// message's control data (UDP_GRO), or 0 when the read holds one
// datagram. Malformed control data reads as 0 with ok false.
func groSize(control []byte) (size int, ok bool) {
	const hdr = unix.SizeofCmsghdr
	for len(control) >= hdr {
		n := binary.NativeEndian.Uint64(control[0:8]) // cmsg_len
		level := int32(binary.NativeEndian.Uint32(control[8:12]))
		typ := int32(binary.NativeEndian.Uint32(control[12:16]))
		if n < hdr || n > uint64(len(control)) {
			return 0, false
		}
		if level == unix.SOL_UDP && typ == unix.UDP_GRO {
			if n < hdr+4 {
				return 0, false
			}
			v := int32(binary.NativeEndian.Uint32(control[hdr : hdr+4]))
			if v < 0 {
				return 0, false
			}
			return int(v), true
		}
		next := (n + 7) &^ 7 // CMSG_ALIGN
		if next >= uint64(len(control)) {
			break
		}
		control = control[next:]
	}
	return 0, true
}

// nextSegment cuts the first datagram off a coalesced read b of segment
// size gso (0: b is one datagram): every segment is gso bytes but the
// last, which may be shorter. rest is empty after the last.
func nextSegment(b []byte, gso int) (seg, rest []byte) {
	if gso <= 0 || gso >= len(b) {
		return b, nil
	}
	return b[:gso], b[gso:]
}

// putSegmentSize writes a UDP_SEGMENT control message of size into oob
// (oobSize bytes) and returns its length.
func putSegmentSize(oob *[oobSize]byte, size uint16) uint64 {
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level = unix.SOL_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(oob[unix.SizeofCmsghdr:], size)
	return uint64(unix.CmsgSpace(2))
}
