package daemon

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/icebox-project/icebox/internal/sfutest"
	"github.com/icebox-project/icebox/internal/testenv"
)

// TestSFURoomThroughDaemon: with an sfu: section, a room whose media is
// sfu is forwarded by the SFU on its one UDP port; the icebox_sfu_*
// metrics count the room, its participants and the bytes forwarded.
func TestSFURoomThroughDaemon(t *testing.T) {
	d := serveDaemon(t, `public_ip: 127.0.0.1
http:
  listen: "127.0.0.1:0"
turn:
  listen: ["udp://127.0.0.1:0"]
metrics:
  listen: "127.0.0.1:0"
sfu:
  listen: ["udp://127.0.0.1:0"]
signaling:
  rooms: {town: {media: sfu}}
`, nil)
	url := "ws://" + d.HTTPAddr().String() + "/ws"
	a, welcome := sfutest.Dial(t, url, "town", "alice")
	if welcome.Media != "sfu" {
		t.Fatalf("welcome media %q, want sfu", welcome.Media)
	}
	a.Publish()
	b, _ := sfutest.Dial(t, url, "town", "bob")
	testenv.Eventually(t, 15*time.Second, "bob receives alice", func() bool { return b.Packets.Load() > 20 })
	if _, w := sfutest.Dial(t, url, "lobby", "carol"); w.Media != "mesh" {
		t.Errorf("a room without media: welcome media %q, want mesh (auto rooms stay a mesh)", w.Media)
	}
	resp, err := http.Get("http://" + d.MetricsAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"icebox_sfu_rooms 1\n", "icebox_sfu_participants 2\n", "icebox_sfu_tracks 1\n",
		`icebox_sfu_forwarded_bytes_total{kind="video"} `, `icebox_sfu_forwarded_packets_total{kind="video"} `, "icebox_sfu_plis_total ", "icebox_sfu_estimated_bitrate_bits_bucket"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(string(body), `icebox_sfu_forwarded_bytes_total{kind="video"} 0`) ||
		strings.Contains(string(body), `icebox_sfu_forwarded_packets_total{kind="video"} 0`) {
		t.Error("no video bytes or packets forwarded")
	}
}

// TestSFUOverICETCP: two pion peers that may use only TCP over IPv4 join
// an SFU room over signaling and exchange media over ICE-TCP on the port
// TURN shares with HTTP: the SFU's passive TCP candidate names that port
// (sfu.ice_tcp is on by default there), each selected pair is TCP to it,
// and the shared listener counts the ICE-TCP connections.
func TestSFUOverICETCP(t *testing.T) {
	d := serveDaemon(t, `public_ip: 127.0.0.1
http:
  listen: "127.0.0.1:0"
turn:
  listen: ["udp://127.0.0.1:0"]
  share_http_listen: true
sfu:
  listen: ["udp://127.0.0.1:0"]
signaling:
  rooms: {town: {media: sfu}}
metrics: {listen: ""}
`, nil)
	port := d.HTTPAddr().(*net.TCPAddr).Port
	url := "ws://" + d.HTTPAddr().String() + "/ws"
	a, _ := sfutest.DialNetworks(t, url, "town", "alice", webrtc.NetworkTypeTCP4)
	a.Publish()
	b, _ := sfutest.DialNetworks(t, url, "town", "bob", webrtc.NetworkTypeTCP4)
	testenv.Eventually(t, 20*time.Second, "bob receives alice over ICE-TCP", func() bool { return b.Packets.Load() > 20 })
	for _, p := range []*sfutest.Peer{a, b} {
		pair, err := p.PC.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
		if err != nil || pair == nil {
			t.Fatalf("%s: no selected pair: %v", p.ID, err)
		}
		if pair.Local.Protocol != webrtc.ICEProtocolTCP || pair.Remote.Protocol != webrtc.ICEProtocolTCP ||
			pair.Remote.TCPType != "passive" || int(pair.Remote.Port) != port {
			t.Errorf("%s: selected %s, want TCP to the SFU's passive candidate on the shared port %d", p.ID, pair, port)
		}
	}
	if got := d.TURN().Stats().SharedICE.Load(); got < 2 {
		t.Errorf("shared listener: %d ICE-TCP connections, want at least 2", got)
	}
}
