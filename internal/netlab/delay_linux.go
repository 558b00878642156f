//go:build linux

package netlab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// delayMark marks the delayer's own connections, which its DNAT rule
// lets by.
const delayMark = 0x4e4c

// startDelayer starts h's delaying proxy: a listener on h's address to
// which an nftables rule redirects every TCP connection h starts to
// another host of the fabric, and which forwards it to where it was
// going, holding each way's bytes for that way's delay (Impair). It
// stops when t ends.
func (h *Host) startDelayer(t testing.TB) {
	t.Helper()
	var ln net.Listener
	err := h.Do(func() error {
		var err error
		ln, err = net.Listen("tcp4", net.JoinHostPort(h.Addr.String(), "0")) //nolint:noctx
		return err
	})
	if err != nil {
		t.Fatalf("netlab: delayer in %s: %v", h.Name, err)
	}
	t.Cleanup(func() { ln.Close() })
	port := ln.Addr().(*net.TCPAddr).Port
	h.Nft(t, fmt.Sprintf(`table ip netlab_delay {
  chain out {
    type nat hook output priority -100; policy accept;
    ip daddr %s ip daddr != %s meta l4proto tcp meta mark != %#x dnat to %s:%d
  }
}
`, h.fab.prefix, h.Addr, delayMark, h.Addr, port))
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go h.proxy(c.(*net.TCPConn))
		}
	}()
}

// proxy forwards c to its original destination.
func (h *Host) proxy(c *net.TCPConn) {
	defer c.Close()
	dst, err := originalDst(c)
	if err != nil || dst.Addr() == h.Addr {
		return
	}
	to := h.fab.host(dst.Addr())
	if to == nil {
		return
	}
	var up net.Conn
	err = h.Do(func() error {
		d := net.Dialer{Timeout: 10 * time.Second, Control: func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, delayMark) })
			return errors.Join(err, serr)
		}}
		var err error
		up, err = d.Dial("tcp4", dst.String()) //nolint:noctx
		return err
	})
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { delayCopy(up, c, func() time.Duration { return h.delayTo(to.Addr) }); done <- struct{}{} }()
	go func() { delayCopy(c, up, func() time.Duration { return to.delayTo(h.Addr) }); done <- struct{}{} }()
	<-done
}

// delayCopy copies src to dst, each chunk written delay() after it was
// read, in order. At most 64 chunks wait, so a stalled dst stalls src.
func delayCopy(dst io.WriteCloser, src io.Reader, delay func() time.Duration) {
	type chunk struct {
		b   []byte
		due time.Time
	}
	q := make(chan chunk, 64)
	go func() {
		defer close(q)
		for {
			b := make([]byte, 32<<10)
			n, err := src.Read(b)
			if n > 0 {
				q <- chunk{b[:n], time.Now().Add(delay())}
			}
			if err != nil {
				return
			}
		}
	}()
	defer dst.Close()
	for c := range q {
		if d := time.Until(c.due); d > 0 {
			time.Sleep(d)
		}
		if _, err := dst.Write(c.b); err != nil {
			for range q { // let the reader end
			}
			return
		}
	}
}

// originalDst is where c was going before the DNAT (SO_ORIGINAL_DST).
func originalDst(c *net.TCPConn) (netip.AddrPort, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	var ap netip.AddrPort
	var serr error
	err = rc.Control(func(fd uintptr) {
		// SO_ORIGINAL_DST (80) fills a sockaddr_in; the Mreq getter reads
		// 16 bytes, which is its size.
		m, err := unix.GetsockoptIPv6Mreq(int(fd), unix.SOL_IP, 80)
		if err != nil {
			serr = err
			return
		}
		b := m.Multiaddr
		ap = netip.AddrPortFrom(netip.AddrFrom4([4]byte{b[4], b[5], b[6], b[7]}), binary.BigEndian.Uint16(b[2:4]))
	})
	return ap, errors.Join(err, serr)
}
