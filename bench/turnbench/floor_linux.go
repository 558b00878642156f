//go:build linux && (amd64 || arm64)

package main

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"time"
	"unsafe"

	"github.com/pion/stun/v3"
	"golang.org/x/sys/unix"
)

// The floor server is the kernel's floor for the relay path: the socket
// layout, system calls and offloads of icebox's relay loops
// (turnsrv/udprelay) with none of TURN's work. Per loop, one
// SO_REUSEPORT listener socket and a relay socket per allocation, all
// non-blocking and outside Go's poller, served by one goroutine waiting
// in epoll_wait and yielding to Go's scheduler every 5 ms; recvmmsg with
// UDP_GRO, sendmmsg with UDP_SEGMENT (runs of up to 64 datagrams of one
// size to one destination); the same batch window as icebox's loops. What it leaves out: authentication (any
// Allocate with a USERNAME succeeds, no MESSAGE-INTEGRITY is checked or
// sent), permissions, the peer filter, bitrate caps, counters, lifetimes
// and pion/turn. It answers just enough STUN (Binding, Allocate,
// ChannelBind) for turnbench's clients, and relays ChannelData on the
// one channel each client binds. It is a measuring stick, never a server:
// it exists only inside turnbench, on 127.0.0.1.

const (
	floorBatch    = 32       // messages per recvmmsg
	floorRx       = 64 << 10 // bytes per received message (a GRO run)
	floorMaxRun   = 64       // datagrams per GSO message
	floorOOB      = 64       // control bytes per message
	floorMaxSends = 4 * 1024 // datagrams gathered before a flush
	floorLifetime = 600      // seconds, in Allocate's answer
	floorDrain    = 4        // recvmmsg batches per ready socket per wake-up
	floorWindow   = 200 * time.Microsecond
)

// floorMmsghdr is struct mmsghdr on 64-bit Linux.
type floorMmsghdr struct {
	hdr unix.Msghdr
	n   uint32
	_   [4]byte
}

type floorFlow struct {
	relayFD int
	client  unix.RawSockaddrInet4
	peer    unix.RawSockaddrInet4
	channel uint16
	relayed netip.AddrPort
}

// floorSend is one datagram to send: an optional 4-byte ChannelData
// header, then the payload, which points into a receive buffer.
type floorSend struct {
	fd      int
	to      *unix.RawSockaddrInet4
	hdr     [4]byte
	withHdr bool
	payload []byte
}

type floorLoop struct {
	epfd, listener int
	flows          map[netip.AddrPort]*floorFlow // by client address
	byRelay        map[int32]*floorFlow          // by relay socket

	msgs  []floorMmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6
	oobs  [][floorOOB]byte
	rx    []byte

	sends  []floorSend
	smsgs  []floorMmsghdr
	siovs  []unix.Iovec
	soobs  [][floorOOB]byte
	stunRx []byte
}

// serveFloor runs the floor server on addr (IPv4) with loops loops until
// the process is killed.
func serveFloor(addr string, loops int) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil || !ap.Addr().Is4() {
		return fmt.Errorf("-serve-floor %q: want an IPv4 address and port", addr)
	}
	errs := make(chan error, loops)
	for range loops {
		l, err := newFloorLoop(ap)
		if err != nil {
			return err
		}
		go func() { errs <- l.run() }()
	}
	return <-errs
}

func newFloorLoop(ap netip.AddrPort) (*floorLoop, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); err != nil {
		return nil, err
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: ap.Addr().As4(), Port: int(ap.Port())}); err != nil {
		return nil, fmt.Errorf("floor listener %s: %w", ap, err)
	}
	if err := floorSocketSetup(fd); err != nil {
		return nil, err
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	l := &floorLoop{epfd: epfd, listener: fd, flows: map[netip.AddrPort]*floorFlow{}, byRelay: map[int32]*floorFlow{},
		msgs: make([]floorMmsghdr, floorBatch), iovs: make([]unix.Iovec, floorBatch),
		names: make([]unix.RawSockaddrInet6, floorBatch), oobs: make([][floorOOB]byte, floorBatch),
		rx: make([]byte, floorBatch*floorRx), sends: make([]floorSend, 0, floorMaxSends),
		smsgs: make([]floorMmsghdr, floorMaxSends), siovs: make([]unix.Iovec, 2*floorMaxSends),
		soobs: make([][floorOOB]byte, floorMaxSends), stunRx: make([]byte, 1500)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}); err != nil {
		return nil, err
	}
	return l, nil
}

// floorSocketSetup gives a socket icebox's buffers and UDP_GRO.
func floorSocketSetup(fd int) error {
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_GRO, 1); err != nil {
		return fmt.Errorf("UDP_GRO: %w", err)
	}
	return nil
}

