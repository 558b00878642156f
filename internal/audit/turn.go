package audit

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/pion/stun/v3"
)

// Check names of the TURN checks.
const (
	CheckUnauthAllocate = "unauthenticated-allocate"
	CheckAllocate       = "allocate"
	CheckPeerPrefix     = "peer-refused "
	CheckOwnListener    = "own-address-listener-port"
	CheckOwnOther       = "own-address-non-relay-port"
	CheckEveryPeer      = "every-peer-address-checked"
)

// ForbiddenPeers are the peers a TURN server must refuse a permission to
// (403, RFC 8656 §9.1) whatever the port: loopback, private, the cloud
// metadata service, and IPv6 forms that carry a forbidden IPv4 address
// (IPv4-mapped, IPv4-compatible ::/96, NAT64 64:ff9b::/96, RFC 6052) —
// the coturn CVE-2020-26262 class.
var ForbiddenPeers = []netip.Addr{
	netip.MustParseAddr("127.0.0.1"),
	netip.MustParseAddr("10.0.0.1"),
	netip.MustParseAddr("169.254.169.254"),
	netip.MustParseAddr("::ffff:127.0.0.1"),
	netip.MustParseAddr("::7f00:1"),
	netip.MustParseAddr("64:ff9b::a00:1"),
}

var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// embeddedIPv4 is the IPv4 address an IPv6 address carries in its last
// 32 bits when it is IPv4-mapped, IPv4-compatible (::/96 except :: and
// ::1) or NAT64 (64:ff9b::/96); otherwise a itself.
func embeddedIPv4(a netip.Addr) netip.Addr {
	if a.Is4() || a.Is4In6() {
		return a.Unmap()
	}
	b := a.As16()
	compat := b == [16]byte{12: b[12], 13: b[13], 14: b[14], 15: b[15]} && !a.IsUnspecified() && !a.IsLoopback()
	if compat || nat64.Contains(a) {
		return netip.AddrFrom4([4]byte(b[12:]))
	}
	return a
}

