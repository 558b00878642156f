package config

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
)

// Listeners that share a port, and listeners that clash.
//
// A tls:// entry of turn.listen naming the same address as http.listen
// (HTTPS), or a tcp:// entry naming it when http.listen serves plain HTTP,
// shares that listener: one socket serves both, each connection told
// apart by ALPN or its first bytes (turnsrv.Listener.ShareHTTP). "The same
// address" is the same port, not 0, and the same host, where "", 0.0.0.0
// and :: (every address) count as one. turn.share_http_listen adds the
// shared listener without an entry: by default with HTTPS on port 443, so
// that clients that can leave their network only by TCP 443 reach TURN;
// when true whatever the port (port 0 in tests).
//
// Any other two listeners of one transport (TCP: http.listen,
// http.tls.redirect_listen, metrics.listen, tcp:// and tls:// entries;
// UDP: udp:// entries) on the same port clash when their hosts overlap
// (the same address, or one of them every address): the second bind
// would fail, or with SO_REUSEPORT split the traffic. Such a file is
// refused, naming both keys. Port 0 (a free port chosen at start-up) never
// clashes.

// bindKey is one listener as the clash check sees it.
type bindKey struct {
	key       string // the config key, such as "turn.listen[1]"
	value     string // as written, for messages
	transport string // "tcp" or "udp"
	host      string
	port      int
	turn      int // index into Parsed.TURNListen; -1: not a TURN listener
}

// checkListeners marks the turn.listen entry that shares http.listen (or
// adds the default TURN over TLS on an HTTPS port 443) and refuses any
// other clash.
func (c *Config) checkListeners(p *Parsed) *Error {
	httpHost, httpPort, _ := splitHostPort(c.HTTP.Listen)
	httpBind := bindKey{key: "http.listen", value: c.HTTP.Listen, transport: "tcp", host: httpHost, port: httpPort, turn: -1}
	binds := []bindKey{httpBind}
	if r := c.HTTP.TLS.RedirectListen; r != nil && *r != "" {
		h, port, _ := splitHostPort(*r)
		binds = append(binds, bindKey{key: "http.tls.redirect_listen", value: *r, transport: "tcp", host: h, port: port, turn: -1})
	}
	if p.MetricsAddr != "" {
		h, port, _ := splitHostPort(p.MetricsAddr)
		binds = append(binds, bindKey{key: "metrics.listen", value: p.MetricsAddr, transport: "tcp", host: h, port: port, turn: -1})
	}
	shared := -1
	for i, l := range p.TURNListen {
		h, port, _ := splitHostPort(l.Addr)
		b := bindKey{key: fmt.Sprintf("turn.listen[%d]", i), value: c.TURN.Listen[i], transport: "tcp", host: h, port: port, turn: i}
		if l.Network == "udp" {
			b.transport = "udp"
		}
		if b.transport == "tcp" && b.port != 0 && sameAddress(b, httpBind) {
			switch {
			case shared >= 0:
				return bad(b.key, "%q and turn.listen[%d] %q both share http.listen %q; only one TURN listener can",
					b.value, shared, c.TURN.Listen[shared], c.HTTP.Listen)
			case l.Network == "tcp" && p.TLS:
				return bad(b.key, "%q names http.listen %q, which serves HTTPS: that port is shared with TURN over TLS (tls://%s), not plain TCP",
					b.value, c.HTTP.Listen, l.Addr)
			}
			shared = i
			p.TURNListen[i].Share = true
			p.TURNListen[i].Addr = sharedBind(b, httpBind, c.HTTP.Listen)
			continue // checked as http.listen
		}
		binds = append(binds, b)
	}
	if share := c.TURN.ShareHTTPListen; shared < 0 && (share == nil && p.TLS && httpPort == 443 || share != nil && *share) {
		network := "tcp"
		if p.TLS {
			network = "tls"
		}
		p.TURNListen = append(p.TURNListen, Listener{Network: network, Addr: c.HTTP.Listen, Share: true, Default: true})
	}
	for i, b := range binds {
		for _, a := range binds[:i] {
			if a.transport != b.transport || a.port == 0 || a.port != b.port || !hostsOverlap(a.host, b.host) {
				continue
			}
			hint := ""
			if a.key == "http.listen" && b.turn >= 0 {
				hint = "; a tls:// (HTTPS) or tcp:// (plain HTTP) entry naming http.listen's exact address shares it"
			}
			err := bad(b.key, "%q and %s %q both bind %s port %d%s", b.value, a.key, a.value, upper(b.transport), b.port, hint)
			err.alt = bad(a.key, "%q and %s %q both bind %s port %d%s", a.value, b.key, b.value, upper(b.transport), b.port, hint)
			return err
		}
	}
	return nil
}

// splitHostPort splits a validated host:port; localhost is 127.0.0.1
// (what Go binds for it).
func splitHostPort(s string) (host string, port int, err error) {
	h, ps, err := net.SplitHostPort(s)
	if err != nil {
		return "", 0, err
	}
	port, err = strconv.Atoi(ps)
	if h == "localhost" {
		h = "127.0.0.1"
	}
	if a, perr := netip.ParseAddr(h); perr == nil {
		h = a.Unmap().String()
	}
	return h, port, err
}

// wildcard reports whether host means every address: "", 0.0.0.0 or ::.
func wildcard(host string) bool { return host == "" || host == "0.0.0.0" || host == "::" }

// sameAddress reports whether a TURN entry names http.listen's address:
// the same port and host, every-address hosts counting as one. (The
// caller leaves out port 0: a free port each.)
func sameAddress(a, b bindKey) bool {
	return a.port == b.port && (a.host == b.host || wildcard(a.host) && wildcard(b.host))
}

// sharedBind is where the shared socket binds: http.listen as written, or
// every address (IPv4 and IPv6) when the two name every address
// differently.
func sharedBind(a, b bindKey, httpListen string) string {
	if a.host == b.host {
		return httpListen
	}
	return net.JoinHostPort("", strconv.Itoa(b.port))
}

// hostsOverlap reports whether binds on two hosts (one port and
// transport) take some address twice: the same host, "" or :: (every
// address, IPv4 and IPv6) and anything, or 0.0.0.0 and an IPv4 address.
func hostsOverlap(a, b string) bool {
	if a == b || a == "" || b == "" || a == "::" || b == "::" {
		return true
	}
	is4 := func(h string) bool { ip, err := netip.ParseAddr(h); return err == nil && ip.Is4() }
	return a == "0.0.0.0" && is4(b) || b == "0.0.0.0" && is4(a)
}

func upper(transport string) string {
	if transport == "udp" {
		return "UDP"
	}
	return "TCP"
}
