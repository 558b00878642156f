package sfu

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"

	"github.com/icebox-project/icebox/internal/testenv"
)

// probeClient is a pion peer connection with one data channel, on
// loopback, and its offer with every candidate.
func probeClient(t *testing.T) (*webrtc.PeerConnection, *webrtc.DataChannel, string) {
	t.Helper()
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetInterfaceFilter(func(name string) bool { return name == "lo" })
	pc, err := webrtc.NewAPI(webrtc.WithSettingEngine(se)).NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pc.Close() })
	dc, err := pc.CreateDataChannel("probe", nil)
	if err != nil {
		t.Fatal(err)
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		t.Fatal(err)
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		t.Fatal(err)
	}
	<-gathered
	return pc, dc, pc.LocalDescription().SDP
}

// TestProbe: a peer connection with one data channel reaches the SFU's
// media socket through Probe, and what it sends comes back. Offers that
// carry media, do not parse or are too large are refused with what is
// wrong; past MaxProbes open at once a probe is refused as busy, and
// one is taken again once another ends; a closed SFU takes none.
func TestProbe(t *testing.T) {
	s := newTestSFU(t, Config{})
	ctx := context.Background()
	pc, dc, offer := probeClient(t)
	if !strings.Contains(offer, "m=application") {
		t.Fatalf("offer without a data channel section:\n%s", offer)
	}
	answer, err := s.Probe(ctx, offer)
	if err != nil {
		t.Fatal(err)
	}
	if port := strconv.Itoa(s.cfg.UDP.LocalAddr().(*net.UDPAddr).Port); !strings.Contains(answer, " 127.0.0.1 "+port+" typ host") {
		t.Errorf("answer without the SFU's media socket as a candidate:\n%s", answer)
	}
	echo := make(chan string, 1)
	dc.OnOpen(func() { _ = dc.SendText("ping over the SFU's port") })
	dc.OnMessage(func(m webrtc.DataChannelMessage) {
		if !m.IsString {
			echo <- "a binary echo of a text message"
			return
		}
		echo <- string(m.Data)
	})
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-echo:
		if got != "ping over the SFU's port" {
			t.Errorf("echo %q", got)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no echo over the probe's data channel within 10 s (connection %s)", pc.ConnectionState())
	}
	if _, participants, _ := s.Counts(); participants != 0 {
		t.Errorf("a probe counts as %d participants, want none", participants)
	}

	media := strings.Replace(offer, "m=application", "m=audio", 1)
	for _, c := range []struct {
		name, offer string
		want        error
	}{
		{"an offer with media", media, ErrBadSignal},
		{"an offer that does not parse", "v=0\r\nbogus", ErrBadSignal},
		{"an offer over the size cap", offer + strings.Repeat("a=x\r\n", ProbeSDPSize/5), ErrTooLarge},
	} {
		if _, err := s.Probe(ctx, c.offer); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}

	// MaxProbes open at once (the first one among them), then busy.
	var open []*webrtc.PeerConnection
	for range MaxProbes - 1 {
		p, _, o := probeClient(t)
		if _, err := s.Probe(ctx, o); err != nil {
			t.Fatalf("probe %d: %v", len(open)+2, err)
		}
		open = append(open, p)
	}
	_, _, o := probeClient(t)
	if _, err := s.Probe(ctx, o); !errors.Is(err, ErrProbeBusy) {
		t.Fatalf("probe past %d open: %v, want ErrProbeBusy", MaxProbes, err)
	}
	_ = pc.Close() // the first probe's channel closes: it ends
	testenv.Eventually(t, 10*time.Second, "a probe taken once another ended", func() bool {
		_, _, o := probeClient(t)
		_, err := s.Probe(ctx, o)
		return err == nil
	})
	_ = s.Close()
	if _, err := s.Probe(ctx, o); !errors.Is(err, ErrClosed) {
		t.Errorf("probe of a closed SFU: %v, want ErrClosed", err)
	}
}