// turnChecks runs the UDP checks 1 to 4 of the audit on one socket.
func turnChecks(ctx context.Context, cfg Config) []Result {
	c, err := dialUDP(ctx, cfg.Server, cfg.RTO)
	if err != nil {
		return append([]Result{fail(CheckUnauthAllocate, "cannot reach %s: %v", cfg.Server, err)},
			noAllocation("the server cannot be reached")...)
	}
	defer c.Close()

	var rs []Result
	tr, err := c.challenge(ctx)
	switch {
	case err != nil:
		return append(append(rs, fail(CheckUnauthAllocate, "Allocate without credentials to %s: %v", cfg.Server, err)),
			noAllocation("the server does not answer")...)
	case tr.resp.Type.Class == stun.ClassSuccessResponse:
		rs = append(rs, fail(CheckUnauthAllocate, "Allocate without credentials to %s succeeded: anyone may relay through it", cfg.Server))
		// Give it back; a server that allocates without credentials
		// likely deletes without them too.
		if req, err := stun.Build(stun.TransactionID, stun.NewType(stun.MethodRefresh, stun.ClassRequest), lifetime(0)); err == nil {
			_, _ = c.do(ctx, req)
		}
	default:
		code, _ := errorCode(tr.resp)
		var missing []string
		if c.realm == "" {
			missing = append(missing, "REALM")
		}
		if c.nonce == "" {
			missing = append(missing, "NONCE")
		}
		if code != stun.CodeUnauthorized || len(missing) > 0 {
			rs = append(rs, fail(CheckUnauthAllocate, "Allocate without credentials to %s: got %s, missing %v; want 401 with REALM and NONCE",
				cfg.Server, outcome(tr.resp), missing))
		} else {
			ev := fmt.Sprintf("Allocate without credentials to %s: %s with REALM %q and NONCE", cfg.Server, outcome(tr.resp), c.realm)
			if cfg.Realm != "" && cfg.Realm != c.realm {
				ev += fmt.Sprintf(" (the configuration says realm %q)", cfg.Realm)
			}
			rs = append(rs, pass(CheckUnauthAllocate, "%s", ev))
		}
	}
	if cfg.Username == "" {
		return append(append(rs, skip(CheckAllocate, "no credential given (-secret, or -config with the server's secret)")),
			skipDependents("no allocation: no credential")...)
	}
	if c.realm == "" || c.nonce == "" {
		return append(append(rs, fail(CheckAllocate, "the server sent no REALM and NONCE to authenticate with")),
			skipDependents("no allocation")...)
	}
	c.username = cfg.Username
	c.key = stun.NewLongTermIntegrity(cfg.Username, c.realm, cfg.Password)
	resp, err := c.authed(ctx, stun.MethodAllocate, requestedTransportUDP)
	if err != nil {
		return append(append(rs, fail(CheckAllocate, "Allocate as %q: %v", cfg.Username, err)), skipDependents("no allocation")...)
	}
	var relayed stun.XORMappedAddress
	if resp.Type.Class != stun.ClassSuccessResponse || relayed.GetFromAs(resp, stun.AttrXORRelayedAddress) != nil {
		why := ""
		if code, _ := errorCode(resp); code == stun.CodeUnauthorized {
			why = " (is the secret the server's, and the clock right?)"
		}
		return append(append(rs, fail(CheckAllocate, "Allocate as %q: %s%s", cfg.Username, outcome(resp), why)),
			skipDependents("no allocation")...)
	}
	defer func() {
		// Delete the allocation and its permissions (RFC 8656 §7.3),
		// unless the audit was stopped; it expires by itself otherwise.
		if ctx.Err() == nil {
			_, _ = c.authed(ctx, stun.MethodRefresh, lifetime(0))
		}
	}()
	relayIP, _ := netip.AddrFromSlice(relayed.IP)
	relayAddr := netip.AddrPortFrom(relayIP.Unmap(), uint16(relayed.Port))
	public := cfg.PublicIP
	ev := fmt.Sprintf("allocated as %q; relayed address %s", cfg.Username, relayAddr)
	if !public.IsValid() {
		public = relayAddr.Addr()
	} else if public != relayAddr.Addr() {
		ev += fmt.Sprintf(" (public_ip is %s)", public)
	}
	rs = append(rs, pass(CheckAllocate, "%s", ev))

	peerPort := relayAddr.Port()
	if cfg.PeerPort != 0 {
		peerPort = cfg.PeerPort
	}
	permit := func(peers ...netip.AddrPort) (*stun.Message, string, error) {
		attrs := make([]stun.Setter, len(peers))
		names := make([]string, len(peers))
		for i, p := range peers {
			attrs[i] = xorPeerAddress(p)
			names[i] = p.String()
		}
		resp, err := c.authed(ctx, stun.MethodCreatePermission, attrs...)
		what := fmt.Sprintf("CreatePermission to %s", names[0])
		if len(names) > 1 {
			what = fmt.Sprintf("CreatePermission to %v", names)
		}
		return resp, what, err
	}
	refused := func(check string, peer netip.AddrPort) Result {
		resp, what, err := permit(peer)
		switch {
		case err != nil:
			return fail(check, "%s: %v", what, err)
		case resp.Type.Class == stun.ClassSuccessResponse:
			return fail(check, "%s: success, the permission was granted (no data was sent to it)", what)
		}
		if code, _ := errorCode(resp); code != stun.CodeForbidden {
			return fail(check, "%s: %s, want 403", what, outcome(resp))
		}
		return pass(check, "%s: %s", what, outcome(resp))
	}

	// 2. Forbidden peers.
	for _, p := range ForbiddenPeers {
		check := CheckPeerPrefix + p.String()
		if embeddedIPv4(p) == public {
			rs = append(rs, skip(check, "it is the server's public_ip, a peer on relay ports by design (see %s)", CheckOwnOther))
			continue
		}
		rs = append(rs, refused(check, netip.AddrPortFrom(p, peerPort)))
	}

	// 3. The server's own address, off the relay ports.
	_, portStr, _ := net.SplitHostPort(cfg.Server)
	listenerPort, _ := strconv.ParseUint(portStr, 10, 16)
	rs = append(rs, refused(CheckOwnListener, netip.AddrPortFrom(public, uint16(listenerPort))))
	rs = append(rs, refused(CheckOwnOther, netip.AddrPortFrom(public, cfg.nonRelayPort())))

	// 4. Two XOR-PEER-ADDRESS attributes: an allowed one, then a forbidden one.
	rs = append(rs, everyPeerChecked(permit, relayAddr, public, peerPort, rs))
	return rs
}

