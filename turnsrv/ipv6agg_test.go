package turnsrv

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"
)

// slash56 is the address of the i-th /64 (0-255) of one client's /56,
// 2001:db8:1:ff00::/56.
func slash56(i int) netip.Addr {
	return netip.MustParseAddr(fmt.Sprintf("2001:db8:1:ff%02x::1", i))
}

// TestQuotaIPv6Aggregate: a client with a /56 spreads Allocate requests
// over its 256 /64s, each below MaxAllocationsPerIP; together they are
// refused (486) once the /48 holds 8× the per-address cap, counted as
// refused by the aggregate, and a freed place is taken again. Another
// /48 and IPv4 clients are untouched.
func TestQuotaIPv6Aggregate(t *testing.T) {
	const perIP = 2
	s := startServer(t, func(c *Config) { c.MaxAllocationsPerIP = perIP })
	q := s.quota
	local := &net.UDPAddr{IP: net.IPv6loopback, Port: 3478}
	u, _, _ := s.cfg.Credentials.Mint("alice", time.Now())
	admitted, port := 0, 1000
	var first *net.UDPAddr
	for i := range 256 {
		for range perIP {
			port++
			src := net.UDPAddrFromAddrPort(netip.AddrPortFrom(slash56(i), uint16(port)))
			if !q.allow(u, "", src) {
				continue
			}
			q.created(src, local, "", u, "", nil, 0)
			if first == nil {
				first = src
			}
			admitted++
		}
	}
	if want := perIP * 8; admitted != want {
		t.Errorf("allocations from 256 /64s of one /56: got %d, want %d (8 × max_allocations_per_ip)", admitted, want)
	}
	if got, want := s.Stats().QuotaRefusals.Load(), int64(256*perIP-perIP*8); got != want {
		t.Errorf("QuotaRefusals: got %d, want %d", got, want)
	}
	if got, want := s.Stats().QuotaRefusedIPv6Aggregate.Load(), int64(256*perIP-perIP*8); got != want {
		t.Errorf("QuotaRefusedIPv6Aggregate: got %d, want %d", got, want)
	}
	other := net.UDPAddrFromAddrPort(netip.MustParseAddrPort("[2001:db8:2::1]:1"))
	if !q.allow(u, "", other) {
		t.Error("a client of another /48 was refused")
	}
	v4 := net.UDPAddrFromAddrPort(netip.MustParseAddrPort("192.0.2.1:1"))
	if !q.allow(u, "", v4) {
		t.Error("an IPv4 client was refused")
	}
	q.deleted(first, local, "", u, "")
	if src := net.UDPAddrFromAddrPort(netip.AddrPortFrom(slash56(200), 1)); !q.allow(u, "", src) {
		t.Error("after an allocation of the /56 was deleted, another /64 of it is still refused")
	}
}

// TestTCPCapIPv6Aggregate: connSet, fed connections from 256 /64s of one
// /56, admits 8× the per-address cap and refuses the rest as
// per_ipv6_aggregate; the per-address tier still refuses first.
func TestTCPCapIPv6Aggregate(t *testing.T) {
	const perIP = 2
	set := newConnSet(connLimits{perIP: perIP, firstMsg: time.Hour, noAlloc: time.Hour},
		&Stats{}, &owners{m: map[fiveTuple]string{}}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer set.closeAll()
	counts := map[string]int{}
	for i := range 256 {
		for j := range perIP + 1 {
			a, b := net.Pipe()
			defer b.Close()
			remote := net.TCPAddrFromAddrPort(netip.AddrPortFrom(slash56(i), uint16(1000+j)))
			counts[set.add(newGuardConn(addrConn{Conn: a, remote: remote}, nil, set))]++
		}
	}
	// The first 8 /64s fill their own cap (the third try of each is
	// refused per address); every try from the 248 /64s after them is
	// refused by the aggregate.
	want := map[string]int{"": perIP * 8, refusedPerIP: 8, refusedPerIPv6Aggregate: (256 - 8) * (perIP + 1)}
	for why, n := range want {
		if counts[why] != n {
			t.Errorf("%q: got %d, want %d (all: %v)", why, counts[why], n, counts)
		}
	}
	if got := set.stats.TCPRefusedPerIPv6Aggregate.Load(); got != int64(want[refusedPerIPv6Aggregate]) {
		t.Errorf("TCPRefusedPerIPv6Aggregate: got %d, want %d", got, want[refusedPerIPv6Aggregate])
	}
}
