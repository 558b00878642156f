package sfu

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/icebox-project/icebox/internal/testenv"
)

// TestPublishBitrateCap: a publisher sending about 170 kbit/s of
// simulcast camera (q, h, f) over a cap of 100 kbit/s gets ErrPublishLimit
// once, and its top layer stops being forwarded (its subscriber's
// keyframes drop from 320 to 160 or 80 pixels wide) while the rest of its
// camera and its microphone go on; another publisher in the room, under
// the cap, gets no error and its microphone is forwarded throughout.
func TestPublishBitrateCap(t *testing.T) {
	s := newTestSFU(t, Config{InitialBitrate: 2_000_000, MinBitrate: 2_000_000, AllocateInterval: 100 * time.Millisecond,
		Limits: Limits{PublishBitrate: 100_000}})
	other := newTestClient(t, s, "r", "other")
	other.publishMicrophone(quiet())
	other.offer(nil)
	pub := publisher(t, s, "r", "pub", quiet())
	sub := newTestClient(t, s, "r", "sub")
	dumpOnFailure(t, pub, other, sub)
	const cam = "pub-camera"
	select {
	case err := <-pub.errs:
		if !errors.Is(err, ErrPublishLimit) {
			t.Fatalf("publisher over its cap: %v, want ErrPublishLimit", err)
		}
		t.Logf("refused: %v", err)
	case <-time.After(wait):
		t.Fatal("a publisher over its bitrate cap got no error")
	}
	testenv.Eventually(t, wait, "the subscriber gets a lower layer of the capped camera", func() bool {
		w := sub.lastWidth(cam)
		return w == 80 || w == 160
	})
	widths := func() []int {
		r := sub.got(cam)
		r.mu.Lock()
		defer r.mu.Unlock()
		return slices.Clone(r.widths)
	}
	before := len(widths())
	camPackets, pubMic, otherMic := sub.packets(cam), sub.packets("pub-microphone"), sub.packets("other-microphone")
	// 60 camera packets more is about 2 s of the publisher's three
	// layers: many allocation rounds, each of which could have put f back.
	start := pub.sentPackets()
	testenv.Eventually(t, wait, "60 camera packets published", func() bool { return pub.sentPackets() >= start+60 })
	if after := widths()[before:]; slices.Contains(after, 320) {
		t.Errorf("keyframes after the cap were %v wide: f (320) forwarded again", after)
	}
	testenv.Eventually(t, wait, "the capped publisher's camera and microphone and the other's microphone go on", func() bool {
		return sub.packets(cam) > camPackets && sub.packets("pub-microphone") > pubMic+10 && sub.packets("other-microphone") > otherMic+10
	})
	select {
	case err := <-pub.errs:
		t.Errorf("a second error: %v (the cap is reported once)", err)
	case err := <-other.errs:
		t.Errorf("the publisher under the cap got %v", err)
	default:
	}
	checkContinuous(t, sub)
}
