package turnsrv

import (
	"time"

	"github.com/icebox-project/icebox/internal/advertise"
	"github.com/icebox-project/icebox/internal/rtc"
)

// ICEServer is a W3C WebRTC RTCIceServer dictionary: the one type
// turnsrv, signaling, web and the API hand out (internal/rtc).
type ICEServer = rtc.ICEServer

// Endpoint is a listener as advertised: "udp", "tcp" or "tls" and a port
// (internal/advertise).
type Endpoint = advertise.Endpoint

// Endpoints are the listeners as bound, in Config.Listeners order, with
// the ports clients reach them at: what the daemon builds its
// advertise.Advertised (the ICE server URLs) from. The server keeps no
// URLs of its own.
func (s *Server) Endpoints() []Endpoint {
	return append([]Endpoint(nil), s.endpoints...)
}

// Mint returns a TURN REST credential for user minted now with the
// current signing secret (see Credentials.Mint), and its lifetime.
func (s *Server) Mint(user string) (username, password string, ttl time.Duration) {
	creds := s.policy.Load().creds
	username, password, _ = creds.Mint(user, time.Now())
	return username, password, creds.TTL()
}
