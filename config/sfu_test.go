package config

import (
	"errors"
	"testing"
)

func TestSFUKeys(t *testing.T) {
	cfg, err := FromBytes("t.yaml", []byte("sfu: {}\nsignaling: {rooms: {town: {media: sfu}}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if p := cfg.Parsed.SFU; p == nil || p.Listen != "0.0.0.0:3480" {
		t.Errorf("sfu.listen default: got %+v, want 0.0.0.0:3480", p)
	}
	s := cfg.Signaling
	if s.DefaultMedia != MediaAuto || s.MeshMax != 4 || cfg.SFU.MaxPeersPerRoom != 25 || cfg.SFU.PublishBitrate != 4_000_000 {
		t.Errorf("defaults: media %q mesh_max %d sfu peers %d bitrate %d", s.DefaultMedia, s.MeshMax, cfg.SFU.MaxPeersPerRoom, cfg.SFU.PublishBitrate)
	}
	if s.RoomMedia("town") != MediaSFU || s.RoomMedia("other") != MediaAuto {
		t.Errorf("room media: town %q other %q", s.RoomMedia("town"), s.RoomMedia("other"))
	}
	// A room cap below mesh_max's default is no error: mesh_max follows it.
	if cfg, err := FromBytes("t.yaml", []byte("signaling: {max_peers_per_room: 2}\n")); err != nil {
		t.Errorf("max_peers_per_room 2: %v", err)
	} else if cfg.Signaling.MeshMax != 2 {
		t.Errorf("max_peers_per_room 2: mesh_max %d, want 2", cfg.Signaling.MeshMax)
	}
	if cfg, err := FromBytes("t.yaml", nil); err != nil || cfg.Parsed.SFU != nil {
		t.Errorf("no sfu: section: got %+v, %v; want no SFU", cfg.Parsed.SFU, err)
	}
	for _, c := range []struct{ yaml, key string }{
		{"signaling: {default_media: p2p}", "signaling.default_media"},
		{"signaling: {mesh_max: 1}", "signaling.mesh_max"},
		{"signaling: {mesh_max: 9}", "signaling.mesh_max"},
		{"signaling: {rooms: {a: {media: x}}}", "signaling.rooms.a.media"},
		{"sfu: {listen: [\"tcp://0.0.0.0:3480\"]}", "sfu.listen"},
		{"sfu: {listen: [\"udp://a:1\", \"udp://b:2\"]}", "sfu.listen"},
		{"sfu: {listen: [\"udp://example.com:3480\"]}", "sfu.listen"},
		{"sfu: {max_peers_per_room: 51}", "sfu.max_peers_per_room"},
		{"sfu: {publish_bitrate: 10}", "sfu.publish_bitrate"},
		{"sfu: {max_participants: 1}", "sfu.max_participants"},
		{"sfu: {ice_tcp: true}\nturn: {share_http_listen: false}", "sfu.ice_tcp"},
	} {
		_, err := FromBytes("t.yaml", []byte(c.yaml))
		var e *Error
		if !errors.As(err, &e) || e.Key != c.key {
			t.Errorf("%s: got %v, want an error naming %s", c.yaml, err, c.key)
		}
	}
}

// TestSFUICETCP: ICE-TCP is on by default where TURN shares the HTTPS
// port, off where nothing is shared, and can be turned off.
func TestSFUICETCP(t *testing.T) {
	for _, c := range []struct {
		yaml string
		want bool
	}{
		{"sfu: {}\nhttp: {listen: \"127.0.0.1:8080\"}\nturn: {listen: [\"tcp://127.0.0.1:8080\"]}", true},
		{"sfu: {ice_tcp: false}\nhttp: {listen: \"127.0.0.1:8080\"}\nturn: {listen: [\"tcp://127.0.0.1:8080\"]}", false},
		{"sfu: {}", false},
	} {
		cfg, err := FromBytes("t.yaml", []byte(c.yaml))
		if err != nil {
			t.Fatalf("%s: %v", c.yaml, err)
		}
		if got := cfg.Parsed.SFU.ICETCP; got != c.want {
			t.Errorf("%s: ICE-TCP %v, want %v", c.yaml, got, c.want)
		}
	}
}
