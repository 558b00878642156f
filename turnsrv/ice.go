package turnsrv

import (
	"github.com/icebox-project/icebox/internal/rtc"

	"net"
	"net/netip"
	"strconv"
	"time"
)

// ICEServer is a W3C WebRTC RTCIceServer dictionary: the one type
// turnsrv, signaling, web and the API hand out (internal/rtc).
type ICEServer = rtc.ICEServer

// Endpoint is a listener as advertised: "udp", "tcp" or "tls" and a port.
type Endpoint struct {
	Network string
	Port    int
}

// ICEServers returns the RTCIceServer list pointing at this server, with a
// credential minted now for user; ttl is the credential's lifetime.
func (s *Server) ICEServers(user string) (servers []ICEServer, ttl time.Duration) {
	return BuildICEServers(s.policy.Load().creds, s.cfg.PublicIP, s.cfg.PublicHost, s.endpoints, user)
}

// BuildICEServers returns RTCIceServer entries for endpoints at publicIP:
// a stun: URL per UDP port, turn: URLs with ?transport=udp or tcp, and
// turns: URLs at publicHost (the certificate's name; "" means publicIP)
// for TLS endpoints (RFC 7064, RFC 7065), carrying a TURN REST credential
// minted now for user.
func BuildICEServers(creds *Credentials, publicIP netip.Addr, publicHost string, endpoints []Endpoint, user string) (servers []ICEServer, ttl time.Duration) {
	stunURLs, turnURLs := iceURLs(publicIP, publicHost, endpoints)
	username, password, _ := creds.Mint(user, time.Now())
	if len(stunURLs) > 0 {
		servers = append(servers, ICEServer{URLs: stunURLs})
	}
	servers = append(servers, ICEServer{URLs: turnURLs, Username: username, Credential: password})
	return servers, creds.TTL()
}

// STUNServers returns the RTCIceServer list without TURN: the stun: URLs
// of the UDP listeners, and nothing minted (a page whose credentials come
// in welcome). Empty without a UDP listener.
func (s *Server) STUNServers() []ICEServer {
	stunURLs, _ := iceURLs(s.cfg.PublicIP, s.cfg.PublicHost, s.endpoints)
	if len(stunURLs) == 0 {
		return []ICEServer{}
	}
	return []ICEServer{{URLs: stunURLs}}
}

// iceURLs lists the stun: and turn:/turns: URLs of endpoints, each once:
// turn: URLs over UDP first, then over TCP, then turns: (TLS) last, the
// order a browser should prefer them in (RFC 8656 §3.1: UDP has the
// lowest latency; TLS gets through where only TCP 443 does).
func iceURLs(publicIP netip.Addr, publicHost string, endpoints []Endpoint) (stunURLs, turnURLs []string) {
	if publicHost == "" {
		publicHost = publicIP.String()
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
		hp := net.JoinHostPort(publicIP.String(), strconv.Itoa(e.Port))
		switch e.Network {
		case "udp":
			add(&stunURLs, "stun:"+hp)
			add(&udp, "turn:"+hp+"?transport=udp")
		case "tcp":
			add(&tcp, "turn:"+hp+"?transport=tcp")
		case "tls":
			add(&tls, "turns:"+net.JoinHostPort(publicHost, strconv.Itoa(e.Port))+"?transport=tcp")
		}
	}
	turnURLs = append(append(udp, tcp...), tls...)
	return stunURLs, turnURLs
}