func (l *floorLoop) run() error {
	events := make([]unix.EpollEvent, 128)
	busy := false
	lastYield := time.Now()
	for {
		// As icebox's loops do: a goroutine that never yields is preempted
		// every 10 ms, which also sets Go's monitor polling at full rate
		// (without this, the monitor took 39 % of the floor's CPU).
		if time.Since(lastYield) > 5*time.Millisecond {
			lastYield = time.Now()
			runtime.Gosched()
		}
		timeout := -1
		if busy {
			ts := unix.NsecToTimespec(int64(floorWindow))
			_ = unix.Nanosleep(&ts, nil)
			timeout = 0
		}
		n, err := unix.EpollWait(l.epfd, events, timeout)
		busy = n > 0 && err == nil
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("epoll_wait: %w", err)
		}
		for i := range n {
			fd := events[i].Fd
			for range floorDrain {
				if l.drain(int(fd)) < floorBatch {
					break
				}
			}
		}
	}
}

// drain reads one recvmmsg batch from fd, relays it and returns how many
// messages it read.
func (l *floorLoop) drain(fd int) int {
	for i := range l.msgs {
		l.iovs[i] = unix.Iovec{Base: &l.rx[i*floorRx]}
		l.iovs[i].SetLen(floorRx)
		l.msgs[i].hdr = unix.Msghdr{Name: (*byte)(unsafe.Pointer(&l.names[i])), Namelen: unix.SizeofSockaddrInet6,
			Iov: &l.iovs[i], Iovlen: 1, Control: &l.oobs[i][0]}
		l.msgs[i].hdr.SetControllen(floorOOB)
	}
	r, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&l.msgs[0])), floorBatch, unix.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return 0
	}
	n := int(r)
	flow := l.byRelay[int32(fd)]
	for i := range n {
		m := &l.msgs[i]
		data := l.rx[i*floorRx : i*floorRx+int(m.n)]
		gso := floorGROSize(l.oobs[i][:m.hdr.Controllen])
		src := (*unix.RawSockaddrInet4)(unsafe.Pointer(&l.names[i]))
		if fd == l.listener {
			l.fromClient(src, data, gso)
		} else if flow != nil {
			for len(data) > 0 {
				seg := data
				if gso > 0 && gso < len(data) {
					seg = data[:gso]
				}
				data = data[len(seg):]
				s := floorSend{fd: l.listener, to: &flow.client, withHdr: true, payload: seg}
				binary.BigEndian.PutUint16(s.hdr[0:2], flow.channel)
				binary.BigEndian.PutUint16(s.hdr[2:4], uint16(len(seg)))
				l.sends = append(l.sends, s)
			}
		}
	}
	l.flush()
	return n
}

func (l *floorLoop) fromClient(src *unix.RawSockaddrInet4, data []byte, gso int) {
	if len(data) == 0 {
		return
	}
	if data[0]&0xC0 != 0x40 {
		l.control(src, data)
		return
	}
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&src.Port))[:])
	flow := l.flows[netip.AddrPortFrom(netip.AddrFrom4(src.Addr), port)]
	if flow == nil || flow.channel == 0 {
		return
	}
	for len(data) >= 4 {
		seg := data
		if gso > 0 && gso < len(data) {
			seg = data[:gso]
		}
		data = data[len(seg):]
		n := int(binary.BigEndian.Uint16(seg[2:4]))
		if 4+n > len(seg) {
			continue
		}
		l.sends = append(l.sends, floorSend{fd: flow.relayFD, to: &flow.peer, payload: seg[4 : 4+n]})
	}
}

// flush sends what a batch gathered: per socket, in order, runs to one
// destination of one size as one GSO message, all in one sendmmsg.
func (l *floorLoop) flush() {
	if len(l.sends) == 0 {
		return
	}
	slices.SortStableFunc(l.sends, func(a, b floorSend) int { return a.fd - b.fd })
	for start := 0; start < len(l.sends); {
		end := start
		for end < len(l.sends) && l.sends[end].fd == l.sends[start].fd {
			end++
		}
		l.sendRun(l.sends[start:end])
		start = end
	}
	clear(l.sends)
	l.sends = l.sends[:0]
}

func (l *floorLoop) sendRun(sends []floorSend) {
	nm, ni := 0, 0
	for i := 0; i < len(sends); {
		to, size := sends[i].to, sends[i].size()
		j := i + 1
		for j < len(sends) && j-i < floorMaxRun && sends[j].to == to && sends[j].size() == size {
			j++
		}
		if j < len(sends) && j-i < floorMaxRun && sends[j].to == to && sends[j].size() < size {
			j++ // the last of a run may be shorter
		}
		m := &l.smsgs[nm]
		m.hdr = unix.Msghdr{Name: (*byte)(unsafe.Pointer(to)), Namelen: unix.SizeofSockaddrInet4, Iov: &l.siovs[ni]}
		first := ni
		for k := i; k < j; k++ {
			if sends[k].withHdr {
				l.siovs[ni] = unix.Iovec{Base: &sends[k].hdr[0]}
				l.siovs[ni].SetLen(4)
				ni++
			}
			if len(sends[k].payload) > 0 {
				l.siovs[ni] = unix.Iovec{Base: &sends[k].payload[0]}
				l.siovs[ni].SetLen(len(sends[k].payload))
				ni++
			}
		}
		m.hdr.SetIovlen(ni - first)
		if j-i > 1 {
			h := (*unix.Cmsghdr)(unsafe.Pointer(&l.soobs[nm][0]))
			h.Level = unix.SOL_UDP
			h.Type = unix.UDP_SEGMENT
			h.SetLen(unix.CmsgLen(2))
			binary.NativeEndian.PutUint16(l.soobs[nm][unix.SizeofCmsghdr:], uint16(size))
			m.hdr.Control = &l.soobs[nm][0]
			m.hdr.SetControllen(unix.CmsgSpace(2))
		}
		nm++
		i = j
	}
	for sent := 0; sent < nm; {
		r, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(sends[0].fd), uintptr(unsafe.Pointer(&l.smsgs[sent])), uintptr(nm-sent), unix.MSG_DONTWAIT, 0, 0)
		switch {
		case e == unix.EINTR:
		case e != 0:
			sent++ // a full buffer drops the message, as icebox's loops do
		default:
			sent += int(r)
		}
	}
}

