// Package advertise holds what icebox tells browsers, other apps and
// other nodes about where it is: the public IP address, the public host
// name and the STUN/TURN URLs with the ports its listeners are bound to.
// The daemon builds one Advertised from the configuration and the bound
// listeners, and the page, /api/v1/ice-servers, welcome, the cluster
// heartbeat, the self-test and the audit read it; the CLI builds one from
// the configuration alone (ports as configured).
package advertise

import (
	"net"
	"net/netip"
	"strconv"

	"github.com/icebox-project/icebox/internal/rtc"
)

// Endpoint is a TURN listener as advertised: Network "udp", "tcp" or
// "tls" and the port clients reach it at (the bound port, never 0).
type Endpoint struct {
	Network string
	Port    int
}

// Advertised is the one value of what icebox advertises. It is immutable
// once built by New.
type Advertised struct {
	// PublicIP is the address peers reach the relay at: public_ip as
	// resolved (a configured address, or what auto or metadata gave). It
	// is in XOR-RELAYED-ADDRESS, in stun:/turn: URLs and in the cluster
	// heartbeat.
	PublicIP netip.Addr
	// PublicHost is the name in turns: URLs, which browsers check against
	// the certificate: public_host, else the first ACME domain, else the
	// certificate's first DNS name. Empty: PublicIP is used.
	PublicHost string
	// Endpoints are the TURN listeners, in turn.listen order.
	Endpoints []Endpoint
	// STUNURLs are the stun: URLs, one per UDP port.
	STUNURLs []string
	// TURNURLs are the turn: URLs over UDP, then over TCP, then the
	// turns: URLs (TLS), each once: the order a browser should prefer
	// them in (RFC 8656 §3.1: UDP has the lowest latency; TLS gets through
	// where only TCP 443 does).
	TURNURLs []string
}

// New builds the Advertised of publicIP (an IPv4-mapped address is
// unmapped), publicHost ("" means publicIP) and endpoints: stun: and
// turn: URLs at publicIP (RFC 7064, RFC 7065), turns: URLs at
// publicHost. Endpoints with port 0 are left out (a listener whose port is
// chosen at start-up is advertised only once bound).
func New(publicIP netip.Addr, publicHost string, endpoints []Endpoint) *Advertised {
	a := &Advertised{PublicIP: publicIP.Unmap(), PublicHost: publicHost}
	host := publicHost
	if host == "" {
		host = a.PublicIP.String()
	}
	seen := map[string]bool{}
	var udp, tcp, tls []string
	add := func(list *[]string, u string) {
		if !seen[u] {
			seen[u] = true
			*list = append(*list, u)
		}
	}
	for _, e := range endpoints {
		if e.Port == 0 {
			continue
		}
		a.Endpoints = append(a.Endpoints, e)
		hp := net.JoinHostPort(a.PublicIP.String(), strconv.Itoa(e.Port))
		switch e.Network {
		case "udp":
			add(&a.STUNURLs, "stun:"+hp)
			add(&udp, "turn:"+hp+"?transport=udp")
		case "tcp":
			add(&tcp, "turn:"+hp+"?transport=tcp")
		case "tls":
			add(&tls, "turns:"+net.JoinHostPort(host, strconv.Itoa(e.Port))+"?transport=tcp")
		}
	}
	a.TURNURLs = append(append(udp, tcp...), tls...)
	return a
}

// ICEServers is the RTCIceServer list pointing at icebox: the stun: URLs
// (none without a UDP listener) and the TURN URLs carrying username and
// credential (a TURN REST credential minted by the caller).
func (a *Advertised) ICEServers(username, credential string) []rtc.ICEServer {
	var servers []rtc.ICEServer
	if len(a.STUNURLs) > 0 {
		servers = append(servers, rtc.ICEServer{URLs: a.STUNURLs})
	}
	return append(servers, rtc.ICEServer{URLs: a.TURNURLs, Username: username, Credential: credential})
}

// STUNServers is the RTCIceServer list without TURN: the stun: URLs and
// nothing minted (a page whose credentials come in welcome). Empty, not
// nil, without a UDP listener.
func (a *Advertised) STUNServers() []rtc.ICEServer {
	if len(a.STUNURLs) == 0 {
		return []rtc.ICEServer{}
	}
	return []rtc.ICEServer{{URLs: a.STUNURLs}}
}

// First is the first endpoint of network ("udp", "tcp", "tls") at
// PublicIP; ok is false when there is none.
func (a *Advertised) First(network string) (ap netip.AddrPort, ok bool) {
	for _, e := range a.Endpoints {
		if e.Network == network {
			return netip.AddrPortFrom(a.PublicIP, uint16(e.Port)), true
		}
	}
	return netip.AddrPort{}, false
}
