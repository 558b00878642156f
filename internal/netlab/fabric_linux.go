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
// set of addresses whose packets are dropped in the output hook, and,
// per destination, a netem queue (tc) behind a prio band that a u32
// filter on the destination address selects. Nothing touches the
// switch, so a fault between two hosts never changes what a third one
// sees.
type Fabric struct {
	lab    *Lab
	sw     *Netns
	prefix netip.Prefix
	mu     sync.Mutex
	hosts  []*Host
}

// Host is one host of a Fabric.
type Host struct {
	*Netns
	// Addr is the host's address on the fabric.
	Addr  netip.Addr
	index int // 0-based; its netem band is 1:(4+index) on every other host
	fab   *Fabric
	mu    sync.Mutex
	cut   map[netip.Addr]bool
}

// maxHosts bounds a Fabric: prio has at most 16 bands, 3 of them for
// unimpaired traffic.
const maxHosts = 13

// Fabric makes a switch and one host per role, numbered from the
// prefix's first address + 1 (a /24 such as 10.9.0.0/24), each ready for
// faults: its nftables drop set empty and its netem queues passing
// everything through.
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
		h := &Host{Netns: l.Netns(t, role), Addr: addr, index: i, fab: f, cut: map[netip.Addr]bool{}}
		port := fmt.Sprintf("p%d", i)
		Veth(t, f.sw, port, h.Netns, "eth0")
		f.sw.IP(t, "link set "+port+" master br0")
		h.IP(t, fmt.Sprintf("addr add %s/%d dev eth0", addr, f.prefix.Bits()))
		h.Nft(t, `table inet netlab_faults {
  set cut { type ipv4_addr; }
  chain out {
    type filter hook output priority filter; policy accept;
    ip daddr @cut drop
  }
}
`)
		f.hosts = append(f.hosts, h)
	}
	// Bands 1:1-1:3 take unimpaired traffic (prio's default priomap maps
	// no TOS to band 4 or above); 1:(4+i) is the way to host i.
	bands := 3 + len(roles)
	for _, h := range f.hosts {
		cmds := []string{fmt.Sprintf("qdisc add dev eth0 root handle 1: prio bands %d priomap 1 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1", max(bands, 3))}
		for _, o := range f.hosts {
			if o == h {
				continue
			}
			b := 4 + o.index
			cmds = append(cmds,
				fmt.Sprintf("qdisc add dev eth0 parent 1:%d handle %d: netem delay 0ms", b, 10+o.index),
				fmt.Sprintf("filter add dev eth0 parent 1: protocol ip prio 1 u32 match ip dst %s/32 flowid 1:%d", o.Addr, b))
		}
		h.tc(t, cmds...)
	}
	return f
}

// Hosts are the fabric's hosts, in the order of their roles.
func (f *Fabric) Hosts() []*Host { return f.hosts }

// tc runs tc commands (without the leading "tc") in h as one batch.
func (h *Host) tc(t testing.TB, cmds ...string) {
	t.Helper()
	cmd := h.Command("tc", "-batch", "-")
	cmd.Stdin = strings.NewReader(strings.Join(cmds, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("netlab: tc in %s: %v: %s\nbatch:\n%s", h.Name, err, out, strings.Join(cmds, "\n"))
	}
}

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

// Impair delays every packet h sends to `to` by delay and loses loss
// percent of them (0 to 100), on the way out of h; zero values restore
// the route. The other way is untouched.
func (h *Host) Impair(t testing.TB, to *Host, delay time.Duration, loss float64) {
	t.Helper()
	if loss < 0 || loss > 100 || delay < 0 {
		t.Fatalf("netlab: impair %s → %s: delay %s, loss %g%%: want a delay ≥ 0 and a loss of 0 to 100", h.Name, to.Name, delay, loss)
	}
	h.tc(t, fmt.Sprintf("qdisc change dev eth0 parent 1:%d handle %d: netem delay %dus loss %g%%",
		4+to.index, 10+to.index, delay.Microseconds(), loss))
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