// size is the datagram's length on the wire.
func (s *floorSend) size() int {
	if s.withHdr {
		return 4 + len(s.payload)
	}
	return len(s.payload)
}

// floorGROSize is the segment size in a received message's control data
// (UDP_GRO, the only control message these sockets get), or 0 for one
// datagram.
func floorGROSize(control []byte) int {
	if len(control) < unix.SizeofCmsghdr+4 {
		return 0
	}
	h := (*unix.Cmsghdr)(unsafe.Pointer(&control[0]))
	if h.Level != unix.SOL_UDP || h.Type != unix.UDP_GRO {
		return 0
	}
	return int(binary.NativeEndian.Uint32(control[unix.SizeofCmsghdr:]))
}

// control answers Binding, Allocate and ChannelBind, just enough for
// turnbench's clients.
func (l *floorLoop) control(src *unix.RawSockaddrInet4, data []byte) {
	m := &stun.Message{Raw: append(l.stunRx[:0], data...)}
	if m.Decode() != nil || m.Type.Class != stun.ClassRequest {
		return
	}
	port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&src.Port))[:])
	client := netip.AddrPortFrom(netip.AddrFrom4(src.Addr), port)
	mapped := &stun.XORMappedAddress{IP: net.IP(client.Addr().AsSlice()), Port: int(port)}
	setters := []stun.Setter{m, stun.NewType(m.Type.Method, stun.ClassSuccessResponse)}
	switch m.Type.Method {
	case stun.MethodBinding:
		setters = append(setters, mapped)
	case stun.MethodAllocate:
		if !m.Contains(stun.AttrUsername) {
			setters = []stun.Setter{m, stun.NewType(stun.MethodAllocate, stun.ClassErrorResponse),
				stun.CodeUnauthorized, stun.NewRealm(realm), stun.NewNonce("floor")}
			break
		}
		flow := l.flows[client]
		if flow == nil {
			var err error
			if flow, err = l.allocate(src); err != nil {
				fmt.Fprintln(os.Stderr, "floor: relay socket:", err)
				return
			}
			l.flows[client] = flow
		}
		relayed := &stun.XORMappedAddress{IP: net.IP(flow.relayed.Addr().AsSlice()), Port: int(flow.relayed.Port())}
		setters = append(setters, setterFunc(func(m *stun.Message) error { return relayed.AddToAs(m, stun.AttrXORRelayedAddress) }),
			mapped, stun.RawAttribute{Type: stun.AttrLifetime, Value: binary.BigEndian.AppendUint32(nil, floorLifetime)})
	case stun.MethodChannelBind:
		flow := l.flows[client]
		var peer stun.XORMappedAddress
		ch, err := m.Get(stun.AttrChannelNumber)
		if flow == nil || err != nil || len(ch) < 2 || peer.GetFromAs(m, stun.AttrXORPeerAddress) != nil || peer.IP.To4() == nil {
			return
		}
		flow.channel = binary.BigEndian.Uint16(ch)
		flow.peer = unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: [4]byte(peer.IP.To4())}
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&flow.peer.Port))[:], uint16(peer.Port))
	default:
		return
	}
	resp, err := stun.Build(setters...)
	if err != nil {
		return
	}
	to := &unix.SockaddrInet4{Addr: src.Addr, Port: int(port)}
	_ = unix.Sendto(l.listener, resp.Raw, unix.MSG_DONTWAIT, to)
}

func (l *floorLoop) allocate(client *unix.RawSockaddrInet4) (*floorFlow, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if err := floorSocketSetup(fd); err != nil {
		unix.Close(fd)
		return nil, err
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	in4 := sa.(*unix.SockaddrInet4)
	flow := &floorFlow{relayFD: fd, client: *client, relayed: netip.AddrPortFrom(netip.AddrFrom4(in4.Addr), uint16(in4.Port))}
	if err := unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	l.byRelay[int32(fd)] = flow
	return flow, nil
}
