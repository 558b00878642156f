package daemon

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

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
