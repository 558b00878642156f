package config

import (
	"fmt"
	"slices"
	"strings"
)

// Room media modes (signaling.default_media, signaling.rooms.<name>.media).
const (
	MediaAuto = "auto"
	MediaMesh = "mesh"
	MediaSFU  = "sfu"
)

// SFU defaults and bounds.
const (
	// DefaultSFUPort is the UDP port all SFU media shares (ICE UDP mux).
	DefaultSFUPort = 3480
	// DefaultSFUPeersPerRoom and MaxSFUPeersPerRoom bound
	// sfu.max_peers_per_room.
	DefaultSFUPeersPerRoom = 25
	MaxSFUPeersPerRoom     = 50
	// DefaultSFUParticipants caps the SFU's participants in all rooms.
	DefaultSFUParticipants = 500
	// DefaultSFUPublishBitrate caps what one participant sends, bit/s.
	DefaultSFUPublishBitrate = 4_000_000
	// DefaultMeshMax is signaling.mesh_max's default.
	DefaultMeshMax = 4
)

// SFU configures the embedded selective forwarding unit. Absent: no SFU,
// every room is a mesh.
type SFU struct {
	// Listen holds one "udp://host:port" entry: the socket all SFU media
	// shares (ICE UDP mux; candidates name public_ip and its port).
	// Default ["udp://0.0.0.0:3480"].
	Listen []string `yaml:"listen"`
	// MaxPeersPerRoom caps an SFU room. Default 25; 2 to 50.
	MaxPeersPerRoom int `yaml:"max_peers_per_room"`
	// MaxParticipants caps the SFU's participants in all rooms. Default
	// 500.
	MaxParticipants int `yaml:"max_participants"`
	// PublishBitrate caps what one participant publishes, bit/s, summed
	// over its tracks; past it the top simulcast layers are not
	// forwarded. Default 4000000.
	PublishBitrate int `yaml:"publish_bitrate"`
	// ICETCP takes ICE-TCP (RFC 6544 passive candidates, RFC 4571
	// framing) on the port TURN shares with HTTPS (turn.share_http_listen,
	// usually 443): the SFU offers a TCP host candidate at public_ip on
	// that port, so a client allowed only TCP 443 out reaches the SFU
	// without TURN. Default true when such a shared port exists; true
	// without one is an error.
	ICETCP *bool `yaml:"ice_tcp"`
}

// ParsedSFU is sfu: checked.
type ParsedSFU struct {
	// Listen is host:port of the media socket.
	Listen string
	// ICETCP: the shared listener (the turn.listen entry with Share)
	// takes ICE-TCP for the SFU.
	ICETCP bool
}

// validateSFU checks sfu: and the media keys of signaling:, filling in
// defaults.
func (c *Config) validateSFU(p *Parsed) *Error {
	if c.Signaling.DefaultMedia == "" {
		c.Signaling.DefaultMedia = MediaAuto
	}
	if c.Signaling.MeshMax == 0 {
		// A room capped below the default is a mesh up to its cap.
		c.Signaling.MeshMax = max(2, min(DefaultMeshMax, c.Signaling.MaxPeersPerRoom))
	}
	if !validMedia(c.Signaling.DefaultMedia) {
		return bad("signaling.default_media", "%q is not auto, mesh or sfu", c.Signaling.DefaultMedia)
	}
	if c.Signaling.MeshMax < 2 || c.Signaling.MeshMax > c.Signaling.MaxPeersPerRoom {
		return bad("signaling.mesh_max", "%d is outside 2 to max_peers_per_room (%d)", c.Signaling.MeshMax, c.Signaling.MaxPeersPerRoom)
	}
	for name, r := range c.Signaling.Rooms {
		if r.Media != "" && !validMedia(r.Media) {
			return bad("signaling.rooms."+name+".media", "%q is not auto, mesh or sfu", r.Media)
		}
	}
	s := c.SFU
	if s == nil {
		return nil
	}
	if len(s.Listen) == 0 {
		s.Listen = []string{fmt.Sprintf("udp://0.0.0.0:%d", DefaultSFUPort)}
	}
	if len(s.Listen) != 1 {
		return bad("sfu.listen", "%d entries: the SFU takes one udp:// socket", len(s.Listen))
	}
	addr, ok := strings.CutPrefix(s.Listen[0], "udp://")
	if !ok {
		return bad("sfu.listen", "%q is not udp://host:port (ICE-TCP rides the HTTPS listener)", s.Listen[0])
	}
	if err := checkHostPort(addr); err != nil {
		return bad("sfu.listen", "%v", err)
	}
	if s.MaxPeersPerRoom == 0 {
		s.MaxPeersPerRoom = DefaultSFUPeersPerRoom
	}
	if s.MaxPeersPerRoom < 2 || s.MaxPeersPerRoom > MaxSFUPeersPerRoom {
		return bad("sfu.max_peers_per_room", "%d is outside 2 to %d", s.MaxPeersPerRoom, MaxSFUPeersPerRoom)
	}
	if s.MaxParticipants == 0 {
		s.MaxParticipants = DefaultSFUParticipants
	}
	if s.MaxParticipants < 2 {
		return bad("sfu.max_participants", "%d: at least 2", s.MaxParticipants)
	}
	if s.PublishBitrate == 0 {
		s.PublishBitrate = DefaultSFUPublishBitrate
	}
	if s.PublishBitrate < 100_000 || s.PublishBitrate > 100_000_000 {
		return bad("sfu.publish_bitrate", "%d bit/s is outside 100000 to 100000000", s.PublishBitrate)
	}
	shared := slices.ContainsFunc(p.TURNListen, func(l Listener) bool { return l.Share })
	if s.ICETCP != nil && *s.ICETCP && !shared {
		return bad("sfu.ice_tcp", "true, but no turn.listen entry shares http.listen's port (turn.share_http_listen): ICE-TCP rides that port")
	}
	p.SFU = &ParsedSFU{Listen: addr, ICETCP: shared && (s.ICETCP == nil || *s.ICETCP)}
	return nil
}

func validMedia(m string) bool { return m == MediaAuto || m == MediaMesh || m == MediaSFU }

// RoomMedia is the media mode of room: its own, else default_media.
func (s *Signaling) RoomMedia(room string) string {
	if r, ok := s.Rooms[room]; ok && r.Media != "" {
		return r.Media
	}
	return s.DefaultMedia
}
