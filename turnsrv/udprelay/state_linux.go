//go:build linux && (amd64 || arm64)

package udprelay

import (
	"cmp"

	"net/netip"
	"slices"
)

// state is what a loop needs to relay a datagram for one allocation. It is never changed once published; updates copy it.
// Relayed addresses are IPv4, so peers are IPv4 addresses held as
// uint32. The lists are sorted for binary search: an allocation usually
// holds a few permissions and channel bindings, but a client may make
// thousands.
type state struct {
	// out is the listener socket that sends to the client: nil until the
	// allocation is known (Relay.AllocationCreated). Sends go through its
	// loopFD, under its lock, so never to a closed descriptor.
	out      *listener
	client   rawAddr
	perms    []uint32       // peers with a permission (RFC 8656 §9)
	channels []channelEntry // channel bindings by peer (§12)
	byNumber []channelEntry // the same, by channel number
	// gen is the relay's peersGen when the entries were last judged
	// (prune).
	gen uint64
}

// channelEntry is one channel binding: peer is the IPv4 address << 16 |
// port.
type channelEntry struct {
	peer   uint64
	number uint16
}

func peerKey(ip uint32, port uint16) uint64 { return uint64(ip)<<16 | uint64(port) }

// peerAddrPort is the address and port of a peerKey.
func peerAddrPort(key uint64) netip.AddrPort {
	ip := uint32(key >> 16)
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{byte(ip >> 24), byte(ip >> 16), byte(ip >> 8), byte(ip)}), uint16(key))
}

func ipv4Key(a netip.Addr) (uint32, bool) {
	a = a.Unmap()
	if !a.Is4() {
		return 0, false
	}
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]), true
}

func (st *state) permitted(ip uint32) bool {
	_, ok := slices.BinarySearch(st.perms, ip)
	return ok
}

// channelTo returns the channel bound to peer, if any.
func (st *state) channelTo(peer uint64) (uint16, bool) {
	i, ok := slices.BinarySearchFunc(st.channels, peer, func(e channelEntry, p uint64) int { return cmp.Compare(e.peer, p) })
	if !ok {
		return 0, false
	}
	return st.channels[i].number, true
}

// peerOf returns the peer bound to channel number, if any.
func (st *state) peerOf(number uint16) (uint64, bool) {
	i, ok := slices.BinarySearchFunc(st.byNumber, number, func(e channelEntry, n uint16) int { return cmp.Compare(e.number, n) })
	if !ok {
		return 0, false
	}
	return st.byNumber[i].peer, true
}

// clone copies st (or makes an empty state from nil) for an update.
func (st *state) clone() *state {
	if st == nil {
		return &state{}
	}
	next := *st
	next.perms = slices.Clone(st.perms)
	next.channels = slices.Clone(st.channels)
	next.byNumber = slices.Clone(st.byNumber)
	return &next
}

func (st *state) setPermission(ip uint32, add bool) {
	i, ok := slices.BinarySearch(st.perms, ip)
	switch {
	case add && !ok:
		st.perms = slices.Insert(st.perms, i, ip)
	case !add && ok:
		st.perms = slices.Delete(st.perms, i, i+1)
	}
}

// setChannel binds number to peer, or removes that binding.
func (st *state) setChannel(peer uint64, number uint16, add bool) {
	byPeer := func(e channelEntry, p uint64) int { return cmp.Compare(e.peer, p) }
	byNum := func(e channelEntry, n uint16) int { return cmp.Compare(e.number, n) }
	i, okPeer := slices.BinarySearchFunc(st.channels, peer, byPeer)
	j, okNum := slices.BinarySearchFunc(st.byNumber, number, byNum)
	if !add {
		// Only the binding of exactly this peer and number goes.
		if okPeer && okNum && st.channels[i].number == number {
			st.channels = slices.Delete(st.channels, i, i+1)
			st.byNumber = slices.Delete(st.byNumber, j, j+1)
		}
		return
	}
	// A rebinding replaces what either side was bound to.
	if okPeer {
		st.setChannel(peer, st.channels[i].number, false)
	}
	if okNum {
		st.setChannel(st.byNumber[j].peer, number, false)
	}
	e := channelEntry{peer: peer, number: number}
	i, _ = slices.BinarySearchFunc(st.channels, peer, byPeer)
	st.channels = slices.Insert(st.channels, i, e)
	j, _ = slices.BinarySearchFunc(st.byNumber, number, byNum)
	st.byNumber = slices.Insert(st.byNumber, j, e)
}

// prune drops the channel bindings whose peer allowed refuses and the
// permissions whose address allowedAddr refuses. pion/turn still holds
// them; its own path judges each datagram, and its events remove them.
func (st *state) prune(allowed func(netip.AddrPort) bool, allowedAddr func(netip.Addr) bool) {
	for _, e := range slices.Clone(st.channels) {
		if !allowed(peerAddrPort(e.peer)) {
			st.setChannel(e.peer, e.number, false)
		}
	}
	for _, ip := range slices.Clone(st.perms) {
		if !allowedAddr(netip.AddrFrom4([4]byte{byte(ip >> 24), byte(ip >> 16), byte(ip >> 8), byte(ip)})) {
			st.setPermission(ip, false)
		}
	}
}
