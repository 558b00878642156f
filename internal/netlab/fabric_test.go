//go:build linux

package netlab

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"
)

// udpListen listens on h's address, in h.
func udpListen(t *testing.T, h *Host) *net.UDPConn {
	t.Helper()
	var c net.PacketConn
	if err := h.Do(func() error {
		var err error
		c, err = net.ListenPacket("udp4", h.Addr.String()+":0") //nolint:noctx
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.UDPConn)
}

// reaches sends datagrams from `from` to `to` until one arrives (true)
// or 20 have been lost 50 ms apart (false): a cut route must lose them
// all, an open one loses none.
func reaches(t *testing.T, from, to *Host) bool {
	t.Helper()
	dst := udpListen(t, to)
	src := udpListen(t, from)
	buf := make([]byte, 16)
	for range 20 {
		if _, err := src.WriteTo([]byte("ping"), dst.LocalAddr()); errors.Is(err, syscall.EPERM) {
			continue // dropped on the way out: the output hook tells the sender
		} else if err != nil {
			t.Fatal(err)
		}
		_ = dst.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, _, err := dst.ReadFrom(buf); err == nil {
			return true
		} else if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatal(err)
		}
	}
	return false
}

// TestFabricCutOneWay: a cut drops one way only, a partition both ways
// between sides and none within one, and a heal restores the route.
func TestFabricCutOneWay(t *testing.T) {
	l := New(t)
	f := l.Fabric(t, netip.MustParsePrefix("10.77.0.0/24"), "a", "b", "c")
	a, b, c := f.Hosts()[0], f.Hosts()[1], f.Hosts()[2]
	if !reaches(t, a, b) || !reaches(t, b, a) {
		t.Fatal("a and b do not reach each other before any fault")
	}
	a.Cut(t, b)
	if reaches(t, a, b) {
		t.Error("a reaches b through a cut")
	}
	if !reaches(t, b, a) {
		t.Error("b does not reach a: the cut a → b dropped the other way too")
	}
	if !reaches(t, a, c) {
		t.Error("a does not reach c: the cut a → b touched another route")
	}
	f.Partition(t, []*Host{a, b}, []*Host{c})
	if !reaches(t, a, b) {
		t.Error("a does not reach b on its own side of the partition")
	}
	if reaches(t, c, a) || reaches(t, b, c) {
		t.Error("a route across the partition is open")
	}
	f.HealAll(t)
	if !reaches(t, c, a) || !reaches(t, a, c) {
		t.Error("the heal did not restore the route between a and c")
	}
}

// TestFabricDelay: TCP between hosts goes through the delaying proxy,
// which holds each way's bytes for that way's delay.
func TestFabricDelay(t *testing.T) {
	l := New(t)
	f := l.Fabric(t, netip.MustParsePrefix("10.78.0.0/24"), "a", "b")
	a, b := f.Hosts()[0], f.Hosts()[1]
	var ln net.Listener
	if err := b.Do(func() error {
		var err error
		ln, err = net.Listen("tcp4", b.Addr.String()+":0") //nolint:noctx
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 64)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					_, _ = c.Write(buf[:n])
				}
			}()
		}
	}()
	a.Impair(t, b, 300*time.Millisecond, 0)
	conn, err := a.DialContext(context.Background(), "tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	if _, err := conn.Write([]byte("echo")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Read(buf); err != nil || string(buf) != "echo" {
		t.Fatalf("echo through the delayer: %q, %v", buf, err)
	}
	// A lower bound only: the delay is what the fault is, and a loaded
	// machine adds to it.
	if rtt := time.Since(start); rtt < 300*time.Millisecond {
		t.Errorf("a round trip over a route delayed 300 ms one way took %s", rtt)
	}
}