// everyPeerChecked sends one CreatePermission whose first XOR-PEER-ADDRESS
// is allowed (the audit's own relayed address) and whose second is not; a
// server that checks only the first grants both. earlier holds the
// results so far, to tell that apart from a server that allows the second
// peer on its own.
func everyPeerChecked(permit func(...netip.AddrPort) (*stun.Message, string, error), relayAddr netip.AddrPort, public netip.Addr, peerPort uint16, earlier []Result) Result {
	var bad netip.Addr
	for _, p := range ForbiddenPeers {
		if p.Is4() && p != public {
			bad = p
			break
		}
	}
	alone, what, err := permit(relayAddr)
	if err != nil {
		return fail(CheckEveryPeer, "%s: %v", what, err)
	}
	if alone.Type.Class != stun.ClassSuccessResponse {
		return skip(CheckEveryPeer, "%s alone: %s, so a refusal of the pair would show nothing", what, outcome(alone))
	}
	resp, what, err := permit(relayAddr, netip.AddrPortFrom(bad, peerPort))
	switch {
	case err != nil:
		return fail(CheckEveryPeer, "%s: %v", what, err)
	case resp.Type.Class == stun.ClassSuccessResponse:
		for _, r := range earlier {
			if r.Check == CheckPeerPrefix+bad.String() && r.Status == Fail {
				return fail(CheckEveryPeer, "%s: success: %s is allowed even on its own (see %s); no data was sent", what, bad, r.Check)
			}
		}
		return fail(CheckEveryPeer, "%s: success: only the first XOR-PEER-ADDRESS was checked (no data was sent)", what)
	}
	code, ok := errorCode(resp)
	if !ok {
		return fail(CheckEveryPeer, "%s: error response without ERROR-CODE", what)
	}
	if code != stun.CodeForbidden {
		return fail(CheckEveryPeer, "%s: %s, want 403", what, outcome(resp))
	}
	return pass(CheckEveryPeer, "%s: %s with ERROR-CODE", what, outcome(resp))
}

// nonRelayPort is a port outside the relay range: 53 (DNS, a local
// service worth reaching) unless the range holds it.
func (cfg Config) nonRelayPort() uint16 {
	const dns = 53
	if cfg.RelayMin != 0 && cfg.RelayMin <= dns && dns <= cfg.RelayMax {
		if cfg.RelayMin > 1 {
			return cfg.RelayMin - 1
		}
		return cfg.RelayMax + 1
	}
	return dns
}

// noAllocation skips the allocation and every check that needs it.
func noAllocation(why string) []Result {
	return append([]Result{skip(CheckAllocate, "%s", why)}, skipDependents("no allocation: "+why)...)
}

// skipDependents are the Skip results of every check that needs an
// allocation.
func skipDependents(why string) []Result {
	var rs []Result
	for _, p := range ForbiddenPeers {
		rs = append(rs, skip(CheckPeerPrefix+p.String(), "%s", why))
	}
	return append(rs, skip(CheckOwnListener, "%s", why), skip(CheckOwnOther, "%s", why), skip(CheckEveryPeer, "%s", why))
}
