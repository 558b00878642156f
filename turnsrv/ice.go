package turnsrv

import (
	"net"
	"strconv"
	"time"
)

// ICEServer is a W3C WebRTC RTCIceServer dictionary.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// ICEServers returns the RTCIceServer list pointing at this server, with a
// credential minted now for user: a stun: URL per UDP listener and turn:
// URLs with ?transport=udp or tcp (RFC 7065) for each listener, all at the
// advertised public IP. ttl is the credential's lifetime.
func (s *Server) ICEServers(user string) (servers []ICEServer, ttl time.Duration) {
	username, password, _ := s.cfg.Credentials.Mint(user, time.Now())
	var stunURLs, turnURLs []string
	seen := map[string]bool{}
	for _, a := range s.addrs {
		hp := net.JoinHostPort(s.cfg.PublicIP.String(), strconv.Itoa(addrPort(a)))
		var u string
		switch a.Network() {
		case "udp":
			u = "turn:" + hp + "?transport=udp"
			if !seen["stun:"+hp] {
				stunURLs = append(stunURLs, "stun:"+hp)
				seen["stun:"+hp] = true
			}
		case "tcp":
			u = "turn:" + hp + "?transport=tcp"
		default:
			continue
		}
		if !seen[u] {
			seen[u] = true
			turnURLs = append(turnURLs, u)
		}
	}
	if len(stunURLs) > 0 {
		servers = append(servers, ICEServer{URLs: stunURLs})
	}
	servers = append(servers, ICEServer{URLs: turnURLs, Username: username, Credential: password})
	return servers, s.cfg.Credentials.TTL()
}
