package sfu

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/icebox-project/icebox/internal/testenv"
)

// TestTwelvePersonRoom: ten pion peers publish a VP8 simulcast camera and
// a microphone, two more only watch; over its one peer connection each
// of the twelve receives every publisher but itself, the watchers with
// one stage camera at f and the filmstrip at q, on continuous streams.
func TestTwelvePersonRoom(t *testing.T) {
	if os.Getenv("ICEBOX_SFU_TWELVE") == "" {
		// Twelve pion peers in one process take 20-60 s of a loaded
		// 2-core machine: an acceptance run, not part of make test.
		t.Skip("set ICEBOX_SFU_TWELVE=1: twelve pion peers in one process")
	}
	// Twelve pion peers in one process on a shared 2-core machine apply
	// an answer late; a new down-track waits 2 s, not 0.5, so none of
	// them sees media before the answer that describes it.
	s := newTestSFU(t, Config{StartDelay: 2 * time.Second, InitialBitrate: 2_000_000, MinBitrate: 2_000_000})
	var pubs, all []*testClient
	for i := range 10 {
		c := publisher(t, s, "twelve", fmt.Sprintf("p%02d", i), quiet())
		pubs = append(pubs, c)
		all = append(all, c)
	}
	watchers := []*testClient{newTestClient(t, s, "twelve", "w0"), newTestClient(t, s, "twelve", "w1")}
	dumpOnFailure(t, pubs[0])
	all = append(all, watchers...)
	start := time.Now()
	for _, c := range all {
		for _, p := range pubs {
			if p == c {
				continue
			}
			cam := p.name + "-camera"
			testenv.Eventually(t, 30*time.Second, c.name+" receives "+cam, func() bool {
				return c.packets(cam) > 0 && c.packets(p.name+"-microphone") > 0
			})
		}
	}
	t.Logf("12 peers: every one receives every publisher %s after the last joined", time.Since(start).Round(time.Millisecond))
	for _, w := range watchers {
		for i, p := range pubs {
			layer := "q"
			if i == 0 {
				layer = "f"
			}
			if err := w.part.RequestLayer(p.name+"-camera", layer); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, w := range watchers {
		for i, p := range pubs {
			want := 80
			if i == 0 {
				want = 320
			}
			testenv.Eventually(t, 30*time.Second, fmt.Sprintf("%s: %s keyframes %d wide", w.name, p.name, want),
				func() bool { return w.lastWidth(p.name+"-camera") == want })
		}
	}
	for _, c := range all {
		checkContinuous(t, c)
	}
	if _, ps, tracks := s.Counts(); ps != 12 || tracks != 20 {
		t.Errorf("counts: %d participants, %d tracks; want 12 and 20", ps, tracks)
	}
}
