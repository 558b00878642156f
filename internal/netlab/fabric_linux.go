//go:build linux

package netlab

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fabric is a LAN of hosts, each a namespace with one interface (eth0)
// on one switch (a bridge in a namespace of its own), whose links a test
// can break and mend while programs run: cut a route (Cut, Partition),
// delay it and lose packets on it (Impair), each one way, so that every
// fault can be asymmetric.
//
// Faults are applied at the sending host, on its way out: an nftables
// set of addresses whose packets are dropped in the output hook, a
// chain per destination that drops a share of packets at random, and a
// delaying proxy (delay_linux.go) that every TCP connection to another
// host passes. Nothing touches the switch, so a fault between two hosts
// never changes what a third one sees.
type Fabric struct {
	lab    *Lab
	sw     *Netns
	prefix netip.Prefix
	hosts  []*Host
}

// Host is one host of a Fabric.
type Host struct {
	*Netns
	// Addr is the host's address on the fabric.
	Addr  netip.Addr
	index int // 0-based, in the order of the roles
	fab   *Fabric
	mu    sync.Mutex
	cut   map[netip.Addr]bool
	loss  map[netip.Addr]int           // percent of packets to the host lost
	delay map[netip.Addr]time.Duration // of TCP bytes to the host
}

// maxHosts bounds a Fabric.
const maxHosts = 200

// Fabric makes a switch and one host per role, numbered from the
// prefix's first address + 1 (a /24 such as 10.9.0.0/24), each ready for
// faults: nothing cut, lost or delayed yet.
func (l *Lab) Fabric(t testing.TB, prefix netip.Prefix, roles ...string) *Fabric {
	t.Helper()
	if len(roles) > maxHosts || !prefix.Addr().Is4() || prefix.Bits() > 28 {
		t.Fatalf("netlab: fabric of %d hosts on %s: at most %d hosts on an IPv4 prefix of /28 or wider", len(roles), prefix, maxHosts)
	}
	f := &Fabric{lab: l, sw: l.Netns(t, "sw"), prefix: prefix.Masked()}
	f.sw.IP(t, "link add br0 type bridge", "link set br0 up")
	addr := f.prefix.Addr()
	for i, role := range roles {
		addr = addr.Next()
		h := &Host{Netns: l.Netns(t, role), Addr: addr, index: i, fab: f, cut: map[netip.Addr]bool{},
			loss: map[netip.Addr]int{}, delay: map[netip.Addr]time.Duration{}}
		port := fmt.Sprintf("p%d", i)
		Veth(t, f.sw, port, h.Netns, "eth0")
		f.sw.IP(t, "link set "+port+" master br0")
		h.IP(t, fmt.Sprintf("addr add %s/%d dev eth0", addr, f.prefix.Bits()))
		f.hosts = append(f.hosts, h)
	}
	for _, h := range f.hosts {
		var loss, jumps strings.Builder
		for _, o := range f.hosts {
			if o != h {
				fmt.Fprintf(&loss, "  chain loss_%d {\n  }\n", o.index)
				fmt.Fprintf(&jumps, "    ip daddr %s jump loss_%d\n", o.Addr, o.index)
			}
		}
		h.Nft(t, fmt.Sprintf(`table inet netlab_faults {
  set cut { type ipv4_addr; }
%s  chain out {
    type filter hook output priority filter; policy accept;
    ip daddr @cut drop
%s  }
}
`, loss.String(), jumps.String()))
	}
	for _, h := range f.hosts {
		h.startDelayer(t)
	}
	return f
}

// Hosts are the fabric's hosts, in the order of their roles.
func (f *Fabric) Hosts() []*Host { return f.hosts }

// Cut drops every packet h sends to `to` until Heal. The other way is
// untouched: cut both for a partition.
func (h *Host) Cut(t testing.TB, to *Host) { h.setCut(t, to, true) }

// Heal undoes Cut: h's packets reach `to` again.
func (h *Host) Heal(t testing.TB, to *Host) { h.setCut(t, to, false) }

func (h *Host) setCut(t testing.TB, to *Host, cut bool) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cut[to.Addr] == cut {
		return
	}
	verb := "add"
	if !cut {
		verb = "delete"
	}
	h.Nft(t, fmt.Sprintf("%s element inet netlab_faults cut { %s }\n", verb, to.Addr))
	h.cut[to.Addr] = cut
}

// Impair delays the bytes of every TCP connection from h to `to` by
// delay and loses loss percent (0 to 100) of the packets h sends to `to`
// (TCP and UDP alike); zero values restore the route. The other way is
// untouched: impair both for a slow route.
//
// The kernel's netem is not everywhere (a kernel without
// CONFIG_NET_SCH_NETEM), so the delay is a proxy's: every TCP
// connection between hosts of the fabric goes, from its start, through
// its initiator's delayer (delay.go), which holds each way's bytes for
// that way's delay. Losses are nftables' (numgen random).
func (h *Host) Impair(t testing.TB, to *Host, delay time.Duration, loss float64) {
	t.Helper()
	if loss < 0 || loss > 100 || delay < 0 {
		t.Fatalf("netlab: impair %s → %s: delay %s, loss %g%%: want a delay ≥ 0 and a loss of 0 to 100", h.Name, to.Name, delay, loss)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.delay[to.Addr] = delay
	pct := int(loss)
	if h.loss[to.Addr] == pct {
		return
	}
	rules := fmt.Sprintf("flush chain inet netlab_faults loss_%d\n", to.index)
	if pct > 0 {
		rules += fmt.Sprintf("add rule inet netlab_faults loss_%d numgen random mod 100 < %d drop\n", to.index, pct)
	}
	h.Nft(t, rules)
	h.loss[to.Addr] = pct
}

// delayTo is the delay of h's bytes to addr.
func (h *Host) delayTo(addr netip.Addr) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.delay[addr]
}

// host is the fabric's host at addr, nil if none.
func (f *Fabric) host(addr netip.Addr) *Host {
	for _, h := range f.hosts {
		if h.Addr == addr {
			return h
		}
	}
	return nil
}

// Partition cuts every route between hosts on different sides, both
// ways, and heals every route within a side: Partition(t, {a, b}, {c})
// isolates c. Hosts left out of every side keep their routes as they are.
func (f *Fabric) Partition(t testing.TB, sides ...[]*Host) {
	t.Helper()
	side := map[*Host]int{}
	for i, s := range sides {
		for _, h := range s {
			side[h] = i + 1
		}
	}
	for _, a := range f.hosts {
		for _, b := range f.hosts {
			if a == b || side[a] == 0 || side[b] == 0 {
				continue
			}
			if side[a] == side[b] {
				a.Heal(t, b)
			} else {
				a.Cut(t, b)
			}
		}
	}
}

// HealAll heals every cut and clears every impairment.
func (f *Fabric) HealAll(t testing.TB) {
	t.Helper()
	for _, a := range f.hosts {
		for _, b := range f.hosts {
			if a != b {
				a.Heal(t, b)
				a.Impair(t, b, 0, 0)
			}
		}
	}
}

// Flap cuts the route between a and b (both ways) and heals it, turn
// about, every period until ctx ends, and leaves it healed. It returns
// once the route is healed for good.
func (f *Fabric) Flap(ctx context.Context, t testing.TB, a, b *Host, period time.Duration) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	cut := false
	for {
		cut = !cut
		if cut {
			a.Cut(t, b)
			b.Cut(t, a)
		} else {
			a.Heal(t, b)
			b.Heal(t, a)
		}
		select {
		case <-ctx.Done():
			a.Heal(t, b)
			b.Heal(t, a)
			return
		case <-tick.C:
		}
	}
}
